// `fedsilo privacy`: the (epsilon, delta) of DP-SGD's Poisson-subsampled Gaussian mechanism
// over a run, or the noise multiplier that meets a target epsilon (src/privacy/).
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/exit_codes.h"
#include "privacy/accountant.h"

namespace fedsilo::cli {

namespace {

std::string num(double v, const char* fmt = "%g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// The run the flags describe, after the checks of the combinations.
struct Run {
  double q = 0.0;
  int64_t steps = 0;
  privacy::Accountant accountant = privacy::Accountant::kRdp;
};

Result<Run> resolve(const PrivacyArgs& a) {
  Run run;
  const bool by_batch = a.batch_size.has_value() || a.dataset_size.has_value();
  if (a.sample_rate.has_value() == by_batch) {
    return invalid_argument("give --sample-rate Q, or --batch-size B with --dataset-size N");
  }
  if (by_batch) {
    if (!a.batch_size || !a.dataset_size) {
      return invalid_argument("--batch-size and --dataset-size go together (q = B / N)");
    }
    if (*a.dataset_size <= 0) {
      return invalid_argument("--dataset-size must be > 0, got " + std::to_string(*a.dataset_size));
    }
    if (*a.batch_size < 0 || *a.batch_size > *a.dataset_size) {
      return invalid_argument("--batch-size must be in [0, --dataset-size = " +
                              std::to_string(*a.dataset_size) + "], got " +
                              std::to_string(*a.batch_size));
    }
    run.q = static_cast<double>(*a.batch_size) / static_cast<double>(*a.dataset_size);
  } else {
    run.q = *a.sample_rate;
    if (!(run.q >= 0.0 && run.q <= 1.0)) {
      return invalid_argument("--sample-rate must be in [0, 1], got " + num(run.q));
    }
  }
  if (a.noise_multiplier.has_value() == a.target_epsilon.has_value()) {
    return invalid_argument("give --noise-multiplier S (prints epsilon) or --target-epsilon E "
                            "(prints the noise multiplier)");
  }
  if (a.noise_multiplier && !(*a.noise_multiplier > 0.0 && std::isfinite(*a.noise_multiplier))) {
    return invalid_argument("--noise-multiplier must be finite and > 0, got " +
                            num(*a.noise_multiplier));
  }
  if (a.target_epsilon && !(*a.target_epsilon > 0.0 && std::isfinite(*a.target_epsilon))) {
    return invalid_argument("--target-epsilon must be finite and > 0, got " +
                            num(*a.target_epsilon));
  }
  if (a.steps.has_value() == a.epochs.has_value()) {
    return invalid_argument("give --steps T or --epochs E (T = ceil(E / q))");
  }
  if (a.steps) {
    if (*a.steps < 0) {
      return invalid_argument("--steps must be >= 0, got " + std::to_string(*a.steps));
    }
    run.steps = *a.steps;
  } else {
    const double e = *a.epochs;
    if (!(e >= 0.0 && std::isfinite(e))) {
      return invalid_argument("--epochs must be finite and >= 0, got " + num(e));
    }
    if (run.q == 0.0 && e > 0.0) {
      return invalid_argument("--epochs needs a sample rate > 0 (an epoch is 1 / q steps)");
    }
    // An epoch is 1 / q steps in expectation. A quotient within 1e-9 of an integer is that
    // integer: 1 / 0.04 is 25.000000000000004 in doubles and must not become 26 steps.
    const double t = run.q == 0.0 ? 0.0 : e / run.q;
    const double r = std::round(t);
    const double steps = std::fabs(t - r) <= 1e-9 * std::fmax(1.0, t) ? r : std::ceil(t);
    if (steps > 9.0e15) {
      return invalid_argument("--epochs / q = " + num(steps) + " steps: too many");
    }
    run.steps = static_cast<int64_t>(steps);
  }
  if (!(a.delta > 0.0 && a.delta < 1.0)) {
    return invalid_argument("--delta must be in (0, 1), got " + num(a.delta));
  }
  FEDSILO_ASSIGN_OR_RETURN(run.accountant, privacy::parse_accountant(a.accountant));
  if (!a.orders.empty() && run.accountant != privacy::Accountant::kRdp) {
    return invalid_argument("--orders applies to the rdp accountant only");
  }
  return run;
}

Status privacy_command(const PrivacyArgs& a) {
  FEDSILO_ASSIGN_OR_RETURN(const Run run, resolve(a));
  const bool rdp = run.accountant == privacy::Accountant::kRdp;
  double sigma = 0.0;
  if (a.target_epsilon) {
    FEDSILO_ASSIGN_OR_RETURN(sigma, privacy::noise_for_epsilon(run.accountant, *a.target_epsilon,
                                                               run.q, run.steps, a.delta));
  } else {
    sigma = *a.noise_multiplier;
  }
  // The epsilon at sigma (for a target: what the noise found actually gives). sigma = 0 comes
  // only from a target with q = 0 or no steps: nothing is spent.
  privacy::RdpEpsilon result;
  if (sigma == 0.0) {
    result = {0.0, 0.0};
  } else if (rdp) {
    FEDSILO_ASSIGN_OR_RETURN(result, privacy::rdp_epsilon_and_order(run.q, sigma, run.steps,
                                                                    a.delta, a.orders));
  } else {
    FEDSILO_ASSIGN_OR_RETURN(result.epsilon,
                             privacy::pld_epsilon(run.q, sigma, run.steps, a.delta));
  }

  if (a.json) {
    nlohmann::ordered_json j;
    j["accountant"] = privacy::accountant_name(run.accountant);
    j["sample_rate"] = run.q;
    if (a.batch_size) {
      j["batch_size"] = *a.batch_size;
      j["dataset_size"] = *a.dataset_size;
    }
    j["steps"] = run.steps;
    if (a.epochs) j["epochs"] = *a.epochs;
    j["delta"] = a.delta;
    if (a.target_epsilon) j["target_epsilon"] = *a.target_epsilon;
    j["noise_multiplier"] = sigma;
    j["epsilon"] = result.epsilon;
    if (rdp) {
      j["rdp_order"] = result.order > 0.0 ? nlohmann::ordered_json(result.order) : nullptr;
      if (!a.orders.empty()) j["extra_orders"] = a.orders;
    }
    std::printf("%s\n", j.dump().c_str());
    return {};
  }
  std::printf("fedsilo privacy (%s accountant)\n", privacy::accountant_name(run.accountant));
  std::printf("  sample rate       %s", num(run.q, "%.8g").c_str());
  if (a.batch_size) {
    std::printf(" (batch %lld / %lld records)", static_cast<long long>(*a.batch_size),
                static_cast<long long>(*a.dataset_size));
  }
  std::printf("\n  steps             %lld", static_cast<long long>(run.steps));
  if (a.epochs) std::printf(" (%s epochs)", num(*a.epochs).c_str());
  std::printf("\n  delta             %s\n", num(a.delta).c_str());
  if (a.target_epsilon) {
    std::printf("  target epsilon    %s\n", num(*a.target_epsilon, "%.8g").c_str());
    std::printf("  noise multiplier  %s\n", num(sigma, "%.6g").c_str());
    std::printf("  epsilon           %s at this noise multiplier",
                num(result.epsilon, "%.8g").c_str());
  } else {
    std::printf("  noise multiplier  %s\n", num(sigma).c_str());
    std::printf("  epsilon           %s", num(result.epsilon, "%.8g").c_str());
  }
  if (rdp && result.order > 0.0) std::printf(" (best RDP order %s)", num(result.order).c_str());
  std::printf("\n");
  return {};
}

}  // namespace

int run_privacy(const PrivacyArgs& args) {
  const Status st = privacy_command(args);
  if (!st.ok()) std::fprintf(stderr, "fedsilo privacy: error: %s\n", st.message().c_str());
  // A PLD grid too large for the flags' noise and steps is a usage error like the others.
  return st.code() == StatusCode::kFailedPrecondition ? kExitUsage : exit_code_for(st);
}

}  // namespace fedsilo::cli
