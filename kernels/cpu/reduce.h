// Fixed-order sums of per-thread partial buffers (weight gradients of a batch split across
// threads): the order is set by thread index, never by timing, so results repeat bitwise.
#pragma once

#include <cstdint>

namespace fedsilo::kernels {

/// dst[i] += src[i] for i < n.
template <typename T>
void add_into(T* dst, const T* src, int64_t n);

}  // namespace fedsilo::kernels
