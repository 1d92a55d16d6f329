// ReLU forward and backward over flat device arrays: the CUDA twins of kernels/cpu/relu.h.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// y = max(x, 0) for i < n; y may alias x. Asynchronous on `s`.
[[nodiscard]] Status relu_forward(const float* x, float* y, int64_t n, Stream s);

/// dx = dy where y > 0, else 0 (y is the ReLU output); dx may alias dy.
[[nodiscard]] Status relu_backward(const float* y, const float* dy, float* dx, int64_t n, Stream s);

}  // namespace fedsilo::kernels::cuda
