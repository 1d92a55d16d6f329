// Exact top-k by magnitude: radix select on the bits of |x|.
//
// Cost for n floats and k = 1%: pass 1 reads 4n bytes and bumps one of 2048 counters per element
// (scalar, ~1 element/cycle: the histogram is the bound, not DRAM); pass 2 reads 4n bytes again
// and writes the candidate indices (k plus one bucket, ~1-3% of n for normal-like data); the
// rest touches only the candidates. A full sort moves ~log2(n) x 4n bytes instead.
#include "kernels/cpu/topk.h"

#include "kernels/cpu/cpu_level.h"

#include <omp.h>

#if FEDSILO_X86
#include <immintrin.h>
#endif

#include <algorithm>
#include <array>
#include <cstring>
#include <numeric>

namespace fedsilo::kernels {

int compressor_threads(int requested, int64_t n) {
  const int64_t wanted = requested > 0 ? requested : omp_get_max_threads();
  const int64_t by_size = std::max<int64_t>(1, n / kMinElementsPerThread);
  return static_cast<int>(std::max<int64_t>(1, std::min(wanted, by_size)));
}

void MagnitudeHistogram::add(const float* x, int64_t n) {
  uint32_t* h0 = sub_.data();
  uint32_t* h1 = h0 + kTopkBuckets;
  uint32_t* h2 = h1 + kTopkBuckets;
  uint32_t* h3 = h2 + kTopkBuckets;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h0[magnitude_bucket(x[i])];
    ++h1[magnitude_bucket(x[i + 1])];
    ++h2[magnitude_bucket(x[i + 2])];
    ++h3[magnitude_bucket(x[i + 3])];
  }
  for (; i < n; ++i) ++h0[magnitude_bucket(x[i])];
}

void MagnitudeHistogram::merge_into(uint32_t* hist) const {
  const uint32_t* h = sub_.data();
  for (int b = 0; b < kTopkBuckets; ++b) {
    hist[b] += h[b] + h[b + kTopkBuckets] + h[b + 2 * kTopkBuckets] + h[b + 3 * kTopkBuckets];
  }
}

namespace {

#if FEDSILO_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl")
// 16 keys per step: one masked compare, the matching indices compressed in a register, and a
// masked store of only the hits. Not a compress-store to memory: AMD's Zen 4 microcodes that
// (~100+ cycles each, measured: a 2^24 scan took 30 ms instead of 3), while register compress +
// masked store are a few cycles on Intel and AMD alike. Returns how far it got (a multiple of
// 16 past `begin`); `p` counts the indices written.
int64_t collect_avx512(const float* x, int64_t begin, int64_t end, uint32_t min_key, uint32_t* out,
                       int64_t& p) {
  int64_t i = begin;
  const __m512i abs_mask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512i threshold = _mm512_set1_epi32(static_cast<int>(min_key));
  const __m512i step = _mm512_set1_epi32(16);
  __m512i idx =
      _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(i))),
                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  for (; i + 16 <= end; i += 16) {
    const __m512i key = _mm512_and_si512(_mm512_loadu_si512(x + i), abs_mask);
    const __mmask16 hit = _mm512_cmpge_epu32_mask(key, threshold);
    const int hits = __builtin_popcount(hit);
    const __m512i packed = _mm512_maskz_compress_epi32(hit, idx);
    _mm512_mask_storeu_epi32(out + p, static_cast<__mmask16>((1u << hits) - 1u), packed);
    p += hits;
    idx = _mm512_add_epi32(idx, step);
  }
  return i;
}
#pragma GCC pop_options
#endif  // FEDSILO_X86

}  // namespace

int64_t collect_at_or_above(const float* x, int64_t begin, int64_t end, uint32_t min_key,
                            uint32_t* out) {
  int64_t p = 0;
  int64_t i = begin;
#if FEDSILO_X86
  if (cpu_level() == CpuLevel::kAvx512) i = collect_avx512(x, begin, end, min_key, out, p);
#endif
  // The rest (all of it below AVX-512): branch-free scalar steps.
  for (; i < end; ++i) {
    out[p] = static_cast<uint32_t>(i);
    p += magnitude_key(x[i]) >= min_key;
  }
  return p;
}

namespace {

// One radix level over the candidates' keys that have `prefix` above bit `shift`: finds the
// digit (bits [shift - bits, shift)) holding the `need`-th largest and how many keys lie in
// higher digits.
struct Level {
  uint32_t digit = 0;
  int64_t above = 0;
};

Level select_digit(std::span<const uint32_t> keys, uint32_t prefix, int shift, int bits,
                   int64_t need) {
  std::vector<uint32_t> hist(size_t{1} << bits, 0);
  const int low = shift - bits;
  const uint32_t mask = (1u << bits) - 1u;
  for (const uint32_t key : keys) {
    // shift == 31 means "no prefix yet": every key matches (and >> 31 is 0 for 31-bit keys).
    if ((key >> shift) == prefix) ++hist[(key >> low) & mask];
  }
  Level lv;
  for (int64_t d = static_cast<int64_t>(mask); d >= 0; --d) {
    if (lv.above + hist[d] >= need) {
      lv.digit = static_cast<uint32_t>(d);
      return lv;
    }
    lv.above += hist[d];
  }
  return lv;  // unreachable when need <= number of matching candidates
}

}  // namespace

