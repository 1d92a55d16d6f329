// Sampled top-k on the device: the twin of kernels::topk_sampled_indices (kernels/cpu/
// topk_sampled.h), selecting exactly the same set. The sample positions come from the same
// Philox stream (word s of the stream picks sample s), the thresholds are the same order
// statistics of the sample, the thresholding pass keeps the same candidates and the re-select
// among them is the exact top-k (kernels/cuda/topk.h). The tolerance (sampled_topk_slack) and
// SampledTopkStats are the CPU's own (kernels/params/topk_sampled.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/philox.h"
#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"
#include "kernels/params/topk_sampled.h"

namespace fedsilo::kernels::cuda {

/// A fresh Philox stream: what `Philox(seed, round, silo, purpose)` is before its first draw.
struct PhiloxStream {
  uint64_t seed = 0;
  uint32_t round = 0;
  uint32_t silo = 0;
  RngPurpose purpose = RngPurpose::kCompression;
};

/// Entries the output arrays need: min(n, k + sampled_topk_slack(k)) for 0 < k < n, n for
/// k >= n, 0 for k <= 0.
[[nodiscard]] int64_t topk_sampled_capacity(int64_t n, int64_t k);

/// Scratch bytes topk_sampled_in needs for (n, k) on the current device.
[[nodiscard]] Result<size_t> topk_sampled_scratch_bytes(int64_t n, int64_t k);

/// The indices (ascending) that kernels::topk_sampled_indices(x, k, rng, threads, stats) returns
/// for a fresh `rng` = Philox(stream), into indices[0, count), their values into values[] unless
/// it is null; returns count. `capacity` is the room in both arrays (at least
/// topk_sampled_capacity(n, k), kInvalidArgument otherwise). stats, when given, gets the CPU's
/// statistics (sample size, candidates, passes, re-selected). Requires n < 2^32 and no NaN.
/// Synchronizes the stream (the candidate counts decide what comes next).
[[nodiscard]] Result<int64_t> topk_sampled(const float* x, int64_t n, int64_t k,
                                           const PhiloxStream& stream, uint32_t* indices,
                                           float* values, int64_t capacity, Workspace& ws, Stream s,
                                           SampledTopkStats* stats = nullptr);

/// topk_sampled with caller-provided scratch of topk_sampled_scratch_bytes(n, k) bytes.
[[nodiscard]] Result<int64_t> topk_sampled_in(const float* x, int64_t n, int64_t k,
                                              const PhiloxStream& stream, uint32_t* indices,
                                              float* values, int64_t capacity, void* scratch,
                                              Stream s, SampledTopkStats* stats = nullptr);

}  // namespace fedsilo::kernels::cuda
