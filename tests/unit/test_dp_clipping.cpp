// DP-SGD's per-example clipping (Model::clipped_gradient_sum): the norms that dense layers get
// without their per-example gradients ("ghost" norms) and conv layers by materialising them
// equal the norms of per-example gradients computed one sample at a time, in double precision;
// the clipped sum is sum_i min(1, C / (||g_i|| + 1e-6)) g_i; the float path (1 and 3 threads)
// matches the double one; and no sample contributes more than C, however large its gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/philox.h"
#include "model/model.h"

namespace fedsilo::model {
namespace {

std::vector<double> random_doubles(size_t n, uint32_t stream, double lo, double hi) {
  Philox rng(7, stream, 0, RngPurpose::kNoise);
  std::vector<double> v(n);
  for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
  return v;
}

std::vector<int32_t> random_labels(size_t n, int classes, uint32_t stream) {
  Philox rng(7, stream, 1, RngPurpose::kNoise);
  std::vector<int32_t> v(n);
  for (auto& y : v) y = static_cast<int32_t>(rng.below(static_cast<uint64_t>(classes)));
  return v;
}

Model build_ok(const ModelSpec& spec) {
  auto m = Model::build(spec);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

// Every built-in architecture, niid-cnn at the real 28 x 28 (conv1: 576 output positions).
std::vector<ModelSpec> specs() {
  return {ModelSpec{"logreg", {}, {1, 4, 5}, 3}, ModelSpec{"mlp", {7, 5}, {2, 3, 3}, 4},
          ModelSpec{"niid-cnn", {}, {1, 28, 28}, 10}, ModelSpec{"niid-cnn", {}, {2, 17, 18}, 3}};
}

std::string name_of(const ModelSpec& s) {
  return s.arch + " " + std::to_string(s.input_chw[0]) + "x" + std::to_string(s.input_chw[1]) +
         "x" + std::to_string(s.input_chw[2]);
}

double norm(const std::vector<double>& v) {
  double s = 0.0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

struct Batch {
  std::vector<double> params, x;
  std::vector<int32_t> y;
};

Batch make_batch(const Model& m, int batch, double x_scale) {
  Batch b;
  std::vector<float> pf(static_cast<size_t>(m.num_params()));
  m.init_params(pf, 3);
  b.params.assign(pf.begin(), pf.end());
  const auto& chw = m.spec().input_chw;
  const size_t sample = static_cast<size_t>(chw[0]) * chw[1] * chw[2];
  b.x = random_doubles(sample * batch, 1, -x_scale, x_scale);
  b.y = random_labels(static_cast<size_t>(batch), m.spec().num_classes, 2);
  return b;
}

// Sample i's own gradient: the reference backward on a batch of one.
std::vector<double> sample_gradient(const Model& m, const Batch& b, int i) {
  const auto& chw = m.spec().input_chw;
  const size_t sample = static_cast<size_t>(chw[0]) * chw[1] * chw[2];
  std::vector<double> g(b.params.size());
  m.forward_backward_reference(b.params, b.x.data() + i * sample, b.y.data() + i, 1, g);
  return g;
}

TEST(DpClipping, NormsEqualMaterialisedPerExampleNormsInDouble) {
  for (const ModelSpec& spec : specs()) {
    const Model m = build_ok(spec);
    const int batch = 6;
    const Batch b = make_batch(m, batch, 1.0);
    std::vector<double> grads(b.params.size()), norms(batch);
    m.clipped_gradient_sum_reference(b.params, b.x.data(), b.y.data(), batch, 1e9, grads, norms);
    for (int i = 0; i < batch; ++i) {
      const double want = norm(sample_gradient(m, b, i));
      EXPECT_NEAR(norms[i], want, 1e-12 * want) << name_of(spec) << ", sample " << i;
    }
  }
}

TEST(DpClipping, ClippedSumIsTheSumOfEachSampleGradientScaledToTheBound) {
  for (const ModelSpec& spec : specs()) {
    const Model m = build_ok(spec);
    const int batch = 7;
    const Batch b = make_batch(m, batch, 1.0);
    std::vector<double> norms(batch), unclipped(b.params.size());
    m.clipped_gradient_sum_reference(b.params, b.x.data(), b.y.data(), batch, 1e9, unclipped, norms);
    // A bound between the smallest and the largest norm: some samples clipped, some not.
    std::vector<double> sorted = norms;
    std::sort(sorted.begin(), sorted.end());
    const double clip = 0.5 * (sorted[2] + sorted[3]);
    std::vector<double> want(b.params.size(), 0.0);
    int clipped = 0;
    for (int i = 0; i < batch; ++i) {
      const auto g = sample_gradient(m, b, i);
      const double f = std::min(1.0, clip / (norm(g) + 1e-6));
      clipped += f < 1.0 ? 1 : 0;
      for (size_t j = 0; j < g.size(); ++j) want[j] += f * g[j];
    }
    EXPECT_GT(clipped, 0) << name_of(spec);
    EXPECT_LT(clipped, batch) << name_of(spec);
    std::vector<double> got(b.params.size());
    m.clipped_gradient_sum_reference(b.params, b.x.data(), b.y.data(), batch, clip, got, norms);
    const double scale = norm(want);
    for (size_t j = 0; j < got.size(); ++j) {
      ASSERT_NEAR(got[j], want[j], 1e-12 * scale) << name_of(spec) << ", parameter " << j;
    }
  }
}

TEST(DpClipping, FloatPathMatchesTheDoubleReferenceOnOneAndThreeThreads) {
  for (const ModelSpec& spec : specs()) {
    const Model m = build_ok(spec);
    const int batch = 9;
    const Batch b = make_batch(m, batch, 1.0);
    std::vector<double> gd(b.params.size()), nd(batch);
    const double clip = 0.7;
    const double ld =
        m.clipped_gradient_sum_reference(b.params, b.x.data(), b.y.data(), batch, clip, gd, nd);
    const std::vector<float> p(b.params.begin(), b.params.end()), x(b.x.begin(), b.x.end());
    const double scale = norm(gd);
    for (int threads : {1, 3}) {
      auto ws = m.make_workspace(4, threads);  // smaller than the batch: the buffers grow
      std::vector<float> g(p.size()), nf(batch);
      const float lf = m.clipped_gradient_sum(p, x.data(), b.y.data(), batch, clip, g, *ws, nf);
      EXPECT_NEAR(lf, ld, 1e-5 * ld) << name_of(spec);
      for (int i = 0; i < batch; ++i) EXPECT_NEAR(nf[i], nd[i], 1e-4 * nd[i]) << name_of(spec);
      double worst = 0.0;
      for (size_t j = 0; j < g.size(); ++j) worst = std::max(worst, std::abs(g[j] - gd[j]));
      EXPECT_LT(worst, 1e-5 * scale) << name_of(spec) << ", threads " << threads;
    }
  }
}

// Adversarial samples (inputs of 1e4, a loss gradient of order 1e4 to 1e8): alone in a batch,
// each contributes at most C; in a batch of n the sum is at most n C.
TEST(DpClipping, NoSampleContributesMoreThanTheBoundWhateverItsGradient) {
  for (const ModelSpec& spec : specs()) {
    const Model m = build_ok(spec);
    const int batch = 5;
    const Batch b = make_batch(m, batch, 1e4);
    const std::vector<float> p(b.params.begin(), b.params.end()), x(b.x.begin(), b.x.end());
    const auto& chw = spec.input_chw;
    const size_t sample = static_cast<size_t>(chw[0]) * chw[1] * chw[2];
    auto ws = m.make_workspace(batch, 2);
    for (double clip : {1e-3, 1.0}) {
      std::vector<float> g(p.size()), norms(batch);
      for (int i = 0; i < batch; ++i) {
        m.clipped_gradient_sum(p, x.data() + i * sample, b.y.data() + i, 1, clip, g, *ws, norms);
        double s = 0.0;
        for (float v : g) s += static_cast<double>(v) * v;
        EXPECT_LE(std::sqrt(s), clip * (1.0 + 1e-5)) << name_of(spec) << ", sample " << i;
        if (norms[0] > clip) {
          EXPECT_NEAR(std::sqrt(s), clip, 1e-4 * clip) << name_of(spec) << ": clipped to the bound";
        }
      }
      m.clipped_gradient_sum(p, x.data(), b.y.data(), batch, clip, g, *ws, norms);
      double s = 0.0;
      for (float v : g) s += static_cast<double>(v) * v;
      EXPECT_LE(std::sqrt(s), batch * clip * (1.0 + 1e-5)) << name_of(spec);
      for (float v : g) ASSERT_TRUE(std::isfinite(v)) << name_of(spec);
    }
  }
}

TEST(DpClipping, AnEmptyBatchGivesZerosAndABadBoundGivesNan) {
  const Model m = build_ok({"mlp", {7, 5}, {2, 3, 3}, 4});
  std::vector<float> p(static_cast<size_t>(m.num_params()), 0.1f), g(p.size(), 5.0f);
  auto ws = m.make_workspace(4, 1);
  EXPECT_EQ(m.clipped_gradient_sum(p, nullptr, nullptr, 0, 1.0, g, *ws), 0.0f);
  for (float v : g) ASSERT_EQ(v, 0.0f);
  const std::vector<float> x(18, 0.5f);
  const std::vector<int32_t> y{1};
  EXPECT_TRUE(std::isnan(m.clipped_gradient_sum(p, x.data(), y.data(), 1, 0.0, g, *ws)));
  EXPECT_TRUE(std::isnan(m.clipped_gradient_sum(p, x.data(), y.data(), 1, -1.0, g, *ws)));
}

}  // namespace
}  // namespace fedsilo::model
