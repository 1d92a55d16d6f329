// Random-k on the device (see randk.h).
//
// Floyd's algorithm (the CPU's): for step s = 0..k-1, j = n-k+s, draw t_s uniform in [0, j]
// (Philox::below(j + 1)); insert t_s, or j when t_s is already in the set. Sequential as
// written, but the set it builds has a closed form. Let first(v) be the first step that drew v,
// and c_s = "step s collided" (t_s was in the set, so j_s went in instead). t_s was in the set
// before step s exactly when an earlier step drew it, or when t_s is itself some j_u of an
// earlier step u (n-k <= t_s < j_s) that collided:
//   c_s = first(t_s) < s  or  (n-k <= t_s < j_s  and  c_{t_s - (n-k)})
// a chain that strictly descends (t_s - (n-k) < s), so it ends; its expected length is
// O(log(n / (n-k))). The set is {t_s} together with {j_s : c_s}: any drawn value is in (its
// first draw inserted it, or it was there already), and j_s only enters at step s, as a
// collision (t_s == j_s is a drawn value).
//
// Steps on the device: draws (one Philox block per two draws), a stable sort of (t_s, s) by
// t_s (cub radix sort; "drawn before" = not the first of its run), the chains, a bitmap of the
// set, then ascending output from a scan of the bitmap's popcounts. For n = 2^24, k = 1%:
// ~170k draws and a 2 MiB bitmap, tens of microseconds.
#include <algorithm>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include "core/philox.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/randk.h"
#include "kernels/cuda/sparse.h"

namespace fedsilo::kernels::cuda {
namespace {

constexpr uint32_t kNoReject = 0xFFFFFFFFu;



// Draws s >= s_begin: Philox::below(j + 1) with Lemire's method on the (s + offset)-th u64 of
// the stream, offset = the rejections so far (each consumed one u64 more). A rejected draw
// records its step; the host then redraws from the first one with the offset moved by one.
__global__ void draw_kernel(PhiloxStreamId id, int64_t n, int64_t k, int64_t s_begin,
                            uint64_t offset, uint32_t* __restrict__ t,
                            uint32_t* __restrict__ first_reject) {
  for (int64_t s = s_begin + grid_start(); s < k; s += grid_stride()) {
    const uint64_t bound = static_cast<uint64_t>(n - k + s) + 1;  // j + 1 >= 2
    const uint64_t limit = (0ull - bound) % bound;                // 2^64 mod bound
    const uint64_t x = philox_u64(id, static_cast<uint64_t>(s) + offset);
    if (x * bound >= limit) {
      t[s] = static_cast<uint32_t>(__umul64hi(x, bound));  // < bound <= n < 2^32
    } else {
      atomicMin(first_reject, static_cast<uint32_t>(s));
    }
  }
}

__global__ void iota_kernel(uint32_t* __restrict__ out, int64_t k) {
  for (int64_t s = grid_start(); s < k; s += grid_stride()) out[s] = static_cast<uint32_t>(s);
}

// Over the draws sorted by value (stable: equal values keep step order): drawn_before[s] for
// every step, and the drawn values into the bitmap.
__global__ void mark_drawn_kernel(const uint32_t* __restrict__ t_sorted,
                                  const uint32_t* __restrict__ s_sorted, int64_t k,
                                  uint8_t* __restrict__ drawn_before,
                                  uint32_t* __restrict__ bitmap) {
  for (int64_t p = grid_start(); p < k; p += grid_stride()) {
    const uint32_t v = t_sorted[p];
    drawn_before[s_sorted[p]] = (p > 0 && t_sorted[p - 1] == v) ? 1 : 0;
    atomicOr(&bitmap[v >> 5], 1u << (v & 31u));
  }
}

// c_s by following the chain; j_s into the bitmap when step s collided.
__global__ void collisions_kernel(const uint32_t* __restrict__ t,
                                  const uint8_t* __restrict__ drawn_before, int64_t n, int64_t k,
                                  uint32_t* __restrict__ bitmap) {
  const int64_t lo = n - k;
  for (int64_t s = grid_start(); s < k; s += grid_stride()) {
    int64_t cur = s;
    bool collided = false;
    for (;;) {
      if (drawn_before[cur] != 0) {
        collided = true;
        break;
      }
      const int64_t v = t[cur];
      if (v >= lo && v < lo + cur) {
        cur = v - lo;  // < cur: the chain descends
        continue;
      }
      break;
    }
    if (collided) {
      const auto j = static_cast<uint32_t>(lo + s);
      atomicOr(&bitmap[j >> 5], 1u << (j & 31u));
    }
  }
}

__global__ void popcount_kernel(const uint32_t* __restrict__ bitmap, int64_t words,
                                uint32_t* __restrict__ pop) {
  for (int64_t w = grid_start(); w < words; w += grid_stride()) pop[w] = __popc(bitmap[w]);
}

__global__ void bitmap_out_kernel(const uint32_t* __restrict__ bitmap,
                                  const uint32_t* __restrict__ pos, int64_t words, int64_t k,
                                  uint32_t* __restrict__ out) {
  for (int64_t w = grid_start(); w < words; w += grid_stride()) {
    uint32_t bits = bitmap[w];
    int64_t p = pos[w];
    while (bits != 0) {
      const int b = __ffs(bits) - 1;
      if (p < k) out[p] = static_cast<uint32_t>(w * 32 + b);  // p < k always (Floyd: k bits)
      ++p;
      bits &= bits - 1;
    }
  }
}

struct Layout {
  int64_t words = 0;
  int end_bit = 1;
  size_t sort_bytes = 0, scan_bytes = 0;
  uint32_t* t = nullptr;
  uint32_t* t_sorted = nullptr;
  uint32_t* s_in = nullptr;
  uint32_t* s_sorted = nullptr;
  void* sort_tmp = nullptr;
  uint8_t* drawn_before = nullptr;
  uint32_t* bitmap = nullptr;
  uint32_t* pop = nullptr;
  uint32_t* pos = nullptr;
  void* scan_tmp = nullptr;
  uint32_t* first_reject = nullptr;

