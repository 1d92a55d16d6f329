// Direct convolution kernels. The fast float path (AVX-512) uses the "wide row" layout:
//
// With the input plane stored row-major with width W, output (i, j) of a valid k x k
// correlation reads x[(i+p)*W + (j+q)]. Index outputs by P = i*W + j over *all* j in [0, W)
// (the k-1 columns j >= W-k+1 are garbage and dropped later): then
//     out[P] = sum_{c,p,q} w[c][p][q] * x_c[P + p*W + q],
// a 1-D correlation over one contiguous index, so 16 consecutive outputs are one unaligned
// vector load per tap with no gathers. Cost: W/(W-k+1) more work (28/24 = 1.17 for conv1 of
// the NIID CNN, 12/8 = 1.5 for conv2), in exchange for full-width FMAs.
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
//   zeros, with tap offsets lead - p*W - q and the weights transposed to [c][o][p][q].
//   Every one of the H*W outputs is real: conv2's dX (16->6 taps 400, 144 outputs = 9 vectors)
//   costs 6 * 400 * 9 = 21,600 FMAs/sample for 153,600 useful MACs.
#include "kernels/cpu/conv2d.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#if defined(__AVX512F__)
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

constexpr int kLanes = 16;   // floats per AVX-512 vector
constexpr int kMaxAcc = 24;  // accumulators per block; the other 8 zmm hold operands
constexpr int kMaxRows = 6;  // output channels per block
constexpr int kMaxCols = 6;  // vectors (or taps, for dW) per block
constexpr int64_t kAlign = 64;

int64_t round_up(int64_t v, int64_t m) {
  return (v + m - 1) / m * m;
}
int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// Sizes of the wide layout for one shape (see the top of the file).
struct WideGeom {
  int oh = 0, ow = 0;
  int taps = 0;          // in_c * k * k: forward and dW taps
  int taps_dx = 0;       // out_c * k * k: dX taps
  int nv_out = 0;        // vectors covering the oh*W wide outputs
  int nv_dx = 0;         // vectors covering the H*W input-gradient outputs
  int lead = 0;          // zeros before dy in its padded plane: (k-1)*W + k-1
  int64_t plane_x = 0;   // stride of one padded input plane
  int64_t plane_dy = 0;  // stride of one padded dy plane

  explicit WideGeom(const Conv2dShape& s) {
    oh = s.out_h();
    ow = s.out_w();
    taps = s.in_c * s.k * s.k;
    taps_dx = s.out_c * s.k * s.k;
    const int64_t hw = int64_t{s.in_h} * s.in_w;
    nv_out = static_cast<int>(ceil_div(int64_t{oh} * s.in_w, kLanes));
    nv_dx = static_cast<int>(ceil_div(hw, kLanes));
    lead = (s.k - 1) * s.in_w + (s.k - 1);
    // Forward reads x[c*plane + off + P] for P < nv_out*16, off <= lead.
    plane_x = round_up(std::max<int64_t>(hw, int64_t{nv_out} * kLanes + lead), kLanes);
    // dW reads dy[lead + P], P < nv_out*16; dX reads dy[lead - off' + Q], Q < nv_dx*16.
    plane_dy = round_up(lead + int64_t{std::max(nv_out, nv_dx)} * kLanes, kLanes);
  }
};

// Scratch regions, carved from one block in this order, each 64-byte aligned.
struct ScratchLayout {
  int64_t off_fwd = 0, off_dx = 0, xpad = 0, wide = 0, dypad = 0, wt = 0, dwacc = 0, dbacc = 0;
  int64_t total = 0;

  explicit ScratchLayout(const Conv2dShape& s) {
    const WideGeom g(s);
    int64_t at = 0;
    auto take = [&](int64_t bytes) {
      const int64_t here = at;
      at += round_up(bytes, kAlign);
      return here;
    };
    off_fwd = take(int64_t{g.taps} * 4);
    off_dx = take(int64_t{g.taps_dx} * 4);
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
  return ScratchLayout(s).total;
}

#if defined(__AVX512F__)

bool conv2d_has_fast_path() {
  return true;
}

namespace {

// out[o*ldo + v*16 + l] = bias[o] + sum_t w[o*ldw + t] * in[off[t] + v*16 + l]
// for o < OB, v < PB: one register block of the wide correlation.
template <int OB, int PB>
void corr_block(const float* in, const int32_t* off, int taps, const float* w, int64_t ldw,
                const float* bias, float* out, int64_t ldo) {
  __m512 acc[OB][PB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
    const __m512 b0 = bias != nullptr ? _mm512_set1_ps(bias[o]) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) acc[o][v] = b0;
  }
  for (int t = 0; t < taps; ++t) {
    const float* src = in + off[t];
    __m512 xv[PB];
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) xv[v] = _mm512_loadu_ps(src + v * kLanes);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const __m512 wv = _mm512_set1_ps(w[o * ldw + t]);
#pragma GCC unroll 8
      for (int v = 0; v < PB; ++v) acc[o][v] = _mm512_fmadd_ps(wv, xv[v], acc[o][v]);
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) _mm512_storeu_ps(out + o * ldo + v * kLanes, acc[o][v]);
  }
}

