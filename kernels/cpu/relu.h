// ReLU forward and backward over flat arrays.
#pragma once

#include <cstdint>

namespace fedsilo::kernels {

/// y = max(x, 0); y may alias x.
template <typename T>
void relu_forward(const T* x, T* y, int64_t n);

/// dx = dy where y > 0, else 0 (y is the ReLU output); dx may alias dy.
/// At x == 0 the gradient is 0, as in PyTorch.
template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n);

}  // namespace fedsilo::kernels
