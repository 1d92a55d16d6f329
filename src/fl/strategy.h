// Federated strategies in Flower's shape: configure a round (who trains, with which local
// options), then aggregate what came back into the next global model. In allreduce trust mode
// the server step runs replicated on every rank and must be deterministic.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "model/trainer.h"

namespace fedsilo::fl {

struct RoundPlan {
  int round = 0;                // 1-based
  std::vector<int> sampled;     // silo indices taking part, ascending
  [[nodiscard]] bool includes(int silo) const;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Which silos train in `round`: max(1, round(fraction * silos)) of them, drawn with
  /// Philox(seed, round, 0, kSampling); identical on every rank.
  [[nodiscard]] virtual RoundPlan configure_round(int round, int num_silos) const;
  /// Adjusts a sampled silo's local training options (FedProx sets the proximal term).
  virtual void configure_local(model::LocalTrainOptions& opts) const {}
  /// Server step. `weighted_sum` = sum over sampled silos of n_s * (w_s - w_global),
  /// `weight_sum` = sum of their n_s. Updates `global` in place.
  [[nodiscard]] virtual Status aggregate(int round, std::span<float> global,
                                         std::span<const float> weighted_sum,
                                         double weight_sum) = 0;

 protected:
  Strategy(uint64_t seed, double fraction) : seed_(seed), fraction_(fraction) {}
  uint64_t seed_;
  double fraction_;
};

/// FedAvg (McMahan et al. 2017): the sample-weighted mean of the local models.
class FedAvg : public Strategy {
 public:
  FedAvg(uint64_t seed, double fraction) : Strategy(seed, fraction) {}
  [[nodiscard]] std::string name() const override { return "fedavg"; }
  [[nodiscard]] Status aggregate(int round, std::span<float> global,
                                 std::span<const float> weighted_sum, double weight_sum) override;
};

/// FedProx (Li et al. 2020): FedAvg aggregation, local objective + mu/2 ||w - w_global||^2.
class FedProx : public FedAvg {
 public:
  FedProx(uint64_t seed, double fraction, double mu) : FedAvg(seed, fraction), mu_(mu) {}
  [[nodiscard]] std::string name() const override { return "fedprox"; }
  void configure_local(model::LocalTrainOptions& opts) const override;

 private:
  double mu_;
};

/// The strategy named by `[strategy] name`.
[[nodiscard]] Result<std::unique_ptr<Strategy>> make_strategy(const config::Config& cfg);

}  // namespace fedsilo::fl
