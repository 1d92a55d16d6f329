// The shape of a fully connected layer, shared by the CPU kernels (kernels/cpu/dense.h) and
// their CUDA twins (kernels/cuda/dense.h). Plain C++17: nvcc compiles it too.
#pragma once

namespace fedsilo::kernels {

struct DenseShape {
  int batch = 0;
  int in = 0;
  int out = 0;
};

}  // namespace fedsilo::kernels
