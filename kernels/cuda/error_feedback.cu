// The fused error-feedback step on the device (see error_feedback.h).
//
// Memory traffic for n floats, exact top-k, no momentum: pass A reads update and residual and
// writes acc over the residual (12n bytes) while it builds the level-1 histograms; the
// candidate pass reads acc (4n bytes); the rest touches ~k elements. With momentum, pass A also
// reads and writes the velocity (20n bytes). The same passes as the CPU, on ~4 TB/s.
#include <algorithm>
#include <cfloat>

#include "core/philox.h"
#include "kernels/cuda/error_feedback.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/quantize.h"
#include "kernels/cuda/radix_select.cuh"
#include "kernels/cuda/randk.h"
#include "kernels/cuda/sparse.h"
#include "kernels/cuda/topk.h"
#include "kernels/cuda/topk_sampled.h"

namespace fedsilo::kernels::cuda {
namespace {


// flags[kBad]: some acc was not finite; flags[kOverflow]: some sent value was not.
constexpr int kBad = 0, kOverflow = 1, kFlags = 2;

/// Pass A, element i: the CPU's accumulate_chunk. mode 0: acc = update (no error feedback);
/// 1: acc = update + residual; 2: velocity = momentum * velocity + update (one fused
/// multiply-add, as the CPU's -march=native build computes it), acc = residual + velocity.
struct Accumulate {
  const float* update;
  float* residual;
  float* velocity;
  float momentum;
  int mode;
  unsigned* flags;

  __device__ float operator()(int64_t i) const {
    float a;
    if (mode == 2) {
      const float v = __fmaf_rn(momentum, velocity[i], update[i]);
      velocity[i] = v;
      a = __fadd_rn(residual[i], v);
      residual[i] = a;
    } else if (mode == 1) {
      a = __fadd_rn(update[i], residual[i]);
      residual[i] = a;
    } else {
      a = update[i];
    }
    if (!(fabsf(a) <= FLT_MAX)) atomicOr(&flags[kBad], 1u);
    return a;
  }
};

__global__ void accumulate_kernel(Accumulate op, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    op(i);
  }
}

__global__ void overflow_kernel(const float* __restrict__ sent, int64_t count,
                                unsigned* __restrict__ flags) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += stride) {
    if (!(fabsf(sent[j]) <= FLT_MAX)) atomicOr(&flags[kOverflow], 1u);
  }
}

// residual = acc - sent on the sent coordinates (exact: Sterbenz), velocity cleared there;
// skipped entirely when a sent value overflowed (the CPU returns before this step).
__global__ void clear_sent_kernel(const uint32_t* __restrict__ idx, const float* __restrict__ sent,
                                  int64_t count, float* __restrict__ residual,
                                  float* __restrict__ velocity,
                                  const unsigned* __restrict__ flags) {
  if (flags[kOverflow] != 0) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < count;
       j += stride) {
    const uint32_t i = idx[j];
    if (residual != nullptr) residual[i] = __fsub_rn(residual[i], sent[j]);
    if (velocity != nullptr) velocity[i] = 0.0f;
  }
}

bool fused_histograms(int64_t n, const ErrorFeedbackParams& p) {
  return p.method == SelectMethod::kTopk && p.k > 0 && p.k < n;
}

PhiloxStream sampling_stream(const ErrorFeedbackParams& p) {
  return PhiloxStream{p.seed, p.round, p.silo | kSamplingStreamBit, RngPurpose::kCompression};
}

struct Layout {
  unsigned* flags = nullptr;
  radix::Plan plan;  // fused exact top-k
  radix::Scratch rs;
  size_t nested_bytes = 0;  // sampled top-k or random-k
  void* nested = nullptr;

  void carve(Carver& c, bool fused) {
    flags = c.take<unsigned>(kFlags);
    if (fused) rs.carve(c, plan);
    nested = c.take<unsigned char>(nested_bytes);
  }
};

