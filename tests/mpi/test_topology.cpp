// Topology (real and emulated nodes, leaders, cross communicators), the communicator methods
// the allreduce algorithms use, and link calibration. Registered for 1 to 8 ranks.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <cstdlib>
#include <numeric>
#include <vector>

#include "mpi/comm.h"
#include "mpi/selector.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {
namespace {

TEST(Topology, EmulatedNodesAreEqualBlocksOfConsecutiveRanks) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  for (int N = 1; N <= P; ++N) {
    if (P % N != 0) continue;
    auto t = Topology::create(world.value(), N);
    ASSERT_TRUE(t.ok()) << t.status().to_string();
    const int per = P / N;
    EXPECT_TRUE(t->emulated());
    EXPECT_TRUE(t->uniform());
    EXPECT_EQ(t->num_nodes(), N);
    EXPECT_EQ(t->node_index(), r / per);
    EXPECT_EQ(t->local_size(), per);
    EXPECT_EQ(t->local_rank(), r % per);
    EXPECT_EQ(t->is_leader(), r % per == 0);
    EXPECT_EQ(t->node().size(), per);
    for (int q = 0; q < P; ++q) EXPECT_EQ(t->node_of(q), q / per);
    for (int i = 0; i < N; ++i) EXPECT_EQ(t->leader_of(i), i * per);
    // Cross communicators: one member per node, in node order.
    EXPECT_EQ(t->cross().size(), N);
    EXPECT_EQ(t->cross().rank(), r / per);
    const PeerMap leaders = t->leader_peers();
    ASSERT_EQ(leaders.world_rank.size(), static_cast<size_t>(N));
    EXPECT_EQ(leaders.world_rank.back(), (N - 1) * per);
    EXPECT_EQ(t->world_peers().node[r], r / per);
    EXPECT_NE(t->describe().find("(emulated)"), std::string::npos);
  }
}

TEST(Topology, RealNodeOfOneMachineHoldsEveryRank) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  ::unsetenv("FEDSILO_EMULATED_NODES");
  auto t = Topology::create(world.value(), 0);
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->emulated());
  EXPECT_EQ(t->num_nodes(), 1);
  EXPECT_EQ(t->local_size(), world->size());
  EXPECT_EQ(t->local_rank(), world->rank());
  EXPECT_EQ(t->node_index(), 0);
}

TEST(Topology, NodeCountThatDoesNotDivideTheRanksIsRejectedNamingTheSetting) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  auto t = Topology::create(world.value(), P + 1);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t.status().message(), "topology.emulated_nodes = " + std::to_string(P + 1) +
                                      " does not divide the " + std::to_string(P) +
                                      " ranks into equal nodes");
  EXPECT_FALSE(Topology::create(world.value(), -1).ok());
}

TEST(Topology, EnvironmentVariableEmulatesNodesWhenConfigSaysNothing) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  ::setenv("FEDSILO_EMULATED_NODES", std::to_string(P).c_str(), 1);
  auto t = Topology::create(world.value(), 0);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  EXPECT_TRUE(t->emulated());
  EXPECT_EQ(t->num_nodes(), P);
  // The config value wins over the variable.
  auto one = Topology::create(world.value(), 1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->num_nodes(), 1);
  ::setenv("FEDSILO_EMULATED_NODES", "two", 1);
  auto bad = Topology::create(world.value(), 0);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "FEDSILO_EMULATED_NODES=two is not a node count");
  ::unsetenv("FEDSILO_EMULATED_NODES");
}

TEST(Comm, SendrecvBytesExchangesMessagesOfDifferentSizes) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  // Ring: send r + 1 bytes of value r to the right, receive from the left.
  std::vector<uint8_t> send(static_cast<size_t>(r + 1), static_cast<uint8_t>(r)), recv;
  const int left = (r + P - 1) % P;
  ASSERT_TRUE(world->sendrecv_bytes(send, (r + 1) % P, recv, left, 3).ok());
  EXPECT_EQ(recv, std::vector<uint8_t>(static_cast<size_t>(left + 1), static_cast<uint8_t>(left)));
  // Empty messages too.
  ASSERT_TRUE(world->sendrecv_bytes({}, (r + 1) % P, recv, left, 4).ok());
  EXPECT_TRUE(recv.empty());
}

