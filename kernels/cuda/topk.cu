// Exact top-k on the device: the radix-select passes of radix_select.cuh and the public topk.
//
// Napkin math for n = 2^26 fp32, k = 1% on an H200 (~4.2 TB/s): pass 1 and pass 3 each read
// the 268 MB input once (~0.064 ms each); pass 3 writes ~1-2% of n as (position, value) pairs
// (~8 MB); the candidate kernels touch those only. So ~0.13 ms of traffic plus ~10 short kernel
// launches, against torch.topk's 1.45 ms (measured on the H200: docs/environment.md).
#include <algorithm>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "kernels/cuda/radix_select.cuh"
#include "kernels/cuda/sparse.h"
#include "kernels/cuda/topk.h"

namespace fedsilo::kernels::cuda {
namespace radix {
namespace {

/// Inclusive sum over the 32 lanes of a warp.
template <class T>
__device__ T warp_inclusive_sum(T v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const T o = __shfl_up_sync(0xFFFFFFFFu, v, d);
    if (lane >= d) v += o;
  }
  return v;
}

/// Exclusive scan of the 64 per-(item, warp) counts of a tile, in (item, warp) order, which is
/// ascending element order (element = tile + item * kBlock + warp * 32 + lane). Run by warp 0.
template <class T>
__device__ void scan_tile_counts(const T* cnt, T* off, T* total) {
  const int lane = threadIdx.x & 31;
  const T a = cnt[2 * lane], b = cnt[2 * lane + 1];
  const T incl = warp_inclusive_sum<T>(a + b);
  const T excl = incl - (a + b);
  off[2 * lane] = excl;
  off[2 * lane + 1] = excl + a;
  if (lane == 31) *total = incl;
}

/// Finds the digit holding the need-th largest key from a kBins histogram (global memory):
/// digit = the bin b with suffix(b) >= need > suffix(b + 1); above = suffix(b + 1). Every thread
/// of the block must call it; the answer is in *digit and *above after the final barrier.
template <int kBins>
__device__ void block_split(const uint32_t* __restrict__ hist, uint32_t need,
                            typename SuffixScan<kBins>::TempStorage& tmp, uint32_t* digit,
                            uint32_t* above) {
  using Suffix = SuffixScan<kBins>;
  constexpr int kPer = Suffix::kPer;
  if (threadIdx.x == 0) {  // defaults, only kept if need exceeds the count (invalid input)
    *digit = 0;
    *above = 0;
  }
  __syncthreads();
  const int g = Suffix::group();
  uint32_t cnt[kPer], suf[kPer];
#pragma unroll
  for (int j = 0; j < kPer; ++j) cnt[j] = hist[g * kPer + j];
  Suffix::run(cnt, suf, tmp);
#pragma unroll
  for (int j = 0; j < kPer; ++j) {
    if (suf[j] >= need && suf[j] - cnt[j] < need) {  // exactly one bin satisfies this
      *digit = static_cast<uint32_t>(g * kPer + j);
      *above = suf[j] - cnt[j];
    }
  }
  __syncthreads();
}

// Split 1: the level-1 bucket, and where each chunk's candidates start (an exclusive scan over
// chunks of "keys in buckets >= b1", read from the chunks' suffix rows).
__global__ void __launch_bounds__(kBlock)
    split1_kernel(const uint32_t* __restrict__ total, const uint32_t* __restrict__ suffix,
                  int chunks, uint32_t k, uint32_t* __restrict__ chunk_offsets, State* st) {
  using Scan = cub::BlockScan<uint32_t, kBlock>;
  __shared__ typename Scan::TempStorage tmp;
  __shared__ uint32_t digit, above;
  block_split<kBins1>(total, k, tmp, &digit, &above);
  const uint32_t d = digit;
  uint32_t carry = 0;
  for (int c0 = 0; c0 < chunks; c0 += kBlock) {
    const int c = c0 + static_cast<int>(threadIdx.x);
    const uint32_t v = c < chunks ? suffix[static_cast<size_t>(c) * kBins1 + d] : 0u;
    uint32_t ex = 0, agg = 0;
    Scan(tmp).ExclusiveSum(v, ex, agg);
    if (c < chunks) chunk_offsets[c] = carry + ex;
    carry += agg;
    __syncthreads();  // tmp is reused by the next round
  }
  if (threadIdx.x == 0) {
    chunk_offsets[chunks] = carry;
    st->digit1 = d;
    st->need = k - above;
    st->m = carry;
  }
}

// Pass 3: chunk blockIdx.x writes its candidates (key >= b1 << 20) at its offset in ascending
// order, and counts the members of bucket b1 on key bits [10, 20).
__global__ void __launch_bounds__(kBlock)
    collect_kernel(const float* __restrict__ x, int64_t n, int chunks,
                   const uint32_t* __restrict__ chunk_offsets, const State* __restrict__ st,
                   uint32_t* __restrict__ cand_pos, float* __restrict__ cand_val,
                   uint32_t* __restrict__ hist2) {
  __shared__ uint32_t h2[kBins2];
  __shared__ uint32_t warp_cnt[kItems * kWarps];
  __shared__ uint32_t warp_off[kItems * kWarps];
  __shared__ uint32_t tile_total;
  for (int b = threadIdx.x; b < kBins2; b += kBlock) h2[b] = 0;
  const uint32_t digit = st->digit1;
  const uint32_t min_key = digit << kShift1;
  const int c = blockIdx.x;
  const int64_t begin = chunk_begin(n, c, chunks), end = chunk_begin(n, c + 1, chunks);
  uint32_t base = chunk_offsets[c];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint32_t lt = (1u << lane) - 1u;
  __syncthreads();

  for (int64_t t0 = begin; t0 < end; t0 += kTile) {  // the same trip count for the whole block
    float v[kItems];
    unsigned ballot[kItems];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t i = t0 + j * kBlock + threadIdx.x;
      v[j] = i < end ? x[i] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t i = t0 + j * kBlock + threadIdx.x;
      const uint32_t key = magnitude_key(v[j]);
      const bool in = i < end;
      if (in && (key >> kShift1) == digit) atomicAdd(&h2[(key >> 10) & (kBins2 - 1)], 1u);
      ballot[j] = __ballot_sync(0xFFFFFFFFu, in && key >= min_key);
      if (lane == 0) warp_cnt[j * kWarps + warp] = __popc(ballot[j]);
    }
    __syncthreads();
    if (warp == 0) scan_tile_counts(warp_cnt, warp_off, &tile_total);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      if ((ballot[j] >> lane) & 1u) {
        const uint32_t pos = base + warp_off[j * kWarps + warp] + __popc(ballot[j] & lt);
        cand_pos[pos] = static_cast<uint32_t>(t0 + j * kBlock + threadIdx.x);
        cand_val[pos] = v[j];
      }
    }
    base += tile_total;
    // No barrier needed here: warp_cnt is rewritten only after warp 0 has read it (the second
    // barrier above), and warp_off / tile_total only after the next tile's first barrier, which
    // every thread reaches after its reads above.
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kBins2; b += kBlock) {
    if (h2[b] != 0) atomicAdd(&hist2[b], h2[b]);
  }
}

