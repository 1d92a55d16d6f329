// Philox4x32-10 streams on the device (the CPU's generator, core/philox.h, bit for bit): fills a
// device buffer with consecutive 32-bit words of a stream. The compression kernels draw their
// random numbers through the same device code (kernels/cuda/philox.cuh); the GPU tests check it
// against the CPU here.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// out[i] = word (first_word + i) of the stream Philox(seed, round, silo, purpose), i.e. what
/// the (first_word + i + 1)-th next_u32() of a fresh core/philox.h Philox returns. count >= 0;
/// out holds count words (device memory).
[[nodiscard]] Status philox_words(uint64_t seed, uint32_t round, uint32_t silo, uint32_t purpose,
                                  uint64_t first_word, int64_t count, uint32_t* out, Stream s);

}  // namespace fedsilo::kernels::cuda
