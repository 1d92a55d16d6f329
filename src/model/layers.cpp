// Dense, conv2d and max-pool layers over the flat parameter buffer.
#include "model/layers.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu_ops.h"

namespace fedsilo::model {

namespace {

std::string dims(int c, int h, int w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

int64_t add_param(std::vector<ParamInfo>& params, int64_t& offset, std::string name,
                  std::vector<int64_t> shape) {
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  const int64_t at = offset;
  params.push_back({std::move(name), std::move(shape), at, size});
  offset += size;
  return at;
}

void init_uniform(float* p, int64_t n, double bound, Philox& rng) {
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
}

// Implements Layer's float and double entry points with the derived layer's templated
// fwd/bwd, so each layer writes its arithmetic once.
template <typename Derived>
class TypedLayer : public Layer {
 public:
  using Layer::Layer;
  void forward(const float* p, const float* x, float* y, int n, LayerMemory m) const override {
    self().fwd(p, x, y, n, m);
  }
  void forward(const double* p, const double* x, double* y, int n, LayerMemory m) const override {
    self().fwd(p, x, y, n, m);
  }
  void backward(const float* p, const float* x, const float* y, float* dy, float* dx, float* g,
                int n, LayerMemory m) const override {
    self().bwd(p, x, y, dy, dx, g, n, m);
  }
  void backward(const double* p, const double* x, const double* y, double* dy, double* dx,
                double* g, int n, LayerMemory m) const override {
    self().bwd(p, x, y, dy, dx, g, n, m);
  }
  void backward_norms(const float* p, const float* x, const float* y, float* dy, float* dx,
                      float* keep, double* norms2, int n, LayerMemory m) const override {
    self().bwd_norms(p, x, y, dy, dx, keep, norms2, n, m);
  }
  void backward_norms(const double* p, const double* x, const double* y, double* dy, double* dx,
                      double* keep, double* norms2, int n, LayerMemory m) const override {
    self().bwd_norms(p, x, y, dy, dx, keep, norms2, n, m);
  }
  void clipped_grads(const float* x, float* keep, const float* scale, float* g, int n,
                     LayerMemory m) const override {
    self().clip_grads(x, keep, scale, g, n, m);
  }
  void clipped_grads(const double* x, double* keep, const double* scale, double* g, int n,
                     LayerMemory m) const override {
    self().clip_grads(x, keep, scale, g, n, m);
  }

 private:
  const Derived& self() const { return static_cast<const Derived&>(*this); }
};

class Dense final : public TypedLayer<Dense> {
  friend class TypedLayer<Dense>;

 public:
  Dense(const std::string& name, int in, int out, bool relu, int64_t w_off, int64_t b_off)
      : TypedLayer(name, in, out), shape_{0, in, out}, relu_(relu), w_off_(w_off), b_off_(b_off) {}

  std::vector<std::string> describe() const override {
    std::vector<std::string> d{name() + ": dense " + std::to_string(shape_.in) + "->" +
                               std::to_string(shape_.out)};
    if (relu_) d.emplace_back("relu");
    return d;
  }

  LayerDesc desc() const override {
    LayerDesc d = base_desc(LayerDesc::Kind::kDense);
    d.relu = relu_;
    d.weight_offset = w_off_;
    d.bias_offset = b_off_;
    d.dense_in = shape_.in;
    d.dense_out = shape_.out;
    return d;
  }

  void init(float* params, Philox& rng) const override {
    const double bound = 1.0 / std::sqrt(static_cast<double>(shape_.in));
    init_uniform(params + w_off_, int64_t{shape_.out} * shape_.in, bound, rng);
    init_uniform(params + b_off_, shape_.out, bound, rng);
  }

 private:
  template <typename T>
  void fwd(const T* params, const T* x, T* y, int n, LayerMemory) const {
    kernels::DenseShape s = shape_;
    s.batch = n;
    kernels::dense_forward<T>(s, x, params + w_off_, params + b_off_, relu_, y);
  }
  template <typename T>
  void bwd(const T* params, const T* x, const T* y, T* dy, T* dx, T* grads, int n,
           LayerMemory) const {
    kernels::DenseShape s = shape_;
    s.batch = n;
    kernels::dense_backward<T>(s, x, params + w_off_, y, relu_, dy, dx, grads + w_off_,
                               grads + b_off_);
  }
  int64_t keep_floats() const override { return shape_.out; }
  // Ghost norms: d = dy through the ReLU, dx = d W, ||g_i||^2 = ||d_i||^2 (||x_i||^2 + 1).
  // 2 n in out FLOPs (dx) and n (in + out) for the norms: the weight GEMM waits for step 2.
  template <typename T>
  void bwd_norms(const T* params, const T* x, const T* y, T* dy, T* dx, T* keep, double* norms2,
                 int n, LayerMemory) const {
    const int in = shape_.in, out = shape_.out;
    if (relu_) kernels::relu_backward<T>(y, dy, dy, int64_t{n} * out);
    if (dx != nullptr) {
      kernels::gemm<T>(false, false, n, in, out, T{1}, dy, out, params + w_off_, in, T{0}, dx, in);
    }
    for (int i = 0; i < n; ++i) {
      const T* d = dy + int64_t{i} * out;
      const T* xi = x + int64_t{i} * in;
      double dd = 0.0, xx = 0.0;
      for (int o = 0; o < out; ++o) dd += static_cast<double>(d[o]) * d[o];
      for (int k = 0; k < in; ++k) xx += static_cast<double>(xi[k]) * xi[k];
      norms2[i] += dd * (xx + 1.0);
    }
    std::copy(dy, dy + int64_t{n} * out, keep);
  }
  // sum_i s_i d_i x_i^T = (diag(s) D)^T X: the rows scaled, then the usual weight GEMM.
  template <typename T>
  void clip_grads(const T* x, T* keep, const T* scale, T* grads, int n, LayerMemory) const {
    const int out = shape_.out;
    for (int i = 0; i < n; ++i) {
      T* d = keep + int64_t{i} * out;
      for (int o = 0; o < out; ++o) d[o] *= scale[i];
    }
    kernels::DenseShape s = shape_;
    s.batch = n;
    kernels::dense_backward<T>(s, x, nullptr, nullptr, false, keep, nullptr, grads + w_off_,
                               grads + b_off_);
  }

  kernels::DenseShape shape_;
  bool relu_;
  int64_t w_off_, b_off_;
};

class Conv2d final : public TypedLayer<Conv2d> {
  friend class TypedLayer<Conv2d>;

 public:
  Conv2d(const std::string& name, const kernels::Conv2dShape& s, bool relu, int64_t w_off,
         int64_t b_off)
      : TypedLayer(name, int64_t{s.in_c} * s.in_h * s.in_w, int64_t{s.out_c} * s.out_h() * s.out_w()),
        shape_(s),
        relu_(relu),
        w_off_(w_off),
        b_off_(b_off) {}

  std::vector<std::string> describe() const override {
    const auto& s = shape_;
    std::vector<std::string> d{name() + ": conv2d " + std::to_string(s.in_c) + "->" +
                               std::to_string(s.out_c) + " " + std::to_string(s.k) + "x" +
                               std::to_string(s.k) + ", out " +
                               dims(s.out_c, s.out_h(), s.out_w())};
    if (relu_) d.emplace_back("relu");
    return d;
  }

  LayerDesc desc() const override {
    LayerDesc d = base_desc(LayerDesc::Kind::kConv2d);
    d.relu = relu_;
    d.weight_offset = w_off_;
    d.bias_offset = b_off_;
    d.c = shape_.in_c;
    d.h = shape_.in_h;
    d.w = shape_.in_w;
    d.out_c = shape_.out_c;
    d.k = shape_.k;
    return d;
  }

  int64_t scratch_bytes() const override { return kernels::conv2d_scratch_bytes(shape_); }

  void init(float* params, Philox& rng) const override {
    const int64_t fan_in = int64_t{shape_.in_c} * shape_.k * shape_.k;
    const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
    init_uniform(params + w_off_, shape_.out_c * fan_in, bound, rng);
    init_uniform(params + b_off_, shape_.out_c, bound, rng);
  }

 private:
  template <typename T>
  void fwd(const T* params, const T* x, T* y, int n, LayerMemory mem) const {
    kernels::Conv2dShape s = shape_;
    s.batch = n;
    kernels::conv2d_forward<T>(s, x, params + w_off_, params + b_off_, relu_, y, mem.scratch);
  }
  template <typename T>
  void bwd(const T* params, const T* x, const T* y, T* dy, T* dx, T* grads, int n,
           LayerMemory mem) const {
    kernels::Conv2dShape s = shape_;
    s.batch = n;
    kernels::conv2d_backward<T>(s, x, params + w_off_, y, relu_, dy, dx, grads + w_off_,
                                grads + b_off_, mem.scratch);
  }
  int64_t weights() const { return int64_t{shape_.out_c} * shape_.in_c * shape_.k * shape_.k; }
  int64_t keep_floats() const override { return weights() + shape_.out_c; }
  // Each sample's gradient, materialised: the same FLOPs as the batched backward (which also
  // runs sample by sample), plus n (weights + bias) floats written.
  template <typename T>
  void bwd_norms(const T* params, const T* x, const T* y, T* dy, T* dx, T* keep, double* norms2,
                 int n, LayerMemory mem) const {
    kernels::Conv2dShape s = shape_;
    s.batch = 1;
    const int64_t per = keep_floats();
    for (int i = 0; i < n; ++i) {
      T* g = keep + i * per;
      kernels::conv2d_backward<T>(s, x + i * in_size(), params + w_off_, y + i * out_size(), relu_,
                                  dy + i * out_size(), dx == nullptr ? nullptr : dx + i * in_size(),
                                  g, g + weights(), mem.scratch);
      double gg = 0.0;
      for (int64_t j = 0; j < per; ++j) gg += static_cast<double>(g[j]) * g[j];
      norms2[i] += gg;
    }
  }
  template <typename T>
  void clip_grads(const T*, T* keep, const T* scale, T* grads, int n, LayerMemory) const {
    const int64_t per = keep_floats();
    T* gw = grads + w_off_;
    T* gb = grads + b_off_;
    std::fill(gw, gw + weights(), T{0});
    std::fill(gb, gb + shape_.out_c, T{0});
    for (int i = 0; i < n; ++i) {  // sample order: deterministic
      const T* g = keep + i * per;
      for (int64_t j = 0; j < weights(); ++j) gw[j] += scale[i] * g[j];
      for (int o = 0; o < shape_.out_c; ++o) gb[o] += scale[i] * g[weights() + o];
    }
  }

  kernels::Conv2dShape shape_;
  bool relu_;
  int64_t w_off_, b_off_;
};

class MaxPool2x2 final : public TypedLayer<MaxPool2x2> {
  friend class TypedLayer<MaxPool2x2>;

 public:
  MaxPool2x2(const std::string& name, const kernels::Pool2dShape& s)
      : TypedLayer(name, int64_t{s.c} * s.h * s.w, int64_t{s.c} * s.out_h() * s.out_w()), shape_(s) {}

  std::vector<std::string> describe() const override {
    return {name() + ": maxpool 2x2, out " + dims(shape_.c, shape_.out_h(), shape_.out_w())};
  }

  LayerDesc desc() const override {
    LayerDesc d = base_desc(LayerDesc::Kind::kMaxPool2x2);
    d.c = shape_.c;
    d.h = shape_.h;
    d.w = shape_.w;
    return d;
  }

  int64_t aux_bytes(int max_n) const override { return int64_t{max_n} * out_size(); }

 private:
  template <typename T>
  void fwd(const T*, const T* x, T* y, int n, LayerMemory mem) const {
    kernels::Pool2dShape s = shape_;
    s.batch = n;
    kernels::maxpool2x2_forward<T>(s, x, y, mem.aux);
  }
  template <typename T>
  void bwd(const T*, const T*, const T*, T* dy, T* dx, T*, int n, LayerMemory mem) const {
    if (dx == nullptr) return;
    kernels::Pool2dShape s = shape_;
    s.batch = n;
    kernels::maxpool2x2_backward<T>(s, dy, mem.aux, dx);
  }
  template <typename T>
  void bwd_norms(const T* p, const T* x, const T* y, T* dy, T* dx, T*, double*, int n,
                 LayerMemory mem) const {
    bwd<T>(p, x, y, dy, dx, nullptr, n, mem);
  }
  template <typename T>
  void clip_grads(const T*, T*, const T*, T*, int, LayerMemory) const {}

  kernels::Pool2dShape shape_;
};

}  // namespace

std::unique_ptr<Layer> make_dense(const std::string& name, int in, int out, bool relu,
                                  std::vector<ParamInfo>& params, int64_t& offset) {
  const int64_t w = add_param(params, offset, name + ".weight", {out, in});
  const int64_t b = add_param(params, offset, name + ".bias", {out});
  return std::make_unique<Dense>(name, in, out, relu, w, b);
}

std::unique_ptr<Layer> make_conv2d(const std::string& name, int c, int h, int w, int oc, int k,
                                   bool relu, std::vector<ParamInfo>& params, int64_t& offset) {
  const int64_t wo = add_param(params, offset, name + ".weight", {oc, c, k, k});
  const int64_t bo = add_param(params, offset, name + ".bias", {oc});
  kernels::Conv2dShape s{0, c, h, w, oc, k};
  return std::make_unique<Conv2d>(name, s, relu, wo, bo);
}

std::unique_ptr<Layer> make_maxpool2x2(const std::string& name, int c, int h, int w) {
  return std::make_unique<MaxPool2x2>(name, kernels::Pool2dShape{0, c, h, w});
}

}  // namespace fedsilo::model
