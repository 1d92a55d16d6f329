// Local training and evaluation: learning on a separable problem, determinism, the SGD update
// against hand-computed and replayed references, divergence reporting.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/thread_team.h"
#include "model/trainer.h"
#include "optim/sgd.h"
#include "privacy/dp_random.h"

namespace fedsilo::model {
namespace {

// Three Gaussian blobs in 1x4x4 "images": class c has mean m_c (entries +-1), noise sd 0.3.
data::Dataset blobs(int n, uint32_t stream) {
  data::Dataset ds;
  ds.chw = {1, 4, 4};
  ds.num_classes = 3;
  ds.name = "blobs";
  Philox means(5, 0, 0, RngPurpose::kPartition);
  std::vector<float> mu(3 * 16);
  for (auto& v : mu) v = means.uniform() < 0.5 ? -1.0f : 1.0f;
  Philox rng(5, stream, 0, RngPurpose::kNoise);
  for (int i = 0; i < n; ++i) {
    const auto c = static_cast<int32_t>(rng.below(3));
    ds.y.push_back(c);
    for (int j = 0; j < 16; ++j)
      ds.x.push_back(mu[c * 16 + j] + 0.3f * static_cast<float>(rng.normal()));
  }
  return ds;
}

Model build_ok(const ModelSpec& spec) {
  auto m = Model::build(spec);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

// DP-SGD (privacy.level = "sample"): learns, repeats bitwise for the same secret stream and
// differs for another, equals full-batch SGD when q = 1, nothing is clipped and the noise
// vanishes, and refuses a batch larger than the silo.
LocalTrainOptions dp_options(privacy::RoundRandom& random) {
  LocalTrainOptions o;
  o.epochs = 3;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.threads = 2;
  o.dp_random = &random;
  o.dp_clip = 1.0;
  o.dp_noise_multiplier = 0.5;
  return o;
}

TEST(TrainerDp, LearnsAndRepeatsBitwiseForTheSameSecretStream) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto train = blobs(300, 1), test = blobs(200, 2);
  std::vector<float> p0(m.num_params());
  m.init_params(p0, 1);
  auto key = privacy::insecure_test_key(1, 0), other = privacy::insecure_test_key(1, 1);
  ASSERT_TRUE(key.ok() && other.ok());
  auto r1 = privacy::RoundRandom::create(key.value(), 1);
  auto r2 = privacy::RoundRandom::create(other.value(), 1);
  ASSERT_TRUE(r1.ok() && r2.ok());
  std::vector<float> a = p0, b = p0, c = p0;
  auto sa = train_local(m, a, p0, train, dp_options(r1.value()));
  ASSERT_TRUE(sa.ok()) << sa.status().to_string();
  EXPECT_EQ(sa->steps, 3 * 10);  // ceil(300 / 32) steps an epoch
  EXPECT_GT(sa->samples_processed, 3 * 300 * 8 / 10);  // Poisson batches: 900 expected
  EXPECT_LT(sa->samples_processed, 3 * 300 * 12 / 10);
  ASSERT_TRUE(train_local(m, b, p0, train, dp_options(r1.value())).ok());
  ASSERT_TRUE(train_local(m, c, p0, train, dp_options(r2.value())).ok());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_GT(evaluate(m, a, test, 64, 1).accuracy, 0.9);
}

TEST(TrainerDp, TheHardenedSamplerLearnsAndRepeatsBitwise) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto train = blobs(300, 1), test = blobs(200, 2);
  std::vector<float> p0(m.num_params());
  m.init_params(p0, 1);
  auto key = privacy::insecure_test_key(1, 0);
  ASSERT_TRUE(key.ok());
  auto r = privacy::RoundRandom::create(key.value(), 1);
  ASSERT_TRUE(r.ok());
  LocalTrainOptions o = dp_options(r.value());
  o.dp_discrete = true;
  std::vector<float> a = p0, b = p0, c = p0;
  ASSERT_TRUE(train_local(m, a, p0, train, o).ok());
  ASSERT_TRUE(train_local(m, b, p0, train, o).ok());
  ASSERT_TRUE(train_local(m, c, p0, train, dp_options(r.value())).ok());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);  // another sampler, other noise
  EXPECT_GT(evaluate(m, a, test, 64, 1).accuracy, 0.9);
}

