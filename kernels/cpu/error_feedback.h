// One error-feedback compression step, fused: acc = update + residual (optionally with DGC
// momentum correction), select from acc, quantize the selected values, keep acc - sent as the
// new residual. The identity sent + new residual == update + old residual is kept exactly.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/params/error_feedback.h"
#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// One step. With error feedback and momentum == 0:
///   acc = update + residual; send S = select(acc); sent = round_trip(acc[S]);
///   residual[i] = acc[i] - sent[i] on S, acc[i] elsewhere.
/// With momentum m (DGC momentum correction, Lin et al. 2018; needs error feedback):
///   velocity = m * velocity + update; acc = residual + velocity; select and send as above;
///   residual[i] = acc[i] - sent[i] and velocity[i] = 0 on S.
/// The float identity sent[i] + residual[i] == acc[i] holds exactly for fp32, fp16 and bf16
/// (sent is acc rounded to a nearby grid point, so acc - sent is exact by Sterbenz' lemma), and
/// for int8 whenever |acc[i]| >= scale / 2 or the value rounded to 0; for the rare small value
/// that stochastic rounding sends as +-scale, the residual is acc - sent rounded to fp32
/// (error <= 2^-25 scale).
/// Returns the sent coordinates (ascending) with the values a receiver decodes. When the
/// report says !finite or overflow, the result is empty and residual holds acc (velocity is
/// updated): the caller turns that into an error and stops the run.
/// Spans: residual has n floats when error_feedback; velocity has n floats when momentum != 0.
SparseVector error_feedback_step(std::span<const float> update, std::span<float> residual,
                                 std::span<float> velocity, const ErrorFeedbackParams& p,
                                 ErrorFeedbackReport* report = nullptr);

/// The same step for update + addends[0] + addends[1] + ... (each n floats), summed in that
/// order inside the step's pass over the data, so the sum is never written out: bitwise what
/// adding the addends into a copy of update one by one, then the step, gives. Addends need
/// error feedback (the sum lands in residual); without them it is the step above.
SparseVector error_feedback_step(std::span<const float> update,
                                 std::span<const float* const> addends, std::span<float> residual,
                                 std::span<float> velocity, const ErrorFeedbackParams& p,
                                 ErrorFeedbackReport* report = nullptr);

}  // namespace fedsilo::kernels
