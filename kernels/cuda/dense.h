// Fully connected layer y = act(x W^T + b) with W in PyTorch's [out, in] layout, and its
// backward pass, on device arrays: the CUDA twins of kernels/cpu/dense.h (the same DenseShape,
// kernels/params/dense.h).
// The GEMMs run on cuBLAS (gemm.h); bias, ReLU and the bias gradient on the kernels of bias.h.
#pragma once

#include "core/status.h"
#include "kernels/cuda/gemm.h"
#include "kernels/params/dense.h"

namespace fedsilo::kernels::cuda {

/// y[batch x out] = act(x[batch x in] * w[out x in]^T + b[out]) on blas.stream():
/// one GEMM and one bias(+ReLU) kernel.
[[nodiscard]] Status dense_forward(const BlasHandle& blas, const DenseShape& s, const float* x,
                                   const float* w, const float* b, bool relu, float* y);

/// Backward of dense_forward on blas.stream(). `y` is the forward output (read only when
/// `relu`). `dy` holds d(loss)/d(y) and is overwritten with the pre-activation gradient when
/// `relu`. Overwrites dw[out x in] and db[out]; dx[batch x in] only when dx != nullptr.
/// Launches: the (ReLU-masked) bias gradient in one kernel, then one GEMM each for dw and dx.
[[nodiscard]] Status dense_backward(const BlasHandle& blas, const DenseShape& s, const float* x,
                                    const float* w, const float* y, bool relu, float* dy, float* dx,
                                    float* dw, float* db);

}  // namespace fedsilo::kernels::cuda
