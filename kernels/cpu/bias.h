// Bias add (optionally fused with ReLU) over the rows of a [rows x cols] matrix, and the bias
// gradient (column sums). Used by the dense layer.
#pragma once

namespace fedsilo::kernels {

/// y[i][j] = act(y[i][j] + b[j]); act = ReLU when `relu`, identity otherwise.
template <typename T>
void bias_act_rows(T* y, const T* b, int rows, int cols, bool relu);

/// db[j] = sum_i dy[i][j] (overwrites db); rows summed in increasing order, so the result is
/// the same run to run.
template <typename T>
void bias_grad_rows(const T* dy, int rows, int cols, T* db);

}  // namespace fedsilo::kernels
