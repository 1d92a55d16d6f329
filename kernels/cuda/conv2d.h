// 2-D convolution over NCHW device arrays, stride 1, no padding, with the bias and an optional
// ReLU fused into the forward pass, and its backward pass (dx, dw, db): the CUDA twins of
// kernels/cpu/conv2d.h (the same Conv2dShape, kernels/params/conv2d.h; the same weight layout
// [out_c, in_c, k, k]).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/params/conv2d.h"

namespace fedsilo::kernels::cuda {

/// Largest k*k the kernels take: a block stages at least one channel's k x k weights for
/// eight channels in 16 KiB of shared memory, so k <= 22.
inline constexpr int kConv2dMaxTaps = 512;

/// y[n][o][i][j] = act(b[o] + sum_{c,p,q} w[o][c][p][q] * x[n][c][i+p][j+q]); act = ReLU when
/// `relu` (as the CPU twin: a value that is not > 0 becomes 0). One launch, no scratch.
[[nodiscard]] Status conv2d_forward(const Conv2dShape& s, const float* x, const float* w,
                                    const float* b, bool relu, float* y, Stream st);

/// Bytes of device scratch conv2d_backward needs for `s`: the per-chunk partial sums of dw and
/// db (at most 128 sample chunks x out_c x (in_c*k*k + 1) floats; 1.2 MiB for conv2 of the
/// NIID CNN). Allocate it once, before any graph capture.
int64_t conv2d_backward_workspace_bytes(const Conv2dShape& s);

/// Backward of conv2d_forward. `y` is the forward output (read only when `relu`: the gradient
/// passes where y > 0). Overwrites dw [out_c, in_c, k, k] and db [out_c]; writes dx (the shape
/// of x) only when dx != nullptr. The sums over the batch run in a fixed order (sample chunks
/// whose partial sums are added in chunk order; no atomics): the same bits run to run.
/// Two launches for dw/db, one for dx. `workspace` holds at least
/// conv2d_backward_workspace_bytes(s) bytes, 4-byte aligned.
[[nodiscard]] Status conv2d_backward(const Conv2dShape& s, const float* x, const float* w,
                                     const float* y, bool relu, const float* dy, float* dx,
                                     float* dw, float* db, void* workspace, int64_t workspace_bytes,
                                     Stream st);

}  // namespace fedsilo::kernels::cuda