// acc[o*ld_acc + j*16 + l] += sum_{v<nv} dy[o*ldd + v*16 + l] * x[off[j] + v*16 + l]
// for o < OB, j < TB: 16-lane partial sums of dW for OB channels x TB taps.
template <int OB, int TB>
void dw_block(const float* x, const int32_t* off, const float* dy, int64_t ldd, int nv,
              float* acc_mem, int64_t ld_acc) {
  __m512 acc[OB][TB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) acc[o][j] = _mm512_loadu_ps(acc_mem + o * ld_acc + j * kLanes);
  }
  for (int v = 0; v < nv; ++v) {
    __m512 xv[TB];
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) xv[j] = _mm512_loadu_ps(x + off[j] + v * kLanes);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const __m512 d = _mm512_loadu_ps(dy + o * ldd + v * kLanes);
#pragma GCC unroll 8
      for (int j = 0; j < TB; ++j) acc[o][j] = _mm512_fmadd_ps(d, xv[j], acc[o][j]);
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) _mm512_storeu_ps(acc_mem + o * ld_acc + j * kLanes, acc[o][j]);
  }
}

using CorrFn = void (*)(const float*, const int32_t*, int, const float*, int64_t, const float*,
                        float*, int64_t);
using DwFn = void (*)(const float*, const int32_t*, const float*, int64_t, int, float*, int64_t);

template <int OB, int... C>
constexpr std::array<CorrFn, kMaxCols + 1> corr_row(std::integer_sequence<int, C...>) {
  return {nullptr, &corr_block<OB, C + 1>...};
}
template <int OB, int... C>
constexpr std::array<DwFn, kMaxCols + 1> dw_row(std::integer_sequence<int, C...>) {
  return {nullptr, &dw_block<OB, C + 1>...};
}
template <int... R>
constexpr std::array<std::array<CorrFn, kMaxCols + 1>, kMaxRows + 1> corr_table(
    std::integer_sequence<int, R...>) {
  return {std::array<CorrFn, kMaxCols + 1>{},
          corr_row<R + 1>(std::make_integer_sequence<int, kMaxCols>{})...};
}
template <int... R>
constexpr std::array<std::array<DwFn, kMaxCols + 1>, kMaxRows + 1> dw_table(
    std::integer_sequence<int, R...>) {
  return {std::array<DwFn, kMaxCols + 1>{},
          dw_row<R + 1>(std::make_integer_sequence<int, kMaxCols>{})...};
}

constexpr auto kCorr = corr_table(std::make_integer_sequence<int, kMaxRows>{});
constexpr auto kDw = dw_table(std::make_integer_sequence<int, kMaxRows>{});

// Rows per block: 6 when that divides the channel count and 4 does not (conv1's 6 outputs),
// else 4. Columns: as many as fit in kMaxAcc accumulators, split evenly (42 vectors at most 4
// per block -> 11 blocks of 4,4,...,2 rather than 10 of 4 and one of 2).
int main_rows(int rows) {
  return rows % 6 == 0 && rows % 4 != 0 ? 6 : 4;
}
int even_cols(int total, int max_cols) {
  const int blocks = static_cast<int>(ceil_div(total, max_cols));
  return static_cast<int>(ceil_div(total, blocks));
}

// out[o][P] = bias[o] + sum_t w[o][t] * in[off[t] + P] for o < rows, P < nv*16.
void wide_corr(const float* in, const int32_t* off, int taps, const float* w, int rows,
               const float* bias, int nv, float* out, int64_t ldo) {
  const int rmain = main_rows(rows);
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int pb_even = even_cols(nv, std::min(kMaxCols, kMaxAcc / ob));
    for (int v0 = 0; v0 < nv;) {
      const int pb = std::min(pb_even, nv - v0);
      kCorr[ob][pb](in + int64_t{v0} * kLanes, off, taps, w + int64_t{o0} * taps, taps,
                    bias != nullptr ? bias + o0 : nullptr, out + o0 * ldo + v0 * kLanes, ldo);
      v0 += pb;
    }
    o0 += ob;
  }
}

