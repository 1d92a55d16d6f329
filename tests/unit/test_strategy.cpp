// Strategies: the seeded sampler, the FedAvg server step and the server optimizers (checked
// against their update rules computed independently in double precision).
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "config/config.h"
#include "fl/strategy.h"
#include "optim/sgd.h"

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
  ASSERT_TRUE(s.aggregate(1, global, Combined{wsum, 4.0}).ok());
  EXPECT_EQ(global[0], 8.0f);
  EXPECT_EQ(global[1], -3.0f);
}

TEST(FedAvg, ZeroWeightIsAnError) {
  FedAvg s(1, 1.0);
  std::vector<float> g = {0.0f}, w = {0.0f};
  EXPECT_FALSE(s.aggregate(1, g, Combined{w, 0.0}).ok());
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
    s.set_length(static_cast<int64_t>(n), 4);
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
      ASSERT_TRUE(s.aggregate(round, global, Combined{wsum, weight_sum}).ok());
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
  made.value()->set_length(1, 1);
  std::vector<float> w = {0.0f}, wsum = {0.5f};
  ASSERT_TRUE(made.value()->aggregate(1, w, Combined{wsum, 1.0}).ok());
  const double b1 = 0.85, b2 = 0.95, tau = 0.01, d = 0.5;
  const double expect = 0.05 * (1 - b1) * d / (std::sqrt(b2 * tau * tau + (1 - b2) * d * d) + tau);
  EXPECT_NEAR(w[0], expect, 1e-7);
}

// A silo of the hand-checkable federations below: one-coordinate least squares
// f_s(w) = (w - b_s)^2 / 2 (a linear model with input 1), gradient w - b_s, n_s samples. Every
// value is a short dyadic fraction, so float arithmetic is exact and the results are the
// numbers worked out by hand in the comments.
struct ToySilo {
  float b;
  double n;
};

// `steps` SGD steps (lr, momentum) from `global` with the strategy's local options, then its
// extras: what one rank of the federation does between two sums.
struct ToyContribution {
  float y;
  SiloExtras extras;
  std::vector<float> tail;
};
ToyContribution toy_train(Strategy& s, const ToySilo& silo, float global, int steps, float lr,
                          float momentum) {
  model::LocalTrainOptions lo;
  s.configure_local(lo);
  optim::Sgd sgd(1, {lr, momentum, 0.0f, 0.0f});
  std::vector<float> y = {global}, g(1);
  for (int k = 0; k < steps; ++k) {
    g[0] = y[0] - silo.b;
    EXPECT_TRUE(sgd.step(y, g, {}, nullptr, lo.correction));
  }
  const std::vector<float> w = {global};
  auto extras = s.silo_extras(y, w, steps, lr, momentum);
  EXPECT_TRUE(extras.ok());
  ToyContribution out{y[0], extras.value(), {}};
  out.tail.assign(out.extras.tail.begin(), out.extras.tail.end());
  return out;
}

// The sums HostAggregation forms: n_s (y_s - w) / divisor, then the tails; the weights; the
// weighted mean of aux.
struct ToySums {
  std::vector<float> sum;
  double weight = 0.0, aux = 0.0;
  Combined combined() const { return Combined{sum, weight, weight > 0 ? aux / weight : 0.0}; }
};
void toy_add(ToySums& sums, const ToyContribution& c, const ToySilo& silo, float global) {
  if (sums.sum.empty()) sums.sum.assign(1 + c.tail.size(), 0.0f);
  sums.sum[0] += static_cast<float>(silo.n / c.extras.divisor) * (c.y - global);
  for (size_t i = 0; i < c.tail.size(); ++i) sums.sum[1 + i] += c.tail[i];
  sums.weight += silo.n;
  sums.aux += silo.n * c.extras.aux;
}

