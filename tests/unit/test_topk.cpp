// Exact, sampled and random-k selection against independent references (sort-based top-k),
// tie rule, edge sizes, thread-count independence, and the shared-seed property of random-k.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/randk.h"
#include "kernels/cpu/topk.h"
#include "kernels/cpu/topk_sampled.h"

namespace fk = fedsilo::kernels;

namespace {

std::vector<float> normal_vec(int64_t n, uint32_t stream) {
  fedsilo::Philox rng(77, stream, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Independent reference: stable sort by |x| descending keeps ties in index order, so the first
// k are the top-k with ties to the lower index.
std::vector<uint32_t> reference_topk(const std::vector<float>& x, int64_t k) {
  std::vector<uint32_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](uint32_t a, uint32_t b) { return std::abs(x[a]) > std::abs(x[b]); });
  idx.resize(static_cast<size_t>(std::clamp<int64_t>(k, 0, static_cast<int64_t>(x.size()))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

TEST(TopkExact, MatchesSortReferenceOnRandomNormalData) {
  for (const int64_t n : {1, 7, 1000, 65537, 300001}) {
    const auto x = normal_vec(n, static_cast<uint32_t>(n));
    for (const int64_t k : {int64_t{1}, n / 100, n / 10, n / 2, n - 1}) {
      if (k < 1) continue;
      EXPECT_EQ(fk::topk_indices(x, k, 2), reference_topk(x, k)) << "n " << n << " k " << k;
    }
  }
}

TEST(TopkExact, BreaksTiesTowardLowerIndexWithManyTies) {
  // Values from {-2, -1, 0, 1, 2}: every threshold falls inside a run of equal magnitudes.
  fedsilo::Philox rng(5, 0, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> x(200003);
  for (auto& v : x) v = static_cast<float>(static_cast<int>(rng.below(5)) - 2);
  for (const int64_t k : {1, 10, 1000, 50000, 80000, 120000, 200002}) {
    EXPECT_EQ(fk::topk_indices(x, k, 2), reference_topk(x, k)) << "k " << k;
  }
}

TEST(TopkExact, TreatsSignedZerosAsEqualAndLowerIndexFirst) {
  const std::vector<float> x = {-0.0f, 0.0f, -0.0f, 3.0f, 0.0f, -3.0f};
  EXPECT_EQ(fk::topk_indices(x, 3, 1), (std::vector<uint32_t>{0, 3, 5}));
  EXPECT_EQ(fk::topk_indices(x, 4, 1), (std::vector<uint32_t>{0, 1, 3, 5}));
}

TEST(TopkExact, HandlesEmptyZeroAndFullK) {
  const auto x = normal_vec(1001, 3);
  EXPECT_TRUE(fk::topk_indices({}, 5).empty());
  EXPECT_TRUE(fk::topk_indices(x, 0).empty());
  std::vector<uint32_t> all(x.size());
  std::iota(all.begin(), all.end(), 0u);
  EXPECT_EQ(fk::topk_indices(x, 1001), all);
  EXPECT_EQ(fk::topk_indices(x, 5000), all);
  const auto sv = fk::topk_select(x, 10);
  EXPECT_EQ(sv.length, 1001);
  ASSERT_EQ(sv.nnz(), 10);
  for (int64_t j = 0; j < sv.nnz(); ++j) EXPECT_EQ(sv.values[j], x[sv.indices[j]]);
}

TEST(TopkExact, OutputIsIdenticalForOneToFourThreads) {
  // 2^18 + 3 elements: enough for four chunks of >= kMinElementsPerThread, not a round size.
  auto x = normal_vec((int64_t{1} << 18) + 3, 9);
  for (size_t i = 0; i < x.size(); i += 97) x[i] = 2.5f;  // a tie run across chunk borders
  const auto ref = fk::topk_indices(x, 2621, 1);
  EXPECT_EQ(ref, reference_topk(x, 2621));
  for (int t = 2; t <= 4; ++t) EXPECT_EQ(fk::topk_indices(x, 2621, t), ref) << t << " threads";
}

TEST(TopkExact, HandlesExtremeMagnitudes) {
  const float big = std::numeric_limits<float>::max();
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> x = {tiny, -big,  1.0f, -tiny, std::numeric_limits<float>::infinity(),
                                0.0f, 1e-30f};
  EXPECT_EQ(fk::topk_indices(x, 2, 1), (std::vector<uint32_t>{1, 4}));
  EXPECT_EQ(fk::topk_indices(x, 5, 1), reference_topk(x, 5));
}

TEST(TopkSampled, CountWithinToleranceAndSelectionDominatesRest) {
  for (const int64_t n : {int64_t{100000}, int64_t{1} << 20}) {
    const auto x = normal_vec(n, 11);
    for (const double d : {0.1, 0.01, 0.001}) {
      const auto k = static_cast<int64_t>(d * static_cast<double>(n));
      fedsilo::Philox rng(1, 2, 3, fedsilo::RngPurpose::kCompression);
      fk::SampledTopkStats st;
      const auto idx = fk::topk_sampled_indices(x, k, rng, 2, &st);
      EXPECT_LE(std::abs(static_cast<int64_t>(idx.size()) - k), fk::sampled_topk_slack(k))
          << "n " << n << " k " << k;
      ASSERT_TRUE(std::is_sorted(idx.begin(), idx.end()));
      std::vector<char> chosen(x.size(), 0);
      float min_sel = std::numeric_limits<float>::infinity();
      for (const uint32_t i : idx) {
        chosen[i] = 1;
        min_sel = std::min(min_sel, std::abs(x[i]));
      }
      float max_rest = 0.0f;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!chosen[i]) max_rest = std::max(max_rest, std::abs(x[i]));
      }
      EXPECT_GE(min_sel, max_rest) << "n " << n << " k " << k;
      EXPECT_GT(st.sample_size, 0);
    }
  }
}

TEST(TopkSampled, IsDeterministicForASeedAndIndependentOfThreads) {
  const auto x = normal_vec(300000, 12);
  fedsilo::Philox a(9, 1, 0, fedsilo::RngPurpose::kCompression);
  fedsilo::Philox b(9, 1, 0, fedsilo::RngPurpose::kCompression);
  EXPECT_EQ(fk::topk_sampled_indices(x, 3000, a, 1), fk::topk_sampled_indices(x, 3000, b, 3));
}

TEST(TopkSampled, ReselectsExactlyWhenTheThresholdTiesManyElements) {
  // One spike per 4096 elements and zeros elsewhere, k above the spike count: the sample's
  // threshold is 0, every element is a candidate, and the exact re-select must return the
  // spikes plus the lowest-index zeros.
  std::vector<float> x(1 << 18, 0.0f);
  for (size_t i = 0; i < x.size(); i += 4096) x[i] = 100.0f;
  fedsilo::Philox rng(3, 0, 0, fedsilo::RngPurpose::kCompression);
  fk::SampledTopkStats st;
  const auto idx = fk::topk_sampled_indices(x, 1000, rng, 2, &st);
  EXPECT_TRUE(st.reselected);
  EXPECT_EQ(idx, reference_topk(x, 1000));
}

TEST(TopkSampled, HandlesZeroAndFullK) {
  const auto x = normal_vec(5000, 13);
  fedsilo::Philox rng(3, 0, 0, fedsilo::RngPurpose::kCompression);
  EXPECT_TRUE(fk::topk_sampled_indices(x, 0, rng).empty());
  EXPECT_EQ(fk::topk_sampled_indices(x, 5000, rng).size(), 5000u);
}

TEST(Randk, PicksDistinctAscendingIndicesDeterministically) {
  const auto a = fk::randk_indices(100003, 1000, 42, 7);
  ASSERT_EQ(a.size(), 1000u);
  EXPECT_TRUE(std::adjacent_find(a.begin(), a.end(), std::greater_equal<>()) == a.end());
  EXPECT_LT(a.back(), 100003u);
  EXPECT_EQ(fk::randk_indices(100003, 1000, 42, 7), a);  // what another silo computes
  EXPECT_NE(fk::randk_indices(100003, 1000, 42, 8), a);
  EXPECT_NE(fk::randk_indices(100003, 1000, 43, 7), a);
}

TEST(Randk, SelectsEveryIndexWithEqualProbability) {
  // n = 64, k = 16 over 4000 rounds: each index expected 1000 times, sd ~ 27.4.
  std::vector<int> hits(64, 0);
  for (uint32_t r = 0; r < 4000; ++r) {
    for (const uint32_t i : fk::randk_indices(64, 16, 5, r)) ++hits[i];
  }
  for (int i = 0; i < 64; ++i) EXPECT_NEAR(hits[i], 1000, 140) << "index " << i;
}

TEST(Randk, HandlesEdgeCounts) {
  EXPECT_TRUE(fk::randk_indices(0, 3, 1, 1).empty());
  EXPECT_TRUE(fk::randk_indices(10, 0, 1, 1).empty());
  EXPECT_EQ(fk::randk_indices(10, 10, 1, 1).size(), 10u);
  EXPECT_EQ(fk::randk_indices(10, 9, 1, 1).size(), 9u);
  const std::vector<float> x = {1, 2, 3, 4, 5};
  const auto sv = fk::randk_select(x, 2, 1, 1);
  ASSERT_EQ(sv.nnz(), 2);
  for (int j = 0; j < 2; ++j) EXPECT_EQ(sv.values[j], x[sv.indices[j]]);
}

}  // namespace
