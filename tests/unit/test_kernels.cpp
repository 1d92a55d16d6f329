// CPU kernels: gradient checks of every op against central finite differences in double, the
// fast float paths against the double reference, and run-to-run bitwise repeatability.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/thread_team.h"
#include "kernels/cpu_ops.h"

namespace fk = fedsilo::kernels;

namespace {

// Central differences in double: truncation ~eps^2 * f''' ~ 1e-12, round-off ~1e-16/eps ~ 1e-10.
constexpr double kEps = 1e-6;
constexpr double kGradTol = 1e-6;

template <typename T>
std::vector<T> random_vec(size_t n, uint32_t stream, double lo = -1.0, double hi = 1.0) {
  fedsilo::Philox rng(1234, stream, 0, fedsilo::RngPurpose::kInit);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(lo + (hi - lo) * rng.uniform());
  return v;
}

template <typename T>
std::vector<T> cast_vec(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks d(loss)/d(v[i]) == analytic[i] for every i by central differences.
void expect_gradient(std::vector<double>& v, const std::vector<double>& analytic,
                     const std::function<double()>& loss, const std::string& what) {
  ASSERT_EQ(v.size(), analytic.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double keep = v[i];
    v[i] = keep + kEps;
    const double lp = loss();
    v[i] = keep - kEps;
    const double lm = loss();
    v[i] = keep;
    const double num = (lp - lm) / (2 * kEps);
    if (std::abs(num - analytic[i]) > kGradTol * std::max(1.0, std::abs(num)) && ++bad <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: analytic " << analytic[i] << ", numeric " << num;
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, double rel,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::abs(got[i] - want[i]) > rel * (1.0 + std::abs(want[i])) && ++bad <= 5) {
      ADD_FAILURE() << what << "[" << i << "]: " << got[i] << " vs " << want[i];
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

}  // namespace

TEST(Kernels, GemmMatchesNaiveProductInBothPrecisionsAndTransposes) {
  const int m = 5, n = 7, k = 3;
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      const auto a = random_vec<double>(m * k, 1), b = random_vec<double>(k * n, 2);
      std::vector<double> c(m * n, 0.5), want(m * n);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double s = 0;
          for (int p = 0; p < k; ++p)
            s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
          want[i * n + j] = 2.0 * s + 0.5 * 0.5;
        }
      }
      fk::gemm<double>(ta, tb, m, n, k, 2.0, a.data(), ta ? m : k, b.data(), tb ? k : n, 0.5,
                       c.data(), n);
      for (int i = 0; i < m * n; ++i) EXPECT_NEAR(c[i], want[i], 1e-12);
      auto af = cast_vec<float>(a), bf = cast_vec<float>(b);
      std::vector<float> cf(m * n, 0.5f);
      fk::gemm<float>(ta, tb, m, n, k, 2.0f, af.data(), ta ? m : k, bf.data(), tb ? k : n, 0.5f,
                      cf.data(), n);
      expect_close(cf, want, 1e-5, "sgemm");
    }
  }
}

TEST(Kernels, ReluGradientMatchesFiniteDifferencesInDouble) {
  const size_t n = 40;
  auto x = random_vec<double>(n, 3);
  const auto r = random_vec<double>(n, 4);
  std::vector<double> y(n), dx(n);
  fk::relu_forward<double>(x.data(), y.data(), n);
  fk::relu_backward<double>(y.data(), r.data(), dx.data(), n);
  auto loss = [&] {
    std::vector<double> t(n);
    fk::relu_forward<double>(x.data(), t.data(), n);
    return dot(t, r);
  };
  expect_gradient(x, dx, loss, "relu dx");
  EXPECT_EQ(std::count(y.begin(), y.end(), 0.0),
            std::count_if(x.begin(), x.end(), [](double v) { return v <= 0; }));
}

TEST(Kernels, BiasGradientIsTheColumnSum) {
  const int rows = 6, cols = 5;
  const auto dy = random_vec<double>(rows * cols, 5);
  std::vector<double> db(cols, 99.0);
  fk::bias_grad_rows<double>(dy.data(), rows, cols, db.data());
  for (int j = 0; j < cols; ++j) {
    double s = 0;
    for (int i = 0; i < rows; ++i) s += dy[i * cols + j];
    EXPECT_NEAR(db[j], s, 1e-14);
  }
}

