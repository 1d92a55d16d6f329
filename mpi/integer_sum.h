// The masked-integer sum of secure aggregation (uint32 words, modulo 2^32) as a pipeline. The
// caller hands its vector over piece by piece as it finishes masking each one; each piece's sum
// starts at once as non-blocking collectives and moves while the caller masks the next piece.
// Open MPI advances non-blocking collectives only inside MPI calls, so the caller calls
// progress() between its blocks of work. Two shapes, as the dense float algorithms:
//   flat: MPI_Iallreduce of each piece over the world (dense-flat);
//   hier: dense-hier's three steps per piece (uniform nodes): MPI_Ireduce_scatter inside the
//         node, MPI_Iallreduce of this local rank's part across nodes, MPI_Iallgatherv inside
//         the node. Each step runs on a communicator of its own, so every communicator sees
//         its collectives in piece order on every rank, whatever order they complete in.
// Every value that leaves a rank is a masked word or a sum of masked words.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/status.h"
#include "mpi/algorithm.h"
#include "mpi/topology.h"

namespace fedsilo::mpi {

class IntegerSum {
 public:
  enum class Shape : uint8_t { kFlat, kHier };
  /// kHier on a topology where it cannot help or work (one node, one rank per node, nodes of
  /// different sizes) sums flat; name() says which. Collective over the world (duplicates the
  /// node communicator twice for kHier).
  static Result<std::unique_ptr<IntegerSum>> create(Topology& topology, Shape shape);
  ~IntegerSum();
  IntegerSum(const IntegerSum&) = delete;
  IntegerSum& operator=(const IntegerSum&) = delete;

  /// "dense-flat" or "dense-hier": the shape in use.
  [[nodiscard]] std::string name() const;
  /// Starts summing `piece` into `sum` (as long, at most 2^31 - 1 words, not overlapping it).
  /// Every rank starts the same pieces, of the same lengths, in the same order; both stay
  /// untouched until finish().
  [[nodiscard]] Status start(std::span<const uint32_t> piece, std::span<uint32_t> sum);
  /// Lets the started sums advance (a test of each outstanding request): call it often while
  /// working. An error is kept for finish().
  void progress();
  /// Waits for every started piece; then every `sum` holds its piece's sum over all ranks. Adds this
  /// round's bytes (ring model, per level) and the seconds spent waiting to `stats`.
  [[nodiscard]] Status finish(AllreduceStats& stats);

 private:
  struct Impl;
  explicit IntegerSum(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::mpi
