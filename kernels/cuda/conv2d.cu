// Direct convolution kernels (stride 1, no padding), written for the small layers of the models
// fedsilo trains (NIID-Bench CNN: conv1 1->6 5x5 on 28x28, conv2 6->16 5x5 on 12x12), where
// im2col + GEMM would move more bytes than it saves in arithmetic.
//
// Forward: a thread per output pixel (n, i, j) and kFwdOcb output channels (register
// accumulators); the block stages those channels' weights in shared memory (read as broadcasts)
// and each input value, loaded once through the read-only cache, feeds kFwdOcb FMAs.
//   conv1 at batch 512: 295k pixels x 25 taps x 8 FMAs (6 useful) = 59M FMAs; conv2: 33k pixels
//   x 2 channel groups x 150 taps x 8 = 79M FMAs: tens of microseconds at worst.
// dx: a thread per input pixel (n, Y, X) and kDxCb input channels: the full correlation of the
//   (ReLU-masked) output gradient with the flipped kernel, over the window of output positions
//   that saw (Y, X), weights staged as in the forward pass.
// dw, db: a reduction over batch x out_h x out_w (295k terms per weight for conv1 at batch 512)
//   into few outputs (150 + 6), done in a fixed order without atomics:
//   pass 1: block (sample chunk, output channel); a thread per (tap, pixel lane): lane l of tap
//     t sums pixels l, l + lanes, ... of every sample of the chunk in order; the lanes of a tap
//     are then added in lane order. The bias is one more tap (x = 1). Partials go to the
//     workspace, one per (chunk, o, tap).
//   pass 2: a thread per weight adds the chunk partials in chunk order.
//   Every order is a function of the shape only, so the bits repeat run to run.
#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/launch.cuh"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kConvThreads = 256;
// Forward blocks resident per SM the compiler must allow: at 6 it fits the kernel in 40
// registers without spills (ptxas' own choice spilled 24 bytes); 6 x 16 KiB of shared memory.
constexpr int kFwdMinBlocks = 6;
constexpr int kSmemFloats = 4096;                 // 16 KiB of staged weights per block
constexpr int kFwdOcb = 8;                        // output channels per forward thread
constexpr int kFwdChunk = kSmemFloats / kFwdOcb;  // staged floats per output channel: 512
constexpr int kDxCb = 8;                          // input channels per dx thread
constexpr int kDwThreads = 256;                   // most threads of a dw pass-1 block
constexpr int kDwMaxChunks = 128;                 // most sample chunks (partials per weight)
static_assert(kFwdChunk >= kConv2dMaxTaps, "a channel's taps must fit one forward chunk");
static_assert(kSmemFloats / kDxCb >= kConv2dMaxTaps, "a channel's taps must fit one dx chunk");

// The gradient that reaches the pre-activation: dy where the forward output was > 0 (ReLU).
__device__ __forceinline__ float masked_grad(const float* __restrict__ dy,
                                             const float* __restrict__ y, int64_t i, bool relu) {
  const float g = __ldg(dy + i);
  return relu && !(__ldg(y + i) > 0.0f) ? 0.0f : g;
}