TEST(Kernels, DenseGradientsMatchFiniteDifferencesInDouble) {
  for (bool relu : {false, true}) {
    const fk::DenseShape s{4, 7, 5};
    auto x = random_vec<double>(s.batch * s.in, 10);
    auto w = random_vec<double>(s.out * s.in, 11);
    auto b = random_vec<double>(s.out, 12);
    const auto r = random_vec<double>(s.batch * s.out, 13);
    auto loss = [&] {
      std::vector<double> y(s.batch * s.out);
      fk::dense_forward<double>(s, x.data(), w.data(), b.data(), relu, y.data());
      return dot(y, r);
    };
    std::vector<double> y(s.batch * s.out), dy = r, dx(x.size()), dw(w.size()), db(b.size());
    fk::dense_forward<double>(s, x.data(), w.data(), b.data(), relu, y.data());
    fk::dense_backward<double>(s, x.data(), w.data(), y.data(), relu, dy.data(), dx.data(),
                               dw.data(), db.data());
    const std::string tag = relu ? "dense+relu " : "dense ";
    expect_gradient(x, dx, loss, tag + "dx");
    expect_gradient(w, dw, loss, tag + "dw");
    expect_gradient(b, db, loss, tag + "db");
  }
}

TEST(Kernels, Conv2dGradientsMatchFiniteDifferencesInDouble) {
  for (bool relu : {false, true}) {
    const fk::Conv2dShape s{2, 2, 7, 6, 3, 3};
    const int oh = s.out_h(), ow = s.out_w();
    const size_t ny = static_cast<size_t>(s.batch) * s.out_c * oh * ow;
    auto x = random_vec<double>(static_cast<size_t>(s.batch) * s.in_c * s.in_h * s.in_w, 20);
    auto w = random_vec<double>(static_cast<size_t>(s.out_c) * s.in_c * s.k * s.k, 21);
    auto b = random_vec<double>(s.out_c, 22);
    const auto r = random_vec<double>(ny, 23);
    auto loss = [&] {
      std::vector<double> y(ny);
      fk::conv2d_forward<double>(s, x.data(), w.data(), b.data(), relu, y.data(), nullptr);
      return dot(y, r);
    };
    std::vector<double> y(ny), dx(x.size()), dw(w.size()), db(b.size());
    fk::conv2d_forward<double>(s, x.data(), w.data(), b.data(), relu, y.data(), nullptr);
    fk::conv2d_backward<double>(s, x.data(), w.data(), y.data(), relu, r.data(), dx.data(),
                                dw.data(), db.data(), nullptr);
    const std::string tag = relu ? "conv+relu " : "conv ";
    expect_gradient(x, dx, loss, tag + "dx");
    expect_gradient(w, dw, loss, tag + "dw");
    expect_gradient(b, db, loss, tag + "db");
  }
}

TEST(Kernels, MaxPoolGradientMatchesFiniteDifferencesInDouble) {
  const fk::Pool2dShape s{2, 3, 7, 6};  // odd height: the last row is dropped, as PyTorch
  const size_t nx = static_cast<size_t>(s.batch) * s.c * s.h * s.w;
  const size_t ny = static_cast<size_t>(s.batch) * s.c * s.out_h() * s.out_w();
  auto x = random_vec<double>(nx, 30);
  const auto r = random_vec<double>(ny, 31);
  std::vector<uint8_t> am(ny);
  auto loss = [&] {
    std::vector<double> y(ny);
    std::vector<uint8_t> a(ny);
    fk::maxpool2x2_forward<double>(s, x.data(), y.data(), a.data());
    return dot(y, r);
  };
  std::vector<double> y(ny), dx(nx, 7.0);
  fk::maxpool2x2_forward<double>(s, x.data(), y.data(), am.data());
  fk::maxpool2x2_backward<double>(s, r.data(), am.data(), dx.data());
  expect_gradient(x, dx, loss, "maxpool dx");
  EXPECT_EQ(y[0], std::max({x[0], x[1], x[6], x[7]}));
}

