// Communicators for fedsilo: a world communicator with MPI_ERRORS_RETURN, node-local info, the
// collectives the round driver needs, and collective agreement on errors. No MPI types leak out
// of this header (mpi.h is included only by mpi/*.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace fedsilo::mpi {

/// MPI_Init / MPI_Finalize as an RAII object. Only one per process.
class Runtime {
 public:
  static Result<std::unique_ptr<Runtime>> init(int* argc, char*** argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  /// Stops every rank of the job (last resort when ranks can no longer agree).
  [[noreturn]] static void abort_job(int code);

 private:
  Runtime() = default;
};

/// A duplicated communicator with MPI_ERRORS_RETURN set; every call is checked and failures
/// become kCommError naming the call.
class Comm {
 public:
  /// Duplicates MPI_COMM_WORLD.
  static Result<Comm> world();
  ~Comm();
  Comm(Comm&&) noexcept;
  Comm& operator=(Comm&&) noexcept;
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// Rank and size inside this rank's node (MPI_Comm_split_type shared).
  [[nodiscard]] int local_rank() const { return local_rank_; }
  [[nodiscard]] int local_size() const { return local_size_; }

  [[nodiscard]] Status barrier();
  /// A barrier whose waiting ranks sleep (20-200 us naps between tests of an MPI_Ibarrier)
  /// instead of polling, leaving the cores to the ranks still working; it costs up to a nap
  /// of latency, so it is for waits of milliseconds. FEDSILO_SHM_SPIN=1 polls instead.
  [[nodiscard]] Status barrier_sleeping();
  /// In-place elementwise sums across all ranks.
  [[nodiscard]] Status allreduce_sum(std::span<float> data);
  [[nodiscard]] Status allreduce_sum(std::span<double> data);
  [[nodiscard]] Status allreduce_sum(std::span<int64_t> data);
  /// Modulo 2^32 (unsigned arithmetic wraps): secure aggregation's masked integer sum.
  [[nodiscard]] Status allreduce_sum(std::span<uint32_t> data);
  [[nodiscard]] Status allreduce_max(std::span<double> data);
  /// Every rank contributes `mine` (same length everywhere); result is size() * mine.size(),
  /// rank-major.
  [[nodiscard]] Status allgather(std::span<const double> mine, std::vector<double>& all);
  [[nodiscard]] Status broadcast(std::span<uint8_t> data, int root);
  [[nodiscard]] Status broadcast(std::string& s, int root);

  /// Collective agreement on an outcome: every rank passes its own status and every rank gets
  /// back the same one: ok if all were ok, else the status of the lowest failing rank (whose
  /// message names the silo, key or path at fault).
  [[nodiscard]] Status agree(const Status& local);

  // ---- Used by the topology and the allreduce algorithms (mpi/topology.h, mpi/sparse_*.h).

  /// MPI_Comm_split: one new communicator per distinct `color` (>= 0), ranks ordered by `key`.
  /// Collective over this communicator.
  [[nodiscard]] Result<Comm> split(int color, int key) const;
  /// The ranks of this communicator that share memory with this rank (MPI_Comm_split_type
  /// shared), ordered by rank. Collective.
  [[nodiscard]] Result<Comm> split_shared() const;

  /// Sends `send` to `dest` while receiving a message of any length from `source` into `recv`
  /// (sizes are exchanged first, so receivers need not know them). Messages above 2^30 bytes
  /// go in chunks. `dest` and `source` may be the same rank.
  [[nodiscard]] Status sendrecv_bytes(std::span<const uint8_t> send, int dest,
                                      std::vector<uint8_t>& recv, int source, int tag);
  /// One-sided halves of sendrecv_bytes (a send must be matched by a recv_bytes).
  [[nodiscard]] Status send_bytes(std::span<const uint8_t> data, int dest, int tag);
  [[nodiscard]] Status recv_bytes(std::vector<uint8_t>& data, int source, int tag);

  /// Every rank contributes `mine` (same length everywhere); rank-major result.
  [[nodiscard]] Status allgather(std::span<const int64_t> mine, std::vector<int64_t>& all);
  /// Every rank contributes a byte string of its own length; `all` is their concatenation in
  /// rank order and `offsets` (size() + 1 entries) where each one starts.
  [[nodiscard]] Status allgatherv_bytes(std::span<const uint8_t> mine, std::vector<uint8_t>& all,
                                        std::vector<int64_t>& offsets);
  /// Elementwise sum of every rank's `data` into `data` on `root` (other ranks' `data` is
  /// left as it was). Chunked above 2^30 elements.
  [[nodiscard]] Status reduce_sum(std::span<float> data, int root);
  /// `data` on `root` copied to every rank. Chunked above 2^30 elements.
  [[nodiscard]] Status broadcast(std::span<float> data, int root);
  /// MPI_Reduce_scatter: the elementwise sum of every rank's `in` (sum of `counts` elements),
  /// split in rank order; this rank receives its counts[rank()] elements in `out`.
  [[nodiscard]] Status reduce_scatter_sum(std::span<const float> in, std::span<float> out,
                                          std::span<const int> counts);
  /// MPI_Allgatherv: rank q contributes counts[q] floats; `all` receives them in rank order.
  [[nodiscard]] Status allgatherv(std::span<const float> mine, std::span<float> all,
                                  std::span<const int> counts);

 private:
  friend class SharedWindow;
  friend class IntegerSum;
  Comm() = default;
  /// Fills rank/size/local info and the error handler once h_->world is set.
  [[nodiscard]] Status finish_init();
  struct Handles;
  std::unique_ptr<Handles> h_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

/// Memory that every rank of a one-node communicator reads and writes directly
/// (MPI_Win_allocate_shared, kept locked for the window's life): rank q owns segment(q).
/// sparse-hier's node phase runs through it instead of messages. Stores become visible to
/// other ranks' loads only across sync().
class SharedWindow {
 public:
  /// Collective over `comm`, whose ranks must share memory; `bytes` per rank (>= 1). Fails
  /// (kCommError naming the call) where MPI cannot map the segments, e.g. ranks on two hosts.
  [[nodiscard]] static Result<SharedWindow> allocate(const Comm& comm, int64_t bytes);
  SharedWindow();
  ~SharedWindow();  // collective (MPI_Win_free): every rank destroys it at the same point
  SharedWindow(SharedWindow&&) noexcept;
  SharedWindow& operator=(SharedWindow&&) noexcept;
  SharedWindow(const SharedWindow&) = delete;
  SharedWindow& operator=(const SharedWindow&) = delete;

  [[nodiscard]] bool valid() const { return h_ != nullptr; }
  [[nodiscard]] int64_t bytes() const { return bytes_; }
  [[nodiscard]] std::byte* segment(int rank) const { return base_[static_cast<size_t>(rank)]; }
  /// Makes every rank's earlier stores visible to every rank's later loads (MPI_Win_sync,
  /// barrier, MPI_Win_sync). Collective. Waiting ranks sleep (20-200 us naps between tests of
  /// an MPI_Ibarrier) instead of polling, leaving the cores to the ranks that work (a node
  /// leader compressing); FEDSILO_SHM_SPIN=1 polls in MPI_Barrier instead (for comparisons).
  [[nodiscard]] Status sync();

 private:
  struct Handles;
  std::unique_ptr<Handles> h_;
  int64_t bytes_ = 0;
  std::vector<std::byte*> base_;
};

}  // namespace fedsilo::mpi
