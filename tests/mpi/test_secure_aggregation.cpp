// fl::SecureAggregation on 1-8 ranks: the decoded masked sum equals the plain fixed-point sum of
// the silos that trained, bit for bit (partial participation included), the weight sum too;
// fewer than 3 silos are refused on every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/philox.h"
#include "fl/secure_aggregation.h"
#include "mpi/comm.h"
#include "secagg/masking.h"

namespace fedsilo::fl {
namespace {

config::Config secure_config() {
  config::Config c;
  c.run.seed = 5;
  c.secure_aggregation.enabled = true;
  c.secure_aggregation.range = 2.0;
  c.secure_aggregation.bits = 18;
  c.secure_aggregation.max_weight = 1000.0;
  return c;
}

// Silo q's local parameters in `round`: the global ones plus values in [-3, 3] (some clipped).
float delta(int q, uint32_t round, size_t i) {
  return static_cast<float>(static_cast<int>((i * 7919 + q * 104729 + round * 31) % 6001) - 3000) / 1000.0f;
}

TEST(SecureAggregation, DecodedSumIsTheFixedPointSumOfTheSilosThatTrained) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), me = world->rank();
  const config::Config cfg = secure_config();
  const int64_t n = 1001;
  auto agg = SecureAggregation::create(cfg, world.value(), n);
  if (P < 3) {
    ASSERT_FALSE(agg.ok());
    EXPECT_NE(agg.status().message().find("at least 3 silos"), std::string::npos) << agg.status().message();
    return;
  }
  ASSERT_TRUE(agg.ok()) << agg.status().message();
  const secagg::FixedPoint fp{cfg.secure_aggregation.range, cfg.secure_aggregation.bits};
  const secagg::FixedPoint weight_fp{std::max(fp.range, 1.0), fp.bits};
  std::vector<float> global(n);
  for (int64_t i = 0; i < n; ++i) global[i] = 0.25f * static_cast<float>(i % 8);
  for (uint32_t round = 1; round <= 3; ++round) {
    // With 4 or more ranks the last one sits a round out (partial participation).
    const auto trains = [&](int q) { return P == 3 || q != P - 1 || round == 2; };
    std::vector<float> local(n);
    for (int64_t i = 0; i < n; ++i) local[i] = global[i] + delta(me, round, i);
    const float weight = 100.0f * static_cast<float>(me + 1);
    ASSERT_TRUE((*agg)->contribute(local, global, weight, trains(me)).ok());
    ExchangeStats stats;
    auto got = (*agg)->combine(round, trains(me), stats);
    ASSERT_TRUE(got.ok()) << got.status().message();

    // The plain fixed-point sum: every silo's code, as that silo made it, summed modulo 2^32.
    std::vector<uint32_t> sum(n, 0u);
    uint32_t weight_code_sum = 0;
    for (int q = 0; q < P; ++q) {
      if (!trains(q)) continue;
      const auto w = static_cast<float>(100.0 * (q + 1) / cfg.secure_aggregation.max_weight);
      std::vector<float> scaled(n);
      for (int64_t i = 0; i < n; ++i) scaled[i] = w * ((global[i] + delta(q, round, i)) - global[i]);
      std::vector<uint32_t> random(n + 1), code(n + 1);
      Philox rng(cfg.run.seed, round, static_cast<uint32_t>(q), RngPurpose::kSecureRounding);
      for (auto& r : random) r = rng.next_u32();
      secagg::encode(scaled, fp, std::span<const uint32_t>(random.data(), n), std::span<uint32_t>(code.data(), n));
      const float wv[1] = {w};
      secagg::encode(wv, weight_fp, std::span<const uint32_t>(random.data() + n, 1),
                     std::span<uint32_t>(code.data() + n, 1));
      for (int64_t i = 0; i < n; ++i) sum[i] += code[i];
      weight_code_sum += code[n];
    }
    std::vector<float> want(n);
    secagg::decode(sum, fp, want);
    float want_weight[1];
    const uint32_t wc[1] = {weight_code_sum};
    secagg::decode(wc, weight_fp, want_weight);
    ASSERT_EQ(got->sum.size(), static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got->sum[i], want[i]) << "round " << round << ", i " << i;
    EXPECT_EQ(got->weight_sum, static_cast<double>(want_weight[0])) << "round " << round;
    EXPECT_GT(stats.bytes_sent(), 0);
  }
}

TEST(SecureAggregation, FewerThanThreeTrainedSilosAreRefusedOnEveryRank) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "needs 3 ranks";
  const int64_t n = 16;
  auto agg = SecureAggregation::create(secure_config(), world.value(), n);
  ASSERT_TRUE(agg.ok()) << agg.status().message();
  const bool trains = world->rank() < 2;
  std::vector<float> local(n, 1.0f), global(n, 0.0f);
  ASSERT_TRUE((*agg)->contribute(local, global, 10.0f, trains).ok());
  ExchangeStats stats;
  auto got = (*agg)->combine(7, trains, stats);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("round 7 had 2"), std::string::npos) << got.status().message();
}

}  // namespace
}  // namespace fedsilo::fl
