#include "fl/round_step.h"

#include <string>

namespace fedsilo::fl {

Status RoundStep::finish(uint32_t round, bool trained, double weight, std::span<float> global,
                         ExchangeStats& stats) {
  auto sum = aggregation_.combine(round, trained, stats);
  FEDSILO_CHECK(sum.status());
  double weight_sum = trained ? weight : 0.0;
  FEDSILO_CHECK(comm_.allreduce_sum(std::span<double>(&weight_sum, 1)));
  FEDSILO_CHECK(comm_.agree(strategy_.aggregate(static_cast<int>(round), global, sum.value(), weight_sum)));
  return comm_.agree(check_finite(global, "round " + std::to_string(round) + ": global model"));
}

}  // namespace fedsilo::fl
