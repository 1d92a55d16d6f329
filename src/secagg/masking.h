// Secure aggregation's arithmetic: the fixed-point code that turns a silo's weighted update into
// integers modulo 2^32 (clip to [-range, range], scale by 2^bits, stochastic rounding), the
// pairwise masks that cancel in the sum over the sampled silos, and the decoding of the sum.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "secagg/crypto.h"

namespace fedsilo::secagg {

/// The fixed-point code: a value x becomes stochastic_round(clip(x, -range, range) * 2^bits)
/// modulo 2^32 (two's complement).
struct FixedPoint {
  double range = 1.0;
  int bits = 16;
  /// 2^bits.
  [[nodiscard]] double scale() const;
};

/// OK when the sum of `silos` values, each in [-max(range, 1), max(range, 1)] (the weight
/// coordinate is at most 1), cannot wrap: silos x 2 x max(range, 1) x 2^bits < 2^32. Else
/// kInvalidArgument naming secure_aggregation.range and .bits with the numbers.
[[nodiscard]] Status check_fits(const FixedPoint& fp, int silos);

/// out[i] = code of v[i], rounding with u = random[i] / 2^32 (floor(x * 2^bits + u)): unbiased.
/// `random` and `out` have v.size() words. Returns how many values were clipped.
int64_t encode(std::span<const float> v, const FixedPoint& fp, std::span<const uint32_t> random,
               std::span<uint32_t> out);

/// out[i] = (int32) sum[i] / 2^bits: the decoded sum (exact where it did not wrap).
void decode(std::span<const uint32_t> sum, const FixedPoint& fp, std::span<float> out);

/// One peer of this silo in a round: its id and the seed of their pair's masks.
struct MaskPeer {
  int silo = 0;
  Secret seed;
};

/// In place: v += mask(seed of p) for every peer p with a higher id than `self`, and -= for
/// every lower one (modulo 2^32), so the masks cancel in the sum over all sampled silos. The
/// masks are AES-128-CTR keystreams of the pair seeds' first 16 bytes (word i of a mask is word
/// i of its keystream), generated `block_words` at a time (a multiple of 4) and added as they
/// come, never held whole; the buffer is wiped after use. Any length: the last block's unused
/// words are dropped.
[[nodiscard]] Status add_masks(std::span<uint32_t> v, int self, std::span<const MaskPeer> peers,
                               size_t block_words = 16384);

}  // namespace fedsilo::secagg
