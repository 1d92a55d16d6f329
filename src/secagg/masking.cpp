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
  // check_fits bounds |x| * 2^bits + 1 below 2^31: the code fits an int32 (a vectorised
  // conversion), whose two's complement is the code modulo 2^32.
  int64_t clipped = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double x = v[i];
    clipped += static_cast<int64_t>((x < lo) | (x > hi));
    const double u = static_cast<double>(random[i]) * 0x1p-32;  // [0, 1)
    const auto q = static_cast<int32_t>(std::floor(std::min(std::max(x, lo), hi) * scale + u));
    out[i] = static_cast<uint32_t>(q);
  }
  return clipped;
}

void decode(std::span<const uint32_t> sum, const FixedPoint& fp, std::span<float> out) {
  const double inv = 1.0 / fp.scale();
  for (size_t i = 0; i < sum.size(); ++i) {
    out[i] = static_cast<float>(static_cast<double>(static_cast<int32_t>(sum[i])) * inv);
  }
}

Result<RoundMasker> RoundMasker::create(std::span<const uint8_t> rounding_key, int self,
                                        std::span<const MaskPeer> peers, size_t block_words) {
  if (block_words == 0 || block_words % 4 != 0) {
    return invalid_argument("masking: block_words must be a positive multiple of 4");
  }
  FEDSILO_ASSIGN_OR_RETURN(Keystream rounding, Keystream::create(rounding_key));
  RoundMasker m(std::move(rounding));
  m.self_ = self;
  m.block_words_ = block_words;
  for (const MaskPeer& p : peers) {
    if (p.silo == self) {
      return invalid_argument("masking: silo " + std::to_string(self) + " is its own peer");
    }
    FEDSILO_ASSIGN_OR_RETURN(Keystream ks, Keystream::create(std::span<const uint8_t>(p.seed.data(), 16)));
    m.masks_.push_back(std::move(ks));
    m.add_.push_back(self < p.silo);
  }
  m.buf_.resize(block_words + 4);
  m.random_.resize(block_words + 4);
  return m;
}

RoundMasker::~RoundMasker() {
  sodium_memzero(buf_.data(), buf_.size() * sizeof(uint32_t));
  sodium_memzero(random_.data(), random_.size() * sizeof(uint32_t));
}

Result<const uint32_t*> RoundMasker::words(Keystream& ks, uint64_t first, size_t count,
                                           std::vector<uint32_t>& buf) {
  const size_t skip = first % 4;
  const size_t padded = (skip + count + 3) / 4 * 4;
  FEDSILO_CHECK(ks.fill(first / 4, std::span<uint32_t>(buf.data(), padded)));
  return buf.data() + skip;
}

Result<int64_t> RoundMasker::code_and_mask(std::span<const float> v, const FixedPoint& fp,
                                           uint64_t first, std::span<uint32_t> out,
                                           const std::function<void()>& between_blocks) {
  if (v.size() != out.size()) {
    return invalid_argument("masking: " + std::to_string(v.size()) + " values for " +
                            std::to_string(out.size()) + " words");
  }
  int64_t clipped = 0;
  for (size_t at = 0; at < v.size(); at += block_words_) {
    const size_t n = std::min(block_words_, v.size() - at);
    uint32_t* x = out.data() + at;
    FEDSILO_ASSIGN_OR_RETURN(const uint32_t* r, words(rounding_, first + at, n, random_));
    clipped += encode(v.subspan(at, n), fp, std::span<const uint32_t>(r, n), std::span<uint32_t>(x, n));
    for (size_t k = 0; k < masks_.size(); ++k) {
      FEDSILO_ASSIGN_OR_RETURN(const uint32_t* mask, words(masks_[k], first + at, n, buf_));
      if (add_[k]) {
        for (size_t i = 0; i < n; ++i) x[i] += mask[i];
      } else {
        for (size_t i = 0; i < n; ++i) x[i] -= mask[i];
      }
    }
    if (between_blocks) between_blocks();
  }
  return clipped;
}

}  // namespace fedsilo::secagg
