// The parameters and report of one error-feedback compression step, shared by the CPU step
// (kernels/cpu/error_feedback.h) and the fused device step (kernels/cuda/error_feedback.h).
// Plain C++17: nvcc compiles it too.
#pragma once

#include <cstdint>

#include "kernels/params/topk_sampled.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// Which coordinates a step sends.
enum class SelectMethod : uint8_t {
  kAll = 0,          // every coordinate (dense; quantization only)
  kTopk = 1,         // exact top-k of |acc|
  kTopkSampled = 2,  // sampled top-k (within kSampledTopkTolerance of k)
  kRandk = 3,        // k random coordinates, the same on every silo for (seed, round)
};

/// Sampled top-k draws its sample from Philox(seed, round, silo | kSamplingStreamBit,
/// kCompression); random-k uses silo field 0 and stochastic rounding kRoundingStreamBit, so
/// the three never share a Philox block.
inline constexpr uint32_t kSamplingStreamBit = 0x40000000u;

struct ErrorFeedbackParams {
  SelectMethod method = SelectMethod::kTopk;
  int64_t k = 0;  // coordinates to send (ignored by kAll)
  ValueType value_type = ValueType::kFp32;
  bool error_feedback = true;  // false: acc = update, residual is not read or written
  float momentum = 0.0f;       // DGC momentum correction factor; 0: off
  uint64_t seed = 0;
  uint32_t round = 0;
  uint32_t silo = 0;  // < 2^30
  int threads = 0;    // CPU only (<= 0: OpenMP's default); the device step ignores it
};

struct ErrorFeedbackReport {
  bool finite = true;        // false: acc had inf/NaN; nothing was sent
  bool overflow = false;     // a selected value does not fit the value type (fp16 >= 65520)
  SampledTopkStats sampled;  // for kTopkSampled
};

}  // namespace fedsilo::kernels
