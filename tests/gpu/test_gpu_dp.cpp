// DP-SGD on the GPU trainer against the CPU's (model/trainer.h): the same secret streams give
// the same Poisson batches and the same noise, so every built-in model must end where the CPU
// ends, to float rounding, with clipping active (inputs scaled so that every example's gradient
// is far above the clip norm) and inactive; the hardened sampler too; a replayed step graph must
// repeat the direct launches bitwise; and the per-example clipping must bound each example.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/philox.h"
#include "gpu_test_util.h"
#include "model/gpu_trainer.h"
#include "model/trainer.h"
#include "privacy/dp_random.h"
#include "trainer_test_util.h"

namespace fedsilo::test {
namespace {

using model::LocalTrainOptions;
using model::Model;

privacy::RoundRandom round_random(uint32_t silo, uint32_t round) {
  auto key = privacy::insecure_test_key(5, silo);
  EXPECT_TRUE(key.ok());
  auto r = privacy::RoundRandom::create(key.value(), round);
  EXPECT_TRUE(r.ok());
  return std::move(r).value();
}

LocalTrainOptions dp_options(privacy::RoundRandom& r, double noise_multiplier) {
  LocalTrainOptions o;
  o.epochs = 2;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.momentum = 0.9f;
  o.weight_decay = 1e-4f;
  o.threads = 1;
  o.dp_random = &r;
  o.dp_clip = 1.0;
  o.dp_noise_multiplier = noise_multiplier;
  return o;
}

class GpuDpTest : public GpuTest {};

TEST_F(GpuDpTest, EveryModelEqualsTheCpuWithClippingOnAndOff) {
  for (const char* arch : {"niid-cnn", "mlp", "logreg"}) {
    // Input scale 1: most gradients under the clip norm of 1; scale 100: all far above it.
    for (const float scale : {1.0f, 100.0f}) {
      for (const double sigma : {1e-3, 1.0}) {
        SCOPED_TRACE(std::string(arch) + ", input scale " + std::to_string(scale) + ", sigma " +
                     std::to_string(sigma));
        const Model m = build(arch);
        const auto ds = images(200, 1, scale);  // 7 Poisson steps an epoch, ~32 rows each
        const auto init = initial(m);
        auto rc_random = round_random(1, 4), rg_random = round_random(1, 4);
        std::vector<float> cpu = init, gpu = init;
        auto rc = model::train_local(m, cpu, init, ds, dp_options(rc_random, sigma));
        ASSERT_TRUE(rc.ok()) << rc.status().to_string();
        auto t = trainer(m, 32);
        ASSERT_NE(t, nullptr);
        auto id = t->add_dataset(ds);
        ASSERT_TRUE(id.ok());
        auto rg = t->train_local(gpu, init, id.value(), dp_options(rg_random, sigma));
        ASSERT_TRUE(rg.ok()) << rg.status().to_string();
        std::vector<float> dc(cpu.size()), dg(gpu.size());
        for (size_t i = 0; i < cpu.size(); ++i) {
          dc[i] = cpu[i] - init[i];
          dg[i] = gpu[i] - init[i];
        }
        // The whole training's step, to float-sum accuracy: a wrong clip factor, a padded row
        // that leaks in, or other noise would be an O(1) error.
        EXPECT_LE(relative_error(dg, dc), 2e-3);
        EXPECT_EQ(rg->steps, rc->steps);
        EXPECT_EQ(rg->samples_processed, rc->samples_processed);
        EXPECT_NEAR(rg->mean_loss, rc->mean_loss, 1e-4 * std::max(1.0, rc->mean_loss));
      }
    }
  }
}

TEST_F(GpuDpTest, TheHardenedSamplerEqualsTheCpu) {
  const Model m = build("niid-cnn");
  const auto ds = images(200, 2, 1.0f);
  const auto init = initial(m);
  auto rc_random = round_random(2, 1), rg_random = round_random(2, 1);
  LocalTrainOptions oc = dp_options(rc_random, 1.0), og = dp_options(rg_random, 1.0);
  oc.dp_discrete = og.dp_discrete = true;
  std::vector<float> cpu = init, gpu = init;
  ASSERT_TRUE(model::train_local(m, cpu, init, ds, oc).ok());
  auto t = trainer(m, 32);
  ASSERT_NE(t, nullptr);
  auto id = t->add_dataset(ds);
  ASSERT_TRUE(id.ok());
  auto rg = t->train_local(gpu, init, id.value(), og);
  ASSERT_TRUE(rg.ok()) << rg.status().to_string();
  // The discrete noise rounds the clipped sum to a grid, so a float difference in the sum can
  // move one coordinate by one grid step (2^-16 of the noise scale): still far below O(1).
  EXPECT_LE(relative_error(gpu, cpu), 1e-3);
}

TEST_F(GpuDpTest, ReplayedStepsRepeatTheDirectLaunchesBitwise) {
  const Model m = build("niid-cnn");
  const auto ds = images(300, 3, 1.0f);
  const auto init = initial(m);
  auto t = trainer(m, 32);
  ASSERT_NE(t, nullptr);
  auto id = t->add_dataset(ds);
  ASSERT_TRUE(id.ok());
  std::vector<float> a = init, b = init, c = init;
  auto r1 = round_random(3, 2), r2 = round_random(3, 2), r3 = round_random(4, 2);
  // Call 1 launches each padded shape directly once, then captures and replays; call 2 replays.
  ASSERT_TRUE(t->train_local(a, init, id.value(), dp_options(r1, 1.0)).ok());
  ASSERT_TRUE(t->train_local(b, init, id.value(), dp_options(r2, 1.0)).ok());
  ASSERT_TRUE(t->train_local(c, init, id.value(), dp_options(r3, 1.0)).ok());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  EXPECT_NE(a, c);  // another silo's key: other batches and noise
}

TEST_F(GpuDpTest, EachExampleMovesTheModelByAtMostTheClipNorm) {
  // One step, lr 1, no momentum, vanishing noise, expected batch 1 (q = 1 / n): the update is
  // the sum of the clipped gradients of the sampled examples, each of norm <= C, whatever the
  // inputs (1e4: gradients ~1e4 times the clip norm).
  for (const char* arch : {"niid-cnn", "mlp"}) {
    SCOPED_TRACE(arch);
    const Model m = build(arch);
    const auto ds = images(4, 4, 1e4f);
    const auto init = initial(m);
    auto r = round_random(5, 1);
    LocalTrainOptions o = dp_options(r, 1e-9);
    o.epochs = 1;
    o.batch_size = 4;  // q = 1: every example, every step; one step
    o.lr = 1.0f;
    o.momentum = 0.0f;
    o.weight_decay = 0.0f;
    o.dp_clip = 0.5;
    std::vector<float> p = init;
    auto t = trainer(m, 4);
    ASSERT_NE(t, nullptr);
    auto id = t->add_dataset(ds);
    ASSERT_TRUE(id.ok());
    auto s = t->train_local(p, init, id.value(), o);
    ASSERT_TRUE(s.ok()) << s.status().to_string();
    ASSERT_EQ(s->samples_processed, 4);
    double norm2 = 0.0;
    for (size_t i = 0; i < p.size(); ++i) norm2 += std::pow(static_cast<double>(p[i]) - init[i], 2);
    // The step is (1 / 4) times a sum of 4 vectors of norm <= 0.5 each: at most 0.5; and with
    // every example clipped (far above C), at least a good part of it.
    EXPECT_LE(std::sqrt(norm2), 0.5 * (1 + 1e-4));
    EXPECT_GT(std::sqrt(norm2), 0.05);
  }
}

}  // namespace
}  // namespace fedsilo::test
