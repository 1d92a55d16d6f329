// fl::Session: a federation whose local training is the caller's (the Python binding).
#include "fl/session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_file.h"
#include "core/philox.h"
#include "data/dataset.h"
#include "fl/aggregation.h"
#include "fl/federation.h"
#include "fl/report.h"
#include "fl/round_step.h"
#include "fl/run_dir.h"
#include "fl/strategy.h"
#include "mpi/device_allreduce.h"

namespace fedsilo::fl {
namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A built-in model.arch asks the caller's network to be that architecture, tensor for tensor
// (so model.h5 is fedsilo's layout and `fedsilo eval` runs it).
Status check_builtin_layout(const model::Model& net, std::span<const model::ParamInfo> table) {
  const auto& mine = net.params();
  const std::string arch = net.spec().arch;
  if (mine.size() != table.size()) {
    return invalid_argument("model.arch = \"" + arch + "\" has " + std::to_string(mine.size()) +
                            " parameter tensors, the PyTorch model " + std::to_string(table.size()) +
                            " (use model.arch = \"pytorch\" for a network of your own)");
  }
  for (size_t i = 0; i < mine.size(); ++i) {
    if (mine[i].shape != table[i].shape) {
      return invalid_argument("model.arch = \"" + arch + "\": tensor " + std::to_string(i) + " is " +
                              mine[i].name + " " + shape_text(mine[i].shape) + ", the PyTorch model's " +
                              table[i].name + " is " + shape_text(table[i].shape) +
                              " (use model.arch = \"pytorch\" for a network of your own)");
    }
  }
  return {};
}

}  // namespace

Session::Session(const config::Config& cfg, const SessionOptions& opts, mpi::Comm& comm)
    : cfg_(cfg), opts_(opts), comm_(comm), hash_(config::resume_hash(cfg)) {}

Session::~Session() = default;

Result<std::unique_ptr<Session>> Session::open(const config::Config& cfg, const SessionOptions& opts,
                                               mpi::Comm& comm) {
  std::unique_ptr<Session> s(new Session(cfg, opts, comm));
  const int rank = comm.rank(), size = comm.size();
  Status st;
  if (cfg.privacy.level == config::PrivacyLevel::kSample) {
    st = invalid_argument("privacy.level = \"sample\" is DP-SGD inside fedsilo's own training; in a "
                          "PyTorch loop it is the user's: use Opacus there (and privacy.level = \"none\")");
  }
  FEDSILO_CHECK(comm.agree(st));

  // ---- silos and ranks (under the Slurm plugin the manifest defines the silos)
  const char* plugin_data = std::getenv("FEDSILO_DATA_DIR");
  if (plugin_data == nullptr || *plugin_data == '\0') {
    auto n = count_silos(cfg.data.silos_dir, opts.config_path);
    st = n.status();
    if (n.ok() && n.value() != size) {
      st = invalid_argument("rank count " + std::to_string(size) + " differs from the silo count " +
                            std::to_string(n.value()) + " in " + cfg.data.silos_dir +
                            " (run one rank per silo: mpirun -np " + std::to_string(n.value()) + ")");
    }
    FEDSILO_CHECK(comm.agree(st));
  }
  const SiloLocation where = silo_location(cfg, rank, size);
  s->silo_name_ = where.name;
  s->silo_dir_ = where.dir;

  // ---- run directory: fresh, overwrite or resume (rank 0 decides, everyone agrees)
  std::string finished;
  if (rank == 0) {
    auto started = start_run_dir(cfg, opts.overwrite, opts.resume);
    st = started.status();
    if (started.ok()) {
      s->resume_from_ = started->resume_from;
      s->resumed_algorithm_ = started->resumed_algorithm;
      s->resumed_layout_ = started->resumed_layout;
      finished = started->finished ? "1" : "";
    }
  }
  FEDSILO_CHECK(comm.agree(st));
  FEDSILO_CHECK(comm.broadcast(finished, 0));
  FEDSILO_CHECK(comm.broadcast(s->resume_from_, 0));
  FEDSILO_CHECK(comm.broadcast(s->resumed_algorithm_, 0));
  FEDSILO_CHECK(comm.broadcast(s->resumed_layout_, 0));
  s->finished_ = !finished.empty();
  st = Status();
  if (!s->resume_from_.empty()) {
    auto loaded = checkpoint::read_model_file(s->resume_from_);
    st = loaded.status();
    if (st.ok()) {
      s->global_ = std::move(loaded->params);
      s->start_round_ = loaded->meta.round;
    }
  }
  FEDSILO_CHECK(comm.agree(st));
  auto priv = checkpoint::silo_private_dir(cfg.run.out_dir, s->silo_name_);
  st = priv.status();
  if (priv.ok()) {
    s->private_dir_ = priv.value();
    if (s->start_round_ > 0) st = checkpoint::check_silo_state(s->private_dir_, s->start_round_, s->silo_name_);
    std::vector<nlohmann::json> mine;
    if (st.ok()) st = truncate_metrics(s->private_dir_ + "/metrics.jsonl", s->start_round_, mine);
  }
  FEDSILO_CHECK(comm.agree(st));
  if (rank == 0) {
    std::vector<nlohmann::json> history;
    st = truncate_metrics(cfg.run.out_dir + "/metrics.jsonl", s->start_round_, history);
  }
  FEDSILO_CHECK(comm.agree(st));
  auto strategy = make_strategy(cfg);
  FEDSILO_CHECK(comm.agree(strategy.status()));
  s->strategy_ = std::move(strategy).value();
  return s;
}

