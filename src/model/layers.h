// The layers a Model stacks: dense (+ReLU), conv2d (+ReLU), max-pool 2x2. Each is a thin
// adapter from flat-buffer offsets to a kernel in kernels/cpu; flatten is free in NCHW and
// has no layer.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/philox.h"
#include "model/model.h"

namespace fedsilo::model {

/// Per-thread memory a layer may use during one forward/backward of a chunk of samples.
struct LayerMemory {
  void* scratch = nullptr;  // temporary, any layer may overwrite it
  uint8_t* aux = nullptr;   // this layer's own, kept from forward to backward (pool argmax)
};

class Layer {
 public:
  virtual ~Layer() = default;

  /// Floats per sample in and out.
  [[nodiscard]] int64_t in_size() const { return in_size_; }
  [[nodiscard]] int64_t out_size() const { return out_size_; }
  /// Short name for profiles ("conv1", "pool1", "fc2").
  [[nodiscard]] const std::string& name() const { return name_; }
  /// What the layer computes and where its parameters are (Model::layers()).
  [[nodiscard]] virtual LayerDesc desc() const = 0;
  /// Lines for Model::describe().
  [[nodiscard]] virtual std::vector<std::string> describe() const = 0;

  /// y[n x out_size] from x[n x in_size].
  virtual void forward(const float* params, const float* x, float* y, int n,
                       LayerMemory mem) const = 0;
  /// Given dy = d(loss)/dy (may be overwritten), writes this layer's parameter gradients into
  /// grads (overwriting) and dx when dx != nullptr.
  virtual void backward(const float* params, const float* x, const float* y, float* dy, float* dx,
                        float* grads, int n, LayerMemory mem) const = 0;
  /// The same in double, on the reference kernels (gradient checks of whole models).
  virtual void forward(const double* params, const double* x, double* y, int n,
                       LayerMemory mem) const = 0;
  virtual void backward(const double* params, const double* x, const double* y, double* dy,
                        double* dx, double* grads, int n, LayerMemory mem) const = 0;

  // Per-example clipping (DP-SGD), in two steps over a chunk of n samples, so that no layer
  // needs every per-example gradient where a cheaper way gives its norm:
  //  1. backward_norms: as backward (dy in, dx out), but instead of summed parameter gradients
  //     it adds each sample's squared L2 norm of this layer's parameter gradient to norms2[n]
  //     and keeps in `keep` (keep_floats() per sample) what step 2 needs;
  //  2. clipped_grads: writes (overwrites) this layer's parameter gradients as
  //     sum_i scale[i] * g_i, from `keep` and the layer's input x.
  // Dense layers keep the pre-activation gradient d_i (out floats): g_i = d_i x_i^T, so
  // ||g_i||^2 = ||d_i||^2 (||x_i||^2 + 1) with the bias ("ghost" norms: Goodfellow 2015, Li et
  // al. 2022) and step 2 is one GEMM on the rows d_i scaled. Conv layers keep each sample's
  // gradient (weights and bias): for niid-cnn's conv1 (576 output positions) the ghost norm's
  // 576 x 576 Gram matrices cost far more than the 156-float gradient itself.
  virtual void backward_norms(const float* params, const float* x, const float* y, float* dy,
                              float* dx, float* keep, double* norms2, int n, LayerMemory mem) const = 0;
  virtual void backward_norms(const double* params, const double* x, const double* y, double* dy,
                              double* dx, double* keep, double* norms2, int n,
                              LayerMemory mem) const = 0;
  virtual void clipped_grads(const float* x, float* keep, const float* scale, float* grads, int n,
                             LayerMemory mem) const = 0;
  virtual void clipped_grads(const double* x, double* keep, const double* scale, double* grads,
                             int n, LayerMemory mem) const = 0;
  /// Floats per sample that backward_norms keeps for clipped_grads.
  [[nodiscard]] virtual int64_t keep_floats() const { return 0; }

  [[nodiscard]] virtual int64_t scratch_bytes() const { return 0; }
  [[nodiscard]] virtual int64_t aux_bytes(int max_n) const { return 0; }
  /// PyTorch's default init: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in
  /// flat-buffer order.
  virtual void init(float* params, Philox& rng) const {}

 protected:
  /// A LayerDesc with what every layer has filled in: kind, name, sizes.
  [[nodiscard]] LayerDesc base_desc(LayerDesc::Kind kind) const {
    LayerDesc d;
    d.kind = kind;
    d.name = name_;
    d.in_size = in_size_;
    d.out_size = out_size_;
    return d;
  }
  Layer(std::string name, int64_t in_size, int64_t out_size)
      : name_(std::move(name)), in_size_(in_size), out_size_(out_size) {}

 private:
  std::string name_;
  int64_t in_size_;
  int64_t out_size_;
};

/// y = act(x W^T + b); registers "<name>.weight" [out, in] and "<name>.bias" [out].
std::unique_ptr<Layer> make_dense(const std::string& name, int in, int out, bool relu,
                                  std::vector<ParamInfo>& params, int64_t& offset);
/// Conv2d(c, oc, k), stride 1, no padding, input c x h x w; "<name>.weight" [oc, c, k, k].
std::unique_ptr<Layer> make_conv2d(const std::string& name, int c, int h, int w, int oc, int k,
                                   bool relu, std::vector<ParamInfo>& params, int64_t& offset);
/// MaxPool2d(2) over c x h x w.
std::unique_ptr<Layer> make_maxpool2x2(const std::string& name, int c, int h, int w);

}  // namespace fedsilo::model
