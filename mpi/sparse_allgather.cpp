// sparse-allgather: allgatherv of wire payloads, then a rank-ordered merge on every rank.
#include "mpi/sparse_allgather.h"

#include <algorithm>
#include <chrono>

#include "kernels/cpu/reduce.h"

namespace fedsilo::mpi {
Status SparseAllgather::sum(uint32_t round, const kernels::SparseVector& mine, std::span<float> out,
                            AllreduceStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  Status local;
  FEDSILO_CHECK(exchange(round, mine, out, stats, local));
  const Status agreed = comm_.agree(local);
  stats.total_seconds += seconds_since(t0);
  return agreed;
}

Status SparseAllgather::exchange(uint32_t round, const kernels::SparseVector& mine,
                                 std::span<float> out, AllreduceStats& stats, Status& local) {
  FEDSILO_CHECK(gather(round, mine, static_cast<int64_t>(out.size()), stats, local));
  const auto t0 = std::chrono::steady_clock::now();
  merge_payloads(round, peers_, recv_, offsets_, out, decoded_, local);
  stats.decode_seconds += seconds_since(t0);
  return {};
}

Status SparseAllgather::gather(uint32_t round, const kernels::SparseVector& mine, int64_t length,
                               AllreduceStats& stats, Status& local) {
  const int P = comm_.size(), me = comm_.rank();
  const int my_world = peers_.world_rank[me];

  auto t0 = std::chrono::steady_clock::now();
  send_.clear();
  EncodeOptions eo{options_.value_type, options_.index, Narrowing::kLosslessOrFp32};
  Status enc = check_contribution(mine, length);
  if (enc.ok()) enc = encode_sparse(mine, round, my_world, eo, send_);
  if (!enc.ok()) {
    // Still take part with an empty contribution, so no rank waits forever.
    keep_first(local,
               Status(enc.code(), "rank " + std::to_string(my_world) + ": " + enc.message()));
    send_.clear();
    kernels::SparseVector empty;
    empty.length = std::clamp<int64_t>(length, 0, int64_t{1} << 32);
    FEDSILO_CHECK(encode_sparse(empty, round, my_world, eo, send_));
  }
  if (options_.tamper) options_.tamper(send_);
  stats.encode_seconds += seconds_since(t0);

  t0 = std::chrono::steady_clock::now();
  FEDSILO_CHECK(comm_.allgatherv_bytes(send_, recv_, offsets_));
  const double comm_seconds = seconds_since(t0);
  const int my_node = peers_.node[me];
  const bool crosses =
      std::any_of(peers_.node.begin(), peers_.node.end(), [&](int nd) { return nd != my_node; });
  (crosses ? stats.inter_seconds : stats.intra_seconds) += comm_seconds;
  const auto own = static_cast<int64_t>(send_.size());
  for (int q = 0; q < P; ++q) {
    if (q == me) continue;
    const bool same = peers_.node[q] == my_node;
    (same ? stats.intra_bytes_received : stats.inter_bytes_received) += offsets_[q + 1] - offsets_[q];
    (same ? stats.intra_bytes_sent : stats.inter_bytes_sent) += own;
  }
  return {};
}

void merge_payloads(uint32_t round, const PeerMap& senders, std::span<const uint8_t> bytes,
                    std::span<const int64_t> offsets, std::span<float> out,
                    std::vector<DecodedPayload>& scratch, Status& local) {
  const auto length = static_cast<int64_t>(out.size());
  const auto P = static_cast<int>(senders.world_rank.size());
  if (scratch.size() < static_cast<size_t>(P)) scratch.resize(static_cast<size_t>(P));
  std::vector<const DecodedPayload*> decoded;  // the well-formed ones, in sender order
  for (int q = 0; q < P; ++q) {
    const std::span<const uint8_t> payload(bytes.data() + offsets[q],
                                           static_cast<size_t>(offsets[q + 1] - offsets[q]));
    // Own payload decoded too: every rank then adds exactly the same values in the same order.
    const Status st =
        decode_payload(payload, {round, senders.world_rank[q], length}, scratch[static_cast<size_t>(q)]);
    if (!st.ok()) {
      keep_first(local, st);
      continue;
    }
    decoded.push_back(&scratch[static_cast<size_t>(q)]);
  }
  // Block by block: the block is built in an L1 buffer (zeroed, then each payload's entries
  // that fall in it added in sender order: per element the same additions in the same order as
  // one payload after another over the whole vector, so the same bits) and then written out.
  // Adding the payloads one after another over a zeroed 4n-byte vector (2^24 floats: 64 MB,
  // past the caches) would cost a cache miss per entry (~4 x 168 K at 1% from 4 senders), and
  // zeroing it first a read of every line; here each line of `out` is written once, streamed
  // past the caches where `out` is large.
  constexpr int64_t kBlock = 4096;                         // 16 KiB of floats
  const bool stream = length >= (int64_t{1} << 20);        // 4 MB: past L2, written once
  alignas(64) float block[kBlock];
  std::vector<size_t> cursor(decoded.size(), 0);
  float* o = out.data();
  for (int64_t b = 0; b < length; b += kBlock) {
    const int64_t len = std::min(length - b, kBlock);
    std::fill(block, block + len, 0.0f);
    for (size_t q = 0; q < decoded.size(); ++q) {
      const DecodedPayload& d = *decoded[q];
      if (d.dense()) {
        const float* v = d.values.data() + b;
        for (int64_t i = 0; i < len; ++i) block[i] += v[i];
        continue;
      }
      size_t c = cursor[q];
      const size_t end = d.indices.size();
      while (c < end && d.indices[c] < b + len) {
        block[d.indices[c] - b] += d.values[c];
        ++c;
      }
      cursor[q] = c;
    }
    if (stream) {
      kernels::copy_streaming(block, o + b, len);
    } else {
      std::copy(block, block + len, o + b);
    }
  }
  if (stream) kernels::stream_fence();
}

}  // namespace fedsilo::mpi
