// Device properties through the CUDA runtime (cudart only; see device_info.cu).
#include <cuda_runtime.h>

#include "kernels/cuda/device_props.h"

namespace fedsilo::kernels::cuda {

std::string device_name(int device) {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device) != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it for later calls
    return "unknown";
  }
  return p.name;
}

}  // namespace fedsilo::kernels::cuda
