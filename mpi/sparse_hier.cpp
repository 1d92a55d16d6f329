// sparse-hier: node-local dense reduce, leader compression, sparse leader exchange, broadcast.
#include "mpi/sparse_hier.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>


namespace fedsilo::mpi {
namespace {

// From 2^18 floats (1 MiB) up, waits of several milliseconds are sleeping barriers: a nap of
// up to 0.2 ms is then a few percent of the wait at most.
constexpr int64_t kSleepingWaitFloats = int64_t{1} << 18;

// The leader's segment, after the exchange: a 64-byte header (the nonzero count, or -1 for a
// dense vector), then either the indices (uint32) and, from the next 64-byte boundary, the
// values, or the dense floats.
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kDenseResult = -1;
constexpr int64_t kPayloads = -2;   // header[1] = senders, header[2] = bytes; then offsets, bytes
constexpr int64_t kNoPayloads = -3;  // they did not fit: the nonzeros follow in another round

int64_t round_up64(int64_t b) { return (b + 63) / 64 * 64; }

bool window_disabled_by_env() {
  const char* v = std::getenv("FEDSILO_SPARSE_HIER_SHM");
  return v != nullptr && std::strcmp(v, "0") == 0;
}

}  // namespace

SparseHier::SparseHier(Topology& topology, NodeCompressor compressor, LeaderExchange exchange,
                       SparseOptions options)
    : topo_(topology), compress_(std::move(compressor)),
      gathers_(exchange == LeaderExchange::kAllgather) {
  if (!topo_.is_leader()) return;
  if (exchange == LeaderExchange::kAllgather) {
    allgather_ =
        std::make_unique<SparseAllgather>(topo_.cross(), topo_.leader_peers(), std::move(options));
  } else {
    rd_ = std::make_unique<SparseRecursiveDoubling>(topo_.cross(), topo_.leader_peers(),
                                                    std::move(options));
  }
}

Result<bool> SparseHier::ensure_window(int64_t n) {
  if (!use_window_ || topo_.node().size() == 1) return false;
  const int64_t need = kHeaderBytes + round_up64(n * static_cast<int64_t>(sizeof(float))) + 64;
  if (window_.valid() && window_.bytes() >= need) return true;
  window_ = SharedWindow();  // collective free of the smaller one
  Status mine = window_disabled_by_env()
                    ? failed_precondition("FEDSILO_SPARSE_HIER_SHM=0")
                    : Status();
  SharedWindow w;
  if (mine.ok()) {
    auto a = SharedWindow::allocate(topo_.node(), need);
    if (a.ok()) {
      w = std::move(a).value();
    } else {
      mine = a.status();
    }
  }
  const Status agreed = topo_.node().agree(mine);
  if (!agreed.ok()) {
    // Some rank of the node cannot map it: every rank of the node uses messages from now on.
    // A window this rank did map is left mapped (freeing it is collective over ranks that
    // may not have it).
    if (w.valid()) new SharedWindow(std::move(w));  // NOLINT: deliberately never freed
    use_window_ = false;
    return false;
  }
  window_ = std::move(w);
  return true;
}

Result<std::span<float>> SparseHier::buffer(int64_t n) {
  if (n < 0) return invalid_argument("sparse-hier: buffer length must be >= 0");
  FEDSILO_ASSIGN_OR_RETURN(const bool shared, ensure_window(n));
  if (!shared || topo_.is_leader() || n == 0) return std::span<float>();
  // The segment is at least n floats (+ header room) and is never shrunk or moved by later
  // calls of this length; a longer call would remap it, which the contract rules out.
  return std::span<float>(reinterpret_cast<float*>(window_.segment(topo_.node().rank())),
                          static_cast<size_t>(n));
}

Status SparseHier::node_sum_messages(std::span<float> data) {
  return topo_.node().reduce_sum(data, 0);
}

Status SparseHier::node_result_messages(std::span<float> data, AllreduceStats& stats) {
  const int64_t bytes = static_cast<int64_t>(data.size() * sizeof(float));
  const int L = topo_.node().size();
  if (topo_.is_leader()) {
    stats.intra_bytes_sent += bytes * (L - 1);
  } else {
    stats.intra_bytes_received += bytes;
  }
  return topo_.node().broadcast(data, 0);
}

Status SparseHier::node_sum_shared(std::span<float> data) {
  Comm& node = topo_.node();
  const auto n = static_cast<int64_t>(data.size());
  auto* mine = reinterpret_cast<float*>(window_.segment(node.rank()));
  if (!topo_.is_leader() && n > 0 && data.data() != mine) {
    std::memcpy(mine, data.data(), data.size_bytes());
  }
  FEDSILO_CHECK(window_.sync());
  if (topo_.is_leader()) {
    // Summed by the compressor, in rank order, inside its own pass over the data.
    for (int q = 1; q < node.size(); ++q) {
      peers_.push_back(reinterpret_cast<const float*>(window_.segment(q)));
    }
  }
  return {};
}

Status SparseHier::node_result_shared(std::span<float> data, AllreduceStats& stats) {
  Comm& node = topo_.node();
  const int L = node.size();
  const auto n = static_cast<int64_t>(data.size());
  std::byte* seg = window_.segment(0);
  auto* header = reinterpret_cast<int64_t*>(seg);
  if (topo_.is_leader()) {
    // Nonzero by bit pattern, so a -0.0 travels too and every rank ends bitwise equal.
    int64_t count = 0;
    const auto* bits = reinterpret_cast<const uint32_t*>(data.data());
    for (int64_t i = 0; i < n; ++i) count += bits[i] != 0;
    const int64_t sparse_bytes = round_up64(4 * count) + 4 * count;
    if (sparse_bytes < 4 * n) {
      auto* idx = reinterpret_cast<uint32_t*>(seg + kHeaderBytes);
      auto* val = reinterpret_cast<float*>(seg + kHeaderBytes + round_up64(4 * count));
      int64_t c = 0;
      for (int64_t i = 0; i < n; ++i) {
        if (bits[i] != 0) {
          idx[c] = static_cast<uint32_t>(i);
          val[c] = data[static_cast<size_t>(i)];
          ++c;
        }
      }
      *header = count;
      stats.intra_bytes_sent += 8 * count * (L - 1);
    } else {
      if (n > 0) std::memcpy(seg + kHeaderBytes, data.data(), data.size_bytes());
      *header = kDenseResult;
      stats.intra_bytes_sent += 4 * n * (L - 1);
    }
  }
  FEDSILO_CHECK(window_.sync());
  if (!topo_.is_leader()) {
    const int64_t count = *header;
    if (count == kDenseResult) {
      if (n > 0) std::memcpy(data.data(), seg + kHeaderBytes, data.size_bytes());
      stats.intra_bytes_received += 4 * n;
    } else {
      const auto* idx = reinterpret_cast<const uint32_t*>(seg + kHeaderBytes);
      const auto* val = reinterpret_cast<const float*>(seg + kHeaderBytes + round_up64(4 * count));
      std::fill(data.begin(), data.end(), 0.0f);
      for (int64_t c = 0; c < count; ++c) data[idx[c]] = val[c];
      stats.intra_bytes_received += 8 * count;
    }
  }
  return {};
}

Result<bool> SparseHier::node_merge_shared(uint32_t round, std::span<float> data,
                                           AllreduceStats& stats, Status& local) {
  Comm& node = topo_.node();
  const int L = node.size();
  std::byte* seg = window_.segment(0);
  auto* header = reinterpret_cast<int64_t*>(seg);
  const PeerMap senders = topo_.leader_peers();
  const auto P = static_cast<int64_t>(senders.world_rank.size());
  const int64_t offsets_bytes = round_up64(8 * (P + 1));
  if (topo_.is_leader()) {
    const auto bytes = allgather_->payloads();
    const auto offsets = allgather_->offsets();
    const auto total = static_cast<int64_t>(bytes.size());
    if (kHeaderBytes + offsets_bytes + total <= window_.bytes()) {
      header[0] = kPayloads;
      header[1] = P;
      header[2] = total;
      std::memcpy(seg + kHeaderBytes, offsets.data(), static_cast<size_t>(8 * (P + 1)));
      if (total > 0) std::memcpy(seg + kHeaderBytes + offsets_bytes, bytes.data(), bytes.size());
      stats.intra_bytes_sent += total * (L - 1);
    } else {
      header[0] = kNoPayloads;
    }
  }
  FEDSILO_CHECK(window_.sync());
  if (header[0] != kPayloads) return false;
  const int64_t total = header[2];
  const std::span<const int64_t> offsets(reinterpret_cast<const int64_t*>(seg + kHeaderBytes),
                                         static_cast<size_t>(P + 1));
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(seg + kHeaderBytes + offsets_bytes),
                                       static_cast<size_t>(total));
  if (!topo_.is_leader()) stats.intra_bytes_received += total;
  const auto t0 = std::chrono::steady_clock::now();
  merge_payloads(round, senders, bytes, offsets, data, decoded_, local);
  stats.decode_seconds += seconds_since(t0);
  // No second sync: the leader writes segment 0 again only after the next call's first sync,
  // which no rank reaches before it has merged.
  return true;
}

