#include "fl/round_step.h"

#include <string>

namespace fedsilo::fl {

Status RoundStep::finish(uint32_t round, bool trained, std::span<float> global, ExchangeStats& stats) {
  auto combined = aggregation_.combine(round, trained, stats);
  FEDSILO_CHECK(combined.status());
  FEDSILO_CHECK(comm_.agree(strategy_.aggregate(static_cast<int>(round), global, combined->sum,
                                                combined->weight_sum)));
  return comm_.agree(check_finite(global, "round " + std::to_string(round) + ": global model"));
}

}  // namespace fedsilo::fl