TEST(Scaffold, TwoSilosByHand) {
  // lr 1/2, no momentum, K = 2 steps, silos b = 4 (n = 1) and b = 0 (n = 3); w = c = c_s = 0.
  // Round 1. Silo 0: y = 0 -> 2 -> 3; c_0+ = 0 - 0 + (0 - 3) / (2 * 1/2) = -3 (its mean
  //   gradient). Silo 1: y stays 0; c_1+ = 0. Server: w = (1 * 3 + 3 * 0) / 4 = 0.75;
  //   c = 0 + (-3 + 0) / 2 = -1.5.
  // Round 2 (w = 0.75, c = -1.5). Silo 0 corrects by c - c_0 = 1.5:
  //   y = 0.75 - (0.75 - 4 + 1.5) / 2 = 1.625 -> 1.625 - (1.625 - 4 + 1.5) / 2 = 2.0625;
  //   c_0+ = -3 + 1.5 + (0.75 - 2.0625) = -2.8125.
  //   Silo 1 corrects by -1.5: y = 0.75 - (0.75 - 1.5) / 2 = 1.125 -> 1.3125;
  //   c_1+ = 0 + 1.5 + (0.75 - 1.3125) = 0.9375.
  //   Server: w = 0.75 + (1.3125 + 3 * 0.5625) / 4 = 1.5; c = -1.5 + (0.1875 + 0.9375) / 2 = -0.9375.
  const ToySilo silos[2] = {{4.0f, 1.0}, {0.0f, 3.0}};
  Scaffold ranks[2] = {Scaffold(1, 1.0), Scaffold(1, 1.0)};  // one Strategy per rank
  for (auto& r : ranks) r.set_length(1, 2);
  EXPECT_EQ(ranks[0].tail_length(), 1);
  float w = 0.0f;
  const float expect_y[2][2] = {{3.0f, 0.0f}, {2.0625f, 1.3125f}};
  const float expect_c_silo[2][2] = {{-3.0f, 0.0f}, {-2.8125f, 0.9375f}};
  const float expect_w[2] = {0.75f, 1.5f}, expect_c[2] = {-1.5f, -0.9375f};
  for (int round = 1; round <= 2; ++round) {
    ToySums sums;
    for (int s = 0; s < 2; ++s) {
      const ToyContribution c = toy_train(ranks[s], silos[s], w, 2, 0.5f, 0.0f);
      EXPECT_EQ(c.y, expect_y[round - 1][s]) << "round " << round << " silo " << s;
      EXPECT_EQ((*ranks[s].silo_state()[0].second)[0], expect_c_silo[round - 1][s]);
      toy_add(sums, c, silos[s], w);
    }
    std::vector<float> global[2] = {{w}, {w}};
    for (int s = 0; s < 2; ++s) {
      ASSERT_TRUE(ranks[s].aggregate(round, global[s], sums.combined()).ok());
      EXPECT_EQ((*ranks[s].server_state()[0].second)[0], expect_c[round - 1]);
    }
    EXPECT_EQ(global[0][0], expect_w[round - 1]);
    EXPECT_EQ(global[1][0], global[0][0]);
    w = global[0][0];
  }
}

TEST(Scaffold, ServerVariateMovesByOneOverAllSilosUnderPartialParticipation) {
  // Three silos, only silo 0 trains (b = 4, as above): c = (1/3) * (-3) = -1, not -3.
  Scaffold s(1, 1.0);
  s.set_length(1, 3);
  const ToySilo silo{4.0f, 1.0};
  ToySums sums;
  toy_add(sums, toy_train(s, silo, 0.0f, 2, 0.5f, 0.0f), silo, 0.0f);
  std::vector<float> global = {0.0f};
  ASSERT_TRUE(s.aggregate(1, global, sums.combined()).ok());
  EXPECT_EQ((*s.server_state()[0].second)[0], -1.0f);
  EXPECT_EQ(global[0], 3.0f);  // the model is the mean over the silos that trained
}

