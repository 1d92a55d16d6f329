// DP-SGD's per-example clipping on the device: the CUDA twins of the CPU's backward_norms /
// clipped_grads (src/model/layers.cpp). A Poisson batch of variable size runs in a step of fixed
// shape (a CUDA graph): the batch is padded to `rows` with zero inputs (index -1 in gather_rows)
// whose loss gradient is zeroed (masked_softmax_xent, softmax_xent.h; end_dp_step, train_step.h),
// so their activation gradients, norms and clipped contributions are exactly zero. Every sum
// runs in a fixed order (no atomics): the same bits run to run on one GPU. Plain C++ (no CUDA
// types).
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"
#include "kernels/params/conv2d.h"

namespace fedsilo::kernels::cuda {

/// xb[r] = x[idx[r]], yb[r] = y[idx[r]] for r < rows (idx holds the padded Poisson batch). An
/// index outside [0, n) gathers zeros with label -1: the padding rows past the batch, which the
/// masked loss skips; inside the batch it would be a NaN loss.
[[nodiscard]] Status gather_rows(const float* x, const int32_t* y, int64_t n, int64_t sample_size,
                                 const int32_t* idx, int rows, float* xb, int32_t* yb, Stream s);

/// Each sample's conv2d weight and bias gradient, materialised: for sample i < s.batch,
/// keep[i] = [dw (out_c x in_c x k x k), db (out_c)] from its input x[i] and its pre-activation
/// output gradient dy[i] (already masked by the ReLU).
[[nodiscard]] Status conv2d_per_sample_grads(const Conv2dShape& s, const float* x, const float* dy,
                                             float* keep, Stream st);

/// norms2[i] += sum_j v[i][j]^2 for i < rows (v is rows x cols), in double.
[[nodiscard]] Status add_row_sq_norms(const float* v, int64_t cols, int rows, double* norms2,
                                      Stream s);

/// The ghost norm of a dense layer: norms2[i] += ||d_i||^2 (||x_i||^2 + 1) for i < rows, with d
/// [rows x out] the pre-activation output gradient and x [rows x in] the input; in double.
[[nodiscard]] Status add_ghost_norms(const float* d, int out, const float* x, int in, int rows,
                                     double* norms2, Stream s);

/// scale[i] = float(min(1, clip / (sqrt(norms2[i]) + 1e-6))) for i < rows: the CPU's and
/// Opacus's clip factor.
[[nodiscard]] Status clip_factors(const double* norms2, int rows, double clip, float* scale,
                                  Stream s);

/// m[i][j] *= scale[i] for i < rows, j < cols.
[[nodiscard]] Status scale_rows(float* m, int64_t cols, int rows, const float* scale, Stream s);

/// out_j = sum over i < rows, ascending, of scale[i] m[i][j] (scale nullptr: 1), j < cols; out_j
/// goes to first[j] for j < split, else to second[j - split].
[[nodiscard]] Status weighted_row_sums(const float* m, int64_t cols, int rows, const float* scale,
                                       float* first, int64_t split, float* second, Stream s);

/// g[j] = g[j] * scale + noise[j], j < n: the noised sum over the expected batch size.
[[nodiscard]] Status add_scaled_noise(float* g, const float* noise, int64_t n, float scale,
                                      Stream s);

}  // namespace fedsilo::kernels::cuda
