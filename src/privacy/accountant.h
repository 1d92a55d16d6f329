// The differential-privacy accountants of DP-SGD's Poisson-subsampled Gaussian mechanism, by
// name: what a run's (epsilon, delta) is for a sample rate, noise multiplier and step count,
// and the noise multiplier that meets a target epsilon. rdp.h and pld.h hold the two methods.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"
#include "privacy/pld.h"
#include "privacy/rdp.h"

namespace fedsilo::privacy {

/// kRdp: Rényi DP as Opacus (rdp.h), the default, fast, a few percent loose.
/// kPld: privacy loss distributions as dp_accounting (pld.h), tighter, slower.
enum class Accountant { kRdp, kPld };

/// "rdp" or "pld"; kInvalidArgument naming any other value.
[[nodiscard]] Result<Accountant> parse_accountant(std::string_view name);
[[nodiscard]] const char* accountant_name(Accountant a);

/// The epsilon of `steps` steps at `delta` by accountant `a` (RDP over the default orders, PLD
/// on the default grid).
[[nodiscard]] Result<double> epsilon_for(Accountant a, double q, double noise_multiplier,
                                         int64_t steps, double delta);

/// The default bound of the noise-multiplier search. Noise 1000 times the clipping norm drowns
/// any gradient; a target it does not meet is better reported than chased.
inline constexpr double kMaxNoiseMultiplier = 1000.0;

/// The search stops once epsilon is within this fraction below the target (0.1%).
inline constexpr double kNoiseSearchTolerance = 1e-3;

/// The noise multiplier sigma for which `steps` steps at sample rate q are
/// (target_epsilon, delta)-DP by accountant `a`: doubling from 1 until epsilon(sigma) <= target,
/// then bisection (as Opacus's get_noise_multiplier) until
/// target (1 - kNoiseSearchTolerance) <= epsilon(sigma) <= target, so the sigma returned always
/// meets the target and is at most about 0.1% (in epsilon) more noise than needed. 0 when q = 0
/// or steps = 0 (nothing is spent). kInvalidArgument for bad inputs, target_epsilon <= 0, or a
/// target no sigma up to max_noise meets (RDP over the default orders never goes below about
/// 0.1 at delta = 1e-5, whatever the noise: its largest order is 63).
[[nodiscard]] Result<double> noise_for_epsilon(Accountant a, double target_epsilon, double q,
                                               int64_t steps, double delta,
                                               double max_noise = kMaxNoiseMultiplier);

}  // namespace fedsilo::privacy
