// The hyperparameters of the SGD update, shared by the CPU kernel (kernels/cpu/sgd.h) and its
// CUDA twin (kernels/cuda/sgd.h). Plain C++17: nvcc compiles it too.
#pragma once

namespace fedsilo::kernels {

template <typename T>
struct SgdHyper {
  T lr = T{0.01};
  T momentum = T{0};
  T weight_decay = T{0};
  T prox_mu = T{0};
};

}  // namespace fedsilo::kernels
