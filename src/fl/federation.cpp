// The federation round loop (allreduce trust mode), run directory handling, metrics, resume.
#include "fl/federation.h"

#include <algorithm>
#include <csignal>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "checkpoint/checkpoint.h"
#include "checkpoint/model_file.h"
#include "core/fs.h"
#include "data/dataset.h"
#include "data/partition.h"
#include "fl/aggregation.h"
#include "fl/backend.h"
#include "fl/report.h"
#include "fl/round_step.h"
#include "fl/run_dir.h"
#include "fl/strategy.h"
#include "model/gpu_trainer.h"
#include "model/model.h"
#include "model/trainer.h"
#include "fl/update_exchange.h"
#include "privacy/accountant.h"
#include "privacy/dp_random.h"
#include "kernels/cpu/cpu_level.h"
#include "kernels/cpu/gemm.h"
#include "mpi/device_allreduce.h"

namespace fedsilo::fl {
namespace stdfs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// An epsilon, delta or noise multiplier in messages and progress lines: 4 significant digits.
std::string format_epsilon(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string format_duration(double s) {
  const auto total = static_cast<long long>(std::llround(std::max(0.0, s)));
  char buf[32];
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", total / 3600, (total / 60) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", total / 60, total % 60);
  }
  return buf;
}

// The progress line of a round (rank 0): the global model's scores, the silos' own accuracy
// (min/mean/max; not under secure aggregation, where it stays with each silo), the slowest
// rank's round time and the time left.
// `home` (not empty under secure aggregation or differential privacy, where each silo keeps its
// own scores) replaces the silos' accuracies: "secure aggregation", "epsilon 2.31".
void print_progress(int64_t round, int64_t start_round, int rounds, double elapsed, bool evaluated,
                    double accuracy, double loss, std::span<const RankReport> reports,
                    const std::string& home) {
  double acc_min = 1.0, acc_max = 0.0, acc_sum = 0.0, round_seconds = 0.0;
  for (const RankReport& r : reports) {
    acc_min = std::min(acc_min, r.test_accuracy);
    acc_max = std::max(acc_max, r.test_accuracy);
    acc_sum += r.test_accuracy;
    round_seconds = std::max(round_seconds, r.seconds[4]);
  }
  const double eta = elapsed / static_cast<double>(round - start_round) * static_cast<double>(rounds - round);
  const auto r = static_cast<long long>(round);
  if (evaluated && !home.empty()) {
    std::printf("round %3lld/%d  acc %6.2f%%  loss %.4f  (%s)  %5.2fs  ETA %s\n", r, rounds,
                100.0 * accuracy, loss, home.c_str(), round_seconds, format_duration(eta).c_str());
  } else if (evaluated) {
    std::printf("round %3lld/%d  acc %6.2f%%  loss %.4f  silo acc %5.1f/%5.1f/%5.1f%%  %5.2fs  ETA %s\n",
                r, rounds, 100.0 * accuracy, loss, 100.0 * acc_min,
                100.0 * acc_sum / static_cast<double>(reports.size()), 100.0 * acc_max, round_seconds,
                format_duration(eta).c_str());
  } else {
    std::printf("round %3lld/%d  (no eval)  %5.2fs  ETA %s\n", r, rounds, round_seconds,
                format_duration(eta).c_str());
  }
  std::fflush(stdout);
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) {
    b /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", b, units[u]);
  return buf;
}

// Copies samples [begin, end) of `ds` (a rank's slice of the global test split).
data::Dataset slice(const data::Dataset& ds, int64_t begin, int64_t end) {
  data::Dataset out;
  out.chw = ds.chw;
  out.num_classes = ds.num_classes;
  out.name = ds.name;
  out.silo = ds.silo;
  const int64_t s = ds.sample_size();
  out.x.assign(ds.x.begin() + begin * s, ds.x.begin() + end * s);
  out.y.assign(ds.y.begin() + begin, ds.y.begin() + end);
  return out;
}

int default_threads(const mpi::Comm& comm) {
  // Under Slurm, the cores the job asked for per task (the script `fedsilo slurm` writes
  // always sets --cpus-per-task); else this node's cores shared among its ranks.
  if (const char* slurm = std::getenv("SLURM_CPUS_PER_TASK"); slurm != nullptr) {
    const int n = std::atoi(slurm);
    if (n > 0) return n;
  }
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1, static_cast<int>(hw) / std::max(1, comm.local_size()));
}

struct RoundMetrics {
  json line;
  double accuracy = 0.0;
  double loss = 0.0;
  std::vector<double> silo_accuracy;
};

