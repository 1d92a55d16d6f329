// Strategies: the seeded sampler and the FedAvg server step.
#include <gtest/gtest.h>

#include <set>

#include "fl/strategy.h"

namespace fedsilo::fl {
namespace {

TEST(Sampler, FractionOneSamplesEverySilo) {
  FedAvg s(1, 1.0);
  auto plan = s.configure_round(3, 10);
  EXPECT_EQ(plan.sampled, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(Sampler, FractionPicksDistinctSortedSilosDeterministically) {
  FedAvg a(5, 0.3), b(5, 0.3), c(6, 0.3);
  std::set<std::vector<int>> seen;
  for (int r = 1; r <= 20; ++r) {
    auto pa = a.configure_round(r, 10);
    ASSERT_EQ(pa.sampled.size(), 3u);
    EXPECT_TRUE(std::is_sorted(pa.sampled.begin(), pa.sampled.end()));
    EXPECT_EQ(std::set<int>(pa.sampled.begin(), pa.sampled.end()).size(), 3u);
    EXPECT_EQ(pa.sampled, b.configure_round(r, 10).sampled);
    seen.insert(pa.sampled);
  }
  EXPECT_GT(seen.size(), 5u) << "rounds should draw different silos";
  int differ = 0;
  for (int r = 1; r <= 20; ++r) differ += a.configure_round(r, 10).sampled != c.configure_round(r, 10).sampled;
  EXPECT_GT(differ, 0);
}

TEST(Sampler, TinyFractionStillSamplesOne) {
  FedAvg s(1, 0.01);
  EXPECT_EQ(s.configure_round(1, 10).sampled.size(), 1u);
}

TEST(FedAvg, AggregateIsWeightedMeanOnExactInputs) {
  // Two silos with 1 and 3 samples; updates 4 and 8 -> weighted sum 1*4 + 3*8 = 28, /4 = 7.
  FedAvg s(1, 1.0);
  std::vector<float> global = {1.0f, -2.0f};
  std::vector<float> wsum = {1.0f * 4 + 3.0f * 8, 1.0f * -4 + 3.0f * 0};
  ASSERT_TRUE(s.aggregate(1, global, wsum, 4.0).ok());
  EXPECT_EQ(global[0], 8.0f);
  EXPECT_EQ(global[1], -3.0f);
}

TEST(FedAvg, ZeroWeightIsAnError) {
  FedAvg s(1, 1.0);
  std::vector<float> g = {0.0f}, w = {0.0f};
  EXPECT_FALSE(s.aggregate(1, g, w, 0.0).ok());
}

TEST(FedProx, SetsProximalTerm) {
  FedProx s(1, 1.0, 0.01);
  model::LocalTrainOptions o;
  s.configure_local(o);
  EXPECT_FLOAT_EQ(o.prox_mu, 0.01f);
}

}  // namespace
}  // namespace fedsilo::fl
