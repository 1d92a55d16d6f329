// What leaves a silo under secure aggregation is masked. MPI-profiling-interface wrappers of this
// binary capture every buffer a rank hands to MPI_Allreduce, MPI_Allgather(v), MPI_Bcast and the
// non-blocking sums (MPI_Iallreduce, MPI_Ireduce_scatter, MPI_Iallgatherv) during secure rounds.
// The rank's own words (the pieces it hands to the flat sum, or to the node's reduce-scatter)
// together are exactly n + 1 words that look uniform (chi-square over the top bytes of the
// 32-bit words) and are uncorrelated with the sender's unmasked fixed-point code; a node's
// partial sums crossing nodes look uniform too; what the node allgather sends is the public sum.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "config/config.h"
#include "fl/secure_aggregation.h"
#include "fl/update_exchange.h"
#include "secagg/crypto.h"
#include "mpi/comm.h"
#include "secagg/masking.h"

namespace {
// Which call sent a buffer.
enum class Call { kOther, kOwnWords, kCrossNode, kNodeGather };
struct Captured {
  MPI_Datatype type;
  Call call;
  std::vector<uint8_t> bytes;
};
bool g_capturing = false;
std::vector<Captured> g_sent;

void capture(const void* buf, int count, MPI_Datatype type, Call call = Call::kOther) {
  if (!g_capturing || buf == nullptr || count <= 0) return;
  int size = 0;
  PMPI_Type_size(type, &size);
  const auto* p = static_cast<const uint8_t*>(buf);
  g_sent.push_back({type, call, std::vector<uint8_t>(p, p + static_cast<size_t>(count) * size)});
}
bool g_hier = false;  // the run sums node by node: its Iallreduce crosses nodes
}  // namespace

extern "C" int MPI_Iallreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op,
                              MPI_Comm comm, MPI_Request* request) {
  capture(send == MPI_IN_PLACE ? recv : send, count, type, g_hier ? Call::kCrossNode : Call::kOwnWords);
  return PMPI_Iallreduce(send, recv, count, type, op, comm, request);
}
extern "C" int MPI_Ireduce_scatter(const void* send, void* recv, const int counts[], MPI_Datatype type,
                                   MPI_Op op, MPI_Comm comm, MPI_Request* request) {
  int size = 0, total = 0;
  PMPI_Comm_size(comm, &size);
  for (int q = 0; q < size; ++q) total += counts[q];
  capture(send, total, type, Call::kOwnWords);
  return PMPI_Ireduce_scatter(send, recv, counts, type, op, comm, request);
}
extern "C" int MPI_Iallgatherv(const void* send, int scount, MPI_Datatype stype, void* recv,
                               const int rcounts[], const int displs[], MPI_Datatype rtype,
                               MPI_Comm comm, MPI_Request* request) {
  capture(send, scount, stype, Call::kNodeGather);
  return PMPI_Iallgatherv(send, scount, stype, recv, rcounts, displs, rtype, comm, request);
}

extern "C" int MPI_Allreduce(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op,
                             MPI_Comm comm) {
  capture(send == MPI_IN_PLACE ? recv : send, count, type);
  return PMPI_Allreduce(send, recv, count, type, op, comm);
}
extern "C" int MPI_Allgather(const void* send, int scount, MPI_Datatype stype, void* recv, int rcount,
                             MPI_Datatype rtype, MPI_Comm comm) {
  capture(send, scount, stype);
  return PMPI_Allgather(send, scount, stype, recv, rcount, rtype, comm);
}
extern "C" int MPI_Allgatherv(const void* send, int scount, MPI_Datatype stype, void* recv,
                              const int rcounts[], const int displs[], MPI_Datatype rtype, MPI_Comm comm) {
  capture(send, scount, stype);
  return PMPI_Allgatherv(send, scount, stype, recv, rcounts, displs, rtype, comm);
}
extern "C" int MPI_Bcast(void* buf, int count, MPI_Datatype type, int root, MPI_Comm comm) {
  int rank = 0;
  PMPI_Comm_rank(comm, &rank);
  if (rank == root) capture(buf, count, type);
  return PMPI_Bcast(buf, count, type, root, comm);
}

