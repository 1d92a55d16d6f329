// Every allreduce algorithm against MPI_Allreduce of the densified inputs, exactly, on
// exact-sum inputs (small integers in float): lengths 0, 1, fewer than the ranks, mid and
// 2^20; overlapping, disjoint, dense and partly empty index sets; every emulated node count
// that divides the ranks. Malformed payloads and contributions give the same error on every
// rank. Registered for 1 to 8 ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "mpi/algorithm.h"
#include "mpi/comm.h"
#include "mpi/selector.h"
#include "mpi/sparse_hier.h"
#include "mpi/sparse_rd.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {
namespace {

using kernels::SparseVector;

enum class Pattern { kOverlapping, kDisjoint, kDense, kHalfEmpty };

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::kOverlapping:
      return "overlapping";
    case Pattern::kDisjoint:
      return "disjoint";
    case Pattern::kDense:
      return "dense";
    case Pattern::kHalfEmpty:
      return "half-empty";
  }
  return "?";
}

/// Rank r's contribution: values in [-8, 8], so any sum over <= 8 ranks is exact in float
/// whatever the order.
SparseVector contribution(int64_t n, int r, int P, Pattern p) {
  SparseVector v;
  v.length = n;
  for (int64_t i = 0; i < n; ++i) {
    bool keep = false;
    switch (p) {
      case Pattern::kOverlapping:
        keep = i % (r + 2) == 0 || i % 5 == 1;
        break;
      case Pattern::kDisjoint:
        keep = i % P == r;
        break;
      case Pattern::kDense:
        keep = true;
        break;
      case Pattern::kHalfEmpty:
        keep = r % 2 == 0 && i % 3 != 2;
        break;
    }
    if (!keep) continue;
    v.indices.push_back(static_cast<uint32_t>(i));
    v.values.push_back(static_cast<float>((i * 13 + r * 7) % 17 - 8));
  }
  return v;
}

/// Node compressor for the tests: keeps every nonzero of the node sum (exact).
NodeCompressor keep_nonzeros() {
  return [](std::span<const float> own, std::span<const float* const> peers) -> Result<SparseVector> {
    std::vector<float> sum(own.begin(), own.end());
    for (const float* p : peers) {
      for (size_t i = 0; i < sum.size(); ++i) sum[i] += p[i];
    }
    SparseVector v;
    v.length = static_cast<int64_t>(sum.size());
    for (size_t i = 0; i < sum.size(); ++i) {
      if (sum[i] != 0.0f) {
        v.indices.push_back(static_cast<uint32_t>(i));
        v.values.push_back(sum[i]);
      }
    }
    return v;
  };
}

struct Variant {
  std::string label;
  AlgorithmConfig config;
};

std::vector<Variant> variants() {
  std::vector<Variant> out;
  for (const char* name : {"dense-flat", "dense-hier", "sparse-allgather", "sparse-rd"}) {
    Variant v;
    v.label = name;
    v.config.name = name;
    out.push_back(v);
  }
  Variant rd_early;
  rd_early.label = "sparse-rd (dense switch at 10%, fp16 values)";
  rd_early.config.name = "sparse-rd";
  rd_early.config.sparse.dense_switch_fraction = 0.1;
  rd_early.config.sparse.value_type = kernels::ValueType::kFp16;
  out.push_back(rd_early);
  Variant ag16;
  ag16.label = "sparse-allgather (bf16 values, bitmap)";
  ag16.config.name = "sparse-allgather";
  ag16.config.sparse.value_type = kernels::ValueType::kBf16;
  ag16.config.sparse.index = IndexChoice::kBitmap;
  out.push_back(ag16);
  for (const LeaderExchange ex : {LeaderExchange::kAllgather, LeaderExchange::kRecursiveDoubling}) {
    Variant h;
    h.label = ex == LeaderExchange::kAllgather ? "sparse-hier/allgather" : "sparse-hier/rd";
    h.config.name = "sparse-hier";
    h.config.leader_exchange = ex;
    h.config.compressor = keep_nonzeros();
    out.push_back(h);
  }
  return out;
}

