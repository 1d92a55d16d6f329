// Value quantizers: fp16/bf16 conversions against an independent double-arithmetic rounding
// reference and on edge values; int8 error bound, unbiased stochastic rounding, determinism,
// byte encoding round trips and rejection of malformed payloads.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/quantize.h"

namespace fk = fedsilo::kernels;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Round to a binary format with `mant` explicit mantissa bits, minimum normal exponent `emin`,
// and largest finite value `max`, by scaling in double and nearbyint (ties to even).
double reference_round(float x, int mant, int emin, double max) {
  if (x == 0.0f) return x;
  const double a = std::abs(static_cast<double>(x));
  const int e = std::max(std::ilogb(a), emin);
  const double ulp = std::ldexp(1.0, e - mant);
  double r = std::nearbyint(a / ulp) * ulp;
  // Past max by at least half an ulp of the top binade: inf.
  if (r > max) r = std::numeric_limits<double>::infinity();
  return std::copysign(r, static_cast<double>(x));
}

float fp16_rt(float x) {
  return fk::fp16_to_fp32(fk::fp32_to_fp16(x));
}
float bf16_rt(float x) {
  return fk::bf16_to_fp32(fk::fp32_to_bf16(x));
}

std::vector<float> wide_random(int n, uint32_t stream) {
  // Log-uniform magnitudes over 2^-30 .. 2^18 with random signs: covers subnormal halves,
  // normal halves and half overflow.
  fedsilo::Philox rng(21, stream, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    const double m = std::ldexp(1.0, static_cast<int>(rng.below(48)) - 30) * (1.0 + rng.uniform());
    x = static_cast<float>(rng.below(2) ? -m : m);
  }
  return v;
}

TEST(Fp16, MatchesRoundToNearestEvenReferenceOnRandomValues) {
  int mismatches = 0;
  for (const float x : wide_random(200000, 1)) {
    const double want = reference_round(x, 10, -14, 65504.0);
    const float got = fp16_rt(x);
    if (static_cast<double>(got) != want && ++mismatches <= 5) {
      ADD_FAILURE() << "x " << x << " got " << got << " want " << want;
    }
    if (std::abs(x) >= 0x1p-14f && std::abs(x) <= 65504.0f) {
      EXPECT_LE(std::abs(got - x), 0x1p-11f * std::abs(x));
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Fp16, RoundTripsEveryHalfExactly) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto hh = static_cast<uint16_t>(h);
    const float f = fk::fp16_to_fp32(hh);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(fk::fp16_to_fp32(fk::fp32_to_fp16(f)))) << h;
    } else {
      EXPECT_EQ(fk::fp32_to_fp16(f), hh) << h;
    }
  }
}

