// The PLD accountant of the Poisson-subsampled Gaussian (dp_accounting's pld/, rewritten):
// one step's loss distribution by connect-the-dots on a grid, T steps by one FFT raised to the
// T-th power, epsilon for delta by a scan from the largest loss down.
#include "privacy/pld.h"

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "privacy/fft.h"
#include "privacy/normal.h"
#include "privacy/params.h"

namespace fedsilo::privacy {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// dp_accounting's defaults: the noise is cut where each tail holds 0.5 e^-50 (1e-22;
// log_mass_truncation_bound = -50, the cut mass going to infinite loss), and a T-fold
// composition drops tails of at most 1e-15 in all (tail_mass_truncation), also counted at
// infinite loss.
constexpr double kLogMassTruncation = -50.0;
constexpr double kTailMassTruncation = 1e-15;
// dp_accounting keeps a PMF of up to 1000 points sparse, and a sparse PMF composed once is
// returned as it is (no truncation); larger ones go through the FFT even for one step.
constexpr size_t kMaxSparsePoints = 1000;
// The deltas of consecutive grid points may rise by this much from rounding before the
// discretisation refuses them (pld_pmf._DELTA_DIFF_TOLERANCE).
constexpr double kDeltaRiseTolerance = 1e-12;

enum class Adjacency { kRemove, kAdd };

// log(e^x + e^y).
double log_add(double x, double y) {
  const double a = std::fmin(x, y), b = std::fmax(x, y);
  if (a == -kInf) return b;
  return b + std::log1p(std::exp(a - b));
}

// log(a e^b + c) for a > 0 and a + c = 1 or c > -a e^b (dp_accounting's
// log_a_times_exp_b_plus_c for the two uses here).
double log_a_exp_b_plus_c(double a, double b, double c) {
  if (b == 0.0) return std::log(a + c);
  const double d = b + std::log(a);
  if (c > 0.0) return log_add(d, std::log(c));
  return d + std::log1p(-std::exp(std::log(-c) - d));
}

// math.isclose with its default relative tolerance.
bool is_close(double a, double b) {
  return std::fabs(a - b) <= 1e-9 * std::fmax(std::fabs(a), std::fabs(b));
}

// The privacy loss of the Poisson-subsampled Gaussian (sensitivity 1, noise sigma, rate q) for
// one adjacency, dp_accounting's GaussianPrivacyLoss:
//   remove: mu_upper = (1 - q) N(0, sigma^2) + q N(-1, sigma^2), mu_lower = N(0, sigma^2);
//   add:    mu_upper = N(0, sigma^2), mu_lower = (1 - q) N(0, sigma^2) + q N(1, sigma^2).
// The loss ln(mu_upper(x) / mu_lower(x)) decreases in x.
class SampledGaussianLoss {
 public:
  SampledGaussianLoss(double q, double sigma, Adjacency adjacency)
      : q_(q), sigma_(sigma), adjacency_(adjacency), log_q_(std::log(q)),
        log_1mq_(std::log1p(-q)) {}

  double loss(double x) const {
    return adjacency_ == Adjacency::kRemove ? loss_remove(x) : -loss_remove(-x);
  }

  // The largest x whose loss is >= `loss`.
  double inverse_loss(double loss) const {
    const double s2 = sigma_ * sigma_;
    if (adjacency_ == Adjacency::kRemove) {
      if (q_ == 1.0) return -0.5 - loss * s2;
      // The loss tends to log(1 - q) as x grows: every x has a larger loss.
      if (is_close(loss, log_1mq_) || loss < log_1mq_) return kInf;
      // Unsampled loss log(1 + (e^loss - 1) / q), inverted through -1/2 - l sigma^2.
      const double unsampled = log_a_exp_b_plus_c(1.0 / q_, loss, 1.0 - 1.0 / q_);
      return -0.5 - unsampled * s2;
    }
    if (q_ == 1.0) return 0.5 - loss * s2;
    // The loss tends to -log(1 - q) as x falls: no x has a larger loss.
    if (is_close(loss, -log_1mq_) || loss > -log_1mq_) return -kInf;
    const double unsampled = -log_a_exp_b_plus_c(1.0 / q_, -loss, 1.0 - 1.0 / q_);
    return 0.5 - unsampled * s2;
  }

