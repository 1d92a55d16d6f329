// Device-side helpers shared by the CUDA kernels (.cu files only): CUDA errors as Status, launch
// geometry.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/status.h"

namespace fedsilo::kernels::cuda {

/// kOk, or kInternal naming the failing call and CUDA's message. Clears the error so later
/// calls do not see it again (sticky errors stay, as CUDA defines).
inline Status cuda_status(cudaError_t err, const char* call) {
  if (err == cudaSuccess) return {};
  cudaGetLastError();
  return {StatusCode::kInternal, std::string(call) + " failed: " + cudaGetErrorName(err) + " (" +
                                     cudaGetErrorString(err) + ")"};
}

}  // namespace fedsilo::kernels::cuda

/// Returns from the enclosing function with a Status naming `call` when it fails.
#define FEDSILO_CUDA_TRY(call)                                                        \
  do {                                                                                \
    const cudaError_t fedsilo_cuda_err_ = (call);                                     \
    if (fedsilo_cuda_err_ != cudaSuccess) {                                           \
      return ::fedsilo::kernels::cuda::cuda_status(fedsilo_cuda_err_, #call);         \
    }                                                                                 \
  } while (0)

/// After a kernel launch: returns the launch error (bad configuration, no device) naming the
/// kernel.
#define FEDSILO_CUDA_LAUNCHED(kernel)                                                      \
  do {                                                                                     \
    const cudaError_t fedsilo_cuda_err_ = cudaGetLastError();                              \
    if (fedsilo_cuda_err_ != cudaSuccess) {                                                \
      return ::fedsilo::kernels::cuda::cuda_status(fedsilo_cuda_err_, "launch of " #kernel); \
    }                                                                                      \
  } while (0)

namespace fedsilo::kernels::cuda {

inline constexpr int kThreads = 256;

/// Blocks for n elements at kThreads per block, capped for grid-stride loops.
inline unsigned blocks_for(long long n, int threads = kThreads, unsigned cap = 65535u * 8u) {
  const long long b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace fedsilo::kernels::cuda
