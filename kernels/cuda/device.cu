// Device selection, memory, copies and streams through the CUDA runtime (see device.h).
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {
namespace {

cudaStream_t raw(Stream s) { return static_cast<cudaStream_t>(s.handle); }

}  // namespace

Status set_device(int device) {
  FEDSILO_CUDA_TRY(cudaSetDevice(device));
  return {};
}

Result<int> pointer_device(const void* p) {
  cudaPointerAttributes a{};
  const cudaError_t err = cudaPointerGetAttributes(&a, p);
  if (err != cudaSuccess) {
    cudaGetLastError();  // not sticky: clear it, or the next launch check would report it
    return cuda_status(err, "cudaPointerGetAttributes");
  }
  if (a.type != cudaMemoryTypeDevice && a.type != cudaMemoryTypeManaged) {
    return invalid_argument("the address is not CUDA device memory");
  }
  return a.device;
}

Result<Stream> create_stream() {
  cudaStream_t s = nullptr;
  FEDSILO_CUDA_TRY(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  return Stream{s};
}

void destroy_stream(Stream s) {
  if (s.handle != nullptr) cudaStreamDestroy(raw(s));
}

Status synchronize(Stream s) {
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(raw(s)));
  return {};
}

Result<void*> device_malloc(size_t bytes) {
  void* p = nullptr;
  FEDSILO_CUDA_TRY(cudaMalloc(&p, bytes));
  return p;
}

void device_free(void* p) {
  if (p != nullptr) cudaFree(p);
}

Status copy_to_device(void* dst, const void* src, size_t bytes, Stream s) {
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, raw(s)));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(raw(s)));
  return {};
}

Status copy_to_host(void* dst, const void* src, size_t bytes, Stream s) {
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, raw(s)));
  FEDSILO_CUDA_TRY(cudaStreamSynchronize(raw(s)));
  return {};
}

Status copy_on_device(void* dst, const void* src, size_t bytes, Stream s) {
  FEDSILO_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, raw(s)));
  return {};
}

Status fill_bytes(void* dst, int value, size_t bytes, Stream s) {
  FEDSILO_CUDA_TRY(cudaMemsetAsync(dst, value, bytes, raw(s)));
  return {};
}

}  // namespace fedsilo::kernels::cuda