// Splits 2 and 3 (one block): the next 10 bits of the threshold and how many are still needed.
__global__ void __launch_bounds__(kBlock)
    split_kernel(const uint32_t* __restrict__ hist, State* st, int level) {
  __shared__ typename SuffixScan<kBins2>::TempStorage tmp;
  __shared__ uint32_t digit, above;
  static_assert(kBins2 == kBins3);
  const uint32_t need = st->need;  // read by all before thread 0 writes (barriers in between)
  block_split<kBins2>(hist, need, tmp, &digit, &above);
  if (threadIdx.x == 0) {
    if (level == 2) {
      st->prefix2 = (st->digit1 << 10) | digit;
    } else {
      st->threshold = (st->prefix2 << 10) | digit;
    }
    st->need = need - above;
  }
}

// Level-3 histogram over the candidates sharing the top 21 bits of the threshold.
__global__ void __launch_bounds__(kBlock)
    hist3_kernel(const float* __restrict__ cand_val, const State* __restrict__ st,
                 uint32_t* __restrict__ hist3) {
  __shared__ uint32_t h[kBins3];
  for (int b = threadIdx.x; b < kBins3; b += kBlock) h[b] = 0;
  __syncthreads();
  const int64_t m = st->m;
  const uint32_t prefix = st->prefix2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kBlock;
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * kBlock + threadIdx.x; p < m; p += stride) {
    const uint32_t key = magnitude_key(cand_val[p]);
    if ((key >> 10) == prefix) atomicAdd(&h[key & (kBins3 - 1)], 1u);
  }
  __syncthreads();
  for (int b = threadIdx.x; b < kBins3; b += kBlock) {
    if (h[b] != 0) atomicAdd(&hist3[b], h[b]);
  }
}

