// The wide-row fast path of conv2d.cpp (see the top of that file), written once over a vector
// type V (V::kLanes floats a register, V::kMaxAcc accumulators a register block): conv2d.cpp
// includes it inside one namespace per instruction set, under that set's `#pragma GCC target`,
// with V and Reg = V::reg defined there. Not a header of its own: no includes, no guards.
// Vector v of a plane starts at position pos[v] (v*L in the wide layout; row i, chunk j at
// i*W + j*L in the row layout, see VectorMap).
// out[o*ldo + v*L + l] = bias[o] + sum_t w[o*ldw + t] * in[off[t] + pos[v] + l] (L = V::kLanes)
// for o < OB, v < PB: one register block of the correlation, max(0, .) on the way out if relu.
template <int OB, int PB>
void corr_block(const float* in, const int32_t* pos, const int32_t* off, int taps, const float* w,
                int64_t ldw, const float* bias, bool relu, float* out, int64_t ldo) {
  Reg acc[OB][PB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
    const Reg b0 = bias != nullptr ? V::set1(bias[o]) : V::zero();
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) acc[o][v] = b0;
  }
  const float* base[PB];
#pragma GCC unroll 8
  for (int v = 0; v < PB; ++v) base[v] = in + pos[v];
  for (int t = 0; t < taps; ++t) {
    const int32_t ot = off[t];
    Reg xv[PB];
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) xv[v] = V::load(base[v] + ot);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const Reg wv = V::set1(w[o * ldw + t]);
#pragma GCC unroll 8
      for (int v = 0; v < PB; ++v) acc[o][v] = V::fmadd(wv, xv[v], acc[o][v]);
    }
  }
  const Reg zero = V::zero();
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) {
      V::store(out + o * ldo + v * V::kLanes, relu ? V::max(acc[o][v], zero) : acc[o][v]);
    }
  }
}

// acc[o*ld_acc + j*L + l] += sum_{v<nv} dy[o*ldd + pos[v] + l] * x[off[j] + pos[v] + l]
// (L = V::kLanes) for o < OB, j < TB: lane-wise partial sums of dW for OB channels x TB taps.
template <int OB, int TB>
void dw_block(const float* x, const int32_t* off, const float* dy, int64_t ldd,
              const int32_t* pos, int nv, float* acc_mem, int64_t ld_acc) {
  Reg acc[OB][TB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) acc[o][j] = V::load(acc_mem + o * ld_acc + j * V::kLanes);
  }
  const float* xb[TB];
#pragma GCC unroll 8
  for (int j = 0; j < TB; ++j) xb[j] = x + off[j];
  for (int v = 0; v < nv; ++v) {
    const int32_t pv = pos[v];
    Reg xv[TB];
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) xv[j] = V::load(xb[j] + pv);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const Reg d = V::load(dy + o * ldd + pv);
#pragma GCC unroll 8
      for (int j = 0; j < TB; ++j) acc[o][j] = V::fmadd(d, xv[j], acc[o][j]);
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) V::store(acc_mem + o * ld_acc + j * V::kLanes, acc[o][j]);
  }
}

using CorrFn = void (*)(const float*, const int32_t*, const int32_t*, int, const float*, int64_t,
                        const float*, bool, float*, int64_t);
using DwFn = void (*)(const float*, const int32_t*, const float*, int64_t, const int32_t*, int,
                      float*, int64_t);

template <int OB, int... C>
constexpr std::array<CorrFn, V::kMaxCols + 1> corr_row(std::integer_sequence<int, C...>) {
  return {nullptr, &corr_block<OB, C + 1>...};
}
template <int OB, int... C>
constexpr std::array<DwFn, V::kMaxCols + 1> dw_row(std::integer_sequence<int, C...>) {
  return {nullptr, &dw_block<OB, C + 1>...};
}
template <int... R>
constexpr std::array<std::array<CorrFn, V::kMaxCols + 1>, V::kMaxRows + 1> corr_table(
    std::integer_sequence<int, R...>) {
  return {std::array<CorrFn, V::kMaxCols + 1>{},
          corr_row<R + 1>(std::make_integer_sequence<int, V::kMaxCols>{})...};
}
template <int... R>
constexpr std::array<std::array<DwFn, V::kMaxCols + 1>, V::kMaxRows + 1> dw_table(
    std::integer_sequence<int, R...>) {
  return {std::array<DwFn, V::kMaxCols + 1>{},
          dw_row<R + 1>(std::make_integer_sequence<int, V::kMaxCols>{})...};
}

