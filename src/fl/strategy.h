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
#include "fl/aggregation.h"
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
  /// Adjusts a sampled silo's local training options before it trains in a round (FedProx sets
  /// the proximal term, SCAFFOLD the correction c - c_s).
  virtual void configure_local(model::LocalTrainOptions& opts) {}
  /// Floats a silo sends after its model update (SCAFFOLD: its control-variate update).
  [[nodiscard]] virtual int64_t tail_length() const { return 0; }
  /// After a sampled silo trained `steps` optimizer steps with learning rate `lr` and momentum
  /// `momentum` from `global` to `local`: what it sends besides its weighted update (SCAFFOLD
  /// also moves its control variate here). The spans it returns stay valid until the next
  /// call. Local.
  [[nodiscard]] virtual Result<SiloExtras> silo_extras(std::span<const float> local,
                                                       std::span<const float> global,
                                                       int64_t steps, double lr, double momentum) {
    return SiloExtras{};
  }
  /// Server step on the round's sums: `sums.sum` = sum over sampled silos of their
  /// contributions (n_s (w_s - w_global), then the tail), `sums.weight_sum` = sum of their n_s.
  /// Updates `global` in place.
  [[nodiscard]] virtual Status aggregate(int round, std::span<float> global,
                                         const Combined& sums) = 0;
  /// Sizes the state for a model of `length` parameters and `num_silos` silos (fresh values; a
  /// resume then reads the checkpoint's into server_state() and silo_state()).
  virtual void set_length(int64_t length, int num_silos) {}
  /// The server step's state, replicated on every rank and kept in the global checkpoint
  /// (named vectors; empty for strategies without state).
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::vector<float>*>> server_state() {
    return {};
  }
  /// This silo's private state (SCAFFOLD's c_s), kept in its private checkpoint, never sent.
  [[nodiscard]] virtual std::vector<std::pair<std::string, std::vector<float>*>> silo_state() {
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
  [[nodiscard]] Status aggregate(int round, std::span<float> global, const Combined& sums) override;

 protected:
  /// The checks every server step makes: the sum's length is the model's plus the tail, and
  /// some weight was aggregated.
  [[nodiscard]] Status check_sums(int round, std::span<const float> global,
                                  const Combined& sums) const;
};

/// FedProx (Li et al. 2020): FedAvg aggregation, local objective + mu/2 ||w - w_global||^2.
class FedProx : public FedAvg {
 public:
  FedProx(uint64_t seed, double fraction, double mu) : FedAvg(seed, fraction), mu_(mu) {}
  [[nodiscard]] std::string name() const override { return "fedprox"; }
  void configure_local(model::LocalTrainOptions& opts) override;

 private:
  double mu_;
};

/// SCAFFOLD (Karimireddy et al., ICML 2020), option II. Each silo keeps a control variate c_s,
/// the server c, both zero at the start, one value per parameter (every parameter of a
/// built-in model is trainable). A sampled silo trains with y -= lr (g - c_s + c), the
/// correction applied after each momentum SGD step as NIID-Bench's reference code does; after
/// K steps c_s+ = c_s - c + (w - y) / (K lr). It sends n_s (y - w) and c_s+ - c_s; the server
/// takes the sample-weighted mean of the model updates (as FedAvg) and c += (1/N) sum of the
/// control updates, N the number of silos (partial participation as in the paper).
class Scaffold : public FedAvg {
 public:
  Scaffold(uint64_t seed, double fraction) : FedAvg(seed, fraction) {}
  [[nodiscard]] std::string name() const override { return "scaffold"; }
  void configure_local(model::LocalTrainOptions& opts) override;
  [[nodiscard]] int64_t tail_length() const override { return static_cast<int64_t>(c_.size()); }
  [[nodiscard]] Result<SiloExtras> silo_extras(std::span<const float> local,
                                               std::span<const float> global, int64_t steps,
                                               double lr, double momentum) override;
  [[nodiscard]] Status aggregate(int round, std::span<float> global, const Combined& sums) override;
  void set_length(int64_t length, int num_silos) override;
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> server_state() override {
    return {{"scaffold_c", &c_}};
  }
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> silo_state() override {
    return {{"scaffold_c_silo", &c_silo_}};
  }
  /// c - c_s, the round's correction (after configure_local).
  [[nodiscard]] std::span<const float> correction() const { return correction_; }

 private:
  int num_silos_ = 1;
  std::vector<float> c_, c_silo_, correction_, delta_;
};

/// FedNova's normalizer (Wang et al., NeurIPS 2020) for `steps` SGD steps with momentum rho:
/// a = (steps - rho (1 - rho^steps) / (1 - rho)) / (1 - rho); `steps` for rho = 0.
[[nodiscard]] double fednova_normalizer(int64_t steps, double rho);
/// The largest a_s any silo can have under `cfg` (steps = local.epochs x
/// ceil(secure_aggregation.max_weight / local.batch_size)): the bound secure aggregation codes
/// a_s against. 0 unless strategy.name = "fednova".
[[nodiscard]] double fednova_aux_bound(const config::Config& cfg);

/// FedNova: a silo that took tau_s steps with momentum rho sends n_s (y_s - w) / a_s and a_s;
/// the server steps by tau_eff = sum p_s a_s times the p-weighted mean of (y_s - w) / a_s,
/// p_s = n_s / n.
class FedNova : public FedAvg {
 public:
  FedNova(uint64_t seed, double fraction) : FedAvg(seed, fraction) {}
  [[nodiscard]] std::string name() const override { return "fednova"; }
  [[nodiscard]] Result<SiloExtras> silo_extras(std::span<const float> local,
                                               std::span<const float> global, int64_t steps,
                                               double lr, double momentum) override;
  [[nodiscard]] Status aggregate(int round, std::span<float> global, const Combined& sums) override;
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
  [[nodiscard]] Status aggregate(int round, std::span<float> global, const Combined& sums) override;
  void set_length(int64_t length, int num_silos) override;
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> server_state() override;

 private:
  config::StrategyName kind_;
  float lr_, momentum_, beta1_, beta2_, tau_;
  std::vector<float> m_, v_;  // fedavgm keeps its velocity in m_
};

/// The strategy named by `[strategy] name`.
[[nodiscard]] Result<std::unique_ptr<Strategy>> make_strategy(const config::Config& cfg);

}  // namespace fedsilo::fl
