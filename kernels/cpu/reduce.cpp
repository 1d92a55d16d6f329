// Elementwise accumulation; a streaming loop the compiler vectorises (memory-bound: 12 bytes
// moved per float added).
#include "kernels/cpu/reduce.h"

namespace fedsilo::kernels {

template <typename T>
void add_into(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

template void add_into<float>(float*, const float*, int64_t);
template void add_into<double>(double*, const double*, int64_t);

}  // namespace fedsilo::kernels
