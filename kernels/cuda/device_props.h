// Host-side view of the CUDA backend: what a device is called, for banners and metrics
// ("cuda:0 (NVIDIA H200)"). Plain C++; device_count() is in device_info.h.
#pragma once

#include <string>

namespace fedsilo::kernels::cuda {

/// The device's product name ("NVIDIA H200"); "unknown" when it cannot be read.
std::string device_name(int device);

}  // namespace fedsilo::kernels::cuda