namespace fedsilo::fl {
namespace {

// Chi-square of the top bytes of `words` in 256 bins (df 255; 400 is beyond p = 1e-9).
double chi_square(std::span<const uint32_t> words) {
  std::vector<double> bins(256, 0.0);
  for (uint32_t x : words) bins[x >> 24] += 1.0;
  const double expected = static_cast<double>(words.size()) / 256.0;
  double chi2 = 0.0;
  for (double b : bins) chi2 += (b - expected) * (b - expected) / expected;
  return chi2;
}

std::vector<uint32_t> words_of(const std::vector<uint8_t>& bytes) {
  std::vector<uint32_t> w(bytes.size() / 4);
  std::memcpy(w.data(), bytes.data(), 4 * w.size());
  return w;
}

void check_what_leaves(config::Algorithm algorithm, int emulated_nodes) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int me = world->rank();
  config::Config cfg;
  cfg.run.seed = 3;
  cfg.secure_aggregation.enabled = true;
  cfg.secure_aggregation.range = 1.0;
  cfg.secure_aggregation.bits = 16;
  cfg.secure_aggregation.max_weight = 100.0;
  cfg.allreduce.algorithm = algorithm;
  cfg.topology.emulated_nodes = emulated_nodes;
  const int64_t n = 1 << 16;
  auto exchange = UpdateExchange::create(cfg, world.value(), n, "");
  ASSERT_TRUE(exchange.ok()) << exchange.status().message();
  auto agg = SecureAggregation::create(cfg, world.value(), **exchange, n);
  ASSERT_TRUE(agg.ok()) << agg.status().message();
  g_hier = (*agg)->name() == "secure-dense-hier";
  // A very structured update: a slow ramp, the same on every rank but for an offset.
  std::vector<float> global(n, 0.0f), local(n);
  for (int64_t i = 0; i < n; ++i) local[i] = 0.5f * std::sin(static_cast<float>(i) * 1e-3f) + 0.01f * me;
  const float weight = 50.0f;
  g_sent.clear();
  g_capturing = true;
  ASSERT_TRUE((*agg)->contribute(local, global, weight, true, {}).ok());
  ExchangeStats stats;
  auto got = (*agg)->combine(1, true, stats);
  g_capturing = false;
  ASSERT_TRUE(got.ok()) << got.status().message();

  // This rank's unmasked code, as SecureAggregation makes it (the masker of no peers).
  const secagg::FixedPoint fp{1.0, 16};
  std::vector<float> scaled(n);
  const auto w = static_cast<float>(weight / cfg.secure_aggregation.max_weight);
  for (int64_t i = 0; i < n; ++i) scaled[i] = w * (local[i] - global[i]);
  auto coder = secagg::RoundMasker::create(secagg::rounding_key(cfg.run.seed, 1, static_cast<uint32_t>(me)), me, {});
  ASSERT_TRUE(coder.ok());
  std::vector<uint32_t> code(n);
  ASSERT_TRUE(coder->code_and_mask(scaled, fp, 0, code).ok());

  // The rank's own words, piece by piece in order; node partial sums; anything else is small.
  std::vector<uint32_t> own;
  for (const Captured& c : g_sent) {
    if (c.call == Call::kOwnWords) {
      ASSERT_EQ(c.type, MPI_UINT32_T);
      const auto piece = words_of(c.bytes);
      own.insert(own.end(), piece.begin(), piece.end());
    } else if (c.call == Call::kCrossNode) {
      ASSERT_EQ(c.type, MPI_UINT32_T);
      if (c.bytes.size() >= 4096) {
        EXPECT_LT(chi_square(words_of(c.bytes)), 400.0) << "rank " << me;
      }
    } else if (c.call == Call::kOther) {
      EXPECT_LE(c.bytes.size(), 64u) << "a buffer of " << c.bytes.size() << " bytes left the rank";
    }
  }
  ASSERT_EQ(own.size(), static_cast<size_t>(n + 1)) << "rank " << me;
  const std::span<const uint32_t> sent(own.data(), static_cast<size_t>(n));
  EXPECT_LT(chi_square(sent), 400.0) << "rank " << me;
  // The plain code is far from uniform (the sanity check that the statistic can fail).
  EXPECT_GT(chi_square(code), 1e4);
  // Uncorrelated with the code (as signed values): |r| below 5 / sqrt(n) = 0.02.
  double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = static_cast<int32_t>(sent[i]), y = static_cast<int32_t>(code[i]);
    sx += x; sy += y; sxx += x * x; syy += y * y; sxy += x * y;
  }
  const double cov = sxy / n - (sx / n) * (sy / n);
  const double r = cov / std::sqrt((sxx / n - (sx / n) * (sx / n)) * (syy / n - (sy / n) * (sy / n)));
  EXPECT_LT(std::abs(r), 0.02) << "rank " << me;
}

TEST(SecaggWire, EveryBufferARankSendsInAFlatSumIsMaskedNoise) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "secure aggregation needs 3 ranks";
  check_what_leaves(config::Algorithm::kDenseFlat, 0);
}

TEST(SecaggWire, EveryBufferARankSendsInANodeByNodeSumIsMaskedNoise) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 4 || world->size() % 2 != 0) GTEST_SKIP() << "needs an even count of 4 or more ranks";
  check_what_leaves(config::Algorithm::kDenseHier, 2);
}

}  // namespace
}  // namespace fedsilo::fl