bool Session::sampled(int64_t round) const {
  return strategy_->configure_round(static_cast<int>(round), comm_.size()).includes(comm_.rank());
}

uint64_t Session::seed(int64_t round) const {
  Philox rng(cfg_.run.seed, static_cast<uint32_t>(round), static_cast<uint32_t>(comm_.rank()),
             RngPurpose::kUser);
  return rng.next_u64();
}

Status Session::start(const Status& local, std::span<float> params, std::vector<model::ParamInfo> table,
                      std::vector<uint8_t>& user_state, int cuda_device) {
  FEDSILO_CHECK(comm_.agree(local.ok() && started() ? invalid_argument("start() was called twice") : local));
  const int rank = comm_.rank(), size = comm_.size();
  const auto n = static_cast<int64_t>(params.size());

  // Every rank must bind the same network: compare the parameter counts. And where each
  // rank's parameters live (a CUDA device, or -1: host memory), for the device sum.
  // A GPU this fedsilo cannot sum on (built without CUDA, say) is staged through host memory.
  const bool usable = cuda_device >= 0 &&
                      mpi::DeviceAllreduce::check(config::name(cfg_.device.reduce), cuda_device).ok();
  const int64_t mine[2] = {n, usable ? cuda_device : -1};
  std::vector<int64_t> gathered;
  FEDSILO_CHECK(comm_.allgather(std::span<const int64_t>(mine, 2), gathered));
  std::vector<int64_t> counts(static_cast<size_t>(size));
  bool all_on_devices = true;
  for (size_t q = 0; q < counts.size(); ++q) {
    counts[q] = gathered[2 * q];
    all_on_devices = all_on_devices && gathered[2 * q + 1] >= 0;
  }
  if (std::any_of(counts.begin(), counts.end(), [&](int64_t c) { return c != counts[0]; })) {
    std::string each;
    for (int q = 0; q < size; ++q) each += (q ? ", " : "") + std::string("rank ") + std::to_string(q) + ": " + std::to_string(counts[static_cast<size_t>(q)]);
    return invalid_argument("the model's parameter count differs across ranks (" + each +
                            "): every silo must build the same network");
  }
  Status st;
  if (n == 0) st = invalid_argument("the model has no parameters to federate");
  if (st.ok() && cfg_.model.arch != config::Arch::kPytorch) {
    // A built-in arch: its spec from the global test file's sample shape and classes.
    model::ModelSpec spec{config::name(cfg_.model.arch), cfg_.model.hidden, {1, 28, 28}, 10};
    auto test = data::read_dataset(cfg_.data.test_file);
    st = test.status();
    if (st.ok()) {
      spec.input_chw = test->chw;
      spec.num_classes = test->num_classes;
      auto net = model::Model::build(spec);
      st = net.status();
      if (st.ok()) st = check_builtin_layout(net.value(), table);
      if (st.ok()) {
        spec_ = net->spec();
        table_ = net->params();
      }
    }
  } else {
    spec_ = model::ModelSpec{"pytorch", {}, {0, 0, 0}, 0};
    table_ = std::move(table);
  }
  if (st.ok() && !global_.empty() && static_cast<int64_t>(global_.size()) != n) {
    st = invalid_argument("--resume: " + resume_from_ + " holds " + std::to_string(global_.size()) +
                          " parameters, the model " + std::to_string(n) + " (the network changed)");
  }
  FEDSILO_CHECK(comm_.agree(st));

  if (global_.empty()) {  // fresh start: rank 0's initial values to every rank
    global_.assign(params.begin(), params.end());
    FEDSILO_CHECK(comm_.broadcast(std::span<float>(global_), 0));
  }
  std::copy(global_.begin(), global_.end(), params.begin());

  strategy_->set_length(n, comm_.size());
  // What a silo sends: its model update, then the strategy's tail (SCAFFOLD's control update).
  const int64_t length = n + strategy_->tail_length();
  if (start_round_ > 0 && !strategy_->server_state().empty()) {
    FEDSILO_CHECK(comm_.agree(checkpoint::read_named_vectors(resume_from_, strategy_->server_state())));
  }
  auto exchange = UpdateExchange::create(cfg_, comm_, length, resumed_algorithm_, -1);
  FEDSILO_CHECK(comm_.agree(exchange.status()));
  exchange_ = std::move(exchange).value();
  if (!resumed_layout_.empty() && exchange_->state_on_leaders() && resumed_layout_ != exchange_->layout()) {
    FEDSILO_CHECK(comm_.agree(invalid_argument(
        "--resume: the checkpoint was written with the ranks on nodes " + resumed_layout_ +
        ", this run has nodes " + exchange_->layout() +
        "; at compression.level = \"node\" the error-feedback state lives on the node leaders: "
        "run on the same layout")));
  }
  user_state.clear();
  if (start_round_ > 0) {
    FEDSILO_CHECK(comm_.agree(checkpoint::read_silo_state(private_dir_, start_round_,
                                                          silo_private_state(*exchange_, *strategy_),
                                                          &user_state)));
  }
  // The device sum where every rank's parameters are on a GPU and the update is plain: the
  // update is formed where the parameters are (the caller's CUDA tensor) and summed there.
  device_sum_ = all_on_devices && device_sum_applies(cfg_);
  DeviceSource device_params;
  if (device_sum_) {
    device_params = [](std::span<const float> local) { return DeviceParams{local.data(), nullptr}; };
  }
  auto aggregation = make_aggregation(cfg_, comm_, device_sum_ ? cuda_device : -1,
                                      std::move(device_params), *exchange_, length);
  FEDSILO_CHECK(aggregation.status());
  aggregation_ = std::move(aggregation).value();
  step_ = std::make_unique<RoundStep>(comm_, *aggregation_, *strategy_);

  if (rank == 0 && opts_.progress && !finished_) {
    std::printf("fedsilo: %s, %d silos on %s, PyTorch model (%lld parameters, model.arch %s), %s, %s, "
                "rounds %lld..%d%s\n",
                cfg_.run.name.c_str(), size, exchange_->topology().c_str(), static_cast<long long>(n),
                config::name(cfg_.model.arch), strategy_->name().c_str(), aggregation_->name().c_str(),
                static_cast<long long>(start_round_ + 1), cfg_.run.rounds,
                start_round_ > 0 ? " (resumed)" : "");
    std::fflush(stdout);
  }
  loop_start_ = round_start_ = Clock::now();
  return {};
}

