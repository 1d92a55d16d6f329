// Strategies: the seeded sampler, the FedAvg server step and the server optimizers (checked
// against their update rules computed independently in double precision).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "config/config.h"
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

config::Config optimizer_config(config::StrategyName name) {
  config::Config c;
  c.strategy.name = name;
  c.strategy.server_lr = 0.05;
  c.strategy.server_momentum = 0.8;
  c.strategy.beta1 = 0.85;
  c.strategy.beta2 = 0.95;
  c.strategy.tau = 0.01;
  return c;
}

// Reddi et al. 2021, Algorithm 2 (and Hsu et al. 2019 for FedAvgM), in double, from the config:
// the reference the float implementation is checked against.
struct Reference {
  config::StrategySection s;
  std::vector<double> m, v, w;
  Reference(const config::StrategySection& sec, const std::vector<float>& w0) : s(sec) {
    w.assign(w0.begin(), w0.end());
    m.assign(w0.size(), 0.0);
    v.assign(w0.size(), s.tau * s.tau);
  }
  void step(const std::vector<double>& delta) {
    for (size_t i = 0; i < w.size(); ++i) {
      const double d = delta[i];
      if (s.name == config::StrategyName::kFedAvgM) {
        m[i] = s.server_momentum * m[i] + d;
        w[i] += s.server_lr * m[i];
        continue;
      }
      m[i] = s.beta1 * m[i] + (1 - s.beta1) * d;
      if (s.name == config::StrategyName::kFedAdagrad) v[i] += d * d;
      if (s.name == config::StrategyName::kFedAdam) v[i] = s.beta2 * v[i] + (1 - s.beta2) * d * d;
      if (s.name == config::StrategyName::kFedYogi) {
        const double diff = v[i] - d * d;
        v[i] -= (1 - s.beta2) * d * d * (diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0);
      }
      w[i] += s.server_lr * m[i] / (std::sqrt(v[i]) + s.tau);
    }
  }
};

TEST(ServerOptimizer, MatchesTheUpdateRulesInDoubleOverRounds) {
  for (auto name : {config::StrategyName::kFedAvgM, config::StrategyName::kFedAdagrad,
                    config::StrategyName::kFedAdam, config::StrategyName::kFedYogi}) {
    const config::Config cfg = optimizer_config(name);
    auto made = make_strategy(cfg);
    ASSERT_TRUE(made.ok());
    Strategy& s = *made.value();
    EXPECT_EQ(s.name(), config::name(name));
    const size_t n = 64;
    std::vector<float> global(n);
    for (size_t i = 0; i < n; ++i) global[i] = 0.01f * static_cast<float>(i % 7) - 0.02f;
    s.set_length(static_cast<int64_t>(n));
    Reference ref(cfg.strategy, global);
    for (int round = 1; round <= 8; ++round) {
      // Pseudo-gradients that change sign and size over rounds (so Yogi's sign matters).
      const double weight_sum = 3.0 + round;
      std::vector<float> wsum(n);
      std::vector<double> delta(n);
      for (size_t i = 0; i < n; ++i) {
        const double d = 0.05 * std::sin(0.7 * static_cast<double>(i) + 1.3 * round) * (1 + (i % 3));
        wsum[i] = static_cast<float>(d * weight_sum);
        delta[i] = static_cast<double>(wsum[i]) / weight_sum;  // what the float code divides
      }
      ASSERT_TRUE(s.aggregate(round, global, wsum, weight_sum).ok());
      ref.step(delta);
      for (size_t i = 0; i < n; ++i) {
        ASSERT_NEAR(global[i], ref.w[i], 2e-6 * (1.0 + std::abs(ref.w[i])))
            << config::name(name) << " round " << round << " element " << i;
      }
    }
    // The state a checkpoint keeps is the reference's m (and v).
    auto state = s.server_state();
    ASSERT_FALSE(state.empty());
    for (size_t i = 0; i < n; ++i) EXPECT_NEAR((*state[0].second)[i], ref.m[i], 1e-6);
  }
}

TEST(ServerOptimizer, FirstAdamStepHasNoBiasCorrectionAndVFromTauSquared) {
  // m1 = (1 - b1) d, v1 = b2 tau^2 + (1 - b2) d^2: with bias correction the step would be
  // lr sign(d); without it, it is lr (1 - b1) d / (sqrt(v1) + tau).
  config::Config cfg = optimizer_config(config::StrategyName::kFedAdam);
  auto made = make_strategy(cfg);
  ASSERT_TRUE(made.ok());
  made.value()->set_length(1);
  std::vector<float> w = {0.0f}, wsum = {0.5f};
  ASSERT_TRUE(made.value()->aggregate(1, w, wsum, 1.0).ok());
  const double b1 = 0.85, b2 = 0.95, tau = 0.01, d = 0.5;
  const double expect = 0.05 * (1 - b1) * d / (std::sqrt(b2 * tau * tau + (1 - b2) * d * d) + tau);
  EXPECT_NEAR(w[0], expect, 1e-7);
}

}  // namespace
}  // namespace fedsilo::fl
