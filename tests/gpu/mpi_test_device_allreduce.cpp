// The device allreduce (mpi/device_allreduce.h) under mpirun, on the one GPU every rank shares:
// both paths against MPI_Allreduce with exact-sum inputs (small integers in float, so every
// summation order gives the same bits) for lengths 0, 1, odd and large; NCCL with one rank per
// communicator (as many emulated nodes as ranks: the only NCCL a one-GPU machine can run), the
// host path on one node (ranks sharing the GPU) and on two; what `auto` picks; NCCL refused on a
// shared GPU; a training round whose update is summed on the device equal to the host's; the
// masked uint32 words of secure aggregation summed modulo 2^32 (ncclUint32 and the host path)
// against MPI_UINT32_T, and a secure round on the GPUs decoding to the CPU ranks' sum bit for bit.
// Without a device only the agreed start-up error runs; every other test skips with the reason.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/philox.h"
#include "fl/device_update.h"
#include "fl/secure_aggregation.h"
#include "fl/update_exchange.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_info.h"
#include "model/gpu_trainer.h"
#include "model/trainer.h"
#include "mpi/comm.h"
#include "mpi/device_allreduce.h"
#include "mpi/topology.h"

namespace fedsilo::test {
namespace {

namespace cu = kernels::cuda;
using mpi::DeviceAllreduce;

bool has_device() {
  return cu::device_count() > 0;
}

#define FEDSILO_SKIP_WITHOUT_DEVICE()                                                             \
  do {                                                                                            \
    if (!has_device()) {                                                                          \
      GTEST_SKIP() << "no CUDA device (GPU tests run on the GPU machine: benchmarks/gpu/run.sh)"; \
    }                                                                                             \
  } while (0)

/// Integers in [-8, 8] (exact in float, and so is any sum of a few thousand of them).
std::vector<float> exact_input(int64_t n, int rank, int call) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    v[static_cast<size_t>(i)] = static_cast<float>((i * 7 + rank * 13 + call * 5) % 17 - 8);
  }
  return v;
}

std::vector<float> mpi_sum(std::vector<float> v) {
  if (!v.empty()) {
    MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_FLOAT, MPI_SUM,
                  MPI_COMM_WORLD);
  }
  return v;
}

struct Fixture {
  std::unique_ptr<mpi::Comm> world;
  std::unique_ptr<mpi::Topology> topo;
};

/// A world communicator and `nodes` emulated nodes (one node per rank: nodes = size).
Fixture make(int nodes) {
  Fixture f;
  auto w = mpi::Comm::world();
  EXPECT_TRUE(w.ok()) << w.status().to_string();
  f.world = std::make_unique<mpi::Comm>(std::move(w).value());
  auto t = mpi::Topology::create(*f.world, nodes);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  f.topo = std::make_unique<mpi::Topology>(std::move(t).value());
  return f;
}

int world_size() {
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

int world_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

/// Sums exact inputs of every length through `path` on `nodes` emulated nodes, twice (the
/// communicator and the pinned buffer are reused), and compares with MPI_Allreduce bit for bit.
void check_sums(const std::string& path, int nodes, const std::string& expect_name) {
  Fixture f = make(nodes);
  ASSERT_NE(f.topo, nullptr);
  auto dar = DeviceAllreduce::create(*f.topo, 0, path);
  ASSERT_TRUE(dar.ok()) << dar.status().to_string();
  EXPECT_EQ(dar.value()->name(), expect_name);
  auto stream = cu::create_stream();
  ASSERT_TRUE(stream.ok()) << stream.status().to_string();
  const int rank = world_rank();
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1001}, (int64_t{1} << 22) + 3}) {
    for (int call = 0; call < 2; ++call) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", call " + std::to_string(call));
      const auto mine = exact_input(n, rank, call);
      auto dev = cu::DeviceArray<float>::from_host(std::span<const float>(mine), stream.value());
      ASSERT_TRUE(dev.ok()) << dev.status().to_string();
      mpi::AllreduceStats stats;
      const Status st = dar.value()->reduce(dev->data(), n, stream.value().handle, stats);
      ASSERT_TRUE(st.ok()) << st.to_string();
      std::vector<float> got(static_cast<size_t>(n));
      ASSERT_TRUE(dev->to_host(got, stream.value()).ok());
      EXPECT_EQ(got, mpi_sum(mine));
      if (n > 0 && world_size() > 1) {
        EXPECT_GT(stats.bytes_sent(), 0);
      }
    }
  }
  cu::destroy_stream(stream.value());
}

