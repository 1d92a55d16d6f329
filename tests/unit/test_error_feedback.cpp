// The fused error-feedback step: the exact identity sent + new residual == update + old
// residual, the sent set against the sort-based top-k of update + residual, momentum
// correction, every selector and value type, and multi-round tracking of the update sum.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/error_feedback.h"
#include "kernels/cpu/quantize.h"
#include "kernels/cpu/topk_sampled.h"

namespace fk = fedsilo::kernels;

namespace {

std::vector<float> normal_vec(int64_t n, uint32_t stream, double sd = 1.0) {
  fedsilo::Philox rng(31, stream, 0, fedsilo::RngPurpose::kNoise);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(sd * rng.normal());
  return v;
}

std::vector<uint32_t> reference_topk(const std::vector<float>& x, int64_t k) {
  std::vector<uint32_t> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0u);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](uint32_t a, uint32_t b) { return std::abs(x[a]) > std::abs(x[b]); });
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Dense form of a sparse vector.
std::vector<float> densify(const fk::SparseVector& sv) {
  std::vector<float> d(static_cast<size_t>(sv.length), 0.0f);
  for (int64_t j = 0; j < sv.nnz(); ++j) d[sv.indices[j]] = sv.values[j];
  return d;
}

// Counts elements where sent + residual != acc (float ==; -0 == +0).
int64_t identity_failures(const std::vector<float>& acc, const fk::SparseVector& sent,
                          const std::vector<float>& residual) {
  const auto d = densify(sent);
  int64_t bad = 0;
  for (size_t i = 0; i < acc.size(); ++i) bad += (d[i] + residual[i] != acc[i]);
  return bad;
}

TEST(ErrorFeedback, SentPlusResidualEqualsUpdatePlusOldResidualExactly) {
  const int64_t n = 100003;
  const auto update = normal_vec(n, 1);
  for (const auto vt : {fk::ValueType::kFp32, fk::ValueType::kFp16, fk::ValueType::kBf16}) {
    for (const auto m : {fk::SelectMethod::kTopk, fk::SelectMethod::kTopkSampled,
                         fk::SelectMethod::kRandk, fk::SelectMethod::kAll}) {
      auto residual = normal_vec(n, 2, 0.5);
      std::vector<float> acc(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) acc[i] = update[i] + residual[i];
      fk::ErrorFeedbackParams p;
      p.method = m;
      p.k = 1000;
      p.value_type = vt;
      p.seed = 3;
      p.round = 4;
      p.silo = 5;
      p.threads = 2;
      fk::ErrorFeedbackReport rep;
      const auto sent = fk::error_feedback_step(update, residual, {}, p, &rep);
      ASSERT_TRUE(rep.finite && !rep.overflow);
      EXPECT_EQ(identity_failures(acc, sent, residual), 0)
          << "value type " << int(vt) << " method " << int(m);
      // Unsent coordinates keep acc bitwise; sent ones keep exactly acc - sent.
      const auto d = densify(sent);
      std::vector<char> is_sent(static_cast<size_t>(n), 0);
      for (const uint32_t i : sent.indices) is_sent[i] = 1;
      for (int64_t i = 0; i < n; ++i) {
        const float want = is_sent[i] ? acc[i] - d[i] : acc[i];
        ASSERT_EQ(std::bit_cast<uint32_t>(residual[i]), std::bit_cast<uint32_t>(want)) << i;
      }
    }
  }
}

TEST(ErrorFeedback, SendsTheReferenceTopkOfUpdatePlusResidual) {
  const int64_t n = 200000;
  const auto update = normal_vec(n, 3);
  auto residual = normal_vec(n, 4, 2.0);
  std::vector<float> acc(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) acc[i] = update[i] + residual[i];
  fk::ErrorFeedbackParams p;
  p.k = 2000;
  p.threads = 2;
  const auto sent = fk::error_feedback_step(update, residual, {}, p);
  EXPECT_EQ(sent.indices, reference_topk(acc, 2000));
  for (int64_t j = 0; j < sent.nnz(); ++j) {
    EXPECT_EQ(sent.values[j], acc[sent.indices[j]]);
    EXPECT_EQ(residual[sent.indices[j]], 0.0f);
  }
}

