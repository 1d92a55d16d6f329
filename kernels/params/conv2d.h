// The shape of a 2-D convolution (NCHW, stride 1, no padding), shared by the CPU kernels
// (kernels/cpu/conv2d.h) and their CUDA twins (kernels/cuda/conv2d.h). Plain C++17: nvcc
// compiles it too.
#pragma once

namespace fedsilo::kernels {

struct Conv2dShape {
  int batch = 0;
  int in_c = 0;
  int in_h = 0;
  int in_w = 0;
  int out_c = 0;
  int k = 0;  // square kernel k x k
  [[nodiscard]] int out_h() const { return in_h - k + 1; }
  [[nodiscard]] int out_w() const { return in_w - k + 1; }
};

}  // namespace fedsilo::kernels
