// One error-feedback compression step, fused: acc = update + residual (optionally with DGC
// momentum correction), select from acc, quantize the selected values, keep acc - sent as the
// new residual. The identity sent + new residual == update + old residual is kept exactly.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu/topk_sampled.h"
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
  int threads = 0;    // <= 0: OpenMP's default
};

struct ErrorFeedbackReport {
  bool finite = true;        // false: acc had inf/NaN; nothing was sent (see below)
  bool overflow = false;     // a selected value does not fit the value type (fp16 >= 65520)
  SampledTopkStats sampled;  // for kTopkSampled
};

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
