// RDP of the Poisson-subsampled Gaussian (Opacus's analysis/rdp.py, rewritten in C++).
#include "privacy/rdp.h"

#include <cmath>
#include <limits>
#include <numbers>
#include <string>

#include "privacy/normal.h"
#include "privacy/params.h"

namespace fedsilo::privacy {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Terms of the fractional series summed at most; Opacus has no bound, dp_accounting stops at
// 1000 (the series of orders up to kMaxRdpOrder settle within a few times the order).
constexpr int64_t kMaxFractionalTerms = 100000;

// log(e^x + e^y).
double log_add(double x, double y) {
  const double a = std::fmin(x, y), b = std::fmax(x, y);
  if (a == -kInf) return b;
  return std::log1p(std::exp(a - b)) + b;
}

// log(e^x - e^y) into *out; false when x < y (the difference would be negative).
bool log_sub(double x, double y, double* out) {
  if (x < y) return false;
  if (y == -kInf) {
    *out = x;
  } else if (x == y) {
    *out = -kInf;
  } else if (x - y > 709.0) {
    // e^(x - y) - 1 overflows past 709.78; e^y is then below the last digit of e^x.
    *out = x;
  } else {
    *out = std::log(std::expm1(x - y)) + y;
  }
  return true;
}

// log A_alpha for an integer alpha and 0 < q < 1: the binomial expansion
// A = sum_i C(alpha, i) q^i (1 - q)^(alpha - i) e^((i^2 - i) / (2 sigma^2)).
double log_a_int(double q, double sigma, int64_t alpha) {
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  const double a = static_cast<double>(alpha);
  double log_a = -kInf;
  // log C(alpha, i), updated as C(alpha, i + 1) = C(alpha, i) (alpha - i) / (i + 1).
  double log_binom = 0.0;
  for (int64_t i = 0; i <= alpha; ++i) {
    const double di = static_cast<double>(i);
    const double s =
        log_binom + di * log_q + (a - di) * log_1mq + (di * di - di) / (2.0 * sigma * sigma);
    log_a = log_add(log_a, s);
    if (i < alpha) log_binom += std::log(a - di) - std::log(di + 1.0);
  }
  return log_a;
}

// log A_alpha for a fractional alpha and 0 < q < 1: the two series over (-inf, z0] and
// [z0, inf), z0 = sigma^2 log(1/q - 1) + 1/2, with the signs of C(alpha, i) (negative for
// every other i past alpha + 1). +inf when the series does not settle or a partial sum would
// turn negative (cancellation below double precision; Opacus raises there).
double log_a_frac(double q, double sigma, double alpha) {
  const double log_q = std::log(q), log_1mq = std::log1p(-q);
  const double z0 = sigma * sigma * std::log(1.0 / q - 1.0) + 0.5;
  const double log_half = std::log(0.5), sqrt2_sigma = std::numbers::sqrt2 * sigma;
  double log_a0 = -kInf, log_a1 = -kInf;
  double log_binom = 0.0;  // log |C(alpha, i)|
  bool positive = true;    // the sign of C(alpha, i)
  for (int64_t i = 0; i < kMaxFractionalTerms; ++i) {
    const double di = static_cast<double>(i), j = alpha - di;
    const double log_t0 = log_binom + di * log_q + j * log_1mq;
    const double log_t1 = log_binom + j * log_q + di * log_1mq;
    const double log_e0 = log_half + log_erfc((di - z0) / sqrt2_sigma);
    const double log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);
    const double log_s0 = log_t0 + (di * di - di) / (2.0 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
    if (positive) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else if (!log_sub(log_a0, log_s0, &log_a0) || !log_sub(log_a1, log_s1, &log_a1)) {
      return kInf;
    }
    // Opacus's stopping rule (both terms below e^-30 = 9e-14, A_alpha being >= 1): the same
    // rule keeps the sums term for term the same as the reference's.
    if (std::fmax(log_s0, log_s1) < -30.0) return log_add(log_a0, log_a1);
    log_binom += std::log(std::fabs(alpha - di)) - std::log(di + 1.0);
    if (alpha - di < 0.0) positive = !positive;
  }
  return kInf;
}

// RDP of one step at order alpha.
double rdp_one_step(double q, double sigma, double alpha) {
  if (q == 0.0) return 0.0;
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const double log_a = alpha == std::floor(alpha)
                           ? log_a_int(q, sigma, static_cast<int64_t>(alpha))
                           : log_a_frac(q, sigma, alpha);
  return log_a / (alpha - 1.0);
}

Status check_orders(std::span<const double> orders) {
  for (double a : orders) {
    if (!(a > 1.0 && a <= kMaxRdpOrder)) {
      return invalid_argument("RDP order must be in (1, " + format_number(kMaxRdpOrder) +
                              "], got " + format_number(a));
    }
  }
  return {};
}

}  // namespace

