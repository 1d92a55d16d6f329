// Philox4x32-10 on the device, bit-identical to core/philox.h (the CPU's generator), and the
// word addressing of its streams: word j of the stream (seed, round, silo, purpose) is lane
// j % 4 of the block with counter (j / 4 truncated to 32 bits, round, silo, purpose) and key
// seed, which is what Philox::next_u32() returns on its (j+1)-th call on a fresh stream.
// Counter-based, so every thread computes the words it needs without a shared state.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace fedsilo::kernels::cuda {

/// One Philox4x32-10 block (x, y, z, w = the CPU's lanes 0..3).
__host__ __device__ inline uint4 philox4x32_10(uint4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
#ifdef __CUDA_ARCH__
    const uint32_t hi0 = __umulhi(kM0, ctr.x), lo0 = kM0 * ctr.x;
    const uint32_t hi1 = __umulhi(kM1, ctr.z), lo1 = kM1 * ctr.z;
#else
    const uint64_t p0 = uint64_t{kM0} * ctr.x;
    const uint64_t p1 = uint64_t{kM1} * ctr.z;
    const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
#endif
    ctr = make_uint4(hi1 ^ ctr.y ^ k0, lo1, hi0 ^ ctr.w ^ k1, lo0);
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

/// A Philox stream's identity: key = seed, counter words 1..3 = (round, silo, purpose).
struct PhiloxStreamId {
  uint32_t k0 = 0, k1 = 0;
  uint32_t round = 0, silo = 0, purpose = 0;
};

__host__ __device__ inline PhiloxStreamId make_philox_stream(uint64_t seed, uint32_t round,
                                                             uint32_t silo, uint32_t purpose) {
  PhiloxStreamId s;
  s.k0 = static_cast<uint32_t>(seed);
  s.k1 = static_cast<uint32_t>(seed >> 32);
  s.round = round;
  s.silo = silo;
  s.purpose = purpose;
  return s;
}

/// Block `index` of the stream (the CPU truncates its 64-bit block index to the 32-bit counter).
__host__ __device__ inline uint4 philox_block(const PhiloxStreamId& s, uint64_t index) {
  return philox4x32_10(make_uint4(static_cast<uint32_t>(index), s.round, s.silo, s.purpose), s.k0,
                       s.k1);
}

__host__ __device__ inline uint32_t philox_lane(const uint4& b, uint32_t lane) {
  return lane == 0 ? b.x : lane == 1 ? b.y : lane == 2 ? b.z : b.w;
}

/// Word `j` of the stream: the (j+1)-th next_u32() of a fresh core/philox.h Philox.
__host__ __device__ inline uint32_t philox_word(const PhiloxStreamId& s, uint64_t j) {
  return philox_lane(philox_block(s, j >> 2), static_cast<uint32_t>(j & 3));
}

/// The q-th next_u64() of a fresh stream when every earlier draw was a u64 too (words 2q, 2q+1:
/// one half of a block; the first word is the high half, as Philox::next_u64).
__host__ __device__ inline uint64_t philox_u64(const PhiloxStreamId& s, uint64_t q) {
  const uint4 b = philox_block(s, q >> 1);
  const bool upper = (q & 1) != 0;
  const uint32_t hi = upper ? b.z : b.x, lo = upper ? b.w : b.y;
  return (uint64_t{hi} << 32) | lo;
}

}  // namespace fedsilo::kernels::cuda
