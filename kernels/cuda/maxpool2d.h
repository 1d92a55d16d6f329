// 2x2 max pooling with stride 2 over NCHW device arrays, with the saved argmax, and its
// backward: the CUDA twins of kernels/cpu/maxpool2d.h (same Pool2dShape, same argmax codes).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/params/maxpool2d.h"

namespace fedsilo::kernels::cuda {

/// y[n][c][i][j] = max of the 2x2 window at (2i, 2j); argmax[...] = its position 0..3
/// (row-major in the window; the first maximum wins on ties, as PyTorch and the CPU twin).
/// Odd trailing rows/columns are dropped.
[[nodiscard]] Status maxpool2x2_forward(const Pool2dShape& s, const float* x, float* y,
                                        uint8_t* argmax, Stream st);

/// dx = dy routed to each window's argmax, zero elsewhere (dx fully overwritten, dropped odd
/// rows/columns included).
[[nodiscard]] Status maxpool2x2_backward(const Pool2dShape& s, const float* dy,
                                         const uint8_t* argmax, float* dx, Stream st);

}  // namespace fedsilo::kernels::cuda