constexpr auto kCorr = corr_table(std::make_integer_sequence<int, V::kMaxRows>{});
constexpr auto kDw = dw_table(std::make_integer_sequence<int, V::kMaxRows>{});

// Rows per block: 6 when that divides the channel count and 4 does not (conv1's 6 outputs),
// else 4. Columns: as many as fit in V::kMaxAcc accumulators, split evenly (42 vectors at most 4
// per block -> 11 blocks of 4,4,...,2 rather than 10 of 4 and one of 2).
int main_rows(int rows) {
  return rows % 6 == 0 && rows % 4 != 0 ? 6 : 4;
}
int even_cols(int total, int max_cols) {
  const int blocks = static_cast<int>(ceil_div(total, max_cols));
  return static_cast<int>(ceil_div(total, blocks));
}

// Restricts a dX block to the kernel rows that reach it: output row Y of the full correlation
// gets contributions from kernel row p only if dy row Y - p exists (0 <= Y - p < oh); every
// other tap reads zero padding. With the dX taps ordered (p, o, q), the rows p in [lo, hi] of a
// block are one contiguous run of taps: [lo * per_p, (hi + 1) * per_p).
struct TapRows {
  int width = 0;  // input row length W: output Q lies in row Q / W
  int oh = 0;     // rows of dy
  int k = 0;      // kernel rows
  int per_p = 0;  // taps per kernel row (out_c * k)
  int last = 0;   // last real output index (H*W - 1)
};

// out[o][v*L + l] = relu?(bias[o] + sum_t w[o][t] * in[off[t] + pos[v] + l]) for o < rows,
// v < nv (all taps, or only those that reach the block when rows_of_taps is given).
void wide_corr(const float* in, const int32_t* pos, int nv, const int32_t* off, int taps,
               const float* w, int rows, const float* bias, bool relu, float* out, int64_t ldo,
               const TapRows* rows_of_taps) {
  const int rmain = main_rows(rows);
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int pb_even = even_cols(nv, std::min(V::kMaxCols, V::kMaxAcc / ob));
    for (int v0 = 0; v0 < nv;) {
      const int pb = std::min(pb_even, nv - v0);
      int t0 = 0, t1 = taps;
      if (rows_of_taps != nullptr) {
        const TapRows& r = *rows_of_taps;
        const int y_lo = pos[v0] / r.width;
        const int y_hi = std::min(pos[v0 + pb - 1] + V::kLanes - 1, r.last) / r.width;
        t0 = std::max(0, y_lo - (r.oh - 1)) * r.per_p;
        t1 = std::max(t0, (std::min(r.k - 1, y_hi) + 1) * r.per_p);
      }
      kCorr[ob][pb](in, pos + v0, off + t0, t1 - t0, w + int64_t{o0} * taps + t0, taps,
                    bias != nullptr ? bias + o0 : nullptr, relu, out + o0 * ldo + v0 * V::kLanes,
                    ldo);
      v0 += pb;
    }
    o0 += ob;
  }
}

