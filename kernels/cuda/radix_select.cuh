// Radix select on the magnitude key of floats: the device machinery of the exact top-k
// (kernels/cuda/topk.cu), reused by the fused error-feedback step (whose first pass computes the
// accumulator and builds the histograms at once) and by the sampled top-k (its re-select among
// candidates). Same keys and levels as the CPU (kernels/cpu/topk.h): key = bits of |x|, levels of
// 11, 10 and 10 bits.
//
// The passes, for n floats and k:
//   1. histogram (reads 4n bytes): C chunks, one block each; a block counts the top 11 bits of
//      its chunk's keys in shared memory, writes the chunk's suffix sums (count of keys in bucket
//      >= b) and adds its counts into the global histogram.
//   2. split 1 (one block): the bucket b1 holding the k-th largest key, and chunk offsets = an
//      exclusive scan over chunks of suffix[c][b1]: where each chunk's candidates start.
//   3. collect (reads 4n bytes, writes 8 bytes per candidate): each chunk writes its candidates
//      (key >= b1 << 20: the buckets above and b1 itself) as (position, value) in ascending
//      order at its offset; the members of b1 are also counted on the next 10 bits.
//   4. split 2, level-3 histogram over the candidates, split 3: the exact key T of the k-th
//      largest and how many of the keys equal to T to take (the lowest-index ones).
//   5. count, scan, write over the candidates: keys > T and the first `need` keys == T, in
//      ascending order, at positions given by a scan of (greater, equal) counts.
// No host synchronization and no order-dependent atomics: counts are atomic sums, positions come
// from scans, so the output is the same run to run. Candidates are ~1-2% of n for normal-like
// data (k plus one 1/8-octave bucket); the scratch is sized for the worst case (all equal).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cub/block/block_scan.cuh>

#include "kernels/cuda/check.cuh"
#include "kernels/cuda/workspace.h"

namespace fedsilo::kernels::cuda::radix {

inline constexpr int kShift1 = 20;                  // level 1: key bits [20, 31)
inline constexpr int kBins1 = 1 << (31 - kShift1);  // 2048
inline constexpr int kBins2 = 1024;                 // level 2: bits [10, 20)
inline constexpr int kBins3 = 1024;                 // level 3: bits [0, 10)

inline constexpr int kBlock = 256;             // threads of every radix kernel
inline constexpr int kWarps = kBlock / 32;     // 8
inline constexpr int kItems = 8;               // elements per thread per tile
inline constexpr int kTile = kBlock * kItems;  // 2048: item j of thread t is tile + j*kBlock + t
inline constexpr int kReplicas = 2;            // level-1 shared histograms (warp w uses w % 2)
inline constexpr int kChunksPerSm = 4;         // streaming blocks per SM (16 KiB shared each)
inline constexpr int kCandidateBlocksPerSm = 2;
static_assert(kItems * kWarps == 64, "the tile scan gives each lane of one warp two entries");
static_assert(kBins1 % kBlock == 0 && kBins2 % kBlock == 0 && kBins3 % kBlock == 0);

/// The key of the CPU's magnitude_key: |x|'s bits, ordered like |x| for non-NaN x.
__device__ inline uint32_t magnitude_key(float v) {
  return __float_as_uint(v) & 0x7FFFFFFFu;
}

/// Chunk c of `chunks` over [0, n): [n*c/chunks, n*(c+1)/chunks). n < 2^32 and chunks < 2^31
/// keep the product below 2^63.
__host__ __device__ inline int64_t chunk_begin(int64_t n, int64_t c, int64_t chunks) {
  return n * c / chunks;
}

/// Launch geometry for n elements (depends on the device's SM count only through speed: every
/// geometry gives the same output).
struct Plan {
  int64_t n = 0;
  int chunks = 1;  // blocks of passes 1 and 3
  int blocks = 1;  // blocks of the candidate kernels
};

/// Selection state in device memory, written by the split kernels.
struct State {
  uint32_t digit1;     // level-1 bucket of the k-th largest key
  uint32_t prefix2;    // its top 21 bits
  uint32_t threshold;  // its key T
  uint32_t need;       // how many still to take at the current level (after level 3: keys == T)
  uint32_t m;          // candidates
};

/// Scratch of one selection over up to plan.n elements.
struct Scratch {
  uint32_t* hist = nullptr;                    // total [kBins1], level 2 [kBins2], level 3 [kBins3]
  uint32_t* suffix = nullptr;                  // [chunks][kBins1]
  uint32_t* chunk_offsets = nullptr;           // [chunks + 1]
  uint32_t* cand_pos = nullptr;                // [n]
  float* cand_val = nullptr;                   // [n]
  unsigned long long* block_counts = nullptr;  // [blocks]: greater | equal << 32
  unsigned long long* block_offsets = nullptr;
  State* state = nullptr;

  uint32_t* total() const { return hist; }
  uint32_t* hist2() const { return hist + kBins1; }
  uint32_t* hist3() const { return hist + kBins1 + kBins2; }
  static constexpr int kHistWords = kBins1 + kBins2 + kBins3;