// Reads what this rank needs; errors name the silo and the file.
Status load_silo(const config::Config& cfg, int rank, int size, SiloData& st) {
  st.silo = rank;
  const SiloLocation where = silo_location(cfg, rank, size);
  st.name = where.name;
  const std::string& dir = where.dir;
  auto train = data::read_dataset(dir + "/train.h5");
  if (!train.ok()) return {train.status().code(), st.name + ": " + train.status().message()};
  st.train = std::move(train).value();
  auto test = data::read_dataset(dir + "/test.h5");
  if (!test.ok()) return {test.status().code(), st.name + ": " + test.status().message()};
  st.test = std::move(test).value();
  FEDSILO_ASSIGN_OR_RETURN(data::Dataset global_test, data::read_dataset(cfg.data.test_file));
  if (global_test.chw != st.train.chw || global_test.num_classes != st.train.num_classes ||
      st.test.chw != st.train.chw || st.test.num_classes != st.train.num_classes) {
    return corrupt_data(st.name + ": sample shape or class count of " + dir +
                        "/train.h5 differs from its test.h5 or from " + cfg.data.test_file);
  }
  st.global_test_size = global_test.size();
  const int64_t n = global_test.size();
  st.global_test_slice = slice(global_test, n * rank / size, n * (rank + 1) / size);
  return {};
}

// "2 nodes x 2 ranks" (or "3 nodes with 2,1,1 ranks") for a layout "0,0,1,1".
std::string describe_layout(const std::string& layout, int* nodes, int* per_node) {
  std::vector<int> count;
  std::stringstream in(layout);
  for (std::string item; std::getline(in, item, ',');) {
    const int node = std::atoi(item.c_str());
    if (node >= static_cast<int>(count.size())) count.resize(static_cast<size_t>(node) + 1, 0);
    ++count[static_cast<size_t>(node)];
  }
  *nodes = static_cast<int>(count.size());
  *per_node = 0;
  if (std::all_of(count.begin(), count.end(), [&](int c) { return c == count.front(); })) {
    *per_node = count.empty() ? 0 : count.front();
    return std::to_string(*nodes) + (*nodes == 1 ? " node" : " nodes") + " x " +
           std::to_string(*per_node) + (*per_node == 1 ? " rank" : " ranks");
  }
  std::string each;
  for (int c : count) each += (each.empty() ? "" : ",") + std::to_string(c);
  return std::to_string(*nodes) + " nodes with " + each + " ranks";
}

// The refusal to resume a level-node run on another rank-to-node layout.
Status layout_changed(int64_t round, const std::string& before, const std::string& now) {
  int nodes = 0, per_node = 0, nodes_now = 0, per_node_now = 0;
  const std::string was = describe_layout(before, &nodes, &per_node);
  const std::string is = describe_layout(now, &nodes_now, &per_node_now);
  const std::string pin = per_node > 0 ? "sbatch --nodes=" + std::to_string(nodes) +
                                             " --ntasks-per-node=" + std::to_string(per_node)
                                       : "sbatch --nodes=" + std::to_string(nodes) +
                                             " with the same ranks on each node";
  return invalid_argument(
      "--resume: the checkpoint of round " + std::to_string(round) + " was written with the ranks on " +
      was + " (nodes " + before + "), this run has " + is + " (nodes " + now +
      "); at compression.level = \"node\" the error-feedback state lives on the node leaders, so "
      "the layout must stay: run on the same layout (" + pin +
      "; slurm.nodes and slurm.ranks_per_node make `fedsilo slurm` write them; emulated nodes: "
      "the same topology.emulated_nodes or FEDSILO_EMULATED_NODES)");
}

}  // namespace

SiloLocation silo_location(const config::Config& cfg, int rank, int size) {
  SiloLocation out{data::silo_dir_name(rank, size), ""};
  out.dir = cfg.data.silos_dir + "/" + out.name;
  // Under the Slurm plugin, the silo's data is mounted (read-only) at $FEDSILO_DATA_DIR and
  // other silos' directories cannot be opened; $FEDSILO_SILO is its name in the manifest.
  if (const char* d = std::getenv("FEDSILO_DATA_DIR"); d != nullptr && *d != '\0') {
    out.dir = d;
    if (const char* n = std::getenv("FEDSILO_SILO"); n != nullptr && *n != '\0') out.name = n;
  }
  return out;
}

Result<int> count_silos(const std::string& silos_dir, const std::string& config_path) {
  std::error_code ec;
  if (!stdfs::is_directory(silos_dir, ec)) {
    // Where the config says what makes its data (a "# data: ..." comment), say so.
    std::string made_by;
    std::ifstream in(config_path);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("# data:", 0) == 0) made_by += (made_by.empty() ? "" : " ") + line.substr(7);
    }
    const auto first = made_by.find_first_not_of(' ');
    made_by = first == std::string::npos ? std::string() : made_by.substr(first);
    return not_found("data.silos_dir: " + silos_dir +
                     (stdfs::exists(silos_dir, ec) ? " is not a directory" : " does not exist") +
                     (made_by.empty() ? "; make it with `fedsilo partition ... --out " + silos_dir + "`"
                                      : "; " + config_path + " says it is made by: " + made_by));
  }
  const std::regex re("silo-[0-9]+");
  int n = 0;
  for (const auto& e : stdfs::directory_iterator(silos_dir, ec)) {
    if (e.is_directory() && std::regex_match(e.path().filename().string(), re)) ++n;
  }
  if (n == 0) return not_found("data.silos_dir: " + silos_dir + " holds no silo-XX directories");
  return n;
}

