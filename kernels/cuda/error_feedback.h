// One error-feedback compression step on the device, fused: the twin of
// kernels::error_feedback_step (kernels/cpu/error_feedback.h), with the same sent indices and
// values, residual and velocity bit for bit. The first pass computes acc = update + residual (or
// the DGC momentum form), writes it over the residual, checks it is finite and, for exact top-k,
// builds the radix-select histograms at the same time; then select, quantize the sent values,
// and clear what was sent from the residual (residual = acc - sent there, exactly).
// ErrorFeedbackParams and ErrorFeedbackReport are the CPU's own (kernels/params/error_feedback.h);
// p.threads means nothing here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/workspace.h"
#include "kernels/params/error_feedback.h"

namespace fedsilo::kernels::cuda {

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

}  // namespace fedsilo::kernels::cuda
