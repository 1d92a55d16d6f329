// The aggregation transport interface: how silo updates are summed across ranks. The dense
// MPI_Allreduce is the first implementation (mpi/dense_allreduce.h); compressed and hierarchical
// ones plug in here later without touching the round driver.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace fedsilo::fl {

/// Bytes and seconds one reduction spent, per rank.
struct ReduceStats {
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  double seconds = 0.0;
};

class Reducer {
 public:
  virtual ~Reducer() = default;
  /// Name written to metrics and checkpoints ("dense-flat").
  [[nodiscard]] virtual std::string name() const = 0;
  /// In place: data becomes the elementwise sum over all ranks of their `data`.
  /// Every rank must call it with the same length.
  [[nodiscard]] virtual Status sum(std::span<float> data, ReduceStats& stats) = 0;
};

}  // namespace fedsilo::fl
