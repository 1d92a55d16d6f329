// Sampled top-k (Deep Gradient Compression style): a magnitude threshold estimated from a
// seeded random sample, one thresholding pass, then refinement until the selected count is
// within kSampledTopkTolerance of k. Cheaper than the exact select's histogram pass.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/philox.h"
#include "kernels/params/topk_sampled.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// The sampled threshold search in stages, for a caller that runs the first thresholding pass
/// inside its own pass over the data (the error-feedback step computes x and collects the
/// candidates at or above first_min_key() while the tile is in L1).
class SampledThreshold {
 public:
  /// Draws the sample for selecting about k of n: its positions from rng, value_at(position)
  /// the value x will hold there.
  SampledThreshold(int64_t n, int64_t k, Philox& rng, const std::function<float(int64_t)>& value_at);

  /// The first pass's magnitude key: the candidates are the elements with a key at or above.
  /// 0 (everything) for k <= 0 or k >= n.
  [[nodiscard]] uint32_t first_min_key() const { return first_key_; }
  /// How many candidates the first pass should find (for a caller's sanity cap).
  [[nodiscard]] double expected_candidates() const { return expected_; }

  /// From the first pass's candidates (ascending; those of x with key >= first_min_key()) to
  /// the selection: more passes over x while too few were found, then an exact trim to k.
  std::vector<uint32_t> finish(std::span<const float> x, std::vector<uint32_t> candidates,
                               int threads, SampledTopkStats* stats);

 private:
  int64_t n_ = 0, k_ = 0, m_ = 0;
  double r_ = 0.0, rank_ = 0.0, expected_ = 0.0;
  uint32_t first_key_ = 0;
  std::vector<uint32_t> keys_;
  uint32_t key_at_rank();
};

/// The indices with magnitude key >= min_key, ascending, over `threads` chunks in parallel.
std::vector<uint32_t> threshold_pass(std::span<const float> x, uint32_t min_key, int threads);

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