// acc[o][t][:] += sum_v dy[o*ldd + pos[v] + :] * x[off[t] + pos[v] + :] over v < nv.
void wide_dw(const float* x, const int32_t* off, int taps, const float* dy, int64_t ldd, int rows,
             const int32_t* pos, int nv, float* acc) {
  const int rmain = main_rows(rows);
  const int64_t ld_acc = int64_t{taps} * V::kLanes;
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int tb_even = even_cols(taps, std::min(V::kMaxCols, V::kMaxAcc / ob));
    for (int t0 = 0; t0 < taps;) {
      const int tb = std::min(tb_even, taps - t0);
      kDw[ob][tb](x, off + t0, dy + o0 * ldd, ldd, pos, nv,
                  acc + o0 * ld_acc + int64_t{t0} * V::kLanes, ld_acc);
      t0 += tb;
    }
    o0 += ob;
  }
}

struct Carved {
  int32_t* off_fwd;
  int32_t* off_dx;
  int32_t* pos_fwd;
  int32_t* pos_dx;
  float* xpad;
  float* wide;
  float* dypad;
  float* wt;
  float* dwacc;
  float* dbacc;
};

// Sum of the V::kLanes lanes of a vector, left to right (fixed order; runs once per weight per call).
float lane_sum(const float* v) {
  float s = 0.0f;
  for (int l = 0; l < V::kLanes; ++l) s += v[l];
  return s;
}

