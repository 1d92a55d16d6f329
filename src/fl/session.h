// A federation driven round by round from outside fedsilo's own training (the Python binding,
// fedsilo.torch): the run directory, resume, the exchange and server step (fl::RoundStep),
// checkpoints and metrics of `fedsilo train`, with local training and evaluation left to the
// caller, who owns the flat parameter buffer.
//
// Every collective call begins with an agreement on the caller's local Status, so a rank that
// fails between calls (an exception in the user's loop) reaches the others through `fail()`,
// whichever collective call they are waiting in: all stop with the same message, none hangs.
#pragma once

#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "fl/update_exchange.h"
#include "model/model.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

class Aggregation;
class RoundStep;
class Strategy;

struct SessionOptions {
  bool resume = false;      // continue from the newest complete checkpoint (or start at 0)
  bool overwrite = false;   // replace an existing run in run.out_dir
  bool progress = true;     // rank 0 prints a line per round
  std::string config_path;  // for messages
  /// SIGUSR1 (checkpoint, then kInterrupted) and SIGINT/SIGTERM (kCancelled) flags, as for
  /// run_federation; checked by every rank in aggregate().
  const volatile std::sig_atomic_t* stop_requested = nullptr;
  const volatile std::sig_atomic_t* cancel_requested = nullptr;
};

/// What a caller logs for one round (all silo-private: computed from the silo's records).
struct RoundLog {
  bool has_loss = false;
  double loss = 0.0;  // the silo's training loss
  bool has_own = false;
  double test_accuracy = 0.0, test_loss = 0.0;  // the global model on the silo's own test split
  /// This rank's share of the global test split, summed over ranks into the line's `accuracy`
  /// and `loss` (counts are 0 where the caller did not evaluate).
  double global_correct = 0.0, global_loss_sum = 0.0, global_count = 0.0;
  nlohmann::json extra = nlohmann::json::object();  // any other values: the silo's metrics only
};

/// What the caller's local training did, for the strategies that need it (SCAFFOLD's control
/// variate, FedNova's normalizer): the optimizer steps taken, its learning rate and momentum.
struct LocalSteps {
  int64_t steps = 0;
  double lr = 0.0;
  double momentum = 0.0;
};

/// What aggregate() tells the caller about the rest of the round.
struct AggregateResult {
  bool checkpoint = false;  // end_round() writes a checkpoint: pass the registered state
};

class Session {
 public:
  /// Checks the silo count against the ranks, finds this rank's silo and starts the run
  /// directory (fresh, --overwrite or --resume). Refuses what the binding cannot run
  /// (privacy.level = "sample": DP-SGD in user code is the user's). Collective.
  [[nodiscard]] static Result<std::unique_ptr<Session>> open(const config::Config& cfg,
                                                             const SessionOptions& opts,
                                                             mpi::Comm& comm);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  [[nodiscard]] const config::Config& config() const { return cfg_; }
  [[nodiscard]] mpi::Comm& comm() { return comm_; }
  [[nodiscard]] const std::string& silo_name() const { return silo_name_; }
  [[nodiscard]] const std::string& silo_dir() const { return silo_dir_; }
  [[nodiscard]] const std::string& private_dir() const { return private_dir_; }
  [[nodiscard]] const std::string& test_file() const { return cfg_.data.test_file; }
  [[nodiscard]] int64_t start_round() const { return start_round_; }
  /// --resume of a run that has completed all its rounds: nothing to train.
  [[nodiscard]] bool finished() const { return finished_; }
  [[nodiscard]] bool started() const { return step_ != nullptr; }
  /// Whether this silo trains in `round` (the strategy's sampling, public and seeded).
  [[nodiscard]] bool sampled(int64_t round) const;
  /// A seed for the caller's randomness in `round` (Philox of run seed, round, silo, purpose).
  [[nodiscard]] uint64_t seed(int64_t round) const;
  /// The global model at the start of the current round (FedProx's anchor), after start().
  [[nodiscard]] std::span<const float> global() const { return global_; }

  /// Binds the caller's model: `params` (every rank's own initial values; the counts must agree)
  /// and its tensor table (for model.h5). Fresh start: rank 0's values to every rank. Resume:
  /// the checkpoint's values, and the silo's registered state into `user_state`. With a
  /// built-in model.arch the table must be that architecture's (names, shapes), so `fedsilo
  /// eval` can read model.h5. Collective.
  /// `cuda_device`: the CUDA device that holds the caller's parameters (-1: host memory; the
  /// values in `params` are a host copy). Where every rank's are on a GPU and the update is
  /// plain (no compression or secure aggregation, neither SCAFFOLD nor FedNova), the rounds sum
  /// on the devices (device_sum(): call aggregate_device); else, and where this fedsilo cannot
  /// sum on that device (built without CUDA), through host memory.
  [[nodiscard]] Status start(const Status& local, std::span<float> params,
                             std::vector<model::ParamInfo> table, std::vector<uint8_t>& user_state,
                             int cuda_device = -1);
  /// start() chose the device sum: the rounds go through aggregate_device.
  [[nodiscard]] bool device_sum() const { return device_sum_; }

