// 2x2 max pooling with stride 2 over NCHW (PyTorch's MaxPool2d(2): odd trailing rows/columns
// are dropped), and its backward pass through the saved argmax.
#pragma once

#include <cstdint>

#include "kernels/params/maxpool2d.h"

namespace fedsilo::kernels {

/// y[n][c][i][j] = max of the 2x2 window at (2i, 2j); argmax[...] = its position 0..3
/// (row-major in the window; the first maximum wins on ties, as PyTorch).
template <typename T>
void maxpool2x2_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax);

/// dx = dy routed to each window's argmax, zero elsewhere (dx fully overwritten).
template <typename T>
void maxpool2x2_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx);

}  // namespace fedsilo::kernels
