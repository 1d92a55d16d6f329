// FedAvg, FedProx, the server optimizers (FedAvgM, FedAdagrad, FedAdam, FedYogi), SCAFFOLD,
// FedNova, and the seeded silo sampler they share.
#include "fl/strategy.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/philox.h"

namespace fedsilo::fl {

bool RoundPlan::includes(int silo) const {
  return std::binary_search(sampled.begin(), sampled.end(), silo);
}

RoundPlan Strategy::configure_round(int round, int num_silos) const {
  RoundPlan plan;
  plan.round = round;
  const int m = std::clamp(static_cast<int>(std::lround(fraction_ * num_silos)), 1, num_silos);
  std::vector<int> ids(static_cast<size_t>(num_silos));
  std::iota(ids.begin(), ids.end(), 0);
  if (m < num_silos) {
    // Partial Fisher-Yates: the first m positions are a uniform sample without replacement.
    Philox rng(seed_, static_cast<uint32_t>(round), 0, RngPurpose::kSampling);
    for (int i = 0; i < m; ++i) {
      const auto j = i + static_cast<int>(rng.below(static_cast<uint64_t>(num_silos - i)));
      std::swap(ids[static_cast<size_t>(i)], ids[static_cast<size_t>(j)]);
    }
    ids.resize(static_cast<size_t>(m));
    std::sort(ids.begin(), ids.end());
  }
  plan.sampled = std::move(ids);
  return plan;
}

Status FedAvg::check_sums(int round, std::span<const float> global, const Combined& sums) const {
  if (sums.sum.size() != global.size() + static_cast<size_t>(tail_length())) {
    return internal_error("aggregate: update length differs from the model's");
  }
  if (!(sums.weight_sum > 0.0)) {
    return failed_precondition("round " + std::to_string(round) + ": no samples were aggregated");
  }
  return {};
}

Status FedAvg::aggregate(int round, std::span<float> global, const Combined& sums) {
  FEDSILO_CHECK(check_sums(round, global, sums));
  const auto inv = static_cast<float>(1.0 / sums.weight_sum);
  for (size_t i = 0; i < global.size(); ++i) global[i] += sums.sum[i] * inv;
  return {};
}

void FedProx::configure_local(model::LocalTrainOptions& opts) {
  opts.prox_mu = static_cast<float>(mu_);
}

void Scaffold::set_length(int64_t length, int num_silos) {
  const auto n = static_cast<size_t>(length);
  num_silos_ = num_silos;
  c_.assign(n, 0.0f);
  c_silo_.assign(n, 0.0f);
  correction_.assign(n, 0.0f);
  delta_.assign(n, 0.0f);
}

void Scaffold::configure_local(model::LocalTrainOptions& opts) {
  for (size_t i = 0; i < c_.size(); ++i) correction_[i] = c_[i] - c_silo_[i];
  opts.correction = correction_;
}

Result<SiloExtras> Scaffold::silo_extras(std::span<const float> local, std::span<const float> global,
                                         int64_t steps, double lr, double /*momentum*/) {
  if (local.size() != c_.size() || global.size() != c_.size()) {
    return internal_error("scaffold: the model's length differs from the control variates'");
  }
  if (steps <= 0 || !(lr > 0.0)) {
    // No step taken (an empty silo, or lr 0): the control variate stays and nothing is sent.
    std::fill(delta_.begin(), delta_.end(), 0.0f);
    return SiloExtras{1.0, delta_, 0.0};
  }
  // c_s+ - c_s = (w - y) / (K lr) - c; c_s becomes c_s+.
  const auto inv = static_cast<float>(1.0 / (static_cast<double>(steps) * lr));
  for (size_t i = 0; i < c_.size(); ++i) {
    delta_[i] = (global[i] - local[i]) * inv - c_[i];
    c_silo_[i] += delta_[i];
  }
  return SiloExtras{1.0, delta_, 0.0};
}

Status Scaffold::aggregate(int round, std::span<float> global, const Combined& sums) {
  FEDSILO_CHECK(check_sums(round, global, sums));
  const auto inv = static_cast<float>(1.0 / sums.weight_sum);
  const auto per_silo = static_cast<float>(1.0 / num_silos_);
  const size_t n = global.size();
  for (size_t i = 0; i < n; ++i) {
    global[i] += sums.sum[i] * inv;
    c_[i] += sums.sum[n + i] * per_silo;
  }
  return {};
}

double fednova_normalizer(int64_t steps, double rho) {
  const auto tau = static_cast<double>(steps);
  if (rho == 0.0) return tau;
  return (tau - rho * (1.0 - std::pow(rho, tau)) / (1.0 - rho)) / (1.0 - rho);
}

double fednova_aux_bound(const config::Config& cfg) {
  if (cfg.strategy.name != config::StrategyName::kFedNova) return 0.0;
  const auto records = static_cast<int64_t>(std::ceil(cfg.secure_aggregation.max_weight));
  const int64_t b = std::max(1, cfg.local.batch_size);
  const int64_t steps = int64_t{std::max(1, cfg.local.epochs)} * ((records + b - 1) / b);
  return fednova_normalizer(std::max<int64_t>(1, steps), cfg.local.momentum);
}

Result<SiloExtras> FedNova::silo_extras(std::span<const float> /*local*/,
                                        std::span<const float> /*global*/, int64_t steps,
                                        double /*lr*/, double momentum) {
  if (steps <= 0) return SiloExtras{1.0, {}, 0.0};  // nothing trained: a zero update
  const double a = fednova_normalizer(steps, momentum);
  return SiloExtras{a, {}, a};
}

Status FedNova::aggregate(int round, std::span<float> global, const Combined& sums) {
  FEDSILO_CHECK(check_sums(round, global, sums));
  // w += tau_eff * sum n_s d_s / sum n_s, where the sum carries n_s (y_s - w) / a_s.
  const auto scale = static_cast<float>(sums.aux_mean / sums.weight_sum);
  for (size_t i = 0; i < global.size(); ++i) global[i] += sums.sum[i] * scale;
  return {};
}

ServerOptimizer::ServerOptimizer(const config::Config& cfg)
    : FedAvg(cfg.run.seed, cfg.strategy.fraction),
      kind_(cfg.strategy.name),
      lr_(static_cast<float>(cfg.strategy.server_lr)),
      momentum_(static_cast<float>(cfg.strategy.server_momentum)),
      beta1_(static_cast<float>(cfg.strategy.beta1)),
      beta2_(static_cast<float>(cfg.strategy.beta2)),
      tau_(static_cast<float>(cfg.strategy.tau)) {}

void ServerOptimizer::set_length(int64_t length, int /*num_silos*/) {
  const auto n = static_cast<size_t>(length);
  m_.assign(n, 0.0f);
  // FedAvgM has one vector; the adaptive ones start v at tau^2 (Reddi et al., Algorithm 2).
  if (kind_ == config::StrategyName::kFedAvgM) {
    v_.clear();
  } else {
    v_.assign(n, tau_ * tau_);
  }
}

std::vector<std::pair<std::string, std::vector<float>*>> ServerOptimizer::server_state() {
  if (kind_ == config::StrategyName::kFedAvgM) return {{"server_velocity", &m_}};
  return {{"server_m", &m_}, {"server_v", &v_}};
}

Status ServerOptimizer::aggregate(int round, std::span<float> global, const Combined& sums) {
  FEDSILO_CHECK(check_sums(round, global, sums));
  if (m_.size() != global.size()) {
    return internal_error("aggregate: the server state's length differs from the model's");
  }
  const std::span<const float> weighted_sum = sums.sum;
  const auto inv = static_cast<float>(1.0 / sums.weight_sum);
  const size_t n = global.size();
  using config::StrategyName;
  if (kind_ == StrategyName::kFedAvgM) {
    for (size_t i = 0; i < n; ++i) {
      m_[i] = momentum_ * m_[i] + weighted_sum[i] * inv;
      global[i] += lr_ * m_[i];
    }
    return {};
  }
  const float b1 = beta1_, b2 = beta2_;
  for (size_t i = 0; i < n; ++i) {
    const float d = weighted_sum[i] * inv;
    const float d2 = d * d;
    m_[i] = b1 * m_[i] + (1.0f - b1) * d;
    float& v = v_[i];
    switch (kind_) {
      case StrategyName::kFedAdagrad: v = v + d2; break;
      case StrategyName::kFedAdam: v = b2 * v + (1.0f - b2) * d2; break;
      default: {  // fedyogi: v moves toward Delta^2 by (1 - b2) Delta^2 at most
        const float diff = v - d2;
        const float sign = diff > 0.0f ? 1.0f : (diff < 0.0f ? -1.0f : 0.0f);
        v = v - (1.0f - b2) * d2 * sign;
      }
    }
    global[i] += lr_ * m_[i] / (std::sqrt(v) + tau_);
  }
  return {};
}

Result<std::unique_ptr<Strategy>> make_strategy(const config::Config& cfg) {
  const auto& s = cfg.strategy;
  switch (s.name) {
    case config::StrategyName::kFedAvg:
      return std::unique_ptr<Strategy>(new FedAvg(cfg.run.seed, s.fraction));
    case config::StrategyName::kFedProx:
      return std::unique_ptr<Strategy>(new FedProx(cfg.run.seed, s.fraction, s.mu));
    case config::StrategyName::kFedAvgM:
    case config::StrategyName::kFedAdagrad:
    case config::StrategyName::kFedAdam:
    case config::StrategyName::kFedYogi:
      return std::unique_ptr<Strategy>(new ServerOptimizer(cfg));
    case config::StrategyName::kScaffold:
      return std::unique_ptr<Strategy>(new Scaffold(cfg.run.seed, s.fraction));
    case config::StrategyName::kFedNova:
      return std::unique_ptr<Strategy>(new FedNova(cfg.run.seed, s.fraction));
  }
  return invalid_argument("strategy.name: unknown strategy " +
                          std::to_string(static_cast<int>(s.name)));
}

}  // namespace fedsilo::fl