TEST(Scaffold, CorrectionComesAfterTheMomentumStep) {
  // With momentum, NIID-Bench's order: w -= lr * buf, then w -= lr * (c - c_s); the correction
  // never enters the momentum buffer. c - c_s = 1 (set through the server state), lr 1/2,
  // momentum 1/2, b = 0, w = 2: step 1: buf = 2, w = 2 - 1 - 0.5 = 0.5; step 2: g = 0.5,
  // buf = 1 + 0.5 = 1.5, w = 0.5 - 0.75 - 0.5 = -0.75. (Through the buffer it would be -1.)
  Scaffold s(1, 1.0);
  s.set_length(1, 1);
  (*s.server_state()[0].second)[0] = 1.0f;
  const ToyContribution c = toy_train(s, {0.0f, 1.0}, 2.0f, 2, 0.5f, 0.5f);
  EXPECT_EQ(c.y, -0.75f);
  // c_s+ = c_s - c + (w - y) / (K lr) = 0 - 1 + 2.75 = 1.75.
  EXPECT_EQ((*s.silo_state()[0].second)[0], 1.75f);
  EXPECT_EQ(c.tail[0], 1.75f);
}

TEST(FedNova, NormalizerIsMomentumSgdsTotalStepOnAConstantGradient) {
  // a(tau, rho) = sum over k = 1..tau of (1 - rho^k) / (1 - rho): momentum SGD with lr 1 on a
  // constant gradient 1 moves by exactly that.
  EXPECT_EQ(fednova_normalizer(2, 0.5), 2.5);
  EXPECT_EQ(fednova_normalizer(3, 0.5), 4.25);
  EXPECT_EQ(fednova_normalizer(7, 0.0), 7.0);
  EXPECT_EQ(fednova_normalizer(1, 0.9), 1.0);
  for (double rho : {0.0, 0.5, 0.9}) {
    for (int tau : {1, 2, 10, 95, 940}) {
      double w = 0.0, buf = 0.0;
      for (int k = 0; k < tau; ++k) {
        buf = k == 0 ? 1.0 : rho * buf + 1.0;
        w -= buf;
      }
      EXPECT_NEAR(fednova_normalizer(tau, rho), -w, 1e-9 * -w) << "tau " << tau << " rho " << rho;
    }
  }
}

TEST(FedNova, TwoSilosByHand) {
  // lr 1/2, no momentum (a_s = tau_s). Silo 0: b = 4, n = 1, tau 2: y = 0 -> 2 -> 3, sends
  // 1 * 3 / 2 = 1.5. Silo 1: b = -4, n = 3, tau 4: y = -2, -3, -3.5, -3.75, sends
  // 3 * (-3.75) / 4 = -2.8125. tau_eff = (1 * 2 + 3 * 4) / 4 = 3.5;
  // w = 0 + 3.5 * (1.5 - 2.8125) / 4 = -1.1484375 (FedAvg would give (3 - 11.25) / 4 = -2.0625:
  // the silo that took more steps no longer pulls the model further).
  FedNova ranks[2] = {FedNova(1, 1.0), FedNova(1, 1.0)};
  const ToySilo silos[2] = {{4.0f, 1.0}, {-4.0f, 3.0}};
  const int taus[2] = {2, 4};
  ToySums sums;
  for (int s = 0; s < 2; ++s) {
    const ToyContribution c = toy_train(ranks[s], silos[s], 0.0f, taus[s], 0.5f, 0.0f);
    EXPECT_EQ(c.extras.divisor, taus[s]);
    EXPECT_TRUE(c.tail.empty());
    toy_add(sums, c, silos[s], 0.0f);
  }
  EXPECT_EQ(sums.sum[0], 1.5f - 2.8125f);
  EXPECT_EQ(sums.combined().aux_mean, 3.5);
  for (auto& r : ranks) {
    std::vector<float> global = {0.0f};
    ASSERT_TRUE(r.aggregate(1, global, sums.combined()).ok());
    EXPECT_EQ(global[0], -1.1484375f);
  }
}

}  // namespace
}  // namespace fedsilo::fl
