// Sampled top-k on the device, step for step the CPU's kernels/cpu/topk_sampled.cpp: the sample
// (m Philox words -> positions -> keys), its order statistics (one descending sort of the
// sample keys: nth_element on the CPU picks the same values), a thresholding pass per estimate
// (a stable, single-pass select of the indices at or above the threshold, cub::DeviceSelect),
// and the exact re-select when the candidates overshoot k by more than the slack.
//
// Cost for n = 2^26, k = 1%: m = 12,800 samples (a few us), one pass reading 268 MB and writing
// ~1.3k indices (~0.07 ms at 4 TB/s), one re-select over ~1.3k candidates; the host reads two
// small counts back (two stream synchronizations).
#include <thrust/iterator/counting_iterator.h>

#include <algorithm>
#include <cmath>
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_select.cuh>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/radix_select.cuh"
#include "kernels/cuda/sparse.h"
#include "kernels/cuda/topk_sampled.h"

namespace fedsilo::kernels::cuda {
namespace {

// The CPU's constants (kernels/cpu/topk_sampled.cpp); the GPU tests compare the statistics, so
// a change on one side shows.
constexpr int64_t kMinSample = 4096;
constexpr double kTargetRank = 128.0;
constexpr int64_t kMaxSampleDivisor = 64;
constexpr double kSpreads = 3.0;
constexpr int kMaxPasses = 4;


int64_t sample_size(int64_t n, int64_t k) {
  const double frac = static_cast<double>(k) / static_cast<double>(n);
  int64_t m = static_cast<int64_t>(std::ceil(kTargetRank / frac));
  m = std::min(m, n / kMaxSampleDivisor);
  m = std::min(n, std::max(m, kMinSample));
  return m;
}

// Sample s: position (word_s * n) >> 32 of x, as the CPU's `(u32 * n) >> 32`.
__global__ void sample_kernel(const float* __restrict__ x, int64_t n, int64_t m, PhiloxStreamId id,
                              uint32_t* __restrict__ keys) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t s = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; s < m;
       s += stride) {
    const uint64_t word = philox_word(id, static_cast<uint64_t>(s));
    const uint64_t pos = (word * static_cast<uint64_t>(n)) >> 32;
    keys[s] = radix::magnitude_key(x[pos]);
  }
}

struct AtOrAbove {
  const float* x;
  uint32_t min_key;
  __device__ bool operator()(uint32_t i) const { return radix::magnitude_key(x[i]) >= min_key; }
};

using Counting = thrust::counting_iterator<uint32_t>;

struct Layout {
  int64_t m = 0;
  radix::Plan plan;  // for n elements (a re-select over fewer uses the same pieces)
  size_t sort_bytes = 0, select_bytes = 0;
  uint32_t* keys = nullptr;
  uint32_t* sorted = nullptr;
  void* sort_tmp = nullptr;
  uint32_t* cand = nullptr;
  int64_t* num_selected = nullptr;
  void* select_tmp = nullptr;
  float* cand_val = nullptr;
  radix::Scratch rs;

  void carve(Carver& c, int64_t n) {
    keys = c.take<uint32_t>(static_cast<size_t>(m));
    sorted = c.take<uint32_t>(static_cast<size_t>(m));
    sort_tmp = c.take<unsigned char>(sort_bytes);
    cand = c.take<uint32_t>(static_cast<size_t>(n));
    num_selected = c.take<int64_t>(1);
    select_tmp = c.take<unsigned char>(select_bytes);
    cand_val = c.take<float>(static_cast<size_t>(n));
    rs.carve(c, plan);
  }
};

// Sizes of everything for 0 < k < n (no launches: cub only reports its temporary sizes).
Result<Layout> plan_layout(int64_t n, int64_t k, cudaStream_t stream) {
  Layout l;
  l.m = sample_size(n, k);
  FEDSILO_ASSIGN_OR_RETURN(l.plan, radix::make_plan(n));
  FEDSILO_CUDA_TRY(cub::DeviceRadixSort::SortKeysDescending(
      nullptr, l.sort_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      l.m, 0, 31, stream));
  FEDSILO_CUDA_TRY(
      cub::DeviceSelect::If(nullptr, l.select_bytes, Counting(0), static_cast<uint32_t*>(nullptr),
                            static_cast<int64_t*>(nullptr), n, AtOrAbove{nullptr, 0}, stream));
  return l;
}

Status check_n(int64_t n) {
  if (n < 0 || n > int64_t{UINT32_MAX}) {
    return invalid_argument("topk_sampled: n = " + std::to_string(n) + " is outside [0, 2^32)");
  }
  return {};
}

}  // namespace

int64_t topk_sampled_capacity(int64_t n, int64_t k) {
  if (k <= 0 || n <= 0) return 0;
  if (k >= n) return n;
  return std::min(n, k + sampled_topk_slack(k));
}

Result<size_t> topk_sampled_scratch_bytes(int64_t n, int64_t k) {
  FEDSILO_CHECK(check_n(n));
  if (k <= 0 || n == 0 || k >= n) return size_t{0};
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, k, nullptr));
  Carver c(nullptr);
  l.carve(c, n);
  return c.bytes();
}