Status SparseHier::reduce(uint32_t round, std::span<float> data, AllreduceStats& stats) {
  const auto t_start = std::chrono::steady_clock::now();
  const int L = topo_.node().size();
  const auto n = static_cast<int64_t>(data.size());
  const int64_t bytes = n * static_cast<int64_t>(sizeof(float));
  Status local;

  auto t0 = std::chrono::steady_clock::now();
  peers_.clear();
  auto shared = ensure_window(n);
  FEDSILO_CHECK(shared.status());
  FEDSILO_CHECK(shared.value() ? node_sum_shared(data) : node_sum_messages(data));
  if (topo_.is_leader()) {
    stats.intra_bytes_received += bytes * (L - 1);
  } else {
    stats.intra_bytes_sent += bytes;
  }
  stats.intra_seconds += seconds_since(t0);

  if (topo_.is_leader()) {
    t0 = std::chrono::steady_clock::now();
    kernels::SparseVector node_sparse;
    node_sparse.length = n;
    if (compress_) {
      auto c = compress_(data, peers_);
      if (c.ok()) {
        node_sparse = std::move(c).value();
      } else {
        local =
            Status(c.status().code(), "node " + std::to_string(topo_.node_index()) +
                                          " leader (rank " + std::to_string(topo_.world().rank()) +
                                          ") compressor: " + c.status().message());
      }
    } else {
      local = failed_precondition("sparse-hier: no compressor given");
    }
    stats.encode_seconds += seconds_since(t0);
    // Large updates: the leaders that finish compressing first wait for the others asleep, not
    // polling inside the exchange (Open MPI's progress loop spins), which on shared cores takes
    // the CPU from the leaders still compressing. Small ones go straight in: a nap would cost
    // more than the wait.
    if (n >= kSleepingWaitFloats && topo_.num_nodes() > 1) {
      t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(topo_.cross().barrier_sleeping());
      stats.inter_seconds += seconds_since(t0);
    }
    // The exchange validates the compressor's output and records what is wrong with it. With
    // the window and the allgather, the node's ranks merge the payloads together below.
    if (allgather_ && shared.value()) {
      FEDSILO_CHECK(allgather_->gather(round, node_sparse, n, stats, local));
    } else {
      FEDSILO_CHECK(allgather_ ? allgather_->exchange(round, node_sparse, data, stats, local)
                               : rd_->exchange(round, node_sparse, data, stats, local));
    }
  }

  t0 = std::chrono::steady_clock::now();
  const double decode_before = stats.decode_seconds;
  // Every rank of a node knows whether its leader gathered (allgather_ exists on leaders only,
  // but the leaders' exchange is the same on every node): agreed through the window's header.
  bool merged = false;
  if (shared.value() && gathers_) {
    FEDSILO_ASSIGN_OR_RETURN(merged, node_merge_shared(round, data, stats, local));
    if (!merged && topo_.is_leader()) {
      // The payloads did not fit: the leader merges, then publishes the result.
      const auto t1 = std::chrono::steady_clock::now();
      merge_payloads(round, allgather_->peers(), allgather_->payloads(), allgather_->offsets(),
                     data, decoded_, local);
      stats.decode_seconds += seconds_since(t1);
    }
  }
  if (!merged) {
    FEDSILO_CHECK(shared.value() ? node_result_shared(data, stats)
                                 : node_result_messages(data, stats));
  }
  stats.intra_seconds += seconds_since(t0) - (stats.decode_seconds - decode_before);
  // The same for the ranks done merging first: asleep until all are, then a short agreement.
  if (n >= kSleepingWaitFloats) FEDSILO_CHECK(topo_.world().barrier_sleeping());
  const Status agreed = topo_.world().agree(local);
  stats.total_seconds += seconds_since(t_start);
  return agreed;
}

}  // namespace fedsilo::mpi