  void carve(Carver& c, int64_t k) {
    const auto kk = static_cast<size_t>(k);
    const auto w = static_cast<size_t>(words);
    t = c.take<uint32_t>(kk);
    t_sorted = c.take<uint32_t>(kk);
    s_in = c.take<uint32_t>(kk);
    s_sorted = c.take<uint32_t>(kk);
    sort_tmp = c.take<unsigned char>(sort_bytes);
    drawn_before = c.take<uint8_t>(kk);
    bitmap = c.take<uint32_t>(w);
    pop = c.take<uint32_t>(w);
    pos = c.take<uint32_t>(w);
    scan_tmp = c.take<unsigned char>(scan_bytes);
    first_reject = c.take<uint32_t>(1);
  }
};

// For 0 < k < n < 2^32.
Result<Layout> plan_layout(int64_t n, int64_t k, cudaStream_t stream) {
  Layout l;
  l.words = (n + 31) / 32;
  while (l.end_bit < 32 && (int64_t{1} << l.end_bit) < n) ++l.end_bit;  // every t < n
  FEDSILO_CUDA_TRY(cub::DeviceRadixSort::SortPairs(
      nullptr, l.sort_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr), k, 0, l.end_bit,
      stream));
  FEDSILO_CUDA_TRY(cub::DeviceScan::ExclusiveSum(nullptr, l.scan_bytes,
                                                 static_cast<const uint32_t*>(nullptr),
                                                 static_cast<uint32_t*>(nullptr), l.words, stream));
  return l;
}

Status check_n(int64_t n) {
  if (n > int64_t{UINT32_MAX}) {
    return invalid_argument("randk: n = " + std::to_string(n) + " is not below 2^32");
  }
  return {};
}

}  // namespace

Result<size_t> randk_scratch_bytes(int64_t n, int64_t k) {
  FEDSILO_CHECK(check_n(n));
  if (k <= 0 || n <= 0 || k >= n) return size_t{0};
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, k, nullptr));
  Carver c(nullptr);
  l.carve(c, k);
  return c.bytes();
}