TEST(ErrorFeedback, Int8KeepsTheIdentityWhereSterbenzApplies) {
  const int64_t n = 50000;
  const auto update = normal_vec(n, 5);
  for (const auto m : {fk::SelectMethod::kTopk, fk::SelectMethod::kRandk}) {
    auto residual = normal_vec(n, 6, 0.1);
    std::vector<float> acc(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) acc[i] = update[i] + residual[i];
    fk::ErrorFeedbackParams p;
    p.method = m;
    p.k = 5000;
    p.value_type = fk::ValueType::kInt8;
    p.seed = 9;
    const auto sent = fk::error_feedback_step(update, residual, {}, p);
    ASSERT_EQ(sent.nnz(), 5000);
    int64_t outside = 0;
    for (int64_t j = 0; j < sent.nnz(); ++j) {
      const uint32_t i = sent.indices[j];
      const float s = sent.values[j];
      // Sterbenz holds when sent is 0 or within a factor 2 of acc with the same sign.
      const bool sterbenz = s == 0.0f || (s * acc[i] > 0 && std::abs(s) <= 2 * std::abs(acc[i]) &&
                                          std::abs(acc[i]) <= 2 * std::abs(s));
      if (sterbenz) {
        EXPECT_EQ(s + residual[i], acc[i]) << i;
      } else {
        ++outside;
        EXPECT_NEAR(s + residual[i], acc[i], std::abs(s) * 0x1p-23f) << i;
      }
    }
    // Top-k values are all far above a block's scale / 2: the identity is exact everywhere.
    if (m == fk::SelectMethod::kTopk) {
      EXPECT_EQ(outside, 0);
    }
  }
}

TEST(ErrorFeedback, MomentumCorrectionFollowsDgcAndKeepsTheIdentity) {
  const int64_t n = 70001;
  const float mom = 0.9f;
  auto velocity = normal_vec(n, 7, 0.3);
  auto residual = normal_vec(n, 8, 0.3);
  const auto g = normal_vec(n, 9);
  std::vector<float> u(static_cast<size_t>(n)), acc(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    u[i] = std::fma(mom, velocity[i], g[i]);  // the kernel's single rounding
    acc[i] = residual[i] + u[i];
  }
  fk::ErrorFeedbackParams p;
  p.k = 700;
  p.momentum = mom;
  p.value_type = fk::ValueType::kFp16;
  const auto sent = fk::error_feedback_step(g, residual, velocity, p);
  EXPECT_EQ(sent.indices, reference_topk(acc, 700));
  EXPECT_EQ(identity_failures(acc, sent, residual), 0);
  std::vector<char> is_sent(static_cast<size_t>(n), 0);
  for (const uint32_t i : sent.indices) is_sent[i] = 1;
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(velocity[i], is_sent[i] ? 0.0f : u[i]) << i;
  }
}

TEST(ErrorFeedback, WithoutFeedbackLeavesNoState) {
  const auto update = normal_vec(10000, 10);
  fk::ErrorFeedbackParams p;
  p.k = 100;
  p.error_feedback = false;
  const auto sent = fk::error_feedback_step(update, {}, {}, p);
  EXPECT_EQ(sent.indices, reference_topk(update, 100));
}

TEST(ErrorFeedback, ReportsNonFiniteAndFp16Overflow) {
  auto update = normal_vec(1000, 11);
  std::vector<float> residual(1000, 0.0f);
  update[17] = std::numeric_limits<float>::quiet_NaN();
  fk::ErrorFeedbackParams p;
  p.k = 10;
  fk::ErrorFeedbackReport rep;
  EXPECT_EQ(fk::error_feedback_step(update, residual, {}, p, &rep).nnz(), 0);
  EXPECT_FALSE(rep.finite);

  update[17] = 1e6f;  // selected first, beyond fp16's 65504
  std::fill(residual.begin(), residual.end(), 0.0f);
  p.value_type = fk::ValueType::kFp16;
  EXPECT_EQ(fk::error_feedback_step(update, residual, {}, p, &rep).nnz(), 0);
  EXPECT_TRUE(rep.finite);
  EXPECT_TRUE(rep.overflow);
  EXPECT_EQ(residual[17], 1e6f);  // nothing sent: the residual holds acc
}