TEST(Comm, AllgathervBytesConcatenatesInRankOrderWithEmptyContributions) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  // Rank q contributes q % 3 bytes of value q (rank 0, 3, 6 nothing).
  std::vector<uint8_t> mine(static_cast<size_t>(r % 3), static_cast<uint8_t>(r)), all;
  std::vector<int64_t> offsets;
  ASSERT_TRUE(world->allgatherv_bytes(mine, all, offsets).ok());
  ASSERT_EQ(offsets.size(), static_cast<size_t>(P + 1));
  std::vector<uint8_t> want;
  for (int q = 0; q < P; ++q) {
    EXPECT_EQ(offsets[q], static_cast<int64_t>(want.size()));
    want.insert(want.end(), static_cast<size_t>(q % 3), static_cast<uint8_t>(q));
  }
  EXPECT_EQ(all, want);
}

TEST(Comm, ReduceScatterAndAllgathervRebuildTheSum) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  std::vector<int> counts(P);
  for (int q = 0; q < P; ++q) counts[q] = q % 2 + 1;
  const int total = std::accumulate(counts.begin(), counts.end(), 0);
  std::vector<float> in(static_cast<size_t>(total));
  for (int i = 0; i < total; ++i) in[i] = static_cast<float>(i + r);
  std::vector<float> piece(static_cast<size_t>(counts[r])), all(static_cast<size_t>(total));
  ASSERT_TRUE(world->reduce_scatter_sum(in, piece, counts).ok());
  ASSERT_TRUE(world->allgatherv(piece, all, counts).ok());
  for (int i = 0; i < total; ++i) {
    EXPECT_EQ(all[i], static_cast<float>(P * i + P * (P - 1) / 2)) << i;
  }
  std::vector<float> v(5, static_cast<float>(r + 1));
  ASSERT_TRUE(world->reduce_sum(v, 0).ok());
  if (r == 0) {
    EXPECT_EQ(v[4], static_cast<float>(P * (P + 1) / 2));
  }
  ASSERT_TRUE(world->broadcast(std::span<float>(v), 0).ok());
  EXPECT_EQ(v[0], static_cast<float>(P * (P + 1) / 2));
}

TEST(Calibration, MeasuresLinksAndGivesEveryRankTheSameModel) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  auto t = Topology::create(world.value(), P % 2 == 0 ? 2 : 1);
  ASSERT_TRUE(t.ok());
  LinkModel defaults;
  auto link = calibrate_links(t.value(), defaults, 3, 1 << 16);
  ASSERT_TRUE(link.ok()) << link.status().to_string();
  EXPECT_GT(link->inter_bandwidth_Bps, 0.0);
  EXPECT_GT(link->intra_bandwidth_Bps, 0.0);
  EXPECT_EQ(link->measured, P >= 2);
  double v[2] = {link->inter_bandwidth_Bps, -link->inter_bandwidth_Bps};
  ASSERT_TRUE(world->allreduce_max(std::span<double>(v, 2)).ok());
  EXPECT_EQ(v[0], -v[1]);  // max == min: the same on every rank
}

TEST(Calibration, ComputeCostIsTheSlowestLeadersAndOnlyLeadersWork) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  auto t = Topology::create(world.value(), P % 2 == 0 ? 2 : 1);
  ASSERT_TRUE(t.ok());
  int calls = 0;
  // Node 0's leader is slow on purpose: every rank must get at least its time per float.
  const bool slow = t->is_leader() && t->node_index() == 0;
  auto work = [&](std::span<const float> s) -> Status {
    ++calls;
    volatile double acc = 0.0;
    for (float v : s) acc = acc + v;
    if (slow) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return {};
  };
  auto per_float = calibrate_compute(t.value(), work, 4096, 3);
  ASSERT_TRUE(per_float.ok()) << per_float.status().to_string();
  EXPECT_GE(per_float.value(), 0.02 / 4096);
  EXPECT_LT(per_float.value(), 1.0 / 4096);
  EXPECT_EQ(calls, t->is_leader() ? 4 : 0);  // a warm-up and 3 timed runs, leaders only
  double v[2] = {per_float.value(), -per_float.value()};
  ASSERT_TRUE(world->allreduce_max(std::span<double>(v, 2)).ok());
  EXPECT_EQ(v[0], -v[1]);
  // A failing leader becomes the same error on every rank.
  auto bad = calibrate_compute(
      t.value(), [&](std::span<const float>) -> Status {
        return t->node_index() == 0 ? Status(StatusCode::kInternal, "boom") : Status{};
      },
      16, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("compute calibration: boom"), std::string::npos);
}