__global__ void __launch_bounds__(kConvThreads, kFwdMinBlocks)
    conv_forward_kernel(const float* __restrict__ x, const float* __restrict__ w,
                        const float* __restrict__ b, float* __restrict__ y, int batch, int in_c,
                        int in_h, int in_w, int out_c, int k, bool relu) {
  __shared__ float ws[kSmemFloats];  // ws[oo * kFwdChunk + cc * k*k + p * k + q]
  const int oh = in_h - k + 1, ow = in_w - k + 1, kk = k * k;
  const int64_t out_plane = static_cast<int64_t>(oh) * ow;
  const int64_t in_plane = static_cast<int64_t>(in_h) * in_w;
  const int64_t pix = static_cast<int64_t>(blockIdx.x) * kConvThreads + threadIdx.x;
  const bool valid = pix < static_cast<int64_t>(batch) * out_plane;
  int64_t n = 0;
  int i = 0, j = 0;
  if (valid) {
    n = pix / out_plane;
    const int64_t r = pix - n * out_plane;
    i = static_cast<int>(r / ow);
    j = static_cast<int>(r % ow);
  }
  const int o0 = static_cast<int>(blockIdx.y) * kFwdOcb;
  const int nout = min(kFwdOcb, out_c - o0);
  float acc[kFwdOcb];
#pragma unroll
  for (int oo = 0; oo < kFwdOcb; ++oo) acc[oo] = oo < nout ? b[o0 + oo] : 0.0f;

  const float* xn = x + n * in_c * in_plane + static_cast<int64_t>(i) * in_w + j;
  const int cpc = kFwdChunk / kk;  // input channels per staged chunk (>= 1: kk <= 512)
  for (int c0 = 0; c0 < in_c; c0 += cpc) {
    const int nch = min(cpc, in_c - c0);
    const int per_o = nch * kk;  // staged floats per output channel in this chunk
    __syncthreads();             // every thread is done reading the previous chunk
    for (int e = static_cast<int>(threadIdx.x); e < kFwdOcb * per_o; e += kConvThreads) {
      const int oo = e / per_o, r = e - oo * per_o;
      // w[o][c0 + cc][p][q] for cc < nch is contiguous from (o * in_c + c0) * kk.
      ws[oo * kFwdChunk + r] =
          oo < nout ? w[(static_cast<int64_t>(o0 + oo) * in_c + c0) * kk + r] : 0.0f;
    }
    __syncthreads();
    if (valid) {
      for (int cc = 0; cc < nch; ++cc) {
        const float* xc = xn + static_cast<int64_t>(c0 + cc) * in_plane;
        const float* wc = ws + cc * kk;
        for (int p = 0; p < k; ++p) {
          for (int q = 0; q < k; ++q) {
            const float xv = __ldg(xc + p * in_w + q);
            const int t = p * k + q;
#pragma unroll
            for (int oo = 0; oo < kFwdOcb; ++oo)
              acc[oo] = fmaf(wc[oo * kFwdChunk + t], xv, acc[oo]);
          }
        }
      }
    }
  }
  if (valid) {
    float* yn = y + n * out_c * out_plane + static_cast<int64_t>(i) * ow + j;
#pragma unroll
    for (int oo = 0; oo < kFwdOcb; ++oo) {
      if (oo < nout) {
        const float v = acc[oo];
        yn[static_cast<int64_t>(o0 + oo) * out_plane] = relu && !(v > 0.0f) ? 0.0f : v;
      }
    }
  }
}

