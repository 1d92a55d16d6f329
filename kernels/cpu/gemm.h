// Row-major GEMM on OpenBLAS for float and double, and the scope that keeps OpenBLAS on one
// thread while fedsilo splits a batch across its own threads (kernels/cpu/thread_team.h).
#pragma once

#include <optional>
#include <string>

#include "kernels/cpu/cpu_level.h"

namespace fedsilo::kernels {

/// C[m x n] = alpha * op(A) * op(B) + beta * C, all row-major; op(X) = X or X^T.
/// A is [m x k] (or [k x m] when trans_a), B is [k x n] (or [n x k] when trans_b).
template <typename T>
void gemm(bool trans_a, bool trans_b, int m, int n, int k, T alpha, const T* a, int lda, const T* b,
          int ldb, T beta, T* c, int ldc);

template <>
void gemm<float>(bool, bool, int, int, int, float, const float*, int, const float*, int, float,
                 float*, int);
template <>
void gemm<double>(bool, bool, int, int, int, double, const double*, int, const double*, int, double,
                  double*, int);

/// Holds OpenBLAS at `threads` threads (default one) for its lifetime and restores the
/// previous count after. fedsilo parallelises over the batch (one OpenBLAS call per thread and
/// chunk); OpenBLAS's own pool on top would oversubscribe the cores. Measured here (2 cores,
/// OpenBLAS 0.3.21 Prescott kernels, 64x200x784 sgemm): 28.5 GFLOP/s on one thread, 34.6 on two
/// (small GEMMs pay the fork/join per call), while two concurrent single-threaded calls on half
/// the batch each run at ~26 GFLOP/s apiece. The OpenBLAS thread count is process-wide state:
/// do not hold scopes with different counts in concurrent threads.
class BlasThreadScope {
 public:
  explicit BlasThreadScope(int threads = 1);
  ~BlasThreadScope();
  BlasThreadScope(const BlasThreadScope&) = delete;
  BlasThreadScope& operator=(const BlasThreadScope&) = delete;

 private:
  int saved_;
  int wanted_;
};

/// The kernel family OpenBLAS picked for this CPU at load time ("SkylakeX", "Prescott", ...).
/// OpenBLAS 0.3.21 does not know newer Xeons and falls back to "Prescott" (SSE3);
/// OPENBLAS_CORETYPE=SkylakeX in the environment selects the AVX-512 kernels.
const char* blas_core_name();

/// The vector level of an OpenBLAS kernel family ("Haswell", "Zen": avx2; "SkylakeX",
/// "Cooperlake", "SapphireRapids": avx512; the SSE and AVX families: generic); nullopt for a
/// name this table does not know (then fedsilo leaves OpenBLAS's choice alone).
std::optional<CpuLevel> blas_core_level(const std::string& core);

/// The OpenBLAS family to ask for so that the GEMMs run at the same level as fedsilo's own
/// kernels: "SkylakeX" at avx512, "Haswell" at avx2, when OpenBLAS `loaded` a family of a known,
/// different level; nullptr when it already matches, when `level` is generic, when the family is
/// unknown, or when `coretype_env` (OPENBLAS_CORETYPE) is set: the user's choice wins.
const char* blas_core_to_request(CpuLevel level, const char* loaded, const char* coretype_env);

/// First thing in main (before MPI_Init and threads): when blas_core_to_request(cpu_level(), ...)
/// names a family, sets OPENBLAS_CORETYPE to it (and FEDSILO_BLAS_DETECTED to what OpenBLAS had
/// picked) and re-runs this program with the same arguments (execv of /proc/self/exe), since
/// OpenBLAS reads OPENBLAS_CORETYPE only when it loads. Returns when nothing is to be done or
/// the exec failed (then with a warning on stderr, on OpenBLAS's own choice). Measured on this
/// project's Sapphire Rapids VM (OpenBLAS 0.3.21 picks Prescott): the MLP trains at ~50,000
/// samples/s on Prescott, ~116,000 on SkylakeX (benchmarks/RESULTS.md).
void match_blas_core_to_cpu_level(char** argv);

/// What the start-up line and metrics say: the family in use, and "(OpenBLAS detected X)" when
/// fedsilo asked for it in place of X.
std::string blas_core_description();

}  // namespace fedsilo::kernels
