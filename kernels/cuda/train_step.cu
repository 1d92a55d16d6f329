// Step bookkeeping kernels (see train_step.h). All are tiny: the gather moves rows x sample_size
// floats (batch 64 of 784-float images: 200 KB, under a microsecond of bandwidth), the others
// touch a few bytes; what they save is the host round trip per step.
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/train_step.h"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kGatherThreads = 256;
constexpr int kCountThreads = 256;

__global__ void reset_counters_kernel(StepCounters* c, bool whole) {
  c->step = 0;
  if (whole) {
    c->loss_sum = 0.0;
    c->first_bad_loss = -1;
    c->first_bad_params = -1;
    c->params_nonfinite = 0u;
    c->bad_loss_is_nan = 0u;
    c->unused = 0u;
  }
}

__global__ void gather_kernel(const float* __restrict__ x, const int32_t* __restrict__ y, int64_t n,
                              int64_t sample, const int32_t* __restrict__ order,
                              const StepCounters* __restrict__ c, int batch, int rows,
                              float* __restrict__ xb, int32_t* __restrict__ yb) {
  const int64_t first = static_cast<int64_t>(c->step) * batch;
  const int64_t total = static_cast<int64_t>(rows) * sample;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const int64_t r = i / sample, col = i - r * sample;
    const int64_t pos = first + r;
    const bool inside = pos < n;
    const int64_t src = inside ? static_cast<int64_t>(order[pos]) : 0;
    xb[i] = inside ? x[src * sample + col] : 0.0f;
    if (col == 0) yb[r] = inside ? y[src] : -1;
  }
}

// count (DP-SGD's Poisson batch size, on the device) replaces rows when given, and is added to
// *samples.
__global__ void end_step_kernel(const double* batch_loss, int rows, const int32_t* count,
                                StepCounters* c, long long* samples) {
  if (count != nullptr) {
    rows = *count;
    *samples += rows;
  }
  // The CPU trainer: loss = float(total / batch); loss_sum += double(loss) * batch (an empty
  // Poisson batch: loss 0). Explicit roundings (no fused multiply-add) keep the same bits as
  // the host's separate operations.
  const float mean =
      rows > 0 ? static_cast<float>(__ddiv_rn(*batch_loss, static_cast<double>(rows))) : 0.0f;
  const int32_t b = c->step;
  if (!isfinite(mean) && c->first_bad_loss < 0) {
    c->first_bad_loss = b;
    c->bad_loss_is_nan = isnan(mean) ? 1u : 0u;
  }
  if (c->params_nonfinite != 0u && c->first_bad_params < 0) c->first_bad_params = b;
  c->loss_sum = __dadd_rn(c->loss_sum, __dmul_rn(static_cast<double>(mean), rows));
  c->step = b + 1;
}

__global__ void __launch_bounds__(kCountThreads)
    count_correct_kernel(const int32_t* pred, const int32_t* labels, int rows,
                         unsigned long long* correct, bool accumulate) {
  __shared__ unsigned long long partial[kCountThreads];
  unsigned long long mine = 0;
  for (int r = static_cast<int>(threadIdx.x); r < rows; r += kCountThreads) {
    mine += pred[r] == labels[r] ? 1ull : 0ull;
  }
  const unsigned long long total = block_sum_fixed<kCountThreads>(mine, partial);
  if (threadIdx.x == 0) *correct = accumulate ? *correct + total : total;
}

}  // namespace

Status reset_step_counters(StepCounters* c, bool whole, Stream s) {
  if (c == nullptr) return invalid_argument("cuda::reset_step_counters: null counters");
  reset_counters_kernel<<<1, 1, 0, cuda_stream(s)>>>(c, whole);
  FEDSILO_CUDA_LAUNCHED(reset_counters_kernel);
  return {};
}

Status gather_batch(const float* x, const int32_t* y, int64_t n, int64_t sample_size,
                    const int32_t* order, const StepCounters* c, int batch, int rows, float* xb,
                    int32_t* yb, Stream s) {
  if (n < 0 || sample_size < 1 || batch < 1 || rows < 0 || rows > batch) {
    return invalid_argument(
        "cuda::gather_batch: need n >= 0, sample_size >= 1, 0 <= rows <= batch");
  }
  if (rows == 0) return {};
  const int64_t total = int64_t{rows} * sample_size;
  gather_kernel<<<blocks_for(total, kGatherThreads), kGatherThreads, 0, cuda_stream(s)>>>(
      x, y, n, sample_size, order, c, batch, rows, xb, yb);
  FEDSILO_CUDA_LAUNCHED(gather_kernel);
  return {};
}

Status end_step(const double* batch_loss, int rows, StepCounters* c, Stream s) {
  if (rows < 1) return invalid_argument("cuda::end_step: rows must be >= 1");
  end_step_kernel<<<1, 1, 0, cuda_stream(s)>>>(batch_loss, rows, nullptr, c, nullptr);
  FEDSILO_CUDA_LAUNCHED(end_step_kernel);
  return {};
}

Status end_dp_step(const double* batch_loss, const int32_t* count, StepCounters* c,
                   long long* samples, Stream s) {
  if (count == nullptr || samples == nullptr) {
    return invalid_argument("cuda::end_dp_step: null count or samples");
  }
  end_step_kernel<<<1, 1, 0, cuda_stream(s)>>>(batch_loss, 0, count, c, samples);
  FEDSILO_CUDA_LAUNCHED(end_step_kernel);
  return {};
}

Status count_correct(const int32_t* pred, const int32_t* labels, int rows,
                     unsigned long long* correct, bool accumulate, Stream s) {
  if (rows < 0) return invalid_argument("cuda::count_correct: negative rows");
  count_correct_kernel<<<1, kCountThreads, 0, cuda_stream(s)>>>(pred, labels, rows, correct,
                                                                accumulate);
  FEDSILO_CUDA_LAUNCHED(count_correct_kernel);
  return {};
}

}  // namespace fedsilo::kernels::cuda