// Per block of candidates (chunked as the write kernel): keys > T in the low half, == T in the
// high half (each count < 2^32, so the packed sums never carry across).
__global__ void __launch_bounds__(kBlock)
    count_kernel(const float* __restrict__ cand_val, const State* __restrict__ st,
                 unsigned long long* __restrict__ block_counts) {
  using Reduce = cub::BlockReduce<unsigned long long, kBlock>;
  __shared__ typename Reduce::TempStorage tmp;
  const int64_t m = st->m;
  const uint32_t t = st->threshold;
  const int64_t begin = chunk_begin(m, blockIdx.x, gridDim.x);
  const int64_t end = chunk_begin(m, blockIdx.x + 1, gridDim.x);
  unsigned long long c = 0;
  for (int64_t p = begin + threadIdx.x; p < end; p += kBlock) {
    const uint32_t key = magnitude_key(cand_val[p]);
    c += key > t ? 1ull : (key == t ? (1ull << 32) : 0ull);
  }
  c = Reduce(tmp).Sum(c);
  if (threadIdx.x == 0) block_counts[blockIdx.x] = c;
}

// Exclusive scan of the blocks' packed counts (one block).
__global__ void __launch_bounds__(kBlock)
    scan_blocks_kernel(const unsigned long long* __restrict__ counts, int blocks,
                       unsigned long long* __restrict__ offsets) {
  using Scan = cub::BlockScan<unsigned long long, kBlock>;
  __shared__ typename Scan::TempStorage tmp;
  unsigned long long carry = 0;
  for (int b0 = 0; b0 < blocks; b0 += kBlock) {
    const int b = b0 + static_cast<int>(threadIdx.x);
    const unsigned long long v = b < blocks ? counts[b] : 0ull;
    unsigned long long ex = 0, agg = 0;
    Scan(tmp).ExclusiveSum(v, ex, agg);
    if (b < blocks) offsets[b] = carry + ex;
    carry += agg;
    __syncthreads();
  }
}

