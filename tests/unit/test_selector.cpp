// The `auto` allreduce rule: a table of inputs and the algorithm it must pick.
#include <gtest/gtest.h>

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

TEST(Selector, NamesListTheFiveAlgorithms) {
  EXPECT_EQ(allreduce_algorithm_names(),
            (std::vector<std::string>{"dense-flat", "dense-hier", "sparse-allgather", "sparse-rd",
                                      "sparse-hier"}));
}

}  // namespace
}  // namespace fedsilo::mpi
