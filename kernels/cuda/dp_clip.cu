// DP-SGD's per-example clipping kernels (see dp_clip.h). At the NIID CNN's sizes every kernel
// here is small (a padded Poisson batch of ~64-96 rows; conv2's per-sample gradient is 2,416
// floats): they are written for a fixed summation order first, then for fewer launches.
#include <cmath>

#include "kernels/cuda/dp_clip.h"
#include "kernels/cuda/launch.cuh"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kThreadsRow = 256;  // one block per row (norms)
constexpr int kElementwise = 256;

__global__ void gather_rows_kernel(const float* __restrict__ x, const int32_t* __restrict__ y,
                                   int64_t n, int64_t sample, const int32_t* __restrict__ idx,
                                   int rows, float* __restrict__ xb, int32_t* __restrict__ yb) {
  const int64_t total = static_cast<int64_t>(rows) * sample;
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t r = i / sample, col = i - r * sample;
    const int64_t src = idx[r];
    const bool inside = src >= 0 && src < n;
    xb[i] = inside ? x[src * sample + col] : 0.0f;
    if (col == 0) yb[r] = inside ? y[src] : -1;
  }
}

// Block (sample i, output channel o); thread j over the in_c k k taps (strided), summing over
// the output positions in row-major order. The dy plane of (i, o) is staged in shared memory.
__global__ void conv_per_sample_kernel(Conv2dShape s, const float* __restrict__ x,
                                       const float* __restrict__ dy, float* __restrict__ keep) {
  extern __shared__ float plane[];
  const int i = static_cast<int>(blockIdx.x), o = static_cast<int>(blockIdx.y);
  const int oh = s.in_h - s.k + 1, ow = s.in_w - s.k + 1, positions = oh * ow;
  const int taps = s.k * s.k, weights = s.in_c * taps;
  const float* d = dy + (static_cast<int64_t>(i) * s.out_c + o) * positions;
  for (int p = static_cast<int>(threadIdx.x); p < positions; p += blockDim.x) plane[p] = d[p];
  __syncthreads();
  float* g = keep + static_cast<int64_t>(i) * (static_cast<int64_t>(s.out_c) * weights + s.out_c);
  const float* xi = x + static_cast<int64_t>(i) * s.in_c * s.in_h * s.in_w;
  for (int j = static_cast<int>(threadIdx.x); j < weights; j += blockDim.x) {
    const int c = j / taps, t = j - c * taps, kh = t / s.k, kw = t - kh * s.k;
    const float* xc = xi + static_cast<int64_t>(c) * s.in_h * s.in_w;
    float acc = 0.0f;
    for (int r = 0; r < oh; ++r) {
      const float* xrow = xc + static_cast<int64_t>(r + kh) * s.in_w + kw;
      const float* drow = plane + r * ow;
      for (int q = 0; q < ow; ++q) acc = fmaf(drow[q], xrow[q], acc);
    }
    g[static_cast<int64_t>(o) * weights + j] = acc;
  }
  if (threadIdx.x == 0) {
    float b = 0.0f;
    for (int p = 0; p < positions; ++p) b += plane[p];
    g[static_cast<int64_t>(s.out_c) * weights + o] = b;
  }
}

__global__ void __launch_bounds__(kThreadsRow)
    row_sq_norms_kernel(const float* __restrict__ v, int64_t cols, double* __restrict__ norms2) {
  __shared__ double partial[kThreadsRow];
  const float* row = v + static_cast<int64_t>(blockIdx.x) * cols;
  double acc = 0.0;
  for (int64_t j = threadIdx.x; j < cols; j += kThreadsRow)
    acc += static_cast<double>(row[j]) * row[j];
  const double total = block_sum_fixed<kThreadsRow>(acc, partial);
  if (threadIdx.x == 0) norms2[blockIdx.x] += total;
}