// The output: candidates with key > T, and those with key == T while fewer than `need` equal
// ones precede them (the lower indices), at position (greater before) + min(equal before, need).
__global__ void __launch_bounds__(kBlock)
    write_kernel(const uint32_t* __restrict__ cand_pos, const float* __restrict__ cand_val,
                 const State* __restrict__ st, const unsigned long long* __restrict__ offsets,
                 const uint32_t* __restrict__ map, uint32_t* __restrict__ out_idx,
                 float* __restrict__ out_val) {
  __shared__ unsigned long long warp_cnt[kItems * kWarps];
  __shared__ unsigned long long warp_off[kItems * kWarps];
  __shared__ unsigned long long tile_total;
  const int64_t m = st->m;
  const uint32_t t = st->threshold, need = st->need;
  const int64_t begin = chunk_begin(m, blockIdx.x, gridDim.x);
  const int64_t end = chunk_begin(m, blockIdx.x + 1, gridDim.x);
  unsigned long long base = offsets[blockIdx.x];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const uint32_t lt = (1u << lane) - 1u;

  for (int64_t t0 = begin; t0 < end; t0 += kTile) {
    float v[kItems];
    unsigned bg[kItems], be[kItems];
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t p = t0 + j * kBlock + threadIdx.x;
      v[j] = p < end ? cand_val[p] : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const int64_t p = t0 + j * kBlock + threadIdx.x;
      const uint32_t key = magnitude_key(v[j]);
      const bool in = p < end;
      bg[j] = __ballot_sync(0xFFFFFFFFu, in && key > t);
      be[j] = __ballot_sync(0xFFFFFFFFu, in && key == t);
      if (lane == 0) {
        warp_cnt[j * kWarps + warp] = static_cast<unsigned long long>(__popc(bg[j])) |
                                      (static_cast<unsigned long long>(__popc(be[j])) << 32);
      }
    }
    __syncthreads();
    if (warp == 0) scan_tile_counts(warp_cnt, warp_off, &tile_total);
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kItems; ++j) {
      const bool gt = (bg[j] >> lane) & 1u, eq = (be[j] >> lane) & 1u;
      if (!gt && !eq) continue;
      const unsigned long long off = base + warp_off[j * kWarps + warp];
      const uint32_t gt_before = static_cast<uint32_t>(off) + __popc(bg[j] & lt);
      const uint32_t eq_before = static_cast<uint32_t>(off >> 32) + __popc(be[j] & lt);
      uint32_t pos;
      if (gt) {
        pos = gt_before + min(eq_before, need);
      } else if (eq_before < need) {
        pos = gt_before + eq_before;
      } else {
        continue;
      }
      const int64_t p = t0 + j * kBlock + threadIdx.x;
      const uint32_t where = cand_pos[p];
      out_idx[pos] = map != nullptr ? map[where] : where;
      if (out_val != nullptr) out_val[pos] = v[j];
    }
    base += tile_total;
  }
}

}  // namespace

Result<Plan> make_plan(int64_t n) {
  int dev = 0, sms = 0, per_sm = 0;
  FEDSILO_CUDA_TRY(cudaGetDevice(&dev));
  FEDSILO_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  FEDSILO_CUDA_TRY(cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &per_sm, histogram_kernel<LoadArray>, kBlock, 0));
  // One resident wave of chunks: each block streams a contiguous chunk, so a second, partial
  // wave would leave most of the GPU idle at the end.
  per_sm = std::clamp(per_sm, 1, kChunksPerSm * 2);
  Plan p;
  p.n = n;
  const int64_t tiles = std::max<int64_t>(1, (n + kTile - 1) / kTile);
  p.chunks = static_cast<int>(std::min<int64_t>(tiles, int64_t{sms} * per_sm));
  p.blocks = static_cast<int>(std::min<int64_t>(tiles, int64_t{sms} * kCandidateBlocksPerSm));
  p.chunks = std::max(p.chunks, 1);
  p.blocks = std::max(p.blocks, 1);
  return p;
}

Status clear_histograms(const Scratch& s, cudaStream_t stream) {
  FEDSILO_CUDA_TRY(cudaMemsetAsync(s.hist, 0, sizeof(uint32_t) * Scratch::kHistWords, stream));
  return {};
}

