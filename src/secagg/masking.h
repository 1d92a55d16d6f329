// Secure aggregation's arithmetic: the fixed-point code that turns a silo's weighted update into
// integers modulo 2^32 (clip to [-range, range], scale by 2^bits, stochastic rounding), the
// pairwise masks that cancel in the sum over the sampled silos, and the decoding of the sum.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <utility>
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

/// One silo's coding and masking for one round, in one pass over the vector, block by block
/// (a block of the vector stays in cache while it is coded and every mask is added):
/// - the stochastic-rounding words of the code come from an AES-128-CTR keystream under the
///   round's public rounding key (rounding_key: deterministic in the run seed, round and silo,
///   so the decoded sum is reproducible; it hides nothing and needs not to: only sums leave);
/// - word i of the masked vector gets + mask_p[i] for every peer p with a higher id than this
///   silo, - mask_p[i] for every lower one (modulo 2^32), mask_p being the AES-128-CTR
///   keystream of the pair's seed (its first 16 bytes), so the masks cancel in the sum over the
///   sampled silos. Word i of any stream is word i of the masked vector: pieces can be coded
///   in any order and at any offset.
class RoundMasker {
 public:
  /// kInvalidArgument when a peer is this silo itself or block_words is not a positive
  /// multiple of 4.
  static Result<RoundMasker> create(std::span<const uint8_t> rounding_key, int self,
                                    std::span<const MaskPeer> peers, size_t block_words = 16384);
  RoundMasker(RoundMasker&&) noexcept = default;
  RoundMasker& operator=(RoundMasker&&) noexcept = default;
  ~RoundMasker();  // wipes the keystream buffers

  /// out[i] = encode(v[i]) (rounding word first + i) + the masks' words first + i, for
  /// v.size() == out.size() words at position `first` of the masked vector. Calls
  /// `between_blocks` (if set) after each block: the pipeline's chance to move its sums.
  /// Returns how many values were clipped.
  Result<int64_t> code_and_mask(std::span<const float> v, const FixedPoint& fp, uint64_t first,
                                std::span<uint32_t> out,
                                const std::function<void()>& between_blocks = {});

 private:
  explicit RoundMasker(Keystream rounding) : rounding_(std::move(rounding)) {}
  // Words [first, first + count) of `ks` into `buf` (from buf[first % 4]); returns them.
  static Result<const uint32_t*> words(Keystream& ks, uint64_t first, size_t count,
                                       std::vector<uint32_t>& buf);

  int self_ = 0;
  size_t block_words_ = 0;
  Keystream rounding_;
  std::vector<Keystream> masks_;
  std::vector<bool> add_;  // + (peer above) or - (peer below) for each mask
  std::vector<uint32_t> buf_, random_;  // mask and rounding words of one block
};

}  // namespace fedsilo::secagg
