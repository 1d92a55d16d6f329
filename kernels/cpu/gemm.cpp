// Row-major GEMM on OpenBLAS (cblas_sgemm / cblas_dgemm) and OpenBLAS thread control.
#include "kernels/cpu/gemm.h"

#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

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

std::optional<CpuLevel> blas_core_level(const std::string& core) {
  std::string name = core;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  // OpenBLAS 0.3.21's x86-64 DYNAMIC_ARCH families (driver/others/dynamic.c, corename[]).
  static const char* const kAvx512[] = {"skylakex", "cooperlake", "sapphirerapids"};
  static const char* const kAvx2[] = {"haswell", "zen", "excavator"};
  static const char* const kOlder[] = {"unknown",   "katmai",     "coppermine", "northwood",
                                       "prescott",  "banias",     "atom",       "core2",
                                       "penryn",    "dunnington", "nehalem",    "athlon",
                                       "opteron",   "opteron(sse3)", "barcelona", "nano",
                                       "sandybridge", "bobcat",   "bulldozer",  "piledriver",
                                       "steamroller"};
  const auto in = [&name](const auto& list) {
    return std::find(std::begin(list), std::end(list), name) != std::end(list);
  };
  if (in(kAvx512)) return CpuLevel::kAvx512;
  if (in(kAvx2)) return CpuLevel::kAvx2;
  if (in(kOlder)) return CpuLevel::kGeneric;
  return std::nullopt;
}

const char* blas_core_to_request(CpuLevel level, const char* loaded, const char* coretype_env) {
  if (coretype_env != nullptr && *coretype_env != '\0') return nullptr;
  if (loaded == nullptr || level == CpuLevel::kGeneric) return nullptr;
  const std::optional<CpuLevel> have = blas_core_level(loaded);
  if (!have || *have == level) return nullptr;
  return level == CpuLevel::kAvx512 ? "SkylakeX" : "Haswell";
}

void match_blas_core_to_cpu_level(char** argv) {
  const char* want = blas_core_to_request(cpu_level(), blas_core_name(), std::getenv("OPENBLAS_CORETYPE"));
  if (want == nullptr) return;
  setenv("FEDSILO_BLAS_DETECTED", blas_core_name(), 1);
  setenv("OPENBLAS_CORETYPE", want, 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr,
               "fedsilo: warning: could not re-run with OPENBLAS_CORETYPE=%s (%s); the GEMMs run on "
               "OpenBLAS's %s kernels\n",
               want, std::strerror(errno), blas_core_name());
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv("FEDSILO_BLAS_DETECTED");
}

std::string blas_core_description() {
  std::string out = blas_core_name();
  const char* detected = std::getenv("FEDSILO_BLAS_DETECTED");
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  if (detected != nullptr && *detected != '\0' && coretype != nullptr && out != detected) {
    out += std::string(" (OpenBLAS detected ") + detected + ")";
  }
  return out;
}

}  // namespace fedsilo::kernels