TEST(Fp16, HandlesEdgeValues) {
  EXPECT_EQ(fp16_rt(65504.0f), 65504.0f);
  EXPECT_EQ(fp16_rt(65519.99f), 65504.0f);
  EXPECT_EQ(fp16_rt(65520.0f), kInf);  // the tie rounds to even, which is 2^16: overflow
  EXPECT_EQ(fp16_rt(-1e9f), -kInf);
  EXPECT_EQ(fp16_rt(kInf), kInf);
  EXPECT_TRUE(std::isnan(fp16_rt(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(fp16_rt(0x1p-24f), 0x1p-24f);  // smallest subnormal half
  EXPECT_EQ(fp16_rt(0x1p-25f), 0.0f);      // tie between 0 and 2^-24: even is 0
  EXPECT_EQ(fp16_rt(0x1.8p-25f), 0x1p-24f);
  EXPECT_EQ(fp16_rt(0x1.ff8p-15f), 0x1.ff8p-15f);  // largest subnormal half
  EXPECT_EQ(fp16_rt(0x1.ffcp-15f), 0x1p-14f);      // the tie above it rounds up into the normals
  EXPECT_EQ(fp16_rt(std::numeric_limits<float>::denorm_min()), 0.0f);
  EXPECT_TRUE(std::signbit(fp16_rt(-0.0f)));
  EXPECT_EQ(fp16_rt(1.0f + 0x1p-11f), 1.0f);              // tie to even (down)
  EXPECT_EQ(fp16_rt(1.0f + 0x1.8p-10f), 1.0f + 0x1p-9f);  // tie to even (up)
}

TEST(Bf16, MatchesRoundToNearestEvenReferenceOnRandomValues) {
  const double max = std::ldexp(255.0, 120);  // 0x1.fep127
  int mismatches = 0;
  fedsilo::Philox rng(4, 0, 0, fedsilo::RngPurpose::kNoise);
  for (int i = 0; i < 200000; ++i) {
    // Random bit patterns: every exponent including subnormals; NaNs skipped.
    const float x = std::bit_cast<float>(rng.next_u32());
    if (std::isnan(x) || std::isinf(x)) continue;
    const double want = reference_round(x, 7, -126, max);
    const float got = bf16_rt(x);
    if (static_cast<double>(got) != want && ++mismatches <= 5) {
      ADD_FAILURE() << "x " << x << " got " << got << " want " << want;
    }
    if (std::abs(x) >= std::numeric_limits<float>::min() && std::abs(got) <= max) {
      EXPECT_LE(std::abs(got - x), 0x1p-8f * std::abs(x));
    }
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Bf16, HandlesEdgeValues) {
  EXPECT_EQ(bf16_rt(std::numeric_limits<float>::max()), kInf);
  EXPECT_EQ(bf16_rt(0x1.fep127f), 0x1.fep127f);
  EXPECT_EQ(bf16_rt(-kInf), -kInf);
  EXPECT_TRUE(std::isnan(bf16_rt(std::numeric_limits<float>::quiet_NaN())));
  // A NaN whose payload sits only in the low 16 bits must not truncate to inf.
  EXPECT_TRUE(std::isnan(bf16_rt(std::bit_cast<float>(0x7F800001u))));
  EXPECT_EQ(bf16_rt(0x1p-133f), 0x1p-133f);  // subnormal, representable
  EXPECT_EQ(bf16_rt(1.0f + 0x1p-8f), 1.0f);  // tie to even
}

std::vector<float> normal_values(int n, uint32_t stream, double sd = 1.0) {
  fedsilo::Philox rng(8, stream, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(sd * rng.normal());
  return v;
}

float block_max(const std::vector<float>& v, size_t b) {
  float m = 0.0f;
  for (size_t i = b * fk::kInt8BlockSize; i < std::min(v.size(), (b + 1) * fk::kInt8BlockSize); ++i)
    m = std::max(m, std::abs(v[i]));
  return m;
}

TEST(Int8, StaysWithinOneScalePerElement) {
  const auto v = normal_values(10000, 1, 3.0);  // 39 full blocks and a tail of 16
  auto q = v;
  fk::round_trip_values(fk::ValueType::kInt8, q, {1, 2, 3});
  for (size_t i = 0; i < v.size(); ++i) {
    const float m = block_max(v, i / fk::kInt8BlockSize);
    const float scale = fk::int8_block_scale(m);
    EXPECT_GE(scale, m / 127.0f);
    EXPECT_LE(scale, m / 127.0f * (1.0f + 0x1p-14f));
    EXPECT_LT(std::abs(q[i] - v[i]), scale) << i;
    // On the grid: an integer multiple of the scale in [-127, 127].
    const float steps = q[i] / scale;
    EXPECT_EQ(steps, std::round(steps)) << i;
    EXPECT_LE(std::abs(steps), 127.0f);
  }
}

TEST(Int8, StochasticRoundingIsUnbiasedOverSeeds) {
  // 1000 seeds; each element's mean decoded value must sit within 5 standard errors of the
  // input. One value sits exactly between grid points (p = 0.5, worst case variance).
  std::vector<float> v = normal_values(256, 2);
  const float scale = fk::int8_block_scale(block_max(v, 0));
  v[5] = 10.5f * scale;
  constexpr int kSeeds = 1000;
  std::vector<double> sum(v.size(), 0.0);
  for (int s = 0; s < kSeeds; ++s) {
    auto q = v;
    fk::round_trip_values(fk::ValueType::kInt8, q, {static_cast<uint64_t>(s), 0, 0});
    for (size_t i = 0; i < v.size(); ++i) sum[i] += q[i];
  }
  int outliers = 0;
  double total_bias = 0.0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double x = v[i] / scale, p = x - std::floor(x);
    const double se = scale * std::sqrt(p * (1 - p) / kSeeds) + 1e-12;
    const double mean = sum[i] / kSeeds;
    total_bias += mean - v[i];
    if (std::abs(mean - v[i]) > 5 * se) ++outliers;
  }
  EXPECT_EQ(outliers, 0);
  // Summed over 256 elements the bias averages out: within 5 SE of the sum (<= 8 scale / sqrt).
  EXPECT_LT(std::abs(total_bias), 5 * scale * std::sqrt(256.0 * 0.25 / kSeeds));
}

TEST(Int8, IsDeterministicForASeedAndVariesAcrossSeeds) {
  const auto v = normal_values(1000, 3);
  auto a = v, b = v, c = v, d = v;
  fk::round_trip_values(fk::ValueType::kInt8, a, {5, 6, 7});
  fk::round_trip_values(fk::ValueType::kInt8, b, {5, 6, 7});
  fk::round_trip_values(fk::ValueType::kInt8, c, {5, 6, 8});
  fk::round_trip_values(fk::ValueType::kInt8, d, {5, 7, 7});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
}

TEST(Int8, HandlesZeroBlocksAndTinyValues) {
  std::vector<float> v(300, 0.0f);
  v[298] = 0x1p-101f;  // block 1's max is below kInt8FlushBelow: the block flushes to zero
  v[299] = -0x1p-102f;
  v[10] = 0x1p-90f;  // block 0's max is tiny but kept: a normal scale, exact max
  v[11] = 0x1p-97f;
  auto q = v;
  fk::round_trip_values(fk::ValueType::kInt8, q, {1, 1, 1});
  for (int i = 0; i < 300; ++i) {
    if (i != 10 && i != 11) {
      EXPECT_EQ(q[i], 0.0f) << i;
    }
  }
  EXPECT_NEAR(q[10], v[10], v[10] * 0x1p-15f);
  EXPECT_LT(std::abs(q[11] - v[11]), fk::int8_block_scale(v[10]));
}

TEST(QuantizeEncoding, DecodeOfEncodeEqualsRoundTripForEveryType) {
  const auto v = normal_values(1000, 4, 50.0);
  const fk::RoundingStream rs{11, 12, 13};
  for (const auto t :
       {fk::ValueType::kFp32, fk::ValueType::kFp16, fk::ValueType::kBf16, fk::ValueType::kInt8}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(fk::encoded_value_bytes(t, 1000)));
    fk::encode_values(t, v, bytes, rs);
    std::vector<float> dec(v.size());
    ASSERT_TRUE(fk::decode_values(t, bytes, dec).ok());
    auto rt = v;
    fk::round_trip_values(t, rt, rs);
    EXPECT_EQ(dec, rt) << static_cast<int>(t);
    // The receiver's values re-encode to the same bytes (what the wire encoder relies on when
    // it is handed a compressor's already-rounded output), with any stream.
    std::vector<uint8_t> again(bytes.size());
    fk::encode_values(t, dec, again, {99, 98, 97});
    EXPECT_EQ(again, bytes) << static_cast<int>(t);
  }
}

TEST(QuantizeEncoding, ReportsSizes) {
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kFp32, 10), 40);
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kFp16, 10), 20);
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kBf16, 10), 20);
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kInt8, 256), 256 + 4);
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kInt8, 257), 257 + 8);
  EXPECT_EQ(fk::encoded_value_bytes(fk::ValueType::kInt8, 0), 0);
}

TEST(QuantizeEncoding, RejectsMalformedPayloads) {
  std::vector<float> out(4);
  std::vector<uint8_t> short_bytes(7);
  EXPECT_EQ(fk::decode_values(fk::ValueType::kFp16, short_bytes, out).code(),
            fedsilo::StatusCode::kCorruptData);
  std::vector<uint8_t> int8(8, 0);
  const float bad_scale = -1.0f;
  std::memcpy(int8.data(), &bad_scale, 4);
  EXPECT_EQ(fk::decode_values(fk::ValueType::kInt8, int8, out).code(),
            fedsilo::StatusCode::kCorruptData);
  const float nan_scale = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(int8.data(), &nan_scale, 4);
  EXPECT_FALSE(fk::decode_values(fk::ValueType::kInt8, int8, out).ok());
  std::vector<uint8_t> half_inf(8, 0);
  const uint16_t inf_half = 0x7C00;
  std::memcpy(half_inf.data() + 2, &inf_half, 2);
  EXPECT_FALSE(fk::decode_values(fk::ValueType::kFp16, half_inf, out).ok());
}

}  // namespace
