// Host-side view of the CUDA backend: how many devices this process can use.
#pragma once

namespace fedsilo::kernels::cuda {

/// Number of CUDA devices visible; 0 when there is no driver or no GPU.
int device_count();

}  // namespace fedsilo::kernels::cuda
