// sparse-hier (compression level "node"): the ranks of a node sum their dense updates at the
// node's leader, the leader compresses the node sum (the compressor, with its error-feedback
// residual, is a callback), the leaders exchange the sparse node sums (allgather or recursive
// doubling), and each leader broadcasts the total inside its node. Only N leader payloads of
// ~d * n * (value + index) bytes cross nodes, instead of every silo's.
//
// The node phase runs through a node-shared window (mpi::SharedWindow) where MPI can map one:
// every other rank stores its update in its segment once, the leader's compressor adds the
// segments to its own update in local-rank order inside its error-feedback pass (the node sum
// is never written out; no message copies through MPI's buffers), and after the
// leaders' allgather the leader puts the gathered payloads into the window and every rank of
// the node decodes and merges them itself, in parallel (after recursive doubling, or where the
// payloads do not fit, the leader publishes the result's nonzeros, 8 bytes each, or the dense
// vector when that is smaller, for the others to scatter), so the dense result never crosses
// the node. The result is bitwise the same on every rank. Where
// the window cannot be mapped (or FEDSILO_SPARSE_HIER_SHM=0, for comparisons), MPI_Reduce and
// MPI_Bcast of the dense vector do the node phase.
#pragma once

#include <functional>
#include <memory>

#include "mpi/algorithm.h"
#include "mpi/comm.h"
#include "mpi/sparse_allgather.h"
#include "mpi/sparse_rd.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

/// Compresses a node's dense sum on its leader (e.g. top-k with the leader's residual): the
/// sum is `own` + peers[0] + peers[1] + ... in that order (each own.size() floats; the other
/// ranks' updates in node-shared memory, or no peers when `own` already holds the node sum),
/// so a compressor can add them inside its own pass (Compressor::compress_sum). Returned
/// indices must be strictly ascending with length == own.size().
using NodeCompressor = std::function<Result<kernels::SparseVector>(
    std::span<const float> own, std::span<const float* const> peers)>;

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
  /// On the other ranks of a node with a shared window: their segment (n floats), whose update
  /// the leader then reads in place instead of a copy of it. Empty on leaders (the compressor
  /// reads their own memory) and where no window can be mapped. Collective over the world.
  [[nodiscard]] Result<std::span<float>> buffer(int64_t n) override;
  /// Whether the last call's node phase ran through the shared window.
  [[nodiscard]] bool node_phase_shared() const { return window_.valid() && use_window_; }

 private:
  /// The node phase through messages (MPI_Reduce / MPI_Bcast of the dense vector).
  [[nodiscard]] Status node_sum_messages(std::span<float> data);
  [[nodiscard]] Status node_result_messages(std::span<float> data, AllreduceStats& stats);
  /// The node phase through the shared window: a rank's update is copied into its segment
  /// unless `data` already is that segment (buffer()).
  /// Leaves the peers' updates in the window for the compressor (their addresses in peers_).
  [[nodiscard]] Status node_sum_shared(std::span<float> data);
  [[nodiscard]] Status node_result_shared(std::span<float> data, AllreduceStats& stats);
  /// After the leaders' allgather: the leader puts the gathered payloads into the window and
  /// every rank of the node merges them (the same code, the same bits), in parallel. Returns
  /// false, having moved nothing, where they do not fit the window (the caller then merges on
  /// the leader and publishes the result). Collective over the node.
  [[nodiscard]] Result<bool> node_merge_shared(uint32_t round, std::span<float> data,
                                               AllreduceStats& stats, Status& local);
  /// Maps (or grows) the window for n floats; false where it cannot be mapped (agreed on the
  /// node, so every rank of it takes the same path).
  [[nodiscard]] Result<bool> ensure_window(int64_t n);

  Topology& topo_;
  NodeCompressor compress_;
  SharedWindow window_;
  bool use_window_ = true;
  bool gathers_ = true;  // the leaders exchange by allgather (every rank knows)
  std::vector<const float*> peers_;  // on the leader: the other ranks' updates, this call
  std::vector<DecodedPayload> decoded_;  // merge scratch on the ranks that merge payloads
  std::unique_ptr<SparseAllgather> allgather_;
  std::unique_ptr<SparseRecursiveDoubling> rd_;
};

}  // namespace fedsilo::mpi
