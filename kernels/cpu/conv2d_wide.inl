// The wide-row fast path of conv2d.cpp (see the top of that file), written once over a vector
// type V (V::kLanes floats a register, V::kMaxAcc accumulators a register block): conv2d.cpp
// includes it inside one namespace per instruction set, under that set's `#pragma GCC target`,
// with V and Reg = V::reg defined there. Not a header of its own: no includes, no guards.
// out[o*ldo + v*L + l] = bias[o] + sum_t w[o*ldw + t] * in[off[t] + v*L + l] (L = V::kLanes)
// for o < OB, v < PB: one register block of the wide correlation.
template <int OB, int PB>
void corr_block(const float* in, const int32_t* off, int taps, const float* w, int64_t ldw,
                const float* bias, float* out, int64_t ldo) {
  Reg acc[OB][PB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
    const Reg b0 = bias != nullptr ? V::set1(bias[o]) : V::zero();
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) acc[o][v] = b0;
  }
  for (int t = 0; t < taps; ++t) {
    const float* src = in + off[t];
    Reg xv[PB];
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) xv[v] = V::load(src + v * V::kLanes);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const Reg wv = V::set1(w[o * ldw + t]);
#pragma GCC unroll 8
      for (int v = 0; v < PB; ++v) acc[o][v] = V::fmadd(wv, xv[v], acc[o][v]);
    }
  }
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int v = 0; v < PB; ++v) V::store(out + o * ldo + v * V::kLanes, acc[o][v]);
  }
}

// acc[o*ld_acc + j*L + l] += sum_{v<nv} dy[o*ldd + v*L + l] * x[off[j] + v*L + l] (L = V::kLanes)
// for o < OB, j < TB: lane-wise partial sums of dW for OB channels x TB taps.
template <int OB, int TB>
void dw_block(const float* x, const int32_t* off, const float* dy, int64_t ldd, int nv,
              float* acc_mem, int64_t ld_acc) {
  Reg acc[OB][TB];
#pragma GCC unroll 8
  for (int o = 0; o < OB; ++o) {
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) acc[o][j] = V::load(acc_mem + o * ld_acc + j * V::kLanes);
  }
  for (int v = 0; v < nv; ++v) {
    Reg xv[TB];
#pragma GCC unroll 8
    for (int j = 0; j < TB; ++j) xv[j] = V::load(x + off[j] + v * V::kLanes);
#pragma GCC unroll 8
    for (int o = 0; o < OB; ++o) {
      const Reg d = V::load(dy + o * ldd + v * V::kLanes);
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

using CorrFn = void (*)(const float*, const int32_t*, int, const float*, int64_t, const float*,
                        float*, int64_t);
using DwFn = void (*)(const float*, const int32_t*, const float*, int64_t, int, float*, int64_t);

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

// out[o][P] = bias[o] + sum_t w[o][t] * in[off[t] + P] for o < rows, P < nv*V::kLanes.
void wide_corr(const float* in, const int32_t* off, int taps, const float* w, int rows,
               const float* bias, int nv, float* out, int64_t ldo) {
  const int rmain = main_rows(rows);
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int pb_even = even_cols(nv, std::min(V::kMaxCols, V::kMaxAcc / ob));
    for (int v0 = 0; v0 < nv;) {
      const int pb = std::min(pb_even, nv - v0);
      kCorr[ob][pb](in + int64_t{v0} * V::kLanes, off, taps, w + int64_t{o0} * taps, taps,
                    bias != nullptr ? bias + o0 : nullptr, out + o0 * ldo + v0 * V::kLanes, ldo);
      v0 += pb;
    }
    o0 += ob;
  }
}

// acc[o][t][:] += sum_P dy[o*ldd + P] * x[off[t] + P], P in V::kLanes-float vectors, v < nv.
void wide_dw(const float* x, const int32_t* off, int taps, const float* dy, int64_t ldd, int rows,
             int nv, float* acc) {
  const int rmain = main_rows(rows);
  const int64_t ld_acc = int64_t{taps} * V::kLanes;
  for (int o0 = 0; o0 < rows;) {
    const int ob = std::min(rmain, rows - o0);
    const int tb_even = even_cols(taps, std::min(V::kMaxCols, V::kMaxAcc / ob));
    for (int t0 = 0; t0 < taps;) {
      const int tb = std::min(tb_even, taps - t0);
      kDw[ob][tb](x, off + t0, dy + o0 * ldd, ldd, nv, acc + o0 * ld_acc + int64_t{t0} * V::kLanes,
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

void forward(const Conv2dShape& s, const float* x, const float* w, const float* b, bool relu,
             float* y, void* scratch) {
  const WideGeom g(s, V::kLanes);
  const Carved m = carve(s, scratch);
  fill_fwd_offsets(s, g, m.off_fwd);
  const int64_t hw = int64_t{s.in_h} * s.in_w, ohw = int64_t{g.oh} * g.ow;
  const int64_t ldo = int64_t{g.nv_out} * V::kLanes;
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

void backward(const Conv2dShape& s, const float* x, const float* w, const float* y, bool relu,
              const float* dy, float* dx, float* dw, float* db, void* scratch) {
  const WideGeom g(s, V::kLanes);
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
  std::memset(m.dwacc, 0, static_cast<size_t>(s.out_c) * g.taps * V::kLanes * sizeof(float));
  std::memset(m.dbacc, 0, static_cast<size_t>(s.out_c) * V::kLanes * sizeof(float));
  const bool dx_direct = hw % V::kLanes == 0;  // dX rows land straight in dx, no copy
  const int64_t ld_wide_dx = int64_t{g.nv_dx} * V::kLanes;

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
      // db: lane-wise partial sums over the wide plane (zeros where there is no output).
      Reg acc = V::load(m.dbacc + o * V::kLanes);
      for (int v = 0; v < g.nv_out; ++v)
        acc = V::add(acc, V::load(dst + v * V::kLanes));
      V::store(m.dbacc + o * V::kLanes, acc);
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
    dw[i] = lane_sum(m.dwacc + i * V::kLanes);
  }
  for (int o = 0; o < s.out_c; ++o) db[o] = lane_sum(m.dbacc + o * V::kLanes);
}
