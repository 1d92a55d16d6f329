// Communicators for fedsilo: a world communicator with MPI_ERRORS_RETURN, node-local info, the
// collectives the round driver needs, and collective agreement on errors. No MPI types leak out
// of this header (mpi.h is included only by mpi/*.cpp).
#pragma once

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
  /// In-place elementwise sums across all ranks.
  [[nodiscard]] Status allreduce_sum(std::span<float> data);
  [[nodiscard]] Status allreduce_sum(std::span<double> data);
  [[nodiscard]] Status allreduce_sum(std::span<int64_t> data);
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

 private:
  Comm() = default;
  struct Handles;
  std::unique_ptr<Handles> h_;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
};

}  // namespace fedsilo::mpi
