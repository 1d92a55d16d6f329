// Softmax cross-entropy: one thread per row (classes is ~10: a row is 40 bytes, and a warp per
// row would idle 22 of 32 lanes), max-shifted as the CPU twin, in one block of
// kXentThreads threads so that the batch loss is reduced in the same launch: each thread sums
// its rows (r, r + kXentThreads, ...) in order in double, then a fixed binary tree adds the
// thread sums. At batch 512 every thread has one row: ~10 exps, ~1 us.
#include <cmath>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/softmax_xent.h"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kXentThreads = 512;
constexpr int kArgmaxThreads = 256;

// No __restrict__: dlogits may alias logits. A thread reads z[c] before it writes d[c] for
// the same c, and touches only its own rows.
__global__ void __launch_bounds__(kXentThreads)
    softmax_xent_kernel(const float* logits, const int32_t* labels, int rows, int classes,
                        float scale, float* dlogits, double* loss, bool accumulate,
                        const int32_t* count) {
  __shared__ double partial[kXentThreads];
  const int real = count != nullptr ? *count : rows;  // rows past it are masked out
  double acc = 0.0;
  for (int r = static_cast<int>(threadIdx.x); r < rows; r += kXentThreads) {
    if (r >= real) {
      if (dlogits != nullptr) {
        for (int c = 0; c < classes; ++c) dlogits[static_cast<int64_t>(r) * classes + c] = 0.0f;
      }
      continue;
    }
    const float* z = logits + static_cast<int64_t>(r) * classes;
    float zmax = z[0];
    for (int c = 1; c < classes; ++c) zmax = z[c] > zmax ? z[c] : zmax;
    float sum = 0.0f;
    for (int c = 0; c < classes; ++c) sum += expf(z[c] - zmax);
    const int y = labels[r];
    const bool valid = y >= 0 && y < classes;
    const float log_sum = logf(sum);
    // -log softmax[y] = log(sum exp(z - max)) - (z_y - max)
    acc += valid ? static_cast<double>(log_sum - (z[y] - zmax)) : static_cast<double>(NAN);
    if (dlogits != nullptr) {
      float* d = dlogits + static_cast<int64_t>(r) * classes;
      const float inv = 1.0f / sum;
      for (int c = 0; c < classes; ++c) {
        const float p = expf(z[c] - zmax) * inv;
        d[c] = valid ? (p - (c == y ? 1.0f : 0.0f)) * scale : NAN;
      }
    }
  }
  const double total = block_sum_fixed<kXentThreads>(acc, partial);
  if (threadIdx.x == 0 && loss != nullptr) *loss = accumulate ? *loss + total : total;
}

__global__ void argmax_rows_kernel(const float* __restrict__ logits, int rows, int classes,
                                   int32_t* __restrict__ out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += stride) {
    const float* z = logits + r * classes;
    int best = 0;
    bool nan = isnan(z[0]);
    for (int c = 1; c < classes; ++c) {
      nan = nan || isnan(z[c]);
      if (z[c] > z[best]) best = c;  // strict: the lowest index wins ties
    }
    out[r] = nan ? -1 : best;
  }
}

}  // namespace

Status softmax_xent(const float* logits, const int32_t* labels, int rows, int classes, float scale,
                    float* dlogits, double* loss, bool accumulate, Stream s) {
  if (rows < 0 || classes < 1) {
    return invalid_argument("cuda::softmax_xent: rows must be >= 0 and classes >= 1");
  }
  // rows == 0 still launches: *loss is defined (0, or unchanged when accumulating).
  softmax_xent_kernel<<<1, kXentThreads, 0, cuda_stream(s)>>>(logits, labels, rows, classes, scale,
                                                              dlogits, loss, accumulate, nullptr);
  FEDSILO_CUDA_LAUNCHED(softmax_xent_kernel);
  return {};
}

Status masked_softmax_xent(const float* logits, const int32_t* labels, const int32_t* count,
                           int rows, int classes, float* dlogits, double* loss, Stream s) {
  if (rows < 1 || classes < 1 || dlogits == nullptr || loss == nullptr || count == nullptr) {
    return invalid_argument("cuda::masked_softmax_xent: need rows, classes >= 1 and outputs");
  }
  softmax_xent_kernel<<<1, kXentThreads, 0, cuda_stream(s)>>>(logits, labels, rows, classes, 1.0f,
                                                              dlogits, loss, false, count);
  FEDSILO_CUDA_LAUNCHED(softmax_xent_kernel);
  return {};
}

Status argmax_rows(const float* logits, int rows, int classes, int32_t* out, Stream s) {
  if (rows < 0 || classes < 1) {
    return invalid_argument("cuda::argmax_rows: rows must be >= 0 and classes >= 1");
  }
  if (rows == 0) return {};
  argmax_rows_kernel<<<blocks_for(rows, kArgmaxThreads), kArgmaxThreads, 0, cuda_stream(s)>>>(
      logits, rows, classes, out);
  FEDSILO_CUDA_LAUNCHED(argmax_rows_kernel);
  return {};
}

}  // namespace fedsilo::kernels::cuda
