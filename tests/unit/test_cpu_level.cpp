// The CPU level the kernels use: detection, the FEDSILO_CPU override, and (in the per-level runs
// registered in tests/CMakeLists.txt) that the requested level is the one in use.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/cpu/cpu_level.h"
#include "kernels/cpu/gemm.h"

namespace fedsilo::kernels {
namespace {

TEST(CpuLevel, OverrideCanOnlyLowerTheLevel) {
  EXPECT_EQ(choose_cpu_level(nullptr, CpuLevel::kAvx2).level, CpuLevel::kAvx2);
  EXPECT_EQ(choose_cpu_level("", CpuLevel::kAvx512).level, CpuLevel::kAvx512);
  const auto lower = choose_cpu_level("generic", CpuLevel::kAvx512);
  EXPECT_EQ(lower.level, CpuLevel::kGeneric);
  EXPECT_TRUE(lower.error.empty());
  EXPECT_EQ(choose_cpu_level("avx2", CpuLevel::kAvx512).level, CpuLevel::kAvx2);
  const auto higher = choose_cpu_level("avx512", CpuLevel::kAvx2);
  EXPECT_EQ(higher.level, CpuLevel::kAvx2);
  EXPECT_EQ(higher.error, "FEDSILO_CPU=avx512: this CPU supports at most avx2 (a level can only be lowered)");
  const auto unknown = choose_cpu_level("sse9", CpuLevel::kAvx2);
  EXPECT_EQ(unknown.level, CpuLevel::kAvx2);
  EXPECT_NE(unknown.error.find("FEDSILO_CPU=sse9: unknown CPU level"), std::string::npos) << unknown.error;
}

TEST(CpuLevel, TheLevelInUseIsTheRequestedOne) {
  const char* request = std::getenv("FEDSILO_CPU");
  EXPECT_EQ(cpu_level_error(), "");
  if (request == nullptr || *request == '\0') {
    EXPECT_EQ(cpu_level(), detected_cpu_level());
  } else {
    EXPECT_EQ(std::string(cpu_level_name(cpu_level())), request);
  }
  EXPECT_LE(static_cast<int>(cpu_level()), static_cast<int>(detected_cpu_level()));
}

TEST(BlasCore, FamiliesMapToTheirVectorLevel) {
  EXPECT_EQ(blas_core_level("SkylakeX"), CpuLevel::kAvx512);
  EXPECT_EQ(blas_core_level("SapphireRapids"), CpuLevel::kAvx512);
  EXPECT_EQ(blas_core_level("Haswell"), CpuLevel::kAvx2);
  EXPECT_EQ(blas_core_level("Zen"), CpuLevel::kAvx2);
  EXPECT_EQ(blas_core_level("Prescott"), CpuLevel::kGeneric);
  EXPECT_EQ(blas_core_level("Sandybridge"), CpuLevel::kGeneric);
  EXPECT_EQ(blas_core_level("NeoverseV1"), std::nullopt);  // not in the table: left alone
}

TEST(BlasCore, AsksForTheFamilyOfTheKernelLevelOnlyWhenOpenBlasPickedAnother) {
  // OpenBLAS 0.3.21 on Sapphire Rapids: Prescott, while fedsilo's kernels run AVX-512.
  EXPECT_STREQ(blas_core_to_request(CpuLevel::kAvx512, "Prescott", nullptr), "SkylakeX");
  EXPECT_STREQ(blas_core_to_request(CpuLevel::kAvx2, "Prescott", ""), "Haswell");
  // FEDSILO_CPU=avx2 on an AVX-512 CPU: the GEMMs follow it down, as on an AVX2 node.
  EXPECT_STREQ(blas_core_to_request(CpuLevel::kAvx2, "SkylakeX", nullptr), "Haswell");
  EXPECT_EQ(blas_core_to_request(CpuLevel::kAvx512, "Cooperlake", nullptr), nullptr);
  EXPECT_EQ(blas_core_to_request(CpuLevel::kAvx2, "Zen", nullptr), nullptr);
  EXPECT_EQ(blas_core_to_request(CpuLevel::kGeneric, "Prescott", nullptr), nullptr);
  EXPECT_EQ(blas_core_to_request(CpuLevel::kAvx512, "NeoverseV1", nullptr), nullptr);
  EXPECT_EQ(blas_core_to_request(CpuLevel::kAvx512, "Prescott", "Prescott"), nullptr);  // user's choice
}

}  // namespace
}  // namespace fedsilo::kernels
