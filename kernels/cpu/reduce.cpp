// Elementwise accumulation; a streaming loop the compiler vectorises (memory-bound: 12 bytes
// moved per float added). The L2 norm sums squares in double, in index order.
#include "kernels/cpu/reduce.h"

#include <cmath>

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

template void add_into<float>(float*, const float*, int64_t);
template void add_into<double>(double*, const double*, int64_t);
template double l2_norm<float>(const float*, int64_t);
template double l2_norm<double>(const double*, int64_t);

}  // namespace fedsilo::kernels
