// The contract of sampled top-k that the CPU (kernels/cpu/topk_sampled.h) and the device
// (kernels/cuda/topk_sampled.h) share: the tolerance on the selected count and the statistics
// of a selection. Plain C++17: nvcc compiles it too.
#pragma once

#include <cstdint>

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

}  // namespace fedsilo::kernels
