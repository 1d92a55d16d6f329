// Value quantizers for compressed updates: fp16 and bf16 (round to nearest even) and int8 with
// a per-block fp32 scale and stochastic rounding. Encode to bytes, decode to fp32, and a
// round trip that leaves exactly what a receiver will decode.
#pragma once

#include <bit>
#include <cstdint>
#include <span>

#include "core/status.h"
#include "kernels/params/quantize.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// fp32 -> IEEE binary16, round to nearest even: |x| >= 65520 becomes inf, values below 2^-14
/// become subnormal halves (steps of 2^-24), below 2^-25 zero; NaN stays NaN (quiet). Relative
/// error <= 2^-11 in the normal range, absolute <= 2^-25 below it.
uint16_t fp32_to_fp16(float x);
/// binary16 -> fp32 (exact).
float fp16_to_fp32(uint16_t h);
/// fp32 -> bfloat16 (the top 16 bits), round to nearest even: overflows past 0x1.fep127 to inf,
/// keeps subnormals, NaN stays NaN (quiet). Relative error <= 2^-8 for normal values.
uint16_t fp32_to_bf16(float x);
/// bfloat16 -> fp32 (exact).
inline float bf16_to_fp32(uint16_t b) {
  return std::bit_cast<float>(uint32_t{b} << 16);
}

/// The largest finite binary16 value.
inline constexpr float kFp16Max = 65504.0f;

/// Bytes that `count` values take encoded as `type`: 4, 2, 2 bytes per value, or for int8 one
/// byte per value plus a 4-byte scale per started block of kInt8BlockSize values.
int64_t encoded_value_bytes(ValueType type, int64_t count);

/// int8 block scale for a block whose largest magnitude is max_abs: max_abs / 127 rounded up to
/// 16 significant bits (0 below kInt8FlushBelow). Rounding up keeps |v| / scale <= 127; 16 bits
/// make q * scale exact in fp32 (7 + 16 < 24 bits), so decoded values lie exactly on the grid
/// and re-encode unchanged.
float int8_block_scale(float max_abs);

/// Encodes values as `type` into out (encoded_value_bytes(type, n) bytes, little-endian).
/// int8 layout: the block scales (fp32) first, then one int8 per value. Values must be finite
/// (fp16 saturates nothing: |x| >= 65520 encodes as inf; the caller checks).
void encode_values(ValueType type, std::span<const float> values, std::span<uint8_t> out,
                   const RoundingStream& rs);

/// Decodes `out.size()` values from in. kCorruptData when in has the wrong size, a scale is
/// negative or not finite, or a decoded value is not finite.
Status decode_values(ValueType type, std::span<const uint8_t> in, std::span<float> out);

/// Replaces values by what decode_values(encode_values(values)) gives, without the bytes.
/// int8: per block, elements with |v| == block max become +-127 * scale (within 2^-15
/// relative of v, since the scale was rounded up by at most that); the others round
/// stochastically, q = floor(v / scale + u), u uniform in [0, 1) from rs: E[q * scale] = v,
/// |q * scale - v| < scale. fp16/bf16: round to nearest even. fp32: unchanged.
void round_trip_values(ValueType type, std::span<float> values, const RoundingStream& rs);

}  // namespace fedsilo::kernels