TEST(DeviceAllreduce, WithoutADeviceCreateIsAnAgreedClearError) {
  if (has_device()) GTEST_SKIP() << "a CUDA device is visible here";
  Fixture f = make(0);
  ASSERT_NE(f.topo, nullptr);
  auto dar = DeviceAllreduce::create(*f.topo, 0, "auto");
  ASSERT_FALSE(dar.ok());
  EXPECT_EQ(dar.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(dar.status().message().find("no CUDA device is visible"), std::string::npos)
      << dar.status().message();
}

TEST(DeviceAllreduce, NcclWithOneRankPerCommunicatorEqualsMpiAllreduce) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  if (!DeviceAllreduce::nccl_built()) GTEST_SKIP() << "built without NCCL";
  check_sums("nccl", world_size(), "nccl");
}

TEST(DeviceAllreduce, HostPathOnOneNodeSharingTheGpuEqualsMpiAllreduce) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  check_sums("host", 1, "host");
}

TEST(DeviceAllreduce, HostPathOnTwoNodesEqualsMpiAllreduce) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  if (world_size() % 2 != 0) GTEST_SKIP() << "needs an even rank count";
  check_sums("host", 2, "host");
}

TEST(DeviceAllreduce, AutoTakesNcclOnlyWhereEveryRankOfANodeHasItsOwnGpu) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  // One rank per node: trivially distinct GPUs.
  check_sums("auto", world_size(), DeviceAllreduce::nccl_built() ? "nccl" : "host");
  // Several ranks of one node on the one GPU.
  if (world_size() > 1) check_sums("auto", 1, "host");
}

TEST(DeviceAllreduce, NcclRefusesRanksSharingAGpuOnEveryRank) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  if (!DeviceAllreduce::nccl_built()) GTEST_SKIP() << "built without NCCL";
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks on one node";
  Fixture f = make(1);
  ASSERT_NE(f.topo, nullptr);
  auto dar = DeviceAllreduce::create(*f.topo, 0, "nccl");
  ASSERT_FALSE(dar.ok());
  EXPECT_EQ(dar.status().code(), StatusCode::kFailedPrecondition);
  const std::string m = dar.status().message();
  EXPECT_NE(m.find("ranks 0 and 1 of node 0 share the GPU"), std::string::npos) << m;
  EXPECT_NE(m.find("device.reduce = \"nccl\""), std::string::npos) << m;
}

