// The privacy-loss-distribution (PLD) accountant of the Poisson-subsampled Gaussian mechanism,
// as Google's dp_accounting computes it (PLDAccountant with PoissonSampledDpEvent(q,
// GaussianDpEvent(sigma)) composed `steps` times): the connect-the-dots discretisation with
// pessimistic estimates (Doroshenko et al. 2022), composition by FFT, and the add-or-remove
// adjacency (the worse of the remove and the add distributions).
#pragma once

#include <cstdint>

#include "core/status.h"

namespace fedsilo::privacy {

/// The spacing of the privacy-loss grid (dp_accounting's value_discretization_interval).
inline constexpr double kDefaultPldDiscretization = 1e-4;

/// The most grid points (of one step, or of the composition's transform) the accountant
/// allocates: 2^24 complex doubles are 256 MiB.
inline constexpr int64_t kMaxPldPoints = int64_t{1} << 24;

/// The smallest epsilon for which `steps` steps are (epsilon, delta)-DP by the pessimistic PLD:
/// over both adjacencies, the smallest eps with
/// infinity_mass + sum over losses l of p(l) (1 - e^(eps - l))_+ <= delta.
/// The loss grid has spacing `value_discretization`. q = 0 or steps = 0 give 0; +inf when the
/// mass at infinite loss alone exceeds delta.
/// kInvalidArgument for bad inputs (params.h) or value_discretization <= 0;
/// kFailedPrecondition when the grid would need more than kMaxPldPoints points (little noise
/// over many steps: a coarser discretization or the RDP accountant then).
[[nodiscard]] Result<double> pld_epsilon(double q, double noise_multiplier, int64_t steps,
                                         double delta,
                                         double value_discretization = kDefaultPldDiscretization);

/// The delta at `epsilon` of the same distributions (the hockey-stick divergence, the worse of
/// remove and add): an upper bound on the exact delta. Errors as pld_epsilon, and
/// kInvalidArgument for a negative or NaN epsilon.
[[nodiscard]] Result<double> pld_delta(double q, double noise_multiplier, int64_t steps,
                                       double epsilon,
                                       double value_discretization = kDefaultPldDiscretization);

}  // namespace fedsilo::privacy
