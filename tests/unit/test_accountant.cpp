// Tests of the differential-privacy accountants (src/privacy/) and `fedsilo privacy`
// (cli::run_privacy). The reference values come from the public libraries the accountants
// follow, computed by benchmarks/privacy/reference_values.py (Opacus 1.4.0, dp_accounting
// 0.6.0): its output is benchmarks/privacy/reference_values.json, read here; the headline
// numbers are also constants below.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numbers>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/fs.h"
#include "privacy/accountant.h"
#include "privacy/fft.h"
#include "privacy/normal.h"

namespace fedsilo::privacy {
namespace {

// Opacus's README example: q = 0.04, sigma = 1.5, 2250 steps (90 epochs), delta = 1e-5.
constexpr double kOpacusEpsilon = 7.3291111714386545;  // best order 3.9
// TF-Privacy's test value: q = 150 / 60000, sigma = 1.3, 6000 steps, delta = 1e-5.
constexpr double kTfPrivacyEpsilon = 0.7242234026109339;  // best order 19
// dp_accounting's PLDAccountant on the same two runs (value_discretization_interval = 1e-4).
constexpr double kOpacusCasePld = 6.768787373891152;
constexpr double kTfPrivacyCasePld = 0.6401109264445614;

const nlohmann::json& reference() {
  static const nlohmann::json j = [] {
    auto text = fs::read_text(std::string(FEDSILO_SOURCE_DIR) +
                              "/benchmarks/privacy/reference_values.json");
    EXPECT_TRUE(text.ok()) << text.status().to_string();
    return text.ok() ? nlohmann::json::parse(text.value()) : nlohmann::json::object();
  }();
  return j;
}

double rel_err(double got, double want) {
  if (got == want) return 0.0;
  return std::fabs(got - want) / std::fmax(std::fabs(want), 1e-300);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The exact epsilon of one Gaussian mechanism of sensitivity 1 and noise s at delta (Balle and
// Wang 2018): delta(eps) = Phi(-eps s + 1/(2s)) - e^eps Phi(-eps s - 1/(2s)), decreasing in
// eps, inverted by bisection to the last bit.
double exact_gaussian_epsilon(double s, double delta) {
  auto delta_of = [s](double eps) {
    return normal_cdf(-eps * s + 0.5 / s) - std::exp(eps) * normal_cdf(-eps * s - 0.5 / s);
  };
  double lo = 0.0, hi = 1.0;
  while (delta_of(hi) > delta) hi *= 2.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (delta_of(mid) > delta ? lo : hi) = mid;
  }
  return hi;
}

TEST(Normal, QuantileAndLogCdfMatchScipyDeepInTheTails) {
  // scipy.special: ndtri, norm.ppf(0.5 e^-50) (dp_accounting's noise truncation), log_ndtr.
  EXPECT_LT(rel_err(normal_quantile(0.025), -1.9599639845400545), 1e-14);
  EXPECT_LT(rel_err(normal_quantile(1e-10), -6.361340902404056), 1e-14);
  EXPECT_LT(rel_err(normal_quantile(0.5 * std::exp(-50.0)), -9.745474864965935), 1e-14);
  EXPECT_LT(rel_err(normal_quantile(0.975), 1.9599639845400545), 1e-14);
  EXPECT_EQ(normal_quantile(0.0), -INFINITY);
  EXPECT_TRUE(std::isnan(normal_quantile(1.5)));
  EXPECT_LT(rel_err(normal_log_cdf(-30.0), -454.32124395634327), 1e-14);
  EXPECT_LT(rel_err(normal_log_cdf(-19.5), -194.01696577749752), 1e-14);
  EXPECT_LT(rel_err(normal_log_cdf(-5.0), -15.064998393988727), 1e-14);
  EXPECT_LT(rel_err(normal_log_cdf(7.0), -1.2798125438866539e-12), 1e-12);
  EXPECT_LT(rel_err(normal_log_cdf(10.0), -7.61985302416047e-24), 1e-12);
  // Continuous across the switch to the asymptotic series at -20.
  EXPECT_LT(rel_err(normal_log_cdf(-20.0 - 1e-12), normal_log_cdf(-20.0 + 1e-12)), 1e-12);
}

TEST(Fft, ComplexTransformMatchesTheDirectDftAndInvertsIt) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<std::complex<double>> a(64);
  for (auto& v : a) v = {u(rng), u(rng)};
  std::vector<std::complex<double>> f = a;
  ASSERT_TRUE(fft(f, false).ok());
  for (size_t k = 0; k < a.size(); ++k) {
    std::complex<double> direct = 0.0;
    for (size_t j = 0; j < a.size(); ++j) {
      const double angle = -2.0 * std::numbers::pi * static_cast<double>(j * k % 64) / 64.0;
      direct += a[j] * std::polar(1.0, angle);
    }
    EXPECT_LT(std::abs(f[k] - direct), 1e-13) << k;
  }
  ASSERT_TRUE(fft(f, true).ok());
  for (size_t j = 0; j < a.size(); ++j) EXPECT_LT(std::abs(f[j] - a[j]), 1e-15) << j;
  std::vector<std::complex<double>> odd(12);
  const Status st = fft(odd, false);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("power of two"), std::string::npos) << st.message();
}

TEST(Fft, RealConvolutionMatchesTheDirectSum) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> a(300), b(211);
  for (double& v : a) v = u(rng);
  for (double& v : b) v = u(rng);
  const size_t n = next_power_of_two(a.size() + b.size() - 1);
  ASSERT_EQ(n, 512u);
  auto plan = RealFft::create(n);
  ASSERT_TRUE(plan.ok());
  std::vector<double> xa(n, 0.0), xb(n, 0.0);
  std::copy(a.begin(), a.end(), xa.begin());
  std::copy(b.begin(), b.end(), xb.begin());
  std::vector<std::complex<double>> fa(n / 2 + 1), fb(n / 2 + 1);
  ASSERT_TRUE(plan->forward(xa, fa).ok());
  ASSERT_TRUE(plan->forward(xb, fb).ok());
  // The half spectrum against the full complex transform.
  std::vector<std::complex<double>> full(n);
  for (size_t i = 0; i < n; ++i) full[i] = xa[i];
  ASSERT_TRUE(fft(full, false).ok());
  for (size_t k = 0; k <= n / 2; ++k) EXPECT_LT(std::abs(fa[k] - full[k]), 1e-11) << k;
  for (size_t k = 0; k <= n / 2; ++k) fa[k] *= fb[k];
  ASSERT_TRUE(plan->inverse(fa, xa).ok());
  double max_err = 0.0;
  for (size_t k = 0; k < n; ++k) {
    double direct = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
      if (k >= i && k - i < b.size()) direct += a[i] * b[k - i];
    }
    max_err = std::fmax(max_err, std::fabs(xa[k] - direct));
  }
  // Sums of up to 211 products of [0, 1) values (about 50): errors of a few ulps of 50.
  EXPECT_LT(max_err, 1e-12);
  EXPECT_FALSE(RealFft::create(1).ok());
  EXPECT_EQ(plan->forward(xa, std::span<std::complex<double>>(fa).first(4)).code(),
            StatusCode::kInvalidArgument);
}