__global__ void __launch_bounds__(kThreadsRow)
    ghost_norms_kernel(const float* __restrict__ d, int out, const float* __restrict__ x, int in,
                       double* __restrict__ norms2) {
  __shared__ double partial[kThreadsRow];
  const float* di = d + static_cast<int64_t>(blockIdx.x) * out;
  const float* xi = x + static_cast<int64_t>(blockIdx.x) * in;
  double dd = 0.0, xx = 0.0;
  for (int j = static_cast<int>(threadIdx.x); j < out; j += kThreadsRow)
    dd += static_cast<double>(di[j]) * di[j];
  for (int j = static_cast<int>(threadIdx.x); j < in; j += kThreadsRow)
    xx += static_cast<double>(xi[j]) * xi[j];
  const double sd = block_sum_fixed<kThreadsRow>(dd, partial);
  const double sx = block_sum_fixed<kThreadsRow>(xx, partial);
  if (threadIdx.x == 0) norms2[blockIdx.x] += sd * (sx + 1.0);
}

__global__ void clip_factors_kernel(const double* __restrict__ norms2, int rows, double clip,
                                    float* __restrict__ scale) {
  for (int64_t i = grid_start(); i < rows; i += grid_stride()) {
    scale[i] = static_cast<float>(fmin(1.0, clip / (sqrt(norms2[i]) + 1e-6)));
  }
}

__global__ void scale_rows_kernel(float* __restrict__ m, int64_t cols, int rows,
                                  const float* __restrict__ scale) {
  const int64_t total = static_cast<int64_t>(rows) * cols;
  for (int64_t i = grid_start(); i < total; i += grid_stride()) m[i] *= scale[i / cols];
}

__global__ void weighted_row_sums_kernel(const float* __restrict__ m, int64_t cols, int rows,
                                         const float* __restrict__ scale, float* __restrict__ first,
                                         int64_t split, float* __restrict__ second) {
  for (int64_t j = grid_start(); j < cols; j += grid_stride()) {
    float acc = 0.0f;
    for (int i = 0; i < rows; ++i) {  // sample order, as the CPU's clip_grads
      const float v = m[static_cast<int64_t>(i) * cols + j];
      acc += scale != nullptr ? scale[i] * v : v;
    }
    if (j < split) {
      first[j] = acc;
    } else {
      second[j - split] = acc;
    }
  }
}

__global__ void add_scaled_noise_kernel(float* __restrict__ g, const float* __restrict__ noise,
                                        int64_t n, float scale) {
  for (int64_t j = grid_start(); j < n; j += grid_stride())
    g[j] = __fadd_rn(__fmul_rn(g[j], scale), noise[j]);
}

}  // namespace

Status gather_rows(const float* x, const int32_t* y, int64_t n, int64_t sample_size,
                   const int32_t* idx, int rows, float* xb, int32_t* yb, Stream s) {
  if (n < 0 || sample_size < 1 || rows < 0) {
    return invalid_argument("cuda::gather_rows: need n >= 0, sample_size >= 1, rows >= 0");
  }
  if (rows == 0) return {};
  const int64_t total = int64_t{rows} * sample_size;
  gather_rows_kernel<<<blocks_for(total, kElementwise), kElementwise, 0, cuda_stream(s)>>>(
      x, y, n, sample_size, idx, rows, xb, yb);
  FEDSILO_CUDA_LAUNCHED(gather_rows_kernel);
  return {};
}

Status conv2d_per_sample_grads(const Conv2dShape& s, const float* x, const float* dy, float* keep,
                               Stream st) {
  if (s.batch < 0 || s.in_c < 1 || s.out_c < 1 || s.k < 1 || s.out_h() < 1 || s.out_w() < 1) {
    return invalid_argument("cuda::conv2d_per_sample_grads: bad shape");
  }
  if (s.batch == 0) return {};
  FEDSILO_CHECK(check_grid(s.batch, s.out_c, "cuda::conv2d_per_sample_grads"));
  const size_t plane = static_cast<size_t>(s.out_h()) * s.out_w() * sizeof(float);
  if (plane > 48 * 1024) {
    return invalid_argument("cuda::conv2d_per_sample_grads: an output plane of " +
                            std::to_string(plane) + " bytes exceeds 48 KiB of shared memory");
  }
  const dim3 grid(static_cast<unsigned>(s.batch), static_cast<unsigned>(s.out_c));
  conv_per_sample_kernel<<<grid, 256, plane, cuda_stream(st)>>>(s, x, dy, keep);
  FEDSILO_CUDA_LAUNCHED(conv_per_sample_kernel);
  return {};
}

