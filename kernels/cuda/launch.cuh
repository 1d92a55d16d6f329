// Launch helpers shared by the CUDA kernels (.cu files only): the raw stream of a Stream,
// grid-stride loop bounds, grid checks, and the fixed-order block sum that keeps reductions
// bitwise repeatable.
#pragma once

#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// The cudaStream_t a Stream holds (nullptr: the legacy default stream).
inline cudaStream_t cuda_stream(Stream s) {
  return static_cast<cudaStream_t>(s.handle);
}

/// First element and stride of a grid-stride loop over a 1-D launch, in 64 bits.
__device__ inline int64_t grid_start() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

/// ceil(a / b) for positive b.
inline int64_t ceil_div64(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

/// kInvalidArgument when a launch would need more blocks than CUDA allows (x: 2^31 - 1,
/// y and z: 65535); `what` names the kernel.
inline Status check_grid(int64_t x, int64_t y, const char* what) {
  if (x > INT_MAX || y > 65535) {
    return invalid_argument(std::string(what) + ": grid " + std::to_string(x) + " x " +
                            std::to_string(y) + " exceeds CUDA's limits");
  }
  return {};
}

/// Sum of `v` over a block of exactly kBlock threads (a power of two), by a fixed binary tree
/// in shared memory: the order of additions depends only on kBlock, never on timing. Every
/// thread of the block must call it; all of them get the sum. `smem` holds kBlock values.
template <int kBlock, typename T>
__device__ T block_sum_fixed(T v, T* smem) {
  static_assert(kBlock > 0 && (kBlock & (kBlock - 1)) == 0, "kBlock must be a power of two");
  const int tid = static_cast<int>(threadIdx.x);
  smem[tid] = v;
  __syncthreads();
  for (int half = kBlock / 2; half > 0; half >>= 1) {
    if (tid < half) smem[tid] += smem[tid + half];
    __syncthreads();
  }
  const T total = smem[0];
  __syncthreads();  // smem may be reused by the caller right after
  return total;
}

}  // namespace fedsilo::kernels::cuda
