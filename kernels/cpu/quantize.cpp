// Value quantizers: fp16/bf16 conversions written out in integer arithmetic (round to nearest
// even), int8 with per-block scales and Philox-driven stochastic rounding.
//
// Cost: these run on the k selected values only (1% of 2^24 = 168 K values), so they are a
// small part of a compression step; int8 spends ~30 cycles per Philox block of 4 random words,
// ~8 cycles a value, ~0.5 ms for 168 K values on one core.
#include "kernels/cpu/quantize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "core/philox.h"

namespace fedsilo::kernels {

uint16_t fp32_to_fp16(float x) {
  uint32_t a = std::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((a >> 16) & 0x8000u);
  a &= 0x7FFFFFFFu;
  if (a > 0x7F800000u) {  // NaN: keep the top payload bits, force quiet
    return static_cast<uint16_t>(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  }
  // 65520 = 0x477FF000 is the midpoint between 65504 and 2^16: ties go to even, which is 2^16,
  // which is inf. Inf itself lands here too.
  if (a >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);
  if (a >= 0x38800000u) {  // >= 2^-14: a normal half
    // Round the 23-bit mantissa to 10 bits: add 0xFFF plus the bit that becomes the last kept
    // one (ties to even); a carry out of the mantissa bumps the exponent, which is right.
    a += 0xFFFu + ((a >> 13) & 1u);
    a -= (127u - 15u) << 23;  // rebias the exponent
    return static_cast<uint16_t>(sign | (a >> 13));
  }
  // Below 2^-14: the half is a multiple of 2^-24. Adding 0.5 puts |x| in the mantissa of a
  // float whose ulp is 2^-24, so the FPU's own round-to-nearest-even does the rounding
  // (|x| < 2^-14 keeps the sum < 0.5 + 2^-14, no exponent change; 1024 * 2^-24 = 2^-14 comes
  // out as 0x400, the smallest normal half, also right).
  const float t = std::bit_cast<float>(a) + 0.5f;
  return static_cast<uint16_t>(sign | (std::bit_cast<uint32_t>(t) - 0x3F000000u));
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16;
  const uint32_t e = (h >> 10) & 0x1Fu;
  const uint32_t m = h & 0x3FFu;
  if (e == 0x1Fu) return std::bit_cast<float>(sign | 0x7F800000u | (m << 13));  // inf, NaN
  if (e == 0) {  // zero or subnormal: m * 2^-24, exact in fp32
    const float v = static_cast<float>(m) * 0x1p-24f;
    return sign != 0 ? -v : v;
  }
  return std::bit_cast<float>(sign | ((e + 127u - 15u) << 23) | (m << 13));
}

uint16_t fp32_to_bf16(float x) {
  const uint32_t a = std::bit_cast<uint32_t>(x);
  if ((a & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((a >> 16) | 0x0040u);
  // Same exponent field as fp32: only the mantissa is rounded (ties to even); the carry turns
  // values past the largest bf16 into inf and moves subnormals up to normals correctly.
  return static_cast<uint16_t>((a + 0x7FFFu + ((a >> 16) & 1u)) >> 16);
}

int64_t encoded_value_bytes(ValueType type, int64_t count) {
  if (count <= 0) return 0;
  switch (type) {
    case ValueType::kFp32:
      return 4 * count;
    case ValueType::kFp16:
    case ValueType::kBf16:
      return 2 * count;
    case ValueType::kInt8:
      return count + 4 * ((count + kInt8BlockSize - 1) / kInt8BlockSize);
  }
  return 0;
}

float int8_block_scale(float max_abs) {
  if (!(max_abs >= kInt8FlushBelow)) return 0.0f;
  // max_abs / 127 rounded up to fp32 (the double quotient is within 2^-53 of exact, and a
  // float that is >= it is >= the exact quotient too unless they are equal), then up to 16
  // significant bits by clearing the low 8 mantissa bits with a carry.
  const double q = static_cast<double>(max_abs) / 127.0;
  float s = static_cast<float>(q);
  if (static_cast<double>(s) < q) s = std::nextafter(s, INFINITY);
  // s >= 2^-100 / 127 is a normal float, so it has all 24 significant bits to round.
  uint32_t bits = std::bit_cast<uint32_t>(s);
  if ((bits & 0xFFu) != 0) bits = (bits | 0xFFu) + 1u;
  return std::bit_cast<float>(bits);
}

namespace {

// The 32-bit random word of encoded position j (see RoundingStream), for a block of
// positions [j0, j0 + len), len a multiple of 4 or the tail.
void rounding_words(const RoundingStream& rs, int64_t j0, int64_t len, uint32_t* out) {
  const std::array<uint32_t, 2> key = {static_cast<uint32_t>(rs.seed),
                                       static_cast<uint32_t>(rs.seed >> 32)};
  const uint32_t silo = rs.silo | kRoundingStreamBit;
  const auto purpose = static_cast<uint32_t>(RngPurpose::kCompression);
  for (int64_t j = j0; j < j0 + len;) {
    const auto block = philox4x32_10(
        {static_cast<uint32_t>(static_cast<uint64_t>(j) >> 2), rs.round, silo, purpose}, key);
    for (int lane = static_cast<int>(j & 3); lane < 4 && j < j0 + len; ++lane, ++j) {
      out[j - j0] = block[static_cast<size_t>(lane)];
    }
  }
}

// Quantizes one int8 block (len <= kInt8BlockSize values at encoded positions j0..) to q[],
// returns the scale.
float quantize_int8_block(const float* v, int64_t len, int64_t j0, const RoundingStream& rs,
                          int8_t* q) {
  float max_abs = 0.0f;
  for (int64_t i = 0; i < len; ++i) max_abs = std::max(max_abs, std::abs(v[i]));
  const float scale = int8_block_scale(max_abs);
  if (scale == 0.0f) {
    std::fill(q, q + len, int8_t{0});
    return 0.0f;
  }
  std::array<uint32_t, kInt8BlockSize> rnd;
  rounding_words(rs, j0, len, rnd.data());
  const double inv = 1.0 / static_cast<double>(scale);
  for (int64_t i = 0; i < len; ++i) {
    const float a = std::abs(v[i]);
    double t;
    if (a == max_abs) {
      // The element that sets the scale goes to +-127 deterministically: its |v| / scale is
      // within 2^-15 of 127, and pinning it keeps 127 * scale the block max after decoding,
      // which is what makes decode -> encode reproduce the same bytes.
      t = 127.0;
    } else {
      // u in [0, 1) with 32 bits; x + u and floor are exact in double (|x| <= 127 needs 7
      // integer bits), so E[floor(x + u)] = x up to 2^-32.
      const double x = static_cast<double>(a) * inv;
      t = std::floor(x + static_cast<double>(rnd[static_cast<size_t>(i)]) * 0x1p-32);
      t = std::min(t, 127.0);
    }
    q[i] = static_cast<int8_t>(v[i] < 0.0f ? -t : t);
  }
  return scale;
}

}  // namespace

void encode_values(ValueType type, std::span<const float> values, std::span<uint8_t> out,
                   const RoundingStream& rs) {
  const auto n = static_cast<int64_t>(values.size());
  uint8_t* o = out.data();
  switch (type) {
    case ValueType::kFp32:
      std::memcpy(o, values.data(), static_cast<size_t>(n) * 4);
      return;
    case ValueType::kFp16:
    case ValueType::kBf16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h =
            type == ValueType::kFp16 ? fp32_to_fp16(values[i]) : fp32_to_bf16(values[i]);
        std::memcpy(o + 2 * i, &h, 2);
      }
      return;
    case ValueType::kInt8: {
      const int64_t blocks = (n + kInt8BlockSize - 1) / kInt8BlockSize;
      auto* q = reinterpret_cast<int8_t*>(o + 4 * blocks);
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t j0 = b * kInt8BlockSize;
        const int64_t len = std::min<int64_t>(kInt8BlockSize, n - j0);
        const float scale = quantize_int8_block(values.data() + j0, len, j0, rs, q + j0);
        std::memcpy(o + 4 * b, &scale, 4);
      }
      return;
    }
  }
}

Status decode_values(ValueType type, std::span<const uint8_t> in, std::span<float> out) {
  const auto n = static_cast<int64_t>(out.size());
  const int64_t want = encoded_value_bytes(type, n);
  if (static_cast<int64_t>(in.size()) != want) {
    return corrupt_data("value payload of " + std::to_string(in.size()) + " bytes, expected " +
                        std::to_string(want) + " for " + std::to_string(n) + " values");
  }
  const uint8_t* p = in.data();
  switch (type) {
    case ValueType::kFp32:
      std::memcpy(out.data(), p, static_cast<size_t>(n) * 4);
      break;
    case ValueType::kFp16:
    case ValueType::kBf16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = type == ValueType::kFp16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      break;
    case ValueType::kInt8: {
      const int64_t blocks = (n + kInt8BlockSize - 1) / kInt8BlockSize;
      const auto* q = reinterpret_cast<const int8_t*>(p + 4 * blocks);
      for (int64_t b = 0; b < blocks; ++b) {
        float scale;
        std::memcpy(&scale, p + 4 * b, 4);
        if (!(scale >= 0.0f && scale <= std::numeric_limits<float>::max())) {
          return corrupt_data("int8 block " + std::to_string(b) + " has scale " +
                              std::to_string(scale));
        }
        const int64_t j0 = b * kInt8BlockSize;
        const int64_t j1 = std::min<int64_t>(n, j0 + kInt8BlockSize);
        for (int64_t j = j0; j < j1; ++j) out[j] = static_cast<float>(q[j]) * scale;
      }
      break;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) {
      return corrupt_data("decoded value " + std::to_string(i) + " is not finite");
    }
  }
  return Status::ok_status();
}

void round_trip_values(ValueType type, std::span<float> values, const RoundingStream& rs) {
  const auto n = static_cast<int64_t>(values.size());
  switch (type) {
    case ValueType::kFp32:
      return;
    case ValueType::kFp16:
      for (auto& v : values) v = fp16_to_fp32(fp32_to_fp16(v));
      return;
    case ValueType::kBf16:
      for (auto& v : values) v = bf16_to_fp32(fp32_to_bf16(v));
      return;
    case ValueType::kInt8: {
      std::array<int8_t, kInt8BlockSize> q;
      for (int64_t j0 = 0; j0 < n; j0 += kInt8BlockSize) {
        const int64_t len = std::min<int64_t>(kInt8BlockSize, n - j0);
        const float scale = quantize_int8_block(values.data() + j0, len, j0, rs, q.data());
        for (int64_t i = 0; i < len; ++i) {
          values[j0 + i] = static_cast<float>(q[static_cast<size_t>(i)]) * scale;
        }
      }
      return;
    }
  }
}

}  // namespace fedsilo::kernels
