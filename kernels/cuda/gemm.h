// Row-major SGEMM on cuBLAS, with the conventions of kernels/cpu/gemm.h, on a cuBLAS handle
// bound to one stream. Plain C++ (no CUDA types): host code and tests include it.
#pragma once

#include <cstddef>

#include "core/status.h"
#include "kernels/cuda/device.h"

namespace fedsilo::kernels::cuda {

/// A cuBLAS handle bound to one stream, configured for repeatable fp32 GEMMs:
///  - fp32 math (CUBLAS_DEFAULT_MATH: no TF32 tensor cores, so results match the CPU to ~1e-7
///    relative per dot product), atomics not allowed;
///  - its own workspace, set with cublasSetWorkspace after the stream: cuBLAS then picks the
///    same algorithms run to run (bitwise-equal results on one GPU) and allocates nothing while
///    a CUDA graph is being captured.
/// Move-only; one per stream (a rank's training stream). Create it outside graph capture.
class BlasHandle {
 public:
  /// cuBLAS's recommended user workspace on Hopper (H100/H200).
  static constexpr size_t kDefaultWorkspaceBytes = size_t{32} << 20;

  [[nodiscard]] static Result<BlasHandle> create(Stream s,
                                                 size_t workspace_bytes = kDefaultWorkspaceBytes);

  BlasHandle() = default;
  BlasHandle(BlasHandle&& o) noexcept;
  BlasHandle& operator=(BlasHandle&& o) noexcept;
  BlasHandle(const BlasHandle&) = delete;
  BlasHandle& operator=(const BlasHandle&) = delete;
  ~BlasHandle();

  /// The stream every call on this handle runs on.
  [[nodiscard]] Stream stream() const { return stream_; }
  /// The cublasHandle_t (nullptr for an empty handle).
  [[nodiscard]] void* raw() const { return handle_; }

 private:
  void* handle_ = nullptr;
  Stream stream_;
  DeviceArray<std::byte> workspace_;
};

/// C[m x n] = alpha * op(A) * op(B) + beta * C on blas.stream(), all row-major device
/// matrices; op(X) = X or X^T. A is [m x k] (or [k x m] when trans_a), B is [k x n] (or [n x k]
/// when trans_b); lda, ldb, ldc are row strides (elements). As in BLAS, C is not read when
/// beta == 0. Asynchronous: returns once queued. Errors name the failing cuBLAS call.
[[nodiscard]] Status gemm(const BlasHandle& blas, bool trans_a, bool trans_b, int m, int n, int k,
                          float alpha, const float* a, int lda, const float* b, int ldb, float beta,
                          float* c, int ldc);

}  // namespace fedsilo::kernels::cuda