Result<Layout> plan_layout(int64_t n, const ErrorFeedbackParams& p) {
  Layout l;
  if (fused_histograms(n, p)) {
    FEDSILO_ASSIGN_OR_RETURN(l.plan, radix::make_plan(n));
  } else if (p.method == SelectMethod::kTopkSampled) {
    FEDSILO_ASSIGN_OR_RETURN(l.nested_bytes, topk_sampled_scratch_bytes(n, p.k));
  } else if (p.method == SelectMethod::kRandk) {
    FEDSILO_ASSIGN_OR_RETURN(l.nested_bytes, randk_scratch_bytes(n, p.k));
  }
  return l;
}

Status check_args(const float* update, float* residual, float* velocity, int64_t n,
                  const ErrorFeedbackParams& p, uint32_t* indices, float* values,
                  int64_t capacity) {
  if (n < 0 || n > int64_t{UINT32_MAX}) {
    return invalid_argument("error_feedback_step: n = " + std::to_string(n) +
                            " is outside [0, 2^32)");
  }
  if (p.silo >= (1u << 30)) return invalid_argument("error_feedback_step: silo >= 2^30");
  if (capacity < error_feedback_capacity(n, p)) {
    return invalid_argument("error_feedback_step: output capacity " + std::to_string(capacity) +
                            " below " + std::to_string(error_feedback_capacity(n, p)));
  }
  if (n > 0 && update == nullptr) return invalid_argument("error_feedback_step: null update");
  if (n > 0 && p.error_feedback && residual == nullptr) {
    return invalid_argument("error_feedback_step: null residual with error feedback");
  }
  if (n > 0 && p.error_feedback && p.momentum != 0.0f && velocity == nullptr) {
    return invalid_argument("error_feedback_step: null velocity with momentum");
  }
  if (error_feedback_capacity(n, p) > 0 && (indices == nullptr || values == nullptr)) {
    return invalid_argument("error_feedback_step: null output");
  }
  return {};
}

}  // namespace

int64_t error_feedback_capacity(int64_t n, const ErrorFeedbackParams& p) {
  if (n <= 0) return 0;
  switch (p.method) {
    case SelectMethod::kAll:
      return n;
    case SelectMethod::kTopk:
    case SelectMethod::kRandk:
      return std::clamp<int64_t>(p.k, 0, n);
    case SelectMethod::kTopkSampled:
      return topk_sampled_capacity(n, p.k);
  }
  return 0;
}

Result<size_t> error_feedback_scratch_bytes(int64_t n, const ErrorFeedbackParams& p) {
  if (n < 0 || n > int64_t{UINT32_MAX}) return invalid_argument("error_feedback: bad n");
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, p));
  Carver c(nullptr);
  l.carve(c, fused_histograms(n, p));
  return c.bytes();
}

