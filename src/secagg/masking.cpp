// Fixed-point coding and pairwise masks for secure aggregation.
#include "secagg/masking.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace fedsilo::secagg {

double FixedPoint::scale() const { return std::ldexp(1.0, bits); }

Status check_fits(const FixedPoint& fp, int silos) {
  if (!(fp.range > 0.0) || !std::isfinite(fp.range)) {
    return invalid_argument("secure_aggregation.range must be > 0, got " + std::to_string(fp.range));
  }
  if (fp.bits < 0 || fp.bits > 30) {
    return invalid_argument("secure_aggregation.bits must be in [0, 30], got " + std::to_string(fp.bits));
  }
  const double span = static_cast<double>(silos) * 2.0 * std::max(fp.range, 1.0) * fp.scale();
  if (span >= 4294967296.0) {
    char buf[320];
    std::snprintf(buf, sizeof buf,
                  "secure_aggregation.range = %g and secure_aggregation.bits = %d do not fit "
                  "2^32 for %d silos: %d x 2 x %g x 2^%d = %.4g >= 2^32 = 4.295e+09 (the sum "
                  "would wrap); lower bits or range",
                  fp.range, fp.bits, silos, silos, std::max(fp.range, 1.0), fp.bits, span);
    return invalid_argument(buf);
  }
  return {};
}

int64_t encode(std::span<const float> v, const FixedPoint& fp, std::span<const uint32_t> random,
               std::span<uint32_t> out) {
  const double scale = fp.scale(), lo = -fp.range, hi = fp.range;
  int64_t clipped = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    double x = v[i];
    if (x < lo || x > hi) {
      x = std::clamp(x, lo, hi);
      ++clipped;
    }
    const double u = static_cast<double>(random[i]) * 0x1p-32;  // [0, 1)
    const auto q = static_cast<int64_t>(std::floor(x * scale + u));
    out[i] = static_cast<uint32_t>(q);  // modulo 2^32: two's complement for negative q
  }
  return clipped;
}

void decode(std::span<const uint32_t> sum, const FixedPoint& fp, std::span<float> out) {
  const double inv = 1.0 / fp.scale();
  for (size_t i = 0; i < sum.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(static_cast<int32_t>(sum[i])) * inv);
  }
}

Status add_masks(std::span<uint32_t> v, int self, std::span<const MaskPeer> peers, size_t block_words) {
  if (block_words == 0 || block_words % 4 != 0) {
    return invalid_argument("add_masks: block_words must be a positive multiple of 4");
  }
  std::vector<Keystream> streams;
  for (const MaskPeer& p : peers) {
    if (p.silo == self) return invalid_argument("add_masks: silo " + std::to_string(self) + " is its own peer");
    FEDSILO_ASSIGN_OR_RETURN(Keystream ks, Keystream::create(std::span<const uint8_t>(p.seed.data(), 16)));
    streams.push_back(std::move(ks));
  }
  // Block by block, every peer's mask while the block of `v` stays in cache.
  std::vector<uint32_t> mask(block_words);
  Status st;
  for (size_t at = 0; at < v.size() && st.ok(); at += block_words) {
    const size_t n = std::min(block_words, v.size() - at);
    const size_t padded = (n + 3) / 4 * 4;
    uint32_t* x = v.data() + at;
    for (size_t k = 0; k < streams.size() && st.ok(); ++k) {
      st = streams[k].fill(at / 4, std::span<uint32_t>(mask.data(), padded));
      if (!st.ok()) break;
      if (self < peers[k].silo) {
        for (size_t i = 0; i < n; ++i) x[i] += mask[i];
      } else {
        for (size_t i = 0; i < n; ++i) x[i] -= mask[i];
      }
    }
  }
  sodium_memzero(mask.data(), mask.size() * sizeof(uint32_t));
  return st;
}

}  // namespace fedsilo::secagg
