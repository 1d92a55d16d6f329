// The `auto` rule (an alpha-beta cost model), link calibration, and the algorithm factory.
#include "mpi/selector.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "mpi/dense_allreduce.h"
#include "mpi/dense_hier.h"
#include "mpi/sparse_allgather.h"
#include "mpi/sparse_rd.h"

namespace fedsilo::mpi {
namespace {

double value_bytes_per(kernels::ValueType t) {
  return static_cast<double>(wire_value_bytes(t, kernels::kInt8BlockSize)) /
         kernels::kInt8BlockSize;
}

/// Index bytes per nonzero at density x: LEB128 of the mean gap 1/x, or the bitmap's 1/(8x).
double index_bytes_per(double x) {
  if (x <= 0.0) return 1.0;
  const double gap = 1.0 / x;
  const double varint = std::max(1.0, std::ceil(std::log2(gap + 1.0) / 7.0));
  return std::min(varint, 1.0 / (8.0 * x));
}

/// Payload bytes at density x with v value bytes, capped at the dense payload.
double payload(double n, double x, double v) {
  x = std::clamp(x, 0.0, 1.0);
  return 48.0 + std::min(x * n * (v + index_bytes_per(x)), 4.0 * n);
}

/// Density of the sum of k random supports of density x.
double fill(double x, double k) {
  return 1.0 - std::pow(1.0 - std::clamp(x, 0.0, 1.0), k);
}

double log2_ceil(int p) {
  return p <= 1 ? 0.0 : std::ceil(std::log2(static_cast<double>(p)));
}

struct Costs {
  const SelectorInput& in;
  double n, M;
  int P, N, L;

  explicit Costs(const SelectorInput& i)
      : in(i),
        n(static_cast<double>(i.message_bytes) / 4.0),
        M(static_cast<double>(i.message_bytes)),
        P(std::max(1, i.ranks)),
        N(std::clamp(i.nodes, 1, std::max(1, i.ranks))),
        L((P + N - 1) / N) {}