Carved carve(const Conv2dShape& s, void* scratch) {
  const ScratchLayout l(s, V::kLanes);
  auto base = reinterpret_cast<uintptr_t>(scratch);
  base = (base + kAlign - 1) / kAlign * kAlign;
  auto* p = reinterpret_cast<unsigned char*>(base);
  auto ints = [&](int64_t at) { return reinterpret_cast<int32_t*>(p + at); };
  auto floats = [&](int64_t at) { return reinterpret_cast<float*>(p + at); };
  return {ints(l.off_fwd), ints(l.off_dx),     ints(l.pos_fwd), ints(l.pos_dx),
          floats(l.xpad),  floats(l.wide),     floats(l.dypad), floats(l.wt),
          floats(l.dwacc), floats(l.dbacc)};
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

// Where each forward / dW vector starts in a plane of row length W: v*L in the wide layout; in
// the row layout (g.vpr vectors cover one output row exactly) row v / vpr, chunk v % vpr.
void fill_fwd_positions(const Conv2dShape& s, const WideGeom& g, int32_t* pos) {
  for (int v = 0; v < g.nv_fwd; ++v) {
    pos[v] = g.vpr == 0 ? v * V::kLanes : (v / g.vpr) * s.in_w + (v % g.vpr) * V::kLanes;
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

void forward(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu,
             float* y, void* scratch) {
  const WideGeom g(s, V::kLanes);
  const Carved m = carve(s, scratch);
  fill_fwd_offsets(s, g, m.off_fwd);
  fill_fwd_positions(s, g, m.pos_fwd);
  const int64_t hw = int64_t{s.in_h} * s.in_w, ohw = int64_t{g.oh} * g.ow;
  for (int n = 0; n < s.batch; ++n) {
    pad_input(s, g, x + n * s.in_c * hw, m.xpad);
    float* yn = y + int64_t{n} * s.out_c * ohw;
    if (g.vpr != 0) {  // row layout: vector v is exactly y[v*L, v*L + L) of each channel
      wide_corr(m.xpad, m.pos_fwd, g.nv_fwd, m.off_fwd, g.taps, w, s.out_c, b, relu, yn, ohw,
                nullptr);
      continue;
    }
    const int64_t ldo = int64_t{g.nv_out} * V::kLanes;
    wide_corr(m.xpad, m.pos_fwd, g.nv_fwd, m.off_fwd, g.taps, w, s.out_c, b, relu, m.wide, ldo,
              nullptr);
    // Drop the k-1 garbage columns of each wide row.
    for (int o = 0; o < s.out_c; ++o) {
      for (int i = 0; i < g.oh; ++i) {
        std::memcpy(yn + o * ohw + int64_t{i} * g.ow, m.wide + o * ldo + int64_t{i} * s.in_w,
                    static_cast<size_t>(g.ow) * sizeof(float));
      }
    }
  }
}

void backward(const Conv2dShape& s, const float* x, const float* w, const float* y, bool relu,
              const float* dy, float* dx, float* dw, float* db, void* scratch) {
  const WideGeom g(s, V::kLanes);
  const Carved m = carve(s, scratch);
  const int kk = s.k * s.k;
  const int64_t hw = int64_t{s.in_h} * s.in_w, ohw = int64_t{g.oh} * g.ow;
  fill_fwd_offsets(s, g, m.off_fwd);
  fill_fwd_positions(s, g, m.pos_fwd);
  const TapRows dx_rows{s.in_w, g.oh, s.k, s.out_c * s.k, static_cast<int>(hw - 1)};
  if (dx != nullptr) {
    // dX tap t' = (p, o, q) reads dy at o*plane_dy + lead - p*W - q, weight w[o][c][p][q].
    for (int p = 0; p < s.k; ++p) {
      for (int o = 0; o < s.out_c; ++o) {
        for (int q = 0; q < s.k; ++q) {
          const int t = (p * s.out_c + o) * s.k + q;
          m.off_dx[t] = static_cast<int32_t>(o * g.plane_dy + g.lead - p * s.in_w - q);
          for (int c = 0; c < s.in_c; ++c) {
            m.wt[int64_t{c} * g.taps_dx + t] = w[(int64_t{o} * s.in_c + c) * kk + p * s.k + q];
          }
        }
      }
    }
    for (int v = 0; v < g.nv_dx; ++v) m.pos_dx[v] = v * V::kLanes;
  }
  std::memset(m.dwacc, 0, static_cast<size_t>(s.out_c) * g.taps * V::kLanes * sizeof(float));
  std::memset(m.dbacc, 0, static_cast<size_t>(s.out_c) * V::kLanes * sizeof(float));
  const bool dx_direct = hw % V::kLanes == 0;  // dX rows land straight in dx, no copy
  const int64_t ld_wide_dx = int64_t{g.nv_dx} * V::kLanes;

  for (int n = 0; n < s.batch; ++n) {
    pad_input(s, g, x + n * s.in_c * hw, m.xpad);
    // dy (masked by the ReLU) into the zero-padded wide layout. Without dX, the row layout
    // reads only the real columns, so nothing else needs zeros.
    if (dx != nullptr || g.vpr == 0) {
      std::memset(m.dypad, 0, static_cast<size_t>(s.out_c * g.plane_dy) * sizeof(float));
    }
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
      // db: lane-wise partial sums over the vectors dW reads (zeros where there is no output).
      Reg acc = V::load(m.dbacc + o * V::kLanes);
      for (int v = 0; v < g.nv_fwd; ++v) acc = V::add(acc, V::load(dst + m.pos_fwd[v]));
      V::store(m.dbacc + o * V::kLanes, acc);
    }
    wide_dw(m.xpad, m.off_fwd, g.taps, m.dypad + g.lead, g.plane_dy, s.out_c, m.pos_fwd, g.nv_fwd,
            m.dwacc);
    if (dx != nullptr) {
      float* dxn = dx + int64_t{n} * s.in_c * hw;
      float* out = dx_direct ? dxn : m.wide;
      wide_corr(m.dypad, m.pos_dx, g.nv_dx, m.off_dx, g.taps_dx, m.wt, s.in_c, nullptr, false, out,
                dx_direct ? hw : ld_wide_dx, &dx_rows);
      if (!dx_direct) {
        for (int c = 0; c < s.in_c; ++c) {
          std::memcpy(dxn + c * hw, m.wide + c * ld_wide_dx,
                      static_cast<size_t>(hw) * sizeof(float));
        }
      }
    }
  }
  // One fixed-order lane reduction per weight.
  for (int64_t i = 0; i < int64_t{s.out_c} * g.taps; ++i) {
    dw[i] = lane_sum(m.dwacc + i * V::kLanes);
  }
  for (int o = 0; o < s.out_c; ++o) db[o] = lane_sum(m.dbacc + o * V::kLanes);
}
