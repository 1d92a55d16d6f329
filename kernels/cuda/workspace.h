// Device scratch memory for the CUDA kernels that need temporaries (top-k, random-k, error
// feedback, ...): one grow-only buffer that a caller keeps across calls, so a training loop
// allocates once, and a Carver that cuts typed pieces out of it. Plain C++ (device.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// A grow-only device buffer reused across kernel calls. Not thread-safe; one per stream user.
class Workspace {
 public:
  /// At least `bytes` bytes of device memory (256-byte aligned, cudaMalloc's alignment), valid
  /// until the next reserve() that grows it. Growing frees the old buffer first (cudaFree waits
  /// for the device to finish using it), so pointers from earlier calls become invalid.
  [[nodiscard]] Result<void*> reserve(size_t bytes) {
    if (bytes > buf_.size()) {
      buf_ = DeviceArray<unsigned char>();
      FEDSILO_ASSIGN_OR_RETURN(buf_, DeviceArray<unsigned char>::create(bytes));
    }
    return static_cast<void*>(buf_.data());
  }
  [[nodiscard]] size_t capacity() const { return buf_.size(); }

 private:
  DeviceArray<unsigned char> buf_;
};

/// Cuts 256-byte aligned, typed pieces out of a scratch region in order. With a null base it
/// only measures: run the same carving code once on Carver(nullptr) to size the region, then on
/// the reserved pointer, and every piece lands at the same offset.
class Carver {
 public:
  static constexpr size_t kAlign = 256;
  explicit Carver(void* base) : base_(static_cast<unsigned char*>(base)) {}

  template <class T>
  T* take(size_t count) {
    offset_ = (offset_ + kAlign - 1) / kAlign * kAlign;
    T* p = base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + offset_);
    offset_ += count * sizeof(T);
    return p;
  }
  /// Bytes used so far, rounded up to the alignment (what a nested region needs).
  [[nodiscard]] size_t bytes() const { return (offset_ + kAlign - 1) / kAlign * kAlign; }

 private:
  unsigned char* base_;
  size_t offset_ = 0;
};

}  // namespace fedsilo::kernels::cuda
