// The run configuration (TOML): parsing with clear errors, validation, a canonical text form
// written to the run directory, and the hash that ties checkpoints to a config.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compression/compressor.h"
#include "core/status.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::config {

// The values of the settings that name a choice, parsed from their TOML strings (the canonical
// text and the resume hash write the same strings back).
// kPytorch: the user's own network, trained by a Python entry point through the binding
// (fedsilo.torch); `fedsilo train` runs the built-in ones.
enum class Arch : uint8_t { kLogreg, kMlp, kNiidCnn, kPytorch };
enum class StrategyName : uint8_t {
  kFedAvg, kFedProx, kFedAvgM, kFedAdagrad, kFedAdam, kFedYogi, kScaffold, kFedNova
};
enum class CompressionLevel : uint8_t { kSilo, kNode };
enum class Algorithm : uint8_t { kAuto, kDenseFlat, kDenseHier, kSparseAllgather, kSparseRd, kSparseHier };
enum class DeviceKind : uint8_t { kCpu, kCuda, kAuto };
enum class DeviceReduce : uint8_t { kAuto, kNccl, kHost };
enum class PrivacyLevel : uint8_t { kNone, kSample };
enum class DpAccountant : uint8_t { kRdp, kPld };
enum class DpSampler : uint8_t { kZiggurat, kDiscrete };

/// The TOML string of a value ("niid-cnn", "fedprox", "node", "sparse-rd", "cuda", "nccl", and
/// compression's "topk", "fp16", ...).
const char* name(Arch v);
const char* name(StrategyName v);
/// FedAvgM, FedAdagrad, FedAdam, FedYogi: a server optimizer with state on the pseudo-gradient.
bool server_optimizer(StrategyName v);
const char* name(CompressionLevel v);
const char* name(Algorithm v);
const char* name(DeviceKind v);
const char* name(DeviceReduce v);
const char* name(PrivacyLevel v);
const char* name(DpAccountant v);
const char* name(DpSampler v);
const char* name(compression::Method v);
const char* name(kernels::ValueType v);
/// The value of E that `text` names; kInvalidArgument "KEY: unknown value 'TEXT' (expected
/// ...)" otherwise. For E among the enums above, compression::Method and kernels::ValueType.
template <typename E>
[[nodiscard]] Result<E> parse_choice(std::string_view text, const std::string& key);

struct RunSection {
  std::string name = "fedsilo";
  uint64_t seed = 1;
  int rounds = 10;
  std::string out_dir;          // default: runs/<name>
  std::string command;          // the job's entry point where it is not `fedsilo train`
                                // ("python3 train.py": a PyTorch binding job), for `fedsilo slurm`
  int checkpoint_every = 1;     // rounds between checkpoints (the last round always checkpoints)
  int keep_checkpoints = 2;     // complete checkpoints kept on disk
};
struct DataSection {
  std::string silos_dir;        // output of `fedsilo partition`
  std::string test_file;        // global test split; default <silos_dir>/test.h5
};
struct ModelSection {
  Arch arch = Arch::kNiidCnn;
  std::vector<int> hidden;      // mlp hidden sizes
};
struct LocalSection {
  int epochs = 1;
  int batch_size = 64;
  double lr = 0.01;
  double momentum = 0.9;
  double weight_decay = 0.0;
  int threads = 0;              // 0 = cores / ranks per node, at least 1
};
struct StrategySection {
  StrategyName name = StrategyName::kFedAvg;
  double mu = 0.0;              // FedProx proximal weight
  double fraction = 1.0;        // silos sampled per round, in (0, 1]
  // Server optimizers (FedAvgM, Hsu et al. 2019; FedAdagrad/FedAdam/FedYogi, Reddi et al. 2021)
  // on the pseudo-gradient Delta = the weighted mean of (w_s - w).
  double server_lr = 0.0;       // required by those four (0 = not given)
  double server_momentum = 0.9; // fedavgm: v = server_momentum v + Delta
  double beta1 = 0.9;           // fedadagrad/fedadam/fedyogi: m = beta1 m + (1 - beta1) Delta
  double beta2 = 0.99;          // fedadam/fedyogi: v's decay
  double tau = 1e-3;            // adaptivity: w += server_lr m / (sqrt(v) + tau); v starts at tau^2
};
struct CompressionSection {
  compression::Method method = compression::Method::kNone;
  double density = 0.01;            // fraction of coordinates sent, in (0, 1]
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  bool error_feedback = true;
  double momentum_correction = 0.0; // DGC momentum factor in [0, 1); 0 = off
  CompressionLevel level = CompressionLevel::kSilo;  // silo: each silo's update; node: each node's sum
};
struct AllreduceSection {
  Algorithm algorithm = Algorithm::kDenseFlat;
  double link_gbps = 0.0;           // inter-node link for `auto`; 0 = measure at start-up
  double link_latency_us = 50.0;
};
struct TopologySection {
  int emulated_nodes = 0;           // 0: real nodes (or FEDSILO_EMULATED_NODES)
};
/// Job settings for `fedsilo slurm` (not part of the training: never in the resume hash).
struct SlurmSection {
  std::string partition;          // empty: the cluster's default partition
  std::string account;            // empty: the user's default account
  std::string time = "01:00:00";  // job time limit, Slurm's format ([D-]HH:MM:SS, MM:SS, minutes)
  int nodes = 0;                  // 0: silos / ranks_per_node (1 when both are 0)
  int ranks_per_node = 0;         // silos per node; 0: silos / nodes (all on one node when both are 0)
  std::string manifest;           // SPANK plugin silo manifest (--fedsilo-silos); empty: none
  int signal_seconds = 300;       // USR1 this long before the time limit (give it > one round)
  std::string output;             // job log; default <submit dir>/fedsilo-<run.name>-%j.out
  std::string mpi = "pmix";       // srun --mpi plugin (Debian's Open MPI speaks PMIx only)
  int cpus_per_task = 0;          // 0: local.threads when > 0, else 1
  std::string mem_per_task;       // "4G", "1500M", ...; empty: estimated from the silo files
};
/// Where local training and evaluation run (not how the job is submitted: a non-default kind
/// enters the resume hash, the default "cpu" does not, so configs from before [device] resume).
struct DeviceSection {
  DeviceKind kind = DeviceKind::kCpu;           // auto: cuda when this process sees a GPU
  DeviceReduce reduce = DeviceReduce::kAuto;    // dense sums of GPU ranks (host: pinned + MPI)
};
struct EvalSection {
  int every = 1;                // evaluate every N rounds (and always the last)
  int batch_size = 500;
};
/// Secure aggregation (src/secagg/, docs/threat-model.md): only the sum of the sampled silos'
/// updates (and of their weights) is revealed.
struct SecureAggregationSection {
  bool enabled = false;
  double range = 1.0;       // each coordinate of the weighted update is clipped to [-range, range]
  int bits = 16;            // fixed point: a value x is sent as stochastic_round(x * 2^bits) mod 2^32
  double max_weight = 0.0;  // a silo's weight is its sample count / max_weight (<= 1); required
};

