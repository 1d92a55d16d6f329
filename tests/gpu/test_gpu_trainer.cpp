// The GPU trainer against the CPU trainer (model/trainer.h): one step, a short training with a
// smaller last batch, evaluation, divergence messages, and bitwise repeatability (which also
// shows that a replayed CUDA graph computes what the direct launches of the first call did).
#include <cstring>
#include <string>
#include <vector>

#include "core/philox.h"
#include "gpu_test_util.h"
#include "trainer_test_util.h"
#include "model/gpu_trainer.h"
#include "model/trainer.h"

namespace fedsilo::test {
namespace {

using model::GpuTrainer;
using model::LocalTrainOptions;
using model::Model;

std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

class GpuTrainerTest : public GpuTest {};

TEST_F(GpuTrainerTest, OneStepEqualsTheCpuStep) {
  for (const char* arch : {"niid-cnn", "mlp"}) {
    SCOPED_TRACE(arch);
    const Model m = build(arch);
    const auto ds = images(64, 1);
    const auto init = initial(m);
    LocalTrainOptions o;
    o.epochs = 1;
    o.batch_size = 64;  // one batch: one step
    o.lr = 0.05f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-4f;
    o.threads = 1;
    std::vector<float> cpu = init, gpu = init;
    auto rc = model::train_local(m, cpu, init, ds, o);
    ASSERT_TRUE(rc.ok()) << rc.status().to_string();
    auto t = trainer(m, 64);
    ASSERT_NE(t, nullptr);
    auto id = t->add_dataset(ds);
    ASSERT_TRUE(id.ok()) << id.status().to_string();
    auto rg = t->train_local(gpu, init, id.value(), o);
    ASSERT_TRUE(rg.ok()) << rg.status().to_string();
    EXPECT_LE(relative_error(gpu, cpu), 1e-5);
    // The step itself (lr * gradient) to float-sum accuracy: a layout or offset error in any
    // layer shows here as an O(1) error.
    EXPECT_LE(relative_error(minus(gpu, init), minus(cpu, init)), 1e-3);
    EXPECT_NEAR(rg->mean_loss, rc->mean_loss, 1e-5 * rc->mean_loss);
    EXPECT_EQ(rg->samples_processed, 64);
  }
}

TEST_F(GpuTrainerTest, ShortTrainingEqualsTheCpuAndRepeatsBitwise) {
  struct Hyper {
    float momentum, weight_decay, prox_mu;
  };
  for (const char* arch : {"niid-cnn", "mlp"}) {
    for (const Hyper& hy : {Hyper{0.9f, 5e-4f, 0.01f}, Hyper{0.0f, 0.0f, 0.0f}}) {
      SCOPED_TRACE(std::string(arch) + ", momentum " + std::to_string(hy.momentum));
      const Model m = build(arch);
      const auto ds = images(3 * 64 + 17, 2);  // 4 batches an epoch, the last of 17
      const auto init = initial(m);
      // FedProx pulls toward a global model that differs from the start.
      std::vector<float> global = init;
      for (size_t i = 0; i < global.size(); i += 7) global[i] += 0.01f;
      LocalTrainOptions o;
      o.epochs = 2;
      o.batch_size = 64;
      o.lr = 0.05f;
      o.momentum = hy.momentum;
      o.weight_decay = hy.weight_decay;
      o.prox_mu = hy.prox_mu;
      o.threads = 1;
      o.seed = 9;
      o.round = 4;
      o.silo = 2;
      std::vector<float> cpu = init;
      auto rc = model::train_local(m, cpu, global, ds, o);
      ASSERT_TRUE(rc.ok()) << rc.status().to_string();

      auto t = trainer(m, 64);
      ASSERT_NE(t, nullptr);
      auto id = t->add_dataset(ds);
      ASSERT_TRUE(id.ok()) << id.status().to_string();
      // Call 1: each step shape runs directly once, is captured the second time, then replayed.
      // Call 2: replays only. Call 3: a fresh trainer.
      std::vector<float> g1 = init, g2 = init, g3 = init;
      auto r1 = t->train_local(g1, global, id.value(), o);
      ASSERT_TRUE(r1.ok()) << r1.status().to_string();
      auto r2 = t->train_local(g2, global, id.value(), o);
      ASSERT_TRUE(r2.ok()) << r2.status().to_string();
      auto t3 = trainer(m, 500);  // other buffer sizes, same results
      ASSERT_NE(t3, nullptr);
      auto id3 = t3->add_dataset(ds);
      ASSERT_TRUE(id3.ok());
      auto r3 = t3->train_local(g3, global, id3.value(), o);
      ASSERT_TRUE(r3.ok()) << r3.status().to_string();

      EXPECT_LE(relative_error(g1, cpu), 1e-4);
      EXPECT_NEAR(r1->mean_loss, rc->mean_loss, 1e-4 * rc->mean_loss);
      EXPECT_EQ(r1->samples_processed, 2 * (3 * 64 + 17));
      EXPECT_EQ(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)), 0);
      EXPECT_EQ(std::memcmp(g1.data(), g3.data(), g1.size() * sizeof(float)), 0);
      EXPECT_EQ(r1->mean_loss, r2->mean_loss);
      EXPECT_EQ(r1->mean_loss, r3->mean_loss);
    }
  }
}

