// The fused SGD update (momentum, weight decay, FedProx proximal term) over a flat slice of
// device parameters: the CUDA twin of kernels/cpu/sgd.h (same SgdHyper, same formulas).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/params/sgd.h"

namespace fedsilo::kernels::cuda {

/// For i < n, as the CPU twin:
///   d = g[i] + weight_decay * w[i] + prox_mu * (w[i] - w_global[i])
///   buf[i] = first_step ? d : momentum * buf[i] + d     (buf untouched when momentum == 0)
///   w[i] -= lr * (momentum != 0 ? buf[i] : d)
/// w_global is read only when prox_mu != 0 (and not nullptr); buf only when momentum != 0.
/// Where the CPU twin returns false for a non-finite updated w[i], this sets *nonfinite = 1
/// (a device flag; nullptr skips the check). It never clears the flag: zero it once (say per
/// round) and read it after the steps, so a step needs no host read and can be captured in a
/// CUDA graph. The hyperparameters are kernel arguments: a captured graph keeps the lr it was
/// captured with. With `correction` (SCAFFOLD's c - c_s, n values), each updated w[i] then
/// becomes w[i] - lr * correction[i], outside the momentum, as the CPU's optim::Sgd.
[[nodiscard]] Status sgd_update(float* w, const float* g, float* buf, const float* w_global,
                                int64_t n, const SgdHyper<float>& h, bool first_step,
                                uint32_t* nonfinite, Stream s, const float* correction = nullptr);

}  // namespace fedsilo::kernels::cuda
