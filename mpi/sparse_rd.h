// sparse-rd: recursive doubling on sparse vectors (SparCML, Renggli et al., SC'19). In step k
// each rank swaps its partial sum with the rank 2^k away and merges, so after log2(P) steps
// every rank holds the sum. Partial sums fill in as they grow (d, ~2d, ~4d ... for random
// supports); once a sparse payload would be larger than the dense one (bitmap n/8 + 4 nnz vs
// 4n: from ~97% fill) the rank switches to dense payloads for the rest of the exchange.
// Any rank count: with P = p2 + e (p2 a power of two), ranks 2i and 2i+1 for i < e first fold
// (the even rank hands its vector to the odd one), the p2 remaining ranks double, and each
// folded rank gets the result from its partner at the end.
#pragma once

#include "mpi/algorithm.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

class SparseRecursiveDoubling final : public SparseAllreduceAlgorithm {
 public:
  /// `peers` describes `comm`'s members (world ranks for messages, nodes for byte counts).
  SparseRecursiveDoubling(Comm& comm, PeerMap peers, SparseOptions options)
      : comm_(comm), peers_(std::move(peers)), options_(std::move(options)) {}
  [[nodiscard]] std::string name() const override { return "sparse-rd"; }
  /// Every rank ends with bitwise the same sum: merges are symmetric (a + b == b + a), and a
  /// rank that sends dense first turns its own partial sum dense, so both partners always
  /// combine the same two representations.
  [[nodiscard]] Status sum(uint32_t round, const kernels::SparseVector& mine, std::span<float> out,
                           AllreduceStats& stats) override;
  /// sum() without the final agreement (see SparseAllgather::exchange).
  [[nodiscard]] Status exchange(uint32_t round, const kernels::SparseVector& mine,
                                std::span<float> out, AllreduceStats& stats, Status& local);
  /// The exchange step (1-based, fold included) at which this rank's partial sum turned dense
  /// in the last call; 0 if it stayed sparse. For benchmarks.
  [[nodiscard]] int last_dense_step() const { return last_dense_step_; }

 private:
  Comm& comm_;
  PeerMap peers_;
  SparseOptions options_;
  int last_dense_step_ = 0;
};

}  // namespace fedsilo::mpi