Result<int64_t> topk_sampled_in(const float* x, int64_t n, int64_t k, const PhiloxStream& rng,
                                uint32_t* indices, float* values, int64_t capacity, void* scratch,
                                Stream s, SampledTopkStats* stats) {
  FEDSILO_CHECK(check_n(n));
  SampledTopkStats st;
  if (stats != nullptr) *stats = st;
  if (k <= 0 || n == 0) return int64_t{0};
  if (capacity < topk_sampled_capacity(n, k)) {
    return invalid_argument("topk_sampled: output capacity " + std::to_string(capacity) +
                            " below " + std::to_string(topk_sampled_capacity(n, k)));
  }
  if (x == nullptr || indices == nullptr) {
    return invalid_argument("topk_sampled: null input or output");
  }
  const cudaStream_t stream = cuda_stream(s);
  if (k >= n) {
    FEDSILO_CHECK(fill_iota(indices, n, s));
    if (values != nullptr) {
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(values, x, sizeof(float) * static_cast<size_t>(n),
                                       cudaMemcpyDeviceToDevice, stream));
    }
    return n;
  }
  if (scratch == nullptr) return invalid_argument("topk_sampled: null scratch");
  FEDSILO_ASSIGN_OR_RETURN(Layout l, plan_layout(n, k, stream));
  Carver carver(scratch);
  l.carve(carver, n);
  const int64_t m = l.m;
  st.sample_size = m;

  const PhiloxStreamId id =
      make_philox_stream(rng.seed, rng.round, rng.silo, static_cast<uint32_t>(rng.purpose));
  sample_kernel<<<blocks_for(m), kThreads, 0, stream>>>(x, n, m, id, l.keys);
  FEDSILO_CUDA_LAUNCHED(sample_kernel);
  FEDSILO_CUDA_TRY(cub::DeviceRadixSort::SortKeysDescending(l.sort_tmp, l.sort_bytes, l.keys,
                                                            l.sorted, m, 0, 31, stream));

  const int64_t slack = sampled_topk_slack(k);
  const double frac = static_cast<double>(k) / static_cast<double>(n);
  const double r = frac * static_cast<double>(m);
  double rank = r + kSpreads * std::sqrt(std::max(r, 1.0)) + 1.0;  // 1-based rank in the sample
  int64_t c = 0;
  bool all = false;  // min_key 0: every element is a candidate (not materialized)
  for (int pass = 1; pass <= kMaxPasses; ++pass) {
    uint32_t min_key = 0;
    if (pass < kMaxPasses && rank <= static_cast<double>(m)) {
      const int64_t nth = static_cast<int64_t>(std::ceil(rank)) - 1;
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(&min_key, l.sorted + nth, sizeof(min_key),
                                       cudaMemcpyDeviceToHost, stream));
      FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
    }
    if (min_key == 0) {
      all = true;
      c = n;
    } else {
      all = false;
      FEDSILO_CUDA_TRY(cub::DeviceSelect::If(l.select_tmp, l.select_bytes, Counting(0), l.cand,
                                             l.num_selected, n, AtOrAbove{x, min_key}, stream));
      FEDSILO_CUDA_TRY(
          cudaMemcpyAsync(&c, l.num_selected, sizeof(c), cudaMemcpyDeviceToHost, stream));
      FEDSILO_CUDA_TRY(cudaStreamSynchronize(stream));
    }
    st.passes = pass;
    if (c >= k - slack) break;
    // Too few: the sample over-estimated the threshold (the CPU's update, the same doubles).
    rank = rank * (static_cast<double>(k) / static_cast<double>(std::max<int64_t>(c, 1))) *
           (1.0 + kSpreads / std::sqrt(std::max(r, 1.0)));
  }
  st.candidates = c;

  int64_t count = 0;
  if (c > k + slack) {
    if (all) {
      FEDSILO_CHECK(radix::select(x, l.plan, k, l.rs, nullptr, indices, values, stream));
    } else {
      FEDSILO_CHECK(gather(x, l.cand, c, l.cand_val, s));
      // The pieces carved for n elements hold a selection over c < n as well.
      FEDSILO_ASSIGN_OR_RETURN(const radix::Plan pc, radix::make_plan(c));
      FEDSILO_CHECK(radix::select(l.cand_val, pc, k, l.rs, l.cand, indices, values, stream));
    }
    st.reselected = true;
    count = k;
  } else {
    count = c;
    if (all) {
      FEDSILO_CHECK(fill_iota(indices, n, s));
      if (values != nullptr) {
        FEDSILO_CUDA_TRY(cudaMemcpyAsync(values, x, sizeof(float) * static_cast<size_t>(n),
                                         cudaMemcpyDeviceToDevice, stream));
      }
    } else if (c > 0) {
      FEDSILO_CUDA_TRY(cudaMemcpyAsync(indices, l.cand, sizeof(uint32_t) * static_cast<size_t>(c),
                                       cudaMemcpyDeviceToDevice, stream));
      if (values != nullptr) FEDSILO_CHECK(gather(x, l.cand, c, values, s));
    }
  }
  if (stats != nullptr) *stats = st;
  return count;
}

Result<int64_t> topk_sampled(const float* x, int64_t n, int64_t k, const PhiloxStream& rng,
                             uint32_t* indices, float* values, int64_t capacity, Workspace& ws,
                             Stream s, SampledTopkStats* stats) {
  FEDSILO_ASSIGN_OR_RETURN(const size_t bytes, topk_sampled_scratch_bytes(n, k));
  void* scratch = nullptr;
  if (bytes > 0) {
    FEDSILO_ASSIGN_OR_RETURN(scratch, ws.reserve(bytes));
  }
  return topk_sampled_in(x, n, k, rng, indices, values, capacity, scratch, s, stats);
}

}  // namespace fedsilo::kernels::cuda
