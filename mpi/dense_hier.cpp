// dense-hier: node-local reduce-scatter, cross-node allreduce, node-local allgather.
#include "mpi/dense_hier.h"

#include <chrono>
#include <cstdint>
#include <vector>

namespace fedsilo::mpi {
Status DenseHier::reduce(uint32_t /*round*/, std::span<float> data, AllreduceStats& stats) {
  const auto t_start = std::chrono::steady_clock::now();
  Comm& node = topo_.node();
  Comm& cross = topo_.cross();
  const int L = node.size(), N = topo_.num_nodes(), j = node.rank();
  const auto n = static_cast<int64_t>(data.size());
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));

  if (topo_.uniform()) {
    if (n / L + 1 > INT32_MAX) return invalid_argument("dense-hier: piece above 2^31 floats");
    // Local rank q owns [off_q, off_q + counts[q]): n = 10, L = 4 gives 3, 3, 2, 2.
    std::vector<int> counts(L);
    for (int q = 0; q < L; ++q) counts[q] = static_cast<int>(n / L + (q < n % L ? 1 : 0));
    std::vector<float> piece(static_cast<size_t>(counts[j]));
    auto t0 = std::chrono::steady_clock::now();
    FEDSILO_CHECK(node.reduce_scatter_sum(data, piece, counts));
    stats.intra_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    // Every member of this cross communicator has local rank j, hence the same piece length.
    if (N > 1) FEDSILO_CHECK(cross.allreduce_sum(std::span<float>(piece)));
    stats.inter_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    FEDSILO_CHECK(node.allgatherv(piece, data, counts));
    stats.intra_seconds += seconds_since(t0);
    const int64_t piece_bytes = static_cast<int64_t>(counts[j]) * 4;
    const int64_t intra = 2 * bytes * (L - 1) / L;  // reduce-scatter + allgather, ring model
    const int64_t inter = N > 1 ? 2 * piece_bytes * (N - 1) / N : 0;
    stats.intra_bytes_sent += intra;
    stats.intra_bytes_received += intra;
    stats.inter_bytes_sent += inter;
    stats.inter_bytes_received += inter;
  } else {
    auto t0 = std::chrono::steady_clock::now();
    FEDSILO_CHECK(node.reduce_sum(data, 0));
    stats.intra_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    if (topo_.is_leader() && N > 1) FEDSILO_CHECK(cross.allreduce_sum(data));
    stats.inter_seconds += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    FEDSILO_CHECK(node.broadcast(data, 0));
    stats.intra_seconds += seconds_since(t0);
    // Direct model: each non-leader sends its buffer up and gets the sum back.
    if (topo_.is_leader()) {
      stats.intra_bytes_received += bytes * (L - 1);
      stats.intra_bytes_sent += bytes * (L - 1);
      const int64_t inter = N > 1 ? 2 * bytes * (N - 1) / N : 0;
      stats.inter_bytes_sent += inter;
      stats.inter_bytes_received += inter;
    } else {
      stats.intra_bytes_sent += bytes;
      stats.intra_bytes_received += bytes;
    }
  }
  stats.total_seconds += seconds_since(t_start);
  return {};
}

}  // namespace fedsilo::mpi
