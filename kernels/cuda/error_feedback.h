// One error-feedback compression step on the device, fused: the twin of
// kernels::error_feedback_step (kernels/cpu/error_feedback.h), with the same sent indices and
// values, residual and velocity bit for bit. The first pass computes acc = update + residual (or
// the DGC momentum form), writes it over the residual, checks it is finite and, for exact top-k,
// builds the radix-select histograms at the same time; then select, quantize the sent values,
// and clear what was sent from the residual (residual = acc - sent there, exactly).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/topk_sampled.h"
#include "kernels/cuda/workspace.h"
#include "kernels/sparse_vector.h"

#if __cplusplus >= 202002L
#include "kernels/cpu/error_feedback.h"
#endif

namespace fedsilo::kernels::cuda {

// The CPU's types (kernels/cpu/error_feedback.h declares std::span functions, which the C++17
// CUDA sources cannot parse), repeated with the same values; to_cuda() below converts.
enum class SelectMethod : uint8_t { kAll = 0, kTopk = 1, kTopkSampled = 2, kRandk = 3 };
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
};

struct ErrorFeedbackReport {
  bool finite = true;     // false: acc had inf/NaN; nothing was sent
  bool overflow = false;  // a selected value does not fit the value type (fp16 >= 65520)
  SampledTopkStats sampled;
};

/// Entries the index and value outputs need: n for kAll, min(k, n) for top-k and random-k,
/// topk_sampled_capacity(n, k) for sampled top-k (0 when k <= 0).
[[nodiscard]] int64_t error_feedback_capacity(int64_t n, const ErrorFeedbackParams& p);

/// Scratch bytes error_feedback_step_in needs.
[[nodiscard]] Result<size_t> error_feedback_scratch_bytes(int64_t n, const ErrorFeedbackParams& p);

/// One step over n floats (all device memory): the CPU's error_feedback_step. Writes the sent
/// coordinates (ascending) to indices and the values a receiver decodes to values, and returns
/// their count; both arrays hold `capacity` >= error_feedback_capacity(n, p) entries. residual
/// (n floats) is read and written when p.error_feedback; velocity (n floats) when also
/// p.momentum != 0. When the report says !finite or overflow, the count is 0 and residual holds
/// acc (velocity updated), as on the CPU. Requires n < 2^32. Synchronizes the stream (after the
/// first pass, and at the end for the overflow verdict).
[[nodiscard]] Result<int64_t> error_feedback_step(const float* update, float* residual,
                                                  float* velocity, int64_t n,
                                                  const ErrorFeedbackParams& p, uint32_t* indices,
                                                  float* values, int64_t capacity, Workspace& ws,
                                                  Stream s, ErrorFeedbackReport* report = nullptr);

/// error_feedback_step with caller-provided scratch of error_feedback_scratch_bytes(n, p) bytes.
[[nodiscard]] Result<int64_t> error_feedback_step_in(const float* update, float* residual,
                                                     float* velocity, int64_t n,
                                                     const ErrorFeedbackParams& p,
                                                     uint32_t* indices, float* values,
                                                     int64_t capacity, void* scratch, Stream s,
                                                     ErrorFeedbackReport* report = nullptr);

#if __cplusplus >= 202002L
static_assert(kSamplingStreamBit == kernels::kSamplingStreamBit);
static_assert(static_cast<int>(SelectMethod::kTopkSampled) ==
              static_cast<int>(kernels::SelectMethod::kTopkSampled));

/// The CPU parameters as the device step takes them (threads has no meaning there).
inline ErrorFeedbackParams to_cuda(const kernels::ErrorFeedbackParams& p) {
  ErrorFeedbackParams q;
  q.method = static_cast<SelectMethod>(static_cast<uint8_t>(p.method));
  q.k = p.k;
  q.value_type = p.value_type;
  q.error_feedback = p.error_feedback;
  q.momentum = p.momentum;
  q.seed = p.seed;
  q.round = p.round;
  q.silo = p.silo;
  return q;
}
#endif

}  // namespace fedsilo::kernels::cuda
