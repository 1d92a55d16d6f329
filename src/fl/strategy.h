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
  /// Sizes the server state for a model of `length` parameters (fresh values; a resume then
  /// reads the checkpoint's into server_state()).
  virtual void set_length(int64_t length) {}
  /// The server step's state, replicated on every rank and kept in the global checkpoint
  /// (named vectors; empty for strategies without state).
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::vector<float>*>> server_state() {
    return {};
  }

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

/// A server optimizer on the pseudo-gradient Delta = weighted_sum / weight_sum (the weighted
/// mean of w_s - w over the sampled silos), FedOpt's Algorithm 2 (Reddi et al., ICLR 2021) as
/// the paper writes it, without bias correction, v starting at tau^2:
///   fedavgm    (Hsu et al. 2019)  v = momentum v + Delta;                 w += server_lr v
///   fedadagrad m = b1 m + (1 - b1) Delta;  v = v + Delta^2;              w += lr m / (sqrt(v) + tau)
///   fedadam    m as above;                 v = b2 v + (1 - b2) Delta^2;  (same step)
///   fedyogi    m as above;                 v = v - (1 - b2) Delta^2 sign(v - Delta^2)
/// Its state (m, v) is in float, the same on every rank, and checkpointed.
class ServerOptimizer : public FedAvg {
 public:
  ServerOptimizer(const config::Config& cfg);
  [[nodiscard]] std::string name() const override { return config::name(kind_); }
  [[nodiscard]] Status aggregate(int round, std::span<float> global,
                                 std::span<const float> weighted_sum, double weight_sum) override;
  void set_length(int64_t length) override;
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> server_state() override;

 private:
  config::StrategyName kind_;
  float lr_, momentum_, beta1_, beta2_, tau_;
  std::vector<float> m_, v_;  // fedavgm keeps its velocity in m_
};

/// The strategy named by `[strategy] name`.
[[nodiscard]] Result<std::unique_ptr<Strategy>> make_strategy(const config::Config& cfg);

}  // namespace fedsilo::fl
