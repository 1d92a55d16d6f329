// dense-flat: the baseline reducer, one MPI_Allreduce over the flat update.
#pragma once

#include "mpi/algorithm.h"
#include "mpi/comm.h"

namespace fedsilo::mpi {

class DenseAllreduce final : public DenseAllreduceAlgorithm {
 public:
  /// `single_node`: the bytes and seconds are reported as intra-node (else as inter-node:
  /// MPI_Allreduce does not say which of its messages crossed nodes).
  explicit DenseAllreduce(Comm& comm, bool single_node = false)
      : comm_(comm), single_node_(single_node) {}
  [[nodiscard]] std::string name() const override { return "dense-flat"; }
  /// Bytes are counted with the bandwidth-optimal (ring) model that busbw uses: each rank
  /// sends and receives 2(n-1)/n of the buffer. MPI_Allreduce may pick another algorithm
  /// internally; the model is what the wire needs at best.
  [[nodiscard]] Status reduce(uint32_t round, std::span<float> data,
                              AllreduceStats& stats) override;

 private:
  Comm& comm_;
  bool single_node_;
};

}  // namespace fedsilo::mpi