TEST(TrainerDp, WithRateOneNoClippingAndVanishingNoiseItIsFullBatchSgd) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto train = blobs(64, 1);
  std::vector<float> p0(m.num_params());
  m.init_params(p0, 1);
  auto key = privacy::insecure_test_key(2, 0);
  ASSERT_TRUE(key.ok());
  auto random = privacy::RoundRandom::create(key.value(), 1);
  ASSERT_TRUE(random.ok());
  LocalTrainOptions dp = dp_options(random.value());
  dp.batch_size = 64;            // q = 1: every record every step
  dp.dp_clip = 1e4;              // above every gradient norm
  dp.dp_noise_multiplier = 1e-15;  // noise of sd 1e-11 / 64
  dp.threads = 1;
  LocalTrainOptions plain = dp;
  plain.dp_random = nullptr;
  std::vector<float> a = p0, b = p0;
  ASSERT_TRUE(train_local(m, a, p0, train, dp).ok());
  ASSERT_TRUE(train_local(m, b, p0, train, plain).ok());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5f * (1.0f + std::abs(b[i]))) << i;
}

TEST(TrainerDp, RefusesABatchLargerThanTheSilo) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto train = blobs(20, 1);
  std::vector<float> p(m.num_params());
  auto key = privacy::insecure_test_key(2, 0);
  ASSERT_TRUE(key.ok());
  auto random = privacy::RoundRandom::create(key.value(), 1);
  ASSERT_TRUE(random.ok());
  const std::vector<float> global = p;
  auto r = train_local(m, p, global, train, dp_options(random.value()));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("local.batch_size = 32 is larger than silo 0's 20"),
            std::string::npos) << r.status().message();
}

TEST(Trainer, TrainingLowersTheLossOnASeparableProblem) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto train = blobs(300, 1), test = blobs(200, 2);
  std::vector<float> p(m.num_params());
  m.init_params(p, 1);
  const auto before = evaluate(m, p, test, 64, 1);
  LocalTrainOptions o;
  o.epochs = 3;
  o.batch_size = 32;
  o.lr = 0.05f;
  o.threads = 2;
  const std::vector<float> global = p;
  auto r = train_local(m, p, global, train, o);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const auto after = evaluate(m, p, test, 64, 2);
  EXPECT_LT(after.mean_loss, 0.3 * before.mean_loss);
  EXPECT_GT(after.accuracy, 0.95);
  EXPECT_EQ(r->samples_processed, 900);
  EXPECT_TRUE(std::isfinite(r->mean_loss));
  EXPECT_EQ(after.samples, 200);
}

TEST(Trainer, IdenticalCallsGiveBitwiseIdenticalParams) {
  for (const char* arch : {"mlp", "niid-cnn"}) {
    const Model m = build_ok({arch, {8}, {1, 16, 16}, 3});
    data::Dataset ds;
    ds.chw = {1, 16, 16};
    ds.num_classes = 3;
    Philox rng(1, 0, 0, RngPurpose::kNoise);
    for (int i = 0; i < 70; ++i) {
      ds.y.push_back(static_cast<int32_t>(rng.below(3)));
      for (int j = 0; j < 256; ++j) ds.x.push_back(static_cast<float>(rng.uniform()));
    }
    std::vector<float> init(m.num_params());
    m.init_params(init, 2);
    LocalTrainOptions o;
    o.epochs = 2;
    o.batch_size = 16;  // 70 = 4 x 16 + 6: the last batch is smaller
    o.threads = 2;
    o.weight_decay = 1e-3f;
    o.prox_mu = 0.01f;
    o.seed = 4;
    o.round = 3;
    o.silo = 1;
    std::vector<float> a = init, b = init, c = init;
    ASSERT_TRUE(train_local(m, a, init, ds, o).ok());
    ASSERT_TRUE(train_local(m, b, init, ds, o).ok());
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << arch;
    o.round = 4;  // another round shuffles differently
    ASSERT_TRUE(train_local(m, c, init, ds, o).ok());
    EXPECT_NE(a, c) << arch;
  }
}