Status add_row_sq_norms(const float* v, int64_t cols, int rows, double* norms2, Stream s) {
  if (cols < 0 || rows < 0) return invalid_argument("cuda::add_row_sq_norms: negative size");
  if (rows == 0) return {};
  FEDSILO_CHECK(check_grid(rows, 1, "cuda::add_row_sq_norms"));
  row_sq_norms_kernel<<<rows, kThreadsRow, 0, cuda_stream(s)>>>(v, cols, norms2);
  FEDSILO_CUDA_LAUNCHED(row_sq_norms_kernel);
  return {};
}

Status add_ghost_norms(const float* d, int out, const float* x, int in, int rows, double* norms2,
                       Stream s) {
  if (out < 1 || in < 1 || rows < 0) return invalid_argument("cuda::add_ghost_norms: bad shape");
  if (rows == 0) return {};
  FEDSILO_CHECK(check_grid(rows, 1, "cuda::add_ghost_norms"));
  ghost_norms_kernel<<<rows, kThreadsRow, 0, cuda_stream(s)>>>(d, out, x, in, norms2);
  FEDSILO_CUDA_LAUNCHED(ghost_norms_kernel);
  return {};
}

Status clip_factors(const double* norms2, int rows, double clip, float* scale, Stream s) {
  if (rows < 0 || !(clip > 0.0)) return invalid_argument("cuda::clip_factors: need clip > 0");
  if (rows == 0) return {};
  clip_factors_kernel<<<blocks_for(rows, kElementwise), kElementwise, 0, cuda_stream(s)>>>(
      norms2, rows, clip, scale);
  FEDSILO_CUDA_LAUNCHED(clip_factors_kernel);
  return {};
}

Status scale_rows(float* m, int64_t cols, int rows, const float* scale, Stream s) {
  if (cols < 0 || rows < 0) return invalid_argument("cuda::scale_rows: negative size");
  if (cols == 0 || rows == 0) return {};
  const int64_t total = int64_t{rows} * cols;
  scale_rows_kernel<<<blocks_for(total, kElementwise), kElementwise, 0, cuda_stream(s)>>>(
      m, cols, rows, scale);
  FEDSILO_CUDA_LAUNCHED(scale_rows_kernel);
  return {};
}

Status weighted_row_sums(const float* m, int64_t cols, int rows, const float* scale, float* first,
                         int64_t split, float* second, Stream s) {
  if (cols < 0 || rows < 0 || split < 0 || split > cols || (split < cols && second == nullptr)) {
    return invalid_argument("cuda::weighted_row_sums: bad sizes");
  }
  if (cols == 0) return {};
  weighted_row_sums_kernel<<<blocks_for(cols, kElementwise), kElementwise, 0, cuda_stream(s)>>>(
      m, cols, rows, scale, first, split, second);
  FEDSILO_CUDA_LAUNCHED(weighted_row_sums_kernel);
  return {};
}

Status add_scaled_noise(float* g, const float* noise, int64_t n, float scale, Stream s) {
  if (n < 0) return invalid_argument("cuda::add_scaled_noise: negative n");
  if (n == 0) return {};
  add_scaled_noise_kernel<<<blocks_for(n, kElementwise), kElementwise, 0, cuda_stream(s)>>>(
      g, noise, n, scale);
  FEDSILO_CUDA_LAUNCHED(add_scaled_noise_kernel);
  return {};
}

}  // namespace fedsilo::kernels::cuda
