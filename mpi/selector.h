// `[allreduce] algorithm = "auto"`: a documented, pure cost model that picks an algorithm from
// the density, rank and node counts, message size and the link speed; a short start-up
// calibration that measures the links (or take them from config); and the factory that builds
// an algorithm from its name.
//
// The model (alpha-beta, seconds). n floats, M = 4n bytes, P ranks on N nodes of L = P/N ranks,
// alpha/beta = latency/bandwidth of the inter-node link (e) and inside a node (i). A sparse
// payload at density x carries s(x) = 48 + x*n*(v + b(x)) bytes: v the value bytes (4, 2, 2,
// 1 + 4/256), b(x) = min(LEB128 bytes of a 1/x gap, 1/(8x) bitmap bits) the index bytes; partial
// sums travel as fp32 (v = 4), capped at the dense 4n bytes. Sums of k random supports of
// density x fill in to 1 - (1 - x)^k. All L ranks of a node share its link.
// - dense-flat      the cheaper of a ring, 2(P-1) a + 2(P-1)/P * M / B, and recursive
//                   doubling, (floor(log2 P) + 2 [P not a power of 2]) (a + M / B), as MPI
//                   libraries switch between them; (a, B) = inter-node if N > 1 else intra.
// - dense-hier      intra 2(L-1) a_i + 2(L-1)/L * M / B_i, plus inter 2(N-1) a_e +
//                   2(N-1)/N * M / B_e (the L pieces of M/L share the link).
// - sparse-allgather  ceil(log2 P) a + every node receives L(P-L) payloads s(d) over its link
//                   (intra: (L-1) s(d) / B_i), plus merging P*d*n values at merge_seconds each.
// - sparse-rd       per step k of the doubling (fold and result return included): a + c *
//                   min(s(d_k), 4n) / B, c = ranks of the node sending across at once, where
//                   steps at rank distance >= L cross nodes; plus merges.
// - sparse-hier     (level "node") its node phase and fixed costs, f + n * c_n, the
//                   leader's compression of the node sum (error feedback + selection +
//                   encoding), n * c_z, then allgather or recursive doubling among the N
//                   leaders (one per node, so c = 1); doubling must be 5% cheaper than the
//                   allgather to be chosen. c_z is measured at start-up on all leaders at once
//                   (calibrate_compute), so cores shared by several leaders count; f and c_n
//                   likewise (calibrate_node_phase: sparse-hier itself with nothing to send, at
//                   a tiny and a large size, every node at once). Not measured, the node phase
//                   is a reduce and a broadcast, 2 ceil(log2 L) (a_i + M / B_i), and f = 0.
// The cheapest wins, except that anything other than dense-flat must beat it by 5% (the
// baseline is never lost to a model error that small). Level "silo" with density < 1 chooses
// among dense-flat, dense-hier, sparse-allgather, sparse-rd (every silo compresses in all of
// them: the same sum); density >= 1 (no compression) among the two dense ones. Level "node"
// with density < 1 chooses among dense-flat, dense-hier and sparse-hier: where compressing the
// node sums costs more than the bytes it saves (fast links, slow cores), `auto` sends the
// updates uncompressed (the exact sum; the leaders' residuals stay zero).
// Where the model's candidates are cheap to try (refine_by_trial), they are run and the
// measured times decide by the same rule: the model only shortlists. Training skips the trial
// when the link is given in config.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/sparse_vector.h"
#include "mpi/algorithm.h"
#include "mpi/sparse_hier.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

/// Link latency (seconds) and bandwidth (bytes/s), across nodes and inside one. The defaults
/// are a 1 Gbit/s Ethernet (the slow emulated link) and shared memory.
struct LinkModel {
  double inter_latency_s = 50e-6;
  double inter_bandwidth_Bps = 1.25e8;
  double intra_latency_s = 2e-6;
  double intra_bandwidth_Bps = 5e9;
  bool measured = false;  // true when it came from calibrate_links()
};

enum class CompressionLevel : uint8_t { kSilo, kNode };

