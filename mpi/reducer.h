// The dense reduction interface: how a float buffer is summed in place across ranks. Its
// implementations are the dense algorithms (mpi::DenseAllreduceAlgorithm in mpi/algorithm.h:
// dense-flat, dense-hier, sparse-hier); per-silo compressed contributions go through
// mpi::SparseAllreduceAlgorithm.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"

namespace fedsilo::mpi {

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
  /// Where this rank's `data` can live so that the reducer reads it without a copy: n floats of
  /// the reducer's own memory (sparse-hier: this rank's segment of the node-shared window,
  /// which the leader's compressor reads in place), or an empty span where any memory does.
  /// The caller writes its update there and passes the span to sum(); it stays valid, and the
  /// caller's to use between calls, until the reducer is destroyed. Collective over the
  /// reducer's ranks, with the same n everywhere; for calls of that length only.
  [[nodiscard]] virtual Result<std::span<float>> buffer(int64_t n) {
    (void)n;
    return std::span<float>();
  }
};

}  // namespace fedsilo::mpi