Status randk_indices_in(int64_t n, int64_t k, uint64_t seed, uint32_t round, uint32_t* out,
                        void* scratch, Stream s) {
  FEDSILO_CHECK(check_n(n));
  if (k <= 0 || n <= 0) return {};
  if (out == nullptr) return invalid_argument("randk: null output");
  if (k >= n) return fill_iota(out, n, s);
  if (scratch == nullptr) return invalid_argument("randk: null scratch");
  const cudaStream_t stream = cuda_stream(s);
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, k, stream));
  Carver carver(scratch);
  l.carve(carver, k);

  // The draws, redone from the first rejected one until none is (usually one round).
  const PhiloxStreamId id =
      make_philox_stream(seed, round, 0, static_cast<uint32_t>(RngPurpose::kCompression));
  uint64_t offset = 0;
  int64_t s_begin = 0;
  for (;;) {
    FEDSILO_CUDA_TRY(cudaMemsetAsync(l.first_reject, 0xFF, sizeof(uint32_t), stream));
    draw_kernel<<<blocks_for(k - s_begin), kThreads, 0, stream>>>(id, n, k, s_begin, offset, l.t,
                                                                  l.first_reject);
    FEDSILO_CUDA_LAUNCHED(draw_kernel);
    uint32_t rejected = kNoReject;
    FEDSILO_CUDA_TRY(cudaMemcpyAsync(&rejected, l.first_reject, sizeof(rejected),
                                     cudaMemcpyDeviceToHost, stream));
    FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
    if (rejected == kNoReject) break;
    s_begin = rejected;
    ++offset;
  }

  iota_kernel<<<blocks_for(k), kThreads, 0, stream>>>(l.s_in, k);
  FEDSILO_CUDA_LAUNCHED(iota_kernel);
  FEDSILO_CUDA_TRY(cub::DeviceRadixSort::SortPairs(
      l.sort_tmp, l.sort_bytes, static_cast<const uint32_t*>(l.t), l.t_sorted,
      static_cast<const uint32_t*>(l.s_in), l.s_sorted, k, 0, l.end_bit, stream));
  FEDSILO_CUDA_TRY(
      cudaMemsetAsync(l.bitmap, 0, sizeof(uint32_t) * static_cast<size_t>(l.words), stream));
  mark_drawn_kernel<<<blocks_for(k), kThreads, 0, stream>>>(l.t_sorted, l.s_sorted, k,
                                                            l.drawn_before, l.bitmap);
  FEDSILO_CUDA_LAUNCHED(mark_drawn_kernel);
  collisions_kernel<<<blocks_for(k), kThreads, 0, stream>>>(l.t, l.drawn_before, n, k, l.bitmap);
  FEDSILO_CUDA_LAUNCHED(collisions_kernel);
  popcount_kernel<<<blocks_for(l.words), kThreads, 0, stream>>>(l.bitmap, l.words, l.pop);
  FEDSILO_CUDA_LAUNCHED(popcount_kernel);
  FEDSILO_CUDA_TRY(cub::DeviceScan::ExclusiveSum(
      l.scan_tmp, l.scan_bytes, static_cast<const uint32_t*>(l.pop), l.pos, l.words, stream));
  bitmap_out_kernel<<<blocks_for(l.words), kThreads, 0, stream>>>(l.bitmap, l.pos, l.words, k, out);
  FEDSILO_CUDA_LAUNCHED(bitmap_out_kernel);
  return {};
}

Status randk_indices(int64_t n, int64_t k, uint64_t seed, uint32_t round, uint32_t* out,
                     Workspace& ws, Stream s) {
  FEDSILO_ASSIGN_OR_RETURN(const size_t bytes, randk_scratch_bytes(n, k));
  void* scratch = nullptr;
  if (bytes > 0) {
    FEDSILO_ASSIGN_OR_RETURN(scratch, ws.reserve(bytes));
  }
  return randk_indices_in(n, k, seed, round, out, scratch, s);
}

Status randk_select(const float* x, int64_t n, int64_t k, uint64_t seed, uint32_t round,
                    uint32_t* indices, float* values, Workspace& ws, Stream s) {
  FEDSILO_CHECK(randk_indices(n, k, seed, round, indices, ws, s));
  const int64_t count = (k <= 0 || n <= 0) ? 0 : std::min(k, n);
  return gather(x, indices, count, values, s);
}

}  // namespace fedsilo::kernels::cuda