  [[nodiscard]] double dense_flat() const {
    if (P == 1) return 0.0;
    const double a = N > 1 ? in.link.inter_latency_s : in.link.intra_latency_s;
    const double B = N > 1 ? in.link.inter_bandwidth_Bps : in.link.intra_bandwidth_Bps;
    const double ring = 2.0 * (P - 1) * a + 2.0 * (P - 1) / P * M / B;
    // MPI libraries switch to recursive doubling for small messages (Open MPI's tuned
    // allreduce does): floor(log2 P) whole-message exchanges, plus a fold in and out when P is
    // not a power of two.
    const bool pow2 = (P & (P - 1)) == 0;
    const double steps = std::floor(std::log2(static_cast<double>(P))) + (pow2 ? 0.0 : 2.0);
    const double doubling = steps * (a + M / B);
    return std::min(ring, doubling) + n * in.add_seconds_per_float;
  }
  [[nodiscard]] double dense_hier() const {
    double t = 2.0 * (L - 1) * in.link.intra_latency_s +
               2.0 * (L - 1) / L * M / in.link.intra_bandwidth_Bps;
    if (N > 1) {
      t += 2.0 * (N - 1) * in.link.inter_latency_s +
           2.0 * (N - 1) / N * M / in.link.inter_bandwidth_Bps;
    }
    return t + n * in.add_seconds_per_float;
  }
  /// Allgather among `ranks` ranks, `per_node` of them per node.
  [[nodiscard]] double allgather(int ranks, int per_node, int nodes) const {
    const double s = payload(n, in.density, value_bytes_per(in.value_type));
    const double a = nodes > 1 ? in.link.inter_latency_s : in.link.intra_latency_s;
    double t = log2_ceil(ranks) * a;
    if (nodes > 1) {
      t += static_cast<double>(per_node) * (ranks - per_node) * s / in.link.inter_bandwidth_Bps;
    }
    t += (per_node - 1) * s / in.link.intra_bandwidth_Bps;
    return t + ranks * in.density * n * in.merge_seconds_per_value;
  }
  /// Recursive doubling among `ranks` ranks, `per_node` consecutive ones per node.
  [[nodiscard]] double recursive_doubling(int ranks, int per_node) const {
    if (ranks <= 1) return 0.0;
    int p2 = 1;
    while (p2 * 2 <= ranks) p2 *= 2;
    const int extra = ranks - p2;
    const double v = value_bytes_per(in.value_type);
    auto link = [&](bool inter, double bytes, double concurrent) {
      return inter ? in.link.inter_latency_s + concurrent * bytes / in.link.inter_bandwidth_Bps
                   : in.link.intra_latency_s + bytes / in.link.intra_bandwidth_Bps;
    };
    auto merge = [&](double x) {
      return x >= 1.0 ? n * in.add_seconds_per_float : x * n * in.merge_seconds_per_value;
    };
    double t = 0.0;
    const bool adjacent_inter = per_node < 2;
    if (extra > 0) t += link(adjacent_inter, payload(n, in.density, v), 1.0) + merge(in.density);
    // Each of the p2 doubling ranks stands for ranks / p2 contributions on average.
    const double per = static_cast<double>(ranks) / p2;
    const double active_per_node = std::max(1.0, per_node * static_cast<double>(p2) / ranks);
    for (int k = 0; (1 << k) < p2; ++k) {
      const double contributions = (1 << k) * per;
      const double x = fill(in.density, contributions);
      const double bytes = k == 0 && extra == 0 ? payload(n, x, v) : payload(n, x, 4.0);
      const bool inter = (1 << k) * per >= per_node;
      t += link(inter, bytes, active_per_node) + merge(fill(in.density, 2 * contributions));
    }
    if (extra > 0) t += link(adjacent_inter, payload(n, fill(in.density, ranks), 4.0), 1.0);
    return t;
  }
  [[nodiscard]] double sparse_hier_node_phase() const {
    if (in.node_phase.measured()) return in.node_phase.fixed_s + n * in.node_phase.per_float_s;
    const double steps = log2_ceil(L);
    return 2.0 * steps * (in.link.intra_latency_s + M / in.link.intra_bandwidth_Bps);
  }
};

}  // namespace

const std::vector<std::string>& allreduce_algorithm_names() {
  static const std::vector<std::string> kNames = {"dense-flat", "dense-hier", "sparse-allgather",
                                                  "sparse-rd", "sparse-hier"};
  return kNames;
}

SelectorChoice select_algorithm(const SelectorInput& in) {
  const Costs c(in);
  SelectorChoice choice;
  choice.predicted = {{"dense-flat", c.dense_flat()}, {"dense-hier", c.dense_hier()}};
  if (in.level == CompressionLevel::kNode && in.density < 1.0) {
    const double base = c.sparse_hier_node_phase() + c.n * in.compress_seconds_per_float;
    const double ag = base + c.allgather(c.N, 1, c.N);
    const double rd = base + c.recursive_doubling(c.N, 1);
    // Equal bytes on two leaders (or disjoint supports on a power of two): keep the
    // allgather, whose single round is simpler; doubling must win by 5%.
    choice.leader_exchange =
        rd < 0.95 * ag ? LeaderExchange::kRecursiveDoubling : LeaderExchange::kAllgather;
    choice.predicted.emplace_back("sparse-hier/allgather", ag);
    choice.predicted.emplace_back("sparse-hier/rd", rd);
  } else if (in.density < 1.0) {
    choice.predicted.emplace_back("sparse-allgather", c.allgather(c.P, c.L, c.N));
    choice.predicted.emplace_back("sparse-rd", c.recursive_doubling(c.P, c.L));
  }
  const double flat = choice.predicted[0].second;
  choice.algorithm = "dense-flat";
  double best = flat;
  for (const auto& [name, t] : choice.predicted) {
    // Only the leaders' exchange the rule above picked stands for sparse-hier.
    if (name == "sparse-hier/rd" && choice.leader_exchange != LeaderExchange::kRecursiveDoubling) continue;
    if (name == "sparse-hier/allgather" && choice.leader_exchange != LeaderExchange::kAllgather) continue;
    // Strictly cheaper and 5% under the baseline; ties keep the earlier (simpler) one.
    if (t < best && t < 0.95 * flat) {
      best = t;
      choice.algorithm = name.starts_with("sparse-hier") ? "sparse-hier" : name;
    }
  }
  return choice;
}

// ------------------------------------------------------------------------------------- trials

std::vector<float> update_like(int64_t n, uint32_t stream) {
  std::vector<float> out(static_cast<size_t>(std::max<int64_t>(0, n)));
  uint32_t x = 0x9e3779b9u ^ (stream * 0x85ebca6bu);
  if (x == 0) x = 1;  // xorshift's one fixed point
  for (auto& v : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    v = (static_cast<float>(x & 0xffffff) / 16777216.0f - 0.5f) * 2e-3f;
  }
  return out;
}

std::vector<size_t> interleave_order(size_t m, int iteration) {
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(static_cast<int64_t>(iteration) + 2);
  for (size_t j = m; j > 1; --j) {  // Fisher-Yates on a splitmix64 stream
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::swap(order[j - 1], order[z % j]);
  }
  return order;
}

TrialPlan trial_candidates(const SelectorChoice& choice, const TrialPolicy& policy) {
  std::vector<TrialCandidate> all;
  for (const auto& [name, t] : choice.predicted) {
    TrialCandidate c;
    c.predicted_s = t;
    if (name.starts_with("sparse-hier/")) {
      c.algorithm = "sparse-hier";
      c.leader_exchange = name == "sparse-hier/rd" ? LeaderExchange::kRecursiveDoubling
                                                   : LeaderExchange::kAllgather;
      if (c.leader_exchange != choice.leader_exchange) continue;
    } else {
      c.algorithm = name;
    }
    if (std::isfinite(t) && t >= 0.0) all.push_back(c);
  }
  if (all.empty()) return {};
  std::stable_sort(all.begin(), all.end(),
                   [](const TrialCandidate& a, const TrialCandidate& b) { return a.predicted_s < b.predicted_s; });
  // The most timed runs that let two or more candidates fit, and with them as many candidates
  // as fit: a trial that fits at the full count is never cut short to try more candidates.
  for (int iterations = policy.iterations; iterations >= std::max(1, policy.min_iterations);
       --iterations) {
    TrialPlan plan;
    plan.iterations = iterations;
    double cost = 0.0;
    for (const auto& c : all) {
      if (c.predicted_s > policy.spread * all.front().predicted_s) break;
      cost += c.predicted_s * (iterations + 1);
      if (cost > policy.budget_s) break;
      plan.candidates.push_back(c);
    }
    if (plan.candidates.size() >= 2) return plan;
  }
  return {};
}

SelectorChoice choose_measured(const SelectorChoice& model,
                               const std::vector<std::pair<TrialCandidate, double>>& measured) {
  SelectorChoice choice = model;
  choice.measured.clear();
  if (measured.empty()) return choice;
  double flat = -1.0;
  for (const auto& [c, t] : measured) {
    choice.measured.emplace_back(
        c.algorithm == "sparse-hier"
            ? (c.leader_exchange == LeaderExchange::kRecursiveDoubling ? "sparse-hier/rd"
                                                                       : "sparse-hier/allgather")
            : c.algorithm,
        t);
    if (c.algorithm == "dense-flat") flat = t;
  }
  const TrialCandidate* best = nullptr;
  double best_t = 0.0;
  for (const auto& [c, t] : measured) {
    if (best == nullptr || t < best_t) {
      best = &c;
      best_t = t;
    }
  }
  if (flat >= 0.0 && best->algorithm != "dense-flat" && !(best_t < 0.95 * flat)) {
    choice.algorithm = "dense-flat";
    return choice;
  }
  choice.algorithm = best->algorithm;
  if (best->algorithm == "sparse-hier") choice.leader_exchange = best->leader_exchange;
  return choice;
}

Result<SelectorChoice> refine_by_trial(
    Topology& topology, const SelectorChoice& model, const TrialPolicy& policy,
    const std::function<Status(const TrialCandidate&, size_t)>& run_once) {
  const TrialPlan plan = trial_candidates(model, policy);
  const std::vector<TrialCandidate>& candidates = plan.candidates;
  if (candidates.empty()) return model;
  Comm& world = topology.world();
  const size_t m = candidates.size();
  std::vector<std::vector<double>> times(m);
  // One warm-up each, then the timed runs interleaved, in a fresh order every round (the same
  // on every rank), so no candidate always runs after the same other one and a slow phase of
  // the machine or the link hits them alike.
  for (int it = -1; it < plan.iterations; ++it) {
    const std::vector<size_t> order = interleave_order(m, it);
    for (size_t j = 0; j < m; ++j) {
      const size_t c = it < 0 ? j : order[j];
      FEDSILO_CHECK(world.barrier());
      const auto t0 = std::chrono::steady_clock::now();
      const Status st = run_once(candidates[c], c);
      double t[1] = {seconds_since(t0)};
      FEDSILO_CHECK(world.agree(st.ok() ? st
                                        : Status(st.code(), "auto's trial of " + candidates[c].algorithm +
                                                                ": " + st.message())));
      FEDSILO_CHECK(world.allreduce_max(std::span<double>(t, 1)));
      if (it >= 0) times[c].push_back(t[0]);
    }
  }
  std::vector<std::pair<TrialCandidate, double>> measured;
  for (size_t c = 0; c < m; ++c) {
    std::sort(times[c].begin(), times[c].end());
    measured.emplace_back(candidates[c], times[c][times[c].size() / 2]);
  }
  return choose_measured(model, measured);
}

// --------------------------------------------------------------------------------- calibration
namespace {

constexpr int kTagPing = 7200;

/// Median seconds of `iterations` round trips of `bytes` between ranks a and b of `comm`
/// (only a measures; b just echoes).
Result<double> ping_pong(Comm& comm, int a, int b, int64_t bytes, int iterations) {
  std::vector<uint8_t> msg(static_cast<size_t>(bytes), 0x5a), back;
  std::vector<double> times;
  for (int it = -1; it < iterations; ++it) {  // it = -1 warms up
    const auto t0 = std::chrono::steady_clock::now();
    if (comm.rank() == a) {
      FEDSILO_CHECK(comm.send_bytes(msg, b, kTagPing));
      FEDSILO_CHECK(comm.recv_bytes(back, b, kTagPing));
    } else {
      FEDSILO_CHECK(comm.recv_bytes(back, a, kTagPing));
      FEDSILO_CHECK(comm.send_bytes(back, a, kTagPing));
    }
    if (it >= 0) {
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  std::sort(times.begin(), times.end());
  return times.empty() ? 0.0 : times[times.size() / 2];
}

/// Latency and bandwidth from the two ping-pongs (one way = half a round trip).
Status measure(Comm& comm, int a, int b, int64_t large, int iterations, double& latency,
               double& bandwidth) {
  FEDSILO_ASSIGN_OR_RETURN(const double small_rt, ping_pong(comm, a, b, 8, iterations));
  FEDSILO_ASSIGN_OR_RETURN(const double large_rt, ping_pong(comm, a, b, large, iterations));
  latency = small_rt / 2.0;
  // On a loaded machine the small ping-pong can take as long as the large one; then the large
  // one's whole one-way time bounds the transfer, which keeps the bandwidth positive (measured).
  double transfer = large_rt / 2.0 - latency;
  if (!(transfer > 0.0)) transfer = large_rt / 2.0;
  bandwidth = transfer > 0.0 ? static_cast<double>(large) / transfer : 0.0;
  return {};
}

}  // namespace

Result<LinkModel> calibrate_links(Topology& topology, const LinkModel& defaults, int iterations,
                                  int64_t large_bytes) {
  if (iterations < 1 || large_bytes < 8) {
    return invalid_argument("calibrate_links: iterations >= 1 and large_bytes >= 8");
  }
  Comm& world = topology.world();
  const int N = topology.num_nodes(), L = topology.local_size();
  // The links are measured as the algorithms use them: all at once, so links and cores that
  // several nodes share (an emulated cluster, a shared switch) show their real speed, and the
  // slowest pair counts. [inter latency, inter s/byte, intra latency, intra s/byte]; 0 = not
  // measured here.
  double m[4] = {0.0, 0.0, 0.0, 0.0};
  // Inter-node: the leaders of nodes 2i and 2i+1 ping-pong, every pair at the same time.
  if (N >= 2) {
    const int i = topology.node_index();
    const int partner = i % 2 == 0 ? i + 1 : i - 1;
    if (topology.is_leader() && partner < N) {
      const int a = topology.leader_of(std::min(i, partner)), b = topology.leader_of(std::max(i, partner));
      double lat = 0.0, bw = 0.0;
      FEDSILO_CHECK(measure(world, a, b, large_bytes, iterations, lat, bw));
      if (world.rank() == a && bw > 0.0) {
        m[0] = lat;
        m[1] = 1.0 / bw;
      }
    }
  }
  // Inside the nodes: latency from local ranks 0 and 1 of every node at once; bandwidth from
  // what the dense algorithms do there, a reduce-scatter and an allgather of the same volume on
  // every node at once (memory traffic and summation included).
  if (L >= 2) {
    Comm& node = topology.node();
    if (node.rank() < 2) {
      FEDSILO_ASSIGN_OR_RETURN(const double rt, ping_pong(node, 0, 1, 8, iterations));
      if (node.rank() == 0) m[2] = rt / 2.0;
    }
    const int64_t n = std::max<int64_t>(L, large_bytes / 4);
    std::vector<float> data(static_cast<size_t>(n), 1.0f);
    std::vector<int> counts(static_cast<size_t>(L));
    for (int q = 0; q < L; ++q) counts[q] = static_cast<int>(n / L + (q < n % L ? 1 : 0));
    std::vector<float> piece(static_cast<size_t>(counts[node.rank()]));
    std::vector<double> times;
    for (int it = -1; it < iterations; ++it) {
      FEDSILO_CHECK(world.barrier());
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(node.reduce_scatter_sum(data, piece, counts));
      FEDSILO_CHECK(node.allgatherv(piece, data, counts));
      if (it >= 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double moved = 2.0 * (L - 1) / L * 4.0 * static_cast<double>(n);  // the model's intra bytes
    m[3] = times[times.size() / 2] / moved;
  }
  FEDSILO_CHECK(world.allreduce_max(std::span<double>(m, 4)));
  LinkModel link = defaults;
  if (m[1] > 0.0) {
    link.inter_latency_s = m[0];
    link.inter_bandwidth_Bps = 1.0 / m[1];
    link.measured = true;
  }
  if (m[3] > 0.0) {
    link.intra_latency_s = m[2];
    link.intra_bandwidth_Bps = 1.0 / m[3];
    link.measured = true;
  }
  return link;
}

Result<double> calibrate_compute(Topology& topology,
                                 const std::function<Status(std::span<const float>)>& work,
                                 int64_t sample_floats, int iterations) {
  if (sample_floats < 1 || iterations < 1) {
    return invalid_argument("calibrate_compute: sample_floats >= 1 and iterations >= 1");
  }
  Comm& world = topology.world();
  const std::vector<float> sample = update_like(sample_floats);  // the same on every leader
  std::vector<double> times;
  Status st;
  for (int it = -1; it < iterations; ++it) {  // it = -1 warms up
    FEDSILO_CHECK(world.barrier());
    if (!topology.is_leader()) continue;
    const auto t0 = std::chrono::steady_clock::now();
    if (st.ok()) st = work(sample);
    if (it >= 0) {
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  FEDSILO_CHECK(world.agree(st.ok() ? st : Status(st.code(), "compute calibration: " + st.message())));
  double per_float[1] = {0.0};
  if (!times.empty()) {
    std::sort(times.begin(), times.end());
    per_float[0] = times[times.size() / 2] / static_cast<double>(sample_floats);
  }
  FEDSILO_CHECK(world.allreduce_max(std::span<double>(per_float, 1)));
  return per_float[0];
}

Result<NodePhaseCost> calibrate_node_phase(Topology& topology, int64_t length, int iterations) {
  constexpr int64_t kSmall = 256;
  if (length < 0 || iterations < 1) {
    return invalid_argument("calibrate_node_phase: length >= 0 and iterations >= 1");
  }
  const int64_t sample_floats = std::clamp<int64_t>(length, 2 * kSmall, int64_t{1} << 20);
  Comm& world = topology.world();
  SparseHier hier(
      topology,
      [](std::span<const float> own, std::span<const float* const>) -> Result<kernels::SparseVector> {
        kernels::SparseVector none;
        none.length = static_cast<int64_t>(own.size());
        return none;
      },
      LeaderExchange::kAllgather, SparseOptions{});
  std::vector<float> data;
  auto median_seconds = [&](int64_t n) -> Result<double> {
    std::vector<double> times;
    for (int it = -1; it < iterations; ++it) {  // it = -1 warms up (and maps the window)
      data.assign(static_cast<size_t>(n), 1.0f);
      FEDSILO_CHECK(world.barrier());
      const auto t0 = std::chrono::steady_clock::now();
      AllreduceStats stats;
      FEDSILO_CHECK(hier.reduce(0, data, stats));
      if (it >= 0) times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
  };
  double m[2] = {0.0, 0.0};
  FEDSILO_ASSIGN_OR_RETURN(m[0], median_seconds(kSmall));
  FEDSILO_ASSIGN_OR_RETURN(m[1], median_seconds(sample_floats));
  FEDSILO_CHECK(world.allreduce_max(std::span<double>(m, 2)));
  NodePhaseCost cost;
  cost.fixed_s = m[0];
  cost.per_float_s = std::max(0.0, (m[1] - m[0]) / static_cast<double>(sample_floats - kSmall));
  return cost;
}

// ------------------------------------------------------------------------------------- factory
namespace {

Status unknown_algorithm(const std::string& name) {
  std::string list;
  for (const auto& n : allreduce_algorithm_names()) list += (list.empty() ? "" : ", ") + n;
  return invalid_argument("allreduce.algorithm = \"" + name + "\" is not one of " + list +
                          " (\"auto\" is resolved by select_algorithm first)");
}

}  // namespace

Result<std::unique_ptr<DenseAllreduceAlgorithm>> make_dense_allreduce(
    Topology& topology, const AlgorithmConfig& config) {
  if (config.name == "dense-flat") {
    return std::unique_ptr<DenseAllreduceAlgorithm>(
        std::make_unique<DenseAllreduce>(topology.world(), topology.num_nodes() == 1));
  }
  if (config.name == "dense-hier") {
    return std::unique_ptr<DenseAllreduceAlgorithm>(std::make_unique<DenseHier>(topology));
  }
  if (config.name == "sparse-hier") {
    if (!config.compressor) {
      return invalid_argument(
          "allreduce.algorithm = \"sparse-hier\" needs a node compressor "
          "(compression.level = \"node\")");
    }
    return std::unique_ptr<DenseAllreduceAlgorithm>(std::make_unique<SparseHier>(
        topology, config.compressor, config.leader_exchange, config.sparse));
  }
  if (config.name == "sparse-allgather" || config.name == "sparse-rd") {
    return invalid_argument("allreduce.algorithm = \"" + config.name +
                            "\" sums sparse contributions: use make_sparse_allreduce");
  }
  return unknown_algorithm(config.name);
}

Result<std::unique_ptr<SparseAllreduceAlgorithm>> make_sparse_allreduce(
    Topology& topology, const AlgorithmConfig& config) {
  if (config.name == "sparse-allgather") {
    return std::unique_ptr<SparseAllreduceAlgorithm>(
        std::make_unique<SparseAllgather>(topology.world(), topology.world_peers(), config.sparse));
  }
  if (config.name == "sparse-rd") {
    return std::unique_ptr<SparseAllreduceAlgorithm>(std::make_unique<SparseRecursiveDoubling>(
        topology.world(), topology.world_peers(), config.sparse));
  }
  FEDSILO_ASSIGN_OR_RETURN(auto dense, make_dense_allreduce(topology, config));
  return std::unique_ptr<SparseAllreduceAlgorithm>(
      std::make_unique<DensifyingAllreduce>(topology.world(), std::move(dense)));
}

}  // namespace fedsilo::mpi
