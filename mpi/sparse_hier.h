// sparse-hier (compression level "node"): the ranks of a node sum their dense updates at the
// node's leader, the leader compresses the node sum (the compressor, with its error-feedback
// residual, is a callback), the leaders exchange the sparse node sums (allgather or recursive
// doubling), and each leader broadcasts the total inside its node. Only N leader payloads of
// ~d * n * (value + index) bytes cross nodes, instead of every silo's.
#pragma once

#include <functional>
#include <memory>

#include "mpi/algorithm.h"
#include "mpi/sparse_allgather.h"
#include "mpi/sparse_rd.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

/// Compresses a node's dense sum on its leader (e.g. top-k with the leader's residual).
/// Returned indices must be strictly ascending with length == node_sum.size().
using NodeCompressor =
    std::function<Result<kernels::SparseVector>(std::span<const float> node_sum)>;

/// How leaders exchange their compressed node sums.
enum class LeaderExchange : uint8_t { kAllgather, kRecursiveDoubling };

class SparseHier final : public DenseAllreduceAlgorithm {
 public:
  /// Collective-free; the leaders' exchange is built on the leaders only.
  SparseHier(Topology& topology, NodeCompressor compressor, LeaderExchange exchange,
             SparseOptions options);
  [[nodiscard]] std::string name() const override { return "sparse-hier"; }
  /// `data` is this rank's dense update; it becomes the sum over nodes of the compressed node
  /// sums, on every rank. A failing compressor or a malformed payload is agreed over the
  /// world: every rank returns the same error. Intra-node bytes follow the direct model (each
  /// non-leader sends its buffer up and receives the result back).
  [[nodiscard]] Status reduce(uint32_t round, std::span<float> data,
                              AllreduceStats& stats) override;

 private:
  Topology& topo_;
  NodeCompressor compress_;
  std::unique_ptr<SparseAllgather> allgather_;
  std::unique_ptr<SparseRecursiveDoubling> rd_;
};

}  // namespace fedsilo::mpi