TEST(Rdp, DefaultOrdersAreOpacus) {
  const std::vector<double> orders = default_rdp_orders();
  ASSERT_EQ(orders.size(), 151u);  // 99 fractional + 52 integer
  EXPECT_EQ(orders.front(), 1.1);
  EXPECT_EQ(orders[98], 10.9);
  EXPECT_EQ(orders[99], 12.0);
  EXPECT_EQ(orders.back(), 63.0);
  EXPECT_EQ(orders, reference()["default_orders"].get<std::vector<double>>());
}

TEST(Rdp, MatchesOpacusAndTfPrivacyReferenceValues) {
  auto opacus = rdp_epsilon_and_order(0.04, 1.5, 2250, 1e-5);
  ASSERT_TRUE(opacus.ok()) << opacus.status().to_string();
  EXPECT_LT(rel_err(opacus->epsilon, kOpacusEpsilon), 1e-9) << opacus->epsilon;
  EXPECT_EQ(opacus->order, 3.9);
  auto tf = rdp_epsilon_and_order(150.0 / 60000.0, 1.3, 6000, 1e-5);
  ASSERT_TRUE(tf.ok()) << tf.status().to_string();
  EXPECT_LT(rel_err(tf->epsilon, kTfPrivacyEpsilon), 1e-9) << tf->epsilon;
  EXPECT_EQ(tf->order, 19.0);
  for (const auto& h : reference()["headline"]) {
    auto eps = rdp_epsilon(h["q"], h["sigma"], h["steps"], h["delta"]);
    ASSERT_TRUE(eps.ok());
    EXPECT_LT(rel_err(eps.value(), h["rdp_epsilon"]), 1e-9);
  }
}

