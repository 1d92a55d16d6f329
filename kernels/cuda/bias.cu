// Bias kernels. bias_act_rows is elementwise (grid-stride over rows*cols). The bias gradient is
// a column sum of a short, wide-or-narrow matrix (batch 64..512 rows, 10..200 columns): a block
// takes 32 columns (one coalesced 128-byte row segment per warp) and 16 row lanes; lane l sums
// rows l, l+16, ... in order, then lane 0 adds the 16 lane sums in order. No atomics: the
// summation order is a function of (rows, cols) only.
#include "kernels/cuda/bias.h"
#include "kernels/cuda/launch.cuh"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kBiasThreads = 256;
constexpr int kGradCols = 32;      // columns per block (a warp's coalesced row segment)
constexpr int kGradRowLanes = 16;  // row lanes per column: 512 threads per block

template <bool kRelu>
__global__ void bias_act_kernel(float* y, const float* b, int64_t total, int cols) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += stride) {
    const float v = y[i] + b[i % cols];
    y[i] = kRelu ? (v < 0.0f ? 0.0f : v) : v;  // std::max(v, 0) of the CPU twin
  }
}

// blockDim = (kGradCols, kGradRowLanes); grid.x covers the columns.
template <bool kRelu>
__global__ void bias_grad_kernel(const float* y, float* dy, int rows, int cols, float* db) {
  __shared__ float lane_sum[kGradRowLanes][kGradCols];
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int col = static_cast<int>(blockIdx.x) * kGradCols + tx;
  float acc = 0.0f;
  if (col < cols) {
    for (int r = ty; r < rows; r += kGradRowLanes) {
      const int64_t idx = static_cast<int64_t>(r) * cols + col;
      float g = dy[idx];
      if (kRelu) {
        g = y[idx] > 0.0f ? g : 0.0f;
        dy[idx] = g;
      }
      acc += g;
    }
  }
  lane_sum[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && col < cols) {
    float total = 0.0f;
    for (int l = 0; l < kGradRowLanes; ++l) total += lane_sum[l][tx];
    db[col] = total;
  }
}

template <bool kRelu>
Status launch_bias_grad(const float* y, float* dy, int rows, int cols, float* db, Stream s) {
  if (rows < 0 || cols < 0) return invalid_argument("cuda::bias_grad_rows: negative size");
  if (cols == 0) return {};
  const dim3 block(kGradCols, kGradRowLanes);
  const dim3 grid(static_cast<unsigned>(ceil_div64(cols, kGradCols)));
  bias_grad_kernel<kRelu><<<grid, block, 0, cuda_stream(s)>>>(y, dy, rows, cols, db);
  FEDSILO_CUDA_LAUNCHED(bias_grad_kernel);
  return {};
}

}  // namespace

Status bias_act_rows(float* y, const float* b, int rows, int cols, bool relu, Stream s) {
  if (rows < 0 || cols < 0) return invalid_argument("cuda::bias_act_rows: negative size");
  const int64_t total = static_cast<int64_t>(rows) * cols;
  if (total == 0) return {};
  const unsigned blocks = blocks_for(total, kBiasThreads);
  if (relu) {
    bias_act_kernel<true><<<blocks, kBiasThreads, 0, cuda_stream(s)>>>(y, b, total, cols);
  } else {
    bias_act_kernel<false><<<blocks, kBiasThreads, 0, cuda_stream(s)>>>(y, b, total, cols);
  }
  FEDSILO_CUDA_LAUNCHED(bias_act_kernel);
  return {};
}

Status bias_grad_rows(const float* dy, int rows, int cols, float* db, Stream s) {
  // The non-ReLU instantiation never writes dy; the cast only shares the kernel signature.
  return launch_bias_grad<false>(nullptr, const_cast<float*>(dy), rows, cols, db, s);
}

Status relu_bias_grad_rows(const float* y, float* dy, int rows, int cols, float* db, Stream s) {
  return launch_bias_grad<true>(y, dy, rows, cols, db, s);
}

}  // namespace fedsilo::kernels::cuda
