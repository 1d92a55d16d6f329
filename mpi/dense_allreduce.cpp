// dense-flat reducer: MPI_Allreduce of the whole flat buffer.
#include "mpi/dense_allreduce.h"

#include <chrono>

namespace fedsilo::mpi {

Status DenseAllreduce::reduce(uint32_t /*round*/, std::span<float> data, AllreduceStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(comm_.allreduce_sum(data));
  const int n = comm_.size();
  const int64_t bytes = static_cast<int64_t>(data.size_bytes());
  const int64_t moved = n > 1 ? 2 * bytes * (n - 1) / n : 0;
  const double seconds = seconds_since(t0);
  (single_node_ ? stats.intra_bytes_sent : stats.inter_bytes_sent) += moved;
  (single_node_ ? stats.intra_bytes_received : stats.inter_bytes_received) += moved;
  (single_node_ ? stats.intra_seconds : stats.inter_seconds) += seconds;
  stats.total_seconds += seconds;
  return {};
}

}  // namespace fedsilo::mpi
