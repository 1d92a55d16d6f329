// Philox4x32-10 counter-based generator (Salmon et al., SC'11; the one cuRAND offers) and the
// stream convention of docs/architecture.md: every random number comes from (run seed, round,
// silo, purpose).
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

namespace fedsilo {

/// What a random stream is used for; part of the counter so streams never overlap.
enum class RngPurpose : uint32_t {
  kInit = 1,         // model initialisation
  kShuffle = 2,      // local epoch order
  kSampling = 3,     // which silos take part in a round
  kPartition = 4,    // data partitioning
  kNoise = 5,        // feature noise at partition time
  kTestSplit = 6,    // per-silo test subsets
  kDropout = 7,      // reserved: no layer draws dropout masks
  kCompression = 8,  // random-k, sampled top-k's sample, int8 stochastic rounding
  kPrivacy = 9,      // reserved for DP noise (fedsilo has no privacy module)
  kUser = 10,        // the per-round seed the Python binding gives the user's training loop
};

/// One Philox4x32-10 block: 4 x 32-bit outputs for a 128-bit counter and 64-bit key.
inline std::array<uint32_t, 4> philox4x32_10(std::array<uint32_t, 4> ctr,
                                             std::array<uint32_t, 2> key) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t{kM0} * ctr[0];
    const uint64_t p1 = uint64_t{kM1} * ctr[2];
    const auto hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const auto hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = {hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0};
    key[0] += kW0;
    key[1] += kW1;
  }
  return ctr;
}

/// A sequential stream over Philox blocks. Counter = (block index, round, silo, purpose),
/// key = run seed. Cheap to copy; two streams with different (round, silo, purpose) never
/// share a block.
class Philox {
 public:
  Philox(uint64_t seed, uint32_t round, uint32_t silo, RngPurpose purpose)
      : key_{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)},
        round_(round), silo_(silo), purpose_(static_cast<uint32_t>(purpose)) {}

  uint32_t next_u32() {
    if (lane_ == 4) {
      block_ = philox4x32_10({static_cast<uint32_t>(index_), round_, silo_, purpose_}, key_);
      ++index_;
      lane_ = 0;
    }
    return block_[lane_++];
  }
  uint64_t next_u64() {
    const uint64_t hi = next_u32();
    return (hi << 32) | next_u32();
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  /// Uniform in (0, 1): safe for log().
  double uniform_open() { return (static_cast<double>(next_u64() >> 11) + 0.5) * 0x1.0p-53; }
  /// Uniform integer in [0, n) without modulo bias (Lemire's method with rejection).
  uint64_t below(uint64_t n) {
    if (n <= 1) return 0;
    const uint64_t limit = (~uint64_t{0} - n + 1) % n;  // 2^64 mod n
    for (;;) {
      const uint64_t x = next_u64();
      const unsigned __int128 m = static_cast<unsigned __int128>(x) * n;
      if (static_cast<uint64_t>(m) >= limit) return static_cast<uint64_t>(m >> 64);
    }
  }
  /// Standard normal (Box-Muller, one value per two uniforms; deterministic, no cached state).
  double normal() {
    const double u1 = uniform_open(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Gamma(shape, 1) by Marsaglia-Tsang, with the shape < 1 boost.
  double gamma(double shape) {
    if (shape < 1.0) {
      const double g = gamma(shape + 1.0);
      return g * std::pow(uniform_open(), 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
    for (;;) {
      double x, v;
      do {
        x = normal();
        v = 1.0 + c * x;
      } while (v <= 0.0);
      v = v * v * v;
      const double u = uniform_open();
      if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }

 private:
  std::array<uint32_t, 2> key_;
  uint32_t round_, silo_, purpose_;
  uint64_t index_ = 0;
  std::array<uint32_t, 4> block_{};
  int lane_ = 4;
};

}  // namespace fedsilo
