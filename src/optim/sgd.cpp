// SGD optimizer: the update itself is kernels::sgd_update, run over per-thread slices.
#include "optim/sgd.h"

#include <algorithm>

#include "kernels/cpu/sgd.h"

namespace fedsilo::optim {

namespace {
// Below this many parameters a second thread costs more (fork/join, ~2-5 us) than the
// memory-bound update saves (16K floats x 20 bytes = 0.3 MB, ~15 us on one core).
constexpr int64_t kMinParallel = 16384;
}  // namespace

Sgd::Sgd(int64_t num_params, const SgdOptions& opts)
    : opts_(opts), buf_(opts.momentum != 0.0f ? static_cast<size_t>(num_params) : 0) {}

bool Sgd::step(std::span<float> params, std::span<const float> grads,
               std::span<const float> global, int threads) {
  const auto n = static_cast<int64_t>(params.size());
  const kernels::SgdHyper<float> h{opts_.lr, opts_.momentum, opts_.weight_decay, opts_.prox_mu};
  const bool use_global = opts_.prox_mu != 0.0f && static_cast<int64_t>(global.size()) == n;
  const float* wg = use_global ? global.data() : nullptr;
  float* buf = buf_.empty() ? nullptr : buf_.data();
  const bool first = first_step_;
  first_step_ = false;
  const int t = n >= kMinParallel ? std::max(1, threads) : 1;
  if (t == 1) return kernels::sgd_update<float>(params.data(), grads.data(), buf, wg, n, h, first);
  const int64_t per = (n + t - 1) / t / 16 * 16 + 16;  // whole cache lines per thread
  int bad = 0;
#pragma omp parallel for num_threads(t) schedule(static, 1) reduction(| : bad)
  for (int i = 0; i < t; ++i) {
    const int64_t lo = std::min(n, i * per), len = std::min(n, lo + per) - lo;
    const bool ok = kernels::sgd_update<float>(params.data() + lo, grads.data() + lo,
                                               buf != nullptr ? buf + lo : nullptr,
                                               wg != nullptr ? wg + lo : nullptr, len, h, first);
    bad |= ok ? 0 : 1;
  }
  return bad == 0;
}

}  // namespace fedsilo::optim
