// Start-up check that this CPU has the instruction set the build's baseline assumes
// (FEDSILO_ARCH, x86-64-v3 by default: AVX2, FMA, BMI2, ...). Compiled for plain x86-64 (see
// CMakeLists.txt) and run before any other static initialiser of the library, so a node that
// lacks the baseline gets one clear message instead of SIGILL somewhere later.
#include <cstdio>
#include <cstdlib>

#if defined(FEDSILO_BASELINE_V3) && (defined(__x86_64__) || defined(__i386__))
namespace {

__attribute__((constructor(101))) void fedsilo_check_cpu_baseline() {
  __builtin_cpu_init();
  // __builtin_cpu_supports takes string literals only.
  const char* missing = !__builtin_cpu_supports("popcnt")   ? "popcnt"
                        : !__builtin_cpu_supports("sse4.2") ? "sse4.2"
                        : !__builtin_cpu_supports("avx")    ? "avx"
                        : !__builtin_cpu_supports("avx2")   ? "avx2"
                        : !__builtin_cpu_supports("fma")    ? "fma"
                        : !__builtin_cpu_supports("bmi2")   ? "bmi2"
                                                            : nullptr;
  if (missing != nullptr) {
    std::fprintf(stderr,
                 "fedsilo: this CPU lacks %s, which this build's baseline (x86-64-v3) needs: "
                 "rebuild with -DFEDSILO_ARCH=x86-64-v2 (the faster kernels are still chosen at "
                 "run time)\n",
                 missing);
    std::_Exit(1);
  }
}

}  // namespace
#endif
