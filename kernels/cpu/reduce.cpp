// Elementwise accumulation; a streaming loop the compiler vectorises (memory-bound: 12 bytes
// moved per float added). The L2 norm sums squares in double, in index order.
#include "kernels/cpu/reduce.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) || defined(__AVX__)
#include <immintrin.h>
#endif

namespace fedsilo::kernels {

template <typename T>
void add_into(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

template <typename T>
double l2_norm(const T* x, int64_t n) {
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i) sq += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return std::sqrt(sq);
}

void copy_streaming(const float* src, float* dst, int64_t n) {
#if defined(__AVX512F__) || defined(__AVX__)
#if defined(__AVX512F__)
  constexpr int64_t kLanes = 16;
#else
  constexpr int64_t kLanes = 8;
#endif
  // Plain stores up to dst's next 64-byte boundary, then whole vectors streamed.
  const auto misalign = reinterpret_cast<uintptr_t>(dst) % 64;
  int64_t head = misalign == 0 ? 0 : static_cast<int64_t>((64 - misalign) / sizeof(float));
  if (misalign % sizeof(float) != 0 || head > n) head = n;  // oddly aligned or short: plain
  std::memcpy(dst, src, static_cast<size_t>(head) * sizeof(float));
  int64_t i = head;
  for (; i + kLanes <= n; i += kLanes) {
#if defined(__AVX512F__)
    _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#else
    _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
#endif
  }
  std::memcpy(dst + i, src + i, static_cast<size_t>(n - i) * sizeof(float));
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
#endif
}

void stream_fence() {
#if defined(__AVX512F__) || defined(__AVX__)
  _mm_sfence();
#endif
}

template void add_into<float>(float*, const float*, int64_t);
template void add_into<double>(double*, const double*, int64_t);
template double l2_norm<float>(const float*, int64_t);
template double l2_norm<double>(const double*, int64_t);

}  // namespace fedsilo::kernels