TEST(Kernels, MaxPoolFloatPathMatchesDoubleReferenceOnWideNarrowAndOddShapes) {
  for (const fk::Pool2dShape s : {fk::Pool2dShape{2, 3, 24, 24}, fk::Pool2dShape{1, 2, 9, 41},
                                  fk::Pool2dShape{3, 1, 8, 8}, fk::Pool2dShape{1, 1, 3, 66}}) {
    const size_t nx = static_cast<size_t>(s.batch) * s.c * s.h * s.w;
    const size_t ny = static_cast<size_t>(s.batch) * s.c * s.out_h() * s.out_w();
    const auto xd = random_vec<double>(nx, 32), gd = random_vec<double>(ny, 33);
    const auto x = cast_vec<float>(xd), g = cast_vec<float>(gd);
    const std::vector<double> xr(x.begin(), x.end()), gr(g.begin(), g.end());
    std::vector<float> y(ny), dx(nx, 9.0f);
    std::vector<double> yr(ny), dxr(nx);
    std::vector<uint8_t> am(ny), amr(ny);
    fk::maxpool2x2_forward<float>(s, x.data(), y.data(), am.data());
    fk::maxpool2x2_forward<double>(s, xr.data(), yr.data(), amr.data());
    EXPECT_EQ(am, amr) << s.h << "x" << s.w;
    expect_close(y, yr, 0.0, "pool y");
    fk::maxpool2x2_backward<float>(s, g.data(), am.data(), dx.data());
    fk::maxpool2x2_backward<double>(s, gr.data(), amr.data(), dxr.data());
    expect_close(dx, dxr, 0.0, "pool dx");
  }
}

TEST(Kernels, MaxPoolRoutesTiesToTheFirstMaximum) {
  const fk::Pool2dShape s{1, 1, 2, 2};
  const std::vector<float> x{1.0f, 3.0f, 3.0f, 3.0f};
  std::vector<float> y(1), dx(4);
  std::vector<uint8_t> am(1);
  const std::vector<float> dy{5.0f};
  fk::maxpool2x2_forward<float>(s, x.data(), y.data(), am.data());
  fk::maxpool2x2_backward<float>(s, dy.data(), am.data(), dx.data());
  EXPECT_EQ(am[0], 1);
  EXPECT_EQ(dx, (std::vector<float>{0.0f, 5.0f, 0.0f, 0.0f}));
}

TEST(Kernels, SoftmaxXentGradientMatchesFiniteDifferencesInDouble) {
  const int rows = 4, classes = 6;
  auto z = random_vec<double>(rows * classes, 40, -3.0, 3.0);
  const std::vector<int32_t> y{0, 5, 2, 2};
  const double scale = 1.0 / rows;
  std::vector<double> dz(z.size());
  const double total =
      fk::softmax_xent<double>(z.data(), y.data(), rows, classes, scale, dz.data());
  auto loss = [&] {
    return fk::softmax_xent<double>(z.data(), y.data(), rows, classes, 0.0, nullptr) * scale;
  };
  expect_gradient(z, dz, loss, "softmax-xent dz");
  double want = 0;
  for (int i = 0; i < rows; ++i) {
    double se = 0;
    for (int c = 0; c < classes; ++c) se += std::exp(z[i * classes + c]);
    want += std::log(se) - z[i * classes + y[i]];
  }
  EXPECT_NEAR(total, want, 1e-12);
}

TEST(Kernels, SoftmaxXentStaysFiniteForHugeLogits) {
  const std::vector<float> z{1000.0f, -1000.0f, 999.0f};
  const std::vector<int32_t> y{2};
  std::vector<float> dz(3);
  const double loss = fk::softmax_xent<float>(z.data(), y.data(), 1, 3, 1.0f, dz.data());
  EXPECT_NEAR(loss, std::log1p(std::exp(-1.0)) + 1.0, 1e-5);
  EXPECT_TRUE(std::isfinite(dz[0]) && std::isfinite(dz[1]) && std::isfinite(dz[2]));
}

TEST(Kernels, ArgmaxPicksLowestIndexOnTies) {
  const std::vector<float> z{1.0f, 3.0f, 3.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int32_t> out(2);
  fk::argmax_rows<float>(z.data(), 2, 3, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{1, 0}));
}

// The shapes of the NIID CNN plus odd ones that exercise every block remainder: output
// channels 6 (one block of 6), 16 (4 x 4), 5 and 7 (4 + rest), k = 1 (no padding), 1x1 output;
// output rows of 8, 16, 24 and 32 (the row layout at 8 and 16 lanes) and of other widths (wide).
class Conv2dFast : public ::testing::TestWithParam<fk::Conv2dShape> {};

