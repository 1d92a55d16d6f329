// What leaves a silo under secure aggregation is masked. MPI-profiling-interface wrappers of this
// binary capture every buffer a rank hands to MPI_Allreduce, MPI_Allgather(v) and MPI_Bcast
// during secure rounds: the only one of update size is the uint32 sum's, and it must look
// uniform (chi-square over the top bytes of its 32-bit words) and be uncorrelated with the
// sender's unmasked fixed-point code.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "config/config.h"
#include "core/philox.h"
#include "fl/secure_aggregation.h"
#include "mpi/comm.h"
#include "secagg/masking.h"

namespace {
struct Captured {
  MPI_Datatype type;
  std::vector<uint8_t> bytes;
};
bool g_capturing = false;
std::vector<Captured> g_sent;

void capture(const void* buf, int count, MPI_Datatype type) {
  if (!g_capturing || buf == nullptr || count <= 0) return;
  int size = 0;
  PMPI_Type_size(type, &size);
  const auto* p = static_cast<const uint8_t*>(buf);
  g_sent.push_back({type, std::vector<uint8_t>(p, p + static_cast<size_t>(count) * size)});
}
}  // namespace

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

TEST(SecaggWire, EveryUpdateSizedBufferARankSendsIsMaskedNoise) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "secure aggregation needs 3 ranks";
  const int me = world->rank();
  config::Config cfg;
  cfg.run.seed = 3;
  cfg.secure_aggregation.enabled = true;
  cfg.secure_aggregation.range = 1.0;
  cfg.secure_aggregation.bits = 16;
  cfg.secure_aggregation.max_weight = 100.0;
  const int64_t n = 1 << 16;
  auto agg = SecureAggregation::create(cfg, world.value(), n);
  ASSERT_TRUE(agg.ok()) << agg.status().message();
  // A very structured update: a slow ramp, the same on every rank but for an offset.
  std::vector<float> global(n, 0.0f), local(n);
  for (int64_t i = 0; i < n; ++i) local[i] = 0.5f * std::sin(static_cast<float>(i) * 1e-3f) + 0.01f * me;
  const float weight = 50.0f;
  g_sent.clear();
  g_capturing = true;
  ASSERT_TRUE((*agg)->contribute(local, global, weight, true).ok());
  ExchangeStats stats;
  auto got = (*agg)->combine(1, true, stats);
  g_capturing = false;
  ASSERT_TRUE(got.ok()) << got.status().message();

  // This rank's unmasked code, as SecureAggregation makes it.
  const secagg::FixedPoint fp{1.0, 16};
  std::vector<float> scaled(n);
  const auto w = static_cast<float>(weight / cfg.secure_aggregation.max_weight);
  for (int64_t i = 0; i < n; ++i) scaled[i] = w * (local[i] - global[i]);
  std::vector<uint32_t> random(n), code(n);
  Philox rng(cfg.run.seed, 1, static_cast<uint32_t>(me), RngPurpose::kSecureRounding);
  for (auto& r : random) r = rng.next_u32();
  secagg::encode(scaled, fp, random, code);

  int update_sized = 0;
  for (const Captured& c : g_sent) {
    if (c.bytes.size() < static_cast<size_t>(4 * n)) {
      EXPECT_LE(c.bytes.size(), 64u) << "a buffer of " << c.bytes.size() << " bytes left the rank";
      continue;
    }
    ++update_sized;
    ASSERT_EQ(c.type, MPI_UINT32_T);
    ASSERT_EQ(c.bytes.size(), static_cast<size_t>(4 * (n + 1)));
    std::vector<uint32_t> sent(n);
    std::memcpy(sent.data(), c.bytes.data(), 4 * static_cast<size_t>(n));
    // Uniform: the top bytes of 65,536 words in 256 bins (df 255; 400 is beyond p = 1e-9).
    std::vector<double> bins(256, 0.0);
    for (uint32_t x : sent) bins[x >> 24] += 1.0;
    const double expected = static_cast<double>(n) / 256.0;
    double chi2 = 0.0;
    for (double b : bins) chi2 += (b - expected) * (b - expected) / expected;
    EXPECT_LT(chi2, 400.0) << "rank " << me;
    // The plain code is far from uniform (the sanity check that the statistic can fail).
    std::vector<double> plain_bins(256, 0.0);
    for (uint32_t x : code) plain_bins[x >> 24] += 1.0;
    double plain_chi2 = 0.0;
    for (double b : plain_bins) plain_chi2 += (b - expected) * (b - expected) / expected;
    EXPECT_GT(plain_chi2, 1e4);
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
  EXPECT_EQ(update_sized, 1) << "rank " << me;
}

}  // namespace
}  // namespace fedsilo::fl
