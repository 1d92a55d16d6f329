// The standard normal CDF in log space and its inverse (scipy's log_ndtr and ndtri, rewritten).
#include "privacy/normal.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace fedsilo::privacy {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// log sqrt(2 pi)
constexpr double kLogSqrt2Pi = 0.91893853320467274178;

double log_pdf(double x) { return -0.5 * x * x - kLogSqrt2Pi; }

// Acklam's rational approximation of the quantile (relative error below 1.2e-9), the start of
// the Newton steps in normal_quantile.
double acklam_quantile(double p) {
  constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                          1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                          6.680131188771972e+01,  -1.328068155288572e+01};
  constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                          -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                          3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  if (p < kLow || p > 1.0 - kLow) {
    const double tail = p < kLow ? p : 1.0 - p;
    const double q = std::sqrt(-2.0 * std::log(tail));
    const double x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
                     ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    return p < kLow ? x : -x;
  }
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
}

}  // namespace

double normal_cdf(double x) { return 0.5 * std::erfc(-x * std::numbers::sqrt2 / 2.0); }

double normal_log_cdf(double x) {
  if (std::isnan(x)) return x;
  if (x == kInf) return 0.0;
  if (x == -kInf) return -kInf;
  // Upper side: Phi(x) = 1 - Phi(-x) with Phi(-x) small and exact: log1p keeps its digits.
  if (x > 6.0) return std::log1p(-normal_cdf(-x));
  // Middle: erfc is accurate relative to its value (Phi(-20) = 2.8e-89, far from underflow).
  if (x > -20.0) return std::log(normal_cdf(x));
  // Lower tail: the asymptotic series log Phi(x) = log phi(x) - log(-x)
  // + log(1 + sum_n (-1)^n (2n-1)!! / x^(2n)); at x <= -20 its terms shrink by at least
  // (2n+1)/400 each, so 12 terms reach 1e-27, far below double precision.
  const double inv_x2 = 1.0 / (x * x);
  double term = 1.0, sum = 0.0;
  for (int n = 1; n <= 12; ++n) {
    term *= -(2.0 * n - 1.0) * inv_x2;
    sum += term;
  }
  return log_pdf(x) - std::log(-x) + std::log1p(sum);
}

double normal_quantile(double p) {
  if (std::isnan(p) || p < 0.0 || p > 1.0) return std::numeric_limits<double>::quiet_NaN();
  if (p == 0.0) return -kInf;
  if (p == 1.0) return kInf;
  if (p > 0.5) return -normal_quantile(1.0 - p);
  // Newton's method on log Phi(x) = log p from Acklam's start: the step is
  // (log Phi(x) - log p) Phi(x) / phi(x), which stays accurate where Phi(x) is tiny.
  const double log_p = std::log(p);
  double x = acklam_quantile(p);
  for (int i = 0; i < 50; ++i) {
    const double log_cdf = normal_log_cdf(x);
    const double step = (log_cdf - log_p) * std::exp(log_cdf - log_pdf(x));
    x -= step;
    if (std::fabs(step) <= 1e-15 * std::fmax(1.0, std::fabs(x))) break;
  }
  return x;
}

double log_erfc(double x) { return std::numbers::ln2 + normal_log_cdf(-x * std::numbers::sqrt2); }

}  // namespace fedsilo::privacy
