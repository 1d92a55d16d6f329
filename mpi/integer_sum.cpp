// Pipelined uint32 sums: non-blocking collectives per piece, advanced in piece order.
#include "mpi/integer_sum.h"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <vector>

#include "mpi/comm_handles.h"

namespace fedsilo::mpi {

struct IntegerSum::Impl {
  // One piece's sum in flight: the step whose request is outstanding (or kDone).
  struct Piece {
    const uint32_t* in = nullptr;
    uint32_t* out = nullptr;
    int count = 0;
    std::vector<int> counts, displs;  // hier: each local rank's part of the piece
    std::vector<uint32_t> part, sum;  // hier: this rank's part, its node's, then everyone's sum
    int step = 0;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  static constexpr int kDone = 3;

  Topology* topology = nullptr;
  bool hier = false;
  std::optional<Comm> scatter, gather;  // hier: two copies of the node communicator
  std::vector<Piece> pieces;
  Status error;
  int64_t words = 0;  // started this round

  MPI_Comm world() const { return topology->world().h_->world; }

  // Starts `p`'s step `step` (0: the first). Flat: 0 = allreduce. Hier: 0 = reduce-scatter in
  // the node, 1 = allreduce across nodes, 2 = allgather in the node. Never in place: Open MPI's
  // libnbc runs an in-place MPI_Iallreduce as a binomial tree (the whole vector through the
  // root, log P times), its out-of-place one bandwidth-optimally.
  Status start_step(Piece& p, int step) {
    p.step = step;
    if (!hier) {
      if (step > 0) {
        p.step = kDone;
        return {};
      }
      FEDSILO_MPI(MPI_Iallreduce(p.in, p.out, p.count, MPI_UINT32_T, MPI_SUM, world(), &p.request));
      return {};
    }
    switch (step) {
      case 0:
        FEDSILO_MPI(MPI_Ireduce_scatter(p.in, p.part.data(), p.counts.data(), MPI_UINT32_T,
                                        MPI_SUM, scatter->h_->world, &p.request));
        return {};
      case 1:
        FEDSILO_MPI(MPI_Iallreduce(p.part.data(), p.sum.data(), static_cast<int>(p.part.size()),
                                   MPI_UINT32_T, MPI_SUM, topology->cross().h_->world, &p.request));
        return {};
      case 2:
        FEDSILO_MPI(MPI_Iallgatherv(p.sum.data(), static_cast<int>(p.sum.size()), MPI_UINT32_T,
                                    p.out, p.counts.data(), p.displs.data(), MPI_UINT32_T,
                                    gather->h_->world, &p.request));
        return {};
      default:
        p.step = kDone;
        return {};
    }
  }

  // Moves piece i on as far as it can: waits for (or tests) its outstanding step and starts the
  // next one once piece i - 1 has started that step too, so that every communicator sees its
  // collectives in piece order on every rank.
  Status advance(size_t i, bool wait) {
    Piece& p = pieces[i];
    while (p.step != kDone) {
      if (p.request != MPI_REQUEST_NULL) {
        if (wait) {
          FEDSILO_MPI(MPI_Wait(&p.request, MPI_STATUS_IGNORE));
        } else {
          int done = 0;
          FEDSILO_MPI(MPI_Test(&p.request, &done, MPI_STATUS_IGNORE));
          if (!done) return {};
        }
      }
      if (i > 0 && pieces[i - 1].step <= p.step) return {};  // the previous piece goes first
      FEDSILO_CHECK(start_step(p, p.step + 1));
    }
    return {};
  }
};

IntegerSum::IntegerSum(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IntegerSum::~IntegerSum() {
  // Pieces still in flight (an error stopped the round): wait, so no request outlives its data.
  if (!impl_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto& p : impl_->pieces) {
    if (p.request != MPI_REQUEST_NULL) MPI_Wait(&p.request, MPI_STATUS_IGNORE);
  }
}

Result<std::unique_ptr<IntegerSum>> IntegerSum::create(Topology& topology, Shape shape) {
  auto impl = std::make_unique<Impl>();
  impl->topology = &topology;
  impl->hier = shape == Shape::kHier && topology.uniform() && topology.num_nodes() > 1 &&
               topology.local_size() > 1;
  if (impl->hier) {
    FEDSILO_ASSIGN_OR_RETURN(Comm s, topology.node().split(0, topology.local_rank()));
    FEDSILO_ASSIGN_OR_RETURN(Comm g, topology.node().split(0, topology.local_rank()));
    impl->scatter.emplace(std::move(s));
    impl->gather.emplace(std::move(g));
  }
  return std::unique_ptr<IntegerSum>(new IntegerSum(std::move(impl)));
}

std::string IntegerSum::name() const { return impl_->hier ? "dense-hier" : "dense-flat"; }

Status IntegerSum::start(std::span<const uint32_t> piece, std::span<uint32_t> sum) {
  Impl& m = *impl_;
  if (piece.size() > static_cast<size_t>(INT_MAX) || sum.size() != piece.size()) {
    return invalid_argument("integer sum: a piece of " + std::to_string(piece.size()) +
                            " words into " + std::to_string(sum.size()) +
                            " (at most 2^31 - 1, the same)");
  }
  Impl::Piece& p = m.pieces.emplace_back();
  p.in = piece.data();
  p.out = sum.data();
  p.count = static_cast<int>(piece.size());
  m.words += p.count;
  if (m.hier) {
    // Local rank q sums [displs[q], displs[q] + counts[q]) of the piece, as dense-hier splits.
    const int L = m.topology->local_size();
    p.counts.resize(static_cast<size_t>(L));
    p.displs.resize(static_cast<size_t>(L));
    for (int q = 0, at = 0; q < L; ++q) {
      p.counts[q] = p.count / L + (q < p.count % L ? 1 : 0);
      p.displs[q] = at;
      at += p.counts[q];
    }
    p.part.resize(static_cast<size_t>(p.counts[m.topology->local_rank()]));
    p.sum.resize(p.part.size());
  }
  p.step = -1;
  return m.start_step(p, 0);
}

void IntegerSum::progress() {
  Impl& m = *impl_;
  for (size_t i = 0; i < m.pieces.size() && m.error.ok(); ++i) m.error = m.advance(i, false);
}

Status IntegerSum::finish(AllreduceStats& stats) {
  Impl& m = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < m.pieces.size() && m.error.ok(); ++i) m.error = m.advance(i, true);
  const double waited = seconds_since(t0);
  Status st = m.error;
  m.error = {};
  // Bytes as the ring model counts them (dense-flat's and dense-hier's own accounting).
  const int64_t bytes = 4 * m.words;
  const int P = m.topology->world().size(), L = m.topology->local_size(),
                N = m.topology->num_nodes();
  const bool one_node = N == 1;
  if (m.hier) {
    const int64_t intra = 2 * bytes * (L - 1) / L;
    const int64_t inter = 2 * (bytes / L) * (N - 1) / N;
    stats.intra_bytes_sent += intra;
    stats.intra_bytes_received += intra;
    stats.inter_bytes_sent += inter;
    stats.inter_bytes_received += inter;
    stats.inter_seconds += waited;
  } else {
    const int64_t moved = P > 1 ? 2 * bytes * (P - 1) / P : 0;
    (one_node ? stats.intra_bytes_sent : stats.inter_bytes_sent) += moved;
    (one_node ? stats.intra_bytes_received : stats.inter_bytes_received) += moved;
    (one_node ? stats.intra_seconds : stats.inter_seconds) += waited;
  }
  m.pieces.clear();
  m.words = 0;
  return st;
}

}  // namespace fedsilo::mpi
