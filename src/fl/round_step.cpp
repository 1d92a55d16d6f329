#include "fl/round_step.h"

#include <string>

namespace fedsilo::fl {

Status RoundStep::finish(uint32_t round, bool trained, std::span<float> global,
                         ExchangeStats& stats, std::span<float> also) {
  auto combined = aggregation_.combine(round, trained, stats);
  FEDSILO_CHECK(combined.status());
  FEDSILO_CHECK(comm_.agree(strategy_.aggregate(static_cast<int>(round), global, *combined)));
  const std::string what = "round " + std::to_string(round) + ": global model";
  return comm_.agree(also.empty() ? check_finite(global, what)
                                  : check_finite_and_copy(global, also, what));
}

}  // namespace fedsilo::fl