TEST_F(GpuTrainerTest, ScaffoldCorrectionAndStepCountEqualTheCpu) {
  // SCAFFOLD's w -= lr (c - c_s) after each momentum step, in the fused SGD kernel; the step
  // count FedNova and SCAFFOLD normalise by.
  for (const char* arch : {"niid-cnn", "mlp"}) {
    SCOPED_TRACE(arch);
    const Model m = build(arch);
    const auto ds = images(2 * 64 + 9, 5);  // 3 batches an epoch, the last of 9
    const auto init = initial(m);
    const auto correction = random_normal(init.size(), 17, 0.5f);
    LocalTrainOptions o;
    o.epochs = 2;
    o.batch_size = 64;
    o.lr = 0.05f;
    o.momentum = 0.9f;
    o.weight_decay = 1e-5f;
    o.threads = 1;
    o.seed = 3;
    o.correction = correction;
    std::vector<float> cpu = init, gpu = init, plain = init;
    auto rc = model::train_local(m, cpu, init, ds, o);
    ASSERT_TRUE(rc.ok()) << rc.status().to_string();
    auto t = trainer(m, 64);
    ASSERT_NE(t, nullptr);
    auto id = t->add_dataset(ds);
    ASSERT_TRUE(id.ok());
    // Twice: the second call replays the graphs captured with the correction.
    for (int call = 0; call < 2; ++call) {
      gpu = init;
      auto rg = t->train_local(gpu, init, id.value(), o);
      ASSERT_TRUE(rg.ok()) << rg.status().to_string();
      EXPECT_EQ(rg->steps, rc->steps);
      EXPECT_EQ(rg->steps, 2 * 3);
    }
    EXPECT_LE(relative_error(minus(gpu, init), minus(cpu, init)), 1e-3);
    // Without the correction the same call ends elsewhere (the check can tell).
    o.correction = {};
    ASSERT_TRUE(t->train_local(plain, init, id.value(), o).ok());
    EXPECT_GT(relative_error(minus(plain, init), minus(cpu, init)), 1e-2);
  }
}

TEST_F(GpuTrainerTest, EvaluateEqualsTheCpu) {
  for (const char* arch : {"niid-cnn", "mlp"}) {
    SCOPED_TRACE(arch);
    const Model m = build(arch);
    const auto train = images(256, 3), test = images(1000, 4);
    std::vector<float> p = initial(m);
    LocalTrainOptions o;
    o.epochs = 2;
    o.lr = 0.05f;
    o.momentum = 0.9f;
    ASSERT_TRUE(model::train_local(m, p, p, train, o).ok());  // parameters that are not the init
    const auto cpu = model::evaluate(m, p, test, 300, 1);     // batches 300, 300, 300, 100
    auto t = trainer(m, 64);                                  // grows to 300 on the first evaluate
    ASSERT_NE(t, nullptr);
    auto id = t->add_dataset(test);
    ASSERT_TRUE(id.ok());
    auto gpu = t->evaluate(p, id.value(), 300);
    ASSERT_TRUE(gpu.ok()) << gpu.status().to_string();
    EXPECT_EQ(gpu->samples, 1000);
    EXPECT_EQ(gpu->correct, cpu.correct);
    EXPECT_EQ(gpu->accuracy, cpu.accuracy);
    EXPECT_NEAR(gpu->mean_loss, cpu.mean_loss, 1e-5 * cpu.mean_loss);
    auto again = t->evaluate(p, id.value(), 300);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->mean_loss, gpu->mean_loss);  // bitwise, run to run
  }
}

TEST_F(GpuTrainerTest, DivergenceNamesTheSameEpochAndBatchAsTheCpu) {
  for (const char* arch : {"niid-cnn", "mlp"}) {
    SCOPED_TRACE(arch);
    const Model m = build(arch);
    auto ds = images(3 * 64 + 17, 5);
    ds.x[100 * 784 + 300] = std::nanf("");  // sample 100: whichever batch it lands in
    const auto init = initial(m);
    LocalTrainOptions o;
    o.epochs = 2;
    o.lr = 0.05f;
    o.momentum = 0.9f;
    o.seed = 4;
    o.round = 7;
    o.silo = 1;
    std::vector<float> cpu = init, gpu = init;
    auto rc = model::train_local(m, cpu, init, ds, o);
    ASSERT_FALSE(rc.ok());
    auto t = trainer(m, 64);
    ASSERT_NE(t, nullptr);
    auto id = t->add_dataset(ds);
    ASSERT_TRUE(id.ok());
    auto rg = t->train_local(gpu, init, id.value(), o);
    ASSERT_FALSE(rg.ok());
    EXPECT_EQ(rg.status().code(), StatusCode::kDiverged);
    EXPECT_EQ(rg.status().message(), rc.status().message());
    // The trainer is usable after a divergence: clean data trains.
    auto clean = t->add_dataset(images(70, 6));
    ASSERT_TRUE(clean.ok());
    std::vector<float> p = init;
    EXPECT_TRUE(t->train_local(p, init, clean.value(), o).ok());
  }
}

TEST_F(GpuTrainerTest, BadArgumentsAreTheCpuErrors) {
  const Model m = build("mlp");
  auto t = trainer(m, 64);
  ASSERT_NE(t, nullptr);
  auto ds = images(10, 7);
  ds.y[3] = 12;  // outside [0, 10)
  auto id = t->add_dataset(ds);
  ASSERT_TRUE(id.ok());  // uploaded data is checked when used, as train_local checks it
  auto init = initial(m);
  LocalTrainOptions o;
  auto r = t->train_local(init, init, id.value(), o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), model::train_local(m, init, init, ds, o).status().message());
  std::vector<float> short_params(10);
  EXPECT_FALSE(t->train_local(short_params, init, id.value(), o).ok());
  auto e = t->evaluate(init, id.value(), 5);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(std::isnan(e->accuracy));  // as model::evaluate on bad data
}

}  // namespace
}  // namespace fedsilo::test
