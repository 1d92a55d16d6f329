// The `auto` allreduce rule: a table of inputs and the algorithm it must pick.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "mpi/selector.h"

namespace fedsilo::mpi {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;

struct Row {
  const char* why;
  double density;
  int ranks, nodes;
  int64_t bytes;
  double inter_gbit;  // inter-node bandwidth in Gbit/s (latency stays 50 us)
  CompressionLevel level;
  const char* expected;
};

TEST(Selector, PicksTheExpectedAlgorithmForEachRowOfTheTable) {
  const Row rows[] = {
      {"uncompressed, 4 nodes, big: only one copy per node crosses", 1.0, 8, 4, 64 * kMiB, 1.0,
       CompressionLevel::kSilo, "dense-hier"},
      {"uncompressed, one node: nothing to gain from a hierarchy", 1.0, 8, 1, 64 * kMiB, 1.0,
       CompressionLevel::kSilo, "dense-flat"},
      {"a single rank", 1.0, 1, 1, 64 * kMiB, 1.0, CompressionLevel::kSilo, "dense-flat"},
      {"half dense: sparse payloads outweigh dense", 0.5, 8, 4, 64 * kMiB, 1.0,
       CompressionLevel::kSilo, "dense-hier"},
      {"0.1% on 6 ranks: no fold overhead, one round", 0.001, 6, 6, 4 * kMiB, 1.0,
       CompressionLevel::kSilo, "sparse-allgather"},
      {"1% at 1 Gbit/s, 4 nodes", 0.01, 8, 4, 64 * kMiB, 1.0, CompressionLevel::kSilo,
       "sparse-allgather"},
      {"5% on 32 nodes: fill-in capped by the dense switch", 0.05, 32, 32, 4 * kMiB, 1.0,
       CompressionLevel::kSilo, "sparse-rd"},
      {"10% on a 100 Gbit/s link: merging costs more than the bytes saved", 0.1, 8, 4, 64 * kMiB,
       100.0, CompressionLevel::kSilo, "dense-flat"},
      {"tiny message, latency bound: doubling's first step stays inside the node", 0.01, 8, 4, 1024,
       1.0, CompressionLevel::kSilo, "sparse-rd"},
      {"node-level compression", 0.01, 8, 4, 64 * kMiB, 1.0, CompressionLevel::kNode,
       "sparse-hier"},
      {"node-level compression, no compression asked", 1.0, 8, 4, 64 * kMiB, 1.0,
       CompressionLevel::kNode, "dense-hier"},
      {"node-level 1% on a 100 Gbit/s link: compressing 64 MiB costs more than the link time",
       0.01, 8, 4, 64 * kMiB, 100.0, CompressionLevel::kNode, "dense-flat"},
      {"node-level 1% at 10 Gbit/s on 4 nodes: the link saving still beats the compression", 0.01,
       8, 4, 64 * kMiB, 10.0, CompressionLevel::kNode, "sparse-hier"},
  };
  for (const Row& r : rows) {
    SelectorInput in;
    in.density = r.density;
    in.ranks = r.ranks;
    in.nodes = r.nodes;
    in.message_bytes = r.bytes;
    in.level = r.level;
    in.link.inter_bandwidth_Bps = r.inter_gbit * 1.25e8;
    const SelectorChoice c = select_algorithm(in);
    std::string costs;
    for (const auto& [name, t] : c.predicted) costs += " " + name + "=" + std::to_string(t);
    EXPECT_EQ(c.algorithm, r.expected) << r.why << ":" << costs;
  }
}

TEST(Selector, IsPureAndPrefersTheBaselineOnNearTies) {
  SelectorInput in;
  in.density = 0.02;
  in.ranks = 4;
  in.nodes = 2;
  in.message_bytes = 8 * kMiB;
  const SelectorChoice a = select_algorithm(in), b = select_algorithm(in);
  EXPECT_EQ(a.algorithm, b.algorithm);
  ASSERT_EQ(a.predicted.size(), b.predicted.size());
  for (size_t i = 0; i < a.predicted.size(); ++i) {
    EXPECT_EQ(a.predicted[i].second, b.predicted[i].second);
  }
  // Whatever wins must be at least 5% cheaper than dense-flat, or be dense-flat.
  double flat = 0.0, chosen = 0.0;
  for (const auto& [name, t] : a.predicted) {
    if (name == "dense-flat") flat = t;
    if (name == a.algorithm) chosen = t;
  }
  EXPECT_TRUE(a.algorithm == "dense-flat" || chosen < 0.95 * flat);
}

TEST(Selector, SparseHierChoosesRecursiveDoublingAmongManyLeadersAtHigherDensity) {
  SelectorInput in;
  in.level = CompressionLevel::kNode;
  in.ranks = 64;
  in.nodes = 32;
  in.message_bytes = 4 * kMiB;
  in.density = 0.05;
  EXPECT_EQ(select_algorithm(in).leader_exchange, LeaderExchange::kRecursiveDoubling);
  in.nodes = 2;
  in.ranks = 4;
  in.density = 0.001;
  EXPECT_EQ(select_algorithm(in).leader_exchange, LeaderExchange::kAllgather);
}

TEST(Selector, NodeLevelWeighsTheLeadersCompressionAgainstTheLinkTime) {
  // 4 nodes x 2 ranks, 2^24 floats at 1%, 10 Gbit/s: cheap compression pays, slow compression
  // (leaders sharing few cores) does not, and the switch point is where the model says.
  SelectorInput in;
  in.level = CompressionLevel::kNode;
  in.density = 0.01;
  in.ranks = 8;
  in.nodes = 4;
  in.message_bytes = 64 * kMiB;
  in.link.inter_bandwidth_Bps = 1.25e9;
  in.compress_seconds_per_float = 1e-9;
  EXPECT_EQ(select_algorithm(in).algorithm, "sparse-hier");
  in.compress_seconds_per_float = 20e-9;  // 335 ms for the node sum
  const SelectorChoice slow = select_algorithm(in);
  EXPECT_NE(slow.algorithm, "sparse-hier");
  // The predictions list every candidate, dense ones included; the chosen one is the cheapest,
  // or dense-flat when nothing beats it by 5%.
  double chosen = -1.0, best = 1e30, flat = 0.0;
  for (const auto& [name, t] : slow.predicted) {
    best = std::min(best, t);
    if (name == slow.algorithm) chosen = t;
    if (name == "dense-flat") flat = t;
  }
  EXPECT_TRUE(chosen == best || (slow.algorithm == "dense-flat" && best >= 0.95 * flat))
      << slow.algorithm << " " << chosen << " vs best " << best;
  EXPECT_EQ(slow.predicted.size(), 4u);
}

TEST(Selector, MeasuredNodePhaseReplacesTheFormulaAndItsFixedCostKeepsSmallMessagesDense) {
  // 4 nodes x 2 ranks at 1 Gbit/s, 1%, cheap compression.
  SelectorInput in;
  in.level = CompressionLevel::kNode;
  in.density = 0.01;
  in.ranks = 8;
  in.nodes = 4;
  in.link.inter_bandwidth_Bps = 1.25e8;
  in.link.inter_latency_s = 20e-6;
  in.compress_seconds_per_float = 2e-9;
  in.node_phase.fixed_s = 1e-3;  // syncs, agreement, empty exchange: ~1 ms on shared cores
  in.node_phase.per_float_s = 1e-9;
  auto predicted = [](const SelectorChoice& c, const std::string& name) {
    for (const auto& [n, t] : c.predicted) {
      if (n == name) return t;
    }
    return -1.0;
  };
  // 64 KiB: the fixed millisecond is more than the dense transfers take (~0.9 ms).
  in.message_bytes = 64 * 1024;
  SelectorChoice small = select_algorithm(in);
  EXPECT_NE(small.algorithm, "sparse-hier");
  EXPECT_NEAR(predicted(small, "sparse-hier/allgather"),
              // fixed + per float (node phase, compression) + log2(4) latencies + 3 payloads
              // of 48 + 163.84 x (4 value + 1 index) bytes into each node + merging 4 of them
              1e-3 + 16384 * (1e-9 + 2e-9) + 2 * 20e-6 + 3 * (48 + 163.84 * 5.0) / 1.25e8 +
                  4 * 163.84 * in.merge_seconds_per_value,
              1e-7);
  // 64 MiB: compression pays by far.
  in.message_bytes = 64 * kMiB;
  EXPECT_EQ(select_algorithm(in).algorithm, "sparse-hier");
  // Not measured: the formula (reduce + broadcast over the intra-node link), no fixed cost.
  in.node_phase = NodePhaseCost{};
  in.message_bytes = 64 * 1024;
  const double formula = predicted(select_algorithm(in), "sparse-hier/allgather");
  EXPECT_LT(formula, predicted(small, "sparse-hier/allgather") - 0.9e-3);
}

TEST(Selector, DenseFlatIsTheCheaperOfRingAndRecursiveDoubling) {
  SelectorInput in;
  in.ranks = 8;
  in.nodes = 4;
  in.link.inter_bandwidth_Bps = 1.25e8;
  in.link.inter_latency_s = 50e-6;
  auto flat = [&](int64_t bytes) {
    in.message_bytes = bytes;
    return select_algorithm(in).predicted.at(0);
  };
  const double add = in.add_seconds_per_float;
  // 4 KiB: 3 doubling steps of the whole message beat 14 ring steps.
  auto small = flat(4096);
  EXPECT_EQ(small.first, "dense-flat");
  EXPECT_NEAR(small.second, 3 * (50e-6 + 4096 / 1.25e8) + 1024 * add, 1e-9);
  // 64 MiB: the ring moves 2 x 7/8 of it instead of 3 whole copies.
  auto big = flat(64 * kMiB);
  EXPECT_NEAR(big.second, 14 * 50e-6 + 1.75 * 64 * kMiB / 1.25e8 + 16 * kMiB * add, 1e-6);
  // 6 ranks: 2 doubling steps plus the fold in and out.
  in.ranks = 6;
  in.nodes = 6;
  auto six = flat(1024);
  EXPECT_NEAR(six.second, 4 * (50e-6 + 1024 / 1.25e8) + 256 * add, 1e-9);
}

TEST(Selector, NamesListTheFiveAlgorithms) {
  EXPECT_EQ(allreduce_algorithm_names(),
            (std::vector<std::string>{"dense-flat", "dense-hier", "sparse-allgather", "sparse-rd",
                                      "sparse-hier"}));
}

// auto's trial stage: which candidates it runs and how measured times decide.
SelectorChoice model_of(std::vector<std::pair<std::string, double>> predicted,
                        LeaderExchange leaders = LeaderExchange::kAllgather) {
  SelectorChoice c;
  c.algorithm = "dense-flat";
  c.leader_exchange = leaders;
  c.predicted = std::move(predicted);
  return c;
}

std::vector<std::string> names(const std::vector<TrialCandidate>& cs) {
  std::vector<std::string> out;
  for (const auto& c : cs) {
    out.push_back(c.algorithm + (c.algorithm == "sparse-hier"
                                     ? (c.leader_exchange == LeaderExchange::kAllgather ? "/ag" : "/rd")
                                     : ""));
  }
  return out;
}

TEST(SelectorTrial, RunsTheCandidatesWithinTheSpreadCheapestFirstAndWithinTheBudget) {
  TrialPolicy p;  // spread 3, budget 2 s, 5 timed runs (down to 3): a candidate costs 6 (4) x its prediction
  // Cheapest first; 7 ms is more than 3 x 2 ms and is not tried; only the model's leaders' exchange.
  auto a = trial_candidates(model_of({{"dense-flat", 5e-3}, {"dense-hier", 7e-3},
                                      {"sparse-hier/allgather", 2e-3}, {"sparse-hier/rd", 1e-3}}),
                            p);
  EXPECT_EQ(names(a.candidates), (std::vector<std::string>{"sparse-hier/ag", "dense-flat"}));
  EXPECT_DOUBLE_EQ(a.candidates[0].predicted_s, 2e-3);
  EXPECT_EQ(a.iterations, 5);
  auto rd = trial_candidates(model_of({{"dense-flat", 2.5e-3}, {"sparse-hier/allgather", 2e-3},
                                       {"sparse-hier/rd", 1e-3}},
                                      LeaderExchange::kRecursiveDoubling),
                             p);
  EXPECT_EQ(names(rd.candidates), (std::vector<std::string>{"sparse-hier/rd", "dense-flat"}));
  EXPECT_EQ(rd.candidates[0].leader_exchange, LeaderExchange::kRecursiveDoubling);
  // 0.15 s and 0.18 s: 6 x 0.33 = 1.98 s fits with 5 timed runs.
  auto full = trial_candidates(model_of({{"dense-flat", 0.15}, {"dense-hier", 0.18}}), p);
  EXPECT_EQ(full.candidates.size(), 2u);
  EXPECT_EQ(full.iterations, 5);
  // 0.17 s and 0.19 s: 6 x 0.36 = 2.16 s does not fit; 5 x 0.36 = 1.8 s does, with 4 timed runs.
  auto fewer = trial_candidates(model_of({{"dense-flat", 0.17}, {"sparse-hier/allgather", 0.19}}), p);
  EXPECT_EQ(names(fewer.candidates), (std::vector<std::string>{"dense-flat", "sparse-hier/ag"}));
  EXPECT_EQ(fewer.iterations, 4);
  // 0.22 s and 0.26 s: only 4 x 0.48 = 1.92 s fits, with 3 timed runs (the minimum).
  EXPECT_EQ(trial_candidates(model_of({{"dense-flat", 0.22}, {"dense-hier", 0.26}}), p).iterations, 3);
  // A third candidate that fits only at fewer runs is left out rather than cut the runs.
  auto two = trial_candidates(model_of({{"dense-flat", 0.1}, {"dense-hier", 0.2}, {"sparse-hier/allgather", 0.25}}), p);
  EXPECT_EQ(names(two.candidates), (std::vector<std::string>{"dense-flat", "dense-hier"}));
  EXPECT_EQ(two.iterations, 5);
  // 0.3 s + 0.4 s: even 3 timed runs cost 4 x 0.7 = 2.8 s > 2 s: only one fits, so no trial.
  auto none = trial_candidates(model_of({{"dense-flat", 0.3}, {"dense-hier", 0.4}}), p);
  EXPECT_TRUE(none.candidates.empty());
  EXPECT_EQ(none.iterations, 0);
  p.min_iterations = 5;  // the old rule: 0.17 + 0.19 no longer fits
  EXPECT_TRUE(trial_candidates(model_of({{"dense-flat", 0.17}, {"dense-hier", 0.19}}), p).candidates.empty());
  p.min_iterations = 3;
  // Nothing else within the spread: the model's choice stands.
  EXPECT_TRUE(trial_candidates(model_of({{"dense-flat", 1e-3}, {"dense-hier", 4e-3}}), p).candidates.empty());
  p.budget_s = 0.0;
  EXPECT_TRUE(trial_candidates(model_of({{"dense-flat", 1e-3}, {"dense-hier", 1e-3}}), p).candidates.empty());
}

TEST(SelectorTrial, MeasuredTimesDecideWithTheBaselineRule) {
  const auto model = model_of({{"dense-flat", 2e-3}, {"sparse-hier/allgather", 1e-3}});
  TrialCandidate flat{"dense-flat", LeaderExchange::kAllgather, 2e-3};
  TrialCandidate hier{"sparse-hier", LeaderExchange::kAllgather, 1e-3};
  TrialCandidate dh{"dense-hier", LeaderExchange::kAllgather, 2.5e-3};
  // The model preferred sparse-hier; measured, dense-flat is faster (a link burst the model
  // does not know): dense-flat.
  auto c = choose_measured(model, {{hier, 1.05e-3}, {flat, 0.71e-3}});
  EXPECT_EQ(c.algorithm, "dense-flat");
  ASSERT_EQ(c.measured.size(), 2u);
  EXPECT_EQ(c.measured[0].first, "sparse-hier/allgather");
  EXPECT_DOUBLE_EQ(c.measured[1].second, 0.71e-3);
  EXPECT_EQ(c.predicted, model.predicted);
  // 4% faster than dense-flat is not enough, 6% is.
  EXPECT_EQ(choose_measured(model, {{hier, 0.96}, {flat, 1.0}}).algorithm, "dense-flat");
  EXPECT_EQ(choose_measured(model, {{hier, 0.94}, {flat, 1.0}}).algorithm, "sparse-hier");
  // Without dense-flat in the trial the fastest wins, ties to the earlier.
  EXPECT_EQ(choose_measured(model, {{dh, 1.0}, {hier, 1.0}}).algorithm, "dense-hier");
  EXPECT_EQ(choose_measured(model, {{dh, 1.0}, {hier, 0.99}}).algorithm, "sparse-hier");
  // The leaders' exchange comes from the winning candidate.
  TrialCandidate rd{"sparse-hier", LeaderExchange::kRecursiveDoubling, 1e-3};
  auto r = choose_measured(model, {{rd, 0.5}, {flat, 1.0}});
  EXPECT_EQ(r.algorithm, "sparse-hier");
  EXPECT_EQ(r.leader_exchange, LeaderExchange::kRecursiveDoubling);
  // No trial: the model's choice.
  EXPECT_EQ(choose_measured(model, {}).algorithm, "dense-flat");
  EXPECT_TRUE(choose_measured(model, {}).measured.empty());
}

TEST(SelectorTrial, InterleaveOrdersArePermutationsWhereEveryEntryFollowsEveryOther) {
  std::set<std::pair<size_t, size_t>> follows;
  for (int it = 0; it < 30; ++it) {
    const auto order = interleave_order(4, it);
    EXPECT_EQ(order, interleave_order(4, it));  // the same on every call (and rank)
    auto sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<size_t>{0, 1, 2, 3}));
    for (size_t j = 1; j < order.size(); ++j) follows.insert({order[j - 1], order[j]});
  }
  EXPECT_EQ(follows.size(), 12u);  // all 4 x 3 ordered pairs
  EXPECT_TRUE(interleave_order(0, 0).empty());
  EXPECT_EQ(interleave_order(1, 5), (std::vector<size_t>{0}));
}

TEST(SelectorTrial, UpdateLikeDataIsDeterministicPerStreamAndDiffersAcrossStreams) {
  const auto a = update_like(1000, 0), b = update_like(1000, 0), c = update_like(1000, 1);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (float v : a) {
    EXPECT_LE(std::abs(v), 1e-3f);
    EXPECT_NE(v, 0.0f);
  }
  EXPECT_TRUE(update_like(0).empty());
}

}  // namespace
}  // namespace fedsilo::mpi
