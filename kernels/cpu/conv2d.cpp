// Direct convolution kernels. The fast float paths (AVX-512 and AVX2, chosen at run time) use
// the "wide row" layout:
//
// With the input plane stored row-major with width W, output (i, j) of a valid k x k
// correlation reads x[(i+p)*W + (j+q)]. Index outputs by P = i*W + j over *all* j in [0, W)
// (the k-1 columns j >= W-k+1 are garbage and dropped later): then
//     out[P] = sum_{c,p,q} w[c][p][q] * x_c[P + p*W + q],
// a 1-D correlation over one contiguous index, so 16 consecutive outputs are one unaligned
// vector load per tap with no gathers. Cost: W/(W-k+1) more work (28/24 = 1.17 for conv1 of
// the NIID CNN, 12/8 = 1.5 for conv2), in exchange for full-width FMAs.
//
// Row layout: when an output row is a whole number of vectors (ow a multiple of L, the floats
// per vector), vector v covers row v / (ow/L), columns (v % (ow/L))*L onwards: it starts at
// P = i*W + j, still one unaligned load per tap, and no garbage is computed. Each kernel takes
// the start of every vector from a position table, so one code serves both layouts. With AVX2
// (L = 8) both NIID CNN convolutions use it: conv1 (ow 24) does 72 vectors a channel instead of
// 84, conv2 (ow 8) 8 instead of 12, in the forward and in dW.
//
// Register blocking (32 zmm registers): a block holds OB output channels x PB vectors of
// 16 outputs in OB*PB <= 24 accumulators. Per tap it loads PB input vectors and broadcasts OB
// weights, then issues OB*PB FMAs: at OB=4, PB=6 that is 10 loads per 24 FMAs, so the two FMA
// ports, not the load ports, set the pace.
//   conv1 (1->6, 5x5, 28x28): 6 * 25 taps * 42 vectors = 6300 FMAs/sample (2.7 us at 2 FMA/cyc,
//   2.3 GHz) for 86,400 useful MACs.
//   conv2 (6->16, 5x5, 12x12): 16 * 150 * 6 = 14,400 FMAs/sample for 153,600 useful MACs.
//
// Backward:
//   dW[o][t] = sum_P dyw[o][P] * x[off_t + P] (dyw = dy in the wide layout, garbage columns
//   zeroed): the same streams, reduced over P. Blocks of OB channels x TB taps keep
//   16-lane partial sums in registers; partial sums of all samples accumulate in a scratch
//   array of vectors and are reduced across lanes once at the end.
//   dX[c][Q] = sum_{o,p,q} w[o][c][p][q] * dy[o][(Y-p), (X-q)] (full correlation). In wide
//   coordinates with the *input* width W, dy[(Y-p)*W + (X-q)] with X-q < 0 lands on the k-1
//   garbage columns of the previous row, which are zero; rows above and below land in zero
//   padding. So dX is again a wide correlation, over a dy plane with (k-1)*W + k-1 leading
//   zeros, with tap offsets lead - p*W - q and the weights transposed to [c][p][o][q].
//   A block of outputs only needs the kernel rows p for which dy row Y - p exists for one of
//   its rows Y: the taps are ordered (p, o, q) so that those are one contiguous run, and the
//   others, which would read only zero padding, are skipped (conv2 with AVX2: 33 of 45 row
//   tap runs, 27% fewer FMAs; with AVX-512, 13 of 15).
//   Every one of the H*W outputs is real: conv2's dX (16->6 taps 400, 144 outputs = 9 vectors)
//   costs 6 * 400 * 9 = 21,600 FMAs/sample for 153,600 useful MACs, 18,720 with the skip.
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/cpu/cpu_level.h"
#if FEDSILO_X86
#include <immintrin.h>
#endif

namespace fedsilo::kernels {

// ------------------------------------------------------------------------------ reference

template <typename T>
void conv2d_forward_ref(const Conv2dShape& s, const T* x, const T* w, const T* b, bool relu, T* y) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.k;
  const int64_t in_plane = int64_t{s.in_h} * s.in_w, out_plane = int64_t{oh} * ow;
  for (int n = 0; n < s.batch; ++n) {
    const T* xn = x + n * s.in_c * in_plane;
    for (int o = 0; o < s.out_c; ++o) {
      T* yo = y + (int64_t{n} * s.out_c + o) * out_plane;
      for (int i = 0; i < oh; ++i) {
        for (int j = 0; j < ow; ++j) {
          T acc = b[o];
          for (int c = 0; c < s.in_c; ++c) {
            const T* wc = w + (int64_t{o} * s.in_c + c) * k * k;
            const T* xc = xn + c * in_plane;
            for (int p = 0; p < k; ++p) {
              for (int q = 0; q < k; ++q) acc += wc[p * k + q] * xc[(i + p) * s.in_w + j + q];
            }
          }
          yo[i * ow + j] = relu && !(acc > T{0}) ? T{0} : acc;
        }
      }
    }
  }
}

