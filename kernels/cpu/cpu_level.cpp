// CPU level detection and the FEDSILO_CPU override (see cpu_level.h).
#include "kernels/cpu/cpu_level.h"

#include <cstdlib>
#include <cstring>

namespace fedsilo::kernels {
namespace {

const CpuLevelChoice& choice() {
  static const CpuLevelChoice c = choose_cpu_level(std::getenv("FEDSILO_CPU"), detected_cpu_level());
  return c;
}

}  // namespace

CpuLevelChoice choose_cpu_level(const char* request, CpuLevel detected) {
  if (request == nullptr || *request == '\0') return {detected, {}};
  for (CpuLevel l : {CpuLevel::kGeneric, CpuLevel::kAvx2, CpuLevel::kAvx512}) {
    if (std::strcmp(request, cpu_level_name(l)) != 0) continue;
    if (static_cast<int>(l) > static_cast<int>(detected)) {
      return {detected, std::string("FEDSILO_CPU=") + request + ": this CPU supports at most " +
                            cpu_level_name(detected) + " (a level can only be lowered)"};
    }
    return {l, {}};
  }
  return {detected, std::string("FEDSILO_CPU=") + request +
                        ": unknown CPU level (expected generic, avx2 or avx512)"};
}

CpuLevel detected_cpu_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
    return CpuLevel::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuLevel::kAvx2;
#endif
  return CpuLevel::kGeneric;
}

CpuLevel cpu_level() {
  return choice().level;
}

std::string cpu_level_error() {
  return choice().error;
}

const char* cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::kAvx512: return "avx512";
    case CpuLevel::kAvx2: return "avx2";
    case CpuLevel::kGeneric: break;
  }
  return "generic";
}

}  // namespace fedsilo::kernels