__global__ void __launch_bounds__(kConvThreads)
    conv_dx_kernel(const float* __restrict__ w, const float* __restrict__ y,
                   const float* __restrict__ dy, float* __restrict__ dx, int batch, int in_c,
                   int in_h, int in_w, int out_c, int k, bool relu) {
  __shared__ float ws[kSmemFloats];  // ws[cc * nout*kk + ol * kk + p * k + q]
  const int oh = in_h - k + 1, ow = in_w - k + 1, kk = k * k;
  const int64_t out_plane = static_cast<int64_t>(oh) * ow;
  const int64_t in_plane = static_cast<int64_t>(in_h) * in_w;
  const int64_t pix = static_cast<int64_t>(blockIdx.x) * kConvThreads + threadIdx.x;
  const bool valid = pix < static_cast<int64_t>(batch) * in_plane;
  int64_t n = 0;
  int yy = 0, xx = 0;
  if (valid) {
    n = pix / in_plane;
    const int64_t r = pix - n * in_plane;
    yy = static_cast<int>(r / in_w);
    xx = static_cast<int>(r % in_w);
  }
  const int c0 = static_cast<int>(blockIdx.y) * kDxCb;
  const int ncin = min(kDxCb, in_c - c0);
  // Output positions (i, j) = (yy - p, xx - q) inside [0, oh) x [0, ow) saw input (yy, xx).
  const int p_lo = max(0, yy - oh + 1), p_hi = min(k - 1, yy);
  const int q_lo = max(0, xx - ow + 1), q_hi = min(k - 1, xx);
  float acc[kDxCb];
#pragma unroll
  for (int cc = 0; cc < kDxCb; ++cc) acc[cc] = 0.0f;

  const int ocs = kSmemFloats / (kDxCb * kk);  // output channels per staged chunk (>= 1)
  for (int o0 = 0; o0 < out_c; o0 += ocs) {
    const int nout = min(ocs, out_c - o0);
    const int per_c = nout * kk;  // staged floats per input channel in this chunk
    __syncthreads();
    for (int e = static_cast<int>(threadIdx.x); e < kDxCb * per_c; e += kConvThreads) {
      const int cc = e / per_c, r = e - cc * per_c;
      const int ol = r / kk, t = r - ol * kk;
      ws[e] = cc < ncin ? w[(static_cast<int64_t>(o0 + ol) * in_c + c0 + cc) * kk + t] : 0.0f;
    }
    __syncthreads();
    if (valid) {
      for (int ol = 0; ol < nout; ++ol) {
        const int64_t gplane = (n * out_c + o0 + ol) * out_plane;
        const float* wo = ws + ol * kk;
        for (int p = p_lo; p <= p_hi; ++p) {
          const int64_t grow = gplane + static_cast<int64_t>(yy - p) * ow + xx;
          for (int q = q_lo; q <= q_hi; ++q) {
            const float g = masked_grad(dy, y, grow - q, relu);
            const int t = p * k + q;
#pragma unroll
            for (int cc = 0; cc < kDxCb; ++cc) acc[cc] = fmaf(wo[cc * per_c + t], g, acc[cc]);
          }
        }
      }
    }
  }
  if (valid) {
    float* dxn = dx + n * in_c * in_plane + static_cast<int64_t>(yy) * in_w + xx;
#pragma unroll
    for (int cc = 0; cc < kDxCb; ++cc) {
      if (cc < ncin) dxn[static_cast<int64_t>(c0 + cc) * in_plane] = acc[cc];
    }
  }
}

// How pass 1 of dw/db splits the work for one shape (a function of the shape only).
struct DwPlan {
  int taps = 0;           // in_c * k * k weights per output channel
  int taps1 = 0;          // taps + the bias
  int lanes = 1;          // threads per tap, splitting the pixels
  int taps_per_pass = 0;  // taps a block covers at once
  int threads = 0;        // block size (a multiple of 32, <= kDwThreads)
  int per_chunk = 1;      // samples per chunk
  int chunks = 0;         // sample chunks: partial sums per weight
};

DwPlan dw_plan(const Conv2dShape& s) {
  DwPlan d;
  d.taps = s.in_c * s.k * s.k;
  d.taps1 = d.taps + 1;
  if (d.taps1 >= kDwThreads) {
    d.lanes = 1;
    d.taps_per_pass = kDwThreads;
  } else {
    while (2 * d.lanes * d.taps1 <= kDwThreads) d.lanes *= 2;
    d.taps_per_pass = d.taps1;
  }
  d.threads = static_cast<int>(ceil_div64(int64_t{d.lanes} * d.taps_per_pass, 32) * 32);
  d.per_chunk = std::max<int>(1, static_cast<int>(ceil_div64(s.batch, kDwMaxChunks)));
  d.chunks = static_cast<int>(ceil_div64(s.batch, d.per_chunk));
  return d;
}