/// Emulated node counts to try: 0 (the real node: one machine) and every divisor of P.
std::vector<int> node_counts(int P) {
  std::vector<int> out = {0};
  for (int n = 1; n <= P; ++n) {
    if (P % n == 0) out.push_back(n);
  }
  return out;
}

/// Runs `alg` on rank r's contribution and compares with MPI_Allreduce of the densified ones.
void expect_exact(Comm& world, SparseAllreduceAlgorithm& alg, const SparseVector& mine,
                  uint32_t round, const std::string& what, const Topology& topo) {
  const auto n = static_cast<size_t>(mine.length);
  std::vector<float> want(n);
  ASSERT_TRUE(densify(mine, want).ok());
  ASSERT_TRUE(world.allreduce_sum(std::span<float>(want)).ok());
  std::vector<float> got(n, -99.0f);
  AllreduceStats stats;
  const Status st = alg.sum(round, mine, got, stats);
  ASSERT_TRUE(st.ok()) << what << ": " << st.to_string();
  size_t bad = 0, first = n;
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) {
      if (bad++ == 0) first = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": first mismatch at " << first << ": got "
                     << (first < n ? got[first] : 0.0f) << ", MPI_Allreduce "
                     << (first < n ? want[first] : 0.0f);
  if (topo.num_nodes() == 1) {
    EXPECT_EQ(stats.inter_bytes_sent + stats.inter_bytes_received, 0) << what;
  }
  if (world.size() > 1 && n > 0 && alg.name() != "dense-flat") {
    EXPECT_GT(stats.bytes_sent() + stats.bytes_received(), 0) << what;
  }
  EXPECT_GE(stats.total_seconds, 0.0);
}

/// Runs a dense reducer (mpi::Reducer) on the densified `mine` and compares with MPI_Allreduce.
void expect_reducer_exact(Comm& world, mpi::Reducer& red, const SparseVector& mine,
                          const std::string& what) {
  std::vector<float> data(static_cast<size_t>(mine.length));
  ASSERT_TRUE(densify(mine, data).ok());
  std::vector<float> want = data;
  ASSERT_TRUE(world.allreduce_sum(std::span<float>(want)).ok());
  mpi::ReduceStats st;
  ASSERT_TRUE(red.sum(data, st).ok()) << what;
  EXPECT_EQ(data, want) << what;
}

TEST(Allreduce, EveryAlgorithmEqualsMpiAllreduceExactlyOnEveryTopology) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  std::vector<int64_t> lengths = {0, 1, P - 1, 1000};
  uint32_t round = 0;
  for (const int nodes : node_counts(P)) {
    auto topo = Topology::create(world.value(), nodes);
    ASSERT_TRUE(topo.ok()) << topo.status().to_string();
    for (const Variant& v : variants()) {
      auto alg = make_sparse_allreduce(topo.value(), v.config);
      ASSERT_TRUE(alg.ok()) << alg.status().to_string();
      for (const int64_t n : lengths) {
        if (n < 0) continue;
        for (const Pattern p :
             {Pattern::kOverlapping, Pattern::kDisjoint, Pattern::kDense, Pattern::kHalfEmpty}) {
          const std::string what = v.label + ", " + topo->describe() + ", length " +
                                   std::to_string(n) + ", " + pattern_name(p);
          expect_exact(world.value(), *alg.value(), contribution(n, r, P, p), round++, what,
                       topo.value());
        }
      }
    }
  }
}

TEST(Allreduce, EveryAlgorithmIsExactOnOneMillionFloats) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  const int64_t n = (int64_t{1} << 20) + 3;  // + 3: leftovers for dense-hier's pieces
  // The real node and the finest emulation with 2 ranks per node (or 1 node per rank).
  std::vector<int> configs = {0};
  if (P % 2 == 0 && P > 2) configs.push_back(P / 2);
  if (P > 1 && P % 2 != 0) configs.push_back(P);
  uint32_t round = 100;
  for (const int nodes : configs) {
    auto topo = Topology::create(world.value(), nodes);
    ASSERT_TRUE(topo.ok()) << topo.status().to_string();
    for (const Variant& v : variants()) {
      auto alg = make_sparse_allreduce(topo.value(), v.config);
      ASSERT_TRUE(alg.ok());
      for (const Pattern p : {Pattern::kOverlapping, Pattern::kDisjoint}) {
        const std::string what =
            v.label + ", " + topo->describe() + ", 2^20 + 3, " + pattern_name(p);
        expect_exact(world.value(), *alg.value(), contribution(n, r, P, p), round++, what,
                     topo.value());
      }
    }
  }
}

