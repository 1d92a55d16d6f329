// The Rényi-DP accountant of the Poisson-subsampled Gaussian mechanism (DP-SGD's), as Opacus
// computes it: Mironov, Talwar and Zhang 2019 for the RDP of one step, composition by sum, and
// Balle et al. 2020 (Theorem 21) for the conversion to (epsilon, delta).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"

namespace fedsilo::privacy {

/// The largest RDP order accepted: the series of an order alpha have about alpha terms.
inline constexpr double kMaxRdpOrder = 10000.0;

/// Opacus's default orders (opacus/accountants/rdp.py, RDPAccountant.DEFAULT_ALPHAS):
/// 1.1, 1.2, ..., 10.9 (1 + x / 10 for x = 1..99), then 12, 13, ..., 63.
[[nodiscard]] std::vector<double> default_rdp_orders();

/// The RDP at each order of `steps` steps of the Gaussian mechanism with noise multiplier
/// (noise standard deviation / L2 sensitivity) `noise_multiplier` on a Poisson sample of rate
/// q: steps x log(A_alpha) / (alpha - 1). Integer orders sum the binomial expansion of A_alpha
/// exactly (in log space); fractional orders sum the two series of Mironov et al. (Section 3.3)
/// with their signs, stopping at the first term pair below e^-30 as Opacus does (Google's
/// dp_accounting sums absolute values instead, an upper bound). q = 0 gives 0; q = 1 gives
/// steps x alpha / (2 sigma^2). A fractional order whose series does not settle (100000 terms)
/// or cancels below double precision gets +inf (it then drops out of any minimum).
/// kInvalidArgument for bad inputs (params.h) or an order outside (1, kMaxRdpOrder].
[[nodiscard]] Result<std::vector<double>> rdp_of_sampled_gaussian(
    double q, double noise_multiplier, int64_t steps, std::span<const double> orders);

/// An epsilon and the RDP order that gave it.
struct RdpEpsilon {
  double epsilon = 0.0;
  double order = 0.0;  // 0 when no order was needed (q = 0 or steps = 0: epsilon is 0)
};

/// (epsilon, delta) from RDP values: the minimum over orders of
/// rdp - (log delta + log alpha) / (alpha - 1) + log((alpha - 1) / alpha) (Balle et al. 2020,
/// Theorem 21; Opacus's get_privacy_spent), the first order on ties, clamped at 0 (a negative
/// bound, possible for delta near 1, still proves epsilon = 0). +inf when every order is +inf.
/// kInvalidArgument when the spans differ in length or are empty, or for a bad delta.
[[nodiscard]] Result<RdpEpsilon> epsilon_from_rdp(std::span<const double> orders,
                                                  std::span<const double> rdp, double delta);

/// The epsilon of `steps` steps at `delta` over default_rdp_orders() followed by extra_orders
/// (the first wins on ties), and its order. q = 0 or steps = 0 spend nothing: epsilon 0 (the
/// conversion alone would give a positive bound). Matches Opacus's RDPAccountant.
[[nodiscard]] Result<RdpEpsilon> rdp_epsilon_and_order(double q, double noise_multiplier,
                                                       int64_t steps, double delta,
                                                       std::span<const double> extra_orders = {});

/// rdp_epsilon_and_order(...).epsilon.
[[nodiscard]] Result<double> rdp_epsilon(double q, double noise_multiplier, int64_t steps,
                                         double delta, std::span<const double> extra_orders = {});

}  // namespace fedsilo::privacy