// Per-order RDP of one step against Opacus (every order; fractional ones summed with signs) and
// dp_accounting (integer orders), within 1e-7 relative. The smallest values (q = 0.001,
// sigma = 4, order 1.1: 3e-8) are log(A) of an A within 1e-9 of 1: a few ulps of A are
// 1e-16 / 3e-9 = 3e-8 of the value, so 1e-7 relative is about what double precision allows.
TEST(Rdp, PerOrderValuesMatchOpacusAndDpAccounting) {
  double worst_opacus = 0.0, worst_dp = 0.0;
  const auto orders = reference()["rdp_orders"].get<std::vector<double>>();
  for (const auto& c : reference()["rdp_per_order"]) {
    const double q = c["q"], sigma = c["sigma"];
    SCOPED_TRACE("q " + std::to_string(q) + " sigma " + std::to_string(sigma));
    const auto opacus = c["opacus"].get<std::vector<double>>();
    auto rdp = rdp_of_sampled_gaussian(q, sigma, 1, orders);
    ASSERT_TRUE(rdp.ok()) << rdp.status().to_string();
    std::vector<double> rdp_ints;
    for (size_t i = 0; i < orders.size(); ++i) {
      EXPECT_LT(rel_err(rdp.value()[i], opacus[i]), 1e-7) << "order " << orders[i];
      worst_opacus = std::fmax(worst_opacus, rel_err(rdp.value()[i], opacus[i]));
      if (orders[i] == std::floor(orders[i])) rdp_ints.push_back(rdp.value()[i]);
    }
    const auto dp = c["dp_accounting"].get<std::vector<double>>();
    ASSERT_EQ(dp.size(), rdp_ints.size());
    for (size_t i = 0; i < dp.size(); ++i) {
      EXPECT_LT(rel_err(rdp_ints[i], dp[i]), 1e-7);
      worst_dp = std::fmax(worst_dp, rel_err(rdp_ints[i], dp[i]));
    }
  }
  std::printf("  worst relative difference per order: Opacus %.2e, dp_accounting %.2e\n",
              worst_opacus, worst_dp);
}

TEST(Rdp, EpsilonMatchesOpacusOverTheGrid) {
  const auto extra = reference()["extra_orders"].get<std::vector<double>>();
  double worst = 0.0;
  int cases = 0;
  for (const auto& c : reference()["rdp_grid"]) {
    const double q = c["q"], sigma = c["sigma"], delta = c["delta"];
    const int64_t steps = c["steps"];
    SCOPED_TRACE(c.dump());
    auto r = rdp_epsilon_and_order(q, sigma, steps, delta);
    ASSERT_TRUE(r.ok()) << r.status().to_string();
    EXPECT_LT(rel_err(r->epsilon, c["epsilon"]), 1e-7);
    EXPECT_EQ(r->order, c["order"].get<double>());
    auto x = rdp_epsilon_and_order(q, sigma, steps, delta, extra);
    ASSERT_TRUE(x.ok()) << x.status().to_string();
    EXPECT_LT(rel_err(x->epsilon, c["epsilon_extra_orders"]), 1e-7);
    EXPECT_EQ(x->order, c["order_extra_orders"].get<double>());
    worst = std::fmax(worst, std::fmax(rel_err(r->epsilon, c["epsilon"]),
                                       rel_err(x->epsilon, c["epsilon_extra_orders"])));
    ++cases;
  }
  EXPECT_EQ(cases, 120);
  std::printf("  %d cases, worst relative difference in epsilon %.2e\n", cases, worst);
}

TEST(Rdp, SpendsNothingWithoutSamplingOrStepsAndIsExactAtFullSampling) {
  auto none = rdp_epsilon_and_order(0.0, 1.0, 1000, 1e-5);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->epsilon, 0.0);
  EXPECT_EQ(none->order, 0.0);
  auto no_steps = rdp_epsilon(0.5, 1.0, 0, 1e-5);
  ASSERT_TRUE(no_steps.ok());
  EXPECT_EQ(no_steps.value(), 0.0);
  // q = 1: the Gaussian mechanism's RDP alpha / (2 sigma^2) per step, exactly.
  const std::vector<double> orders = {1.5, 2.0, 32.0};
  auto full = rdp_of_sampled_gaussian(1.0, 2.0, 10, orders);
  ASSERT_TRUE(full.ok());
  for (size_t i = 0; i < orders.size(); ++i) EXPECT_EQ(full.value()[i], 10 * orders[i] / 8.0);
  // The conversion clamps at 0: a huge delta makes the bound negative.
  auto clamped = epsilon_from_rdp(orders, std::vector<double>{0.0, 0.0, 0.0}, 0.99);
  ASSERT_TRUE(clamped.ok());
  EXPECT_EQ(clamped->epsilon, 0.0);
}

