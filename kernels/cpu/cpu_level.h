// Which vector instruction set the CPU kernels use: detected once from what the CPU reports,
// optionally lowered by FEDSILO_CPU (generic | avx2 | avx512), so that every path runs (and is
// tested) on whatever machine runs the suite.
#pragma once

#include <string>

// The x86 vector paths exist only where the compiler targets x86 (elsewhere, e.g. aarch64, every
// kernel runs its portable loops, which the compiler vectorises for that machine).
#if defined(__x86_64__) || defined(__i386__)
#define FEDSILO_X86 1
#endif

namespace fedsilo::kernels {

enum class CpuLevel {
  kGeneric = 0,  // portable loops, vectorised by the compiler for the build's baseline
  kAvx2 = 1,     // AVX2 + FMA (x86-64-v3: Intel Haswell and later, AMD Zen and later)
  kAvx512 = 2,   // AVX-512 F, BW, VL (Intel Skylake-SP and later, AMD Zen 4)
};

struct CpuLevelChoice {
  CpuLevel level;
  std::string error;  // empty, or why `request` could not be followed (then level = detected)
};
/// The level for a FEDSILO_CPU value (`request`, nullptr or "" for none) on a CPU that supports
/// up to `detected`: a level can only be lowered.
CpuLevelChoice choose_cpu_level(const char* request, CpuLevel detected);

/// The highest level this CPU supports (cpuid, through __builtin_cpu_supports).
CpuLevel detected_cpu_level();
/// The level the kernels use: detected_cpu_level(), or FEDSILO_CPU's where that is set, valid and
/// not above it (else the detected level; cpu_level_error() says why). Read once per process.
CpuLevel cpu_level();
/// Empty when FEDSILO_CPU is unset or usable; else the message naming it (the commands exit 2).
std::string cpu_level_error();
/// "generic", "avx2", "avx512".
const char* cpu_level_name(CpuLevel level);

}  // namespace fedsilo::kernels
