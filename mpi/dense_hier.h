// dense-hier: Horovod's hierarchical allreduce. Inside each node a reduce-scatter leaves local
// rank j with 1/L of the node sum, the j-th ranks of all nodes allreduce their piece across
// nodes, and a node-local allgather puts the pieces back together. Only the cross-node step
// uses the network: 2(N-1)/N of the buffer per node instead of dense-flat's 2(P-1)/P spread
// over L ranks that share one link.
#pragma once

#include "mpi/algorithm.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

class DenseHier final : public DenseAllreduceAlgorithm {
 public:
  explicit DenseHier(Topology& topology) : topo_(topology) {}
  [[nodiscard]] std::string name() const override { return "dense-hier"; }
  /// Uniform nodes (L ranks each): reduce-scatter, cross allreduce, allgather; a length n not
  /// divisible by L gives the first n % L local ranks one element more (explicit leftovers,
  /// no padding). Uneven nodes: reduce to the leader, allreduce among leaders, broadcast.
  /// Bytes follow the ring model: a reduce-scatter or allgather over L ranks moves (L-1)/L of
  /// the buffer per rank, an allreduce over N ranks 2(N-1)/N of its piece.
  [[nodiscard]] Status reduce(uint32_t round, std::span<float> data,
                              AllreduceStats& stats) override;

 private:
  Topology& topo_;
};

}  // namespace fedsilo::mpi
