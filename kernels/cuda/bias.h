// Bias add (optionally fused with ReLU) over the rows of a [rows x cols] device matrix, and the
// bias gradient (column sums): the CUDA twins of kernels/cpu/bias.h, plus the ReLU backward
// fused into the bias gradient (one pass instead of two in the dense layer's backward).
#pragma once

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// y[i][j] = act(y[i][j] + b[j]); act = ReLU when `relu`, identity otherwise.
[[nodiscard]] Status bias_act_rows(float* y, const float* b, int rows, int cols, bool relu,
                                   Stream s);

/// db[j] = sum_i dy[i][j] (overwrites db). Fixed-order sums (a set of row lanes per column,
/// each in increasing row order, then the lanes in order): the same bits run to run; rows == 0
/// gives zeros.
[[nodiscard]] Status bias_grad_rows(const float* dy, int rows, int cols, float* db, Stream s);

/// relu_backward then bias_grad_rows in one pass: dy[i][j] = y[i][j] > 0 ? dy[i][j] : 0 (in
/// place; y is the ReLU output), then db = column sums of the masked dy, as bias_grad_rows.
[[nodiscard]] Status relu_bias_grad_rows(const float* y, float* dy, int rows, int cols, float* db,
                                         Stream s);

}  // namespace fedsilo::kernels::cuda