// A training round as the round driver runs it: every rank trains on its own data from the same
// global parameters; the host path forms n_s * (local - global) on the host and sums with
// MPI_Allreduce, the device path forms it on the GPU from the trainer's parameters
// (fl::DeviceUpdate) and sums with DeviceAllreduce. The updates are bitwise equal; the sums equal up to the order of the
// float additions (bitwise on one or two ranks, where there is only one order).
void check_round(const std::string& path, int nodes) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  Fixture f = make(nodes);
  ASSERT_NE(f.topo, nullptr);
  const int rank = world_rank();
  auto m = model::Model::build({"mlp", {64}, {1, 28, 28}, 10});
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  std::vector<float> global(static_cast<size_t>(m->num_params()));
  m->init_params(global, 5);
  data::Dataset ds;
  ds.chw = {1, 28, 28};
  ds.num_classes = 10;
  ds.name = "round";
  const int samples = 96 + 32 * rank;  // different weights per silo
  Philox rng(17, static_cast<uint32_t>(rank), 0, RngPurpose::kNoise);
  ds.x.resize(static_cast<size_t>(samples) * 784);
  for (auto& v : ds.x) v = static_cast<float>(rng.uniform());
  for (int i = 0; i < samples; ++i) ds.y.push_back(static_cast<int32_t>(rng.below(10)));

  auto t = model::GpuTrainer::create(m.value(), 0, 32);
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  model::GpuTrainer& gpu = *t.value();
  auto id = gpu.add_dataset(ds);
  ASSERT_TRUE(id.ok()) << id.status().to_string();
  model::LocalTrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.momentum = 0.9f;
  o.silo = static_cast<uint32_t>(rank);
  o.round = 1;
  std::vector<float> local = global;
  auto r = gpu.train_local(local, global, id.value(), o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto w = static_cast<float>(samples);

  // Host path, as federation.cpp: the update on the host, MPI sums it.
  std::vector<float> host_update(global.size());
  for (size_t i = 0; i < global.size(); ++i) host_update[i] = w * (local[i] - global[i]);

  // Device path.
  auto dar = DeviceAllreduce::create(*f.topo, 0, path);
  ASSERT_TRUE(dar.ok()) << dar.status().to_string();
  auto made = fl::DeviceUpdate::create(0, static_cast<int64_t>(global.size()));
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  fl::DeviceUpdate& update = *made.value();
  ASSERT_TRUE(update.form({gpu.params_device(), gpu.stream()}, global, w).ok());
  std::vector<float> device_update(global.size());
  ASSERT_TRUE(update.download(device_update).ok());
  EXPECT_EQ(device_update, host_update);  // bitwise: one rounding each, as the host
  mpi::AllreduceStats stats;
  ASSERT_TRUE(
      dar.value()
          ->reduce(update.data(), static_cast<int64_t>(global.size()), update.stream(), stats)
          .ok());
  std::vector<float> device_sum(global.size());
  ASSERT_TRUE(update.download(device_sum).ok());
  const std::vector<float> host_sum = mpi_sum(host_update);
  if (world_size() <= 2) {
    EXPECT_EQ(device_sum, host_sum);
  } else {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < host_sum.size(); ++i) {
      const double d = static_cast<double>(device_sum[i]) - host_sum[i];
      num += d * d;
      den += static_cast<double>(host_sum[i]) * host_sum[i];
    }
    EXPECT_LE(std::sqrt(num / den), 1e-6);
  }

  // A silo left out of the round contributes zeros.
  ASSERT_TRUE(update.clear(gpu.stream()).ok());
  ASSERT_TRUE(update.download(device_update).ok());
  EXPECT_EQ(device_update, std::vector<float>(global.size(), 0.0f));
}

TEST(DeviceAllreduce, TrainingRoundOnTheHostPathEqualsTheHostRound) {
  check_round("host", 1);
}

TEST(DeviceAllreduce, TrainingRoundOnNcclEqualsTheHostRound) {
  if (!DeviceAllreduce::nccl_built()) GTEST_SKIP() << "built without NCCL";
  check_round("nccl", world_size());
}

/// Full-range words (the sum wraps modulo 2^32 on any three ranks).
std::vector<uint32_t> words_input(int64_t n, int rank, int call) {
  Philox rng(23, static_cast<uint32_t>(rank), static_cast<uint32_t>(call), RngPurpose::kNoise);
  std::vector<uint32_t> v(static_cast<size_t>(n));
  for (auto& w : v) w = rng.next_u32();
  return v;
}

void check_word_sums(const std::string& path, int nodes, const std::string& expect_name) {
  Fixture f = make(nodes);
  ASSERT_NE(f.topo, nullptr);
  auto dar = DeviceAllreduce::create(*f.topo, 0, path);
  ASSERT_TRUE(dar.ok()) << dar.status().to_string();
  EXPECT_EQ(dar.value()->name(), expect_name);
  const int rank = world_rank();
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{1001}, (int64_t{1} << 22) + 3}) {
    for (int call = 0; call < 2; ++call) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", call " + std::to_string(call));
      const auto mine = words_input(n, rank, call);
      std::vector<uint32_t> want = mine;
      if (n > 0) {
        MPI_Allreduce(MPI_IN_PLACE, want.data(), static_cast<int>(n), MPI_UINT32_T, MPI_SUM,
                      MPI_COMM_WORLD);
      }
      std::vector<uint32_t> got(static_cast<size_t>(n));
      mpi::AllreduceStats stats;
      const Status st = dar.value()->reduce_words(mine, got, stats);
      ASSERT_TRUE(st.ok()) << st.to_string();
      ASSERT_EQ(got, want);
      if (n > 0 && world_size() > 1) {
        EXPECT_GT(stats.bytes_sent(), 0);
      }
    }
  }
}