std::span<const float> Session::correction() {
  if (!started()) return {};
  model::LocalTrainOptions lo;
  strategy_->configure_local(lo);
  return lo.correction;
}

Result<AggregateResult> Session::aggregate_at(const Status& local, int64_t round,
                                              std::span<float> params, float* device, int64_t n,
                                              double weight, const LocalSteps& steps) {
  const std::string where = "round " + std::to_string(round) + ", " + silo_name_ + ": ";
  Status st = local;
  if (st.ok() && !started()) st = invalid_argument("aggregate() before start(model)");
  if (st.ok() && (round < start_round_ + 1 || round > cfg_.run.rounds)) {
    st = invalid_argument("aggregate(): round " + std::to_string(round) + " is not a round of this run (" +
                          std::to_string(start_round_ + 1) + ".." + std::to_string(cfg_.run.rounds) + ")");
  }
  if (st.ok() && aggregated_round_ == round) st = invalid_argument(where + "aggregate() was called twice");
  if (st.ok() && (device != nullptr) != device_sum_) {
    st = internal_error(where + (device_sum_ ? "the rounds sum on the devices: aggregate_device()"
                                             : "aggregate_device() without the device sum"));
  }
  if (st.ok() && n != static_cast<int64_t>(global_.size())) {
    st = invalid_argument(where + "aggregate() got " + std::to_string(n) + " parameters, start() " +
                          std::to_string(global_.size()));
  }
  const bool trained = st.ok() && sampled(round);
  if (st.ok() && trained && !(weight > 0.0 && std::isfinite(weight))) {
    st = invalid_argument(where + "num_examples must be a positive number, got " + std::to_string(weight));
  }
  const auto strategy = cfg_.strategy.name;
  const bool counts_steps =
      strategy == config::StrategyName::kScaffold || strategy == config::StrategyName::kFedNova;
  if (st.ok() && trained && counts_steps && steps.steps <= 0) {
    st = invalid_argument(where + "strategy.name = \"" + config::name(strategy) +
                          "\" needs aggregate(..., steps=K): the optimizer steps this round "
                          "took (got " + std::to_string(steps.steps) + ")");
  }
  if (st.ok() && trained && counts_steps && !(steps.lr > 0.0 && steps.momentum >= 0.0 &&
                                              steps.momentum < 1.0)) {
    st = invalid_argument(where + "aggregate(): lr must be > 0 and momentum in [0, 1), got lr " +
                          std::to_string(steps.lr) + ", momentum " + std::to_string(steps.momentum));
  }
  FEDSILO_CHECK(comm_.agree(st));

  const auto t0 = Clock::now();
  train_seconds_ = seconds_between(round_start_, t0);
  exchange_stats_ = ExchangeStats{};
  SiloExtras extras;
  if (trained) {
    auto made = strategy_->silo_extras(params, global_, steps.steps, steps.lr, steps.momentum);
    st = made.status();
    if (made.ok()) extras = made.value();
  }
  const std::span<const float> local_params =
      device != nullptr ? std::span<const float>(device, static_cast<size_t>(n)) : params;
  if (st.ok()) st = step_->contribute(local_params, global_, weight, trained, extras);
  if (!st.ok()) st = Status(st.code(), where + st.message());
  FEDSILO_CHECK(comm_.agree(st));
  // The new global model into global_ and, in the same pass as its finiteness check, into the
  // caller's host buffer (a separate copy was another pass over both: benchmarks/RESULTS.md);
  // on the device sum, then uploaded into the caller's device buffer.
  FEDSILO_CHECK(
      step_->finish(static_cast<uint32_t>(round), trained, global_, exchange_stats_, params));
  if (device != nullptr) FEDSILO_CHECK(comm_.agree(DeviceUpdate::upload(global_, device, nullptr)));
  aggregated_at_ = Clock::now();
  agg_seconds_ = seconds_between(t0, aggregated_at_);
  aggregated_round_ = round;
  if (weight > 0.0 && std::isfinite(weight)) samples_ = static_cast<int64_t>(weight);

  // One small allreduce: the mean compression ratio over the silos that sent something, and
  // whether any rank was asked to stop (SIGUSR1) or to cancel (SIGINT, SIGTERM).
  const auto& xs = exchange_stats_;
  const bool sent = xs.payload_bytes > 0 && trained;
  const bool stop_here = opts_.stop_requested != nullptr && *opts_.stop_requested != 0;
  const bool cancel_here = opts_.cancel_requested != nullptr && *opts_.cancel_requested != 0;
  double parts[4] = {sent ? static_cast<double>(xs.dense_bytes) / static_cast<double>(xs.payload_bytes) : 0.0,
                     sent ? 1.0 : 0.0, stop_here ? 1.0 : 0.0, cancel_here ? 1.0 : 0.0};
  FEDSILO_CHECK(comm_.allreduce_sum(std::span<double>(parts, 4)));
  compression_ratio_ = parts[1] > 0 ? parts[0] / parts[1] : 1.0;
  cancelling_ = parts[3] > 0.0 && round < cfg_.run.rounds;
  stopping_ = (parts[2] > 0.0 || cancelling_) && round < cfg_.run.rounds;
  checkpoint_due_ = round % cfg_.run.checkpoint_every == 0 || round == cfg_.run.rounds || stopping_;
  return AggregateResult{checkpoint_due_};
}