TEST(Allreduce, DenseAlgorithmsSumInPlaceAsReducers) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  for (const int nodes : node_counts(P)) {
    auto topo = Topology::create(world.value(), nodes);
    ASSERT_TRUE(topo.ok());
    for (const char* name : {"dense-flat", "dense-hier", "sparse-hier"}) {
      AlgorithmConfig cfg;
      cfg.name = name;
      cfg.compressor = keep_nonzeros();
      auto red = make_dense_allreduce(topo.value(), cfg);
      ASSERT_TRUE(red.ok()) << red.status().to_string();
      EXPECT_EQ(red.value()->name(), name);
      for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{P + 1}, int64_t{4099}}) {
        expect_reducer_exact(world.value(), *red.value(), contribution(n, r, P, Pattern::kOverlapping),
                             std::string(name) + ", " + topo->describe() + ", length " +
                                 std::to_string(n));
      }
    }
  }
}

TEST(Allreduce, SparseRdSwitchesToDenseOnlyWhenFillInMakesSparseLarger) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  if (P == 1) GTEST_SKIP() << "one rank exchanges nothing";
  auto topo = Topology::create(world.value(), 0);
  ASSERT_TRUE(topo.ok());
  SparseRecursiveDoubling rd(world.value(), topo->world_peers(), SparseOptions{});
  std::vector<float> out(10000);
  AllreduceStats st;
  ASSERT_TRUE(rd.sum(1, contribution(10000, r, P, Pattern::kDense), out, st).ok());
  EXPECT_GT(rd.last_dense_step(), 0);
  // One index per rank: a few bytes each, never worth a 40 KB dense payload.
  SparseVector tiny;
  tiny.length = 10000;
  tiny.indices = {static_cast<uint32_t>(r * 7)};
  tiny.values = {1.0f};
  ASSERT_TRUE(rd.sum(2, tiny, out, st).ok());
  EXPECT_EQ(rd.last_dense_step(), 0);
  for (int q = 0; q < P; ++q) EXPECT_EQ(out[q * 7], 1.0f);
}

/// Every rank must get the same error: kCorruptData with exactly `message`.
void expect_agreed(const Status& st, StatusCode code, const std::string& message,
                   const std::string& what) {
  EXPECT_FALSE(st.ok()) << what;
  EXPECT_EQ(st.code(), code) << what << ": " << st.to_string();
  EXPECT_EQ(st.message(), message) << what;
}

TEST(Allreduce, MalformedPayloadOnOneRankGivesTheSameErrorOnEveryRank) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  if (P == 1) GTEST_SKIP() << "one rank sends no payloads";
  // P / 2 nodes of 2 ranks: sparse-hier's other ranks merge the leaders' payloads from the
  // node's window themselves, and must agree on the same error.
  for (const int nodes : {0, P, P % 2 == 0 && P >= 4 ? P / 2 : P}) {
    auto topo = Topology::create(world.value(), nodes);
    ASSERT_TRUE(topo.ok());
    for (Variant v : variants()) {
      if (v.config.name.rfind("dense", 0) == 0) continue;  // floats only, no payloads
      const bool hier = v.config.name == "sparse-hier";
      if (hier && topo->num_nodes() < 2) continue;  // one leader sends nothing
      // The victim: the last rank, or for sparse-hier the last node's leader.
      const int victim = hier ? topo->leader_of(topo->num_nodes() - 1) : P - 1;
      const uint32_t round = 5;
      for (int kind = 0; kind < 2; ++kind) {
        if (r == victim) {
          v.config.sparse.tamper = [kind](std::vector<uint8_t>& b) {
            if (kind == 0) {
              b[8] = 99;  // round field (offset 8, little-endian u32) -> 99
            } else {
              b.pop_back();  // one byte short
            }
          };
        }
        auto alg = make_sparse_allreduce(topo.value(), v.config);
        ASSERT_TRUE(alg.ok());
        const SparseVector mine = contribution(300, r, P, Pattern::kOverlapping);
        std::vector<float> out(300);
        AllreduceStats st;
        const Status s = alg.value()->sum(round, mine, out, st);
        const std::string what =
            v.label + ", " + topo->describe() + ", kind " + std::to_string(kind);
        const std::string prefix = "payload from rank " + std::to_string(victim) + ": ";
        if (kind == 0) {
          expect_agreed(s, StatusCode::kCorruptData, prefix + "round 99, expected round 5", what);
        } else {
          EXPECT_EQ(s.code(), StatusCode::kCorruptData) << what << ": " << s.to_string();
          EXPECT_EQ(s.message().rfind(prefix + "header and sections make ", 0), 0u)
              << what << ": " << s.message();
        }
      }
    }
  }
}

