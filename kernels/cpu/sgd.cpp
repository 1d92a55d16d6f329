// SGD update: one streaming pass, 4-6 arrays of n floats (w, g, buf, w_global in; w, buf out):
// for the 199,210-parameter MLP that is ~4.8 MB a step, ~0.1 ms at L2/L3 bandwidth, so the
// loop is written to vectorise and to carry the finiteness check for free.
#include "kernels/cpu/sgd.h"

#include <cmath>
#include <limits>

namespace fedsilo::kernels {

template <typename T>
bool sgd_update(T* w, const T* g, T* buf, const T* w_global, int64_t n, const SgdHyper<T>& h,
                bool first_step) {
  const T lr = h.lr, mom = h.momentum, wd = h.weight_decay, mu = h.prox_mu;
  // |w| <= max is false exactly for inf and NaN; OR-ing the negations is an integer reduction
  // the compiler vectorises (a float sum would need -ffast-math to reassociate).
  constexpr T kMax = std::numeric_limits<T>::max();
  unsigned bad = 0;
  const bool prox = mu != T{0} && w_global != nullptr;
  if (mom == T{0}) {
    for (int64_t i = 0; i < n; ++i) {
      T d = g[i] + wd * w[i];
      if (prox) d += mu * (w[i] - w_global[i]);
      w[i] -= lr * d;
      bad |= static_cast<unsigned>(!(std::abs(w[i]) <= kMax));
    }
  } else if (first_step) {
    for (int64_t i = 0; i < n; ++i) {
      T d = g[i] + wd * w[i];
      if (prox) d += mu * (w[i] - w_global[i]);
      buf[i] = d;
      w[i] -= lr * d;
      bad |= static_cast<unsigned>(!(std::abs(w[i]) <= kMax));
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      T d = g[i] + wd * w[i];
      if (prox) d += mu * (w[i] - w_global[i]);
      const T b = mom * buf[i] + d;
      buf[i] = b;
      w[i] -= lr * b;
      bad |= static_cast<unsigned>(!(std::abs(w[i]) <= kMax));
    }
  }
  return bad == 0;
}

template bool sgd_update<float>(float*, const float*, float*, const float*, int64_t,
                                const SgdHyper<float>&, bool);
template bool sgd_update<double>(double*, const double*, double*, const double*, int64_t,
                                 const SgdHyper<double>&, bool);

}  // namespace fedsilo::kernels
