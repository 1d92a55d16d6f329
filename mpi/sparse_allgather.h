// sparse-allgather: every rank's encoded sparse contribution goes to every rank (payload sizes
// first, then one MPI_Allgatherv of the bytes), and each rank decodes and adds them in rank
// order. Each rank receives (P-1) payloads of ~nnz * (value + index) bytes: at density d it
// beats a ring allreduce's 2 * 4n bytes while (P-1) * d * (4 + 1) < 8, e.g. d < 1.1% at P = 32.
#pragma once

#include "mpi/algorithm.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

class SparseAllgather final : public SparseAllreduceAlgorithm {
 public:
  /// `peers` describes `comm`'s members (world ranks for messages, nodes for byte counts).
  SparseAllgather(Comm& comm, PeerMap peers, SparseOptions options)
      : comm_(comm), peers_(std::move(peers)), options_(std::move(options)) {}
  [[nodiscard]] std::string name() const override { return "sparse-allgather"; }
  /// Bytes: every payload counts once per receiver (what Allgatherv has to deliver), so this
  /// rank sends its payload size times the number of other ranks.
  [[nodiscard]] Status sum(uint32_t round, const kernels::SparseVector& mine, std::span<float> out,
                           AllreduceStats& stats) override;
  /// sum() without the final agreement, for algorithms that agree over a larger communicator.
  /// Returns only MPI failures; the first malformed contribution or payload lands in `local`
  /// and the exchange still completes on every rank.
  [[nodiscard]] Status exchange(uint32_t round, const kernels::SparseVector& mine,
                                std::span<float> out, AllreduceStats& stats, Status& local);
  /// exchange() in its two halves: gather() moves the payloads (afterwards payloads() and
  /// offsets() hold every rank's, payload q at [offsets[q], offsets[q + 1])), then
  /// merge_payloads() below turns them into the sum. sparse-hier's other ranks merge the
  /// leaders' payloads themselves, in parallel with their leader.
  [[nodiscard]] Status gather(uint32_t round, const kernels::SparseVector& mine, int64_t length,
                              AllreduceStats& stats, Status& local);
  [[nodiscard]] std::span<const uint8_t> payloads() const { return recv_; }
  [[nodiscard]] std::span<const int64_t> offsets() const { return offsets_; }
  [[nodiscard]] const PeerMap& peers() const { return peers_; }

 private:
  Comm& comm_;
  PeerMap peers_;
  SparseOptions options_;
  std::vector<uint8_t> send_, recv_;
  std::vector<int64_t> offsets_;
  std::vector<DecodedPayload> decoded_;
};

/// `out` = the sum of the payloads (payload q from world rank senders.world_rank[q], at
/// bytes[offsets[q], offsets[q + 1])), decoded and added in sender order: every rank that
/// merges the same payloads gets the same bits. A malformed payload lands in `local` (the first
/// one) and is skipped. `scratch` holds the decoded payloads (one each, reused across calls).
void merge_payloads(uint32_t round, const PeerMap& senders, std::span<const uint8_t> bytes,
                    std::span<const int64_t> offsets, std::span<float> out,
                    std::vector<DecodedPayload>& scratch, Status& local);

}  // namespace fedsilo::mpi
