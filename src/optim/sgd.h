// SGD with momentum, weight decay and the FedProx proximal term, over a flat parameter buffer
// (PyTorch torch.optim.SGD semantics; the proximal gradient mu * (w - w_global) is added
// before momentum, as in the FedProx reference implementation).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace fedsilo::kernels {
class ThreadTeam;
}  // namespace fedsilo::kernels

namespace fedsilo::optim {

struct SgdOptions {
  float lr = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  float prox_mu = 0.0f;
};

class Sgd {
 public:
  /// A fresh optimizer: the momentum buffer starts empty (the first step sets it to the
  /// gradient), as every train_local call does.
  Sgd(int64_t num_params, const SgdOptions& opts);

  /// params -= lr * (momentum buffer), with g = grads + weight_decay * params
  ///                                         + prox_mu * (params - global),
  /// then params -= lr * correction where `correction` is given (SCAFFOLD's c - c_s, outside
  /// the momentum, in the same pass over each thread's slice).
  /// `global` is read only when prox_mu != 0 (may be empty otherwise). Runs on `team` when
  /// given (the model workspace's threads), else on the caller. Elementwise, so the result
  /// does not depend on the team. Returns false when a parameter is not finite after the update.
  [[nodiscard]] bool step(std::span<float> params, std::span<const float> grads,
                          std::span<const float> global, kernels::ThreadTeam* team = nullptr,
                          std::span<const float> correction = {});

  /// Forgets the momentum buffer.
  void reset() { first_step_ = true; }
  [[nodiscard]] const SgdOptions& options() const { return opts_; }

 private:
  SgdOptions opts_;
  std::vector<float> buf_;
  bool first_step_ = true;
};

}  // namespace fedsilo::optim
