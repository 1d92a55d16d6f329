// Model: build errors, PyTorch-compatible parameter layout and init, whole-model gradient
// checks, and thread-count behaviour of forward/backward.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/softmax_xent.h"
#include "model/model.h"

namespace fedsilo::model {
namespace {

std::vector<float> random_floats(size_t n, uint32_t stream, float lo, float hi) {
  Philox rng(99, stream, 0, RngPurpose::kNoise);
  std::vector<float> v(n);
  for (auto& x : v) x = lo + (hi - lo) * static_cast<float>(rng.uniform());
  return v;
}

std::vector<int32_t> random_labels(size_t n, int classes, uint32_t stream) {
  Philox rng(99, stream, 0, RngPurpose::kNoise);
  std::vector<int32_t> v(n);
  for (auto& y : v) y = static_cast<int32_t>(rng.below(static_cast<uint64_t>(classes)));
  return v;
}

Model build_ok(const ModelSpec& spec) {
  auto m = Model::build(spec);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

// Small versions of the three archs: the gradient and threading tests run on these.
std::vector<ModelSpec> small_specs() {
  return {ModelSpec{"logreg", {}, {1, 4, 5}, 3}, ModelSpec{"mlp", {7, 5}, {2, 3, 3}, 4},
          ModelSpec{"niid-cnn", {}, {1, 16, 16}, 4}, ModelSpec{"niid-cnn", {}, {2, 17, 18}, 3}};
}

std::string name_of(const ModelSpec& s) {
  return s.arch + " " + std::to_string(s.input_chw[0]) + "x" + std::to_string(s.input_chw[1]) +
         "x" + std::to_string(s.input_chw[2]);
}

TEST(Model, BuildRejectsUnknownArchNamingModelArch) {
  auto m = Model::build({"resnet", {}, {1, 28, 28}, 10});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("model.arch"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("resnet"), std::string::npos);
}

TEST(Model, BuildRejectsMlpWithoutOrWithNonPositiveHiddenSizes) {
  for (const auto& hidden : {std::vector<int>{}, std::vector<int>{200, 0}, std::vector<int>{-3}}) {
    auto m = Model::build({"mlp", hidden, {1, 28, 28}, 10});
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find("model.hidden"), std::string::npos) << m.status().message();
  }
}

TEST(Model, BuildRejectsInputTooSmallForTheCnn) {
  auto m = Model::build({"niid-cnn", {}, {1, 15, 28}, 10});
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("model.arch"), std::string::npos) << m.status().message();
  EXPECT_NE(m.status().message().find("1x15x28"), std::string::npos) << m.status().message();
  EXPECT_TRUE(Model::build({"niid-cnn", {}, {1, 16, 16}, 10}).ok());
}

TEST(Model, CnnParamsHavePyTorchNamesShapesAndContiguousOffsets) {
  const Model m = build_ok({"niid-cnn", {}, {1, 28, 28}, 10});
  struct Want {
    const char* name;
    std::vector<int64_t> shape;
  };
  const std::vector<Want> want{{"conv1.weight", {6, 1, 5, 5}},  {"conv1.bias", {6}},
                               {"conv2.weight", {16, 6, 5, 5}}, {"conv2.bias", {16}},
                               {"fc1.weight", {120, 256}},      {"fc1.bias", {120}},
                               {"fc2.weight", {84, 120}},       {"fc2.bias", {84}},
                               {"fc3.weight", {10, 84}},        {"fc3.bias", {10}}};
  ASSERT_EQ(m.params().size(), want.size());
  int64_t off = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const ParamInfo& p = m.params()[i];
    EXPECT_EQ(p.name, want[i].name);
    EXPECT_EQ(p.shape, want[i].shape) << p.name;
    EXPECT_EQ(p.offset, off) << p.name;
    off += p.size;
  }
  EXPECT_EQ(m.num_params(), 44426);  // PyTorch's count for the NIID-Bench simple-cnn, 28x28x1
  EXPECT_EQ(off, m.num_params());
  const auto lines = m.describe();
  EXPECT_NE(std::find(lines.begin(), lines.end(), "conv1: conv2d 1->6 5x5, out 6x24x24"),
            lines.end());
}

TEST(Model, MlpAndLogregHaveTheExpectedLayout) {
  const Model mlp = build_ok({"mlp", {200, 200}, {1, 28, 28}, 10});
  EXPECT_EQ(mlp.num_params(), 784 * 200 + 200 + 200 * 200 + 200 + 200 * 10 + 10);
  EXPECT_EQ(mlp.params()[4].name, "fc3.weight");
  EXPECT_EQ(mlp.params()[4].shape, (std::vector<int64_t>{10, 200}));
  const Model lr = build_ok({"logreg", {}, {3, 4, 5}, 7});
  ASSERT_EQ(lr.params().size(), 2u);
  EXPECT_EQ(lr.params()[0].shape, (std::vector<int64_t>{7, 60}));
}

