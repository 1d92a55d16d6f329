// Host-side view of the CUDA backend, in plain C++ (no CUDA types, so src/ and tests compile
// with the host compiler): device selection, device memory, copies, streams. Only declared when
// the build has CUDA (FEDSILO_HAVE_CUDA); every call returns a Status naming the failing CUDA
// call, never aborts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "core/status.h"

namespace fedsilo::kernels::cuda {

/// A CUDA stream; handle is a cudaStream_t, nullptr the legacy default stream. Kernels of one
/// stream run in order: the backend uses one stream per rank, so results do not depend on timing.
struct Stream {
  void* handle = nullptr;
};

/// Makes `device` current for this thread (ranks pick theirs round-robin by local rank).
[[nodiscard]] Status set_device(int device);
[[nodiscard]] Result<Stream> create_stream();
void destroy_stream(Stream s);
[[nodiscard]] Status synchronize(Stream s);

/// The device whose memory `p` points into (device or managed memory); an error for host memory
/// or a pointer CUDA does not know (the PyTorch binding's check of the addresses it is given).
[[nodiscard]] Result<int> pointer_device(const void* p);

[[nodiscard]] Result<void*> device_malloc(size_t bytes);
void device_free(void* p);
[[nodiscard]] Status copy_to_device(void* dst, const void* src, size_t bytes, Stream s = {});
[[nodiscard]] Status copy_to_host(void* dst, const void* src, size_t bytes, Stream s = {});
[[nodiscard]] Status copy_on_device(void* dst, const void* src, size_t bytes, Stream s = {});
/// Sets `bytes` bytes to `value` (a byte, as memset): tests poison outputs with 0xFF (NaN).
[[nodiscard]] Status fill_bytes(void* dst, int value, size_t bytes, Stream s = {});

/// An owning device array of T (move-only). Allocation failures come back as Status through
/// create(); an empty array holds nullptr.
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  [[nodiscard]] static Result<DeviceArray> create(size_t n) {
    // Explicit moves: C++17 (the .cu files) does not move a local into Result's constructor.
    DeviceArray a;
    if (n == 0) return Result<DeviceArray>(std::move(a));
    FEDSILO_ASSIGN_OR_RETURN(void* p, device_malloc(n * sizeof(T)));
    a.ptr_ = static_cast<T*>(p);
    a.n_ = n;
    return Result<DeviceArray>(std::move(a));
  }
#if __cplusplus >= 202002L  // std::span: host code (C++20); the .cu files compile as C++17
  /// A device copy of `host`.
  [[nodiscard]] static Result<DeviceArray> from_host(std::span<const T> host, Stream s = {}) {
    FEDSILO_ASSIGN_OR_RETURN(DeviceArray a, create(host.size()));
    if (!host.empty()) FEDSILO_CHECK(copy_to_device(a.ptr_, host.data(), host.size_bytes(), s));
    return a;
  }
  [[nodiscard]] Status to_host(std::span<T> host, Stream s = {}) const {
    if (host.size() != n_) return invalid_argument("DeviceArray::to_host: size mismatch");
    return n_ == 0 ? Status{} : copy_to_host(host.data(), ptr_, host.size_bytes(), s);
  }
#endif
  DeviceArray(DeviceArray&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), n_(std::exchange(o.n_, 0)) {}
  DeviceArray& operator=(DeviceArray&& o) noexcept {
    if (this != &o) {
      device_free(ptr_);
      ptr_ = std::exchange(o.ptr_, nullptr);
      n_ = std::exchange(o.n_, 0);
    }
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { device_free(ptr_); }

  [[nodiscard]] T* data() { return ptr_; }
  [[nodiscard]] const T* data() const { return ptr_; }
  [[nodiscard]] size_t size() const { return n_; }
#if __cplusplus >= 202002L
  [[nodiscard]] std::span<T> span() { return {ptr_, n_}; }  // device memory: do not dereference on the host
  [[nodiscard]] std::span<const T> span() const { return {ptr_, n_}; }
#endif

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

}  // namespace fedsilo::kernels::cuda
