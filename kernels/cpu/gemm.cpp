// Row-major GEMM on OpenBLAS (cblas_sgemm / cblas_dgemm) and OpenBLAS thread control.
#include "kernels/cpu/gemm.h"

#include <cblas.h>

extern "C" char* openblas_get_corename(void);

namespace fedsilo::kernels {

namespace {
CBLAS_TRANSPOSE op(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}
}  // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  cblas_sgemm(CblasRowMajor, op(trans_a), op(trans_b), m, n, k, alpha, a, lda, b, ldb, beta, c,
              ldc);
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
                  int lda, const double* b, int ldb, double beta, double* c, int ldc) {
  if (m <= 0 || n <= 0) return;
  cblas_dgemm(CblasRowMajor, op(trans_a), op(trans_b), m, n, k, alpha, a, lda, b, ldb, beta, c,
              ldc);
}

BlasThreadScope::BlasThreadScope(int threads)
    : saved_(openblas_get_num_threads()), wanted_(threads < 1 ? 1 : threads) {
  if (saved_ != wanted_) openblas_set_num_threads(wanted_);
}

BlasThreadScope::~BlasThreadScope() {
  if (saved_ != wanted_) openblas_set_num_threads(saved_);
}

const char* blas_core_name() {
  return openblas_get_corename();
}

}  // namespace fedsilo::kernels
