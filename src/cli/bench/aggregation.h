// One whole aggregation of a training round, as fl::UpdateExchange runs it, for the allreduce
// benchmark: per-silo compression (error feedback + selection) then a sparse or densifying
// exchange (level "silo"), or the dense node sum, the leader's compression and the leaders'
// sparse exchange (level "node", sparse-hier), or plain dense reduction (no compression).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compression/compressor.h"
#include "core/status.h"
#include "kernels/sparse_vector.h"
#include "mpi/algorithm.h"
#include "mpi/selector.h"
#include "mpi/topology.h"

namespace fedsilo::bench {

/// What every row shares.
struct AggregationSettings {
  mpi::CompressionLevel level = mpi::CompressionLevel::kSilo;
  compression::Method method = compression::Method::kTopk;
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  bool error_feedback = true;
  int threads = 1;
  uint64_t seed = 1;

  /// The compressor these settings describe, at `density`.
  [[nodiscard]] compression::CompressionConfig compression_config(double density) const {
    compression::CompressionConfig zc;
    zc.method = method;
    zc.density = density;
    zc.value_type = value_type;
    zc.error_feedback = error_feedback;
    zc.threads = threads;
    return zc;
  }
};

/// Seconds and bytes of one aggregation on this rank.
struct AggregationStats {
  mpi::AllreduceStats exchange;  // what the algorithm reports
  double compress_seconds = 0;   // silo level: this rank's compressor (+ agreement on it)
  /// CPU time of this rank's compressor call (the leader's at level node): against the wall
  /// time it shows how much of the selection waited for a core shared with other ranks.
  double compress_cpu_seconds = 0;
};

class Aggregation {
 public:
  /// `algorithm` is a concrete name (dense-flat, dense-hier, sparse-allgather, sparse-rd,
  /// sparse-hier); `density` >= 1 means no compression. kInvalidArgument when the pair does not
  /// exist in training (sparse-allgather/-rd at level node, sparse-hier at level silo, a sparse
  /// algorithm without compression). Not collective.
  static Result<std::unique_ptr<Aggregation>> create(mpi::Topology& topology,
                                                     const AggregationSettings& settings,
                                                     double density, const std::string& algorithm,
                                                     mpi::LeaderExchange leader_exchange);

  /// Where `out` should live for calls of n floats: the reducer's own memory where it reads the
  /// update from there without a copy (mpi::Reducer::buffer; sparse-hier's node-shared window
  /// segment, as training writes its update there), else `fallback`. Collective.
  [[nodiscard]] Result<std::span<float>> output(int64_t n, std::span<float> fallback);
  /// Untimed set-up of one call: dense paths reduce in place, so `update` is copied to `out`.
  void prepare(std::span<const float> update, std::span<float> out) const;
  /// The timed part: `out` becomes the aggregate of every rank's `update`. Collective; errors
  /// are agreed by the algorithms.
  [[nodiscard]] Status run(uint32_t round, std::span<const float> update, std::span<float> out,
                           AggregationStats& stats);

  /// Keep a copy of this rank's compressed contribution (silo level: always; node level: the
  /// leader's compressed node sum, copied only while capturing, since the copy is not part of
  /// training's work).
  void set_capture(bool on) { capture_ = on; }
  /// The last compressed contribution of this rank (empty with length 0 if it has none:
  /// uncompressed paths, non-leaders at level node).
  [[nodiscard]] const kernels::SparseVector& contribution() const { return contribution_; }
  /// Wire bytes of contribution() as the algorithms encode it (0 if none).
  [[nodiscard]] Result<int64_t> contribution_wire_bytes() const;
  /// Forget the error-feedback residual (before the timed run, after a check).
  void reset_state() { state_ = {}; }

  [[nodiscard]] bool compressed() const { return compressor_ != nullptr; }

 private:
  Aggregation(mpi::Topology& topology, const AggregationSettings& settings)
      : topo_(topology), settings_(settings) {}

  mpi::Topology& topo_;
  AggregationSettings settings_;
  std::unique_ptr<compression::Compressor> compressor_;  // null: no compression
  compression::CompressorState state_;
  std::unique_ptr<mpi::SparseAllreduceAlgorithm> sparse_;  // level silo with compression
  std::unique_ptr<mpi::Reducer> dense_;                     // level node, or uncompressed
  kernels::SparseVector contribution_;
  bool capture_ = false;
  uint32_t round_ = 0;         // for the node compressor callback
  double compress_cpu_ = 0.0;  // CPU seconds of the node compressor call in this run()
};

}  // namespace fedsilo::bench
