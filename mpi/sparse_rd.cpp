// sparse-rd: recursive doubling of sparse partial sums with a switch to dense, any rank count.
#include "mpi/sparse_rd.h"

#include <algorithm>
#include <chrono>

namespace fedsilo::mpi {
namespace {

// Message tags: the fold, the doubling steps (kTagStep + log2 of the distance, the same on
// both partners even when only one of them folded), the result for folded ranks.
constexpr int kTagFold = 7100;
constexpr int kTagResult = 7101;
constexpr int kTagStep = 7110;

/// A partial sum: sparse (ascending indices) or dense.
struct Partial {
  bool dense = false;
  kernels::SparseVector sparse;
  std::vector<float> values;  // when dense, `length` floats

  void make_dense(int64_t length) {
    if (dense) return;
    values.assign(static_cast<size_t>(length), 0.0f);
    for (size_t k = 0; k < sparse.indices.size(); ++k) {
      values[sparse.indices[k]] = sparse.values[k];
    }
    sparse = kernels::SparseVector{};
    dense = true;
  }
};

/// acc += d, symmetric in the sense that merge(a, b) and merge(b, a) give the same bits.
void merge(Partial& acc, const DecodedPayload& d, int64_t length) {
  if (d.dense()) {
    if (acc.dense) {
      for (int64_t i = 0; i < length; ++i) acc.values[i] += d.values[i];
    } else {
      // dense(d) + sparse(acc): d's values, plus acc at acc's indices — what the partner
      // computes with the roles swapped.
      std::vector<float> sum(d.values);
      for (size_t k = 0; k < acc.sparse.indices.size(); ++k) {
        sum[acc.sparse.indices[k]] += acc.sparse.values[k];
      }
      acc.values = std::move(sum);
      acc.sparse = kernels::SparseVector{};
      acc.dense = true;
    }
    return;
  }
  if (acc.dense) {
    for (size_t k = 0; k < d.indices.size(); ++k) acc.values[d.indices[k]] += d.values[k];
    return;
  }
  // Sparse + sparse: a two-way merge of ascending index lists; shared indices add.
  const auto& ai = acc.sparse.indices;
  const auto& av = acc.sparse.values;
  kernels::SparseVector out;
  out.length = length;
  out.indices.reserve(ai.size() + d.indices.size());
  out.values.reserve(ai.size() + d.indices.size());
  size_t a = 0, b = 0;
  while (a < ai.size() || b < d.indices.size()) {
    if (b == d.indices.size() || (a < ai.size() && ai[a] < d.indices[b])) {
      out.indices.push_back(ai[a]);
      out.values.push_back(av[a++]);
    } else if (a == ai.size() || d.indices[b] < ai[a]) {
      out.indices.push_back(d.indices[b]);
      out.values.push_back(d.values[b++]);
    } else {
      out.indices.push_back(ai[a]);
      out.values.push_back(av[a++] + d.values[b++]);
    }
  }
  acc.sparse = std::move(out);
}

void take(Partial& acc, const DecodedPayload& d, int64_t length) {
  acc.dense = d.dense();
  if (acc.dense) {
    acc.values = d.values;
    acc.sparse = kernels::SparseVector{};
  } else {
    acc.sparse.length = length;
    acc.sparse.indices = d.indices;
    acc.sparse.values = d.values;
  }
}

}  // namespace

Status SparseRecursiveDoubling::sum(uint32_t round, const kernels::SparseVector& mine,
                                    std::span<float> out, AllreduceStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  Status local;
  FEDSILO_CHECK(exchange(round, mine, out, stats, local));
  const Status agreed = comm_.agree(local);
  stats.total_seconds += seconds_since(t0);
  return agreed;
}

Status SparseRecursiveDoubling::exchange(uint32_t round, const kernels::SparseVector& mine,
                                         std::span<float> out, AllreduceStats& stats,
                                         Status& local) {
  const int P = comm_.size(), r = comm_.rank();
  const int my_world = peers_.world_rank[r];
  const int my_node = peers_.node[r];
  const auto length = static_cast<int64_t>(out.size());
  last_dense_step_ = 0;
  int step = 0;

  Partial acc;
  acc.sparse.length = length;
  if (Status st = check_contribution(mine, length); !st.ok()) {
    // Merging a malformed vector could write out of bounds: take part with an empty one.
    keep_first(local, Status(st.code(), "rank " + std::to_string(my_world) + ": " + st.message()));
  } else {
    acc.sparse = mine;
  }

  std::vector<uint8_t> send, recv;
  DecodedPayload decoded;
  // Partial sums must not be rounded again: narrow types only where lossless.
  const EncodeOptions eo{options_.value_type, options_.index, Narrowing::kLosslessOrFp32};

  // Encodes acc for sending; turns acc dense first when the dense payload is the smaller.
  auto encode = [&](bool first) -> Status {
    const auto t0 = std::chrono::steady_clock::now();
    send.clear();
    if (!acc.dense) {
      const int64_t nnz = acc.sparse.nnz();
      const int64_t sparse_bytes =
          std::min(wire_varint_index_bytes(acc.sparse.indices), wire_bitmap_bytes(length)) +
          wire_value_bytes(kernels::ValueType::kFp32, nnz);
      const int64_t dense_bytes = wire_value_bytes(kernels::ValueType::kFp32, length);
      if (static_cast<double>(sparse_bytes) >=
          options_.dense_switch_fraction * static_cast<double>(dense_bytes)) {
        acc.make_dense(length);
        last_dense_step_ = step;
      }
    }
    Status st = acc.dense ? encode_dense(acc.values, round, my_world, eo, send)
                          : encode_sparse(acc.sparse, round, my_world, eo, send);
    if (!st.ok()) {
      // A malformed or non-finite contribution: send an empty one so the exchange completes.
      keep_first(local,
                 Status(st.code(), "rank " + std::to_string(my_world) + ": " + st.message()));
      acc = Partial{};
      acc.sparse.length = length;
      send.clear();
      FEDSILO_CHECK(encode_sparse(acc.sparse, round, my_world, eo, send));
    }
    if (first && options_.tamper) options_.tamper(send);
    stats.encode_seconds += seconds_since(t0);
    return {};
  };
  auto count = [&](int peer, int64_t sent, int64_t received, double seconds) {
    const bool same = peers_.node[peer] == my_node;
    (same ? stats.intra_bytes_sent : stats.inter_bytes_sent) += sent;
    (same ? stats.intra_bytes_received : stats.inter_bytes_received) += received;
    (same ? stats.intra_seconds : stats.inter_seconds) += seconds;
  };
  auto absorb = [&](int peer, bool replace) {
    const auto t0 = std::chrono::steady_clock::now();
    const Status st = decode_payload(recv, {round, peers_.world_rank[peer], length}, decoded);
    if (st.ok()) {
      if (replace) {
        take(acc, decoded, length);
      } else {
        merge(acc, decoded, length);
      }
      if (acc.dense && last_dense_step_ == 0) last_dense_step_ = step;
    } else {
      keep_first(local, st);
    }
    stats.decode_seconds += seconds_since(t0);
  };

  int p2 = 1;
  while (p2 * 2 <= P) p2 *= 2;
  const int extra = P - p2;
  bool first = true;
  int nr = r - extra;  // rank among the p2 that double
  if (r < 2 * extra) {
    ++step;
    if (r % 2 == 0) {
      FEDSILO_CHECK(encode(first));
      first = false;
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(comm_.send_bytes(send, r + 1, kTagFold));
      count(r + 1, static_cast<int64_t>(send.size()), 0, seconds_since(t0));
      nr = -1;
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(comm_.recv_bytes(recv, r - 1, kTagFold));
      count(r - 1, 0, static_cast<int64_t>(recv.size()), seconds_since(t0));
      absorb(r - 1, false);
      nr = r / 2;
    }
  }
  if (nr >= 0) {
    for (int mask = 1, k = 0; mask < p2; mask <<= 1, ++k) {
      ++step;
      const int pn = nr ^ mask;
      const int partner = pn < extra ? 2 * pn + 1 : pn + extra;
      FEDSILO_CHECK(encode(first));
      first = false;
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(comm_.sendrecv_bytes(send, partner, recv, partner, kTagStep + k));
      count(partner, static_cast<int64_t>(send.size()), static_cast<int64_t>(recv.size()),
            seconds_since(t0));
      absorb(partner, false);
    }
  }
  if (r < 2 * extra) {
    ++step;
    if (r % 2 == 1) {
      FEDSILO_CHECK(encode(first));
      first = false;
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(comm_.send_bytes(send, r - 1, kTagResult));
      count(r - 1, static_cast<int64_t>(send.size()), 0, seconds_since(t0));
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      FEDSILO_CHECK(comm_.recv_bytes(recv, r + 1, kTagResult));
      count(r + 1, 0, static_cast<int64_t>(recv.size()), seconds_since(t0));
      absorb(r + 1, true);
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (acc.dense && static_cast<int64_t>(acc.values.size()) == length) {
    std::copy(acc.values.begin(), acc.values.end(), out.begin());
  } else {
    std::fill(out.begin(), out.end(), 0.0f);
    if (!acc.dense) {
      for (size_t k = 0; k < acc.sparse.indices.size(); ++k) {
        if (acc.sparse.indices[k] < out.size()) out[acc.sparse.indices[k]] = acc.sparse.values[k];
      }
    }
  }
  stats.decode_seconds += seconds_since(t0);
  return {};
}

}  // namespace fedsilo::mpi
