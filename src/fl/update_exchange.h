// How one round's weighted silo updates become their sum on every rank: per-silo compression
// (top-k / rand-k with error feedback, quantized values) or node-level compression, carried by
// the allreduce algorithm that `[allreduce] algorithm` names or `auto` picks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "compression/compressor.h"
#include "config/config.h"
#include "fl/transform.h"
#include "core/status.h"
#include "mpi/algorithm.h"
#include "mpi/comm.h"
#include "mpi/topology.h"

namespace fedsilo::fl {

/// Seconds per float of a level-node leader's compression (error feedback, selection,
/// encoding) with `zcfg`, on min(length, 2^20) floats, all leaders at once
/// (mpi::calibrate_compute): what `auto` charges sparse-hier. Collective over the world.
/// `cuda_device` >= 0: the compressor runs on that GPU (compression::make_cuda_compressor).
[[nodiscard]] Result<double> measure_leader_compression(mpi::Topology& topology,
                                                        const compression::CompressionConfig& zcfg,
                                                        uint64_t seed, int64_t length,
                                                        int cuda_device = -1);

/// What one exchange cost this rank.
struct ExchangeStats {
  int64_t intra_bytes_sent = 0, intra_bytes_received = 0;
  int64_t inter_bytes_sent = 0, inter_bytes_received = 0;
  int64_t payload_bytes = 0;     // this rank's compressed contribution on the wire (0 if none)
  int64_t dense_bytes = 0;       // 4 n: the same contribution uncompressed
  double compress_seconds = 0, intra_seconds = 0, inter_seconds = 0, decompress_seconds = 0;
  [[nodiscard]] int64_t bytes_sent() const { return intra_bytes_sent + inter_bytes_sent; }
  /// Takes what an allreduce algorithm reported: bytes and seconds per level, its decoding
  /// (as decompression) and its encoding (added to compression).
  void take(const mpi::AllreduceStats& as) {
    intra_bytes_sent = as.intra_bytes_sent;
    intra_bytes_received = as.intra_bytes_received;
    inter_bytes_sent = as.inter_bytes_sent;
    inter_bytes_received = as.inter_bytes_received;
    intra_seconds = as.intra_seconds;
    inter_seconds = as.inter_seconds;
    decompress_seconds = as.decode_seconds;
    compress_seconds += as.encode_seconds;
  }
  [[nodiscard]] int64_t bytes_received() const { return intra_bytes_received + inter_bytes_received; }
};

class UpdateExchange {
 public:
  /// Builds the topology, the compressor and the algorithm. `resolved_algorithm` is the
  /// algorithm a resumed checkpoint recorded (reused instead of re-running `auto`), or empty.
  /// `cuda_device` >= 0 (the rank trains on that GPU): the compressor runs there too, with the
  /// same results. Collective.
  static Result<std::unique_ptr<UpdateExchange>> create(const config::Config& cfg,
                                                        mpi::Comm& world, int64_t length,
                                                        const std::string& resolved_algorithm,
                                                        int cuda_device = -1);
  ~UpdateExchange();

  /// The algorithm in use ("dense-flat", ... never "auto"), for metrics and checkpoints.
  [[nodiscard]] const std::string& algorithm() const;
  /// "4 nodes x 2 ranks (emulated)", for the start-up line.
  [[nodiscard]] std::string topology() const;
  /// The ranks' nodes as the exchange sees them (real or emulated): the one Topology of the
  /// run, which the device sum uses too. Valid for the exchange's life.
  [[nodiscard]] mpi::Topology& node_topology();
  /// The node of each rank, "0,0,1,1": what a checkpoint records of the placement.
  [[nodiscard]] std::string layout() const;
  /// Whether compressor state (residual, velocity) lives on the node leaders (level node), so
  /// that a resumed run must keep the rank-to-node layout.
  [[nodiscard]] bool state_on_leaders() const;

  /// In place: `update` (this rank's weighted update, zeros if it did not train) becomes the
  /// sum over all ranks, after the silo's transform chain; `stats` becomes this exchange's.
  /// Collective; errors are agreed. Under secure aggregation there is no algorithm here
  /// (SecureAggregation sums): kInternal.
  [[nodiscard]] Status exchange(uint32_t round, std::span<float> update, bool trained,
                                ExchangeStats& stats);

  /// Runs this silo's transform chain (compression at level silo, or under secure
  /// aggregation) on `mine.dense` where it trained: `mine` ends sparse if the chain selects.
  /// An untrained silo's state stays as it was. Errors name the transform; not agreed.
  [[nodiscard]] Status run_chain(uint32_t round, bool trained, SiloUpdate& mine);
  /// Under secure aggregation with compression: the chain's selection at the shared index set
  /// (which the aggregation asks for each round's set); else null.
  [[nodiscard]] SharedIndexTransform* shared_index_transform();

  /// Where this rank's update can be written so that the exchange reads it without a copy
  /// (mpi::Reducer::buffer: at level node on sparse-hier, the rank's segment of the node-shared
  /// window), `length` floats; empty where the exchange has no such memory (use any). Valid
  /// for the exchange's life. Collective.
  [[nodiscard]] Result<std::span<float>> buffer();
  /// This rank's private compressor state (error-feedback residual, DGC velocity): saved with
  /// the silo's checkpoint, never sent. Empty vectors when unused.
  [[nodiscard]] std::vector<float>& residual();
  [[nodiscard]] std::vector<float>& velocity();
  /// Every private vector of this rank by checkpoint name: each transform's of the silo's chain
  /// (fl/transform.h), and at level node the leader's compressor state.
  [[nodiscard]] std::vector<std::pair<std::string, std::vector<float>*>> private_state();

 private:
  struct Impl;
  explicit UpdateExchange(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::fl
