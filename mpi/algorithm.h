// The two families of allreduce algorithms and what one call reports: dense algorithms sum a
// float span in place (and are Reducers, so the round driver can hold any of them); sparse
// algorithms take each rank's kernels::SparseVector and give every rank the dense sum.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "mpi/reducer.h"
#include "kernels/sparse_vector.h"
#include "mpi/comm.h"
#include "mpi/wire_format.h"

namespace fedsilo::mpi {

/// Bytes and seconds of one call on this rank. Bytes are payload bytes through the wire
/// format (or floats for dense algorithms, per the model each algorithm documents), split by
/// whether the peer is on this rank's node.
struct AllreduceStats {
  int64_t intra_bytes_sent = 0;
  int64_t intra_bytes_received = 0;
  int64_t inter_bytes_sent = 0;
  int64_t inter_bytes_received = 0;
  double encode_seconds = 0.0;  // wire encoding (and, for sparse-hier, the leader's compressor)
  double intra_seconds = 0.0;   // node-local communication
  double inter_seconds = 0.0;   // communication that crosses nodes
  double decode_seconds = 0.0;  // decoding and merging into the result
  double total_seconds = 0.0;   // wall time of the call, agreement included

  [[nodiscard]] int64_t bytes_sent() const { return intra_bytes_sent + inter_bytes_sent; }
  [[nodiscard]] int64_t bytes_received() const {
    return intra_bytes_received + inter_bytes_received;
  }
  void add(const AllreduceStats& o);
  /// Adds the totals to the round driver's coarser stats.
  void add_to(ReduceStats& s) const;
};

/// Called on every payload this rank is about to send; tests set it on one rank to inject a
/// malformed payload. Empty in production.
using PayloadHook = std::function<void(std::vector<uint8_t>& payload)>;

/// Settings shared by the sparse algorithms.
struct SparseOptions {
  /// Value type of the silos' own values on the wire (they should already be rounded to it by
  /// the compressor; partial sums travel in it only when that is lossless, else fp32).
  kernels::ValueType value_type = kernels::ValueType::kFp32;
  IndexChoice index = IndexChoice::kAuto;
  /// sparse-rd: send dense once the sparse payload reaches this fraction of the dense one.
  double dense_switch_fraction = 1.0;
  PayloadHook tamper;
};

/// Dense family: in-place sum of a float span over all ranks.
class DenseAllreduceAlgorithm : public Reducer {
 public:
  /// In place: data becomes the elementwise sum over all ranks. Every rank calls with the same
  /// round and length. Errors (bad payloads, a failing compressor) are agreed: every rank
  /// returns the same Status.
  [[nodiscard]] virtual Status reduce(uint32_t round, std::span<float> data,
                                      AllreduceStats& stats) = 0;
  /// Reducer: reduce() with the number of earlier calls as the round.
  [[nodiscard]] Status sum(std::span<float> data, ReduceStats& stats) final;

 private:
  uint32_t calls_ = 0;
};

/// Sparse family: every rank contributes a SparseVector; every rank gets the dense sum.
class SparseAllreduceAlgorithm {
 public:
  virtual ~SparseAllreduceAlgorithm() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// `out` (mine.length floats, same on every rank) becomes the sum over ranks of their
  /// densified `mine`. Errors are agreed: every rank returns the same Status.
  [[nodiscard]] virtual Status sum(uint32_t round, const kernels::SparseVector& mine,
                                   std::span<float> out, AllreduceStats& stats) = 0;
};

/// A dense algorithm (dense-flat, dense-hier, sparse-hier) seen as a sparse one: the
/// contribution is densified, then summed in place.
class DensifyingAllreduce final : public SparseAllreduceAlgorithm {
 public:
  /// `world` is where the ranks agree on a malformed contribution before summing.
  DensifyingAllreduce(Comm& world, std::unique_ptr<DenseAllreduceAlgorithm> dense)
      : world_(world), dense_(std::move(dense)) {}
  [[nodiscard]] std::string name() const override { return dense_->name(); }
  [[nodiscard]] Status sum(uint32_t round, const kernels::SparseVector& mine, std::span<float> out,
                           AllreduceStats& stats) override;

 private:
  Comm& world_;
  std::unique_ptr<DenseAllreduceAlgorithm> dense_;
};

/// Seconds since `t0` (phase timings of the algorithms).
[[nodiscard]] inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Keeps the first failure of a sequence of steps (the exchange goes on, the error is agreed
/// once at the end so no rank hangs).
inline void keep_first(Status& local, Status s) {
  if (local.ok() && !s.ok()) local = std::move(s);
}

/// ok if `v` is a well-formed contribution to a sum of `length` floats: that length, as many
/// values as indices, indices strictly ascending and below it, values finite (kDiverged if not).
[[nodiscard]] Status check_contribution(const kernels::SparseVector& v, int64_t length);

/// out[i] = 0 except out[indices[k]] = values[k]. kInvalidArgument if an index is out of range.
[[nodiscard]] Status densify(const kernels::SparseVector& v, std::span<float> out);

}  // namespace fedsilo::mpi
