// The shape of a 2x2, stride-2 max pooling over NCHW, shared by the CPU kernels
// (kernels/cpu/maxpool2d.h) and their CUDA twins (kernels/cuda/maxpool2d.h). Plain C++17: nvcc
// compiles it too.
#pragma once

namespace fedsilo::kernels {

struct Pool2dShape {
  int batch = 0;
  int c = 0;
  int h = 0;
  int w = 0;
  [[nodiscard]] int out_h() const { return h / 2; }  // an odd trailing row is dropped
  [[nodiscard]] int out_w() const { return w / 2; }
};

}  // namespace fedsilo::kernels
