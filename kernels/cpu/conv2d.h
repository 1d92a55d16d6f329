// 2-D convolution over NCHW, stride 1, no padding (PyTorch Conv2d(in, out, k)), with the bias
// and an optional ReLU fused into the forward pass, and its backward pass.
//
// Two implementations with one signature: `*_ref` (plain loops, any T: the reference the
// tests check against, and the double instantiation the gradient checks use) and the default
// entry points, which for float on AVX-512 run the direct "wide row" kernels in conv2d.cpp and
// otherwise fall back to the reference.
#pragma once

#include <cstdint>

#include "kernels/params/conv2d.h"

namespace fedsilo::kernels {

/// Bytes of scratch memory conv2d_forward / conv2d_backward need for `s` (per call; it does
/// not grow with s.batch). 64-byte alignment is best; any alignment is correct.
int64_t conv2d_scratch_bytes(const Conv2dShape& s);

/// y[n][o][i][j] = act(b[o] + sum_{c,p,q} w[o][c][p][q] * x[n][c][i+p][j+q]),
/// w in PyTorch's [out_c, in_c, k, k] layout; act = ReLU when `relu`.
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, bool relu, T* y,
                    void* scratch);

/// Backward of conv2d_forward. `y` is the forward output (read only when `relu`: the gradient
/// passes where y > 0). Overwrites dw [out_c, in_c, k, k] and db [out_c]; writes dx (same shape
/// as x) only when dx != nullptr. Sums over the batch run in sample order: deterministic.
template <typename T>
void conv2d_backward(const Conv2dShape& s, const T* x, const T* w, const T* y, bool relu,
                     const T* dy, T* dx, T* dw, T* db, void* scratch);

/// Reference versions: direct loops, no scratch.
template <typename T>
void conv2d_forward_ref(const Conv2dShape& s, const T* x, const T* w, const T* b, bool relu, T* y);
template <typename T>
void conv2d_backward_ref(const Conv2dShape& s, const T* x, const T* w, const T* y, bool relu,
                         const T* dy, T* dx, T* dw, T* db);

// The entry points are specialised (fast float path, reference double) in conv2d.cpp.
template <>
void conv2d_forward<float>(const Conv2dShape&, const float*, const float*, const float*, bool,
                           float*, void*);
template <>
void conv2d_forward<double>(const Conv2dShape&, const double*, const double*, const double*, bool,
                            double*, void*);
template <>
void conv2d_backward<float>(const Conv2dShape&, const float*, const float*, const float*, bool,
                            const float*, float*, float*, float*, void*);
template <>
void conv2d_backward<double>(const Conv2dShape&, const double*, const double*, const double*, bool,
                             const double*, double*, double*, double*, void*);

/// True when the float entry points use the AVX-512 kernels (built with -mavx512f).
bool conv2d_has_fast_path();

}  // namespace fedsilo::kernels