  /// SCAFFOLD: the correction c - c_s the silo's local steps apply this round (after
  /// start(); valid until the next aggregate()); empty for the other strategies.
  [[nodiscard]] std::span<const float> correction();

  /// The round's step: this silo's update weight * (params - global) (zeros where not sampled,
  /// with what the strategy adds from `steps`), the sum over ranks, the server step; `params`
  /// becomes the new global model. Then whether any rank was asked to stop. SCAFFOLD and
  /// FedNova need `steps` where the silo trained. Collective.
  [[nodiscard]] Result<AggregateResult> aggregate(const Status& local, int64_t round,
                                                  std::span<float> params, double weight,
                                                  const LocalSteps& steps = {}) {
    return aggregate_at(local, round, params, nullptr, static_cast<int64_t>(params.size()), weight,
                        steps);
  }
  /// aggregate() on the device sum (device_sum()): `params` are n floats of device memory on
  /// start()'s cuda_device, with the caller's work on them complete. The update is formed and
  /// summed on the devices; the new global model is in `params` when the call returns.
  [[nodiscard]] Result<AggregateResult> aggregate_device(const Status& local, int64_t round,
                                                         float* params, int64_t n, double weight,
                                                         const LocalSteps& steps = {}) {
    return aggregate_at(local, round, {}, params, n, weight, steps);
  }

  /// Ends `round`: the metrics line (the silo's fields private under secure aggregation), the
  /// checkpoint where due (with `user_state`), and kInterrupted / kCancelled where a rank was
  /// asked to stop (after the checkpoint). Collective.
  [[nodiscard]] Status end_round(const Status& local, int64_t round, const RoundLog& log,
                                 const std::vector<uint8_t>& user_state);

  /// Writes model.h5 (rank 0) from the final `params`. Collective.
  [[nodiscard]] Status finish(const Status& local, std::span<const float> params);

  /// A failure on this rank outside any call: agrees on it, so ranks waiting in a collective
  /// call of the session return it too. Collective (matches any call's first agreement).
  [[nodiscard]] Status fail(const Status& local) { return comm_.agree(local); }

 private:
  Session(const config::Config& cfg, const SessionOptions& opts, mpi::Comm& comm);
  // aggregate() with the parameters in host memory (`host`, n floats) or, on the device sum,
  // in device memory (`device`, n floats; `host` empty).
  [[nodiscard]] Result<AggregateResult> aggregate_at(const Status& local, int64_t round,
                                                     std::span<float> host, float* device,
                                                     int64_t n, double weight,
                                                     const LocalSteps& steps);
  [[nodiscard]] Status write_checkpoint(int64_t round, const std::vector<uint8_t>* user_state);
  [[nodiscard]] Status write_model(const std::string& path, int64_t round, const std::string& kind,
                                   std::span<const float> params);

  config::Config cfg_;
  SessionOptions opts_;
  mpi::Comm& comm_;
  std::string hash_, silo_name_, silo_dir_, private_dir_;
  std::string resume_from_, resumed_algorithm_, resumed_layout_;
  int64_t start_round_ = 0;
  bool finished_ = false;
  int64_t samples_ = 0;  // the weight the silo last gave (its report's sample count)

  std::unique_ptr<Strategy> strategy_;
  std::unique_ptr<UpdateExchange> exchange_;
  std::unique_ptr<Aggregation> aggregation_;
  std::unique_ptr<RoundStep> step_;
  model::ModelSpec spec_;
  std::vector<model::ParamInfo> table_;
  std::vector<float> global_;
  bool device_sum_ = false;

  // The round in flight: when it started, what aggregate() measured and decided.
  using Clock = std::chrono::steady_clock;
  Clock::time_point round_start_, aggregated_at_, loop_start_;
  int64_t aggregated_round_ = 0;
  double train_seconds_ = 0.0, agg_seconds_ = 0.0, compression_ratio_ = 1.0;
  bool checkpoint_due_ = false, stopping_ = false, cancelling_ = false;
  ExchangeStats exchange_stats_;
};

}  // namespace fedsilo::fl
