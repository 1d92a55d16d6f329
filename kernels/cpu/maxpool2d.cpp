// 2x2/2 max pooling. Work per sample is tiny next to the convolutions around it
// (conv1 output 6x24x24 = 3456 inputs -> 864 outputs, ~4 compares each), so the loops are
// written branch-free over output columns and left to the compiler.
#include "kernels/cpu/maxpool2d.h"

#include <algorithm>

namespace fedsilo::kernels {

template <typename T>
void maxpool2x2_forward(const Pool2dShape& s, const T* x, T* y, uint8_t* argmax) {
  const int oh = s.out_h(), ow = s.out_w();
  const int64_t planes = static_cast<int64_t>(s.batch) * s.c;
  for (int64_t p = 0; p < planes; ++p) {
    const T* in = x + p * s.h * s.w;
    T* out = y + p * oh * ow;
    uint8_t* am = argmax + p * oh * ow;
    for (int i = 0; i < oh; ++i) {
      const T* r0 = in + static_cast<int64_t>(2 * i) * s.w;
      const T* r1 = r0 + s.w;
      for (int j = 0; j < ow; ++j) {
        const T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];
        // Strict '>' keeps the first maximum in window order (a, b, c, d).
        T m = a;
        uint8_t k = 0;
        k = b > m ? 1 : k;
        m = b > m ? b : m;
        k = c > m ? 2 : k;
        m = c > m ? c : m;
        k = d > m ? 3 : k;
        m = d > m ? d : m;
        out[i * ow + j] = m;
        am[i * ow + j] = k;
      }
    }
  }
}

template <typename T>
void maxpool2x2_backward(const Pool2dShape& s, const T* dy, const uint8_t* argmax, T* dx) {
  const int oh = s.out_h(), ow = s.out_w();
  const int64_t planes = static_cast<int64_t>(s.batch) * s.c;
  std::fill(dx, dx + planes * s.h * s.w, T{0});
  for (int64_t p = 0; p < planes; ++p) {
    T* out = dx + p * s.h * s.w;
    const T* g = dy + p * oh * ow;
    const uint8_t* am = argmax + p * oh * ow;
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        const int k = am[i * ow + j];
        out[static_cast<int64_t>(2 * i + (k >> 1)) * s.w + 2 * j + (k & 1)] = g[i * ow + j];
      }
    }
  }
}

template void maxpool2x2_forward<float>(const Pool2dShape&, const float*, float*, uint8_t*);
template void maxpool2x2_forward<double>(const Pool2dShape&, const double*, double*, uint8_t*);
template void maxpool2x2_backward<float>(const Pool2dShape&, const float*, const uint8_t*,
                                         float*);
template void maxpool2x2_backward<double>(const Pool2dShape&, const double*, const uint8_t*,
                                          double*);

}  // namespace fedsilo::kernels