TEST(Model, InitIsDeterministicPerSeedAndWithinPyTorchBounds) {
  const Model m = build_ok({"niid-cnn", {}, {1, 28, 28}, 10});
  std::vector<float> a(m.num_params()), b(m.num_params()), c(m.num_params());
  m.init_params(a, 7);
  m.init_params(b, 7);
  m.init_params(c, 8);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  EXPECT_NE(a, c);
  const auto& infos = m.params();
  for (size_t t = 0; t < infos.size(); ++t) {
    const ParamInfo& p = infos[t];
    // A bias shares its layer's bound 1/sqrt(fan_in); fan_in = weight size / out features.
    const ParamInfo& wi = p.shape.size() == 1 ? infos[t - 1] : p;
    const double bound = 1.0 / std::sqrt(static_cast<double>(wi.size / wi.shape[0]));
    float lo = 1e9f, hi = -1e9f;
    for (int64_t i = 0; i < p.size; ++i) {
      lo = std::min(lo, a[p.offset + i]);
      hi = std::max(hi, a[p.offset + i]);
    }
    EXPECT_GE(lo, -bound) << p.name;
    EXPECT_LE(hi, bound) << p.name;
    if (p.size >= 1000) {  // P(no draw in the outer 5% of one side) = 0.95^1000 ~ 1e-22
      EXPECT_LT(lo, -0.9 * bound) << p.name;
      EXPECT_GT(hi, 0.9 * bound) << p.name;
    }
  }
}

// Whole-model gradient check in double (the same layer stack on the reference kernels):
// central differences with step 1e-6 on every parameter of the small models, so wiring errors
// (offsets, layer order, a missing chain term) show up as O(1) mismatches.
TEST(Model, WholeModelGradientMatchesFiniteDifferencesForEveryArch) {
  constexpr double kStep = 1e-6;
  for (const ModelSpec& spec : small_specs()) {
    const Model m = build_ok(spec);
    const int batch = 3;
    const int64_t in = int64_t{spec.input_chw[0]} * spec.input_chw[1] * spec.input_chw[2];
    const auto xf = random_floats(static_cast<size_t>(batch * in), 1, 0.0f, 1.0f);
    const std::vector<double> x(xf.begin(), xf.end());
    const auto y = random_labels(batch, spec.num_classes, 2);
    std::vector<float> pf(m.num_params());
    m.init_params(pf, 3);
    std::vector<double> p(pf.begin(), pf.end()), g(p.size()), scratch(p.size());
    m.forward_backward_reference(p, x.data(), y.data(), batch, g);
    int checked = 0, bad = 0;
    for (const ParamInfo& info : m.params()) {
      // Every parameter of the small tensors, a spread of 200 in the big ones (cnn fc2).
      const int64_t stride = std::max<int64_t>(1, info.size / 200);
      for (int64_t i = 0; i < info.size; i += stride) {
        double& v = p[info.offset + i];
        const double keep = v;
        v = keep + kStep;
        const double lp = m.forward_backward_reference(p, x.data(), y.data(), batch, scratch);
        v = keep - kStep;
        const double lm = m.forward_backward_reference(p, x.data(), y.data(), batch, scratch);
        v = keep;
        const double num = (lp - lm) / (2.0 * kStep);
        const double ana = g[info.offset + i];
        ++checked;
        if (std::abs(num - ana) > 1e-6 * std::max(1.0, std::abs(ana)) && ++bad <= 5) {
          ADD_FAILURE() << name_of(spec) << " " << info.name << "[" << i << "]: analytic " << ana
                        << ", numeric " << num;
        }
      }
    }
    EXPECT_EQ(bad, 0) << name_of(spec) << ": " << bad << " of " << checked;
    EXPECT_GT(checked, 50) << name_of(spec);
  }
}

// The float model (fast kernels, 1 and 2 threads) against the double reference path.
TEST(Model, FloatGradientsMatchTheDoubleReference) {
  for (const ModelSpec& spec : small_specs()) {
    const Model m = build_ok(spec);
    const int batch = 5;
    const int64_t in = int64_t{spec.input_chw[0]} * spec.input_chw[1] * spec.input_chw[2];
    const auto x = random_floats(static_cast<size_t>(batch * in), 12, 0.0f, 1.0f);
    const auto y = random_labels(batch, spec.num_classes, 13);
    std::vector<float> p(m.num_params()), g(m.num_params());
    m.init_params(p, 14);
    const std::vector<double> pd(p.begin(), p.end()), xd(x.begin(), x.end());
    std::vector<double> gd(pd.size());
    const double ld = m.forward_backward_reference(pd, xd.data(), y.data(), batch, gd);
    double gmax = 0.0;
    for (double v : gd) gmax = std::max(gmax, std::abs(v));
    for (int threads : {1, 2}) {
      auto ws = m.make_workspace(batch, threads);
      const float lf = m.forward_backward(p, x.data(), y.data(), batch, g, *ws);
      EXPECT_NEAR(lf, ld, 1e-5 * ld) << name_of(spec);
      double worst = 0.0;
      for (size_t i = 0; i < g.size(); ++i) worst = std::max(worst, std::abs(g[i] - gd[i]));
      EXPECT_LT(worst, 1e-4 * gmax) << name_of(spec) << " threads " << threads;
    }
  }
}