TEST(ErrorFeedback, SumOfSentTracksSumOfUpdatesOverRounds) {
  // 80 rounds of fresh updates at 10% top-k with fp16 values. By the identity,
  // sum(sent) + residual == sum(updates) up to float rounding of the running residual; the
  // residual plateaus (each coordinate goes out once it is large) while the update sum keeps
  // growing like a random walk; without feedback the unsent mass is simply lost.
  const int64_t n = 20000;
  const int rounds = 80;
  std::vector<float> residual(static_cast<size_t>(n), 0.0f);
  std::vector<double> sum_sent(static_cast<size_t>(n), 0.0), sum_upd(static_cast<size_t>(n), 0.0);
  std::vector<double> sum_sent_no_ef(static_cast<size_t>(n), 0.0);
  fk::ErrorFeedbackParams p;
  p.k = n / 10;
  p.value_type = fk::ValueType::kFp16;
  fk::ErrorFeedbackParams no_ef = p;
  no_ef.error_feedback = false;
  std::vector<double> res_norm;
  for (int r = 0; r < rounds; ++r) {
    const auto u = normal_vec(n, 100 + static_cast<uint32_t>(r), 0.01);
    p.round = no_ef.round = static_cast<uint32_t>(r);
    const auto sent = fk::error_feedback_step(u, residual, {}, p);
    const auto plain = fk::error_feedback_step(u, {}, {}, no_ef);
    ASSERT_EQ(sent.nnz(), p.k);
    for (int64_t i = 0; i < n; ++i) sum_upd[i] += u[i];
    for (int64_t j = 0; j < sent.nnz(); ++j) sum_sent[sent.indices[j]] += sent.values[j];
    for (int64_t j = 0; j < plain.nnz(); ++j) sum_sent_no_ef[plain.indices[j]] += plain.values[j];
    double norm = 0.0;
    for (const float x : residual) norm += double(x) * x;
    res_norm.push_back(std::sqrt(norm));
  }
  double err = 0.0, total = 0.0, miss_ef = 0.0, miss_plain = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    err = std::max(err, std::abs(sum_sent[i] + residual[i] - sum_upd[i]));
    total += sum_upd[i] * sum_upd[i];
    miss_ef += (sum_sent[i] - sum_upd[i]) * (sum_sent[i] - sum_upd[i]);
    miss_plain += (sum_sent_no_ef[i] - sum_upd[i]) * (sum_sent_no_ef[i] - sum_upd[i]);
  }
  EXPECT_LT(err, 1e-5);
  const double late = *std::max_element(res_norm.begin() + 60, res_norm.end());
  const double mid = *std::max_element(res_norm.begin() + 30, res_norm.begin() + 60);
  EXPECT_LT(late, 1.1 * mid) << "the residual keeps growing";
  EXPECT_LT(std::sqrt(miss_ef), 0.5 * std::sqrt(total));
  EXPECT_LT(std::sqrt(miss_ef), 0.5 * std::sqrt(miss_plain));
}

TEST(ErrorFeedback, AddendsSummedInThePassEqualTheStepOnTheExplicitSumBitwise) {
  // A node leader's step: its own update plus the other ranks' (read in place), in rank order.
  const int64_t n = 70001;  // not a multiple of the tile or of the threads' chunks
  const auto own = normal_vec(n, 11);
  const auto a1 = normal_vec(n, 12, 0.7), a2 = normal_vec(n, 13, 1.3);
  std::vector<float> sum = own;
  for (int64_t i = 0; i < n; ++i) sum[i] += a1[i];
  for (int64_t i = 0; i < n; ++i) sum[i] += a2[i];
  const std::vector<const float*> addends = {a1.data(), a2.data()};
  for (const bool ef : {true, false}) {
    for (const float momentum : {0.0f, 0.9f}) {
      if (!ef && momentum != 0.0f) continue;
      for (const auto m : {fk::SelectMethod::kTopk, fk::SelectMethod::kTopkSampled,
                           fk::SelectMethod::kRandk, fk::SelectMethod::kAll}) {
        for (const auto vt : {fk::ValueType::kFp32, fk::ValueType::kInt8}) {
          fk::ErrorFeedbackParams p;
          p.method = m;
          p.k = 700;
          p.value_type = vt;
          p.error_feedback = ef;
          p.momentum = momentum;
          p.seed = 3;
          p.round = 4;
          p.silo = 5;
          p.threads = 3;
          std::vector<float> r_fused = ef ? normal_vec(n, 14, 0.5) : std::vector<float>();
          std::vector<float> r_plain = r_fused;
          std::vector<float> v_fused = momentum != 0.0f ? normal_vec(n, 15) : std::vector<float>();
          std::vector<float> v_plain = v_fused;
          fk::ErrorFeedbackReport rf, rp;
          const auto fused = fk::error_feedback_step(own, addends, r_fused, v_fused, p, &rf);
          const auto plain = fk::error_feedback_step(sum, r_plain, v_plain, p, &rp);
          const std::string what = "ef " + std::to_string(ef) + " momentum " +
                                   std::to_string(momentum) + " method " + std::to_string(int(m)) +
                                   " value type " + std::to_string(int(vt));
          ASSERT_TRUE(rf.finite && rp.finite && !rf.overflow) << what;
          EXPECT_EQ(fused.indices, plain.indices) << what;
          ASSERT_EQ(fused.values.size(), plain.values.size()) << what;
          EXPECT_EQ(0, std::memcmp(fused.values.data(), plain.values.data(),
                                   fused.values.size() * sizeof(float))) << what;
          EXPECT_EQ(0, std::memcmp(r_fused.data(), r_plain.data(), r_fused.size() * sizeof(float)))
              << what;
          EXPECT_EQ(0, std::memcmp(v_fused.data(), v_plain.data(), v_fused.size() * sizeof(float)))
              << what;
        }
      }
    }
  }
}