TEST(Calibration, NodePhaseIsMeasuredOnEveryNodeAndAgreed) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  auto t = Topology::create(world.value(), P % 2 == 0 ? P / 2 : 1);
  ASSERT_TRUE(t.ok());
  auto cost = calibrate_node_phase(t.value(), int64_t{1} << 18, 3);
  ASSERT_TRUE(cost.ok()) << cost.status().to_string();
  EXPECT_TRUE(cost->measured());
  EXPECT_GT(cost->fixed_s, 0.0);
  EXPECT_LT(cost->fixed_s, 1.0);
  // The growth is >= 0 by construction (oversubscribed ranks can make the small size the
  // slower one); 2^18 floats cannot take a second.
  EXPECT_GE(cost->per_float_s, 0.0);
  EXPECT_LT(cost->per_float_s * (1 << 18), 1.0);
  double v[4] = {cost->fixed_s, -cost->fixed_s, cost->per_float_s, -cost->per_float_s};
  ASSERT_TRUE(world->allreduce_max(std::span<double>(v, 4)).ok());
  EXPECT_EQ(v[0], -v[1]);  // the same on every rank
  EXPECT_EQ(v[2], -v[3]);
  EXPECT_FALSE(calibrate_node_phase(t.value(), -1, 3).ok());
  EXPECT_FALSE(calibrate_node_phase(t.value(), 1 << 18, 0).ok());
}

TEST(Calibration, TrialRunsTheShortlistAndEveryRankTakesTheMeasuredFastest) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  auto t = Topology::create(world.value(), 1);
  ASSERT_TRUE(t.ok());
  // The model prefers dense-hier; measured, dense-flat is much faster (one rank is slow in
  // dense-hier: the slowest rank counts).
  SelectorChoice model;
  model.algorithm = "dense-hier";
  model.predicted = {{"dense-flat", 2e-3}, {"dense-hier", 1e-3}, {"sparse-allgather", 9.0}};
  std::vector<std::string> ran;
  auto run_once = [&](const TrialCandidate& c, size_t i) -> Status {
    EXPECT_EQ(c.algorithm, i == 0 ? "dense-hier" : "dense-flat");
    ran.push_back(c.algorithm);
    const bool slow = c.algorithm == "dense-hier" && world->rank() == world->size() - 1;
    std::this_thread::sleep_for(std::chrono::milliseconds(slow ? 30 : 1));
    return {};
  };
  auto c = refine_by_trial(t.value(), model, TrialPolicy{}, run_once);
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  EXPECT_EQ(c->algorithm, "dense-flat");
  ASSERT_EQ(c->measured.size(), 2u);
  EXPECT_EQ(c->measured[0].first, "dense-hier");  // cheapest prediction first
  EXPECT_GE(c->measured[0].second, 0.03);          // the slowest rank's time
  // One warm-up each, then five timed runs each, interleaved; the 9 s candidate is outside
  // the spread.
  std::vector<std::string> want = {"dense-hier", "dense-flat"};
  const std::string names[2] = {"dense-hier", "dense-flat"};
  for (int it = 0; it < 5; ++it) {
    for (const size_t j : interleave_order(2, it)) want.push_back(names[j]);
  }
  EXPECT_EQ(ran, want);
  // A failing trial on one rank is every rank's error, naming the candidate.
  auto bad = refine_by_trial(t.value(), model, TrialPolicy{}, [&](const TrialCandidate& x, size_t) -> Status {
    if (x.algorithm == "dense-flat" && world->rank() == 0) return invalid_argument("boom");
    return {};
  });
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("dense-flat"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("boom"), std::string::npos);
}

}  // namespace
}  // namespace fedsilo::mpi