Status Session::write_model(const std::string& path, int64_t round, const std::string& kind,
                            std::span<const float> params) {
  const checkpoint::ModelFileMeta meta{kind, round, hash_, exchange_->algorithm()};
  const auto server_state = strategy_->server_state();  // checkpoints keep the server optimizer's
  return checkpoint::write_model_file(path, spec_, table_, params, meta,
                                      kind == "checkpoint" ? &server_state : nullptr);
}

Status Session::write_checkpoint(int64_t round, const std::vector<uint8_t>* user_state) {
  CheckpointParts parts{hash_, exchange_->algorithm(), exchange_->layout(), private_dir_,
                        silo_private_state(*exchange_, *strategy_), user_state};
  return write_round_checkpoint(comm_, cfg_, round, parts, [&](const std::string& path) {
    return write_model(path, round, "checkpoint", global_);
  });
}

Status Session::end_round(const Status& local, int64_t round, const RoundLog& log,
                          const std::vector<uint8_t>& user_state) {
  Status st = local;
  if (st.ok() && aggregated_round_ != round) {
    st = invalid_argument("round " + std::to_string(round) + ", " + silo_name_ +
                          ": the round ended without aggregate(model, num_examples=...)");
  }
  FEDSILO_CHECK(comm_.agree(st));
  const auto t_eval_end = Clock::now();
  const bool secure = cfg_.secure_aggregation.enabled;
  const bool trained = sampled(round);

  // The global model's scores: every rank's share of the global test split, summed.
  double sums[3] = {log.global_correct, log.global_loss_sum, log.global_count};
  FEDSILO_CHECK(comm_.allreduce_sum(std::span<double>(sums, 3)));
  const bool evaluated = sums[2] > 0.0;

  const auto t_ckpt = Clock::now();
  if (checkpoint_due_) FEDSILO_CHECK(write_checkpoint(round, &user_state));
  const auto t_end = Clock::now();

  RankReport report;
  report.sampled = trained;
  report.samples = samples_;
  if (log.has_loss) report.train_loss = log.loss;
  if (log.has_own) {
    report.test_accuracy = log.test_accuracy;
    report.test_loss = log.test_loss;
  }
  const auto& xs = exchange_stats_;
  report.seconds = {train_seconds_, agg_seconds_, seconds_between(aggregated_at_, t_eval_end),
                    seconds_between(t_ckpt, t_end), seconds_between(round_start_, t_end),
                    xs.compress_seconds, xs.intra_seconds, xs.inter_seconds, xs.decompress_seconds};

  // The silo's own line: under secure aggregation its fields, and whatever else the caller
  // logged (values computed from its records, never shared).
  if (secure || !log.extra.empty()) {
    nlohmann::json mine = {{"round", round}, {"sampled", trained}, {"samples", samples_}};
    if (log.has_loss) mine["train_loss"] = log.loss;
    if (log.has_own) {
      mine["test_accuracy"] = log.test_accuracy;
      mine["test_loss"] = log.test_loss;
    }
    if (!log.extra.empty()) mine["user"] = log.extra;
    FEDSILO_CHECK(comm_.agree(append_json_line(private_dir_ + "/metrics.jsonl", mine)));
  }
  FEDSILO_ASSIGN_OR_RETURN(const std::vector<RankReport> reports,
                           gather_reports(comm_, secure ? public_part(report) : report));
  st = Status();
  if (comm_.rank() == 0) {
    RoundSummary summary;
    summary.round = round;
    summary.evaluated = evaluated;
    summary.accuracy = evaluated ? sums[0] / sums[2] : 0.0;
    summary.loss = evaluated ? sums[1] / sums[2] : 0.0;
    summary.bytes_sent = xs.bytes_sent();
    summary.bytes_received = xs.bytes_received();
    summary.intra_sent = xs.intra_bytes_sent;
    summary.intra_received = xs.intra_bytes_received;
    summary.inter_sent = xs.inter_bytes_sent;
    summary.inter_received = xs.inter_bytes_received;
    summary.compression_ratio = compression_ratio_;
    summary.reducer = aggregation_->name();
    summary.device = "pytorch";
    summary.silo_fields = !secure;
    nlohmann::json line = round_line(summary, reports);
    st = append_json_line(cfg_.run.out_dir + "/metrics.jsonl", line);
    if (opts_.progress) {
      double slowest = 0.0;
      for (const RankReport& r : reports) slowest = std::max(slowest, r.seconds[4]);
      if (evaluated) {
        std::printf("round %3lld/%d  acc %6.2f%%  loss %.4f  %5.2fs\n", static_cast<long long>(round),
                    cfg_.run.rounds, 100.0 * summary.accuracy, summary.loss, slowest);
      } else {
        std::printf("round %3lld/%d  (no eval)  %5.2fs\n", static_cast<long long>(round), cfg_.run.rounds,
                    slowest);
      }
      std::fflush(stdout);
    }
  }
  FEDSILO_CHECK(comm_.agree(st));
  round_start_ = Clock::now();
  if (cancelling_) {
    return {StatusCode::kCancelled, "a stop signal (SIGINT/SIGTERM): stopped after round " +
                                        std::to_string(round) + " of " + std::to_string(cfg_.run.rounds) +
                                        ", checkpointed; continue with --resume (FEDSILO_RESUME=1)"};
  }
  if (stopping_) {
    return {StatusCode::kInterrupted, "SIGUSR1: stopped after round " + std::to_string(round) + " of " +
                                          std::to_string(cfg_.run.rounds) +
                                          ", checkpointed; the job script requeues the job and resumes"};
  }
  return {};
}

Status Session::finish(const Status& local, std::span<const float> params) {
  Status st = local;
  if (st.ok() && !started()) st = invalid_argument("finish() before start(model)");
  if (st.ok() && !finished_ && aggregated_round_ != cfg_.run.rounds) {
    st = invalid_argument("finish() before the last round (" + std::to_string(cfg_.run.rounds) +
                          ") was aggregated");
  }
  FEDSILO_CHECK(comm_.agree(st));
  if (finished_) return {};  // model.h5 is the finished run's
  st = Status();
  if (comm_.rank() == 0) st = write_model(cfg_.run.out_dir + "/model.h5", cfg_.run.rounds, "model", params);
  return comm_.agree(st);
}

}  // namespace fedsilo::fl
