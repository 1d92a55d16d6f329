// Sampled top-k (Deep Gradient Compression style): a magnitude threshold estimated from a
// seeded random sample, one thresholding pass, then refinement until the selected count is
// within kSampledTopkTolerance of k. Cheaper than the exact select's histogram pass.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/philox.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// The stated tolerance: the selected count nnz satisfies |nnz - k| <= floor(0.01 * k) for
/// 0 < k < n (k = 0 gives none, k >= n gives all). In practice the threshold is placed a few
/// sample standard deviations low, so nnz is usually exactly k after a re-select among the
/// candidates.
inline constexpr double kSampledTopkTolerance = 0.01;
inline int64_t sampled_topk_slack(int64_t k) {
  return static_cast<int64_t>(static_cast<double>(k) * kSampledTopkTolerance);
}

/// How a sampled selection went (for benchmarks and tests).
struct SampledTopkStats {
  int64_t sample_size = 0;
  int64_t candidates = 0;   // elements at or above the final threshold
  int passes = 0;           // full thresholding passes over x (1 unless the estimate was high)
  bool reselected = false;  // an exact select among the candidates trimmed them to k
};

/// Indices (ascending) of about k of the largest |x|: every selected |x| is >= every
/// unselected |x|, and the count is within sampled_topk_slack(k) of k. Deterministic for a
/// given rng state (the sample positions come from rng) and independent of threads.
/// Requires: no NaN in x, n < 2^32.
std::vector<uint32_t> topk_sampled_indices(std::span<const float> x, int64_t k, Philox& rng,
                                           int threads = 0, SampledTopkStats* stats = nullptr);

/// topk_sampled_indices with the values copied.
SparseVector topk_sampled_select(std::span<const float> x, int64_t k, Philox& rng, int threads = 0,
                                 SampledTopkStats* stats = nullptr);

}  // namespace fedsilo::kernels
