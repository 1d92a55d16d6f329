// Softmax cross-entropy with the max-shift for stability: log sum exp(z - max) never overflows.
// Cost is negligible here (batch x classes = 64 x 10 exps a step), so the code stays scalar.
#include "kernels/cpu/softmax_xent.h"

#include <cmath>

namespace fedsilo::kernels {

template <typename T>
double softmax_xent(const T* logits, const int32_t* labels, int rows, int classes, T scale,
                    T* dlogits) {
  double total = 0.0;
  for (int i = 0; i < rows; ++i) {
    const T* z = logits + static_cast<int64_t>(i) * classes;
    T zmax = z[0];
    for (int c = 1; c < classes; ++c) zmax = z[c] > zmax ? z[c] : zmax;
    T sum = 0;
    for (int c = 0; c < classes; ++c) sum += std::exp(z[c] - zmax);
    const int y = labels[i];
    const T log_sum = std::log(sum);
    // -log softmax[y] = log(sum exp(z - max)) - (z_y - max)
    total += static_cast<double>(log_sum - (z[y] - zmax));
    if (dlogits != nullptr) {
      T* d = dlogits + static_cast<int64_t>(i) * classes;
      const T inv = T{1} / sum;
      for (int c = 0; c < classes; ++c) {
        const T p = std::exp(z[c] - zmax) * inv;
        d[c] = (p - (c == y ? T{1} : T{0})) * scale;
      }
    }
  }
  return total;
}

template <typename T>
void argmax_rows(const T* logits, int rows, int classes, int32_t* out) {
  for (int i = 0; i < rows; ++i) {
    const T* z = logits + static_cast<int64_t>(i) * classes;
    int32_t best = 0;
    bool nan = std::isnan(z[0]);
    for (int c = 1; c < classes; ++c) {
      nan = nan || std::isnan(z[c]);
      if (z[c] > z[best]) best = c;
    }
    out[i] = nan ? -1 : best;
  }
}

template double softmax_xent<float>(const float*, const int32_t*, int, int, float, float*);
template double softmax_xent<double>(const double*, const int32_t*, int, int, double, double*);
template void argmax_rows<float>(const float*, int, int, int32_t*);
template void argmax_rows<double>(const double*, int, int, int32_t*);

}  // namespace fedsilo::kernels