  void carve(Carver& c, const Plan& p) {
    hist = c.take<uint32_t>(kHistWords);
    suffix = c.take<uint32_t>(static_cast<size_t>(p.chunks) * kBins1);
    chunk_offsets = c.take<uint32_t>(static_cast<size_t>(p.chunks) + 1);
    cand_pos = c.take<uint32_t>(static_cast<size_t>(p.n));
    cand_val = c.take<float>(static_cast<size_t>(p.n));
    block_counts = c.take<unsigned long long>(static_cast<size_t>(p.blocks));
    block_offsets = c.take<unsigned long long>(static_cast<size_t>(p.blocks));
    state = c.take<State>(1);
  }
};

/// The plan for n elements on the current device (n >= 1).
[[nodiscard]] Result<Plan> make_plan(int64_t n);

/// Zeroes the histograms: before pass 1.
[[nodiscard]] Status clear_histograms(const Scratch& s, cudaStream_t stream);

/// Passes 2-5, after pass 1 has filled s.suffix and s.total() for the values x[0, plan.n):
/// writes the positions of the k largest |x| (0 < k < n), ascending, to out_idx (through `map`
/// when given: out_idx[j] = map[position]) and, when out_val is not null, their values.
[[nodiscard]] Status select_from_histograms(const float* x, const Plan& p, int64_t k,
                                            const Scratch& s, const uint32_t* map,
                                            uint32_t* out_idx, float* out_val, cudaStream_t stream);

/// Pass 1 on x itself, then select_from_histograms (clears the histograms first).
[[nodiscard]] Status select(const float* x, const Plan& p, int64_t k, const Scratch& s,
                            const uint32_t* map, uint32_t* out_idx, float* out_val,
                            cudaStream_t stream);

/// Suffix sums over kBins bins held kBins / kBlock per thread: thread t owns the bins of group
/// g = kBlock - 1 - t, so a prefix over threads is a suffix over bins. suf[j] = number of keys in
/// bins >= g * kPer + j.
template <int kBins>
struct SuffixScan {
  static constexpr int kPer = kBins / kBlock;
  using Scan = cub::BlockScan<uint32_t, kBlock>;
  using TempStorage = typename Scan::TempStorage;

  __device__ static int group() { return kBlock - 1 - static_cast<int>(threadIdx.x); }

  __device__ static void run(const uint32_t (&cnt)[kPer], uint32_t (&suf)[kPer], TempStorage& tmp) {
    uint32_t sum = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) sum += cnt[j];
    uint32_t run = 0;
    Scan(tmp).ExclusiveSum(sum, run);
#pragma unroll
    for (int j = kPer - 1; j >= 0; --j) {
      run += cnt[j];
      suf[j] = run;
    }
  }
};

/// Pass 1 over chunk blockIdx.x of [0, n): load(i) gives element i (and may store what it
/// computed: the error-feedback accumulator); counts the top 11 key bits, writes the chunk's
/// suffix row and adds into total. Each element is loaded exactly once.
template <class Load>
__global__ void __launch_bounds__(kBlock)
    histogram_kernel(Load load, int64_t n, int chunks, uint32_t* __restrict__ suffix,
                     uint32_t* __restrict__ total) {
  using Suffix = SuffixScan<kBins1>;
  __shared__ uint32_t sh[kReplicas * kBins1];  // 16 KiB
  __shared__ typename Suffix::TempStorage scan_tmp;
  for (int b = threadIdx.x; b < kReplicas * kBins1; b += kBlock) sh[b] = 0;
  __syncthreads();

  const int c = blockIdx.x;
  const int64_t begin = chunk_begin(n, c, chunks), end = chunk_begin(n, c + 1, chunks);
  // Warps alternate between two copies: fewer collisions on the hot buckets (normal-like data
  // puts most keys in a few dozen of the 2048).
  uint32_t* h = sh + ((threadIdx.x / 32) % kReplicas) * kBins1;
  for (int64_t t0 = begin; t0 < end; t0 += kTile) {
    float v[kItems];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t i = t0 + j * kBlock + threadIdx.x;
      v[j] = i < end ? load(i) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t i = t0 + j * kBlock + threadIdx.x;
      if (i < end) atomicAdd(&h[magnitude_key(v[j]) >> kShift1], 1u);
    }
  }
  __syncthreads();

  constexpr int kPer = Suffix::kPer;
  const int g = Suffix::group();
  uint32_t cnt[kPer], suf[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int b = g * kPer + j;
    uint32_t s = 0;
#pragma unroll
    for (int r = 0; r < kReplicas; ++r) s += sh[r * kBins1 + b];
    cnt[j] = s;
  }
  Suffix::run(cnt, suf, scan_tmp);
  uint32_t* row = suffix + static_cast<size_t>(c) * kBins1;
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    const int b = g * kPer + j;
    row[b] = suf[j];
    if (cnt[j] != 0) atomicAdd(&total[b], cnt[j]);
  }
}

/// Launches pass 1 with the plan's geometry (histograms must be cleared before).
template <class Load>
[[nodiscard]] Status launch_histogram(Load load, const Plan& p, const Scratch& s,
                                      cudaStream_t stream) {
  histogram_kernel<Load><<<p.chunks, kBlock, 0, stream>>>(load, p.n, p.chunks, s.suffix, s.total());
  FEDSILO_CUDA_LAUNCHED(histogram_kernel);
  return {};
}

/// Pass-1 loader of a plain input array.
struct LoadArray {
  const float* x;
  __device__ float operator()(int64_t i) const { return x[i]; }
};

}  // namespace fedsilo::kernels::cuda::radix
