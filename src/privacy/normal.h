// The standard normal distribution's CDF, its logarithm and its inverse, accurate far into the
// lower tail (the accountants work with probabilities down to 1e-22 and log-probabilities).
#pragma once

namespace fedsilo::privacy {

/// Phi(x) = P[N(0, 1) <= x], accurate relative to its value for every x (0.5 erfc(-x / sqrt 2)).
[[nodiscard]] double normal_cdf(double x);

/// log Phi(x), accurate where Phi(x) underflows (x < -38) and where Phi(x) rounds to 1 (x > 8).
[[nodiscard]] double normal_log_cdf(double x);

/// The x with Phi(x) = p, for p in (0, 1); -inf at 0, +inf at 1, NaN outside [0, 1].
[[nodiscard]] double normal_quantile(double p);

/// log erfc(x) = log 2 + log Phi(-x sqrt 2): what the RDP series of the sampled Gaussian needs.
[[nodiscard]] double log_erfc(double x);

}  // namespace fedsilo::privacy
