// Helpers of the GPU tests: every test compares a CUDA kernel with its CPU twin (kernels/cpu) on
// fresh random inputs, with outputs poisoned first so unwritten elements show. Without a CUDA
// device each test is skipped with the reason (ctest reports it as skipped).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "kernels/cuda/device.h"
#include "kernels/cuda/device_info.h"

namespace fedsilo::test {

/// Base fixture: skips without a device; a stream per test.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kernels::cuda::device_count() == 0) {
      GTEST_SKIP() << "no CUDA device (GPU tests run on the GPU machine: benchmarks/gpu/run.sh)";
    }
    ASSERT_TRUE(kernels::cuda::set_device(0).ok());
    auto s = kernels::cuda::create_stream();
    ASSERT_TRUE(s.ok()) << s.status().message();
    stream_ = s.value();
  }
  void TearDown() override { kernels::cuda::destroy_stream(stream_); }
  kernels::cuda::Stream stream_;
};

/// N(0, sigma) floats from a fixed seed (fresh per test through `seed`).
inline std::vector<float> random_normal(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

/// ||a - b|| / ||b|| over the whole arrays (0 when both are zero); NaN anywhere gives +inf.
inline double relative_error(std::span<const float> a, std::span<const float> b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (a.size() != b.size()) return INFINITY;
  return den == 0.0 ? std::sqrt(num) : std::sqrt(num / den);
}

/// A device array of n elements filled with 0xFF bytes (NaN for floats, all ones for integers).
template <class T>
kernels::cuda::DeviceArray<T> poisoned(size_t n, kernels::cuda::Stream s = {}) {
  auto a = kernels::cuda::DeviceArray<T>::create(n);
  EXPECT_TRUE(a.ok()) << a.status().message();
  if (!a.ok()) return {};
  EXPECT_TRUE(kernels::cuda::fill_bytes(a->data(), 0xFF, n * sizeof(T), s).ok());
  return std::move(a).value();
}

template <class T>
std::vector<T> to_host(const kernels::cuda::DeviceArray<T>& a, kernels::cuda::Stream s = {}) {
  std::vector<T> h(a.size());
  EXPECT_TRUE(a.to_host(h, s).ok());
  return h;
}

template <class T>
kernels::cuda::DeviceArray<T> to_device(const std::vector<T>& h, kernels::cuda::Stream s = {}) {
  auto a = kernels::cuda::DeviceArray<T>::from_host(std::span<const T>(h), s);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? std::move(a).value() : kernels::cuda::DeviceArray<T>{};
}

}  // namespace fedsilo::test