// grid (chunks, out_c), blockDim plan.threads. partial[(chunk * out_c + o) * taps1 + t].
__global__ void __launch_bounds__(kDwThreads)
    conv_dw_partial_kernel(const float* __restrict__ x, const float* __restrict__ y,
                           const float* __restrict__ dy, float* __restrict__ partial, int batch,
                           int in_c, int in_h, int in_w, int out_c, int k, bool relu, int taps1,
                           int lanes, int taps_per_pass, int per_chunk) {
  __shared__ float lane_sum[kDwThreads];
  const int oh = in_h - k + 1, ow = in_w - k + 1, kk = k * k;
  const int64_t out_plane = static_cast<int64_t>(oh) * ow;
  const int64_t in_plane = static_cast<int64_t>(in_h) * in_w;
  const int chunk = static_cast<int>(blockIdx.x), o = static_cast<int>(blockIdx.y);
  const int n0 = chunk * per_chunk, n1 = min(batch, n0 + per_chunk);
  const int tid = static_cast<int>(threadIdx.x);
  const int lane = tid % lanes, slot = tid / lanes;
  // Pixel lane l visits pixels l, l + lanes, ...: (i, j) advances by (di, dj) with a carry.
  const int di = lanes / ow, dj = lanes % ow;
  const int i_first = lane / ow, j_first = lane % ow;

  for (int t0 = 0; t0 < taps1; t0 += taps_per_pass) {
    const int t = t0 + slot;
    const bool active = slot < taps_per_pass && t < taps1;
    float acc = 0.0f;
    if (active) {
      const bool is_bias = t == taps1 - 1;
      int64_t xoff = 0;  // offset of tap (c, p, q) from a sample's x
      if (!is_bias) {
        const int c = t / kk, r = t - c * kk, p = r / k, q = r - p * k;
        xoff = c * in_plane + static_cast<int64_t>(p) * in_w + q;
      }
      for (int n = n0; n < n1; ++n) {
        const int64_t gplane = (static_cast<int64_t>(n) * out_c + o) * out_plane;
        const float* xs = x + static_cast<int64_t>(n) * in_c * in_plane + xoff;
        int i = i_first, j = j_first;
        for (int64_t pix = lane; pix < out_plane; pix += lanes) {
          const float g = masked_grad(dy, y, gplane + pix, relu);
          const float xv = is_bias ? 1.0f : __ldg(xs + static_cast<int64_t>(i) * in_w + j);
          acc = fmaf(g, xv, acc);  // g * 1 is exact: the bias tap is a plain sum
          i += di;
          j += dj;
          if (j >= ow) {
            j -= ow;
            ++i;
          }
        }
      }
    }
    lane_sum[tid] = acc;
    __syncthreads();
    if (active && lane == 0) {
      float total = 0.0f;
      for (int l = 0; l < lanes; ++l) total += lane_sum[tid + l];
      partial[(static_cast<int64_t>(chunk) * out_c + o) * taps1 + t] = total;
    }
    __syncthreads();  // lane_sum is rewritten by the next pass
  }
}

// A thread per (o, tap) adds the chunk partials in chunk order.
__global__ void conv_dw_finish_kernel(const float* __restrict__ partial, int chunks, int out_c,
                                      int taps1, float* __restrict__ dw, float* __restrict__ db) {
  const int64_t m = static_cast<int64_t>(out_c) * taps1;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < m;
       e += stride) {
    float total = 0.0f;
    for (int ch = 0; ch < chunks; ++ch) total += partial[static_cast<int64_t>(ch) * m + e];
    const int64_t o = e / taps1, t = e - o * taps1;
    if (t < taps1 - 1) {
      dw[o * (taps1 - 1) + t] = total;
    } else {
      db[o] = total;
    }
  }
}

Status check_shape(const Conv2dShape& s, const char* what) {
  if (s.batch < 0 || s.in_c < 1 || s.out_c < 1 || s.k < 1 || s.in_h < s.k || s.in_w < s.k) {
    return invalid_argument(std::string(what) +
                            ": bad Conv2dShape (need batch >= 0, channels >= 1, 1 <= k <= h, w)");
  }
  if (s.k * s.k > kConv2dMaxTaps) {
    return invalid_argument(
        std::string(what) + ": k = " + std::to_string(s.k) +
        " exceeds the largest supported kernel (k*k <= " + std::to_string(kConv2dMaxTaps) + ")");
  }
  return {};
}

}  // namespace

