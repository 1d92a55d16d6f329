// Input checks shared by the RDP and PLD accountants.
#include "privacy/params.h"

#include <cmath>
#include <cstdio>

namespace fedsilo::privacy {

std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

Status check_sampled_gaussian(double q, double noise_multiplier, int64_t steps) {
  // Written as !(inside) so that NaN fails too.
  if (!(q >= 0.0 && q <= 1.0)) {
    return invalid_argument("sample rate q must be in [0, 1], got " + format_number(q));
  }
  if (!(noise_multiplier > 0.0) || !std::isfinite(noise_multiplier)) {
    return invalid_argument("noise multiplier must be finite and > 0, got " +
                            format_number(noise_multiplier));
  }
  if (steps < 0) {
    return invalid_argument("steps must be >= 0, got " + std::to_string(steps));
  }
  return {};
}

Status check_delta(double delta) {
  if (!(delta > 0.0 && delta < 1.0)) {
    return invalid_argument("delta must be in (0, 1), got " + format_number(delta));
  }
  return {};
}

}  // namespace fedsilo::privacy
