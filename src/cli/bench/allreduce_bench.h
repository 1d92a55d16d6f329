// `fedsilo bench allreduce`: times the whole aggregation of a training round, the exchange
// training runs (fl::UpdateExchange: error feedback, selection, encoding, exchange, merge), for
// every allreduce algorithm, in the conventions of nccl-tests and the OSU benchmarks (-b/-e/-f
// sizes, -n/-w iterations, -c checks results).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace fedsilo::bench {

/// Flags of `fedsilo bench allreduce` (defaults in the comments are the CLI's).
struct AllreduceBenchArgs {
  std::string min_bytes = "64M";  // -b: smallest dense fp32 update (bytes, K/M/G suffixes)
  std::string max_bytes = "64M";  // -e: largest
  int64_t factor = 2;             // -f: multiplication factor between sizes
  int iterations = 20;            // -n: timed iterations per row
  int warmup = 5;                 // -w: untimed iterations before them
  bool check = false;             // -c: check every row's result (exact-sum inputs) first
  bool blocks = false;  // time each row's iterations back to back instead of interleaving the
                        // algorithms of a (size, density) cell iteration by iteration
  std::vector<double> densities = {1.0, 0.1, 0.01, 0.001};
  std::vector<std::string> algorithms = {"dense-flat", "dense-hier",  "sparse-allgather",
                                         "sparse-rd",  "sparse-hier", "auto"};
  std::string value_type = "fp32";
  std::string level = "silo";
  std::string method = "topk";  // compressor for densities < 1
  bool no_error_feedback = false;
  int emulated_nodes = 0;  // 0: real nodes (or FEDSILO_EMULATED_NODES)
  double link_gbps = 0.0;  // for auto (allreduce.link_gbps: no trial); 0: calibrate per auto row
  double link_latency_us = 50.0;
  int threads = 1;  // compressor threads per rank: 1 only (fl::UpdateExchange uses 1)
  uint64_t seed = 1;
  std::string json;    // write the rows here (rank 0)
  std::string netdev;  // read this interface's byte counters on each node leader
  std::string commit;  // overrides `git rev-parse`
  bool quiet = false;
};

/// Adds `allreduce` under `parent` (the `bench` subcommand) and binds its flags to `args`.
CLI::App* add_allreduce_command(CLI::App& parent, AllreduceBenchArgs& args);

/// Runs the benchmark (MPI_Init inside); every rank returns the same exit code.
int run_allreduce_bench(const AllreduceBenchArgs& args);

}  // namespace fedsilo::bench
