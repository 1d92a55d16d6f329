// Fixed-order sums of per-thread partial buffers (weight gradients of a batch split across
// threads): the order is set by thread index, never by timing, so results repeat bitwise; and
// the L2 norm of a flat buffer; a copy that bypasses the caches for large outputs.
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

/// dst[0, n) = src[0, n) with non-temporal (streaming) stores where the CPU has them, for
/// outputs far larger than the caches that are written once: no read-for-ownership of dst's
/// lines (half the memory traffic of a plain copy's writes) and no eviction of hot data. The
/// 64-byte-aligned part of dst streams, its ends are plain stores. Call stream_fence() after
/// the last one, before other threads or processes read dst.
void copy_streaming(const float* src, float* dst, int64_t n);
void stream_fence();

}  // namespace fedsilo::kernels
