// ReLU kernels: branch-free selects the compiler turns into masked vector ops.
#include "kernels/cpu/relu.h"

#include <algorithm>

namespace fedsilo::kernels {

template <typename T>
void relu_forward(const T* x, T* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::max(x[i], T{0});
}

template <typename T>
void relu_backward(const T* y, const T* dy, T* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = y[i] > T{0} ? dy[i] : T{0};
}

template void relu_forward<float>(const float*, float*, int64_t);
template void relu_forward<double>(const double*, double*, int64_t);
template void relu_backward<float>(const float*, const float*, float*, int64_t);
template void relu_backward<double>(const double*, const double*, double*, int64_t);

}  // namespace fedsilo::kernels
