// DP-SGD's secret randomness (privacy/dp_random.h): the Ziggurat gives standard normal draws
// (moments, Kolmogorov-Smirnov against Phi, tail masses); the noise of a step has variance
// sigma^2 and is the same whenever that (key, round, step) is regenerated, different otherwise;
// Poisson sampling includes each record with probability q; the silo key is 32 bytes, 0600, and
// read back on resume, with clear errors for a missing or damaged key file.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/thread_team.h"
#include "privacy/dp_random.h"

namespace fedsilo::privacy {
namespace {

double phi(double x) {
  return 0.5 * std::erfc(-x / std::sqrt(2.0));
}

TEST(DpRandom, ZigguratDrawsAreStandardNormal) {
  Philox rng(3, 1, 2, RngPurpose::kNoise);
  auto next = [&rng] { return rng.next_u32(); };
  const Ziggurat z;
  const int n = 1 << 21;
  std::vector<double> v(n);
  double sum = 0.0, sum2 = 0.0, sum4 = 0.0;
  int64_t beyond_r = 0, beyond_4 = 0;
  for (double& x : v) {
    x = z.draw(next);
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
    beyond_r += std::abs(x) > 3.442619855899 ? 1 : 0;
    beyond_4 += std::abs(x) > 4.0 ? 1 : 0;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  // Standard errors: 1/sqrt(n) for the mean, sqrt(2/n) for the variance, sqrt(96/n) for the
  // fourth moment (3): 5 of them is a bound a correct sampler misses once in ~10^6 seeds.
  EXPECT_LT(std::abs(mean), 5.0 / std::sqrt(n));
  EXPECT_LT(std::abs(var - 1.0), 5.0 * std::sqrt(2.0 / n));
  EXPECT_LT(std::abs(sum4 / n - 3.0), 5.0 * std::sqrt(96.0 / n));
  // The tail (layer 0's exponential rejection) and beyond: binomial counts within 5 sigma.
  for (const auto& [count, x] : {std::pair{beyond_r, 3.442619855899}, std::pair{beyond_4, 4.0}}) {
    const double p = 2.0 * phi(-x), expect = p * n;
    EXPECT_LT(std::abs(static_cast<double>(count) - expect), 5.0 * std::sqrt(expect)) << "beyond " << x;
  }
  // Kolmogorov-Smirnov: D below 1.95 / sqrt(n) (p = 0.001).
  std::sort(v.begin(), v.end());
  double d = 0.0;
  for (int i = 0; i < n; ++i) {
    const double f = phi(v[i]);
    d = std::max({d, f - static_cast<double>(i) / n, static_cast<double>(i + 1) / n - f});
  }
  EXPECT_LT(d, 1.95 / std::sqrt(n));
}

TEST(DpRandom, StepNoiseHasVarianceSigmaSquaredAndRegeneratesExactly) {
  auto key = insecure_test_key(11, 2);
  ASSERT_TRUE(key.ok());
  auto r = RoundRandom::create(key.value(), 5);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const double sigma = 1.7;
  const size_t n = 1 << 20;
  std::vector<float> a(n, 0.5f), b(n, 0.5f), c(n, 0.5f);
  ASSERT_TRUE(r->add_gaussian(3, sigma, a).ok());
  ASSERT_TRUE(r->add_gaussian(4, sigma, c).ok());
  ASSERT_TRUE(r->add_gaussian(3, sigma, b).ok());
  EXPECT_EQ(a, b);  // step 3 again: the same noise (a resumed run releases the same step)
  EXPECT_NE(a, c);
  double sum = 0.0, sum2 = 0.0;
  for (float v : a) {
    sum += v - 0.5;
    sum2 += (v - 0.5) * (v - 0.5);
  }
  const double var = sum2 / n - (sum / n) * (sum / n);
  EXPECT_LT(std::abs(sum / n), 5.0 * sigma / std::sqrt(n));
  EXPECT_LT(std::abs(var / (sigma * sigma) - 1.0), 5.0 * std::sqrt(2.0 / n));
  // The vectorised fast path and the rejections together: Kolmogorov-Smirnov (p = 0.001).
  std::vector<double> z(n);
  for (size_t j = 0; j < n; ++j) z[j] = (static_cast<double>(a[j]) - 0.5) / sigma;
  std::sort(z.begin(), z.end());
  double ks = 0.0;
  for (size_t j = 0; j < n; ++j) {
    const double f = phi(z[j]);
    ks = std::max({ks, f - static_cast<double>(j) / n, static_cast<double>(j + 1) / n - f});
  }
  EXPECT_LT(ks, 1.95 / std::sqrt(static_cast<double>(n)));
  // Scaled: (out + sigma z) * scale, the same z.
  std::vector<float> scaled(n, 0.5f);
  ASSERT_TRUE(r->add_gaussian(3, sigma, scaled, nullptr, 0.25f).ok());
  for (size_t j = 0; j < n; j += 997) EXPECT_FLOAT_EQ(scaled[j], a[j] * 0.25f);
  // Another round or another silo's key: other noise.
  auto r6 = RoundRandom::create(key.value(), 6);
  auto other = insecure_test_key(11, 3);
  ASSERT_TRUE(r6.ok() && other.ok());
  auto r_other = RoundRandom::create(other.value(), 5);
  ASSERT_TRUE(r_other.ok());
  std::vector<float> d(n, 0.5f), e(n, 0.5f);
  ASSERT_TRUE(r6->add_gaussian(3, sigma, d).ok());
  ASSERT_TRUE(r_other->add_gaussian(3, sigma, e).ok());
  EXPECT_NE(a, d);
  EXPECT_NE(a, e);
}

// The hardened sampler's exact pieces against their distributions (Philox words as the source).
TEST(DpRandom, ExactBernoulliOfExpAndDiscreteGaussianHaveTheirDistributions) {
  Philox rng(9, 4, 2, RngPurpose::kNoise);
  auto next = [&rng] { return rng.next_u32(); };
  ExactSampler<decltype(next)> exact(next);
  const int n = 200000;
  for (const auto& [num, den] : {std::pair{3, 10}, std::pair{17, 10}, std::pair{0, 1}}) {
    int hits = 0;
    for (int i = 0; i < n; ++i) hits += exact.bernoulli_exp_minus(num, den) ? 1 : 0;
    const double p = std::exp(-static_cast<double>(num) / den);
    EXPECT_LT(std::abs(hits - p * n), 5.0 * std::sqrt(n * p * (1 - p)) + 1e-9) << num << "/" << den;
  }
  // Scale 3: the pmf exp(-x^2 / 18) / Z, chi-square over |x| <= 9 (+ the tail) below the
  // 0.001 quantile of chi-square with 19 degrees of freedom (43.8).
  std::vector<int64_t> counts(21, 0);
  double sum = 0.0, sum2 = 0.0;
  for (int i = 0; i < n; ++i) {
    const int64_t x = exact.discrete_gaussian(3);
    sum += static_cast<double>(x);
    sum2 += static_cast<double>(x * x);
    ++counts[static_cast<size_t>(std::clamp<int64_t>(x, -10, 10) + 10)];
  }
  std::vector<double> p(21, 0.0);
  double z = 0.0;
  for (int x = -60; x <= 60; ++x) z += std::exp(-x * x / 18.0);
  for (int x = -60; x <= 60; ++x) p[static_cast<size_t>(std::clamp(x, -10, 10) + 10)] += std::exp(-x * x / 18.0) / z;
  double chi2 = 0.0;
  for (size_t k = 0; k < p.size(); ++k) {
    const double e = p[k] * n;
    if (e > 5.0) chi2 += (counts[k] - e) * (counts[k] - e) / e;
  }
  EXPECT_LT(chi2, 43.8);
  EXPECT_LT(std::abs(sum / n), 5.0 * 3.0 / std::sqrt(n));
  // A large scale (the sampler's own: 2^16 to 2^18): variance s^2 within 5 standard errors.
  const int64_t s = 70001;
  double v2 = 0.0, v1 = 0.0;
  const int m = 50000;
  for (int i = 0; i < m; ++i) {
    const auto x = static_cast<double>(exact.discrete_gaussian(s));
    v1 += x;
    v2 += x * x;
  }
  const double var = v2 / m - (v1 / m) * (v1 / m);
  EXPECT_LT(std::abs(var / (static_cast<double>(s) * s) - 1.0), 5.0 * std::sqrt(2.0 / m));
}

// The hardened noise: every output is (an integer) x lambda x scale, the integer's spread is the
// grid's scale (at least sigma C in units of lambda), and a step regenerates exactly.
TEST(DpRandom, DiscreteNoiseLiesOnTheGridWithTheScaleItPaysFor) {
  auto key = insecure_test_key(5, 1);
  ASSERT_TRUE(key.ok());
  auto r = RoundRandom::create(key.value(), 2);
  ASSERT_TRUE(r.ok());
  const size_t n = 40000;  // three segments
  const double sigma = 1.3, clip = 0.8;
  const auto grid = RoundRandom::discrete_grid(sigma, clip, n);
  EXPECT_EQ(grid.lambda, std::exp2(std::floor(std::log2(sigma * clip / 65536.0))));
  EXPECT_GE(static_cast<double>(grid.scale) * grid.lambda, sigma * (clip + std::sqrt(n) * grid.lambda));
  std::vector<float> a(n), b(n);
  for (size_t j = 0; j < n; ++j) a[j] = b[j] = 0.37f * static_cast<float>(j % 7);
  const std::vector<float> before = a;
  kernels::ThreadTeam team(2);
  ASSERT_TRUE(r->add_discrete_gaussian(4, sigma, clip, a, &team).ok());
  ASSERT_TRUE(r->add_discrete_gaussian(4, sigma, clip, b, nullptr).ok());
  EXPECT_EQ(a, b);  // the same step, on 2 threads or 1
  double sum2 = 0.0;
  for (size_t j = 0; j < n; ++j) {
    const double units = static_cast<double>(a[j]) / grid.lambda;
    ASSERT_EQ(units, std::nearbyint(units)) << j;  // on the grid
    const double noise = units - std::nearbyint(static_cast<double>(before[j]) / grid.lambda);
    sum2 += noise * noise;
  }
  const double s = static_cast<double>(grid.scale);
  EXPECT_LT(std::abs(sum2 / n / (s * s) - 1.0), 5.0 * std::sqrt(2.0 / n));
  std::vector<float> c(n, 0.0f);
  ASSERT_TRUE(r->add_discrete_gaussian(5, sigma, clip, c, nullptr).ok());
  EXPECT_NE(std::vector<float>(a.begin(), a.begin() + 100), std::vector<float>(c.begin(), c.begin() + 100));
}

TEST(DpRandom, PoissonSamplingIncludesEachRecordWithProbabilityQ) {
  auto key = insecure_test_key(1, 0);
  ASSERT_TRUE(key.ok());
  auto r = RoundRandom::create(key.value(), 1);
  ASSERT_TRUE(r.ok());
  const int64_t n = 6000;
  const double q = 64.0 / n;
  const int steps = 400;
  std::vector<int64_t> hits(n, 0), idx, again;
  double total = 0.0, total2 = 0.0;
  for (uint32_t s = 0; s < steps; ++s) {
    ASSERT_TRUE(r->poisson_sample(s, n, q, idx).ok());
    ASSERT_TRUE(std::is_sorted(idx.begin(), idx.end()));
    for (int64_t i : idx) ++hits[i];
    total += static_cast<double>(idx.size());
    total2 += static_cast<double>(idx.size()) * static_cast<double>(idx.size());
  }
  // Batch sizes: Binomial(n, q), mean 64, variance n q (1 - q).
  const double mean = total / steps, var = total2 / steps - mean * mean;
  EXPECT_LT(std::abs(mean - n * q), 5.0 * std::sqrt(n * q * (1 - q) / steps));
  EXPECT_GT(var, 0.7 * n * q * (1 - q));
  EXPECT_LT(var, 1.3 * n * q * (1 - q));
  // Each record's count over the steps: mean steps q, no record favoured (chi-square-like bound
  // on the spread of the counts).
  double dev2 = 0.0;
  for (int64_t h : hits) dev2 += (h - steps * q) * (h - steps * q) / (steps * q * (1 - q));
  EXPECT_LT(std::abs(dev2 / n - 1.0), 5.0 * std::sqrt(2.0 / n));
  ASSERT_TRUE(r->poisson_sample(7, n, q, again).ok());
  ASSERT_TRUE(r->poisson_sample(7, n, q, idx).ok());
  EXPECT_EQ(again, idx);
  ASSERT_TRUE(r->poisson_sample(0, n, 0.0, idx).ok());
  EXPECT_TRUE(idx.empty());
  ASSERT_TRUE(r->poisson_sample(0, 100, 1.0, idx).ok());
  EXPECT_EQ(idx.size(), 100u);
  EXPECT_FALSE(r->poisson_sample(0, 100, 1.5, idx).ok());
}

TEST(DpRandom, KeyIsMadeOnceWith0600AndReadBackOnResume) {
  const std::string dir = testing::TempDir() + "/dp_key_test_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto missing = load_or_create_key(dir, true);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir + "/dp.key"), std::string::npos)
      << missing.status().message();
  auto made = load_or_create_key(dir, false);
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/dp.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_size, 32);
  auto read = load_or_create_key(dir, true);
  ASSERT_TRUE(read.ok()) << read.status().to_string();
  EXPECT_EQ(std::vector<uint8_t>(made->data(), made->data() + 32),
            std::vector<uint8_t>(read->data(), read->data() + 32));
  // A fresh start draws a new key.
  auto fresh = load_or_create_key(dir, false);
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(std::vector<uint8_t>(made->data(), made->data() + 32),
            std::vector<uint8_t>(fresh->data(), fresh->data() + 32));
  std::ofstream(dir + "/dp.key", std::ios::trunc) << "short";
  auto damaged = load_or_create_key(dir, true);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.status().message().find("is not 32 bytes"), std::string::npos)
      << damaged.status().message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fedsilo::privacy
