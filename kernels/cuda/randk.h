// Random-k on the device: the twin of kernels::randk_indices / randk_select (kernels/cpu/
// randk.h), the same index set from the same Philox stream, so GPU and CPU silos of one round
// agree. The CPU runs Floyd's algorithm one draw after the other; here the draws are computed
// in parallel (draw s is the s-th u64 of the stream, shifted by any earlier rejections of the
// unbiased bounded draw) and Floyd's set follows from them without replaying the sequence.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"

namespace fedsilo::kernels::cuda {

/// Scratch bytes randk_indices_in needs for (n, k).
[[nodiscard]] Result<size_t> randk_scratch_bytes(int64_t n, int64_t k);

/// The indices kernels::randk_indices(n, k, seed, round) returns (k distinct indices of [0, n),
/// ascending, from Philox(seed, round, 0, kCompression)) into out[0, min(k, n)). k <= 0 or
/// n <= 0: none; k >= n: all. Requires n < 2^32. Synchronizes the stream once (to learn whether
/// a draw was rejected, which shifts the stream; rejections happen with probability < n/2^64 per
/// draw).
[[nodiscard]] Status randk_indices(int64_t n, int64_t k, uint64_t seed, uint32_t round,
                                   uint32_t* out, Workspace& ws, Stream s);

/// randk_indices with caller-provided scratch of randk_scratch_bytes(n, k) bytes.
[[nodiscard]] Status randk_indices_in(int64_t n, int64_t k, uint64_t seed, uint32_t round,
                                      uint32_t* out, void* scratch, Stream s);

/// randk_indices(n, k, ...) with x's values gathered into values[0, min(k, n)).
[[nodiscard]] Status randk_select(const float* x, int64_t n, int64_t k, uint64_t seed,
                                  uint32_t round, uint32_t* indices, float* values, Workspace& ws,
                                  Stream s);

}  // namespace fedsilo::kernels::cuda