  // The hockey-stick divergence at epsilon: mu_upper(X <= x) - e^eps mu_lower(X <= x) at
  // x = inverse_loss(eps), the outcomes whose loss is at least eps.
  double delta(double epsilon) const {
    if (q_ < 1.0) {
      // add: mu_lower >= (1 - q) mu_upper everywhere, so e^eps mu_lower dominates.
      if (adjacency_ == Adjacency::kAdd && epsilon >= -log_1mq_) return 0.0;
      // remove: every outcome's loss exceeds eps, the divergence is 1 - e^eps.
      if (adjacency_ == Adjacency::kRemove && epsilon <= log_1mq_) return -std::expm1(epsilon);
    }
    const double x = inverse_loss(epsilon);
    const double d = mu_upper_cdf(x) - std::exp(epsilon + mu_lower_log_cdf(x));
    return std::clamp(d, 0.0, 1.0);
  }

 private:
  double loss_remove(double x) const {
    const double unsampled = (-0.5 - x) / (sigma_ * sigma_);
    if (q_ == 1.0) return unsampled;
    return log_a_exp_b_plus_c(q_, unsampled, 1.0 - q_);
  }
  double mu_upper_cdf(double x) const {
    if (adjacency_ == Adjacency::kAdd) return normal_cdf(x / sigma_);
    if (q_ == 1.0) return normal_cdf((x + 1.0) / sigma_);
    return (1.0 - q_) * normal_cdf(x / sigma_) + q_ * normal_cdf((x + 1.0) / sigma_);
  }
  double mu_lower_log_cdf(double x) const {
    if (adjacency_ == Adjacency::kRemove) return normal_log_cdf(x / sigma_);
    if (q_ == 1.0) return normal_log_cdf((x - 1.0) / sigma_);
    return log_add(log_1mq_ + normal_log_cdf(x / sigma_),
                   log_q_ + normal_log_cdf((x - 1.0) / sigma_));
  }

