// dense-flat: the baseline reducer, one MPI_Allreduce over the flat update.
#pragma once

#include "mpi/reducer.h"
#include "mpi/comm.h"

namespace fedsilo::mpi {

class DenseAllreduce final : public Reducer {
 public:
  explicit DenseAllreduce(Comm& comm) : comm_(comm) {}
  [[nodiscard]] std::string name() const override { return "dense-flat"; }
  /// Bytes are counted with the bandwidth-optimal (ring) model that busbw uses: each rank
  /// sends and receives 2(n-1)/n of the buffer. MPI_Allreduce may pick another algorithm
  /// internally; the model is what the wire needs at best.
  [[nodiscard]] Status sum(std::span<float> data, ReduceStats& stats) override;

 private:
  Comm& comm_;
};

}  // namespace fedsilo::mpi