std::vector<uint32_t> topk_among(std::span<const float> x, std::span<const uint32_t> candidates,
                                 int64_t k) {
  const auto m = static_cast<int64_t>(candidates.size());
  if (k <= 0) return {};
  if (k >= m) return {candidates.begin(), candidates.end()};
  // The candidates' keys, gathered once: the candidates are scattered over x (1.3 k of n for
  // the sampled threshold: one cache line each), so every level reading x[i] again would cost
  // a cache miss per candidate; the keys are 4 m contiguous bytes (0.9 MB for 2^24 at 1%).
  std::vector<uint32_t> keys(static_cast<size_t>(m));
  for (int64_t j = 0; j < m; ++j) keys[j] = magnitude_key(x[candidates[j]]);
  // Three levels (11 + 10 + 10 bits) pin down the exact key T of the k-th largest, and how
  // many of the candidates equal to T to keep (the lowest-index ones: the tie rule).
  constexpr std::array<int, 3> kBits = {31 - kTopkShift, 10, 10};
  uint32_t prefix = 0;
  int shift = 31;
  int64_t need = k;
  for (const int bits : kBits) {
    const Level lv = select_digit(keys, prefix, shift, bits, need);
    need -= lv.above;
    prefix = (prefix << bits) | lv.digit;
    shift -= bits;
  }
  const uint32_t threshold = prefix;
  std::vector<uint32_t> out;
  out.reserve(static_cast<size_t>(k));
  int64_t equal_left = need;
  for (int64_t j = 0; j < m; ++j) {
    const uint32_t key = keys[j];
    if (key > threshold) {
      out.push_back(candidates[j]);
    } else if (key == threshold && equal_left > 0) {
      out.push_back(candidates[j]);
      --equal_left;
    }
  }
  return out;
}

std::vector<uint32_t> topk_indices_from_histograms(std::span<const float> x, int64_t k,
                                                   std::span<const uint32_t> hists, int chunks) {
  const auto n = static_cast<int64_t>(x.size());
  if (k <= 0 || n == 0) return {};
  if (k >= n) {
    std::vector<uint32_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0u);
    return all;
  }
  if (chunks < 1 || hists.size() != static_cast<size_t>(chunks) * kTopkBuckets) {
    return topk_indices(x, k, chunks);  // histograms missing or mis-sized: build them
  }
  std::vector<int64_t> total(kTopkBuckets, 0);
  for (int c = 0; c < chunks; ++c) {
    for (int b = 0; b < kTopkBuckets; ++b) total[b] += hists[size_t(c) * kTopkBuckets + b];
  }
  int64_t above = 0;
  int split = kTopkBuckets - 1;
  for (; split > 0; --split) {
    if (above + total[split] >= k) break;
    above += total[split];
  }
  // Chunk c writes its candidates at offset[c] + c: the spare slot per chunk is the one
  // collect_at_or_above may write past its last hit.
  std::vector<int64_t> offset(static_cast<size_t>(chunks) + 1, 0);
  for (int c = 0; c < chunks; ++c) {
    int64_t cnt = 0;
    for (int b = split; b < kTopkBuckets; ++b) cnt += hists[size_t(c) * kTopkBuckets + b];
    offset[c + 1] = offset[c] + cnt;
  }
  std::vector<uint32_t> cand(static_cast<size_t>(offset[chunks] + chunks));
  const uint32_t min_key = static_cast<uint32_t>(split) << kTopkShift;
  const float* xp = x.data();
  uint32_t* cp = cand.data();
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    const int64_t b = chunk_begin(n, c, chunks), e = chunk_begin(n, c + 1, chunks);
    collect_at_or_above(xp, b, e, min_key, cp + offset[c] + c);
  }
  // Close the one-slot gaps: chunk c's block moves down by c (total copy ~ the candidates).
  for (int c = 1; c < chunks; ++c) {
    std::memmove(cp + offset[c], cp + offset[c] + c,
                 static_cast<size_t>(offset[c + 1] - offset[c]) * sizeof(uint32_t));
  }
  cand.resize(static_cast<size_t>(offset[chunks]));
  return topk_among(x, cand, k);
}

std::vector<uint32_t> topk_indices(std::span<const float> x, int64_t k, int threads) {
  const auto n = static_cast<int64_t>(x.size());
  if (k <= 0 || n == 0) return {};
  if (k >= n) return topk_indices_from_histograms(x, k, {}, 1);
  const int chunks = compressor_threads(threads, n);
  std::vector<uint32_t> hists(static_cast<size_t>(chunks) * kTopkBuckets, 0);
  const float* xp = x.data();
#pragma omp parallel for num_threads(chunks) schedule(static, 1)
  for (int c = 0; c < chunks; ++c) {
    const int64_t b = chunk_begin(n, c, chunks), e = chunk_begin(n, c + 1, chunks);
    MagnitudeHistogram h;
    h.add(xp + b, e - b);
    h.merge_into(hists.data() + size_t(c) * kTopkBuckets);
  }
  return topk_indices_from_histograms(x, k, hists, chunks);
}

SparseVector gather_sparse(std::span<const float> x, std::vector<uint32_t> indices) {
  SparseVector sv;
  sv.length = static_cast<int64_t>(x.size());
  sv.values.resize(indices.size());
  for (size_t j = 0; j < indices.size(); ++j) sv.values[j] = x[indices[j]];
  sv.indices = std::move(indices);
  return sv;
}

SparseVector topk_select(std::span<const float> x, int64_t k, int threads) {
  return gather_sparse(x, topk_indices(x, k, threads));
}

}  // namespace fedsilo::kernels
