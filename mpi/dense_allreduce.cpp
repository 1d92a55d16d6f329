// dense-flat reducer: MPI_Allreduce of the whole flat buffer.
#include "mpi/dense_allreduce.h"

#include <chrono>

namespace fedsilo::mpi {

Status DenseAllreduce::sum(std::span<float> data, ReduceStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(comm_.allreduce_sum(data));
  const int n = comm_.size();
  const int64_t bytes = static_cast<int64_t>(data.size_bytes());
  const int64_t moved = n > 1 ? 2 * bytes * (n - 1) / n : 0;
  stats.bytes_sent += moved;
  stats.bytes_received += moved;
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

}  // namespace fedsilo::mpi