// acc[o][t][:] += sum_P dy[o*ldd + P] * x[off[t] + P], P in 16-lane vectors, v < nv.
void wide_dw(const float* x, const int32_t* off, int taps, const float* dy, int64_t ldd, int rows,
             int nv, float* acc) {
  const int rmain = main_rows(rows);
  const int64_t ld_acc = int64_t{taps} * kLanes;
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int tb_even = even_cols(taps, std::min(kMaxCols, kMaxAcc / ob));
    for (int t0 = 0; t0 < taps;) {
      const int tb = std::min(tb_even, taps - t0);
      kDw[ob][tb](x, off + t0, dy + o0 * ldd, ldd, nv, acc + o0 * ld_acc + int64_t{t0} * kLanes,
                  ld_acc);
      t0 += tb;
    }
    o0 += ob;
  }
}

struct Carved {
  int32_t* off_fwd;
  int32_t* off_dx;
  float* xpad;
  float* wide;
  float* dypad;
  float* wt;
  float* dwacc;
  float* dbacc;
};

// Sum of the 16 lanes of a vector, left to right (fixed order; runs once per weight per call).
float lane_sum(const float* v) {
  float s = 0.0f;
  for (int l = 0; l < kLanes; ++l) s += v[l];
  return s;
}

Carved carve(const Conv2dShape& s, void* scratch) {
  const ScratchLayout l(s);
  auto base = reinterpret_cast<uintptr_t>(scratch);
  base = (base + kAlign - 1) / kAlign * kAlign;
  auto* p = reinterpret_cast<unsigned char*>(base);
  return {reinterpret_cast<int32_t*>(p + l.off_fwd), reinterpret_cast<int32_t*>(p + l.off_dx),
          reinterpret_cast<float*>(p + l.xpad),      reinterpret_cast<float*>(p + l.wide),
          reinterpret_cast<float*>(p + l.dypad),     reinterpret_cast<float*>(p + l.wt),
          reinterpret_cast<float*>(p + l.dwacc),     reinterpret_cast<float*>(p + l.dbacc)};
}

// Tap t = (c, p, q) of the forward / dW correlation reads the padded input at c*plane + p*W + q.
void fill_fwd_offsets(const Conv2dShape& s, const WideGeom& g, int32_t* off) {
  int t = 0;
  for (int c = 0; c < s.in_c; ++c) {
    for (int p = 0; p < s.k; ++p) {
      for (int q = 0; q < s.k; ++q) off[t++] = static_cast<int32_t>(c * g.plane_x + p * s.in_w + q);
    }
  }
}

// Copies sample n's input planes into the padded layout (zeros after each plane's H*W values).
void pad_input(const Conv2dShape& s, const WideGeom& g, const float* xn, float* xpad) {
  const int64_t hw = int64_t{s.in_h} * s.in_w;
  for (int c = 0; c < s.in_c; ++c) {
    float* dst = xpad + c * g.plane_x;
    std::memcpy(dst, xn + c * hw, static_cast<size_t>(hw) * sizeof(float));
    std::memset(dst + hw, 0, static_cast<size_t>(g.plane_x - hw) * sizeof(float));
  }
}

}  // namespace

template <>
void conv2d_forward<float>(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           bool relu, float* y, void* scratch) {
  const WideGeom g(s);
  const Carved m = carve(s, scratch);
  fill_fwd_offsets(s, g, m.off_fwd);
  const int64_t hw = int64_t{s.in_h} * s.in_w, ohw = int64_t{g.oh} * g.ow;
  const int64_t ldo = int64_t{g.nv_out} * kLanes;
  for (int n = 0; n < s.batch; ++n) {
    pad_input(s, g, x + n * s.in_c * hw, m.xpad);
    wide_corr(m.xpad, m.off_fwd, g.taps, w, s.out_c, b, g.nv_out, m.wide, ldo);
    // Drop the k-1 garbage columns of each wide row; apply the ReLU on the way.
    float* yn = y + int64_t{n} * s.out_c * ohw;
    for (int o = 0; o < s.out_c; ++o) {
      for (int i = 0; i < g.oh; ++i) {
        const float* src = m.wide + o * ldo + int64_t{i} * s.in_w;
        float* dst = yn + o * ohw + int64_t{i} * g.ow;
        if (relu) {
          for (int j = 0; j < g.ow; ++j) dst[j] = std::max(src[j], 0.0f);
        } else {
          std::memcpy(dst, src, static_cast<size_t>(g.ow) * sizeof(float));
        }
      }
    }
  }
}