Result<int64_t> error_feedback_step_in(const float* update, float* residual, float* velocity,
                                       int64_t n, const ErrorFeedbackParams& p, uint32_t* indices,
                                       float* values, int64_t capacity, void* scratch, Stream s,
                                       ErrorFeedbackReport* report) {
  ErrorFeedbackReport rep;
  if (report != nullptr) *report = rep;
  FEDSILO_CHECK(check_args(update, residual, velocity, n, p, indices, values, capacity));
  if (n == 0) return int64_t{0};
  if (scratch == nullptr) return invalid_argument("error_feedback_step: null scratch");
  const cudaStream_t stream = cuda_stream(s);
  const bool ef = p.error_feedback;
  const float momentum = ef ? p.momentum : 0.0f;
  const bool fused = fused_histograms(n, p);
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, p));
  Carver carver(scratch);
  l.carve(carver, fused);
  FEDSILO_CUDA_TRY(cudaMemsetAsync(l.flags, 0, sizeof(unsigned) * kFlags, stream));

  // Pass A: acc, finiteness, and for exact top-k the level-1 histograms.
  const Accumulate op{update,
                      ef ? residual : nullptr,
                      momentum != 0.0f ? velocity : nullptr,
                      momentum,
                      !ef ? 0 : (momentum != 0.0f ? 2 : 1),
                      l.flags};
  if (fused) {
    FEDSILO_CHECK(radix::clear_histograms(l.rs, stream));
    FEDSILO_CHECK(radix::launch_histogram(op, l.plan, l.rs, stream));
  } else {
    accumulate_kernel<<<blocks_for(n), kThreads, 0, stream>>>(op, n);
    FEDSILO_CUDA_LAUNCHED(accumulate_kernel);
  }
  unsigned bad = 0;
  FEDSILO_CUDA_TRY(
      cudaMemcpyAsync(&bad, l.flags + kBad, sizeof(bad), cudaMemcpyDeviceToHost, stream));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
  if (bad != 0) {
    rep.finite = false;
    if (report != nullptr) *report = rep;
    return int64_t{0};
  }
  const float* acc = ef ? residual : update;

  // Selection.
  int64_t count = 0;
  switch (p.method) {
    case SelectMethod::kAll:
      FEDSILO_CHECK(fill_iota(indices, n, s));
      count = n;
      break;
    case SelectMethod::kTopk:
      count = std::clamp<int64_t>(p.k, 0, n);
      if (fused) {
        FEDSILO_CHECK(radix::select_from_histograms(acc, l.plan, p.k, l.rs, nullptr, indices,
                                                    nullptr, stream));
      } else {
        FEDSILO_CHECK(topk_in(acc, n, p.k, indices, nullptr, nullptr, s));  // none or all
      }
      break;
    case SelectMethod::kTopkSampled: {
      FEDSILO_ASSIGN_OR_RETURN(
          count, topk_sampled_in(acc, n, p.k, sampling_stream(p), indices, nullptr, capacity,
                                 l.nested, s, &rep.sampled));
      break;
    }
    case SelectMethod::kRandk:
      count = std::clamp<int64_t>(p.k, 0, n);
      FEDSILO_CHECK(randk_indices_in(n, p.k, p.seed, p.round, indices, l.nested, s));
      break;
  }

  // The values a receiver decodes, then the residual update unless one overflowed.
  FEDSILO_CHECK(gather(acc, indices, count, values, s));
  FEDSILO_CHECK(
      round_trip_values(p.value_type, values, count, RoundingStream{p.seed, p.round, p.silo}, s));
  if (count > 0) {
    overflow_kernel<<<blocks_for(count), kThreads, 0, stream>>>(values, count, l.flags);
    FEDSILO_CUDA_LAUNCHED(overflow_kernel);
    if (ef) {
      clear_sent_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
          indices, values, count, residual, momentum != 0.0f ? velocity : nullptr, l.flags);
      FEDSILO_CUDA_LAUNCHED(clear_sent_kernel);
    }
  }
  unsigned overflow = 0;
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(&overflow, l.flags + kOverflow, sizeof(overflow),
                                   cudaMemcpyDeviceToHost, stream));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
  if (overflow != 0) {
    rep.overflow = true;
    count = 0;
  }
  if (report != nullptr) *report = rep;
  return count;
}

Result<int64_t> error_feedback_step(const float* update, float* residual, float* velocity,
                                    int64_t n, const ErrorFeedbackParams& p, uint32_t* indices,
                                    float* values, int64_t capacity, Workspace& ws, Stream s,
                                    ErrorFeedbackReport* report) {
  if (report != nullptr) *report = ErrorFeedbackReport{};
  FEDSILO_CHECK(check_args(update, residual, velocity, n, p, indices, values, capacity));
  if (n == 0) return int64_t{0};
  FEDSILO_ASSIGN_OR_RETURN(const size_t bytes, error_feedback_scratch_bytes(n, p));
  FEDSILO_ASSIGN_OR_RETURN(void* scratch, ws.reserve(bytes));
  return error_feedback_step_in(update, residual, velocity, n, p, indices, values, capacity,
                                scratch, s, report);
}

}  // namespace fedsilo::kernels::cuda