TEST(Allreduce, MalformedContributionOnOneRankGivesTheSameErrorOnEveryRank) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  auto topo = Topology::create(world.value(), 0);
  ASSERT_TRUE(topo.ok());
  for (const Variant& v : variants()) {
    if (v.config.name == "sparse-hier") continue;  // takes dense updates
    auto alg = make_sparse_allreduce(topo.value(), v.config);
    ASSERT_TRUE(alg.ok());
    SparseVector mine = contribution(50, r, P, Pattern::kDense);
    if (r == P - 1) std::swap(mine.indices[3], mine.indices[4]);  // not ascending
    std::vector<float> out(50);
    AllreduceStats st;
    const Status s = alg.value()->sum(9, mine, out, st);
    expect_agreed(s, StatusCode::kInvalidArgument,
                  "rank " + std::to_string(P - 1) +
                      ": contribution index #4 (3) is not strictly ascending and below the "
                      "length 50",
                  v.label);
  }
}

TEST(Allreduce, FailingNodeCompressorGivesTheSameErrorOnEveryRank) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size();
  // One rank per node (every rank a leader) and, where P is even, nodes of 2 ranks (the shared
  // window); a small update and one past the size where the waits sleep.
  for (const int nodes : {P, P % 2 == 0 ? P / 2 : P}) {
    auto topo = Topology::create(world.value(), nodes);
    ASSERT_TRUE(topo.ok());
    const int bad_node = topo->num_nodes() - 1;
    AlgorithmConfig cfg;
    cfg.name = "sparse-hier";
    const bool mine_fails = topo->is_leader() && topo->node_index() == bad_node;
    cfg.compressor = [mine_fails](std::span<const float> s,
                                  std::span<const float* const>) -> Result<SparseVector> {
      if (mine_fails) return internal_error("out of memory for the residual");
      SparseVector v;
      v.length = static_cast<int64_t>(s.size());
      return v;
    };
    auto red = make_dense_allreduce(topo.value(), cfg);
    ASSERT_TRUE(red.ok());
    for (const int64_t n : {int64_t{64}, (int64_t{1} << 18) + 5}) {
      std::vector<float> data(static_cast<size_t>(n), 1.0f);
      mpi::ReduceStats st;
      const Status s = red.value()->sum(data, st);
      expect_agreed(s, StatusCode::kInternal,
                    "node " + std::to_string(bad_node) + " leader (rank " +
                        std::to_string(topo->leader_of(bad_node)) +
                        ") compressor: out of memory for the residual",
                    "sparse-hier, " + topo->describe() + ", length " + std::to_string(n));
    }
  }
}

