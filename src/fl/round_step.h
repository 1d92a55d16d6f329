// One round after local training: this silo's contribution, the sum over all silos, the server
// step. `fedsilo train` drives its rounds through it, and so can a caller that trains elsewhere
// (a Python trainer): it hands over the silo's new local parameters and its weight and gets
// the new global model back.
#pragma once

#include <cstdint>
#include <span>

#include "core/status.h"
#include "fl/aggregation.h"
#include "fl/strategy.h"
#include "fl/update_exchange.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

class RoundStep {
 public:
  /// All three must outlive the step.
  RoundStep(mpi::Comm& comm, Aggregation& aggregation, Strategy& strategy)
      : comm_(comm), aggregation_(aggregation), strategy_(strategy) {}

  /// This silo's contribution, weight * (local - global) where it trained (with what its
  /// strategy adds: Strategy::silo_extras), zeros where not.
  /// Local: the caller agrees on the Status (with its own training's).
  [[nodiscard]] Status contribute(std::span<const float> local, std::span<const float> global,
                                  double weight, bool trained, const SiloExtras& extras = {}) {
    return aggregation_.contribute(local, global, static_cast<float>(weight), trained, extras);
  }

  /// The sum of the contributions and of the weights over all ranks (the aggregation's), then
  /// the strategy's server step: `global` becomes the next global model (finite, or kDiverged).
  /// Where `also` is given (a caller's own parameter buffer, of the same length), the new
  /// global model is written there too, in the same pass as its finiteness check: the Python
  /// binding's buffer, for which a separate copy is another pass over both buffers
  /// (benchmarks/RESULTS.md, "PyTorch binding").
  /// Collective.
  [[nodiscard]] Status finish(uint32_t round, bool trained, std::span<float> global,
                              ExchangeStats& stats, std::span<float> also = {});

  /// contribute (its Status agreed) then finish: for a caller that trained elsewhere.
  /// Collective.
  [[nodiscard]] Status run(uint32_t round, std::span<const float> local, double weight,
                           bool trained, std::span<float> global, ExchangeStats& stats) {
    FEDSILO_CHECK(comm_.agree(contribute(local, global, weight, trained)));
    return finish(round, trained, global, stats);
  }

 private:
  mpi::Comm& comm_;
  Aggregation& aggregation_;
  Strategy& strategy_;
};

}  // namespace fedsilo::fl
