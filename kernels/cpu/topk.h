// Exact top-k by magnitude over a flat float buffer: a radix (histogram) select on the bit
// pattern of |x|, multi-threaded, deterministic whatever the thread count. Also the pieces the
// fused error-feedback pass and the sampled selector reuse (histogram, chunking, candidate select).
#pragma once

#include <bit>
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/sparse_vector.h"

namespace fedsilo::kernels {

/// For finite x, the IEEE-754 bits of |x| (sign cleared) order like |x|: larger magnitude,
/// larger key; -0.0 and +0.0 both map to 0. NaN keys lie above +inf's, so a NaN would be
/// "selected first": callers reject non-finite input before selecting (the compressor does,
/// as kDiverged).
inline uint32_t magnitude_key(float v) {
  return std::bit_cast<uint32_t>(v) & 0x7FFFFFFFu;
}

/// The first histogram level looks at the top 11 of the key's 31 bits: 8 exponent bits and 3
/// mantissa bits, so a bucket spans 1/8 of an octave of magnitude.
inline constexpr int kTopkShift = 20;
inline constexpr int kTopkBuckets = 1 << (31 - kTopkShift);  // 2048
inline uint32_t magnitude_bucket(float v) {
  return magnitude_key(v) >> kTopkShift;
}

/// Below this many elements per thread, extra threads cost more (fork/join ~ a few us) than
/// they save (64 Ki floats are ~20 us of one core's scan).
inline constexpr int64_t kMinElementsPerThread = int64_t{1} << 16;

/// The thread count the compressors use for n elements: `requested` (<= 0: OpenMP's default),
/// capped so that every thread has at least kMinElementsPerThread elements.
int compressor_threads(int requested, int64_t n);

/// Chunk t of `chunks` over [0, n): [n*t/chunks, n*(t+1)/chunks). Every pass of one selection
/// uses the same chunking, so per-chunk counts line up and concatenating per-chunk outputs in
/// chunk order gives ascending indices.
inline int64_t chunk_begin(int64_t n, int t, int chunks) {
  return static_cast<int64_t>((static_cast<unsigned __int128>(n) * static_cast<unsigned>(t)) /
                              static_cast<unsigned>(chunks));
}

/// Per-thread magnitude histogram (kTopkBuckets counters). Four interleaved sub-histograms
/// break the store-to-load dependency when neighbours fall in the same bucket (common: most
/// of an update sits in a few octaves); 4 x 2048 x 4 B = 32 KiB stays in a 48 KiB L1.
class MagnitudeHistogram {
 public:
  MagnitudeHistogram() : sub_(4 * kTopkBuckets, 0) {}
  void add(const float* x, int64_t n);
  /// hist[b] += this histogram's count of bucket b.
  void merge_into(uint32_t* hist) const;

 private:
  std::vector<uint32_t> sub_;
};

/// Writes the indices i in [begin, end) with magnitude_key(x[i]) >= min_key to out, ascending,
/// and returns how many. out needs room for that count plus one (the scalar path stores
/// unconditionally and advances by the predicate, so it may write one slot past the last hit).
int64_t collect_at_or_above(const float* x, int64_t begin, int64_t end, uint32_t min_key,
                            uint32_t* out);

/// The k candidates of `candidates` (ascending indices into x) with the largest |x|, ties to
/// the lower index, in ascending order. A serial radix select over the candidates only (three
/// histogram levels of 11, 10, 10 bits). k >= candidates.size() returns them all.
std::vector<uint32_t> topk_among(std::span<const float> x, std::span<const uint32_t> candidates,
                                 int64_t k);

/// Exact top-k given `chunks` per-chunk histograms of x (hists[c * kTopkBuckets + b], chunk c
/// as chunk_begin): finds the bucket holding the k-th largest |x|, collects the indices at or
/// above it in parallel, then selects among those. The fused error-feedback pass builds the
/// histograms while it writes x. Histograms of the wrong size are rebuilt here.
std::vector<uint32_t> topk_indices_from_histograms(std::span<const float> x, int64_t k,
                                                   std::span<const uint32_t> hists, int chunks);

/// Indices of the k elements of x with the largest |x|, ascending; ties at the threshold go to
/// the lower index. k <= 0 or empty x: none; k >= n: all. Requires: no NaN in x (see
/// magnitude_key), n < 2^32. threads <= 0: OpenMP's default. The result does not depend on
/// threads.
std::vector<uint32_t> topk_indices(std::span<const float> x, int64_t k, int threads = 0);

/// topk_indices with the values copied: a SparseVector of length x.size().
SparseVector topk_select(std::span<const float> x, int64_t k, int threads = 0);

/// Copies x[indices] into a SparseVector of length x.size().
SparseVector gather_sparse(std::span<const float> x, std::vector<uint32_t> indices);

}  // namespace fedsilo::kernels
