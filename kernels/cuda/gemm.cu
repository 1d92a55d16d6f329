// cuBLAS SGEMM behind fedsilo's row-major convention. cuBLAS is column-major; a row-major
// [r x c] matrix with row stride ld is the column-major [c x r] matrix X^T with the same ld. So
// row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: one cublasSgemm with the
// operands swapped, m and n swapped, and the same transpose flags.
#include <cublas_v2.h>

#include <algorithm>
#include <string>
#include <utility>

#include "kernels/cuda/gemm.h"
#include "kernels/cuda/launch.cuh"

namespace fedsilo::kernels::cuda {
namespace {

Status cublas_status(cublasStatus_t st, const char* call) {
  if (st == CUBLAS_STATUS_SUCCESS) return {};
  return {StatusCode::kInternal, std::string(call) + " failed: " + cublasGetStatusName(st) + " (" +
                                     cublasGetStatusString(st) + ")"};
}

cublasHandle_t as_cublas(void* h) {
  return static_cast<cublasHandle_t>(h);
}

}  // namespace
}  // namespace fedsilo::kernels::cuda

/// Returns from the enclosing function with a Status naming the cuBLAS `call` when it fails.
#define FEDSILO_CUBLAS_TRY(call)                                                 \
  do {                                                                           \
    const cublasStatus_t fedsilo_cublas_st_ = (call);                            \
    if (fedsilo_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                           \
      return ::fedsilo::kernels::cuda::cublas_status(fedsilo_cublas_st_, #call); \
    }                                                                            \
  } while (0)

namespace fedsilo::kernels::cuda {

Result<BlasHandle> BlasHandle::create(Stream s, size_t workspace_bytes) {
  BlasHandle h;
  cublasHandle_t handle = nullptr;
  FEDSILO_CUBLAS_TRY(cublasCreate(&handle));
  h.handle_ = handle;  // owned from here: h's destructor releases it on any error below
  h.stream_ = s;
  // cublasSetStream resets the workspace to cuBLAS's own pool, so the stream goes first.
  FEDSILO_CUBLAS_TRY(cublasSetStream(handle, cuda_stream(s)));
  if (workspace_bytes > 0) {
    FEDSILO_ASSIGN_OR_RETURN(h.workspace_, DeviceArray<std::byte>::create(workspace_bytes));
  }
  FEDSILO_CUBLAS_TRY(cublasSetWorkspace(handle, h.workspace_.data(), h.workspace_.size()));
  FEDSILO_CUBLAS_TRY(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
  FEDSILO_CUBLAS_TRY(cublasSetAtomicsMode(handle, CUBLAS_ATOMICS_NOT_ALLOWED));
  FEDSILO_CUBLAS_TRY(cublasSetPointerMode(handle, CUBLAS_POINTER_MODE_HOST));
  return Result<BlasHandle>(std::move(h));  // explicit: nvcc (C++17) will not move implicitly
}

BlasHandle::BlasHandle(BlasHandle&& o) noexcept
    : handle_(std::exchange(o.handle_, nullptr)),
      stream_(std::exchange(o.stream_, Stream{})),
      workspace_(std::move(o.workspace_)) {}

BlasHandle& BlasHandle::operator=(BlasHandle&& o) noexcept {
  if (this != &o) {
    if (handle_ != nullptr) cublasDestroy(as_cublas(handle_));
    handle_ = std::exchange(o.handle_, nullptr);
    stream_ = std::exchange(o.stream_, Stream{});
    workspace_ = std::move(o.workspace_);
  }
  return *this;
}

BlasHandle::~BlasHandle() {
  // The handle goes before its workspace (members are destroyed after this body).
  if (handle_ != nullptr) cublasDestroy(as_cublas(handle_));
}

Status gemm(const BlasHandle& blas, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
            const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (blas.raw() == nullptr) return invalid_argument("cuda::gemm: empty BlasHandle");
  if (m < 0 || n < 0 || k < 0) {
    return invalid_argument("cuda::gemm: negative size m=" + std::to_string(m) +
                            " n=" + std::to_string(n) + " k=" + std::to_string(k));
  }
  // Row strides must cover a stored row: A's rows hold k (or m when transposed) elements.
  const int a_cols = trans_a ? m : k, b_cols = trans_b ? k : n;
  if (lda < std::max(1, a_cols) || ldb < std::max(1, b_cols) || ldc < std::max(1, n)) {
    return invalid_argument("cuda::gemm: row stride too small (lda=" + std::to_string(lda) +
                            " ldb=" + std::to_string(ldb) + " ldc=" + std::to_string(ldc) + ")");
  }
  if (m == 0 || n == 0) return {};
  const cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  // Column-major C^T [n x m] = op(B)^T [n x k] * op(A)^T [k x m].
  FEDSILO_CUBLAS_TRY(cublasSgemm(as_cublas(blas.raw()), op_b, op_a, n, m, k, &alpha, b, ldb, a, lda,
                                 &beta, c, ldc));
  return {};
}

}  // namespace fedsilo::kernels::cuda
