// The Compressor facade: config parsing and validation messages, wire sizes, state handling,
// determinism, and errors for non-finite updates and out-of-range values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "compression/compressor.h"
#include "model/gpu_trainer.h"
#include "core/philox.h"

namespace fc = fedsilo::compression;
namespace fk = fedsilo::kernels;

namespace {

std::vector<float> normal_vec(int64_t n, uint32_t stream) {
  fedsilo::Philox rng(41, stream, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

void expect_invalid_naming(const fedsilo::Status& s, const std::string& key) {
  EXPECT_EQ(s.code(), fedsilo::StatusCode::kInvalidArgument) << s.to_string();
  EXPECT_NE(s.message().find(key), std::string::npos) << s.message();
}

TEST(CompressorConfig, ParsesEveryMethodAndValueType) {
  for (const char* m : {"none", "topk", "topk-sampled", "randk"}) {
    auto r = fc::parse_method(m);
    ASSERT_TRUE(r.ok()) << m;
    EXPECT_STREQ(fc::method_name(*r), m);
  }
  for (const char* t : {"fp32", "fp16", "bf16", "int8"}) {
    auto r = fc::parse_value_type(t);
    ASSERT_TRUE(r.ok()) << t;
    EXPECT_STREQ(fc::value_type_name(*r), t);
  }
  auto c = fc::make_compression_config("topk", 0.01, "fp16", true, 0.9);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->method, fc::Method::kTopk);
  EXPECT_EQ(c->value_type, fk::ValueType::kFp16);
}

TEST(CompressorConfig, RejectsBadValuesNamingTheSetting) {
  expect_invalid_naming(fc::make_compression_config("top-k", 0.01, "fp32", true).status(),
                        "compression.method");
  expect_invalid_naming(fc::make_compression_config("topk", 0.0, "fp32", true).status(),
                        "compression.density");
  expect_invalid_naming(fc::make_compression_config("topk", 1.5, "fp32", true).status(),
                        "compression.density");
  expect_invalid_naming(fc::make_compression_config("topk", std::nan(""), "fp32", true).status(),
                        "compression.density");
  expect_invalid_naming(fc::make_compression_config("topk", 0.1, "float16", true).status(),
                        "compression.value_type");
  const auto s = fc::make_compression_config("topk", 0.1, "fp32", false, 0.9).status();
  expect_invalid_naming(s, "compression.momentum_correction");
  EXPECT_NE(s.message().find("compression.error_feedback"), std::string::npos);
  expect_invalid_naming(fc::make_compression_config("topk", 0.1, "fp32", true, 1.0).status(),
                        "compression.momentum_correction");
  EXPECT_FALSE(fc::make_compressor(fc::CompressionConfig{.density = -1}).ok());
}

TEST(CompressorConfig, CudaCompressorNeedsACudaBuildAndADevice) {
  auto cfg = fc::make_compression_config("topk", 0.01, "fp32", true);
  ASSERT_TRUE(cfg.ok());
  if (fedsilo::model::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present (tests/gpu)";
  auto c = fc::make_cuda_compressor(cfg.value(), 0);
  ASSERT_FALSE(c.ok());
  if (!fedsilo::model::cuda_built()) {
    EXPECT_EQ(c.status().code(), fedsilo::StatusCode::kInvalidArgument);
    EXPECT_NE(c.status().message().find("built without CUDA"), std::string::npos);
  } else {
    EXPECT_NE(c.status().message().find("cuda"), std::string::npos) << c.status().message();
  }
  EXPECT_FALSE(fc::make_cuda_compressor(fc::CompressionConfig{.density = -1}, 0).ok());
}

TEST(CompressorConfig, ReportsWireBytesAndSelectedCounts) {
  EXPECT_EQ(fc::value_wire_bytes(fk::ValueType::kFp32, 1000), 4000);
  EXPECT_EQ(fc::value_wire_bytes(fk::ValueType::kFp16, 1000), 2000);
  EXPECT_EQ(fc::value_wire_bytes(fk::ValueType::kBf16, 1000), 2000);
  EXPECT_EQ(fc::value_wire_bytes(fk::ValueType::kInt8, 1000), 1000 + 4 * 4);
  fc::CompressionConfig c{.method = fc::Method::kTopk, .density = 0.01};
  EXPECT_EQ(fc::selected_count(c, 1000000), 10000);
  EXPECT_EQ(fc::selected_count(c, 10), 1);
  EXPECT_EQ(fc::selected_count(c, 0), 0);
  c.method = fc::Method::kNone;
  EXPECT_EQ(fc::selected_count(c, 10), 10);
}

TEST(Compressor, CompressesWithFeedbackAndIsDeterministic) {
  const auto u = normal_vec(50000, 1);
  for (const char* m : {"none", "topk", "topk-sampled", "randk"}) {
    auto cfg = fc::make_compression_config(m, 0.01, "int8", true, 0.5);
    ASSERT_TRUE(cfg.ok());
    auto comp = fc::make_compressor(*cfg);
    ASSERT_TRUE(comp.ok());
    fc::CompressorState s1, s2;
    for (uint32_t round = 0; round < 3; ++round) {
      auto a = (*comp)->compress(u, s1, 7, round, 2);
      auto b = (*comp)->compress(u, s2, 7, round, 2);
      ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string();
      EXPECT_EQ(a->indices, b->indices) << m;
      EXPECT_EQ(a->values, b->values) << m;
      EXPECT_EQ(a->length, 50000);
      const int64_t want = std::string(m) == "none" ? 50000 : 500;
      EXPECT_NEAR(static_cast<double>(a->nnz()), static_cast<double>(want), 0.01 * want) << m;
    }
    EXPECT_EQ(s1.residual, s2.residual);
    EXPECT_EQ(s1.velocity.size(), 50000u);
  }
}

TEST(Compressor, CompressSumEqualsCompressingTheExplicitSumRoundAfterRound) {
  const int64_t n = 30001;
  const auto own = normal_vec(n, 21), a1 = normal_vec(n, 22), a2 = normal_vec(n, 23);
  std::vector<float> sum = own;
  for (int64_t i = 0; i < n; ++i) sum[i] = (sum[i] + a1[i]) + a2[i];
  const std::vector<const float*> addends = {a1.data(), a2.data()};
  for (const char* m : {"none", "topk", "topk-sampled", "randk"}) {
    for (const bool ef : {true, false}) {
      auto cfg = fc::make_compression_config(m, 0.02, "fp16", ef, ef ? 0.5 : 0.0);
      ASSERT_TRUE(cfg.ok()) << cfg.status().to_string();
      auto comp = fc::make_compressor(*cfg);
      ASSERT_TRUE(comp.ok());
      fc::CompressorState fused, plain;
      for (uint32_t round = 0; round < 3; ++round) {
        auto a = (*comp)->compress_sum(own, addends, fused, 7, round, 2);
        auto b = (*comp)->compress(sum, plain, 7, round, 2);
        ASSERT_TRUE(a.ok() && b.ok()) << a.status().to_string();
        EXPECT_EQ(a->indices, b->indices) << m << " ef " << ef;
        EXPECT_EQ(a->values, b->values) << m << " ef " << ef;
      }
      EXPECT_EQ(fused.residual, plain.residual) << m;
      EXPECT_EQ(fused.velocity, plain.velocity) << m;
      // No addends: compress itself.
      fc::CompressorState s1, s2;
      auto c = (*comp)->compress_sum(own, {}, s1, 7, 0, 2);
      auto d = (*comp)->compress(own, s2, 7, 0, 2);
      ASSERT_TRUE(c.ok() && d.ok());
      EXPECT_EQ(c->indices, d->indices);
      EXPECT_EQ(c->values, d->values);
    }
  }
}

TEST(Compressor, RandkPicksTheSameSetOnEverySilo) {
  auto comp = fc::make_compressor({.method = fc::Method::kRandk, .density = 0.02});
  ASSERT_TRUE(comp.ok());
  fc::CompressorState a, b;
  auto ra = (*comp)->compress(normal_vec(10000, 2), a, 5, 3, 0);
  auto rb = (*comp)->compress(normal_vec(10000, 3), b, 5, 3, 1);
  ASSERT_TRUE(ra.ok() && rb.ok());
  EXPECT_EQ(ra->indices, rb->indices);
}

TEST(Compressor, FailsOnNonFiniteUpdateAndFp16Overflow) {
  auto comp = fc::make_compressor({.method = fc::Method::kTopk,
                                   .density = 0.1,
                                   .value_type = fk::ValueType::kFp16,
                                   .error_feedback = true});
  ASSERT_TRUE(comp.ok());
  auto u = normal_vec(1000, 4);
  u[3] = std::numeric_limits<float>::infinity();
  fc::CompressorState s;
  EXPECT_EQ((*comp)->compress(u, s, 1, 1, 1).status().code(), fedsilo::StatusCode::kDiverged);
  u[3] = 1e5f;
  fc::CompressorState s2;
  const auto r = (*comp)->compress(u, s2, 1, 1, 1);
  EXPECT_EQ(r.status().code(), fedsilo::StatusCode::kDiverged);
  EXPECT_NE(r.status().message().find("compression.value_type"), std::string::npos);
}

TEST(Compressor, RejectsStateOfAnotherLengthAndHugeSiloIds) {
  auto comp =
      fc::make_compressor({.method = fc::Method::kTopk, .density = 0.1, .error_feedback = true});
  ASSERT_TRUE(comp.ok());
  fc::CompressorState s;
  s.residual.assign(999, 0.0f);
  EXPECT_EQ((*comp)->compress(normal_vec(1000, 5), s, 1, 1, 1).status().code(),
            fedsilo::StatusCode::kInvalidArgument);
  fc::CompressorState ok_state;
  EXPECT_EQ((*comp)->compress(normal_vec(1000, 5), ok_state, 1, 1, 1u << 30).status().code(),
            fedsilo::StatusCode::kInvalidArgument);
}

}  // namespace
