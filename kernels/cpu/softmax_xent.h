// Softmax cross-entropy over logits, fused with its gradient: one pass per row gives the loss
// and d(loss)/d(logits) = (softmax - onehot) * scale.
#pragma once

#include <cstdint>

namespace fedsilo::kernels {

/// Returns sum over rows of -log softmax(z_i)[label_i] (accumulated in double, rows in order).
/// When dlogits != nullptr writes dlogits[i][c] = (softmax(z_i)[c] - [c == label_i]) * scale
/// (scale = 1/global batch gives the gradient of the batch-mean loss). dlogits may alias logits.
/// Labels must lie in [0, classes).
template <typename T>
double softmax_xent(const T* logits, const int32_t* labels, int rows, int classes, T scale,
                    T* dlogits);

/// Index of the largest logit of each row (the lowest index on ties); -1 for a row holding NaN.
template <typename T>
void argmax_rows(const T* logits, int rows, int classes, int32_t* out);

}  // namespace fedsilo::kernels
