// What the value quantizers of the CPU (kernels/cpu/quantize.h) and the device
// (kernels/cuda/quantize.h) agree on to give the same bits: the stochastic-rounding stream and
// the int8 flush threshold. Plain C++17: nvcc compiles it too.
#pragma once

#include <cstdint>

namespace fedsilo::kernels {

/// Where the random numbers of int8 stochastic rounding come from: for the value at position j
/// of the encoded array, lane j % 4 of the Philox block with counter (j / 4, round,
/// silo | kRoundingStreamBit, kCompression) and key seed. Position-addressed, so any blocking or
/// threading gives the same bytes.
struct RoundingStream {
  uint64_t seed = 0;
  uint32_t round = 0;
  uint32_t silo = 0;  // must be < 2^30: the top bits tell sub-streams apart
};
inline constexpr uint32_t kRoundingStreamBit = 0x80000000u;

/// int8 blocks whose largest magnitude is below this encode as scale 0 (all zeros): their
/// values are far below anything an update carries, and it keeps the scale a normal float.
inline constexpr float kInt8FlushBelow = 0x1p-100f;

}  // namespace fedsilo::kernels
