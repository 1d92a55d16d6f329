// SGD update: one streaming pass over 3-5 arrays (w, g, buf, w_global in; w, buf out). For the
// 199,210-parameter MLP that is ~4 MB a step, ~1.5 us at H100/H200 bandwidth: launch-bound, so
// it is one kernel whatever the options. The finiteness flag costs nothing in the common case
// (a store only where a weight went non-finite; every such store writes the same 1, so racing
// stores are harmless and the result is deterministic).
#include <cfloat>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sgd.h"

namespace fedsilo::kernels::cuda {
namespace {

constexpr int kSgdThreads = 256;

enum class Momentum { kNone, kFirst, kRunning };

template <Momentum kMode, bool kProx>
__global__ void sgd_kernel(float* __restrict__ w, const float* __restrict__ g,
                           float* __restrict__ buf, const float* __restrict__ w_global,
                           const float* __restrict__ corr, int64_t n, float lr, float mom,
                           float wd, float mu, uint32_t* nonfinite) {
  bool bad = false;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const float wi = w[i];
    float d = g[i] + wd * wi;
    if (kProx) d += mu * (wi - w_global[i]);
    float step = d;
    if (kMode == Momentum::kFirst) {
      buf[i] = d;
    } else if (kMode == Momentum::kRunning) {
      step = mom * buf[i] + d;
      buf[i] = step;
    }
    float updated = wi - lr * step;
    // SCAFFOLD: then w -= lr * c, a second rounding as the CPU's (outside the momentum).
    if (corr != nullptr) updated = __fsub_rn(updated, __fmul_rn(lr, corr[i]));
    w[i] = updated;
    bad |= !(fabsf(updated) <= FLT_MAX);  // false exactly for inf and NaN
  }
  if (bad && nonfinite != nullptr) *nonfinite = 1u;
}

template <Momentum kMode>
void launch(bool prox, unsigned blocks, cudaStream_t st, float* w, const float* g, float* buf,
            const float* w_global, const float* corr, int64_t n, const SgdHyper<float>& h,
            uint32_t* nonfinite) {
  if (prox) {
    sgd_kernel<kMode, true><<<blocks, kSgdThreads, 0, st>>>(
        w, g, buf, w_global, corr, n, h.lr, h.momentum, h.weight_decay, h.prox_mu, nonfinite);
  } else {
    sgd_kernel<kMode, false><<<blocks, kSgdThreads, 0, st>>>(
        w, g, buf, w_global, corr, n, h.lr, h.momentum, h.weight_decay, h.prox_mu, nonfinite);
  }
}

}  // namespace

Status sgd_update(float* w, const float* g, float* buf, const float* w_global, int64_t n,
                  const SgdHyper<float>& h, bool first_step, uint32_t* nonfinite, Stream s,
                  const float* correction) {
  if (n < 0) return invalid_argument("cuda::sgd_update: negative n");
  if (h.momentum != 0.0f && buf == nullptr) {
    return invalid_argument("cuda::sgd_update: momentum needs a buffer");
  }
  if (n == 0) return {};
  const bool prox = h.prox_mu != 0.0f && w_global != nullptr;
  const unsigned blocks = blocks_for(n, kSgdThreads);
  const cudaStream_t st = cuda_stream(s);
  if (h.momentum == 0.0f) {
    launch<Momentum::kNone>(prox, blocks, st, w, g, buf, w_global, correction, n, h, nonfinite);
  } else if (first_step) {
    launch<Momentum::kFirst>(prox, blocks, st, w, g, buf, w_global, correction, n, h, nonfinite);
  } else {
    launch<Momentum::kRunning>(prox, blocks, st, w, g, buf, w_global, correction, n, h, nonfinite);
  }
  FEDSILO_CUDA_LAUNCHED(sgd_kernel);
  return {};
}

}  // namespace fedsilo::kernels::cuda
