// The fedsilo subcommands. main.cpp parses flags with CLI11 into these structs; each run_*
// returns the process exit code and prints its own errors.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace fedsilo::cli {

struct PartitionArgs {
  std::string dataset;     // "fashion-mnist" (IDX) or empty when `input` is given
  std::string idx_dir = "/usr/share/datasets/fashion-mnist";
  std::string input;       // FILE.h5 with x, y (a consortium's own data)
  std::string test_input;  // optional FILE.h5 used as the global test split with --input
  int silos = 10;
  std::string scheme = "iid";  // iid | dirichlet:BETA | labels:K | quantity:BETA | noise:SIGMA
  uint64_t seed = 1;
  std::string out;
  int64_t max_train = 0;   // 0 = all samples; else a deterministic subset (tests, quick runs)
  int64_t max_test = 0;
  bool overwrite = false;
  bool quiet = false;
};
int run_partition(const PartitionArgs& args);

struct TrainArgs {
  std::string config;
  bool resume = false;
  bool overwrite = false;
  bool quiet = false;      // no live progress line
  bool check = false;      // validate the config only: no MPI, no data read
};
/// Runs under MPI (MPI_Init inside); every rank returns the same exit code.
int run_train(const TrainArgs& args);

struct SlurmArgs {
  std::string config;
  std::string output;      // empty: print to stdout
};
/// Prints (or writes) the sbatch script of a run configuration.
int run_slurm(const SlurmArgs& args);

struct InspectArgs {
  std::string file;
};
int run_inspect(const InspectArgs& args);

struct EvalArgs {
  std::string model;
  std::string data;
  int batch_size = 256;
  int threads = 0;
};
int run_eval(const EvalArgs& args);

/// `fedsilo privacy`: one of each pair is given (main.cpp leaves the others empty).
struct PrivacyArgs {
  std::optional<double> sample_rate;     // q
  std::optional<int64_t> batch_size;     // B, with dataset_size: q = B / N
  std::optional<int64_t> dataset_size;   // N
  std::optional<double> noise_multiplier;
  std::optional<double> target_epsilon;  // print the noise multiplier that meets it instead
  std::optional<int64_t> steps;
  std::optional<double> epochs;          // steps = ceil(epochs / q)
  double delta = 1e-5;
  std::string accountant = "rdp";        // rdp | pld
  std::vector<double> orders;            // extra RDP orders
  bool json = false;
};
/// Prints epsilon (or the noise multiplier for a target epsilon) of DP-SGD's subsampled
/// Gaussian mechanism; exit 2 for bad or missing flags and unreachable targets.
int run_privacy(const PrivacyArgs& args);

}  // namespace fedsilo::cli