// sparse-hier's node phase through the shared window and through messages (MPI_Reduce/Bcast):
// both exact against MPI_Allreduce, on results that are published sparse (few nonzeros) and
// dense (every element nonzero), with the window regrown when the length grows.
TEST(Allreduce, SparseHierNodePhaseIsExactThroughSharedMemoryAndThroughMessages) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  if (P < 2) GTEST_SKIP() << "needs two ranks on a node";
  const int nodes = P % 2 == 0 ? P / 2 : 1;
  auto topo = Topology::create(world.value(), nodes);
  ASSERT_TRUE(topo.ok());
  for (const bool shared : {true, false}) {
    if (!shared) setenv("FEDSILO_SPARSE_HIER_SHM", "0", 1);
    AlgorithmConfig cfg;
    cfg.name = "sparse-hier";
    cfg.compressor = keep_nonzeros();
    auto red = make_dense_allreduce(topo.value(), cfg);
    ASSERT_TRUE(red.ok());
    for (const int64_t n : {int64_t{10}, int64_t{5000}, int64_t{70001}, int64_t{3}}) {
      for (const Pattern p : {Pattern::kDisjoint, Pattern::kDense}) {
        expect_reducer_exact(world.value(), *red.value(), contribution(n, r, P, p),
                             std::string(shared ? "shared window" : "messages") + ", " +
                                 topo->describe() + ", length " + std::to_string(n) + ", " +
                                 pattern_name(p));
      }
    }
    auto* hier = dynamic_cast<SparseHier*>(red.value().get());
    ASSERT_NE(hier, nullptr);
    EXPECT_EQ(hier->node_phase_shared(), shared);
  }
  unsetenv("FEDSILO_SPARSE_HIER_SHM");
}

// sparse-hier's buffer(): the other ranks of a node write their update into their window
// segment and the leader reads it there (no copy). Round after round (the caller rewrites the
// buffer each time), the result in it is exact against MPI_Allreduce; leaders get no buffer,
// nor does anyone where the node phase runs through messages; a buffer stays put.
TEST(Allreduce, SparseHierReadsUpdatesWrittenIntoItsBufferInPlace) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  if (P < 2) GTEST_SKIP() << "needs two ranks on a node";
  const int nodes = P % 2 == 0 ? P / 2 : 1;
  auto topo = Topology::create(world.value(), nodes);
  ASSERT_TRUE(topo.ok());
  for (const bool shared : {true, false}) {
    if (!shared) setenv("FEDSILO_SPARSE_HIER_SHM", "0", 1);
    AlgorithmConfig cfg;
    cfg.name = "sparse-hier";
    cfg.compressor = keep_nonzeros();
    auto red = make_dense_allreduce(topo.value(), cfg);
    ASSERT_TRUE(red.ok());
    const int64_t n = (int64_t{1} << 18) + 5;  // the sleeping waits' size too
    auto buf = red.value()->buffer(n);
    ASSERT_TRUE(buf.ok()) << buf.status().to_string();
    const bool expect_buffer = shared && !topo->is_leader();
    ASSERT_EQ(!buf->empty(), expect_buffer) << (shared ? "shared" : "messages");
    std::vector<float> own(static_cast<size_t>(n));
    const std::span<float> data = buf->empty() ? std::span<float>(own) : buf.value();
    ASSERT_EQ(data.size(), static_cast<size_t>(n));
    for (const Pattern p : {Pattern::kOverlapping, Pattern::kDense, Pattern::kDisjoint}) {
      ASSERT_TRUE(densify(contribution(n, r, P, p), data).ok());
      std::vector<float> want(data.begin(), data.end());
      ASSERT_TRUE(world->allreduce_sum(std::span<float>(want)).ok());
      mpi::ReduceStats st;
      ASSERT_TRUE(red.value()->sum(data, st).ok());
      EXPECT_TRUE(std::equal(data.begin(), data.end(), want.begin()))
          << (shared ? "shared" : "messages") << ", " << pattern_name(p);
    }
    auto again = red.value()->buffer(n);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->data(), buf->data());
  }
  unsetenv("FEDSILO_SPARSE_HIER_SHM");
}

TEST(Allreduce, FactoryRejectsUnknownNamesNamingTheSetting) {
  auto world = Comm::world();
  ASSERT_TRUE(world.ok());
  auto topo = Topology::create(world.value(), 0);
  ASSERT_TRUE(topo.ok());
  AlgorithmConfig cfg;
  cfg.name = "ring";
  auto a = make_sparse_allreduce(topo.value(), cfg);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(a.status().message().find("allreduce.algorithm = \"ring\""), std::string::npos);
  cfg.name = "sparse-hier";
  EXPECT_FALSE(make_dense_allreduce(topo.value(), cfg).ok());  // no compressor
}

}  // namespace
}  // namespace fedsilo::mpi
