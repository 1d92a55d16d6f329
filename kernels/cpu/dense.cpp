// Dense layer on OpenBLAS. FLOPs per sample: forward 2*in*out, backward 2*in*out for dW plus
// 2*in*out for dX when it is needed. For 784->200 at batch 32 each GEMM is 10 MFLOP; OpenBLAS
// 0.3.21 with its Prescott kernels (what it picks on this Xeon) runs these at ~22-28 GFLOP/s
// on one core.
#include "kernels/cpu/dense.h"

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/bias.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/relu.h"

namespace fedsilo::kernels {

template <typename T>
void dense_forward(const DenseShape& s, const T* x, const T* w, const T* b, bool relu, T* y) {
  if (s.batch <= 0) return;
  gemm<T>(false, true, s.batch, s.out, s.in, T{1}, x, s.in, w, s.in, T{0}, y, s.out);
  bias_act_rows<T>(y, b, s.batch, s.out, relu);
}

template <typename T>
void dense_backward(const DenseShape& s, const T* x, const T* w, const T* y, bool relu, T* dy,
                    T* dx, T* dw, T* db) {
  if (s.batch <= 0) {
    std::fill(dw, dw + static_cast<int64_t>(s.out) * s.in, T{0});
    std::fill(db, db + s.out, T{0});
    return;
  }
  if (relu) relu_backward<T>(y, dy, dy, static_cast<int64_t>(s.batch) * s.out);
  bias_grad_rows<T>(dy, s.batch, s.out, db);
  // dW[out x in] = dY^T[out x batch] * X[batch x in]
  gemm<T>(true, false, s.out, s.in, s.batch, T{1}, dy, s.out, x, s.in, T{0}, dw, s.in);
  // dX[batch x in] = dY[batch x out] * W[out x in]
  if (dx != nullptr) {
    gemm<T>(false, false, s.batch, s.in, s.out, T{1}, dy, s.out, w, s.in, T{0}, dx, s.in);
  }
}

template void dense_forward<float>(const DenseShape&, const float*, const float*, const float*,
                                   bool, float*);
template void dense_forward<double>(const DenseShape&, const double*, const double*, const double*,
                                    bool, double*);
template void dense_backward<float>(const DenseShape&, const float*, const float*, const float*,
                                    bool, float*, float*, float*, float*);
template void dense_backward<double>(const DenseShape&, const double*, const double*, const double*,
                                     bool, double*, double*, double*, double*);

}  // namespace fedsilo::kernels
