// Softmax cross-entropy fused with its gradient, and the argmax of each row: the CUDA twins of
// kernels/cpu/softmax_xent.h. The loss stays on the device (no host read inside a training
// step, so the step can be captured in a CUDA graph); the caller reads it when it needs it.
#pragma once

#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// total = sum over rows of -log softmax(z_i)[label_i], summed in double by a fixed tree (the
/// same bits run to run). Writes *loss = total, or *loss += total when `accumulate` (an epoch's
/// loss summed on the device step after step); loss may be nullptr. When dlogits != nullptr
/// writes dlogits[i][c] = (softmax(z_i)[c] - [c == label_i]) * scale; dlogits may alias
/// logits. A label outside [0, classes) makes that row's loss and gradient NaN (the CPU twin
/// requires valid labels; here it shows up as a non-finite loss instead of a wild read).
/// One block: cheap for training batches (rows <= a few thousand, classes ~10).
[[nodiscard]] Status softmax_xent(const float* logits, const int32_t* labels, int rows, int classes,
                                  float scale, float* dlogits, double* loss, bool accumulate,
                                  Stream s);

/// softmax_xent with scale 1 over the rows r < *count (a device int: DP-SGD's Poisson batch,
/// padded to `rows`): each row's own loss gradient, the sum of their losses in *loss; rows
/// r >= *count get dlogits 0 and add nothing.
[[nodiscard]] Status masked_softmax_xent(const float* logits, const int32_t* labels,
                                         const int32_t* count, int rows, int classes,
                                         float* dlogits, double* loss, Stream s);
/// out[i] = index of the largest logit of row i (the lowest index on ties); -1 for a row
/// holding NaN.
[[nodiscard]] Status argmax_rows(const float* logits, int rows, int classes, int32_t* out,
                                 Stream s);

}  // namespace fedsilo::kernels::cuda
