// SGD optimizer: the update itself is kernels::sgd_update, run over per-thread slices.
#include "optim/sgd.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/sgd.h"
#include "kernels/cpu/thread_team.h"

namespace fedsilo::optim {

namespace {
// Below this many parameters a second thread costs more (fork/join, ~2-5 us) than the
// memory-bound update saves (16K floats x 20 bytes = 0.3 MB, ~15 us on one core).
constexpr int64_t kMinParallel = 16384;
}  // namespace

Sgd::Sgd(int64_t num_params, const SgdOptions& opts)
    : opts_(opts), buf_(opts.momentum != 0.0f ? static_cast<size_t>(num_params) : 0) {}

namespace {
// w -= lr * c over a slice; false where a result is not finite.
bool apply_correction(float* w, const float* c, int64_t n, float lr) {
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    w[i] -= lr * c[i];
    finite &= std::isfinite(w[i]);
  }
  return finite;
}
}  // namespace

bool Sgd::step(std::span<float> params, std::span<const float> grads, std::span<const float> global,
               kernels::ThreadTeam* team, std::span<const float> correction) {
  const auto n = static_cast<int64_t>(params.size());
  const kernels::SgdHyper<float> h{opts_.lr, opts_.momentum, opts_.weight_decay, opts_.prox_mu};
  const bool use_global = opts_.prox_mu != 0.0f && static_cast<int64_t>(global.size()) == n;
  const float* wg = use_global ? global.data() : nullptr;
  float* buf = buf_.empty() ? nullptr : buf_.data();
  const bool first = first_step_;
  first_step_ = false;
  const float* corr = static_cast<int64_t>(correction.size()) == n ? correction.data() : nullptr;
  // One slice: the update, then its correction while the slice is in cache.
  const auto slice = [&](int64_t lo, int64_t len) {
    bool ok = kernels::sgd_update<float>(params.data() + lo, grads.data() + lo,
                                         buf != nullptr ? buf + lo : nullptr,
                                         wg != nullptr ? wg + lo : nullptr, len, h, first);
    if (corr != nullptr) ok &= apply_correction(params.data() + lo, corr + lo, len, opts_.lr);
    return ok;
  };
  const int t = team != nullptr && n >= kMinParallel ? team->size() : 1;
  if (t == 1) return slice(0, n);
  const int64_t per = ((n + t - 1) / t + 15) / 16 * 16;  // whole cache lines per thread
  std::vector<char> ok(static_cast<size_t>(t), 1);
  team->run([&](int i) {
    const int64_t lo = std::min(n, i * per), len = std::min(n, lo + per) - lo;
    ok[static_cast<size_t>(i)] = slice(lo, len);
  });
  return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
}

}  // namespace fedsilo::optim
