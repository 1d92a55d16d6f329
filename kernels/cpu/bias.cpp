// Bias add (+ReLU) and bias gradient over row-major matrices. Inner loops run over contiguous
// columns, so -O3 -march=native vectorises them (16 floats per AVX-512 op).
#include "kernels/cpu/bias.h"

#include <algorithm>

namespace fedsilo::kernels {

template <typename T>
void bias_act_rows(T* y, const T* b, int rows, int cols, bool relu) {
  for (int i = 0; i < rows; ++i) {
    T* row = y + static_cast<long>(i) * cols;
    if (relu) {
      for (int j = 0; j < cols; ++j) row[j] = std::max(row[j] + b[j], T{0});
    } else {
      for (int j = 0; j < cols; ++j) row[j] += b[j];
    }
  }
}

template <typename T>
void bias_grad_rows(const T* dy, int rows, int cols, T* db) {
  std::fill(db, db + cols, T{0});
  for (int i = 0; i < rows; ++i) {
    const T* row = dy + static_cast<long>(i) * cols;
    for (int j = 0; j < cols; ++j) db[j] += row[j];
  }
}

template void bias_act_rows<float>(float*, const float*, int, int, bool);
template void bias_act_rows<double>(double*, const double*, int, int, bool);
template void bias_grad_rows<float>(const float*, int, int, float*);
template void bias_grad_rows<double>(const double*, int, int, double*);

}  // namespace fedsilo::kernels