/// Differential privacy for each silo's records (docs/privacy.md): DP-SGD inside every silo.
struct PrivacySection {
  PrivacyLevel level = PrivacyLevel::kNone;  // "sample": DP-SGD, a guarantee per silo record
  double noise_multiplier = 0.0;  // sigma; or, exactly one of the two, target_epsilon
  double target_epsilon = 0.0;    // sigma from the accountant for the planned rounds, per silo
  double clip = 1.0;              // per-example gradient L2 norm bound C
  double delta = 1e-5;            // below 1 / (each silo's training-set size)
  DpAccountant accountant = DpAccountant::kRdp;
  double max_epsilon = 0.0;       // > 0: stop before a round that would exceed it (exit 6)
  DpSampler sampler = DpSampler::kZiggurat;  // discrete: the hardened sampler (docs/privacy.md)
};

struct Config {
  RunSection run;
  DataSection data;
  ModelSection model;
  LocalSection local;
  StrategySection strategy;
  EvalSection eval;
  CompressionSection compression;
  AllreduceSection allreduce;
  TopologySection topology;
  SlurmSection slurm;
  DeviceSection device;
  SecureAggregationSection secure_aggregation;
  PrivacySection privacy;
  /// The keys the user's file set ("table.key"); defaults are never in it. Only written keys
  /// can be "set but without effect" (an error).
  std::set<std::string> written;
};

/// A Slurm memory size ("2048" MiB, or with a K, M, G or T suffix) in MiB (rounded up);
/// kInvalidArgument for anything else.
[[nodiscard]] Result<int64_t> slurm_memory_mib(const std::string& text);

/// A Slurm time limit ("minutes", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS") in
/// seconds; kInvalidArgument for anything else.
[[nodiscard]] Result<int64_t> slurm_time_seconds(const std::string& text);

/// Parses TOML text; `source` names the file in messages. Unknown tables or keys, wrong types
/// and invalid values are kInvalidArgument naming `table.key` and the file.
[[nodiscard]] Result<Config> parse_config(const std::string& text, const std::string& source);
/// Reads and parses a config file.
[[nodiscard]] Result<Config> load_config(const std::string& path);
/// The compressor settings of a [compression] section (threads left at the default).
[[nodiscard]] compression::CompressionConfig compression_config(const CompressionSection& z);

/// Checks value ranges and cross-key rules (called by parse_config): one validator per section,
/// then the rules across sections (the silo's transform chain against its aggregation, fl/transform.h).
/// A key the user wrote that takes no effect under the other settings is an error naming both keys.
[[nodiscard]] Status validate(const Config& cfg, const std::string& source);
/// Where `key` ("table.key") has no effect under the other settings of `cfg`: the setting that
/// makes it so, e.g. `strategy.name = "fedavg"` for strategy.mu; nullopt where it takes effect.
[[nodiscard]] std::optional<std::string> without_effect(const Config& cfg, const std::string& key);
/// The canonical TOML text of what takes effect in `cfg` (every key that does, defaults
/// included, in a fixed order; numbers in their shortest round-trip form): written to the run
/// directory as config.toml, and re-parseable.
[[nodiscard]] std::string to_toml(const Config& cfg);
/// The settings the resume hash covers (not run.rounds, not [slurm]) whose values differ
/// between `now` and `before`, each as `table.key = NOW (was BEFORE)`.
[[nodiscard]] std::vector<std::string> resume_differences(const Config& now, const Config& before);
/// FNV-1a hash of the canonical text with `run.rounds` left out: a resumed run may only change
/// the number of rounds. Hex string.
[[nodiscard]] std::string resume_hash(const Config& cfg);

}  // namespace fedsilo::config