  double q_, sigma_;
  Adjacency adjacency_;
  double log_q_, log_1mq_;
};

// A loss distribution on the grid: probs[i] at loss (lower + i) * discretization, and the
// mass at infinite loss.
struct Pmf {
  int64_t lower = 0;
  std::vector<double> probs;
  double infinity_mass = 0.0;
};

Status too_many_points(double points, const char* what) {
  return failed_precondition("the privacy loss distribution " + std::string(what) + " needs " +
                             format_number(points) + " grid points, more than the " +
                             std::to_string(kMaxPldPoints) +
                             " allowed (little noise for this many steps): use a coarser "
                             "discretization or the RDP accountant");
}

// One step's distribution by pessimistic connect-the-dots (Doroshenko et al. 2022,
// Algorithm 1, on a grid of fixed gap d): from the divergences delta_i at eps_i = i d,
//   p_first = 1 - delta_1 + (delta_2 - delta_1) / (e^d - 1),
//   p_i     = ((delta_(i+1) - delta_i) - e^d (delta_i - delta_(i-1))) / (e^d - 1),
//   p_last  = (delta_n - delta_(n-1)) / (e^-d - 1), and delta_n at infinity.
Result<Pmf> one_step(const SampledGaussianLoss& mech, double sigma, Adjacency adjacency, double d) {
  // The noise's truncation points, as GaussianPrivacyLoss.privacy_loss_tail: the grid spans the
  // losses between them.
  double lower_x = sigma * normal_quantile(0.5 * std::exp(kLogMassTruncation));
  double upper_x = -lower_x;
  if (adjacency == Adjacency::kAdd) {
    upper_x += 1.0;
  } else {
    lower_x -= 1.0;
  }
  const double top = std::ceil(mech.loss(lower_x) / d);
  const double bottom = std::floor(mech.loss(upper_x) / d);
  if (top - bottom + 1.0 > static_cast<double>(kMaxPldPoints)) {
    return too_many_points(top - bottom + 1.0, "of one step");
  }
  const auto lo = static_cast<int64_t>(bottom), hi = static_cast<int64_t>(top);
  const auto n = static_cast<size_t>(hi - lo + 1);
  auto loss_at = [lo, d](size_t i) {
    return static_cast<double>(lo + static_cast<int64_t>(i)) * d;
  };
  std::vector<double> delta(n);
  for (size_t i = 0; i < n; ++i) delta[i] = mech.delta(loss_at(i));
  Pmf pmf{lo, std::vector<double>(n, 0.0), 0.0};
  if (n == 1) {
    pmf.probs[0] = 1.0 - delta[0];
    pmf.infinity_mass = delta[0];
    return pmf;
  }
  for (size_t i = 1; i < n; ++i) {
    if (delta[i] - delta[i - 1] > kDeltaRiseTolerance) {
      return internal_error("privacy loss distribution: the divergence rises from " +
                            format_number(delta[i - 1]) + " to " + format_number(delta[i]) +
                            " at loss " + format_number(loss_at(i)));
    }
    delta[i] = std::min(delta[i], delta[i - 1]);
  }
  const double em1 = std::expm1(d), e = std::exp(d);
  pmf.probs[0] = 1.0 - delta[0] + (delta[1] - delta[0]) / em1;
  for (size_t i = 1; i + 1 < n; ++i) {
    pmf.probs[i] = ((delta[i + 1] - delta[i]) - (delta[i] - delta[i - 1]) * e) / em1;
  }
  pmf.probs[n - 1] = (delta[n - 1] - delta[n - 2]) / std::expm1(-d);
  for (double& p : pmf.probs) p = std::max(p, 0.0);
  pmf.infinity_mass = delta[n - 1];
  return pmf;
}

// z <- z^T for every z, by squaring: the bits of T are the same for every value, so a block
// of values goes through them together (loops over the block vectorise; one value at a time,
// each product waits for the one before). The products are written out: std::complex's
// operator* checks NaN and infinity through a library call.
void power_in_place(std::span<std::complex<double>> values, int64_t times) {
  constexpr size_t kBlock = 256;
  double rr[kBlock], ri[kBlock], br[kBlock], bi[kBlock];
  for (size_t start = 0; start < values.size(); start += kBlock) {
    const size_t len = std::min(kBlock, values.size() - start);
    for (size_t j = 0; j < len; ++j) {
      rr[j] = 1.0;
      ri[j] = 0.0;
      br[j] = values[start + j].real();
      bi[j] = values[start + j].imag();
    }
    for (int64_t e = times; e > 0; e >>= 1) {
      if (e & 1) {
        for (size_t j = 0; j < len; ++j) {
          const double nr = rr[j] * br[j] - ri[j] * bi[j];
          ri[j] = rr[j] * bi[j] + ri[j] * br[j];
          rr[j] = nr;
        }
      }
      if (e > 1) {
        for (size_t j = 0; j < len; ++j) {
          const double sr = br[j] * br[j] - bi[j] * bi[j];
          bi[j] = 2.0 * br[j] * bi[j];
          br[j] = sr;
        }
      }
    }
    for (size_t j = 0; j < len; ++j) values[start + j] = {rr[j], ri[j]};
  }
}

// The T-fold composition (dp_accounting's DensePLDPmf.self_compose): Chernoff bounds on the
// composed index (orders +-1..20 / n) leave out at most kTailMassTruncation, which is counted
// at infinite loss; inside them the convolution is one real FFT of a length L >= the window,
// raised to the T-th power (the circular convolution wraps only the tails' mass into the
// window, as in dp_accounting).
Result<Pmf> self_compose(const Pmf& pmf, int64_t times) {
  const size_t n = pmf.probs.size();
  if (times == 1 && n <= kMaxSparsePoints) return pmf;
  const double t = static_cast<double>(times);
  // log E[e^(order x I)] for order = +-k / n, k = 1..20, I the grid index: e^(i k / n) as
  // powers of e^(i / n), 40 multiply-adds per point rather than 40 exponentials.
  constexpr int kOrders = 20;
  double mgf_pos[kOrders + 1] = {}, mgf_neg[kOrders + 1] = {};
  const double inv_n = 1.0 / static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    const double p = pmf.probs[i];
    if (p == 0.0) continue;
    const double up = std::exp(static_cast<double>(i) * inv_n), down = 1.0 / up;
    double pu = p, pd = p;
    for (int k = 1; k <= kOrders; ++k) {
      pu *= up;
      pd *= down;
      mgf_pos[k] += pu;
      mgf_neg[k] += pd;
    }
  }
  double upper = static_cast<double>(n - 1) * t, lower = 0.0;
  const double log_tail = std::log(2.0 / kTailMassTruncation);
  for (int k = 1; k <= kOrders; ++k) {
    const double order = k * inv_n;
    // Chernoff: P[I >= b] <= E[e^(order I)] e^(-order b) <= tail / 2 at
    // b = (T log mgf + log(2 / tail)) / order; likewise below with a negative order.
    const double up_bound = (t * std::log(mgf_pos[k]) + log_tail) / order;
    if (std::isfinite(up_bound)) upper = std::min(upper, std::ceil(up_bound));
    const double down_bound = (t * std::log(mgf_neg[k]) + log_tail) / -order;
    if (std::isfinite(down_bound)) lower = std::max(lower, std::floor(down_bound));
  }
  const double window = upper - lower + 1.0;
  if (window > static_cast<double>(kMaxPldPoints)) {
    return too_many_points(window, "of the composition");
  }
  const size_t length = next_power_of_two(std::max({static_cast<size_t>(window), n, size_t{2}}));
  if (length > static_cast<size_t>(kMaxPldPoints)) {
    return too_many_points(static_cast<double>(length), "of the composition");
  }

