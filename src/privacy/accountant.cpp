// Accountant names, dispatch and the noise-multiplier search.
#include "privacy/accountant.h"

#include <cmath>
#include <limits>
#include <string>

#include "privacy/params.h"

namespace fedsilo::privacy {

Result<Accountant> parse_accountant(std::string_view name) {
  if (name == "rdp") return Accountant::kRdp;
  if (name == "pld") return Accountant::kPld;
  return invalid_argument("unknown accountant '" + std::string(name) + "' (expected rdp or pld)");
}

const char* accountant_name(Accountant a) { return a == Accountant::kRdp ? "rdp" : "pld"; }

Result<double> epsilon_for(Accountant a, double q, double noise_multiplier, int64_t steps,
                           double delta) {
  if (a == Accountant::kRdp) return rdp_epsilon(q, noise_multiplier, steps, delta);
  return pld_epsilon(q, noise_multiplier, steps, delta);
}

Result<double> noise_for_epsilon(Accountant a, double target_epsilon, double q, int64_t steps,
                                 double delta, double max_noise) {
  if (!(target_epsilon > 0.0) || !std::isfinite(target_epsilon)) {
    return invalid_argument("target epsilon must be finite and > 0, got " +
                            format_number(target_epsilon));
  }
  if (!(max_noise > 0.0) || !std::isfinite(max_noise)) {
    return invalid_argument("the largest noise multiplier searched must be finite and > 0, got " +
                            format_number(max_noise));
  }
  // The checks of the accountants, with a noise multiplier that passes them.
  FEDSILO_CHECK(check_sampled_gaussian(q, 1.0, steps));
  FEDSILO_CHECK(check_delta(delta));
  if (q == 0.0 || steps == 0) return 0.0;

  // epsilon(sigma), where a PLD grid too large to allocate counts as "above the target": it
  // only happens for very little noise, whose epsilon is far above any sensible target.
  auto above_target = [&](double sigma, double* eps) -> Result<bool> {
    Result<double> r = epsilon_for(a, q, sigma, steps, delta);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kFailedPrecondition) {
        *eps = std::numeric_limits<double>::infinity();
        return true;
      }
      return r.status();
    }
    *eps = r.value();
    return *eps > target_epsilon;
  };

  double low = 0.0, high = 1.0, eps_high = 0.0;
  for (;;) {
    FEDSILO_ASSIGN_OR_RETURN(const bool above, above_target(std::fmin(high, max_noise), &eps_high));
    if (!above) break;
    if (high >= max_noise) {
      return invalid_argument(
          "target epsilon " + format_number(target_epsilon) + " is out of reach: even noise "
          "multiplier " + format_number(max_noise) + " gives epsilon " + format_number(eps_high) +
          " (" + accountant_name(a) + " accountant, sample rate " + format_number(q) + ", " +
          std::to_string(steps) + " steps, delta " + format_number(delta) + ")");
    }
    low = high;
    high *= 2.0;
  }
  high = std::fmin(high, max_noise);
  // Invariant: epsilon(high) <= target < epsilon(low) (epsilon(0) is infinite). Stop when
  // epsilon(high) is within the tolerance, or when the bracket is down to rounding (epsilon
  // being flat in sigma there, e.g. between PLD grid points).
  while (eps_high < target_epsilon * (1.0 - kNoiseSearchTolerance) &&
         high - low > 1e-12 * high) {
    const double mid = 0.5 * (low + high);
    double eps_mid = 0.0;
    FEDSILO_ASSIGN_OR_RETURN(const bool above, above_target(mid, &eps_mid));
    if (above) {
      low = mid;
    } else {
      high = mid;
      eps_high = eps_mid;
    }
  }
  return high;
}

}  // namespace fedsilo::privacy