// The top-k selections collect their candidates inside the accumulate pass, from a threshold
// set by a sample; every way that can go (collected; a tie-heavy threshold past the collection
// cap; a threshold of 0; a sample that over-estimates, so too few are collected) must give
// what selecting on the written acc gives: the reference top-k for exact, and for sampled the
// very indices topk_sampled_indices picks from acc with the same stream.
TEST(ErrorFeedback, FusedTopkSelectionsEqualSelectingOnAccOnEveryPath) {
  const int64_t n = int64_t{1} << 21;
  const int64_t k = n / 100;  // 20971: more than the sample's 12800 positions
  const uint64_t seed = 3;
  const uint32_t round = 4, silo = 5;
  auto stream = [&] {
    return fedsilo::Philox(seed, round, silo | fk::kSamplingStreamBit,
                           fedsilo::RngPurpose::kCompression);
  };
  // acc = update + addend + residual, as the step will form it.
  struct Case {
    std::string name;
    std::vector<float> update, addend, residual;
  };
  std::vector<Case> cases;
  {
    Case c{"normal", normal_vec(n, 21), normal_vec(n, 22, 0.5), normal_vec(n, 23, 0.5)};
    cases.push_back(std::move(c));
  }
  {
    // Four magnitudes only: the threshold ties a quarter of the elements (past the cap).
    Case c{"ties", std::vector<float>(n), std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
    fedsilo::Philox rng(31, 99, 0, fedsilo::RngPurpose::kNoise);
    for (auto& x : c.update) x = 0.5f * static_cast<float>(1 + rng.next_u32() % 4) * (rng.next_u32() % 2 ? 1.f : -1.f);
    cases.push_back(std::move(c));
  }
  {
    // 99.5% zeros: the sample's threshold is 0, nothing is collected in the pass.
    Case c{"zeros", std::vector<float>(n, 0.0f), normal_vec(n, 24), std::vector<float>(n, 0.0f)};
    for (int64_t i = 0; i < n; ++i) {
      if (i % 200 != 0) c.addend[i] = 0.0f;
    }
    cases.push_back(std::move(c));
  }
  {
    // Large values exactly at the sample's positions (fewer than k of them): the threshold sits
    // above all but those, so the pass collects too few.
    Case c{"overestimate", normal_vec(n, 25), std::vector<float>(n, 0.0f), std::vector<float>(n, 0.0f)};
    auto rng = stream();
    for (int j = 0; j < 12800; ++j) {
      c.update[(uint64_t{rng.next_u32()} * static_cast<uint64_t>(n)) >> 32] = 10.0f;
    }
    cases.push_back(std::move(c));
  }
  for (const auto& c : cases) {
    std::vector<float> acc(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) acc[i] = (c.update[i] + c.addend[i]) + c.residual[i];
    for (const auto m : {fk::SelectMethod::kTopk, fk::SelectMethod::kTopkSampled}) {
      fk::ErrorFeedbackParams p;
      p.method = m;
      p.k = k;
      p.seed = seed;
      p.round = round;
      p.silo = silo;
      p.threads = 2;
      std::vector<float> residual = c.residual;
      const std::vector<const float*> addends = {c.addend.data()};
      fk::ErrorFeedbackReport rep;
      const auto sent = fk::error_feedback_step(c.update, addends, residual, {}, p, &rep);
      ASSERT_TRUE(rep.finite && !rep.overflow) << c.name;
      if (m == fk::SelectMethod::kTopk) {
        EXPECT_EQ(sent.indices, reference_topk(acc, k)) << c.name;
      } else {
        auto rng = stream();
        fk::SampledTopkStats ref;  // the same sample gives the same threshold and candidates
        EXPECT_EQ(sent.indices, fk::topk_sampled_indices(acc, k, rng, 2, &ref)) << c.name;
        EXPECT_EQ(rep.sampled.candidates, ref.candidates) << c.name;
        EXPECT_EQ(rep.sampled.passes, ref.passes) << c.name;
        if (c.name == "overestimate") {
          EXPECT_GT(rep.sampled.passes, 1) << "the fallback was not taken";
        }
      }
      EXPECT_EQ(identity_failures(acc, sent, residual), 0) << c.name;
    }
  }
}

}  // namespace