/// sparse-hier's cost besides the compression and the bytes it sends: seconds = fixed_s +
/// per_float_s * n (the node sum and the result's way back, the synchronisations, the
/// leaders' exchange of empty payloads, the final agreement). Negative: not measured.
struct NodePhaseCost {
  double fixed_s = -1.0;
  double per_float_s = -1.0;
  [[nodiscard]] bool measured() const { return fixed_s >= 0.0 && per_float_s >= 0.0; }
};

struct SelectorInput {
  double density = 1.0;  // nnz / n of each compressed contribution; >= 1: uncompressed
  int ranks = 1;
  int nodes = 1;
  int64_t message_bytes = 0;  // dense fp32 bytes, 4n
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  CompressionLevel level = CompressionLevel::kSilo;
  LinkModel link;
  double merge_seconds_per_value = 2e-9;   // decode + scatter-add of one sparse value
  double add_seconds_per_float = 2.5e-10;  // dense add, ~16 GB/s of reads and writes
  /// Leader's compression of the node sum, per float (level node). Default: error feedback +
  /// exact top-k + encoding measured on one core of the CI machine (55 ms for 2^24 floats).
  double compress_seconds_per_float = 3.3e-9;
  NodePhaseCost node_phase;  // sparse-hier without compression; default: not measured
};

struct SelectorChoice {
  std::string algorithm;  // "dense-flat", "dense-hier", "sparse-allgather", "sparse-rd",
                          // "sparse-hier"
  LeaderExchange leader_exchange = LeaderExchange::kAllgather;  // for sparse-hier
  /// Every candidate's predicted seconds, in the order considered (for logs and benchmarks).
  std::vector<std::pair<std::string, double>> predicted;
  /// The trial's measured medians (refine_by_trial), in trial order; empty: model only.
  std::vector<std::pair<std::string, double>> measured;
};

/// The rule of `auto`: pure, deterministic, documented above.
SelectorChoice select_algorithm(const SelectorInput& in);

/// The names `[allreduce] algorithm` accepts besides "auto".
const std::vector<std::string>& allreduce_algorithm_names();

/// Measures the links as the algorithms use them, all at once: inter-node latency and
/// bandwidth from ping-pongs between the leaders of nodes 2i and 2i+1, every pair at the same
/// time (`iterations` round trips of 8 bytes and of `large_bytes`; median); intra-node latency
/// from local ranks 0 and 1 of every node at once, intra-node bandwidth from a reduce-scatter
/// plus allgather of `large_bytes` on every node at once (what dense-hier and the node sums of
/// sparse-hier do: memory traffic, summation and shared cores included). The slowest pair or
/// node counts; every rank gets the same result. Collective over the world. Links it cannot
/// measure (one node, one rank per node) keep `defaults`.
[[nodiscard]] Result<LinkModel> calibrate_links(Topology& topology, const LinkModel& defaults,
                                                int iterations = 10,
                                                int64_t large_bytes = int64_t{4} << 20);

/// Seconds per float of `work` (a compression of `sample_floats` random floats), run by every
/// node leader at the same time, as the leaders of a level-"node" round do: the median of
/// `iterations` runs, the slowest leader's, on every rank. Collective over the world.
[[nodiscard]] Result<double> calibrate_compute(
    Topology& topology, const std::function<Status(std::span<const float>)>& work,
    int64_t sample_floats = int64_t{1} << 20, int iterations = 3);

/// sparse-hier as it runs, with a compressor that sends nothing, on every node at once, for
/// vectors of `length` floats: `fixed_s` is the median time at 256 floats, `per_float_s` the
/// growth from there to a sample of `length` clamped to [512, 2^20] floats (the slowest
/// node's, on every rank). Collective over the world.
[[nodiscard]] Result<NodePhaseCost> calibrate_node_phase(Topology& topology, int64_t length,
                                                         int iterations = 3);

