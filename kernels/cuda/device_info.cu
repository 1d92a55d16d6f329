// CUDA device discovery through the runtime API (cudart only, never the driver library): a
// binary built with CUDA still starts, and runs on the CPU, where no driver or GPU exists.
#include <cuda_runtime.h>

#include "kernels/cuda/device_info.h"

namespace fedsilo::kernels::cuda {

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace fedsilo::kernels::cuda