  FEDSILO_ASSIGN_OR_RETURN(const RealFft plan, RealFft::create(length));
  std::vector<double> x(length, 0.0);
  std::copy(pmf.probs.begin(), pmf.probs.end(), x.begin());
  std::vector<std::complex<double>> spectrum(length / 2 + 1);
  FEDSILO_CHECK(plan.forward(x, spectrum));
  power_in_place(spectrum, times);
  FEDSILO_CHECK(plan.inverse(spectrum, x));
  const auto lo = static_cast<int64_t>(lower);
  const auto count = static_cast<size_t>(window);
  Pmf out{pmf.lower * times + lo, std::vector<double>(count), 0.0};
  for (size_t k = 0; k < count; ++k) out.probs[k] = x[(static_cast<size_t>(lo) + k) % length];
  // 1 - (1 - infinity_mass)^T without cancellation, plus the dropped tails.
  out.infinity_mass = kTailMassTruncation - std::expm1(t * std::log1p(-pmf.infinity_mass));
  return out;
}

// The smallest eps >= 0 with infinity_mass + sum_l p(l) (1 - e^(eps - l))_+ <= delta: scanning
// losses from the top, the sums U = sum p(l), L = sum p(l) e^-l over losses above eps give
// delta(eps) = U - e^eps L, so eps = log((U - delta) / L) once the next loss lies below it
// (dp_accounting's _get_epsilon_for_delta).
double epsilon_for_delta(const Pmf& pmf, double d, double delta) {
  if (pmf.infinity_mass > delta) return kInf;
  double mass_upper = pmf.infinity_mass, mass_lower = 0.0;
  for (size_t k = pmf.probs.size(); k-- > 0;) {
    const double loss = static_cast<double>(pmf.lower + static_cast<int64_t>(k)) * d;
    if (mass_upper > delta && mass_lower > 0.0 &&
        std::log((mass_upper - delta) / mass_lower) >= loss) {
      break;
    }
    const double p = pmf.probs[k];
    mass_upper += p;
    mass_lower += std::exp(-loss) * p;
    // Only where e^-loss underflows: all the mass so far sits at losses too large to matter.
    if (mass_upper >= delta && mass_lower == 0.0) return std::max(0.0, loss);
  }
  if (mass_upper <= mass_lower + delta) return 0.0;
  return std::log((mass_upper - delta) / mass_lower);
}

