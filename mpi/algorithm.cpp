// Shared pieces of the allreduce algorithm families: stats, the Reducer bridge, densify.
#include "mpi/algorithm.h"

#include <algorithm>
#include <chrono>
#include <cmath>

namespace fedsilo::mpi {

void AllreduceStats::add(const AllreduceStats& o) {
  intra_bytes_sent += o.intra_bytes_sent;
  intra_bytes_received += o.intra_bytes_received;
  inter_bytes_sent += o.inter_bytes_sent;
  inter_bytes_received += o.inter_bytes_received;
  encode_seconds += o.encode_seconds;
  intra_seconds += o.intra_seconds;
  inter_seconds += o.inter_seconds;
  decode_seconds += o.decode_seconds;
  total_seconds += o.total_seconds;
}

void AllreduceStats::add_to(ReduceStats& s) const {
  s.bytes_sent += bytes_sent();
  s.bytes_received += bytes_received();
  s.seconds += total_seconds;
}

Status DenseAllreduceAlgorithm::sum(std::span<float> data, ReduceStats& stats) {
  AllreduceStats s;
  const Status st = reduce(calls_++, data, s);
  s.add_to(stats);
  return st;
}

Status check_contribution(const kernels::SparseVector& v, int64_t length) {
  if (v.length != length) {
    return invalid_argument("contribution length " + std::to_string(v.length) +
                            " differs from the result length " + std::to_string(length));
  }
  if (v.indices.size() != v.values.size()) {
    return invalid_argument("contribution has " + std::to_string(v.indices.size()) +
                            " indices but " + std::to_string(v.values.size()) + " values");
  }
  for (size_t k = 0; k < v.indices.size(); ++k) {
    if (v.indices[k] >= static_cast<uint64_t>(length) ||
        (k > 0 && v.indices[k] <= v.indices[k - 1])) {
      return invalid_argument(
          "contribution index #" + std::to_string(k) + " (" + std::to_string(v.indices[k]) +
          ") is not strictly ascending and below the length " + std::to_string(length));
    }
    if (!std::isfinite(v.values[k])) {
      return Status(StatusCode::kDiverged, "contribution value at index " +
                                               std::to_string(v.indices[k]) + " is not finite");
    }
  }
  return {};
}

Status densify(const kernels::SparseVector& v, std::span<float> out) {
  std::fill(out.begin(), out.end(), 0.0f);
  FEDSILO_CHECK(check_contribution(v, static_cast<int64_t>(out.size())));
  for (size_t k = 0; k < v.indices.size(); ++k) out[v.indices[k]] = v.values[k];
  return {};
}

Status DensifyingAllreduce::sum(uint32_t round, const kernels::SparseVector& mine,
                                std::span<float> out, AllreduceStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  Status local = densify(mine, out);
  if (!local.ok()) {
    local = Status(local.code(), "rank " + std::to_string(world_.rank()) + ": " + local.message());
  }
  FEDSILO_CHECK(world_.agree(local));
  AllreduceStats s;
  FEDSILO_CHECK(dense_->reduce(round, out, s));
  s.total_seconds = 0.0;
  stats.add(s);
  stats.total_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return {};
}

}  // namespace fedsilo::mpi