Status conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b,
                      bool relu, float* y, Stream st) {
  FEDSILO_CHECK(check_shape(s, "cuda::conv2d_forward"));
  const int64_t pixels = static_cast<int64_t>(s.batch) * s.out_h() * s.out_w();
  if (pixels == 0) return {};
  const int64_t gx = ceil_div64(pixels, kConvThreads), gy = ceil_div64(s.out_c, kFwdOcb);
  FEDSILO_CHECK(check_grid(gx, gy, "cuda::conv2d_forward"));
  conv_forward_kernel<<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), kConvThreads, 0,
                        cuda_stream(st)>>>(x, w, b, y, s.batch, s.in_c, s.in_h, s.in_w, s.out_c,
                                           s.k, relu);
  FEDSILO_CUDA_LAUNCHED(conv_forward_kernel);
  return {};
}

int64_t conv2d_backward_workspace_bytes(const Conv2dShape& s) {
  if (s.batch <= 0 || s.in_c < 1 || s.out_c < 1 || s.k < 1) return 0;
  const DwPlan d = dw_plan(s);
  return int64_t{d.chunks} * s.out_c * d.taps1 * static_cast<int64_t>(sizeof(float));
}

Status conv2d_backward(const Conv2dShape& s, const float* x, const float* w, const float* y,
                       bool relu, const float* dy, float* dx, float* dw, float* db, void* workspace,
                       int64_t workspace_bytes, Stream st) {
  FEDSILO_CHECK(check_shape(s, "cuda::conv2d_backward"));
  const cudaStream_t cs = cuda_stream(st);
  const int taps = s.in_c * s.k * s.k;
  if (s.batch == 0) {  // empty batch: zero gradients, as the CPU twin
    FEDSILO_CUDA_TRY(cudaMemsetAsync(dw, 0, sizeof(float) * int64_t{s.out_c} * taps, cs));
    FEDSILO_CUDA_TRY(cudaMemsetAsync(db, 0, sizeof(float) * s.out_c, cs));
    return {};
  }
  if (workspace == nullptr || workspace_bytes < conv2d_backward_workspace_bytes(s)) {
    return invalid_argument(
        "cuda::conv2d_backward: workspace smaller than conv2d_backward_workspace_bytes(shape)");
  }
  if (reinterpret_cast<uintptr_t>(workspace) % alignof(float) != 0) {
    return invalid_argument("cuda::conv2d_backward: workspace not aligned to 4 bytes");
  }
  auto* partial = static_cast<float*>(workspace);

  const DwPlan d = dw_plan(s);
  FEDSILO_CHECK(check_grid(d.chunks, s.out_c, "cuda::conv2d_backward (dw)"));
  conv_dw_partial_kernel<<<dim3(static_cast<unsigned>(d.chunks), static_cast<unsigned>(s.out_c)),
                           d.threads, 0, cs>>>(x, y, dy, partial, s.batch, s.in_c, s.in_h, s.in_w,
                                               s.out_c, s.k, relu, d.taps1, d.lanes,
                                               d.taps_per_pass, d.per_chunk);
  FEDSILO_CUDA_LAUNCHED(conv_dw_partial_kernel);
  const int64_t weights = int64_t{s.out_c} * d.taps1;
  conv_dw_finish_kernel<<<blocks_for(weights), kThreads, 0, cs>>>(partial, d.chunks, s.out_c,
                                                                  d.taps1, dw, db);
  FEDSILO_CUDA_LAUNCHED(conv_dw_finish_kernel);

  if (dx != nullptr) {
    const int64_t pixels = int64_t{s.batch} * s.in_h * s.in_w;
    const int64_t gx = ceil_div64(pixels, kConvThreads), gy = ceil_div64(s.in_c, kDxCb);
    FEDSILO_CHECK(check_grid(gx, gy, "cuda::conv2d_backward (dx)"));
    conv_dx_kernel<<<dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), kConvThreads, 0,
                     cs>>>(w, y, dy, dx, s.batch, s.in_c, s.in_h, s.in_w, s.out_c, s.k, relu);
    FEDSILO_CUDA_LAUNCHED(conv_dx_kernel);
  }
  return {};
}

}  // namespace fedsilo::kernels::cuda