Status run_federation(const config::Config& cfg, const FederationOptions& opts, mpi::Comm& comm) {
  const auto t_start = Clock::now();
  const int rank = comm.rank(), size = comm.size();
  const bool leader = rank == 0;
  const bool secure = cfg.secure_aggregation.enabled;  // only sums leave a silo
  const bool dp = cfg.privacy.level == config::PrivacyLevel::kSample;  // DP-SGD in every silo
  const bool keep_home = secure || dp;  // silo-private report fields stay in the silo's directory
  const std::string run_dir = cfg.run.out_dir;
  const std::string hash = config::resume_hash(cfg);
  if (cfg.model.arch == config::Arch::kPytorch) {
    return invalid_argument("model.arch = \"pytorch\": the model and its training are a Python entry "
                            "point's (fedsilo.torch; run it as run.command says, e.g. mpirun -np N "
                            "python3 train.py " + opts.config_path + "); `fedsilo train` trains the "
                            "built-in models (logreg, mlp, niid-cnn)");
  }

  // ---- CPU kernels: the level FEDSILO_CPU asks for must exist here
  const std::string cpu_error = kernels::cpu_level_error();
  FEDSILO_CHECK(comm.agree(cpu_error.empty() ? Status() : invalid_argument(cpu_error)));
  const std::string cpu = kernels::cpu_level_name(kernels::cpu_level());
  const std::string blas = kernels::blas_core_description();

  // ---- silos and ranks
  // Under the Slurm plugin the manifest defines the silos (it checked the task count).
  const char* plugin_data = std::getenv("FEDSILO_DATA_DIR");
  if (plugin_data == nullptr || *plugin_data == '\0') {
    auto n = count_silos(cfg.data.silos_dir, opts.config_path);
    Status st = n.status();
    if (n.ok() && n.value() != size) {
      st = invalid_argument("rank count " + std::to_string(size) + " differs from the silo count " +
                            std::to_string(n.value()) + " in " + cfg.data.silos_dir +
                            " (run one rank per silo: mpirun -np " + std::to_string(n.value()) + ")");
    }
    FEDSILO_CHECK(comm.agree(st));
  }
  SiloData silo;
  FEDSILO_CHECK(comm.agree(load_silo(cfg, rank, size, silo)));

  // ---- model
  model::ModelSpec spec{config::name(cfg.model.arch), cfg.model.hidden, silo.train.chw, silo.train.num_classes};
  auto built = model::Model::build(spec);
  FEDSILO_CHECK(comm.agree(built.status()));
  const model::Model& net = built.value();
  const int threads = cfg.local.threads > 0 ? cfg.local.threads : default_threads(comm);

  // ---- device ([device] kind): every rank resolves it, then all agree on one backend
  auto chosen = model::choose_device(config::name(cfg.device.kind), comm.local_rank());
  FEDSILO_CHECK(comm.agree(chosen.status()));
  model::DeviceChoice device = chosen.value();
  if (cfg.device.kind == config::DeviceKind::kAuto) {
    // CUDA only when every rank has a device: one backend for the whole federation.
    double with_gpu = device.cuda ? 1.0 : 0.0;
    FEDSILO_CHECK(comm.allreduce_sum(std::span<double>(&with_gpu, 1)));
    if (with_gpu < static_cast<double>(size)) device = model::DeviceChoice{};
  }
  // The backend lives for the whole run (a GPU's copy of the silo's data is uploaded once).
  auto backend_r = make_backend(net, device, silo,
                                threads, std::max(cfg.local.batch_size, cfg.eval.batch_size));
  FEDSILO_CHECK(comm.agree(backend_r.status()));
  Backend& backend = *backend_r.value();

  // ---- run directory: fresh, overwrite or resume (rank 0 decides, everyone agrees)
  int64_t start_round = 0;
  std::string resumed_algorithm;  // what the checkpoint's run used (reused over `auto`)
  std::string resumed_layout;     // the node of each rank when the checkpoint was written
  std::vector<float> global(static_cast<size_t>(net.num_params()));
  std::vector<json> history;
  {
    Status st;
    std::string resume_from;  // global checkpoint path, empty = fresh start
    std::string finished;     // "1": --resume of a run that has completed all its rounds
    if (leader) {
      auto started = start_run_dir(cfg, opts.overwrite, opts.resume);
      st = started.status();
      if (started.ok()) {
        resume_from = started->resume_from;
        resumed_algorithm = started->resumed_algorithm;
        resumed_layout = started->resumed_layout;
        finished = started->finished ? "1" : "";
      }
    }
    FEDSILO_CHECK(comm.agree(st));
    FEDSILO_CHECK(comm.broadcast(finished, 0));
    if (!finished.empty()) {
      if (leader && opts.progress) {
        std::printf("fedsilo: %s has finished all %d rounds (%s/model.h5); nothing to do "
                    "(raise run.rounds to train further)\n",
                    cfg.run.name.c_str(), cfg.run.rounds, run_dir.c_str());
        std::fflush(stdout);
      }
      return {};
    }
    FEDSILO_CHECK(comm.broadcast(resume_from, 0));
    FEDSILO_CHECK(comm.broadcast(resumed_algorithm, 0));
    FEDSILO_CHECK(comm.broadcast(resumed_layout, 0));

    st = Status();
    if (!resume_from.empty()) {
      auto loaded = checkpoint::read_model_file(resume_from);
      st = loaded.status();
      if (st.ok() && loaded->params.size() != global.size()) {
        st = corrupt_data(resume_from + ": parameter count differs from the configured model");
      }
      if (st.ok()) {
        global = loaded->params;
        start_round = loaded->meta.round;
      }
    } else {
      net.init_params(global, cfg.run.seed);
    }
    FEDSILO_CHECK(comm.agree(st));
    auto priv = checkpoint::silo_private_dir(run_dir, silo.name);
    st = priv.status();
    if (priv.ok()) {
      silo.private_dir = priv.value();
      if (start_round > 0) {
        // The silo's private state must exist for the round we resume from.
        st = checkpoint::check_silo_state(silo.private_dir, start_round, silo.name);
      }
      if (st.ok()) {  // the silo's own metrics (secure aggregation), cut back like the shared file
        std::vector<json> mine;
        st = truncate_metrics(silo.private_dir + "/metrics.jsonl", start_round, mine);
      }
    }
    FEDSILO_CHECK(comm.agree(st));
    if (leader) {
      st = truncate_metrics(run_dir + "/metrics.jsonl", start_round, history);
    }
    FEDSILO_CHECK(comm.agree(st));
  }

  auto strategy_r = make_strategy(cfg);
  FEDSILO_CHECK(comm.agree(strategy_r.status()));
  Strategy& strategy = *strategy_r.value();
  strategy.set_length(net.num_params(), size);
  // What a silo sends: its model update, then the strategy's tail (SCAFFOLD's control update).
  const int64_t exchange_length = net.num_params() + strategy.tail_length();
  auto server_state = strategy.server_state();  // the server optimizer's, in global checkpoints
  if (start_round > 0 && !server_state.empty()) {
    FEDSILO_CHECK(comm.agree(checkpoint::read_named_vectors(
        checkpoint::global_path(run_dir, start_round), server_state)));
  }

  // ---- differential privacy ([privacy] level = "sample"): each silo's sample rate, noise
  // multiplier, secret key and the steps it has taken (for its epsilon).
  const auto accountant = cfg.privacy.accountant == config::DpAccountant::kPld ? privacy::Accountant::kPld
                                                                              : privacy::Accountant::kRdp;
  std::optional<secagg::Secret> dp_key;
  double dp_q = 0.0, dp_sigma = 0.0, dp_epsilon = 0.0;
  int64_t dp_steps_per_round = 0, dp_steps = 0;
  if (dp) {
    const int64_t n = static_cast<int64_t>(silo.train.size());
    const int64_t b = cfg.local.batch_size;
    Status st;
    if (b > n) {
      st = invalid_argument("local.batch_size = " + std::to_string(b) + " is larger than " + silo.name +
                            "'s " + std::to_string(n) + " training records (privacy.level = \"sample\" "
                            "samples each batch with rate batch_size / records, at most 1)");
    } else if (cfg.privacy.delta >= 1.0 / static_cast<double>(n)) {
      st = invalid_argument("privacy.delta = " + format_epsilon(cfg.privacy.delta) + " is not below 1 / " +
                            silo.name + "'s " + std::to_string(n) +
                            " training records (a delta that large allows revealing a record outright)");
    }
    dp_q = static_cast<double>(b) / static_cast<double>(n);
    dp_steps_per_round = int64_t{cfg.local.epochs} * ((n + b - 1) / b);
    // Steps taken before this start: every sampled round trains the same number of steps, and
    // the sampling is public (the strategy's, from the run seed).
    for (int64_t r = 1; r <= start_round; ++r) {
      if (strategy.configure_round(static_cast<int>(r), size).includes(rank)) dp_steps += dp_steps_per_round;
    }
    if (st.ok()) {
      if (cfg.privacy.target_epsilon > 0.0) {
        // The noise that keeps this silo within the target if it trains in every planned round.
        auto sigma = privacy::noise_for_epsilon(accountant, cfg.privacy.target_epsilon, dp_q,
                                                int64_t{cfg.run.rounds} * dp_steps_per_round, cfg.privacy.delta);
        st = sigma.status();
        if (sigma.ok()) dp_sigma = sigma.value();
        if (!st.ok()) st = Status(st.code(), "privacy.target_epsilon, " + silo.name + ": " + st.message());
      } else {
        dp_sigma = cfg.privacy.noise_multiplier;
      }
    }
    if (st.ok() && dp_steps > 0) {
      auto e = privacy::epsilon_for(accountant, dp_q, dp_sigma, dp_steps, cfg.privacy.delta);
      st = e.status();
      if (e.ok()) dp_epsilon = e.value();
    }
    FEDSILO_CHECK(comm.agree(st));
    // The key: from the operating system at a fresh start, from the private directory on resume.
    // FEDSILO_INSECURE_DP_NOISE (tests only) derives it from the run seed.
    const char* insecure = std::getenv("FEDSILO_INSECURE_DP_NOISE");
    const bool test_noise = insecure != nullptr && *insecure != '\0';
    if (test_noise && leader) {
      std::fprintf(stderr, "fedsilo: warning: FEDSILO_INSECURE_DP_NOISE is set: the DP noise and batch "
                           "sampling derive from the public run seed, so the privacy guarantee is void "
                           "(for tests only)\n");
    }
    auto key = test_noise ? privacy::insecure_test_key(cfg.run.seed, static_cast<uint32_t>(rank))
                          : privacy::load_or_create_key(silo.private_dir, start_round > 0);
    st = key.status();
    if (!st.ok()) st = Status(st.code(), silo.name + ": " + st.message());
    FEDSILO_CHECK(comm.agree(st));
    dp_key.emplace(std::move(key).value());
    if (leader && opts.progress) {
      double range[2] = {-dp_sigma, dp_sigma};
      FEDSILO_CHECK(comm.allreduce_max(std::span<double>(range, 2)));
      std::printf("fedsilo: DP-SGD in every silo: clip %s, noise multiplier %s..%s, delta %s, %s "
                  "accountant, %s sampler%s\n",
                  format_epsilon(cfg.privacy.clip).c_str(), format_epsilon(-range[0]).c_str(),
                  format_epsilon(range[1]).c_str(), format_epsilon(cfg.privacy.delta).c_str(),
                  privacy::accountant_name(accountant), config::name(cfg.privacy.sampler),
                  cfg.privacy.max_epsilon > 0.0 ? (", budget epsilon " + format_epsilon(cfg.privacy.max_epsilon)).c_str() : "");
    } else {
      double range[2] = {-dp_sigma, dp_sigma};
      FEDSILO_CHECK(comm.allreduce_max(std::span<double>(range, 2)));
    }
  }
  auto exchange_r = UpdateExchange::create(cfg, comm, exchange_length, resumed_algorithm,
                                           device.cuda ? device.device : -1);
  FEDSILO_CHECK(comm.agree(exchange_r.status()));
  UpdateExchange& exchange = *exchange_r.value();
  // At level node the compressor state lives on the node leaders: resumed on another rank-to-node
  // layout, it would reach the wrong ranks or none. (Elsewhere each silo keeps its own.)
  if (!resumed_layout.empty() && exchange.state_on_leaders() && resumed_layout != exchange.layout()) {
    FEDSILO_CHECK(comm.agree(layout_changed(start_round, resumed_layout, exchange.layout())));
  }
  if (start_round > 0) {
    // Silo-private compressor state (error-feedback residual, DGC velocity) of the checkpoint.
    FEDSILO_CHECK(comm.agree(checkpoint::read_silo_state(silo.private_dir, start_round,
                                                         silo_private_state(exchange, strategy))));
  }

  // GPU ranks form their update where the trainer left the parameters.
  DeviceSource device_params;
  if (model::GpuTrainer* gpu = backend.gpu(); gpu != nullptr) {
    device_params = [gpu](std::span<const float>) {
      return DeviceParams{gpu->params_device(), gpu->stream()};
    };
  }
  auto aggregation_r = make_aggregation(cfg, comm, device.cuda ? device.device : -1,
                                        std::move(device_params), exchange, exchange_length);
  FEDSILO_CHECK(aggregation_r.status());
  Aggregation& aggregation = *aggregation_r.value();
  const std::string reducer_label = aggregation.name();
  RoundStep step(comm, aggregation, strategy);

  if (leader && opts.progress) {
    const int gpus = model::cuda_device_count();
    std::string where = "device cpu (" + cpu + " kernels, OpenBLAS " + blas + "), " + std::to_string(threads) + " threads/rank";
    if (device.cuda) {
      where = "device " + device.label;
      if (gpus > 1) where += " (ranks round-robin over " + std::to_string(gpus) + " GPUs a node)";
    }
    std::printf("fedsilo: %s, %d silos on %s, %s (%lld parameters), %s, %s, %s, rounds %lld..%d%s\n",
                cfg.run.name.c_str(), size, exchange.topology().c_str(), config::name(cfg.model.arch),
                static_cast<long long>(net.num_params()), strategy.name().c_str(),
                reducer_label.c_str(), where.c_str(),
                static_cast<long long>(start_round + 1), cfg.run.rounds,
                start_round > 0 ? " (resumed)" : "");
    std::fflush(stdout);
  }

  // ---- checkpoints and totals
  int64_t total_bytes_sent = 0, total_bytes_received = 0;
  for (const auto& h : history) {
    total_bytes_sent += h.value("bytes_sent", int64_t{0});
    total_bytes_received += h.value("bytes_received", int64_t{0});
  }
  // Checkpoint of `round`: each silo's private state, then the global state, then the marker.
  // Collective.
  auto write_checkpoint = [&](int64_t round) -> Status {
    const CheckpointParts parts{hash, exchange.algorithm(), exchange.layout(), silo.private_dir,
                                silo_private_state(exchange, strategy)};
    return write_round_checkpoint(comm, cfg, round, parts, [&](const std::string& path) {
      return checkpoint::write_model_file(path, net, global,
                                          {"checkpoint", round, hash, exchange.algorithm()},
                                          &server_state);
    });
  };
  // Every rank's Status after a SIGINT/SIGTERM, once `round` is the last checkpointed one.
  auto cancelled = [&](int64_t round, bool have_checkpoint) -> Status {
    const int sig = opts.cancel_requested != nullptr ? *opts.cancel_requested : 0;
    const std::string what = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a stop signal";
    return {StatusCode::kCancelled,
            what + ": stopped " +
                (have_checkpoint ? "after round " + std::to_string(round) + " of " +
                                       std::to_string(cfg.run.rounds) +
                                       ", checkpointed; continue with --resume"
                                 : std::string("before the first round completed; --resume starts at round 1"))};
  };
  // The round the newest complete checkpoint holds (0: none yet, a fresh start).
  int64_t checkpointed_round = start_round;

  // ---- the round's steps, each a function of the round; the loop below reads as the round.
  std::vector<float> local(global.size());
  // Local training of a sampled silo, then its contribution (zeros where not sampled). Local:
  // the caller agrees on the Status.
  auto train_and_contribute = [&](int64_t round, bool sampled, RankReport& report) -> Status {
    if (!sampled) return step.contribute(local, global, 0.0, false);
    const std::string where = "round " + std::to_string(round) + ", " + silo.name + ": ";
    std::copy(global.begin(), global.end(), local.begin());
    model::LocalTrainOptions lo;
    lo.epochs = cfg.local.epochs;
    lo.batch_size = cfg.local.batch_size;
    lo.lr = static_cast<float>(cfg.local.lr);
    lo.momentum = static_cast<float>(cfg.local.momentum);
    lo.weight_decay = static_cast<float>(cfg.local.weight_decay);
    lo.threads = threads;
    lo.seed = cfg.run.seed;
    lo.round = static_cast<uint32_t>(round);
    lo.silo = static_cast<uint32_t>(rank);
    lo.stop = opts.cancel_requested;
    std::optional<privacy::RoundRandom> dp_random;
    if (dp) {
      auto r = privacy::RoundRandom::create(*dp_key, static_cast<uint32_t>(round));
      if (!r.ok()) return {r.status().code(), where + r.status().message()};
      dp_random.emplace(std::move(r).value());
      lo.dp_random = &*dp_random;
      lo.dp_clip = cfg.privacy.clip;
      lo.dp_noise_multiplier = dp_sigma;
      lo.dp_discrete = cfg.privacy.sampler == config::DpSampler::kDiscrete;
    }
    strategy.configure_local(lo);
    auto stats = backend.train(local, global, lo);
    if (!stats.ok()) return {stats.status().code(), where + stats.status().message()};
    report.train_loss = stats->mean_loss;
    auto extras = strategy.silo_extras(local, global, stats->steps, lo.lr, lo.momentum);
    if (!extras.ok()) return {extras.status().code(), where + extras.status().message()};
    // Weighted update n_s * (w_local - w_global), summed across ranks by the aggregation.
    Status st = step.contribute(local, global, static_cast<double>(silo.train.size()), true,
                                extras.value());
    if (!st.ok()) return {st.code(), where + st.message()};
    if (!std::isfinite(report.train_loss)) {
      return {StatusCode::kDiverged, where + "training loss is not finite"};
    }
    return {};
  };

  // After the sum, one small allreduce: the mean compression ratio over the silos that sent
  // something, and whether any rank was asked to stop (SIGUSR1) or to cancel (SIGINT, SIGTERM).
  struct AfterSum {
    double compression_ratio = 1.0;
    bool stopping = false, cancelling = false;
  };
  auto after_sum = [&](int64_t round, bool sampled, const ExchangeStats& xs) -> Result<AfterSum> {
    const bool stop_here = opts.stop_requested != nullptr && *opts.stop_requested != 0;
    const bool cancel_here = opts.cancel_requested != nullptr && *opts.cancel_requested != 0;
    const bool sent = xs.payload_bytes > 0 && sampled;
    double parts[4] = {sent ? static_cast<double>(xs.dense_bytes) / static_cast<double>(xs.payload_bytes) : 0.0,
                       sent ? 1.0 : 0.0, stop_here ? 1.0 : 0.0, cancel_here ? 1.0 : 0.0};
    FEDSILO_CHECK(comm.allreduce_sum(std::span<double>(parts, 4)));
    AfterSum a;
    a.cancelling = parts[3] > 0.0 && round < cfg.run.rounds;
    a.stopping = (parts[2] > 0.0 || a.cancelling) && round < cfg.run.rounds;
    a.compression_ratio = parts[1] > 0 ? parts[0] / parts[1] : 1.0;
    return a;
  };

  // Evaluation every eval.every rounds and in the last: the global test split is shared out
  // across ranks (its loss and accuracy summed), and each silo scores the global model on its
  // own test split (into its report).
  struct Scores {
    bool evaluated = false;
    double accuracy = std::nan(""), loss = std::nan("");
  };
  auto evaluate = [&](int64_t round, RankReport& report) -> Result<Scores> {
    Scores out;
    out.evaluated = round % cfg.eval.every == 0 || round == cfg.run.rounds;
    if (!out.evaluated) return out;
    model::EvalStats g, s;
    Status st = [&]() -> Status {
      FEDSILO_ASSIGN_OR_RETURN(g, backend.evaluate(global, TestSet::kGlobalSlice, cfg.eval.batch_size));
      FEDSILO_ASSIGN_OR_RETURN(s, backend.evaluate(global, TestSet::kOwn, cfg.eval.batch_size));
      return {};
    }();
    if (!st.ok()) st = {st.code(), "round " + std::to_string(round) + ", " + silo.name + ": " + st.message()};
    FEDSILO_CHECK(comm.agree(st));
    double sums[2] = {g.mean_loss * static_cast<double>(g.samples), static_cast<double>(g.correct)};
    FEDSILO_CHECK(comm.allreduce_sum(std::span<double>(sums, 2)));
    out.loss = sums[0] / static_cast<double>(silo.global_test_size);
    out.accuracy = sums[1] / static_cast<double>(silo.global_test_size);
    report.test_accuracy = s.accuracy;
    report.test_loss = s.mean_loss;
    return out;
  };

  // The report: every rank's record, gathered once; rank 0 appends the metrics line and prints
  // the progress line. Under secure aggregation the silo-private fields stay home: each silo
  // appends them to its private directory. Collective.
  const auto loop_start = Clock::now();
  auto record = [&](int64_t round, const RankReport& report, const Scores& scores,
                    const ExchangeStats& xs, double compression_ratio) -> Status {
    if (keep_home) {
      json mine = {{"round", round}, {"sampled", report.sampled}, {"samples", report.samples}};
      if (report.sampled) mine["train_loss"] = report.train_loss;
      if (dp) {
        mine["epsilon"] = dp_epsilon;
        mine["delta"] = cfg.privacy.delta;
        mine["noise_multiplier"] = dp_sigma;
      }
      if (scores.evaluated) {
        mine["test_accuracy"] = report.test_accuracy;
        mine["test_loss"] = report.test_loss;
      }
      FEDSILO_CHECK(comm.agree(append_json_line(silo.private_dir + "/metrics.jsonl", mine)));
    }
    FEDSILO_ASSIGN_OR_RETURN(const std::vector<RankReport> reports,
                             gather_reports(comm, keep_home ? public_part(report) : report));
    // The largest epsilon over the silos: a public bound (each silo's own stays home).
    double eps_max[1] = {dp ? dp_epsilon : 0.0};
    if (dp) FEDSILO_CHECK(comm.allreduce_max(std::span<double>(eps_max, 1)));
    Status st;
    if (leader) {
      RoundSummary summary;
      summary.round = round;
      summary.evaluated = scores.evaluated;
      summary.accuracy = scores.accuracy;
      summary.loss = scores.loss;
      summary.bytes_sent = xs.bytes_sent();
      summary.bytes_received = xs.bytes_received();
      summary.intra_sent = xs.intra_bytes_sent;
      summary.intra_received = xs.intra_bytes_received;
      summary.inter_sent = xs.inter_bytes_sent;
      summary.inter_received = xs.inter_bytes_received;
      summary.compression_ratio = compression_ratio;
      summary.reducer = reducer_label;
      summary.device = device.label;
      summary.cpu = cpu;
      summary.blas = blas;
      summary.silo_fields = !keep_home;
      if (dp) {
        summary.epsilon = eps_max[0];
        summary.delta = cfg.privacy.delta;
      }
      const json line = round_line(summary, reports);
      st = append_json_line(run_dir + "/metrics.jsonl", line);
      history.push_back(line);
      if (opts.progress) print_progress(round, start_round, cfg.run.rounds, seconds_since(loop_start),
                                        scores.evaluated, scores.accuracy, scores.loss, reports,
                                        dp ? "epsilon <= " + format_epsilon(eps_max[0])
                                           : secure ? std::string("secure aggregation") : std::string());
    }
    return comm.agree(st);
  };

  // ---- rounds
  for (int64_t round = start_round + 1; round <= cfg.run.rounds; ++round) {
    const auto t_round = Clock::now();
    const bool sampled = strategy.configure_round(static_cast<int>(round), size).includes(rank);
    RankReport report;
    report.sampled = sampled;
    report.samples = static_cast<int64_t>(silo.train.size());

    // The privacy budget: stop before a round that would take any silo past privacy.max_epsilon
    // (the rounds done are checkpointed and their model written).
    double dp_next = dp_epsilon;
    if (dp && sampled) {
      auto e = privacy::epsilon_for(accountant, dp_q, dp_sigma, dp_steps + dp_steps_per_round,
                                    cfg.privacy.delta);
      FEDSILO_CHECK(comm.agree(e.status()));
      dp_next = e.value();
    } else if (dp) {
      FEDSILO_CHECK(comm.agree(Status()));
    }
    if (dp && cfg.privacy.max_epsilon > 0.0) {
      double worst[1] = {dp_next};
      FEDSILO_CHECK(comm.allreduce_max(std::span<double>(worst, 1)));
      if (worst[0] > cfg.privacy.max_epsilon) {
        const int64_t last = round - 1;
        if (last > checkpointed_round) FEDSILO_CHECK(write_checkpoint(last));
        Status st;
        if (leader) {
          checkpoint::ModelFileMeta meta{"model", last, hash, exchange.algorithm()};
          st = checkpoint::write_model_file(run_dir + "/model.h5", net, global, meta);
        }
        FEDSILO_CHECK(comm.agree(st));
        return {StatusCode::kBudgetSpent,
                "privacy budget spent: round " + std::to_string(round) + " would take a silo to epsilon " +
                    format_epsilon(worst[0]) + " > privacy.max_epsilon = " +
                    format_epsilon(cfg.privacy.max_epsilon) + " (delta " + format_epsilon(cfg.privacy.delta) +
                    "); stopped after round " + std::to_string(last) + " of " + std::to_string(cfg.run.rounds) +
                    ", checkpointed; " + run_dir + "/model.h5 holds the model of round " + std::to_string(last)};
      }
    }

    auto t = Clock::now();
    const Status st = comm.agree(train_and_contribute(round, sampled, report));
    const double train_seconds = seconds_since(t);
    if (st.code() == StatusCode::kCancelled) {
      // SIGINT/SIGTERM during local training: this round is dropped; the global model and every
      // silo's private state are still those of the round before, which is checkpointed if it
      // is not already.
      const int64_t last = round - 1;
      if (last > checkpointed_round) FEDSILO_CHECK(write_checkpoint(last));
      return cancelled(last, last > 0);
    }
    FEDSILO_CHECK(st);
    if (dp && sampled) {
      dp_steps += dp_steps_per_round;
      dp_epsilon = dp_next;
    }

    t = Clock::now();  // the sums of the weighted updates and of the weights, the server step
    ExchangeStats xs;
    FEDSILO_CHECK(step.finish(static_cast<uint32_t>(round), sampled, global, xs));
    const double agg_seconds = seconds_since(t);
    total_bytes_sent += xs.bytes_sent();
    total_bytes_received += xs.bytes_received();
    FEDSILO_ASSIGN_OR_RETURN(const AfterSum after, after_sum(round, sampled, xs));

    t = Clock::now();
    FEDSILO_ASSIGN_OR_RETURN(const Scores scores, evaluate(round, report));
    const double eval_seconds = seconds_since(t);

    t = Clock::now();
    if (round % cfg.run.checkpoint_every == 0 || round == cfg.run.rounds || after.stopping) {
      FEDSILO_CHECK(write_checkpoint(round));
      checkpointed_round = round;
    }
    const double ckpt_seconds = seconds_since(t);

    report.seconds = {train_seconds, agg_seconds, eval_seconds, ckpt_seconds,
                      seconds_since(t_round), xs.compress_seconds, xs.intra_seconds,
                      xs.inter_seconds, xs.decompress_seconds};
    FEDSILO_CHECK(record(round, report, scores, xs, after.compression_ratio));
    if (after.cancelling) return cancelled(round, true);
    if (after.stopping) {
      return {StatusCode::kInterrupted,
              "SIGUSR1: stopped after round " + std::to_string(round) + " of " +
                  std::to_string(cfg.run.rounds) + ", checkpointed; continue with --resume " +
                  "(the job script requeues the job)"};
    }
  }

  // ---- final model
  Status st;
  if (leader) {
    checkpoint::ModelFileMeta meta{"model", cfg.run.rounds, hash, exchange.algorithm()};
    st = checkpoint::write_model_file(run_dir + "/model.h5", net, global, meta);
  }
  FEDSILO_CHECK(comm.agree(st));

  if (leader && opts.progress) {
    double final_acc = std::nan(""), best_acc = -1.0;
    int64_t best_round = 0;
    json last_eval;
    for (const auto& h : history) {
      if (!h.contains("accuracy")) continue;
      const double a = h["accuracy"].get<double>();
      final_acc = a;
      last_eval = h;
      if (a > best_acc) {
        best_acc = a;
        best_round = h["round"].get<int64_t>();
      }
    }
    double mn = 1.0, mx = 0.0, sum = 0.0;
    int cnt = 0;
    if (!last_eval.is_null()) {
      for (const auto& s : last_eval["silos"]) {
        if (!s.contains("test_accuracy")) continue;  // secure aggregation: kept by each silo
        const double a = s["test_accuracy"].get<double>();
        mn = std::min(mn, a);
        mx = std::max(mx, a);
        sum += a;
        ++cnt;
      }
    }
    std::printf("\n== fedsilo summary: %s ==\n", cfg.run.name.c_str());
    std::printf("  final accuracy     %.2f%% (round %d)\n", 100.0 * final_acc, cfg.run.rounds);
    std::printf("  best accuracy      %.2f%% (round %lld)\n", 100.0 * best_acc,
                static_cast<long long>(best_round));
    if (cnt > 0) {
      std::printf("  per-silo accuracy  min %.2f%%  mean %.2f%%  max %.2f%%\n", 100.0 * mn,
                  100.0 * sum / cnt, 100.0 * mx);
    }
    std::printf("  wall time          %s (this invocation)\n", format_duration(seconds_since(t_start)).c_str());
    std::printf("  bytes communicated %s sent, %s received per rank (model updates, %s)\n",
                format_bytes(static_cast<double>(total_bytes_sent)).c_str(),
                format_bytes(static_cast<double>(total_bytes_received)).c_str(),
                reducer_label.c_str());
    std::printf("  outputs            %s/{model.h5, metrics.jsonl, config.toml, checkpoints/}\n",
                run_dir.c_str());
    std::fflush(stdout);
  }
  return {};
}

}  // namespace fedsilo::fl