TEST(Pld, MatchesDpAccountingOverTheGrid) {
  double worst = 0.0, total_seconds = 0.0, slowest = 0.0;
  int cases = 0;
  for (const auto& c : reference()["pld_grid"]) {
    SCOPED_TRACE(c.dump());
    const auto t0 = std::chrono::steady_clock::now();
    auto eps = pld_epsilon(c["q"], c["sigma"], c["steps"], c["delta"]);
    const double s = seconds_since(t0);
    ASSERT_TRUE(eps.ok()) << eps.status().to_string();
    EXPECT_LT(rel_err(eps.value(), c["epsilon"]), 1e-3) << eps.value();
    worst = std::fmax(worst, rel_err(eps.value(), c["epsilon"]));
    total_seconds += s;
    slowest = std::fmax(slowest, s);
    ++cases;
  }
  EXPECT_EQ(cases, 27);
  std::printf("  %d cases, worst relative difference %.2e, %.3f s in all, slowest %.3f s\n", cases,
              worst, total_seconds, slowest);
}

TEST(Pld, MatchesDpAccountingOnTheReferenceRunsQuickly) {
  const auto t0 = std::chrono::steady_clock::now();
  auto tf = pld_epsilon(150.0 / 60000.0, 1.3, 6000, 1e-5);
  const double tf_seconds = seconds_since(t0);
  ASSERT_TRUE(tf.ok()) << tf.status().to_string();
  EXPECT_LT(rel_err(tf.value(), kTfPrivacyCasePld), 1e-3) << tf.value();
  // PLD is the tighter accountant: below RDP on both runs.
  EXPECT_LT(tf.value(), kTfPrivacyEpsilon);
  const auto t1 = std::chrono::steady_clock::now();
  auto op = pld_epsilon(0.04, 1.5, 2250, 1e-5);
  const double op_seconds = seconds_since(t1);
  ASSERT_TRUE(op.ok()) << op.status().to_string();
  EXPECT_LT(rel_err(op.value(), kOpacusCasePld), 1e-3) << op.value();
  EXPECT_LT(op.value(), kOpacusEpsilon);
  std::printf("  6000 steps: epsilon %.9g in %.3f s; 2250 steps: epsilon %.9g in %.3f s\n",
              tf.value(), tf_seconds, op.value(), op_seconds);
}

// q = 1: T Gaussian steps of noise sigma are one Gaussian of noise sigma / sqrt(T), whose
// epsilon is exact. The pessimistic PLD never goes below it and stays within 1e-3.
TEST(Pld, IsNeverBelowTheExactGaussianEpsilon) {
  for (const auto& c : reference()["gaussian_exact"]) {
    SCOPED_TRACE(c.dump());
    const double sigma = c["sigma"], delta = c["delta"];
    const int64_t steps = c["steps"];
    const double s = sigma / std::sqrt(static_cast<double>(steps));
    const double exact = exact_gaussian_epsilon(s, delta);
    EXPECT_LT(rel_err(exact, c["exact_epsilon"]), 1e-9);  // this test's bisection = scipy's
    auto eps = pld_epsilon(1.0, sigma, steps, delta);
    ASSERT_TRUE(eps.ok()) << eps.status().to_string();
    EXPECT_GE(eps.value(), exact);
    EXPECT_LT(rel_err(eps.value(), exact), 1e-3);
    EXPECT_LT(rel_err(eps.value(), c["pld_epsilon"]), 1e-3);
    // And the other way round: the PLD's delta at the exact epsilon is at least delta.
    auto d = pld_delta(1.0, sigma, steps, exact);
    ASSERT_TRUE(d.ok());
    EXPECT_GE(d.value(), delta * (1.0 - 1e-12));
  }
}

TEST(Pld, SpendsNothingWithoutSamplingOrSteps) {
  auto none = pld_epsilon(0.0, 1.0, 100, 1e-5);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), 0.0);
  auto no_steps = pld_epsilon(0.3, 1.0, 0, 1e-5);
  ASSERT_TRUE(no_steps.ok());
  EXPECT_EQ(no_steps.value(), 0.0);
}