template <>
void conv2d_backward<float>(const Conv2dShape& s, const float* x, const float* w, const float* y,
                            bool relu, const float* dy, float* dx, float* dw, float* db,
                            void* scratch) {
  const WideGeom g(s);
  const Carved m = carve(s, scratch);
  const int kk = s.k * s.k;
  const int64_t hw = int64_t{s.in_h} * s.in_w, ohw = int64_t{g.oh} * g.ow;
  fill_fwd_offsets(s, g, m.off_fwd);
  if (dx != nullptr) {
    // dX tap t' = (o, p, q) reads dy at o*plane_dy + lead - p*W - q, weight w[o][c][p][q].
    int t = 0;
    for (int o = 0; o < s.out_c; ++o) {
      for (int p = 0; p < s.k; ++p) {
        for (int q = 0; q < s.k; ++q) {
          m.off_dx[t++] = static_cast<int32_t>(o * g.plane_dy + g.lead - p * s.in_w - q);
        }
      }
    }
    for (int c = 0; c < s.in_c; ++c) {
      for (int o = 0; o < s.out_c; ++o) {
        std::memcpy(m.wt + int64_t{c} * g.taps_dx + o * kk, w + (int64_t{o} * s.in_c + c) * kk,
                    static_cast<size_t>(kk) * sizeof(float));
      }
    }
  }
  std::memset(m.dwacc, 0, static_cast<size_t>(s.out_c) * g.taps * kLanes * sizeof(float));
  std::memset(m.dbacc, 0, static_cast<size_t>(s.out_c) * kLanes * sizeof(float));
  const bool dx_direct = hw % kLanes == 0;  // dX rows land straight in dx, no copy
  const int64_t ld_wide_dx = int64_t{g.nv_dx} * kLanes;

  for (int n = 0; n < s.batch; ++n) {
    pad_input(s, g, x + n * s.in_c * hw, m.xpad);
    // dy (masked by the ReLU) into the zero-padded wide layout.
    std::memset(m.dypad, 0, static_cast<size_t>(s.out_c * g.plane_dy) * sizeof(float));
    const float* dyn = dy + int64_t{n} * s.out_c * ohw;
    const float* yn = y != nullptr ? y + int64_t{n} * s.out_c * ohw : nullptr;
    for (int o = 0; o < s.out_c; ++o) {
      float* dst = m.dypad + o * g.plane_dy + g.lead;
      for (int i = 0; i < g.oh; ++i) {
        const float* gi = dyn + o * ohw + int64_t{i} * g.ow;
        float* di = dst + int64_t{i} * s.in_w;
        if (relu) {
          const float* yi = yn + o * ohw + int64_t{i} * g.ow;
          for (int j = 0; j < g.ow; ++j) di[j] = yi[j] > 0.0f ? gi[j] : 0.0f;
        } else {
          std::memcpy(di, gi, static_cast<size_t>(g.ow) * sizeof(float));
        }
      }
      // db: 16-lane partial sums over the wide plane (zeros where there is no output).
      __m512 acc = _mm512_loadu_ps(m.dbacc + o * kLanes);
      for (int v = 0; v < g.nv_out; ++v)
        acc = _mm512_add_ps(acc, _mm512_loadu_ps(dst + v * kLanes));
      _mm512_storeu_ps(m.dbacc + o * kLanes, acc);
    }
    wide_dw(m.xpad, m.off_fwd, g.taps, m.dypad + g.lead, g.plane_dy, s.out_c, g.nv_out, m.dwacc);
    if (dx != nullptr) {
      float* dxn = dx + int64_t{n} * s.in_c * hw;
      if (dx_direct) {
        wide_corr(m.dypad, m.off_dx, g.taps_dx, m.wt, s.in_c, nullptr, g.nv_dx, dxn, hw);
      } else {
        wide_corr(m.dypad, m.off_dx, g.taps_dx, m.wt, s.in_c, nullptr, g.nv_dx, m.wide, ld_wide_dx);
        for (int c = 0; c < s.in_c; ++c) {
          std::memcpy(dxn + c * hw, m.wide + c * ld_wide_dx,
                      static_cast<size_t>(hw) * sizeof(float));
        }
      }
    }
  }
  // One fixed-order lane reduction per weight.
  for (int64_t i = 0; i < int64_t{s.out_c} * g.taps; ++i) {
    dw[i] = lane_sum(m.dwacc + i * kLanes);
  }
  for (int o = 0; o < s.out_c; ++o) db[o] = lane_sum(m.dbacc + o * kLanes);
}

#else  // no AVX-512: the reference loops serve float too

bool conv2d_has_fast_path() {
  return false;
}

template <>
void conv2d_forward<float>(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           bool relu, float* y, void*) {
  conv2d_forward_ref<float>(s, x, w, b, relu, y);
}

template <>
void conv2d_backward<float>(const Conv2dShape& s, const float* x, const float* w, const float* y,
                            bool relu, const float* dy, float* dx, float* dw, float* db, void*) {
  conv2d_backward_ref<float>(s, x, w, y, relu, dy, dx, dw, db);
}

#endif

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