TEST(Model, MultiThreadedGradientsMatchSingleThreaded) {
  for (const ModelSpec& spec : small_specs()) {
    const Model m = build_ok(spec);
    const int batch = 7;  // uneven chunks: 4+3 for 2 threads, 3+3+1 for 3
    const int64_t in = int64_t{spec.input_chw[0]} * spec.input_chw[1] * spec.input_chw[2];
    const auto x = random_floats(static_cast<size_t>(batch * in), 4, 0.0f, 1.0f);
    const auto y = random_labels(batch, spec.num_classes, 5);
    std::vector<float> p(m.num_params()), g1(m.num_params()), gt(m.num_params());
    m.init_params(p, 11);
    auto ws1 = m.make_workspace(batch, 1);
    const float l1 = m.forward_backward(p, x.data(), y.data(), batch, g1, *ws1);
    for (int threads : {2, 3, 8}) {
      auto ws = m.make_workspace(batch, threads);
      const float lt = m.forward_backward(p, x.data(), y.data(), batch, gt, *ws);
      EXPECT_NEAR(lt, l1, 1e-5 * std::abs(l1)) << name_of(spec) << " threads " << threads;
      float worst = 0.0f;
      for (size_t i = 0; i < g1.size(); ++i) {
        worst = std::max(worst, std::abs(gt[i] - g1[i]) / (1e-3f + std::abs(g1[i])));
      }
      EXPECT_LT(worst, 1e-3f) << name_of(spec) << " threads " << threads;
    }
  }
}

TEST(Model, SameThreadCountIsBitwiseRepeatable) {
  for (const ModelSpec& spec : small_specs()) {
    const Model m = build_ok(spec);
    const int batch = 9;
    const int64_t in = int64_t{spec.input_chw[0]} * spec.input_chw[1] * spec.input_chw[2];
    const auto x = random_floats(static_cast<size_t>(batch * in), 6, 0.0f, 1.0f);
    const auto y = random_labels(batch, spec.num_classes, 7);
    std::vector<float> p(m.num_params()), a(m.num_params()), b(m.num_params());
    m.init_params(p, 12);
    auto ws = m.make_workspace(batch, 2);
    const float la = m.forward_backward(p, x.data(), y.data(), batch, a, *ws);
    auto ws2 = m.make_workspace(4, 2);  // grows to fit the batch on first use
    const float lb = m.forward_backward(p, x.data(), y.data(), batch, b, *ws2);
    EXPECT_EQ(la, lb) << name_of(spec);
    EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << name_of(spec);
  }
}

TEST(Model, ForwardLogitsGiveTheLossForwardBackwardReports) {
  const Model m = build_ok({"niid-cnn", {}, {1, 28, 28}, 10});
  const int batch = 5;
  const auto x = random_floats(static_cast<size_t>(batch * 784), 8, 0.0f, 1.0f);
  const auto y = random_labels(batch, 10, 9);
  std::vector<float> p(m.num_params()), g(m.num_params()), logits(batch * 10);
  m.init_params(p, 1);
  auto ws = m.make_workspace(batch, 2);
  const float loss = m.forward_backward(p, x.data(), y.data(), batch, g, *ws);
  m.forward(p, x.data(), batch, logits.data(), *ws);
  const double want =
      kernels::softmax_xent<float>(logits.data(), y.data(), batch, 10, 0.0f, nullptr) / batch;
  EXPECT_NEAR(loss, want, 1e-6);
  EXPECT_NEAR(loss, std::log(10.0), 0.3);  // freshly initialised: close to uniform
}

TEST(Model, ProfilingReportsEveryLayerLossAndReduce) {
  const Model m = build_ok({"niid-cnn", {}, {1, 28, 28}, 10});
  const int batch = 4;
  const auto x = random_floats(static_cast<size_t>(batch * 784), 10, 0.0f, 1.0f);
  const auto y = random_labels(batch, 10, 11);
  std::vector<float> p(m.num_params()), g(m.num_params());
  auto ws = m.make_workspace(batch, 2);
  ws->set_profiling(true);
  m.forward_backward(p, x.data(), y.data(), batch, g, *ws);
  const auto prof = ws->profile();
  ASSERT_EQ(prof.size(), 9u);  // 7 layers + loss + reduce
  EXPECT_EQ(prof[0].layer, "conv1");
  EXPECT_EQ(prof.back().layer, "reduce");
  EXPECT_GT(prof[0].forward_seconds, 0.0);
  EXPECT_GT(prof[2].backward_seconds, 0.0);
}

}  // namespace
}  // namespace fedsilo::model