TEST(DeviceAllreduce, WordsOnNcclSumModulo2To32AsMpiUint32) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  if (!DeviceAllreduce::nccl_built()) GTEST_SKIP() << "built without NCCL";
  check_word_sums("nccl", world_size(), "nccl");
}

TEST(DeviceAllreduce, WordsOnTheHostPathSumModulo2To32AsMpiUint32) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  check_word_sums("host", 1, "host");
  if (world_size() % 2 == 0) {
    check_word_sums("host", 2, "host");
  }
}

// Secure aggregation on GPU ranks (one per emulated node, so NCCL runs on the one GPU) against
// CPU ranks: the masks differ (fresh keys) but cancel, and the coding is the same, so the decoded
// sums and weight sums are equal bit for bit, dense and with a shared rand-k set.
TEST(DeviceAllreduce, SecureRoundOnNcclDecodesToTheCpuRanksSum) {
  FEDSILO_SKIP_WITHOUT_DEVICE();
  if (!DeviceAllreduce::nccl_built()) GTEST_SKIP() << "built without NCCL";
  if (world_size() < 3) GTEST_SKIP() << "secure aggregation needs 3 ranks";
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int me = world->rank();
  const int64_t n = 30001;
  for (bool randk : {false, true}) {
    SCOPED_TRACE(randk ? "randk 10%" : "dense");
    config::Config cfg;
    cfg.run.seed = 9;
    cfg.secure_aggregation.enabled = true;
    cfg.secure_aggregation.range = 2.0;
    cfg.secure_aggregation.bits = 18;
    cfg.secure_aggregation.max_weight = 1000.0;
    cfg.topology.emulated_nodes = world->size();
    cfg.device.kind = config::DeviceKind::kCuda;
    cfg.device.reduce = config::DeviceReduce::kNccl;
    if (randk) {
      cfg.compression.method = compression::Method::kRandk;
      cfg.compression.density = 0.1;
      cfg.compression.error_feedback = true;
    }
    std::vector<std::vector<float>> sums;
    std::vector<double> weights;
    for (int device : {-1, 0}) {
      auto ex = fl::UpdateExchange::create(cfg, world.value(), n, "");
      ASSERT_TRUE(ex.ok()) << ex.status().to_string();
      auto agg = fl::SecureAggregation::create(cfg, world.value(), *ex.value(), n, {}, device);
      ASSERT_TRUE(agg.ok()) << agg.status().to_string();
      EXPECT_EQ(agg.value()->name(), device < 0 ? "secure-dense-flat" : "secure-device-nccl");
      std::vector<float> global(static_cast<size_t>(n)), local(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        global[i] = 0.125f * static_cast<float>(i % 8);
        local[i] = global[i] + static_cast<float>((i * 7919 + me * 104729) % 6001 - 3000) / 1000.0f;
      }
      for (uint32_t round = 1; round <= 2; ++round) {
        ASSERT_TRUE(agg.value()->contribute(local, global, 100.0f * (me + 1), true, {}).ok());
        fl::ExchangeStats stats;
        auto got = agg.value()->combine(round, true, stats);
        ASSERT_TRUE(got.ok()) << got.status().to_string();
        sums.emplace_back(got->sum.begin(), got->sum.end());
        weights.push_back(got->weight_sum);
      }
    }
    ASSERT_EQ(sums.size(), 4u);
    EXPECT_EQ(sums[2], sums[0]);  // round 1: device against host
    EXPECT_EQ(sums[3], sums[1]);  // round 2 (randk: the residual carried over)
    EXPECT_EQ(weights[2], weights[0]);
    EXPECT_EQ(weights[3], weights[1]);
  }
}

}  // namespace
}  // namespace fedsilo::test
