// Fixed-order sums of per-thread partial buffers (weight gradients of a batch split across
// threads): the order is set by thread index, never by timing, so results repeat bitwise; and
// the L2 norm of a flat buffer.
#pragma once

#include <cstdint>

namespace fedsilo::kernels {

/// dst[i] += src[i] for i < n.
template <typename T>
void add_into(T* dst, const T* src, int64_t n);

/// sqrt(sum_i x[i]^2), the squares summed in double in index order (the reference of the CUDA
/// l2_norm, kernels/cuda/reduce.h).
template <typename T>
double l2_norm(const T* x, int64_t n);

}  // namespace fedsilo::kernels