double delta_for_epsilon(const Pmf& pmf, double d, double epsilon) {
  double delta = pmf.infinity_mass;
  for (size_t k = 0; k < pmf.probs.size(); ++k) {
    const double loss = static_cast<double>(pmf.lower + static_cast<int64_t>(k)) * d;
    if (loss > epsilon) delta += -std::expm1(epsilon - loss) * pmf.probs[k];
  }
  return delta;
}

Status check_discretization(double d) {
  if (!(d > 0.0) || !std::isfinite(d)) {
    return invalid_argument("value discretization must be finite and > 0, got " + format_number(d));
  }
  return {};
}

// The composed distributions of both adjacencies (one when q = 1: they coincide).
Result<std::vector<Pmf>> composed(double q, double sigma, int64_t steps, double d) {
  std::vector<Pmf> out;
  for (Adjacency adj : {Adjacency::kRemove, Adjacency::kAdd}) {
    if (adj == Adjacency::kAdd && q == 1.0) break;
    const SampledGaussianLoss mech(q, sigma, adj);
    FEDSILO_ASSIGN_OR_RETURN(Pmf one, one_step(mech, sigma, adj, d));
    FEDSILO_ASSIGN_OR_RETURN(Pmf all, self_compose(one, steps));
    out.push_back(std::move(all));
  }
  return out;
}

}  // namespace

Result<double> pld_epsilon(double q, double noise_multiplier, int64_t steps, double delta,
                           double value_discretization) {
  FEDSILO_CHECK(check_sampled_gaussian(q, noise_multiplier, steps));
  FEDSILO_CHECK(check_delta(delta));
  FEDSILO_CHECK(check_discretization(value_discretization));
  if (q == 0.0 || steps == 0) return 0.0;
  FEDSILO_ASSIGN_OR_RETURN(const std::vector<Pmf> pmfs,
                           composed(q, noise_multiplier, steps, value_discretization));
  double epsilon = 0.0;
  for (const Pmf& pmf : pmfs) {
    epsilon = std::max(epsilon, epsilon_for_delta(pmf, value_discretization, delta));
  }
  return epsilon;
}

Result<double> pld_delta(double q, double noise_multiplier, int64_t steps, double epsilon,
                         double value_discretization) {
  FEDSILO_CHECK(check_sampled_gaussian(q, noise_multiplier, steps));
  FEDSILO_CHECK(check_discretization(value_discretization));
  if (!(epsilon >= 0.0)) {
    return invalid_argument("epsilon must be >= 0, got " + format_number(epsilon));
  }
  if (q == 0.0 || steps == 0) return 0.0;
  FEDSILO_ASSIGN_OR_RETURN(const std::vector<Pmf> pmfs,
                           composed(q, noise_multiplier, steps, value_discretization));
  double delta = 0.0;
  for (const Pmf& pmf : pmfs) {
    delta = std::max(delta, delta_for_epsilon(pmf, value_discretization, epsilon));
  }
  return delta;
}

}  // namespace fedsilo::privacy
