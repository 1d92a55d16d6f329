// Value quantizers on the device: the twins of kernels/cpu/quantize.h, identical bits for the
// same input and stream. fp16 and bf16 round to nearest even (integer arithmetic, as the CPU);
// int8 uses a per-block fp32 scale (kInt8BlockSize values a block) and Philox stochastic
// rounding, the random word of encoded position j being word j of the stream
// (j / 4, round, silo | kRoundingStreamBit, kCompression) with key seed. RoundingStream and the
// constants are the CPU's own (kernels/params/quantize.h).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"
#include "kernels/params/quantize.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels::cuda {

/// Replaces values[0, n) in place by what decode(encode(values)) gives: the twin of
/// kernels::round_trip_values, bit for bit. fp32: unchanged.
[[nodiscard]] Status round_trip_values(ValueType type, float* values, int64_t n,
                                       const RoundingStream& rs, Stream s);

/// Encodes values[0, n) into out (encoded_value_bytes(type, n) bytes, any alignment): the same
/// bytes as kernels::encode_values (int8: the block scales first, then one int8 per value).
[[nodiscard]] Status encode_values(ValueType type, const float* values, int64_t n, uint8_t* out,
                                   const RoundingStream& rs, Stream s);

/// Decodes n values from in (in_bytes bytes) into out: the twin of kernels::decode_values,
/// kCorruptData in the same cases (wrong size, a negative or non-finite scale, a non-finite
/// value). Synchronizes the stream (the verdict comes back to the host).
[[nodiscard]] Status decode_values(ValueType type, const uint8_t* in, int64_t in_bytes, float* out,
                                   int64_t n, Workspace& ws, Stream s);

}  // namespace fedsilo::kernels::cuda