/// n update-like floats (uniform in +-1e-3, distinct magnitudes) from a xorshift generator;
/// `stream` gives each rank its own (calibrations and trials).
[[nodiscard]] std::vector<float> update_like(int64_t n, uint32_t stream = 0);

/// The order in which round `iteration` of an interleaved measurement runs its m entries: a
/// permutation drawn from a generator seeded by the iteration (the same on every rank), so
/// over many rounds each entry follows every other about equally often.
[[nodiscard]] std::vector<size_t> interleave_order(size_t m, int iteration);

/// `auto`'s second stage, where trying is cheap: the model's candidates within `spread` of its
/// cheapest prediction are each run on the real length (one warm-up each, then the timed runs
/// of every candidate, interleaved in interleave_order; the slowest rank's time per run,
/// median), cheapest prediction first, as long as their predicted cost (predicted seconds x
/// (timed runs + 1)) fits in `budget_s` together. `iterations` timed runs where two or more
/// candidates fit so; otherwise as few as `min_iterations` where that lets two fit (large
/// updates, whose runs are long enough for a median of 3 to separate what matters). With fewer
/// than two candidates to try the model's choice stands. The measured times decide by the
/// model's rule (anything other than dense-flat must beat it by 5%).
struct TrialPolicy {
  double spread = 3.0;
  double budget_s = 2.0;
  int iterations = 5;
  int min_iterations = 3;
};

/// A candidate of `choice.predicted` that a trial can run: "dense-flat", "dense-hier",
/// "sparse-allgather", "sparse-rd", "sparse-hier" with `leader_exchange`.
struct TrialCandidate {
  std::string algorithm;
  LeaderExchange leader_exchange = LeaderExchange::kAllgather;
  double predicted_s = 0.0;
};

/// What the trial runs: its candidates (none: no trial) and the timed runs of each.
struct TrialPlan {
  std::vector<TrialCandidate> candidates;
  int iterations = 0;
};

/// Which candidates the trial runs, and how often (pure): see TrialPolicy. sparse-hier only
/// with the leaders' exchange the model chose.
[[nodiscard]] TrialPlan trial_candidates(const SelectorChoice& choice, const TrialPolicy& policy);

/// The choice from measured medians (pure): `measured` pairs candidates with seconds, in
/// trial order; dense-flat, when among them, is kept unless another is 5% faster; otherwise
/// the fastest, ties to the earlier. `model` supplies `predicted`; the result's `measured`
/// lists the trial.
[[nodiscard]] SelectorChoice choose_measured(const SelectorChoice& model,
                                             const std::vector<std::pair<TrialCandidate, double>>& measured);

/// Runs the trial: `run_once(candidate, i)` performs one whole aggregation of candidate i of
/// trial_candidates().candidates (collective over the world, on update-like data of the real length; the
/// caller keeps what it builds for candidate i until the trial returns, and frees it in
/// index order on every rank). Every rank returns the same choice. Collective over the world.
[[nodiscard]] Result<SelectorChoice> refine_by_trial(
    Topology& topology, const SelectorChoice& model, const TrialPolicy& policy,
    const std::function<Status(const TrialCandidate&, size_t)>& run_once);

/// What the factory needs beyond the name.
struct AlgorithmConfig {
  std::string name;  // one of allreduce_algorithm_names()
  SparseOptions sparse;
  LeaderExchange leader_exchange = LeaderExchange::kAllgather;
  NodeCompressor compressor;  // sparse-hier only
};

/// The dense family by name (dense-flat, dense-hier, sparse-hier). kInvalidArgument naming
/// `allreduce.algorithm` for other names.
[[nodiscard]] Result<std::unique_ptr<DenseAllreduceAlgorithm>> make_dense_allreduce(
    Topology& topology, const AlgorithmConfig& config);
/// Any algorithm by name in the sparse family (the dense ones densify the contribution).
[[nodiscard]] Result<std::unique_ptr<SparseAllreduceAlgorithm>> make_sparse_allreduce(
    Topology& topology, const AlgorithmConfig& config);

}  // namespace fedsilo::mpi
