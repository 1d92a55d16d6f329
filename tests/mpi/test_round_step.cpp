// fl::RoundStep, the round after local training as `fedsilo train` and a trainer outside it
// drive it: contributions, the exchange, the weight sum and the server step, on 1-8 ranks with
// exact sums (every value a small multiple of 1/8, so float sums are exact in any order).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "fl/aggregation.h"
#include "fl/round_step.h"
#include "fl/strategy.h"
#include "fl/update_exchange.h"
#include "model/gpu_trainer.h"
#include "mpi/comm.h"

namespace fedsilo::fl {
namespace {

struct Fixture {
  config::Config cfg;
  std::unique_ptr<Strategy> strategy;
  std::unique_ptr<UpdateExchange> exchange;
  std::unique_ptr<Aggregation> aggregation;
};

void make(mpi::Comm& world, const std::string& algorithm, int64_t n, Fixture& f) {
  f.cfg.allreduce.algorithm = config::parse_choice<config::Algorithm>(algorithm, "algorithm").value();
  auto s = make_strategy(f.cfg);
  ASSERT_TRUE(s.ok()) << s.status().message();
  f.strategy = std::move(s).value();
  auto x = UpdateExchange::create(f.cfg, world, n, "");
  ASSERT_TRUE(x.ok()) << x.status().message();
  f.exchange = std::move(x).value();
  auto a = make_aggregation(f.cfg, world, -1, {}, *f.exchange, n);
  ASSERT_TRUE(a.ok()) << a.status().message();
  f.aggregation = std::move(a).value();
}

TEST(RoundStep, GivesTheWeightedMeanOfTheTrainedSilosOnEveryRank) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  for (const char* algorithm : {"dense-flat", "dense-hier"}) {
    const int64_t n = 1000;
    Fixture f;
    make(world.value(), algorithm, n, f);
    RoundStep step(world.value(), *f.aggregation, *f.strategy);
    // Rank r moved every parameter by (r + 1) / 4 with weight r + 1; rank 0 did not train
    // (when there is more than one rank).
    std::vector<float> global(n, 0.5f), local(n, 0.5f + 0.25f * static_cast<float>(r + 1));
    const bool trained = P == 1 || r != 0;
    ExchangeStats xs;
    ASSERT_TRUE(step.run(1, local, static_cast<double>(r + 1), trained, global, xs).ok());
    double num = 0.0, den = 0.0;
    for (int q = P == 1 ? 0 : 1; q < P; ++q) {
      num += (q + 1) * 0.25 * (q + 1);
      den += q + 1;
    }
    const auto expect = static_cast<float>(0.5 + num / den);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(global[i], expect) << algorithm << " element " << i;
    EXPECT_EQ(f.aggregation->name(), algorithm);
  }
}

TEST(RoundStep, ANonFiniteUpdateStopsEveryRankNamingTheElement) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), r = world->rank();
  Fixture f;
  make(world.value(), "dense-flat", 16, f);
  RoundStep step(world.value(), *f.aggregation, *f.strategy);
  std::vector<float> global(16, 0.0f), local(16, 1.0f);
  if (r == P - 1) local[7] = std::nanf("");
  ExchangeStats xs;
  const Status st = step.run(1, local, 1.0, true, global, xs);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDiverged);
  EXPECT_NE(st.message().find("update is not finite (element 7)"), std::string::npos)
      << st.message();
  EXPECT_EQ(global, std::vector<float>(16, 0.0f));  // the global model is untouched
}

TEST(RoundStep, WritesTheNewGlobalModelIntoTheCallersBufferToo) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int r = world->rank();
  const int64_t n = 1000;
  Fixture f;
  make(world.value(), "dense-flat", n, f);
  RoundStep step(world.value(), *f.aggregation, *f.strategy);
  // The Python binding's use: `local` is the caller's buffer and receives the new global model.
  std::vector<float> global(n, 0.5f), local(n, 0.5f + 0.25f * static_cast<float>(r + 1));
  ExchangeStats xs;
  ASSERT_TRUE(step.contribute(local, global, 1.0, true).ok());
  ASSERT_TRUE(step.finish(1, true, global, xs, local).ok());
  EXPECT_NE(global, std::vector<float>(n, 0.5f));
  EXPECT_EQ(local, global);
}

TEST(RoundStep, ANonFiniteGlobalModelIsNamedWhenCopiedToo) {
  std::vector<float> v(16, 1.0f), out(16, 0.0f);
  v[9] = std::numeric_limits<float>::infinity();
  const Status st = check_finite_and_copy(v, out, "global model");
  EXPECT_EQ(st.code(), StatusCode::kDiverged);
  EXPECT_NE(st.message().find("global model is not finite (element 9)"), std::string::npos)
      << st.message();
  EXPECT_EQ(out[8], 1.0f);  // copied up to the element named
  EXPECT_TRUE(check_finite_and_copy(std::vector<float>(16, 2.0f), out, "global model").ok());
  EXPECT_EQ(out, std::vector<float>(16, 2.0f));
  std::vector<float> short_out(3);
  EXPECT_FALSE(check_finite_and_copy(v, short_out, "global model").ok());
}

// The device sum (GPU ranks, the binding's CUDA tensors) where this process sees no GPU: every
// rank gets the same clear error from make_aggregation, none hangs in the collective. (With a
// GPU, tests/gpu/ runs the device sum itself.)
TEST(RoundStep, TheDeviceSumWithoutAGpuIsRefusedOnEveryRank) {
  if (model::cuda_device_count() > 0) GTEST_SKIP() << "a GPU is visible: tests/gpu/ covers the device sum";
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  Fixture f;
  auto s = make_strategy(f.cfg);
  ASSERT_TRUE(s.ok()) << s.status().message();
  auto x = UpdateExchange::create(f.cfg, world.value(), 64, "");
  ASSERT_TRUE(x.ok()) << x.status().message();
  float on_device[64] = {};
  auto a = make_aggregation(f.cfg, world.value(), 0,
                            [&](std::span<const float>) { return DeviceParams{on_device, nullptr}; },
                            **x, 64);
  ASSERT_FALSE(a.ok());
  const std::string m = a.status().message();
  const bool names_why = m.find("CUDA") != std::string::npos || m.find("GPU") != std::string::npos ||
                         m.find("device") != std::string::npos;
  EXPECT_TRUE(names_why) << m;
  // The same message on every rank.
  std::vector<uint8_t> all;
  std::vector<int64_t> offsets;
  const auto* bytes = reinterpret_cast<const uint8_t*>(m.data());
  ASSERT_TRUE(world->allgatherv_bytes(std::span<const uint8_t>(bytes, m.size()), all, offsets).ok());
  for (size_t q = 0; q + 1 < offsets.size(); ++q) {
    const std::string theirs(all.begin() + offsets[q], all.begin() + offsets[q + 1]);
    EXPECT_EQ(theirs, m) << "rank " << q;
  }
}

}  // namespace
}  // namespace fedsilo::fl
