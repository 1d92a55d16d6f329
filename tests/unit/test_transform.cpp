// The per-silo transform chain: the validator's order and needs rules, the chain a config asks
// for, and compression as a transform (bitwise the compressor it wraps, state kept).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "compression/compressor.h"
#include "config/config.h"
#include "fl/transform.h"

namespace fedsilo::fl {
namespace {

const AggregationSpec kDense{"dense-flat", "allreduce.algorithm = \"dense-flat\"",
                             {Need::kFloatSum, Need::kSparseSum, Need::kSharedIndexSet}};
const AggregationSpec kSparseOnly{"sparse-allgather", "allreduce.algorithm = \"sparse-allgather\"",
                                  {Need::kSparseSum, Need::kSharedIndexSet}};

TransformSpec spec(const std::string& setting, Stage first, Stage last, Need need) {
  return {setting.substr(0, setting.find('.')), setting, first, last, need};
}

const TransformSpec kCompress = spec("compression.method = \"topk\"", Stage::kAddResidual,
                                     Stage::kEncode, Need::kSparseSum);
const TransformSpec kClip = spec("privacy.clip = 1", Stage::kClip, Stage::kClip, Need::kFloatSum);
const TransformSpec kMask = spec("secure_aggregation.enabled = true", Stage::kMask, Stage::kMask,
                                 Need::kIntegerSum);

void expect_refused_naming(const Status& s, const std::string& a, const std::string& b) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(a), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(b), std::string::npos) << s.message();
}

TEST(TransformChain, AcceptsTheChainsEachAggregationCarries) {
  EXPECT_TRUE(validate_chain({}, kDense).ok());
  EXPECT_TRUE(validate_chain(std::vector{kCompress}, kDense).ok());
  EXPECT_TRUE(validate_chain(std::vector{kCompress}, kSparseOnly).ok());
  const TransformSpec clip_then_select = spec("compression.method = \"randk\"", Stage::kSelect,
                                              Stage::kEncode, Need::kSparseSum);
  EXPECT_TRUE(validate_chain(std::vector{kClip, clip_then_select}, kSparseOnly).ok());
}

TEST(TransformChain, RefusesTransformsOutOfStageOrderNamingBoth) {
  // Clipping after the error-feedback pass would put clipped-away mass into no residual.
  expect_refused_naming(validate_chain(std::vector{kCompress, kClip}, kDense),
                        "privacy.clip = 1", "compression.method = \"topk\"");
  // Two transforms on one stage.
  expect_refused_naming(validate_chain(std::vector{kClip, kClip}, kDense), "privacy.clip",
                        "cannot come after");
}

TEST(TransformChain, RefusesNeedsThatExcludeEachOtherNamingBoth) {
  // Per-silo top-k coordinates cannot be masked: the masks would not cancel.
  expect_refused_naming(validate_chain(std::vector{kCompress, kMask}, kDense),
                        "compression.method = \"topk\"", "secure_aggregation.enabled = true");
}

TEST(TransformChain, RefusesAnAggregationThatCannotCarryTheChainNamingBoth) {
  expect_refused_naming(validate_chain({}, kSparseOnly), "allreduce.algorithm = \"sparse-allgather\"",
                        "compression.method");
  const AggregationSpec nccl{"device-nccl", "device.reduce = \"nccl\"", {Need::kFloatSum}};
  expect_refused_naming(validate_chain(std::vector{kCompress}, nccl), "device.reduce = \"nccl\"",
                        "compression.method = \"topk\"");
  expect_refused_naming(validate_chain(std::vector{kMask}, kDense), "secure_aggregation.enabled",
                        "allreduce.algorithm = \"dense-flat\"");
}

TEST(TransformChain, ConfigAsksForCompressionAtLevelSiloOnly) {
  config::Config c;
  EXPECT_TRUE(configured_chain(c).empty());
  c.compression.method = compression::Method::kTopk;
  const auto chain = configured_chain(c);
  ASSERT_EQ(chain.size(), 1u);
  EXPECT_EQ(chain[0].name, "compression");
  EXPECT_EQ(chain[0].setting, "compression.method = \"topk\"");
  EXPECT_EQ(chain[0].first, Stage::kAddResidual);
  EXPECT_EQ(chain[0].need, Need::kSparseSum);
  c.compression.error_feedback = false;
  EXPECT_EQ(configured_chain(c)[0].first, Stage::kSelect);
  c.compression.method = compression::Method::kRandk;  // drawn from (seed, round): the same set on every silo
  EXPECT_EQ(configured_chain(c)[0].need, Need::kSharedIndexSet);
  c.compression.level = config::CompressionLevel::kNode;  // the leaders compress node sums inside the aggregation
  EXPECT_TRUE(configured_chain(c).empty());
  c.allreduce.algorithm = config::Algorithm::kSparseRd;
  EXPECT_EQ(configured_aggregation(c).name, "sparse-rd");
  c.device.reduce = config::DeviceReduce::kNccl;
  EXPECT_EQ(configured_aggregation(c).name, "device-nccl");
}

TEST(TransformChain, CompressionTransformIsTheCompressorAndKeepsItsState) {
  auto zc = compression::make_compression_config("topk", 0.1, "fp16", true);
  ASSERT_TRUE(zc.ok());
  auto a = compression::make_compressor(zc.value());
  auto b = compression::make_compressor(zc.value());
  ASSERT_TRUE(a.ok() && b.ok());
  const int64_t n = 1000;
  CompressionTransform t(std::move(a).value(), kCompress, n, 7);
  compression::CompressorState direct;
  direct.residual.assign(n, 0.0f);
  std::vector<float> update(n);
  for (uint32_t round = 1; round <= 3; ++round) {
    for (int64_t i = 0; i < n; ++i) update[i] = static_cast<float>((i * 37 + round * 11) % 101) - 50.0f;
    SiloUpdate u;
    u.dense = update;
    ASSERT_TRUE(t.apply(round, 2, u).ok());
    ASSERT_TRUE(u.is_sparse);
    auto want = b.value()->compress(update, direct, 7, round, 2);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(u.sparse.indices, want->indices);
    EXPECT_EQ(u.sparse.values, want->values);
  }
  const auto state = t.state();
  ASSERT_EQ(state.size(), 2u);
  EXPECT_EQ(state[0].first, "residual");
  EXPECT_EQ(*state[0].second, direct.residual);
  EXPECT_TRUE(state[1].second->empty());  // no momentum correction: no velocity
  SiloUpdate twice;
  twice.is_sparse = true;
  const Status st = t.apply(4, 2, twice);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("compression"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace fedsilo::fl
