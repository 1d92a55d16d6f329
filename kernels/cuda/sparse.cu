// Sparse-vector kernels (see sparse.h): one thread per entry, grid-stride loops. Every kernel
// here only moves data: nnz entries of 8 bytes plus one scattered 4-byte access each.
#include <cmath>
#include <string>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/sparse.h"

namespace fedsilo::kernels::cuda {
namespace {



__global__ void gather_kernel(const float* __restrict__ x, const uint32_t* __restrict__ idx,
                              int64_t nnz, float* __restrict__ values) {
  for (int64_t j = grid_start(); j < nnz; j += grid_stride()) values[j] = x[idx[j]];
}

__global__ void iota_kernel(uint32_t* __restrict__ out, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = static_cast<uint32_t>(i);
}

__global__ void zero_kernel(float* __restrict__ out, int64_t n) {
  for (int64_t i = grid_start(); i < n; i += grid_stride()) out[i] = 0.0f;
}

__global__ void assign_kernel(const uint32_t* __restrict__ idx, const float* __restrict__ values,
                              int64_t nnz, float* __restrict__ out, int64_t length) {
  for (int64_t j = grid_start(); j < nnz; j += grid_stride()) {
    const uint32_t i = idx[j];
    if (i < length) out[i] = values[j];
  }
}

__global__ void scatter_add_kernel(const uint32_t* __restrict__ idx,
                                   const float* __restrict__ values, int64_t nnz,
                                   float* __restrict__ out, int64_t length) {
  for (int64_t j = grid_start(); j < nnz; j += grid_stride()) {
    const uint32_t i = idx[j];
    if (i < length) out[i] = __fadd_rn(out[i], values[j]);
  }
}

// first[0]: the first entry with a bad index, first[1]: the first non-finite value (nnz: none).
// atomicMin keeps the lowest entry whatever the order threads run in.
__global__ void check_sparse_kernel(const uint32_t* __restrict__ idx,
                                    const float* __restrict__ values, int64_t nnz, int64_t length,
                                    unsigned long long* first) {
  for (int64_t j = grid_start(); j < nnz; j += grid_stride()) {
    const uint32_t i = idx[j];
    if (i >= length || (j > 0 && i <= idx[j - 1])) {
      atomicMin(&first[0], static_cast<unsigned long long>(j));
    }
    if (!isfinite(values[j])) atomicMin(&first[1], static_cast<unsigned long long>(j));
  }
}

}  // namespace

Status gather(const float* x, const uint32_t* indices, int64_t nnz, float* values, Stream s) {
  if (nnz <= 0) return {};
  gather_kernel<<<blocks_for(nnz), kThreads, 0, cuda_stream(s)>>>(x, indices, nnz, values);
  FEDSILO_CUDA_LAUNCHED(gather_kernel);
  return {};
}

Status fill_iota(uint32_t* out, int64_t n, Stream s) {
  if (n <= 0) return {};
  if (n > int64_t{UINT32_MAX} + 1) return invalid_argument("fill_iota: n >= 2^32 + 1");
  iota_kernel<<<blocks_for(n), kThreads, 0, cuda_stream(s)>>>(out, n);
  FEDSILO_CUDA_LAUNCHED(iota_kernel);
  return {};
}

Status densify(const uint32_t* indices, const float* values, int64_t nnz, float* out,
               int64_t length, Stream s) {
  if (length > 0) {
    zero_kernel<<<blocks_for(length), kThreads, 0, cuda_stream(s)>>>(out, length);
    FEDSILO_CUDA_LAUNCHED(zero_kernel);
  }
  if (nnz > 0 && length > 0) {
    assign_kernel<<<blocks_for(nnz), kThreads, 0, cuda_stream(s)>>>(indices, values, nnz, out, length);
    FEDSILO_CUDA_LAUNCHED(assign_kernel);
  }
  return {};
}

Status scatter_add(const uint32_t* indices, const float* values, int64_t nnz, float* out,
                   int64_t length, Stream s) {
  if (nnz <= 0 || length <= 0) return {};
  scatter_add_kernel<<<blocks_for(nnz), kThreads, 0, cuda_stream(s)>>>(indices, values, nnz, out, length);
  FEDSILO_CUDA_LAUNCHED(scatter_add_kernel);
  return {};
}

Status check_sparse(const uint32_t* indices, const float* values, int64_t nnz, int64_t length,
                    Workspace& ws, Stream s) {
  if (nnz <= 0) return {};
  FEDSILO_ASSIGN_OR_RETURN(void* scratch, ws.reserve(2 * sizeof(unsigned long long)));
  auto* first = static_cast<unsigned long long*>(scratch);
  const unsigned long long none[2] = {static_cast<unsigned long long>(nnz),
                                      static_cast<unsigned long long>(nnz)};
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(first, none, sizeof(none), cudaMemcpyHostToDevice, cuda_stream(s)));
  check_sparse_kernel<<<blocks_for(nnz), kThreads, 0, cuda_stream(s)>>>(indices, values, nnz, length,
                                                                first);
  FEDSILO_CUDA_LAUNCHED(check_sparse_kernel);
  unsigned long long found[2];
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(found, first, sizeof(found), cudaMemcpyDeviceToHost, cuda_stream(s)));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(cuda_stream(s)));
  if (found[0] < static_cast<unsigned long long>(nnz)) {
    uint32_t index = 0;
    FEDSILO_CUDA_TRY(cudaMemcpy(&index, indices + found[0], sizeof(index), cudaMemcpyDeviceToHost));
    return invalid_argument(
        "contribution index #" + std::to_string(found[0]) + " (" + std::to_string(index) +
        ") is not strictly ascending and below the length " + std::to_string(length));
  }
  if (found[1] < static_cast<unsigned long long>(nnz)) {
    uint32_t index = 0;
    FEDSILO_CUDA_TRY(cudaMemcpy(&index, indices + found[1], sizeof(index), cudaMemcpyDeviceToHost));
    return Status(StatusCode::kDiverged,
                  "contribution value at index " + std::to_string(index) + " is not finite");
  }
  return {};
}

}  // namespace fedsilo::kernels::cuda
