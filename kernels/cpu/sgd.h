// The SGD update with momentum, weight decay and the FedProx proximal term, over a flat slice
// of parameters (PyTorch torch.optim.SGD semantics, dampening 0, no Nesterov).
#pragma once

#include <cstdint>

#include "kernels/params/sgd.h"

namespace fedsilo::kernels {

/// For i < n:
///   d = g[i] + weight_decay * w[i] + prox_mu * (w[i] - w_global[i])
///   buf[i] = first_step ? d : momentum * buf[i] + d     (buf untouched when momentum == 0)
///   w[i] -= lr * (momentum != 0 ? buf[i] : d)
/// w_global is read only when prox_mu != 0; buf only when momentum != 0.
/// Returns false when any updated w[i] is not finite (the caller reports divergence).
template <typename T>
bool sgd_update(T* w, const T* g, T* buf, const T* w_global, int64_t n, const SgdHyper<T>& h,
                bool first_step);

}  // namespace fedsilo::kernels