TEST_P(Conv2dFast, FloatMatchesDoubleReference) {
  const fk::Conv2dShape s = GetParam();
  const size_t nx = static_cast<size_t>(s.batch) * s.in_c * s.in_h * s.in_w;
  const size_t nw = static_cast<size_t>(s.out_c) * s.in_c * s.k * s.k;
  const size_t ny = static_cast<size_t>(s.batch) * s.out_c * s.out_h() * s.out_w();
  const auto xd = random_vec<double>(nx, 50), wd = random_vec<double>(nw, 51);
  const auto bd = random_vec<double>(s.out_c, 52), dyd = random_vec<double>(ny, 53);
  // Round the inputs to float first so both paths see the same numbers.
  const auto x = cast_vec<float>(xd), w = cast_vec<float>(wd), b = cast_vec<float>(bd);
  const auto dy = cast_vec<float>(dyd);
  const std::vector<double> xr(x.begin(), x.end()), wr(w.begin(), w.end()), br(b.begin(), b.end()),
      dyr(dy.begin(), dy.end());
  std::vector<unsigned char> scratch(static_cast<size_t>(fk::conv2d_scratch_bytes(s)));
  for (bool relu : {false, true}) {
    std::vector<float> y(ny), dx(nx), dw(nw), db(s.out_c);
    std::vector<double> yr(ny), dxr(nx), dwr(nw), dbr(s.out_c);
    fk::conv2d_forward<float>(s, x.data(), w.data(), b.data(), relu, y.data(), scratch.data());
    fk::conv2d_forward_ref<double>(s, xr.data(), wr.data(), br.data(), relu, yr.data());
    expect_close(y, yr, 1e-5, "y");
    // Backward masks with the reference's y so both take the same ReLU branches.
    const std::vector<float> ymask(yr.begin(), yr.end());
    fk::conv2d_backward<float>(s, x.data(), w.data(), ymask.data(), relu, dy.data(), dx.data(),
                               dw.data(), db.data(), scratch.data());
    fk::conv2d_backward_ref<double>(s, xr.data(), wr.data(), yr.data(), relu, dyr.data(),
                                    dxr.data(), dwr.data(), dbr.data());
    expect_close(dx, dxr, 1e-5, "dx");
    expect_close(dw, dwr, 1e-4, "dw");
    expect_close(db, dbr, 1e-4, "db");
  }
}