TEST(Trainer, MultiThreadedTrainingStaysCloseToSingleThreaded) {
  const Model m = build_ok({"niid-cnn", {}, {1, 16, 16}, 3});
  data::Dataset ds;
  ds.chw = {1, 16, 16};
  ds.num_classes = 3;
  Philox rng(2, 0, 0, RngPurpose::kNoise);
  for (int i = 0; i < 40; ++i) {
    ds.y.push_back(static_cast<int32_t>(rng.below(3)));
    for (int j = 0; j < 256; ++j) ds.x.push_back(static_cast<float>(rng.uniform()));
  }
  std::vector<float> init(m.num_params());
  m.init_params(init, 3);
  LocalTrainOptions o;
  o.batch_size = 8;
  std::vector<float> one = init, two = init;
  o.threads = 1;
  ASSERT_TRUE(train_local(m, one, init, ds, o).ok());
  o.threads = 2;
  ASSERT_TRUE(train_local(m, two, init, ds, o).ok());
  double worst = 0.0, moved = 0.0;
  for (size_t i = 0; i < one.size(); ++i) {
    worst = std::max(worst, static_cast<double>(std::abs(one[i] - two[i])));
    moved = std::max(moved, static_cast<double>(std::abs(one[i] - init[i])));
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LT(worst, 1e-5);
}

TEST(Sgd, MomentumWeightDecayAndProxMatchHandComputedTwoSteps) {
  // lr 0.1, momentum 0.9, weight decay 0.1, mu 0.2; w = (1, -2), global = (0, -1),
  // grads (0.5, 1) then (-0.5, 0).
  // Step 1: d = g + 0.1 w + 0.2 (w - wg) = (0.5+0.1+0.2, 1-0.2-0.2) = (0.8, 0.6); buf = d;
  //         w = (1 - 0.08, -2 - 0.06) = (0.92, -2.06).
  // Step 2: d = (-0.5 + 0.092 + 0.184, 0 - 0.206 - 0.212) = (-0.224, -0.418);
  //         buf = 0.9 (0.8, 0.6) + d = (0.496, 0.122); w = (0.92 - 0.0496, -2.06 - 0.0122)
  //         = (0.8704, -2.0722).
  for (int threads : {1, 2}) {
    kernels::ThreadTeam team(threads);
    optim::Sgd sgd(2, {0.1f, 0.9f, 0.1f, 0.2f});
    std::vector<float> w{1.0f, -2.0f};
    const std::vector<float> wg{0.0f, -1.0f};
    ASSERT_TRUE(sgd.step(w, std::vector<float>{0.5f, 1.0f}, wg, &team));
    EXPECT_NEAR(w[0], 0.92f, 1e-6);
    EXPECT_NEAR(w[1], -2.06f, 1e-6);
    ASSERT_TRUE(sgd.step(w, std::vector<float>{-0.5f, 0.0f}, wg, &team));
    EXPECT_NEAR(w[0], 0.8704f, 1e-6);
    EXPECT_NEAR(w[1], -2.0722f, 1e-6);
  }
}

TEST(Sgd, UpdateOnATeamIsBitwiseTheUpdateOnOneThread) {
  const int64_t n = 50000;  // above the size where the update goes parallel
  std::vector<float> w1(n), g(n), wg(n);
  for (int64_t i = 0; i < n; ++i) {
    w1[i] = 0.001f * static_cast<float>(i % 977) - 0.4f;
    g[i] = 0.002f * static_cast<float>(i % 131) - 0.1f;
    wg[i] = 0.5f * w1[i];
  }
  std::vector<float> w2 = w1;
  kernels::ThreadTeam team(2);
  optim::Sgd a(n, {0.1f, 0.9f, 1e-3f, 0.1f}), b(n, {0.1f, 0.9f, 1e-3f, 0.1f});
  for (int step = 0; step < 3; ++step) {
    ASSERT_TRUE(a.step(w1, g, wg, nullptr));
    ASSERT_TRUE(b.step(w2, g, wg, &team));
  }
  EXPECT_EQ(0, std::memcmp(w1.data(), w2.data(), n * sizeof(float)));
  g[n - 3] = std::numeric_limits<float>::quiet_NaN();  // in the second thread's slice
  EXPECT_FALSE(b.step(w2, g, wg, &team));
}

// train_local against a replay: the same Fisher-Yates order, forward_backward for gradients,
// and the update written out in double.
TEST(Trainer, UpdatesMatchAReplayedSgdLoop) {
  const Model m = build_ok({"logreg", {}, {1, 4, 4}, 3});
  const auto ds = blobs(10, 3);
  std::vector<float> init(m.num_params()), global(m.num_params());
  m.init_params(init, 9);
  for (size_t i = 0; i < global.size(); ++i) global[i] = init[i] + 0.05f * ((i % 3) - 1.0f);
  LocalTrainOptions o;
  o.epochs = 2;
  o.batch_size = 4;  // batches of 4, 4, 2 per epoch: 6 steps
  o.lr = 0.1f;
  o.momentum = 0.9f;
  o.weight_decay = 0.01f;
  o.prox_mu = 0.1f;
  o.seed = 21;
  o.round = 2;
  o.silo = 5;
  std::vector<float> trained = init;
  ASSERT_TRUE(train_local(m, trained, global, ds, o).ok());

  std::vector<float> w = init, g(m.num_params());
  std::vector<double> buf(m.num_params());
  auto ws = m.make_workspace(4, 1);
  Philox rng(o.seed, o.round, o.silo, RngPurpose::kShuffle);
  bool first = true;
  for (int e = 0; e < o.epochs; ++e) {
    std::vector<int64_t> order(10);
    std::iota(order.begin(), order.end(), 0);
    for (int64_t i = 9; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
    for (int b0 = 0; b0 < 10; b0 += 4) {
      const int bs = std::min(4, 10 - b0);
      std::vector<float> xb;
      std::vector<int32_t> yb;
      for (int i = 0; i < bs; ++i) {
        xb.insert(xb.end(), ds.sample(order[b0 + i]), ds.sample(order[b0 + i]) + 16);
        yb.push_back(ds.y[order[b0 + i]]);
      }
      m.forward_backward(w, xb.data(), yb.data(), bs, g, *ws);
      for (size_t i = 0; i < w.size(); ++i) {
        const double d = g[i] + 0.01 * w[i] + 0.1 * (static_cast<double>(w[i]) - global[i]);
        buf[i] = first ? d : 0.9 * buf[i] + d;
        w[i] = static_cast<float>(w[i] - 0.1 * buf[i]);
      }
      first = false;
    }
  }
  double worst = 0.0;
  for (size_t i = 0; i < w.size(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(w[i] - trained[i])));
  EXPECT_LT(worst, 2e-6);
  EXPECT_NE(trained, init);
}

TEST(Trainer, HugeLearningRateReportsDivergedWithSiloRoundEpochAndBatch) {
  const Model m = build_ok({"mlp", {16}, {1, 4, 4}, 3});
  const auto ds = blobs(64, 4);
  std::vector<float> p(m.num_params());
  m.init_params(p, 1);
  const std::vector<float> global = p;
  LocalTrainOptions o;
  o.lr = 1e30f;
  o.batch_size = 8;
  o.silo = 3;
  o.round = 5;
  auto r = train_local(m, p, global, ds, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDiverged);
  const std::string msg = r.status().message();
  EXPECT_NE(msg.find("silo 3, round 5, epoch 1, batch "), std::string::npos) << msg;
}

TEST(Trainer, RejectsDataThatDoesNotFitTheModel) {
  const Model m = build_ok({"mlp", {16}, {1, 5, 5}, 3});
  const auto ds = blobs(10, 5);  // 1x4x4
  std::vector<float> p(m.num_params());
  auto r = train_local(m, p, p, ds, LocalTrainOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("1x4x4"), std::string::npos) << r.status().message();
}

TEST(Trainer, EvaluateCountsCorrectPredictionsAndAveragesTheLoss) {
  // logreg on 1x1x2 inputs with W = I, b = 0: the prediction is the larger input.
  const Model m = build_ok({"logreg", {}, {1, 1, 2}, 2});
  const std::vector<float> p{1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 0.0f};
  data::Dataset ds;
  ds.chw = {1, 1, 2};
  ds.num_classes = 2;
  ds.x = {2.0f, 0.0f, 0.0f, 1.0f, 3.0f, 1.0f, 0.0f, 0.0f, 1.0f, 0.0f};
  ds.y = {0, 1, 1, 0, 0};  // third is wrong; fourth ties -> class 0, right
  const auto s = evaluate(m, p, ds, 2, 2);
  EXPECT_EQ(s.samples, 5);
  EXPECT_EQ(s.correct, 4);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.8);
  auto xent = [](double a, double b, int y) {
    return std::log(std::exp(a) + std::exp(b)) - (y ? b : a);
  };
  const double want =
      (xent(2, 0, 0) + xent(0, 1, 1) + xent(3, 1, 1) + xent(0, 0, 0) + xent(1, 0, 0)) / 5;
  EXPECT_NEAR(s.mean_loss, want, 1e-6);
}

}  // namespace
}  // namespace fedsilo::model