std::vector<double> default_rdp_orders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1.0 + x / 10.0);
  for (int a = 12; a < 64; ++a) orders.push_back(a);
  return orders;
}

Result<std::vector<double>> rdp_of_sampled_gaussian(double q, double noise_multiplier,
                                                    int64_t steps,
                                                    std::span<const double> orders) {
  FEDSILO_CHECK(check_sampled_gaussian(q, noise_multiplier, steps));
  FEDSILO_CHECK(check_orders(orders));
  std::vector<double> rdp(orders.size());
  for (size_t i = 0; i < orders.size(); ++i) {
    const double one = rdp_one_step(q, noise_multiplier, orders[i]);
    // 0 x inf would be NaN: no steps spend nothing at any order.
    rdp[i] = steps == 0 ? 0.0 : one * static_cast<double>(steps);
  }
  return rdp;
}

Result<RdpEpsilon> epsilon_from_rdp(std::span<const double> orders, std::span<const double> rdp,
                                    double delta) {
  FEDSILO_CHECK(check_delta(delta));
  if (orders.empty() || orders.size() != rdp.size()) {
    return invalid_argument("epsilon_from_rdp: " + std::to_string(orders.size()) + " orders and " +
                            std::to_string(rdp.size()) + " RDP values (need the same, > 0)");
  }
  FEDSILO_CHECK(check_orders(orders));
  RdpEpsilon best{kInf, orders[0]};
  const double log_delta = std::log(delta);
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    const double eps = rdp[i] - (log_delta + std::log(a)) / (a - 1.0) + std::log((a - 1.0) / a);
    if (eps < best.epsilon) best = {eps, a};
  }
  best.epsilon = std::fmax(best.epsilon, 0.0);
  return best;
}

Result<RdpEpsilon> rdp_epsilon_and_order(double q, double noise_multiplier, int64_t steps,
                                         double delta, std::span<const double> extra_orders) {
  FEDSILO_CHECK(check_sampled_gaussian(q, noise_multiplier, steps));
  FEDSILO_CHECK(check_delta(delta));
  FEDSILO_CHECK(check_orders(extra_orders));
  if (q == 0.0 || steps == 0) return RdpEpsilon{0.0, 0.0};
  std::vector<double> orders = default_rdp_orders();
  orders.insert(orders.end(), extra_orders.begin(), extra_orders.end());
  FEDSILO_ASSIGN_OR_RETURN(const std::vector<double> rdp,
                           rdp_of_sampled_gaussian(q, noise_multiplier, steps, orders));
  return epsilon_from_rdp(orders, rdp, delta);
}

Result<double> rdp_epsilon(double q, double noise_multiplier, int64_t steps, double delta,
                           std::span<const double> extra_orders) {
  FEDSILO_ASSIGN_OR_RETURN(const RdpEpsilon r,
                           rdp_epsilon_and_order(q, noise_multiplier, steps, delta, extra_orders));
  return r.epsilon;
}

}  // namespace fedsilo::privacy
