// sparse-hier: node-local dense reduce, leader compression, sparse leader exchange, broadcast.
#include "mpi/sparse_hier.h"

#include <chrono>

namespace fedsilo::mpi {
SparseHier::SparseHier(Topology& topology, NodeCompressor compressor, LeaderExchange exchange,
                       SparseOptions options)
    : topo_(topology), compress_(std::move(compressor)) {
  if (!topo_.is_leader()) return;
  if (exchange == LeaderExchange::kAllgather) {
    allgather_ =
        std::make_unique<SparseAllgather>(topo_.cross(), topo_.leader_peers(), std::move(options));
  } else {
    rd_ = std::make_unique<SparseRecursiveDoubling>(topo_.cross(), topo_.leader_peers(),
                                                    std::move(options));
  }
}

Status SparseHier::reduce(uint32_t round, std::span<float> data, AllreduceStats& stats) {
  const auto t_start = std::chrono::steady_clock::now();
  Comm& node = topo_.node();
  const int L = node.size();
  const auto n = static_cast<int64_t>(data.size());
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  Status local;

  auto t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(node.reduce_sum(data, 0));
  stats.intra_seconds += seconds_since(t0);

  if (topo_.is_leader()) {
    t0 = std::chrono::steady_clock::now();
    kernels::SparseVector node_sparse;
    node_sparse.length = n;
    if (compress_) {
      auto c = compress_(data);
      if (c.ok()) {
        node_sparse = std::move(c).value();
      } else {
        local =
            Status(c.status().code(), "node " + std::to_string(topo_.node_index()) +
                                          " leader (rank " + std::to_string(topo_.world().rank()) +
                                          ") compressor: " + c.status().message());
      }
    } else {
      local = failed_precondition("sparse-hier: no compressor given");
    }
    stats.encode_seconds += seconds_since(t0);
    // The exchange validates the compressor's output and records what is wrong with it.
    Status ex = allgather_ ? allgather_->exchange(round, node_sparse, data, stats, local)
                           : rd_->exchange(round, node_sparse, data, stats, local);
    FEDSILO_CHECK(ex);
    stats.intra_bytes_received += bytes * (L - 1);
    stats.intra_bytes_sent += bytes * (L - 1);
  } else {
    stats.intra_bytes_sent += bytes;
    stats.intra_bytes_received += bytes;
  }

  t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(node.broadcast(data, 0));
  stats.intra_seconds += seconds_since(t0);
  const Status agreed = topo_.world().agree(local);
  stats.total_seconds += seconds_since(t_start);
  return agreed;
}

}  // namespace fedsilo::mpi