TEST_P(Conv2dFast, BackwardIsRepeatableWithAndWithoutInputGradient) {
  const fk::Conv2dShape s = GetParam();
  const size_t nx = static_cast<size_t>(s.batch) * s.in_c * s.in_h * s.in_w;
  const size_t nw = static_cast<size_t>(s.out_c) * s.in_c * s.k * s.k;
  const size_t ny = static_cast<size_t>(s.batch) * s.out_c * s.out_h() * s.out_w();
  const auto x = random_vec<float>(nx, 60), w = random_vec<float>(nw, 61);
  const auto b = random_vec<float>(s.out_c, 62), dy = random_vec<float>(ny, 63);
  std::vector<unsigned char> scratch(static_cast<size_t>(fk::conv2d_scratch_bytes(s)));
  std::vector<float> y(ny), dw1(nw), db1(s.out_c), dw2(nw), db2(s.out_c);
  fk::conv2d_forward<float>(s, x.data(), w.data(), b.data(), true, y.data(), scratch.data());
  std::vector<float> dx(nx);
  fk::conv2d_backward<float>(s, x.data(), w.data(), y.data(), true, dy.data(), dx.data(),
                             dw1.data(), db1.data(), scratch.data());
  fk::conv2d_backward<float>(s, x.data(), w.data(), y.data(), true, dy.data(), nullptr, dw2.data(),
                             db2.data(), scratch.data());
  EXPECT_EQ(0, std::memcmp(dw1.data(), dw2.data(), nw * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(db1.data(), db2.data(), db1.size() * sizeof(float)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, Conv2dFast,
    ::testing::Values(fk::Conv2dShape{3, 1, 28, 28, 6, 5}, fk::Conv2dShape{3, 6, 12, 12, 16, 5},
                      fk::Conv2dShape{2, 3, 11, 9, 5, 3}, fk::Conv2dShape{2, 2, 8, 19, 7, 4},
                      fk::Conv2dShape{1, 4, 5, 5, 3, 5}, fk::Conv2dShape{2, 3, 6, 5, 10, 1},
                      fk::Conv2dShape{2, 3, 32, 32, 6, 5}, fk::Conv2dShape{2, 2, 20, 20, 5, 5},
                      fk::Conv2dShape{1, 3, 36, 36, 4, 5}));

TEST(Kernels, SgdUpdateFollowsPyTorchSemanticsForTwoSteps) {
  // Hand-computed: w=1, g=0.5, wd=0.1, mu=0.2, w_global=0, lr=0.1, momentum=0.9.
  // Step 1: d = 0.5 + 0.1*1 + 0.2*(1-0) = 0.8; buf = 0.8; w = 1 - 0.08 = 0.92.
  // Step 2 (g=0.5): d = 0.5 + 0.092 + 0.184 = 0.776; buf = 0.72 + 0.776 = 1.496;
  //                 w = 0.92 - 0.1496 = 0.7704.
  std::vector<double> w{1.0}, g{0.5}, buf{123.0}, wg{0.0};
  const fk::SgdHyper<double> h{0.1, 0.9, 0.1, 0.2};
  EXPECT_TRUE(fk::sgd_update<double>(w.data(), g.data(), buf.data(), wg.data(), 1, h, true));
  EXPECT_NEAR(w[0], 0.92, 1e-15);
  EXPECT_NEAR(buf[0], 0.8, 1e-15);
  EXPECT_TRUE(fk::sgd_update<double>(w.data(), g.data(), buf.data(), wg.data(), 1, h, false));
  EXPECT_NEAR(buf[0], 1.496, 1e-15);
  EXPECT_NEAR(w[0], 0.7704, 1e-15);
}

TEST(Kernels, SgdUpdateReportsNonFiniteParameters) {
  std::vector<float> w(100, 1.0f), g(100, 0.0f), buf(100);
  g[37] = std::numeric_limits<float>::infinity();
  const fk::SgdHyper<float> h{0.1f, 0.9f, 0.0f, 0.0f};
  EXPECT_FALSE(fk::sgd_update<float>(w.data(), g.data(), buf.data(), nullptr, 100, h, true));
  g[37] = 0.0f;
  w.assign(100, 1.0f);
  EXPECT_TRUE(fk::sgd_update<float>(w.data(), g.data(), buf.data(), nullptr, 100, h, true));
}

TEST(Kernels, L2NormOfExactSquaresIsExact) {
  // 3-4-12 in every block of three: squares 9 + 16 + 144 = 169 = 13^2, exact in double.
  std::vector<float> x(3 * 1000);
  for (size_t i = 0; i < x.size(); i += 3) {
    x[i] = 3.0f;
    x[i + 1] = -4.0f;
    x[i + 2] = 12.0f;
  }
  EXPECT_EQ(fk::l2_norm<float>(x.data(), static_cast<int64_t>(x.size())), std::sqrt(169.0 * 1000));
  EXPECT_EQ(fk::l2_norm<float>(x.data(), 3), 13.0);
  EXPECT_EQ(fk::l2_norm<float>(x.data(), 0), 0.0);
}

TEST(ThreadTeam, EveryIndexRunsOncePerRunAcrossManyRuns) {
  for (int size : {1, 2, 3}) {
    fk::ThreadTeam team(size);
    ASSERT_EQ(team.size(), size);
    std::vector<int> hits(static_cast<size_t>(size), 0);
    for (int r = 0; r < 2000; ++r) {
      team.run([&](int i) { hits[static_cast<size_t>(i)] += 1; });
    }
    for (int i = 0; i < size; ++i) EXPECT_EQ(hits[static_cast<size_t>(i)], 2000) << size;
  }
}

TEST(ThreadTeam, RunReturnsOnlyAfterEveryThreadFinished) {
  fk::ThreadTeam team(2);
  for (int r = 0; r < 50; ++r) {
    std::atomic<int> done{0};
    team.run([&](int i) {
      if (i == 1) std::this_thread::sleep_for(std::chrono::microseconds(200));
      done.fetch_add(1);
    });
    EXPECT_EQ(done.load(), 2);
  }
}

TEST(Kernels, StreamingCopyWritesExactlyTheRangeAtEveryAlignmentAndLength) {
  std::vector<float> src(5000);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<float>(i) + 0.5f;
  // dst offsets 0..16 floats from a 64-byte boundary; lengths around the vector widths.
  alignas(64) static float dst[5200];
  for (int offset = 0; offset <= 16; ++offset) {
    for (const int64_t n : {0, 1, 7, 15, 16, 17, 31, 33, 100, 4099}) {
      std::fill(std::begin(dst), std::end(dst), -1.0f);
      fk::copy_streaming(src.data(), dst + offset, n);
      fk::stream_fence();
      for (int i = 0; i < offset; ++i) ASSERT_EQ(dst[i], -1.0f) << offset << " " << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(dst[offset + i], src[i]) << offset << " " << n;
      ASSERT_EQ(dst[offset + n], -1.0f) << offset << " " << n;
    }
  }
}