Status select_from_histograms(const float* x, const Plan& p, int64_t k, const Scratch& s,
                              const uint32_t* map, uint32_t* out_idx, float* out_val,
                              cudaStream_t stream) {
  if (k <= 0 || k >= p.n) return invalid_argument("radix select: needs 0 < k < n");
  split1_kernel<<<1, kBlock, 0, stream>>>(s.total(), s.suffix, p.chunks, static_cast<uint32_t>(k),
                                          s.chunk_offsets, s.state);
  FEDSILO_CUDA_LAUNCHED(split1_kernel);
  collect_kernel<<<p.chunks, kBlock, 0, stream>>>(x, p.n, p.chunks, s.chunk_offsets, s.state,
                                                  s.cand_pos, s.cand_val, s.hist2());
  FEDSILO_CUDA_LAUNCHED(collect_kernel);
  split_kernel<<<1, kBlock, 0, stream>>>(s.hist2(), s.state, 2);
  FEDSILO_CUDA_LAUNCHED(split_kernel);
  hist3_kernel<<<p.blocks, kBlock, 0, stream>>>(s.cand_val, s.state, s.hist3());
  FEDSILO_CUDA_LAUNCHED(hist3_kernel);
  split_kernel<<<1, kBlock, 0, stream>>>(s.hist3(), s.state, 3);
  FEDSILO_CUDA_LAUNCHED(split_kernel);
  count_kernel<<<p.blocks, kBlock, 0, stream>>>(s.cand_val, s.state, s.block_counts);
  FEDSILO_CUDA_LAUNCHED(count_kernel);
  scan_blocks_kernel<<<1, kBlock, 0, stream>>>(s.block_counts, p.blocks, s.block_offsets);
  FEDSILO_CUDA_LAUNCHED(scan_blocks_kernel);
  write_kernel<<<p.blocks, kBlock, 0, stream>>>(s.cand_pos, s.cand_val, s.state, s.block_offsets,
                                                map, out_idx, out_val);
  FEDSILO_CUDA_LAUNCHED(write_kernel);
  return {};
}

Status select(const float* x, const Plan& p, int64_t k, const Scratch& s, const uint32_t* map,
              uint32_t* out_idx, float* out_val, cudaStream_t stream) {
  FEDSILO_CHECK(clear_histograms(s, stream));
  FEDSILO_CHECK(launch_histogram(LoadArray{x}, p, s, stream));
  return select_from_histograms(x, p, k, s, map, out_idx, out_val, stream);
}

}  // namespace radix

namespace {

Status check_n(int64_t n) {
  if (n < 0 || n > int64_t{UINT32_MAX}) {
    return invalid_argument("topk: n = " + std::to_string(n) + " is outside [0, 2^32)");
  }
  return {};
}

}  // namespace

Result<size_t> topk_scratch_bytes(int64_t n) {
  FEDSILO_CHECK(check_n(n));
  if (n == 0) return size_t{0};
  FEDSILO_ASSIGN_OR_RETURN(const radix::Plan p, radix::make_plan(n));
  Carver c(nullptr);
  radix::Scratch s;
  s.carve(c, p);
  return c.bytes();
}

Status topk_in(const float* x, int64_t n, int64_t k, uint32_t* indices, float* values,
               void* scratch, Stream s) {
  FEDSILO_CHECK(check_n(n));
  if (k <= 0 || n == 0) return {};
  if (x == nullptr || indices == nullptr) return invalid_argument("topk: null input or output");
  const auto stream = static_cast<cudaStream_t>(s.handle);
  if (k >= n) {
    FEDSILO_CHECK(fill_iota(indices, n, s));
    if (values != nullptr) {
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(values, x, sizeof(float) * static_cast<size_t>(n),
                                       cudaMemcpyDeviceToDevice, stream));
    }
    return {};
  }
  if (scratch == nullptr) return invalid_argument("topk: null scratch");
  FEDSILO_ASSIGN_OR_RETURN(const radix::Plan p, radix::make_plan(n));
  Carver c(scratch);
  radix::Scratch sc;
  sc.carve(c, p);
  return radix::select(x, p, k, sc, nullptr, indices, values, stream);
}

Status topk(const float* x, int64_t n, int64_t k, uint32_t* indices, float* values, Workspace& ws,
            Stream s) {
  FEDSILO_CHECK(check_n(n));
  if (k <= 0 || n == 0) return {};
  void* scratch = nullptr;
  if (k < n) {
    FEDSILO_ASSIGN_OR_RETURN(const size_t bytes, topk_scratch_bytes(n));
    FEDSILO_ASSIGN_OR_RETURN(scratch, ws.reserve(bytes));
  }
  return topk_in(x, n, k, indices, values, scratch, s);
}

}  // namespace fedsilo::kernels::cuda
