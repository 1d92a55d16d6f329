// The CUDA training kernels (kernels/cuda: gemm, dense, conv2d, maxpool2d, relu, bias,
// softmax_xent, sgd, reduce) against their CPU twins (kernels/cpu, float instantiation) on fresh
// random inputs: ||gpu - cpu|| / ||cpu|| <= 1e-5 over the whole output where float arithmetic
// differs, exact equality where it does not (selection, routing, masks, single additions).
// Outputs are poisoned (NaN / 0xFF) first, so an element a kernel forgets to write fails the
// comparison. Shapes: batch 1, odd sizes, the NIID-Bench CNN and MLP layers at batch 64 and 512.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "gpu_test_util.h"
#include "kernels/cpu_ops.h"
#include "kernels/cuda/bias.h"
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/dense.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/maxpool2d.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/relu.h"
#include "kernels/cuda/sgd.h"
#include "kernels/cuda/softmax_xent.h"

/// Fails the current test (and returns from the enclosing void function) when `expr`, a
/// Status, is not ok; prints its message.
#define FEDSILO_ASSERT_OK(expr)                                       \
  do {                                                                \
    const ::fedsilo::Status fedsilo_test_st_ = (expr);                \
    ASSERT_TRUE(fedsilo_test_st_.ok()) << fedsilo_test_st_.message(); \
  } while (0)

