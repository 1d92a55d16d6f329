// A sequential model over one flat parameter buffer (docs/architecture.md): layers see views into
// the flat params/grads; forward/backward run on the CPU kernels in kernels/cpu.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace fedsilo::kernels {
class ThreadTeam;
}  // namespace fedsilo::kernels

namespace fedsilo::model {

/// What `[model]` asks for plus what the data fixes.
struct ModelSpec {
  std::string arch;              // "logreg" | "mlp" | "niid-cnn"
  std::vector<int> hidden;       // mlp hidden sizes, e.g. {200, 200}
  std::array<int, 3> input_chw{1, 28, 28};
  int num_classes = 10;
};

/// One named parameter tensor inside the flat buffer.
struct ParamInfo {
  std::string name;              // e.g. "conv1.weight", "fc3.bias"
  std::vector<int64_t> shape;
  int64_t offset = 0;            // into the flat buffer, in floats
  int64_t size = 0;
};

/// What one layer of the stack computes, for a backend that runs the stack with its own kernels
/// (the GPU trainer switches on `kind`). Offsets index the flat parameter buffer (and so the
/// gradient buffer); activations are NCHW, flattened per sample, as on the CPU.
struct LayerDesc {
  enum class Kind { kDense, kConv2d, kMaxPool2x2 };
  Kind kind = Kind::kDense;
  std::string name;                // "conv1", "pool1", "fc2"
  int64_t in_size = 0;             // floats per sample in and out
  int64_t out_size = 0;
  bool relu = false;               // dense and conv2d: ReLU fused after the bias
  int64_t weight_offset = -1;      // -1 for max-pool (no parameters)
  int64_t bias_offset = -1;
  int dense_in = 0, dense_out = 0; // kDense: weight [dense_out, dense_in]
  int c = 0, h = 0, w = 0;         // kConv2d, kMaxPool2x2: input channels x height x width
  int out_c = 0, k = 0;            // kConv2d: weight [out_c, c, k, k], stride 1, no padding
};

/// Per-call scratch memory and thread count; reused across batches so steady state allocates
/// nothing. Not shared between concurrently running calls.
class Workspace;

/// Seconds spent in one layer by the thread that runs the first chunk of each batch
/// (Workspace::set_profiling).
struct LayerTime {
  std::string layer;             // "conv1", "pool1", "fc1", "loss", "reduce"
  double forward_seconds = 0.0;
  double backward_seconds = 0.0;
};

/// Buffers for one model and a thread count. A batch of B samples is split into
/// ceil(B / threads)-sample chunks, one per thread; each thread runs the whole network on its
/// chunk with single-threaded OpenBLAS and writes its own weight gradients, which are then
/// summed in thread order. Results depend on the thread count, never on timing.
class Workspace {
 public:
  ~Workspace();
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  [[nodiscard]] int max_batch() const;
  [[nodiscard]] int threads() const;
  /// The workspace's threads (threads() of them, the caller included): the trainer runs the
  /// optimizer on the same team, so no second pool competes for the cores.
  [[nodiscard]] kernels::ThreadTeam& team();
  /// OpenBLAS threads inside each chunk's GEMMs (default 1). Only for measuring the other
  /// arrangement (threads() == 1 with a threaded BLAS); see benchmarks/local_train.
  void set_blas_threads(int n);
  /// Per-layer timers (off by default; a few clock reads per layer and batch when on).
  void set_profiling(bool on);
  /// Accumulated times since profiling was turned on; the last entries are "loss" (softmax
  /// cross-entropy) and "reduce" (the cross-thread gradient sum, in backward_seconds).
  [[nodiscard]] std::vector<LayerTime> profile() const;

 private:
  friend class Model;
  struct Impl;
  explicit Workspace(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

class Model {
 public:
  /// Builds the layer stack; kInvalidArgument naming `model.arch` / `model.hidden` if bad.
  static Result<Model> build(const ModelSpec& spec);
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  [[nodiscard]] const ModelSpec& spec() const;
  [[nodiscard]] int64_t num_params() const;
  [[nodiscard]] const std::vector<ParamInfo>& params() const;
  /// The layer stack, first to last (what each layer computes and where its parameters are).
  [[nodiscard]] std::vector<LayerDesc> layers() const;
  /// Human-readable layer list ("conv2d 1->6 5x5", ...), for `inspect` and logs.
  [[nodiscard]] std::vector<std::string> describe() const;

  /// Deterministic initialisation from a seed (PyTorch-style uniform(-1/sqrt(fan_in), ..)).
  void init_params(std::span<float> params, uint64_t seed) const;

  [[nodiscard]] std::unique_ptr<Workspace> make_workspace(int max_batch, int threads) const;

  /// Mean softmax cross-entropy over the batch; writes d(mean loss)/d(params) into `grads`
  /// (overwritten, length num_params). x: batch samples NCHW, y: labels.
  float forward_backward(std::span<const float> params, const float* x, const int32_t* y,
                         int batch, std::span<float> grads, Workspace& ws) const;

  /// DP-SGD's per-example clipping: writes sum_i min(1, clip / (||g_i|| + 1e-6)) g_i into
  /// `grads` (overwritten), g_i the gradient of sample i's own loss (not divided by the batch),
  /// and each ||g_i|| into `norms` when it is not empty (at least `batch` long). One forward
  /// and one backward pass: dense layers get their norms without their per-example gradients,
  /// conv layers materialise them (layers.h). Returns the mean loss (NaN for bad sizes or
  /// clip <= 0); batch 0 (an empty Poisson batch) gives zeros.
  float clipped_gradient_sum(std::span<const float> params, const float* x, const int32_t* y,
                             int batch, double clip, std::span<float> grads, Workspace& ws,
                             std::span<float> norms = {}) const;

  /// Forward only: writes logits [batch, num_classes].
  void forward(std::span<const float> params, const float* x, int batch, float* logits,
               Workspace& ws) const;

  /// forward_backward in double on the reference kernels: one thread, allocates per call.
  /// For gradient checks of whole models (finite differences need double), not for training.
  double forward_backward_reference(std::span<const double> params, const double* x,
                                    const int32_t* y, int batch, std::span<double> grads) const;
  /// clipped_gradient_sum in double on the reference kernels (one thread; `norms` at least
  /// `batch` long): for tests of the norms and the clipping.
  double clipped_gradient_sum_reference(std::span<const double> params, const double* x,
                                        const int32_t* y, int batch, double clip,
                                        std::span<double> grads, std::span<double> norms) const;

 private:
  struct Impl;
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::model
