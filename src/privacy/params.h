// The checks every accountant applies to its inputs, with messages that name the parameter.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace fedsilo::privacy {

/// OK when the Poisson-subsampled Gaussian is well defined: sample rate q in [0, 1], noise
/// multiplier finite and > 0, steps >= 0. Else kInvalidArgument naming the parameter and value.
[[nodiscard]] Status check_sampled_gaussian(double q, double noise_multiplier, int64_t steps);

/// OK when delta is in (0, 1); else kInvalidArgument naming delta.
[[nodiscard]] Status check_delta(double delta);

/// "%g" of a double, for messages.
[[nodiscard]] std::string format_number(double v);

}  // namespace fedsilo::privacy