namespace fedsilo::test {
namespace {

namespace cu = kernels::cuda;

constexpr double kTol = 1e-5;

/// Bitwise equality of two float arrays (run-to-run determinism; NaN payloads included).
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

/// n uniform integers in [lo, hi] as floats: maxima with many ties.
std::vector<float> random_small_ints(size_t n, uint64_t seed, int lo, int hi) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(d(g));
  return v;
}

std::vector<int32_t> random_labels(size_t n, int classes, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::uniform_int_distribution<int32_t> d(0, classes - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

/// A device workspace of at least `bytes` bytes (one float when zero), 8-byte aligned.
cu::DeviceArray<double> workspace(int64_t bytes) {
  const size_t n = std::max<size_t>(1, static_cast<size_t>((bytes + 7) / 8));
  auto a = cu::DeviceArray<double>::create(n);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? std::move(a).value() : cu::DeviceArray<double>{};
}

// ------------------------------------------------------------------------------------ GEMM

class CudaGemm : public GpuTest {};

struct GemmCase {
  int m, n, k;
  bool ta, tb;
  int pad;  // extra elements per row of A, B and C (row strides larger than the rows)
  float alpha, beta;
};

TEST_F(CudaGemm, MatchesCpuForTransposesStridesAndScalars) {
  auto blas = cu::BlasHandle::create(stream_);
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  const std::vector<GemmCase> cases = {
      {1, 1, 1, false, false, 0, 1.0f, 0.0f},     {7, 5, 3, false, false, 0, 1.0f, 0.0f},
      {7, 5, 3, true, false, 0, 1.0f, 0.0f},      {7, 5, 3, false, true, 0, 1.0f, 0.0f},
      {7, 5, 3, true, true, 0, 1.0f, 0.0f},       {33, 17, 129, false, true, 3, 0.5f, 0.25f},
      {33, 17, 129, true, false, 5, -1.0f, 1.0f}, {64, 200, 784, false, true, 0, 1.0f, 0.0f},
      {200, 784, 64, true, false, 0, 1.0f, 0.0f}, {64, 784, 200, false, false, 0, 1.0f, 0.0f},
      {512, 10, 200, false, true, 0, 1.0f, 0.0f}, {512, 200, 784, false, true, 1, 1.0f, 0.0f},
  };
  uint64_t seed = 100;
  for (const GemmCase& c : cases) {
    SCOPED_TRACE("m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
                 " k=" + std::to_string(c.k) + " ta=" + std::to_string(c.ta) +
                 " tb=" + std::to_string(c.tb) + " pad=" + std::to_string(c.pad));
    const int a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
    const int b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
    const int lda = a_cols + c.pad, ldb = b_cols + c.pad, ldc = c.n + c.pad;
    const auto a = random_normal(size_t(a_rows) * lda, ++seed);
    const auto b = random_normal(size_t(b_rows) * ldb, ++seed);
    // C's padding holds NaN: it must come back untouched. Where beta == 0 all of C is NaN on
    // the device (BLAS does not read C then); the CPU twin gets zeros there.
    auto c0 = random_normal(size_t(c.m) * ldc, ++seed);
    for (int i = 0; i < c.m; ++i) {
      for (int j = c.n; j < ldc; ++j) c0[size_t(i) * ldc + j] = std::nanf("");
    }
    std::vector<float> ref = c0;
    if (c.beta == 0.0f) {
      for (int i = 0; i < c.m; ++i) std::fill_n(ref.begin() + size_t(i) * ldc, c.n, 0.0f);
    }
    kernels::gemm<float>(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.data(), lda, b.data(), ldb, c.beta,
                         ref.data(), ldc);

    auto da = to_device(a, stream_);
    auto db = to_device(b, stream_);
    auto dc = c.beta == 0.0f ? poisoned<float>(c0.size(), stream_) : to_device(c0, stream_);
    FEDSILO_ASSERT_OK(cu::gemm(blas.value(), c.ta, c.tb, c.m, c.n, c.k, c.alpha, da.data(), lda,
                               db.data(), ldb, c.beta, dc.data(), ldc));
    const auto got = to_host(dc, stream_);
    std::vector<float> got_c, ref_c;
    for (int i = 0; i < c.m; ++i) {
      for (int j = 0; j < ldc; ++j) {
        const size_t idx = size_t(i) * ldc + j;
        if (j < c.n) {
          got_c.push_back(got[idx]);
          ref_c.push_back(ref[idx]);
        } else {
          EXPECT_TRUE(std::isnan(got[idx])) << "padding of C written at row " << i << " col " << j;
        }
      }
    }
    EXPECT_LE(relative_error(got_c, ref_c), kTol);
  }
}

TEST_F(CudaGemm, RepeatsBitwise) {
  auto blas = cu::BlasHandle::create(stream_);
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  const int m = 512, n = 200, k = 784;
  auto a = to_device(random_normal(size_t(m) * k, 1), stream_);
  auto b = to_device(random_normal(size_t(n) * k, 2), stream_);
  std::vector<float> first;
  for (int run = 0; run < 3; ++run) {
    auto c = poisoned<float>(size_t(m) * n, stream_);
    FEDSILO_ASSERT_OK(cu::gemm(blas.value(), false, true, m, n, k, 1.0f, a.data(), k, b.data(), k,
                               0.0f, c.data(), n));
    const auto got = to_host(c, stream_);
    if (run == 0) {
      first = got;
    } else {
      EXPECT_TRUE(same_bits(got, first)) << "run " << run;
    }
  }
}

TEST_F(CudaGemm, RejectsShortRowStrideWithAStatus) {
  auto blas = cu::BlasHandle::create(stream_);
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  // A is [4 x 8] row-major: lda must be >= 8.
  const Status st =
      cu::gemm(blas.value(), false, false, 4, 3, 8, 1.0f, nullptr, 7, nullptr, 3, 0.0f, nullptr, 3);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("lda"), std::string::npos) << st.message();
}

// ------------------------------------------------------------------------------------ dense

class CudaDense : public GpuTest {};

struct DenseCase {
  int batch, in, out;
  bool relu, with_dx;
};

TEST_F(CudaDense, ForwardAndBackwardMatchCpu) {
  auto blas = cu::BlasHandle::create(stream_);
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  const std::vector<DenseCase> cases = {
      {1, 3, 5, true, true},       {17, 33, 9, false, true},    {64, 784, 200, true, false},
      {64, 200, 200, true, true},  {64, 200, 10, false, true},  {512, 784, 200, true, false},
      {512, 200, 200, true, true}, {512, 200, 10, false, true},
  };
  uint64_t seed = 200;
  for (const DenseCase& c : cases) {
    SCOPED_TRACE("batch=" + std::to_string(c.batch) + " in=" + std::to_string(c.in) +
                 " out=" + std::to_string(c.out) + " relu=" + std::to_string(c.relu));
    const kernels::DenseShape s{c.batch, c.in, c.out};
    const size_t nx = size_t(c.batch) * c.in, ny = size_t(c.batch) * c.out;
    const size_t nw = size_t(c.out) * c.in;
    const auto x = random_normal(nx, ++seed);
    const auto w = random_normal(nw, ++seed, 1.0f / std::sqrt(float(c.in)));
    const auto b = random_normal(size_t(c.out), ++seed, 0.1f);
    const auto dy = random_normal(ny, ++seed);

    // Forward.
    std::vector<float> y_ref(ny);
    kernels::dense_forward<float>(s, x.data(), w.data(), b.data(), c.relu, y_ref.data());
    auto d_x = to_device(x, stream_);
    auto d_w = to_device(w, stream_);
    auto d_b = to_device(b, stream_);
    auto d_y = poisoned<float>(ny, stream_);
    FEDSILO_ASSERT_OK(
        cu::dense_forward(blas.value(), s, d_x.data(), d_w.data(), d_b.data(), c.relu, d_y.data()));
    EXPECT_LE(relative_error(to_host(d_y, stream_), y_ref), kTol) << "forward";

    // Backward from the CPU's forward output on both sides, so the ReLU masks agree exactly.
    std::vector<float> g_ref = dy, gx_ref(nx), gw_ref(nw), gb_ref(static_cast<size_t>(c.out));
    kernels::dense_backward<float>(s, x.data(), w.data(), y_ref.data(), c.relu, g_ref.data(),
                                   c.with_dx ? gx_ref.data() : nullptr, gw_ref.data(),
                                   gb_ref.data());
    auto y_in = to_device(y_ref, stream_);
    auto g = to_device(dy, stream_);
    auto gx = poisoned<float>(nx, stream_);
    auto gw = poisoned<float>(nw, stream_);
    auto gb = poisoned<float>(size_t(c.out), stream_);
    FEDSILO_ASSERT_OK(cu::dense_backward(blas.value(), s, d_x.data(), d_w.data(), y_in.data(),
                                         c.relu, g.data(), c.with_dx ? gx.data() : nullptr,
                                         gw.data(), gb.data()));
    EXPECT_EQ(to_host(g, stream_), g_ref) << "dy after the ReLU mask";
    EXPECT_LE(relative_error(to_host(gw, stream_), gw_ref), kTol) << "dw";
    EXPECT_LE(relative_error(to_host(gb, stream_), gb_ref), kTol) << "db";
    if (c.with_dx) {
      EXPECT_LE(relative_error(to_host(gx, stream_), gx_ref), kTol) << "dx";
    } else {
      for (float v : to_host(gx, stream_)) ASSERT_TRUE(std::isnan(v)) << "dx written though null";
    }
  }
}

TEST_F(CudaDense, EmptyBatchZeroesGradients) {
  auto blas = cu::BlasHandle::create(stream_);
  ASSERT_TRUE(blas.ok()) << blas.status().message();
  const kernels::DenseShape s{0, 6, 4};
  auto gw = poisoned<float>(24, stream_);
  auto gb = poisoned<float>(4, stream_);
  FEDSILO_ASSERT_OK(cu::dense_backward(blas.value(), s, nullptr, nullptr, nullptr, true, nullptr,
                                       nullptr, gw.data(), gb.data()));
  EXPECT_EQ(to_host(gw, stream_), std::vector<float>(24, 0.0f));
  EXPECT_EQ(to_host(gb, stream_), std::vector<float>(4, 0.0f));
}

// ------------------------------------------------------------------------------------ conv2d

class CudaConv2d : public GpuTest {};

struct ConvCase {
  kernels::Conv2dShape s;
  bool relu, with_dx;
};

std::string describe(const kernels::Conv2dShape& s) {
  return "batch=" + std::to_string(s.batch) + " in_c=" + std::to_string(s.in_c) + " " +
         std::to_string(s.in_h) + "x" + std::to_string(s.in_w) +
         " out_c=" + std::to_string(s.out_c) + " k=" + std::to_string(s.k);
}

TEST_F(CudaConv2d, ForwardAndBackwardMatchCpu) {
  const std::vector<ConvCase> cases = {
      // NIID-Bench CNN conv1 (1x28x28 -> 6, 5x5) and conv2 (6x12x12 -> 16, 5x5).
      {{1, 1, 28, 28, 6, 5}, true, false},
      {{64, 1, 28, 28, 6, 5}, true, false},
      {{512, 1, 28, 28, 6, 5}, true, false},
      {{1, 6, 12, 12, 16, 5}, true, true},
      {{64, 6, 12, 12, 16, 5}, true, true},
      {{512, 6, 12, 12, 16, 5}, true, true},
      // 129 samples: chunks of 2 with a last chunk of 1.
      {{129, 6, 12, 12, 16, 5}, false, true},
      // Odd sizes, no ReLU.
      {{3, 3, 9, 11, 5, 3}, false, true},
      // k = 1: 3 taps with the bias, 64 pixel lanes per tap in the dw pass.
      {{2, 2, 7, 5, 3, 1}, true, true},
      // 625 taps: two staged weight chunks in the forward pass, three dw passes, 4 dx groups.
      {{5, 25, 10, 9, 10, 5}, false, true},
      // 40 output channels: 5 forward groups, two staged chunks in dx.
      {{3, 2, 24, 24, 40, 5}, true, true},
      // The largest kernel taken (22 x 22 = 484 taps), output 1x2.
      {{2, 1, 22, 23, 2, 22}, false, true},
  };
  uint64_t seed = 300;
  for (const ConvCase& c : cases) {
    const kernels::Conv2dShape& s = c.s;
    SCOPED_TRACE(describe(s) + " relu=" + std::to_string(c.relu));
    const size_t nx = size_t(s.batch) * s.in_c * s.in_h * s.in_w;
    const size_t ny = size_t(s.batch) * s.out_c * s.out_h() * s.out_w();
    const size_t nw = size_t(s.out_c) * s.in_c * s.k * s.k;
    const auto x = random_normal(nx, ++seed);
    const auto w = random_normal(nw, ++seed, 1.0f / std::sqrt(float(s.in_c * s.k * s.k)));
    const auto b = random_normal(size_t(s.out_c), ++seed, 0.1f);
    const auto dy = random_normal(ny, ++seed);
    std::vector<float> scratch(size_t(kernels::conv2d_scratch_bytes(s)) / sizeof(float) + 16);

    std::vector<float> y_ref(ny);
    kernels::conv2d_forward<float>(s, x.data(), w.data(), b.data(), c.relu, y_ref.data(),
                                   scratch.data());
    auto d_x = to_device(x, stream_);
    auto d_w = to_device(w, stream_);
    auto d_b = to_device(b, stream_);
    auto d_y = poisoned<float>(ny, stream_);
    FEDSILO_ASSERT_OK(
        cu::conv2d_forward(s, d_x.data(), d_w.data(), d_b.data(), c.relu, d_y.data(), stream_));
    EXPECT_LE(relative_error(to_host(d_y, stream_), y_ref), kTol) << "forward";

    // Backward from the CPU's forward output on both sides, so the ReLU masks agree exactly.
    std::vector<float> gx_ref(nx), gw_ref(nw), gb_ref(static_cast<size_t>(s.out_c));
    kernels::conv2d_backward<float>(s, x.data(), w.data(), y_ref.data(), c.relu, dy.data(),
                                    c.with_dx ? gx_ref.data() : nullptr, gw_ref.data(),
                                    gb_ref.data(), scratch.data());
    auto y_in = to_device(y_ref, stream_);
    auto g = to_device(dy, stream_);
    auto gx = poisoned<float>(nx, stream_);
    auto gw = poisoned<float>(nw, stream_);
    auto gb = poisoned<float>(size_t(s.out_c), stream_);
    const int64_t ws_bytes = cu::conv2d_backward_workspace_bytes(s);
    auto ws = workspace(ws_bytes);
    FEDSILO_ASSERT_OK(cu::conv2d_backward(s, d_x.data(), d_w.data(), y_in.data(), c.relu, g.data(),
                                          c.with_dx ? gx.data() : nullptr, gw.data(), gb.data(),
                                          ws.data(), ws_bytes, stream_));
    EXPECT_LE(relative_error(to_host(gw, stream_), gw_ref), kTol) << "dw";
    EXPECT_LE(relative_error(to_host(gb, stream_), gb_ref), kTol) << "db";
    if (c.with_dx) {
      EXPECT_LE(relative_error(to_host(gx, stream_), gx_ref), kTol) << "dx";
    } else {
      for (float v : to_host(gx, stream_)) ASSERT_TRUE(std::isnan(v)) << "dx written though null";
    }
  }
}

TEST_F(CudaConv2d, BackwardRepeatsBitwise) {
  const kernels::Conv2dShape s{512, 6, 12, 12, 16, 5};
  const size_t nx = size_t(s.batch) * s.in_c * s.in_h * s.in_w;
  const size_t ny = size_t(s.batch) * s.out_c * s.out_h() * s.out_w();
  const size_t nw = size_t(s.out_c) * s.in_c * s.k * s.k;
  auto x = to_device(random_normal(nx, 1), stream_);
  auto w = to_device(random_normal(nw, 2, 0.1f), stream_);
  auto y = to_device(random_normal(ny, 3), stream_);  // any values: only y > 0 matters
  auto dy = to_device(random_normal(ny, 4), stream_);
  const int64_t ws_bytes = cu::conv2d_backward_workspace_bytes(s);
  auto ws = workspace(ws_bytes);
  std::vector<float> first_dx, first_dw, first_db;
  for (int run = 0; run < 3; ++run) {
    auto gx = poisoned<float>(nx, stream_);
    auto gw = poisoned<float>(nw, stream_);
    auto gb = poisoned<float>(size_t(s.out_c), stream_);
    FEDSILO_ASSERT_OK(cu::conv2d_backward(s, x.data(), w.data(), y.data(), true, dy.data(),
                                          gx.data(), gw.data(), gb.data(), ws.data(), ws_bytes,
                                          stream_));
    auto hx = to_host(gx, stream_), hw = to_host(gw, stream_), hb = to_host(gb, stream_);
    if (run == 0) {
      first_dx = hx;
      first_dw = hw;
      first_db = hb;
    } else {
      EXPECT_TRUE(same_bits(hx, first_dx)) << "dx, run " << run;
      EXPECT_TRUE(same_bits(hw, first_dw)) << "dw, run " << run;
      EXPECT_TRUE(same_bits(hb, first_db)) << "db, run " << run;
    }
  }
}

TEST_F(CudaConv2d, EmptyBatchZeroesGradients) {
  const kernels::Conv2dShape s{0, 2, 6, 6, 3, 3};
  auto gw = poisoned<float>(54, stream_);
  auto gb = poisoned<float>(3, stream_);
  FEDSILO_ASSERT_OK(cu::conv2d_backward(s, nullptr, nullptr, nullptr, true, nullptr, nullptr,
                                        gw.data(), gb.data(), nullptr, 0, stream_));
  EXPECT_EQ(to_host(gw, stream_), std::vector<float>(54, 0.0f));
  EXPECT_EQ(to_host(gb, stream_), std::vector<float>(3, 0.0f));
}

TEST_F(CudaConv2d, RejectsOversizedKernelAndShortWorkspace) {
  const kernels::Conv2dShape big{1, 1, 30, 30, 1, 23};  // 529 taps > kConv2dMaxTaps
  EXPECT_EQ(cu::conv2d_forward(big, nullptr, nullptr, nullptr, false, nullptr, stream_).code(),
            StatusCode::kInvalidArgument);
  const kernels::Conv2dShape s{4, 6, 12, 12, 16, 5};
  const Status st = cu::conv2d_backward(s, nullptr, nullptr, nullptr, false, nullptr, nullptr,
                                        nullptr, nullptr, nullptr, 0, stream_);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("workspace"), std::string::npos) << st.message();
}

// ------------------------------------------------------------------------------------ maxpool

class CudaMaxPool : public GpuTest {};

TEST_F(CudaMaxPool, ForwardArgmaxAndBackwardEqualCpuExactly) {
  const std::vector<kernels::Pool2dShape> shapes = {
      {1, 1, 2, 2}, {64, 6, 24, 24}, {512, 16, 8, 8}, {3, 5, 7, 9}, {2, 3, 1, 5}, {1, 2, 5, 1},
  };
  uint64_t seed = 400;
  for (const auto& s : shapes) {
    SCOPED_TRACE("batch=" + std::to_string(s.batch) + " c=" + std::to_string(s.c) + " " +
                 std::to_string(s.h) + "x" + std::to_string(s.w));
    const size_t nx = size_t(s.batch) * s.c * s.h * s.w;
    const size_t ny = size_t(s.batch) * s.c * s.out_h() * s.out_w();
    // Small integers: many windows hold tied maxima (the first in window order must win).
    const auto x = random_small_ints(nx, ++seed, -3, 3);
    std::vector<float> y_ref(ny);
    std::vector<uint8_t> am_ref(ny);
    kernels::maxpool2x2_forward<float>(s, x.data(), y_ref.data(), am_ref.data());
    const auto dy = random_normal(ny, ++seed);
    std::vector<float> dx_ref(nx);
    kernels::maxpool2x2_backward<float>(s, dy.data(), am_ref.data(), dx_ref.data());

    auto d_x = to_device(x, stream_);
    auto d_dx = poisoned<float>(nx, stream_);
    if (ny == 0) {  // no full window: forward writes nothing, backward zeroes dx
      FEDSILO_ASSERT_OK(cu::maxpool2x2_forward(s, d_x.data(), nullptr, nullptr, stream_));
      FEDSILO_ASSERT_OK(cu::maxpool2x2_backward(s, nullptr, nullptr, d_dx.data(), stream_));
      EXPECT_EQ(to_host(d_dx, stream_), dx_ref);
      continue;
    }
    auto d_y = poisoned<float>(ny, stream_);
    auto d_am = poisoned<uint8_t>(ny, stream_);
    FEDSILO_ASSERT_OK(cu::maxpool2x2_forward(s, d_x.data(), d_y.data(), d_am.data(), stream_));
    EXPECT_EQ(to_host(d_y, stream_), y_ref);
    EXPECT_EQ(to_host(d_am, stream_), am_ref);
    auto d_dy = to_device(dy, stream_);
    FEDSILO_ASSERT_OK(cu::maxpool2x2_backward(s, d_dy.data(), d_am.data(), d_dx.data(), stream_));
    EXPECT_EQ(to_host(d_dx, stream_), dx_ref);
  }
}

// ------------------------------------------------------------------------------------ ReLU

class CudaRelu : public GpuTest {};

TEST_F(CudaRelu, ForwardAndBackwardEqualCpuExactly) {
  uint64_t seed = 500;
  for (const int64_t n : {int64_t{1}, int64_t{1000}, (int64_t{1} << 20) + 7}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    auto x = random_normal(size_t(n), ++seed);
    x[0] = 0.0f;
    const auto dy = random_normal(size_t(n), ++seed);
    std::vector<float> y_ref(static_cast<size_t>(n)), dx_ref(static_cast<size_t>(n));
    kernels::relu_forward<float>(x.data(), y_ref.data(), n);
    kernels::relu_backward<float>(y_ref.data(), dy.data(), dx_ref.data(), n);

    auto d_x = to_device(x, stream_);
    auto d_y = poisoned<float>(size_t(n), stream_);
    FEDSILO_ASSERT_OK(cu::relu_forward(d_x.data(), d_y.data(), n, stream_));
    EXPECT_EQ(to_host(d_y, stream_), y_ref);
    FEDSILO_ASSERT_OK(cu::relu_forward(d_x.data(), d_x.data(), n, stream_));  // in place
    EXPECT_EQ(to_host(d_x, stream_), y_ref);

    auto d_dy = to_device(dy, stream_);
    auto d_dx = poisoned<float>(size_t(n), stream_);
    FEDSILO_ASSERT_OK(cu::relu_backward(d_y.data(), d_dy.data(), d_dx.data(), n, stream_));
    EXPECT_EQ(to_host(d_dx, stream_), dx_ref);
    FEDSILO_ASSERT_OK(cu::relu_backward(d_y.data(), d_dy.data(), d_dy.data(), n, stream_));
    EXPECT_EQ(to_host(d_dy, stream_), dx_ref);
  }
}

// ------------------------------------------------------------------------------------ bias

class CudaBias : public GpuTest {};

TEST_F(CudaBias, ActAndGradientsMatchCpu) {
  const std::vector<std::pair<int, int>> shapes = {{1, 1},    {7, 33},    {64, 200},
                                                   {512, 10}, {512, 200}, {3, 1000}};
  uint64_t seed = 600;
  for (const auto& [rows, cols] : shapes) {
    for (const bool relu : {false, true}) {
      SCOPED_TRACE("rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
                   " relu=" + std::to_string(relu));
      const size_t n = size_t(rows) * cols;
      const auto y0 = random_normal(n, ++seed);
      const auto b = random_normal(size_t(cols), ++seed);
      std::vector<float> y_ref = y0;
      kernels::bias_act_rows<float>(y_ref.data(), b.data(), rows, cols, relu);
      auto d_y = to_device(y0, stream_);
      auto d_b = to_device(b, stream_);
      FEDSILO_ASSERT_OK(cu::bias_act_rows(d_y.data(), d_b.data(), rows, cols, relu, stream_));
      EXPECT_EQ(to_host(d_y, stream_), y_ref) << "bias_act_rows (one addition: exact)";

      const auto dy = random_normal(n, ++seed);
      std::vector<float> db_ref(static_cast<size_t>(cols));
      std::vector<float> g_ref = dy;
      if (relu) kernels::relu_backward<float>(y_ref.data(), g_ref.data(), g_ref.data(), int64_t(n));
      kernels::bias_grad_rows<float>(g_ref.data(), rows, cols, db_ref.data());
      auto d_g = to_device(dy, stream_);
      auto d_db = poisoned<float>(size_t(cols), stream_);
      if (relu) {
        FEDSILO_ASSERT_OK(
            cu::relu_bias_grad_rows(d_y.data(), d_g.data(), rows, cols, d_db.data(), stream_));
        EXPECT_EQ(to_host(d_g, stream_), g_ref) << "masked dy";
      } else {
        FEDSILO_ASSERT_OK(cu::bias_grad_rows(d_g.data(), rows, cols, d_db.data(), stream_));
        EXPECT_EQ(to_host(d_g, stream_), dy) << "dy must stay untouched";
      }
      EXPECT_LE(relative_error(to_host(d_db, stream_), db_ref), kTol) << "db";
    }
  }
}

TEST_F(CudaBias, GradientOfNoRowsIsZero) {
  auto d_db = poisoned<float>(5, stream_);
  FEDSILO_ASSERT_OK(cu::bias_grad_rows(nullptr, 0, 5, d_db.data(), stream_));
  EXPECT_EQ(to_host(d_db, stream_), std::vector<float>(5, 0.0f));
}

// ------------------------------------------------------------------------------------ softmax

class CudaSoftmaxXent : public GpuTest {};

/// Loss on the device, read back (one double).
double device_loss(const cu::DeviceArray<double>& loss, cu::Stream s) {
  return to_host(loss, s)[0];
}

TEST_F(CudaSoftmaxXent, LossAndGradientMatchCpu) {
  const std::vector<std::pair<int, int>> shapes = {{1, 10},   {3, 1},    {64, 10},
                                                   {512, 10}, {1000, 7}, {37, 100}};
  uint64_t seed = 700;
  for (const auto& [rows, classes] : shapes) {
    SCOPED_TRACE("rows=" + std::to_string(rows) + " classes=" + std::to_string(classes));
    const size_t n = size_t(rows) * classes;
    const auto z = random_normal(n, ++seed, 3.0f);
    const auto labels = random_labels(size_t(rows), classes, ++seed);
    const float scale = 1.0f / float(rows);
    std::vector<float> d_ref(n);
    const double loss_ref =
        kernels::softmax_xent<float>(z.data(), labels.data(), rows, classes, scale, d_ref.data());

    auto d_z = to_device(z, stream_);
    auto d_l = to_device(labels, stream_);
    auto d_d = poisoned<float>(n, stream_);
    auto d_loss = poisoned<double>(1, stream_);
    FEDSILO_ASSERT_OK(cu::softmax_xent(d_z.data(), d_l.data(), rows, classes, scale, d_d.data(),
                                       d_loss.data(), false, stream_));
    EXPECT_NEAR(device_loss(d_loss, stream_), loss_ref, kTol * std::max(1.0, std::abs(loss_ref)));
    EXPECT_LE(relative_error(to_host(d_d, stream_), d_ref), kTol) << "dlogits";

    // Accumulating onto 1.5, gradient in place over the logits.
    const std::vector<double> start = {1.5};
    FEDSILO_ASSERT_OK(cu::copy_to_device(d_loss.data(), start.data(), sizeof(double), stream_));
    FEDSILO_ASSERT_OK(cu::softmax_xent(d_z.data(), d_l.data(), rows, classes, scale, d_z.data(),
                                       d_loss.data(), true, stream_));
    EXPECT_NEAR(device_loss(d_loss, stream_), 1.5 + loss_ref,
                kTol * std::max(1.0, std::abs(loss_ref)));
    EXPECT_LE(relative_error(to_host(d_z, stream_), d_ref), kTol) << "dlogits in place";
  }
}

TEST_F(CudaSoftmaxXent, LossRepeatsBitwiseAndFlagsBadLabels) {
  const int rows = 512, classes = 10;
  auto z = to_device(random_normal(size_t(rows) * classes, 1, 3.0f), stream_);
  auto labels_h = random_labels(size_t(rows), classes, 2);
  auto labels = to_device(labels_h, stream_);
  auto loss = poisoned<double>(1, stream_);
  FEDSILO_ASSERT_OK(cu::softmax_xent(z.data(), labels.data(), rows, classes, 1.0f, nullptr,
                                     loss.data(), false, stream_));
  const double first = device_loss(loss, stream_);
  ASSERT_TRUE(std::isfinite(first));
  for (int run = 0; run < 3; ++run) {
    FEDSILO_ASSERT_OK(cu::softmax_xent(z.data(), labels.data(), rows, classes, 1.0f, nullptr,
                                       loss.data(), false, stream_));
    const double again = device_loss(loss, stream_);
    EXPECT_EQ(std::memcmp(&again, &first, sizeof(double)), 0) << "run " << run;
  }
  labels_h[17] = classes;  // out of range
  auto bad = to_device(labels_h, stream_);
  FEDSILO_ASSERT_OK(cu::softmax_xent(z.data(), bad.data(), rows, classes, 1.0f, nullptr,
                                     loss.data(), false, stream_));
  EXPECT_TRUE(std::isnan(device_loss(loss, stream_)));
  // No rows: the loss is 0.
  FEDSILO_ASSERT_OK(
      cu::softmax_xent(nullptr, nullptr, 0, classes, 1.0f, nullptr, loss.data(), false, stream_));
  EXPECT_EQ(device_loss(loss, stream_), 0.0);
}

TEST_F(CudaSoftmaxXent, ArgmaxEqualsCpuWithTiesAndNaN) {
  const std::vector<std::pair<int, int>> shapes = {{1, 10}, {64, 10}, {513, 10}, {9, 1}, {40, 37}};
  uint64_t seed = 800;
  for (const auto& [rows, classes] : shapes) {
    SCOPED_TRACE("rows=" + std::to_string(rows) + " classes=" + std::to_string(classes));
    auto z = random_small_ints(size_t(rows) * classes, ++seed, -2, 2);  // ties in most rows
    z[size_t(rows / 2) * classes + size_t(classes - 1)] = std::nanf("");
    std::vector<int32_t> ref(static_cast<size_t>(rows));
    kernels::argmax_rows<float>(z.data(), rows, classes, ref.data());
    auto d_z = to_device(z, stream_);
    auto d_out = poisoned<int32_t>(size_t(rows), stream_);
    FEDSILO_ASSERT_OK(cu::argmax_rows(d_z.data(), rows, classes, d_out.data(), stream_));
    EXPECT_EQ(to_host(d_out, stream_), ref);
  }
}

// ------------------------------------------------------------------------------------ SGD

class CudaSgd : public GpuTest {};

struct SgdCase {
  kernels::SgdHyper<float> h;
  bool first_step;
  bool with_global;
};

TEST_F(CudaSgd, UpdateMatchesCpuForEveryOption) {
  const std::vector<SgdCase> cases = {
      {{0.1f, 0.0f, 0.0f, 0.0f}, false, false},     // plain SGD
      {{0.05f, 0.0f, 5e-4f, 0.01f}, false, true},   // weight decay + FedProx, no momentum
      {{0.05f, 0.9f, 0.0f, 0.0f}, true, false},     // momentum, first step (buf = d)
      {{0.05f, 0.9f, 5e-4f, 0.01f}, false, true},   // everything
      {{0.05f, 0.9f, 5e-4f, 0.01f}, false, false},  // prox_mu without w_global: no prox term
  };
  uint64_t seed = 900;
  for (const int64_t n : {int64_t{1}, int64_t{199210}, (int64_t{1} << 20) + 3}) {
    for (size_t ci = 0; ci < cases.size(); ++ci) {
      const SgdCase& c = cases[ci];
      SCOPED_TRACE("n=" + std::to_string(n) + " case=" + std::to_string(ci));
      const auto w0 = random_normal(size_t(n), ++seed, 0.1f);
      const auto g = random_normal(size_t(n), ++seed);
      const auto buf0 = random_normal(size_t(n), ++seed);
      const auto wg = random_normal(size_t(n), ++seed, 0.1f);
      std::vector<float> w_ref = w0, buf_ref = buf0;
      const bool ok_ref =
          kernels::sgd_update<float>(w_ref.data(), g.data(), buf_ref.data(),
                                     c.with_global ? wg.data() : nullptr, n, c.h, c.first_step);
      ASSERT_TRUE(ok_ref);

      auto d_w = to_device(w0, stream_);
      auto d_g = to_device(g, stream_);
      auto d_buf = to_device(buf0, stream_);
      auto d_wg = to_device(wg, stream_);
      auto flag = to_device(std::vector<uint32_t>{0u}, stream_);
      FEDSILO_ASSERT_OK(cu::sgd_update(d_w.data(), d_g.data(), d_buf.data(),
                                       c.with_global ? d_wg.data() : nullptr, n, c.h, c.first_step,
                                       flag.data(), stream_));
      EXPECT_LE(relative_error(to_host(d_w, stream_), w_ref), kTol) << "w";
      // buf is untouched without momentum, so comparing it covers that rule too.
      EXPECT_LE(relative_error(to_host(d_buf, stream_), buf_ref), kTol) << "buf";
      EXPECT_EQ(to_host(flag, stream_)[0], 0u);
    }
  }
}

TEST_F(CudaSgd, NonFiniteWeightSetsTheFlagWhichStaysSet) {
  const int64_t n = 4097;
  auto w0 = random_normal(size_t(n), 1, 0.1f);
  auto g = random_normal(size_t(n), 2);
  g[4000] = std::numeric_limits<float>::infinity();
  const kernels::SgdHyper<float> h{0.1f, 0.0f, 0.0f, 0.0f};
  std::vector<float> w_ref = w0;
  EXPECT_FALSE(kernels::sgd_update<float>(w_ref.data(), g.data(), nullptr, nullptr, n, h, false));

  auto d_w = to_device(w0, stream_);
  auto d_g = to_device(g, stream_);
  auto flag = to_device(std::vector<uint32_t>{0u}, stream_);
  FEDSILO_ASSERT_OK(
      cu::sgd_update(d_w.data(), d_g.data(), nullptr, nullptr, n, h, false, flag.data(), stream_));
  EXPECT_EQ(to_host(flag, stream_)[0], 1u);
  // A finite update afterwards leaves the flag set (only the caller clears it).
  auto d_g2 = to_device(random_normal(size_t(n), 3), stream_);
  auto d_w2 = to_device(w0, stream_);
  FEDSILO_ASSERT_OK(cu::sgd_update(d_w2.data(), d_g2.data(), nullptr, nullptr, n, h, false,
                                   flag.data(), stream_));
  EXPECT_EQ(to_host(flag, stream_)[0], 1u);
}

// ------------------------------------------------------------------------------------ reduce

class CudaReduce : public GpuTest {};

TEST_F(CudaReduce, AddIntoEqualsCpuExactly) {
  uint64_t seed = 1000;
  for (const int64_t n : {int64_t{1}, int64_t{1000}, (int64_t{1} << 20) + 5}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto a = random_normal(size_t(n), ++seed);
    const auto b = random_normal(size_t(n), ++seed);
    std::vector<float> ref = a;
    kernels::add_into<float>(ref.data(), b.data(), n);
    auto d_a = to_device(a, stream_);
    auto d_b = to_device(b, stream_);
    FEDSILO_ASSERT_OK(cu::add_into(d_a.data(), d_b.data(), n, stream_));
    EXPECT_EQ(to_host(d_a, stream_), ref);
  }
}

TEST_F(CudaReduce, L2NormMatchesCpuAndRepeatsBitwise) {
  uint64_t seed = 1100;
  // 2^22 + 5 needs 2049 blocks at 8 elements per thread: capped at 1024, so threads stride.
  for (const int64_t n :
       {int64_t{0}, int64_t{1}, int64_t{1000}, int64_t{199210}, (int64_t{1} << 22) + 5}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const auto x = random_normal(size_t(std::max<int64_t>(n, 1)), ++seed);
    const double ref = kernels::l2_norm<float>(x.data(), n);
    auto d_x = to_device(x, stream_);
    const int64_t ws_bytes = cu::l2_norm_workspace_bytes(n);
    auto ws = workspace(ws_bytes);
    auto norm = poisoned<float>(1, stream_);
    FEDSILO_ASSERT_OK(cu::l2_norm(d_x.data(), n, norm.data(), ws.data(), ws_bytes, stream_));
    const float got = to_host(norm, stream_)[0];
    // Summed in double on both sides: only the final rounding to float differs.
    EXPECT_NEAR(got, ref, 1e-6 * std::max(1.0, ref));
    for (int run = 0; run < 2; ++run) {
      FEDSILO_ASSERT_OK(cu::l2_norm(d_x.data(), n, norm.data(), ws.data(), ws_bytes, stream_));
      const float again = to_host(norm, stream_)[0];
      EXPECT_EQ(std::memcmp(&again, &got, sizeof(float)), 0) << "run " << run;
    }
  }
}

}  // namespace
}  // namespace fedsilo::test
