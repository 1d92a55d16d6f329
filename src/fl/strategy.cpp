// FedAvg and FedProx, and the seeded silo sampler they share.
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

Status FedAvg::aggregate(int round, std::span<float> global, std::span<const float> weighted_sum,
                         double weight_sum) {
  if (global.size() != weighted_sum.size()) {
    return internal_error("aggregate: update length differs from the model's");
  }
  if (!(weight_sum > 0.0)) {
    return failed_precondition("round " + std::to_string(round) + ": no samples were aggregated");
  }
  const auto inv = static_cast<float>(1.0 / weight_sum);
  for (size_t i = 0; i < global.size(); ++i) global[i] += weighted_sum[i] * inv;
  return {};
}

void FedProx::configure_local(model::LocalTrainOptions& opts) const {
  opts.prox_mu = static_cast<float>(mu_);
}

Result<std::unique_ptr<Strategy>> make_strategy(const config::Config& cfg) {
  const auto& s = cfg.strategy;
  switch (s.name) {
    case config::StrategyName::kFedAvg:
      return std::unique_ptr<Strategy>(new FedAvg(cfg.run.seed, s.fraction));
    case config::StrategyName::kFedProx:
      return std::unique_ptr<Strategy>(new FedProx(cfg.run.seed, s.fraction, s.mu));
  }
  return invalid_argument("strategy.name: unknown strategy " +
                          std::to_string(static_cast<int>(s.name)));
}

}  // namespace fedsilo::fl