template <typename T>
void conv2d_backward_ref(const Conv2dShape& s, const T* x, const T* w, const T* y, bool relu,
                         const T* dy, T* dx, T* dw, T* db) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.k;
  const int64_t in_plane = int64_t{s.in_h} * s.in_w, out_plane = int64_t{oh} * ow;
  std::fill(dw, dw + int64_t{s.out_c} * s.in_c * k * k, T{0});
  std::fill(db, db + s.out_c, T{0});
  if (dx != nullptr) std::fill(dx, dx + int64_t{s.batch} * s.in_c * in_plane, T{0});
  for (int n = 0; n < s.batch; ++n) {
    const T* xn = x + n * s.in_c * in_plane;
    for (int o = 0; o < s.out_c; ++o) {
      const int64_t base = (int64_t{n} * s.out_c + o) * out_plane;
      for (int i = 0; i < oh; ++i) {
        for (int j = 0; j < ow; ++j) {
          const int64_t idx = base + i * ow + j;
          const T g = relu && !(y[idx] > T{0}) ? T{0} : dy[idx];
          db[o] += g;
          for (int c = 0; c < s.in_c; ++c) {
            T* dwc = dw + (int64_t{o} * s.in_c + c) * k * k;
            const T* wc = w + (int64_t{o} * s.in_c + c) * k * k;
            const T* xc = xn + c * in_plane;
            T* dxc = dx != nullptr ? dx + (int64_t{n} * s.in_c + c) * in_plane : nullptr;
            for (int p = 0; p < k; ++p) {
              for (int q = 0; q < k; ++q) {
                const int64_t xi = (i + p) * s.in_w + j + q;
                dwc[p * k + q] += g * xc[xi];
                if (dxc != nullptr) dxc[xi] += g * wc[p * k + q];
              }
            }
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------ geometry

namespace {

constexpr int kWidestLanes = 16;   // floats per AVX-512 vector: sizes the scratch for every path
constexpr int kNarrowestLanes = 8;  // floats per AVX2 vector
constexpr int64_t kAlign = 64;

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Sizes of the wide layout for one shape and vector width (see the top of the file).
struct WideGeom {
  int oh = 0, ow = 0;
  int taps = 0;          // in_c * k * k: forward and dW taps
  int taps_dx = 0;       // out_c * k * k: dX taps
  int nv_out = 0;        // vectors covering the oh*W wide outputs
  int vpr = 0;           // row layout: vectors per output row (ow a multiple of L); 0: wide
  int nv_fwd = 0;        // vectors the forward and dW cover: oh*vpr (row layout) or nv_out
  int nv_dx = 0;         // vectors covering the H*W input-gradient outputs
  int lead = 0;          // zeros before dy in its padded plane: (k-1)*W + k-1
  int64_t plane_x = 0;   // stride of one padded input plane
  int64_t plane_dy = 0;  // stride of one padded dy plane

  WideGeom(const Conv2dShape& s, int kLanes) {
    oh = s.out_h();
    ow = s.out_w();
    taps = s.in_c * s.k * s.k;
    taps_dx = s.out_c * s.k * s.k;
    const int64_t hw = int64_t{s.in_h} * s.in_w;
    nv_out = static_cast<int>(ceil_div(int64_t{oh} * s.in_w, kLanes));
    nv_dx = static_cast<int>(ceil_div(hw, kLanes));
    vpr = ow % kLanes == 0 ? ow / kLanes : 0;
    nv_fwd = vpr != 0 ? oh * vpr : nv_out;
    lead = (s.k - 1) * s.in_w + (s.k - 1);
    // Forward reads x[c*plane + off + P] for P < nv_out*16, off <= lead.
    plane_x = round_up(std::max<int64_t>(hw, int64_t{nv_out} * kLanes + lead), kLanes);
    // dW reads dy[lead + P], P < nv_out*16; dX reads dy[lead - off' + Q], Q < nv_dx*16.
    plane_dy = round_up(lead + int64_t{std::max(nv_out, nv_dx)} * kLanes, kLanes);
  }
};

// Scratch regions, carved from one block in this order, each 64-byte aligned. Every size but
// the vector position tables grows with the vector width, and those are sized for the narrowest
// vectors, so the widest path's total holds any narrower one's layout.
struct ScratchLayout {
  int64_t off_fwd = 0, off_dx = 0, pos_fwd = 0, pos_dx = 0, xpad = 0, wide = 0, dypad = 0, wt = 0,
          dwacc = 0, dbacc = 0;
  int64_t total = 0;

  ScratchLayout(const Conv2dShape& s, int kLanes) {
    const WideGeom g(s, kLanes), narrow(s, kNarrowestLanes);
    int64_t at = 0;
    auto take = [&](int64_t bytes) {
      const int64_t here = at;
      at += round_up(bytes, kAlign);
      return here;
    };
    off_fwd = take(int64_t{g.taps} * 4);
    off_dx = take(int64_t{g.taps_dx} * 4);
    pos_fwd = take(int64_t{std::max(narrow.nv_out, narrow.nv_fwd)} * 4);
    pos_dx = take(int64_t{narrow.nv_dx} * 4);
    xpad = take(s.in_c * g.plane_x * 4);
    wide = take(std::max(int64_t{s.out_c} * g.nv_out, int64_t{s.in_c} * g.nv_dx) * kLanes * 4);
    dypad = take(s.out_c * g.plane_dy * 4);
    wt = take(int64_t{s.in_c} * g.taps_dx * 4);
    dwacc = take(int64_t{s.out_c} * g.taps * kLanes * 4);
    dbacc = take(int64_t{s.out_c} * kLanes * 4);
    total = at + kAlign;  // room to align the base pointer
  }
};

}  // namespace

int64_t conv2d_scratch_bytes(const Conv2dShape& s) {
  return ScratchLayout(s, kWidestLanes).total;
}

// ------------------------------------------------------------------------------ fast paths
// One copy of conv2d_wide.inl per instruction set, compiled for that set only (the target
// pragma), and chosen at run time (cpu_level()): a portable build runs the widest path the CPU
// has. Register budgets: AVX-512 has 32 zmm (24 accumulators + 8 operands); AVX2 has 16 ymm
// (12 accumulators, up to 3 input vectors and a broadcast weight: OB = 4 rows x PB = 3 vectors,
// or 6 x 2 for conv1's 6 channels).

#if FEDSILO_X86
namespace avx512 {
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma")
namespace {
struct V {
  using reg = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kMaxAcc = 24;  // accumulators per block; the other 8 zmm hold operands
  static constexpr int kMaxRows = 6;  // output channels per block
  static constexpr int kMaxCols = 6;  // vectors (or taps, for dW) per block
  static reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  static reg set1(float x) { return _mm512_set1_ps(x); }
  static reg zero() { return _mm512_setzero_ps(); }
  static reg fmadd(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  // (the masked form: GCC 12 warns about _mm512_max_ps's undefined pass-through operand)
  static reg max(reg a, reg b) { return _mm512_mask_max_ps(b, __mmask16(0xFFFF), a, b); }
};
using Reg = V::reg;
#include "kernels/cpu/conv2d_wide.inl"
}  // namespace
#pragma GCC pop_options
}  // namespace avx512

namespace avx2 {
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace {
struct V {
  using reg = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kMaxAcc = 12;  // accumulators per block; the other 4 ymm hold operands
  static constexpr int kMaxRows = 6;
  static constexpr int kMaxCols = 6;
  static reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  static reg set1(float x) { return _mm256_set1_ps(x); }
  static reg zero() { return _mm256_setzero_ps(); }
  static reg fmadd(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  static reg max(reg a, reg b) { return _mm256_max_ps(a, b); }
};
using Reg = V::reg;
#include "kernels/cpu/conv2d_wide.inl"
}  // namespace
#pragma GCC pop_options
}  // namespace avx2
#endif  // FEDSILO_X86

bool conv2d_has_fast_path() {
  return cpu_level() != CpuLevel::kGeneric;
}

template <>
void conv2d_forward<float>(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           bool relu, float* y, void* scratch) {
#if FEDSILO_X86
  switch (cpu_level()) {
    case CpuLevel::kAvx512: return avx512::forward(s, x, w, b, relu, y, scratch);
    case CpuLevel::kAvx2: return avx2::forward(s, x, w, b, relu, y, scratch);
    case CpuLevel::kGeneric: break;
  }
#endif
  conv2d_forward_ref<float>(s, x, w, b, relu, y);
}

template <>
void conv2d_backward<float>(const Conv2dShape& s, const float* x, const float* w, const float* y,
                            bool relu, const float* dy, float* dx, float* dw, float* db,
                            void* scratch) {
#if FEDSILO_X86
  switch (cpu_level()) {
    case CpuLevel::kAvx512: return avx512::backward(s, x, w, y, relu, dy, dx, dw, db, scratch);
    case CpuLevel::kAvx2: return avx2::backward(s, x, w, y, relu, dy, dx, dw, db, scratch);
    case CpuLevel::kGeneric: break;
  }
#endif
  conv2d_backward_ref<float>(s, x, w, y, relu, dy, dx, dw, db);
}

template <>
void conv2d_forward<double>(const Conv2dShape& s, const double* x, const double* w, const double* b,
                            bool relu, double* y, void*) {
  conv2d_forward_ref<double>(s, x, w, b, relu, y);
}

template <>
void conv2d_backward<double>(const Conv2dShape& s, const double* x, const double* w,
                             const double* y, bool relu, const double* dy, double* dx, double* dw,
                             double* db, void*) {
  conv2d_backward_ref<double>(s, x, w, y, relu, dy, dx, dw, db);
}

template void conv2d_forward_ref<float>(const Conv2dShape&, const float*, const float*,
                                        const float*, bool, float*);
template void conv2d_forward_ref<double>(const Conv2dShape&, const double*, const double*,
                                         const double*, bool, double*);
template void conv2d_backward_ref<float>(const Conv2dShape&, const float*, const float*,
                                         const float*, bool, const float*, float*, float*, float*);
template void conv2d_backward_ref<double>(const Conv2dShape&, const double*, const double*,
                                          const double*, bool, const double*, double*, double*,
                                          double*);

}  // namespace fedsilo::kernels