TEST(Pld, RefusesAGridTooLargeToAllocate) {
  // Noise 0.01 at q = 1: one step's losses span about 2 x 9.7 / 0.01^2 = 2e5, i.e. 2e9 points.
  auto eps = pld_epsilon(1.0, 0.01, 10, 1e-5);
  ASSERT_FALSE(eps.ok());
  EXPECT_EQ(eps.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(eps.status().message().find("RDP accountant"), std::string::npos)
      << eps.status().message();
}

TEST(NoiseForEpsilon, RoundTripsWithBothAccountants) {
  auto sigma = noise_for_epsilon(Accountant::kRdp, kOpacusEpsilon, 0.04, 2250, 1e-5);
  ASSERT_TRUE(sigma.ok()) << sigma.status().to_string();
  EXPECT_LT(rel_err(sigma.value(), 1.5), 1e-3) << sigma.value();
  auto eps = rdp_epsilon(0.04, sigma.value(), 2250, 1e-5);
  ASSERT_TRUE(eps.ok());
  EXPECT_LE(eps.value(), kOpacusEpsilon);
  EXPECT_GE(eps.value(), kOpacusEpsilon * (1.0 - kNoiseSearchTolerance));

  auto pld_sigma = noise_for_epsilon(Accountant::kPld, 2.0, 0.01, 1000, 1e-5);
  ASSERT_TRUE(pld_sigma.ok()) << pld_sigma.status().to_string();
  auto pld_eps = pld_epsilon(0.01, pld_sigma.value(), 1000, 1e-5);
  ASSERT_TRUE(pld_eps.ok());
  EXPECT_LE(pld_eps.value(), 2.0);
  EXPECT_GE(pld_eps.value(), 2.0 * (1.0 - kNoiseSearchTolerance));
  // Nothing spent, no noise needed.
  auto none = noise_for_epsilon(Accountant::kRdp, 1.0, 0.0, 100, 1e-5);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value(), 0.0);
}

TEST(NoiseForEpsilon, ReportsATargetNoNoiseReaches) {
  // RDP over orders up to 63 never certifies less than (log 1e5 - log 63) / 62 + log(62 / 63)
  // = 0.103 at delta = 1e-5, however large the noise.
  auto sigma = noise_for_epsilon(Accountant::kRdp, 0.05, 0.01, 100, 1e-5);
  ASSERT_FALSE(sigma.ok());
  EXPECT_EQ(sigma.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(sigma.status().message().find("target epsilon 0.05 is out of reach"), std::string::npos)
      << sigma.status().message();
  // A bound of the search that is too small for the target.
  auto capped = noise_for_epsilon(Accountant::kRdp, 1.0, 0.04, 2250, 1e-5, 2.0);
  ASSERT_FALSE(capped.ok());
  EXPECT_NE(capped.status().message().find("even noise multiplier 2 gives epsilon"),
            std::string::npos)
      << capped.status().message();
}

void expect_invalid(const Status& st, const std::string& needle) {
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.to_string();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST(Accountants, RejectBadInputsNamingTheParameter) {
  expect_invalid(rdp_epsilon(-0.1, 1.0, 10, 1e-5).status(),
                 "sample rate q must be in [0, 1], got -0.1");
  expect_invalid(rdp_epsilon(1.5, 1.0, 10, 1e-5).status(), "sample rate q");
  expect_invalid(pld_epsilon(NAN, 1.0, 10, 1e-5).status(), "sample rate q");
  expect_invalid(rdp_epsilon(0.1, 0.0, 10, 1e-5).status(),
                 "noise multiplier must be finite and > 0, got 0");
  expect_invalid(pld_epsilon(0.1, -1.0, 10, 1e-5).status(), "noise multiplier");
  expect_invalid(rdp_epsilon(0.1, 1.0, -1, 1e-5).status(), "steps must be >= 0, got -1");
  expect_invalid(rdp_epsilon(0.1, 1.0, 10, 0.0).status(), "delta must be in (0, 1), got 0");
  expect_invalid(pld_epsilon(0.1, 1.0, 10, 1.0).status(), "delta must be in (0, 1), got 1");
  expect_invalid(pld_epsilon(0.1, 1.0, 10, 1e-5, 0.0).status(), "value discretization must be");
  expect_invalid(pld_delta(0.1, 1.0, 10, -1.0).status(), "epsilon must be >= 0");
  const std::vector<double> bad_order = {1.0};
  expect_invalid(rdp_epsilon(0.1, 1.0, 10, 1e-5, bad_order).status(),
                 "RDP order must be in (1, 10000], got 1");
  expect_invalid(noise_for_epsilon(Accountant::kRdp, 0.0, 0.1, 10, 1e-5).status(),
                 "target epsilon must be finite and > 0, got 0");
  expect_invalid(noise_for_epsilon(Accountant::kPld, 1.0, 2.0, 10, 1e-5).status(), "sample rate q");
  expect_invalid(parse_accountant("moments").status(),
                 "unknown accountant 'moments' (expected rdp or pld)");
  auto pld = parse_accountant("pld");
  ASSERT_TRUE(pld.ok());
  EXPECT_EQ(pld.value(), Accountant::kPld);
  EXPECT_STREQ(accountant_name(pld.value()), "pld");
}

}  // namespace
}  // namespace fedsilo::privacy

