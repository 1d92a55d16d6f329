// Fully connected layer y = act(x W^T + b) with W in PyTorch's [out, in] layout, and its
// backward pass. The GEMMs run on OpenBLAS; bias and ReLU on the kernels beside this file.
#pragma once

#include "kernels/params/dense.h"

namespace fedsilo::kernels {

/// y[batch x out] = act(x[batch x in] * w[out x in]^T + b[out]).
template <typename T>
void dense_forward(const DenseShape& s, const T* x, const T* w, const T* b, bool relu, T* y);

/// Backward of dense_forward. `y` is the forward output (read only when `relu`). `dy` holds
/// d(loss)/d(y) and is overwritten with the pre-activation gradient when `relu`.
/// Writes (overwrites) dw[out x in] and db[out]; dx[batch x in] only when dx != nullptr
/// (the first layer of a model skips it: 2*batch*in*out FLOPs saved).
template <typename T>
void dense_backward(const DenseShape& s, const T* x, const T* w, const T* y, bool relu, T* dy,
                    T* dx, T* dw, T* db);

}  // namespace fedsilo::kernels