namespace fedsilo::cli {
namespace {

struct Captured {
  int rc = 0;
  std::string out, err;
};

Captured run(const PrivacyArgs& a) {
  Captured c;
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  c.rc = run_privacy(a);
  c.out = ::testing::internal::GetCapturedStdout();
  c.err = ::testing::internal::GetCapturedStderr();
  return c;
}

TEST(PrivacyCli, PrintsTheOpacusEpsilonAsTextAndJson) {
  PrivacyArgs a;
  a.sample_rate = 0.04;
  a.noise_multiplier = 1.5;
  a.epochs = 90;  // 90 / 0.04 = 2250 steps (not 2251: 0.04 is inexact in binary)
  Captured c = run(a);
  ASSERT_EQ(c.rc, 0) << c.err;
  EXPECT_NE(c.out.find("steps             2250 (90 epochs)"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("epsilon           7.3291112 (best RDP order 3.9)"), std::string::npos)
      << c.out;

  a.epochs.reset();
  a.sample_rate.reset();
  a.batch_size = 2400;
  a.dataset_size = 60000;
  a.steps = 2250;
  a.json = true;
  c = run(a);
  ASSERT_EQ(c.rc, 0) << c.err;
  const auto j = nlohmann::json::parse(c.out);
  EXPECT_EQ(j["accountant"], "rdp");
  EXPECT_EQ(j["sample_rate"].get<double>(), 0.04);
  EXPECT_EQ(j["steps"].get<int64_t>(), 2250);
  EXPECT_LT(std::fabs(j["epsilon"].get<double>() - 7.3291111714386545), 1e-8);
  EXPECT_EQ(j["rdp_order"].get<double>(), 3.9);
}

TEST(PrivacyCli, FindsTheNoiseForATargetEpsilon) {
  PrivacyArgs a;
  a.sample_rate = 0.04;
  a.target_epsilon = 7.3291111714386545;
  a.steps = 2250;
  a.json = true;
  Captured c = run(a);
  ASSERT_EQ(c.rc, 0) << c.err;
  const auto j = nlohmann::json::parse(c.out);
  EXPECT_NEAR(j["noise_multiplier"].get<double>(), 1.5, 1.5e-3);
  EXPECT_LE(j["epsilon"].get<double>(), 7.3291111714386545);
}

TEST(PrivacyCli, ReportsBadFlagsWithExitCodeTwo) {
  PrivacyArgs a;
  a.noise_multiplier = 1.0;
  a.steps = 10;
  Captured c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_EQ(c.err, "fedsilo privacy: error: give --sample-rate Q, or --batch-size B with "
                   "--dataset-size N\n");
  a.sample_rate = 1.5;
  c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_EQ(c.err, "fedsilo privacy: error: --sample-rate must be in [0, 1], got 1.5\n");
  a.sample_rate = 0.01;
  a.accountant = "moments";
  c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_EQ(c.err, "fedsilo privacy: error: unknown accountant 'moments' (expected rdp or pld)\n");
  a.accountant = "pld";
  a.orders = {80.0};
  c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_NE(c.err.find("--orders applies to the rdp accountant only"), std::string::npos) << c.err;
  a.orders.clear();
  a.target_epsilon = 1.0;
  c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_NE(c.err.find("give --noise-multiplier S"), std::string::npos) << c.err;
  a.noise_multiplier.reset();
  a.accountant = "rdp";
  a.target_epsilon = 0.05;
  c = run(a);
  EXPECT_EQ(c.rc, 2);
  EXPECT_NE(c.err.find("target epsilon 0.05 is out of reach"), std::string::npos) << c.err;
}

}  // namespace
}  // namespace fedsilo::cli
