// Model: builds the layer stack for an arch, owns the flat-buffer layout, and runs
// forward/backward with the batch split across threads (see Workspace in model.h).
//
// Why split the batch rather than thread each op: OpenBLAS 0.3.21 runs its Prescott (SSE3)
// kernels on this Xeon (it does not know the CPU model), ~28 GFLOP/s on one core; on two
// threads a 64x200x784 sgemm only reaches ~35 (each call is ~0.3 ms and pays a fork/join, 3
// GEMMs per dense layer per step), and every non-GEMM op would need its own fork/join too.
// Splitting the batch costs one fork/join per step plus the weight-gradient sum (num_params
// floats per extra thread: 0.8 MB for the MLP, ~25 us). Measured with
// `local_train --arrangements` (2 cores, batch 64, repeats interleaved), samples/s:
//                 batch split (2x1)   threaded BLAS (1x2)   one thread
//   niid-cnn          47,100              31,200              28,600
//   mlp               47,100              45,700              29,100
#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/philox.h"
#include "kernels/cpu/thread_team.h"
#include "kernels/cpu_ops.h"
#include "model/aligned_buffer.h"
#include "model/layers.h"

namespace fedsilo::model {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// How a batch is cut into per-thread chunks: `count` chunks of `chunk` samples (the last may
// be shorter). Fixed by (batch, threads) alone.
struct Split {
  int chunk = 0;
  int count = 0;
};

Split split_batch(int batch, int threads) {
  const int t = std::max(1, std::min(threads, batch));
  const int chunk = static_cast<int>(ceil_div(batch, t));
  return {chunk, static_cast<int>(ceil_div(batch, chunk))};
}

// Buffers of one chunk (one thread).
struct ChunkBuffers {
  std::vector<AlignedBuffer<float>> act;    // act[i]: output of layer i
  AlignedBuffer<float> grad_a, grad_b;      // activation gradients, ping-pong
  std::vector<AlignedBuffer<uint8_t>> aux;  // per layer, forward -> backward
  AlignedBuffer<unsigned char> scratch;     // shared by the layers, one at a time
  AlignedBuffer<float> partial;             // weight gradients of chunks 1..: summed later
  // Per-example clipping (Model::clipped_gradient_sum), allocated on its first use: per layer
  // what backward_norms keeps, each sample's squared norm and clip factor.
  std::vector<AlignedBuffer<float>> keep;
  std::vector<double> norms2;
  std::vector<float> clip_scale;
  double loss = 0.0;
};

// The state behind Model and Workspace, visible to the helpers of this file.
struct ModelCore {
  ModelSpec spec;
  std::vector<std::unique_ptr<Layer>> layers;
  std::vector<ParamInfo> params;
  std::vector<std::string> lines;
  int64_t num_params = 0;
  int64_t input_size = 0;
};

struct WorkspaceCore {
  const ModelCore* owner = nullptr;
  int threads = 1;
  int max_batch = 0;
  std::vector<ChunkBuffers> chunks;
  int blas_threads = 1;
  std::unique_ptr<kernels::ThreadTeam> team;
  bool profiling = false;
  std::vector<std::string> names;
  std::vector<double> fwd, bwd;  // per layer, then "loss", then "reduce"
};

}  // namespace

struct Model::Impl : ModelCore {};
struct Workspace::Impl : WorkspaceCore {};

Workspace::Workspace(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Workspace::~Workspace() = default;
int Workspace::max_batch() const {
  return impl_->max_batch;
}
int Workspace::threads() const {
  return impl_->threads;
}
kernels::ThreadTeam& Workspace::team() {
  return *impl_->team;
}
void Workspace::set_blas_threads(int n) {
  impl_->blas_threads = std::max(1, n);
}
void Workspace::set_profiling(bool on) {
  impl_->profiling = on;
  std::fill(impl_->fwd.begin(), impl_->fwd.end(), 0.0);
  std::fill(impl_->bwd.begin(), impl_->bwd.end(), 0.0);
}
std::vector<LayerTime> Workspace::profile() const {
  std::vector<LayerTime> out;
  for (size_t i = 0; i < impl_->names.size(); ++i) {
    out.push_back({impl_->names[i], impl_->fwd[i], impl_->bwd[i]});
  }
  return out;
}

namespace {

// Sizes every buffer for chunks of up to ceil(max_batch / threads) samples.
void allocate(const ModelCore& m, WorkspaceCore& w, int max_batch) {
  const Split sp = split_batch(std::max(1, max_batch), w.threads);
  const int cap = sp.chunk;
  const size_t nl = m.layers.size();
  int64_t widest = m.input_size, scratch = 0;
  for (const auto& l : m.layers) {
    widest = std::max(widest, l->out_size());
    scratch = std::max(scratch, l->scratch_bytes());
  }
  w.chunks.clear();
  w.chunks.resize(static_cast<size_t>(w.threads));
  for (int c = 0; c < w.threads; ++c) {
    ChunkBuffers& b = w.chunks[static_cast<size_t>(c)];
    for (const auto& l : m.layers) {
      b.act.emplace_back(static_cast<size_t>(cap * l->out_size()));
      b.aux.emplace_back(static_cast<size_t>(l->aux_bytes(cap)));
    }
    b.grad_a = AlignedBuffer<float>(static_cast<size_t>(cap * widest));
    b.grad_b = AlignedBuffer<float>(static_cast<size_t>(cap * widest));
    b.scratch = AlignedBuffer<unsigned char>(static_cast<size_t>(scratch));
    if (c > 0) b.partial = AlignedBuffer<float>(static_cast<size_t>(m.num_params));
  }
  w.owner = &m;
  w.max_batch = cap * w.threads;
  w.names.clear();
  for (const auto& l : m.layers) w.names.push_back(l->name());
  w.names.emplace_back("loss");
  w.names.emplace_back("reduce");
  w.fwd.assign(nl + 2, 0.0);
  w.bwd.assign(nl + 2, 0.0);
}

void prepare(const ModelCore& m, WorkspaceCore& w, int batch) {
  if (w.owner != &m || batch > w.max_batch) allocate(m, w, std::max(batch, w.max_batch));
}

const float* run_forward(const ModelCore& m, const float* params, const float* x, int n,
                         ChunkBuffers& b, WorkspaceCore* prof) {
  const float* in = x;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const auto t0 = prof != nullptr ? Clock::now() : Clock::time_point{};
    m.layers[i]->forward(params, in, b.act[i].data(), n, {b.scratch.data(), b.aux[i].data()});
    if (prof != nullptr) prof->fwd[i] += seconds_between(t0, Clock::now());
    in = b.act[i].data();
  }
  return in;
}

// Forward and backward of one chunk: returns its summed loss; writes the weight gradients of
// d(mean batch loss)/d(params) for this chunk's samples into `grads`.
double run_chunk(const ModelCore& m, const float* params, const float* x, const int32_t* y, int n,
                 float scale, float* grads, ChunkBuffers& b, WorkspaceCore* prof) {
  const float* logits = run_forward(m, params, x, n, b, prof);
  const size_t nl = m.layers.size();
  float* dcur = b.grad_a.data();
  auto t0 = prof != nullptr ? Clock::now() : Clock::time_point{};
  const double loss = kernels::softmax_xent<float>(logits, y, n, m.spec.num_classes, scale, dcur);
  if (prof != nullptr) prof->fwd[nl] += seconds_between(t0, Clock::now());
  for (size_t i = nl; i-- > 0;) {
    // The first layer's input gradient is never needed: skip it (for the MLP that is the
    // largest GEMM, 2*B*784*200 FLOPs).
    float* dx = i == 0 ? nullptr : (dcur == b.grad_a.data() ? b.grad_b.data() : b.grad_a.data());
    const float* in = i == 0 ? x : b.act[i - 1].data();
    if (prof != nullptr) t0 = Clock::now();
    m.layers[i]->backward(params, in, b.act[i].data(), dcur, dx, grads, n,
                          {b.scratch.data(), b.aux[i].data()});
    if (prof != nullptr) prof->bwd[i] += seconds_between(t0, Clock::now());
    dcur = dx;
  }
  return loss;
}

// The clip factor of a sample whose gradient has squared norm `norm2`: min(1, C / (||g|| +
// 1e-6)), as Opacus (the 1e-6 keeps a zero gradient finite).
template <typename T>
T clip_factor(double norm2, double clip) {
  return static_cast<T>(std::min(1.0, clip / (std::sqrt(norm2) + 1e-6)));
}

// Per-example clipping of one chunk: forward; the loss gradient of each sample's own loss; the
// layers' backward_norms, last to first (each sample's squared gradient norm); the clip
// factors; each layer's clipped_grads. Returns the chunk's summed loss; `grads` gets
// sum_i min(1, C / ||g_i||) g_i over the chunk. One backward pass: the clip factors only scale
// what step 2 sums.
double run_chunk_clipped(const ModelCore& m, const float* params, const float* x, const int32_t* y,
                         int n, double clip, float* grads, float* norms_out, ChunkBuffers& b) {
  const float* logits = run_forward(m, params, x, n, b, nullptr);
  const size_t nl = m.layers.size();
  float* dcur = b.grad_a.data();
  const double loss = kernels::softmax_xent<float>(logits, y, n, m.spec.num_classes, 1.0f, dcur);
  std::fill_n(b.norms2.begin(), n, 0.0);
  for (size_t i = nl; i-- > 0;) {
    float* dx = i == 0 ? nullptr : (dcur == b.grad_a.data() ? b.grad_b.data() : b.grad_a.data());
    const float* in = i == 0 ? x : b.act[i - 1].data();
    m.layers[i]->backward_norms(params, in, b.act[i].data(), dcur, dx, b.keep[i].data(),
                                b.norms2.data(), n, {b.scratch.data(), b.aux[i].data()});
    dcur = dx;
  }
  for (int i = 0; i < n; ++i) {
    b.clip_scale[static_cast<size_t>(i)] = clip_factor<float>(b.norms2[static_cast<size_t>(i)], clip);
    if (norms_out != nullptr) norms_out[i] = static_cast<float>(std::sqrt(b.norms2[static_cast<size_t>(i)]));
  }
  for (size_t i = 0; i < nl; ++i) {
    const float* in = i == 0 ? x : b.act[i - 1].data();
    m.layers[i]->clipped_grads(in, b.keep[i].data(), b.clip_scale.data(), grads, n,
                               {b.scratch.data(), b.aux[i].data()});
  }
  return loss;
}

// The double-precision reference path's buffers for one batch (allocated per call), and its
// forward pass: the gradient checks' forward_backward_reference and the clipping tests'
// clipped_gradient_sum_reference share it.
struct ReferencePass {
  std::vector<std::vector<double>> act, keep;
  std::vector<std::vector<uint8_t>> aux;
  std::vector<double> da, db;  // activation gradients, ping-pong
  const double* logits = nullptr;
  ReferencePass(const ModelCore& m, const double* params, const double* x, int batch, bool clipping) {
    const size_t nl = m.layers.size();
    act.resize(nl);
    keep.resize(nl);
    aux.resize(nl);
    int64_t widest = m.input_size;
    for (size_t i = 0; i < nl; ++i) {
      act[i].resize(static_cast<size_t>(batch * m.layers[i]->out_size()));
      if (clipping) keep[i].resize(static_cast<size_t>(batch * m.layers[i]->keep_floats()));
      aux[i].resize(static_cast<size_t>(m.layers[i]->aux_bytes(batch)));
      widest = std::max(widest, m.layers[i]->out_size());
    }
    da.resize(static_cast<size_t>(batch * widest));
    db.resize(da.size());
    const double* in = x;
    for (size_t i = 0; i < nl; ++i) {
      m.layers[i]->forward(params, in, act[i].data(), batch, {nullptr, aux[i].data()});
      in = act[i].data();
    }
    logits = in;
  }
  /// Layer i's input: the batch for the first layer, else layer i - 1's output.
  const double* input(size_t i, const double* x) const { return i == 0 ? x : act[i - 1].data(); }
};

std::string dims_text(const std::array<int, 3>& chw) {
  return std::to_string(chw[0]) + "x" + std::to_string(chw[1]) + "x" + std::to_string(chw[2]);
}

}  // namespace

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

Result<Model> Model::build(const ModelSpec& spec) {
  const auto [c, h, w] = spec.input_chw;
  if (c <= 0 || h <= 0 || w <= 0) {
    return invalid_argument("model.arch = " + spec.arch + ": input shape " +
                            dims_text(spec.input_chw) + " must be positive");
  }
  if (spec.num_classes < 2) {
    return invalid_argument("model.arch = " + spec.arch +
                            ": needs at least 2 classes, the data "
                            "has " +
                            std::to_string(spec.num_classes));
  }
  auto impl = std::make_unique<Impl>();
  impl->spec = spec;
  impl->input_size = int64_t{c} * h * w;
  if (impl->input_size > (int64_t{1} << 30)) {
    return invalid_argument("model.arch = " + spec.arch + ": input " + dims_text(spec.input_chw) +
                            " is too large");
  }
  const int in = static_cast<int>(impl->input_size);
  auto& layers = impl->layers;
  auto& params = impl->params;
  int64_t off = 0;
  const std::string flatten = "flatten " + dims_text(spec.input_chw) + " -> " + std::to_string(in);

  if (spec.arch == "logreg") {
    impl->lines.push_back(flatten);
    layers.push_back(make_dense("fc1", in, spec.num_classes, false, params, off));
  } else if (spec.arch == "mlp") {
    if (spec.hidden.empty()) {
      return invalid_argument(
          "model.hidden: arch mlp needs at least one hidden layer size, "
          "e.g. hidden = [200, 200]");
    }
    for (size_t i = 0; i < spec.hidden.size(); ++i) {
      if (spec.hidden[i] <= 0) {
        return invalid_argument("model.hidden[" + std::to_string(i) + "] = " +
                                std::to_string(spec.hidden[i]) + ": hidden sizes must be > 0");
      }
    }
    impl->lines.push_back(flatten);
    int prev = in;
    for (size_t i = 0; i < spec.hidden.size(); ++i) {
      layers.push_back(
          make_dense("fc" + std::to_string(i + 1), prev, spec.hidden[i], true, params, off));
      prev = spec.hidden[i];
    }
    layers.push_back(make_dense("fc" + std::to_string(spec.hidden.size() + 1), prev,
                                spec.num_classes, false, params, off));
  } else if (spec.arch == "niid-cnn") {
    // NIID-Bench simple-cnn: conv5x5 6, relu, pool2, conv5x5 16, relu, pool2, fc 120, fc 84.
    // Spatial sizes: h -> h-4 -> (h-4)/2 -> (h-4)/2-4 -> ((h-4)/2-4)/2, which is >= 1 iff h >= 16.
    constexpr int kMinSide = 16;
    if (h < kMinSide || w < kMinSide) {
      return invalid_argument("model.arch = niid-cnn needs inputs of at least " +
                              std::to_string(kMinSide) + "x" + std::to_string(kMinSide) +
                              " pixels, the data has " + dims_text(spec.input_chw));
    }
    const int h1 = h - 4, w1 = w - 4, h2 = h1 / 2, w2 = w1 / 2, h3 = h2 - 4, w3 = w2 - 4;
    const int h4 = h3 / 2, w4 = w3 / 2;
    layers.push_back(make_conv2d("conv1", c, h, w, 6, 5, true, params, off));
    layers.push_back(make_maxpool2x2("pool1", 6, h1, w1));
    layers.push_back(make_conv2d("conv2", 6, h2, w2, 16, 5, true, params, off));
    layers.push_back(make_maxpool2x2("pool2", 16, h3, w3));
    const int flat = 16 * h4 * w4;
    layers.push_back(make_dense("fc1", flat, 120, true, params, off));
    layers.push_back(make_dense("fc2", 120, 84, true, params, off));
    layers.push_back(make_dense("fc3", 84, spec.num_classes, false, params, off));
  } else {
    return invalid_argument("model.arch: unknown architecture '" + spec.arch +
                            "' (expected logreg, mlp or niid-cnn)");
  }
  for (const auto& l : layers) {
    if (l->name() == "fc1" && spec.arch == "niid-cnn") {
      impl->lines.push_back("flatten -> " + std::to_string(l->in_size()));
    }
    for (auto& line : l->describe()) impl->lines.push_back(std::move(line));
  }
  impl->lines.push_back("softmax cross-entropy over " + std::to_string(spec.num_classes) +
                        " classes");
  impl->num_params = off;
  return Model(std::move(impl));
}

const ModelSpec& Model::spec() const {
  return impl_->spec;
}
int64_t Model::num_params() const {
  return impl_->num_params;
}
const std::vector<ParamInfo>& Model::params() const {
  return impl_->params;
}
std::vector<LayerDesc> Model::layers() const {
  std::vector<LayerDesc> out;
  out.reserve(impl_->layers.size());
  for (const auto& l : impl_->layers) out.push_back(l->desc());
  return out;
}
std::vector<std::string> Model::describe() const {
  return impl_->lines;
}

void Model::init_params(std::span<float> params, uint64_t seed) const {
  if (static_cast<int64_t>(params.size()) != impl_->num_params) return;
  Philox rng(seed, 0, 0, RngPurpose::kInit);
  for (const auto& l : impl_->layers) l->init(params.data(), rng);
}

std::unique_ptr<Workspace> Model::make_workspace(int max_batch, int threads) const {
  auto w = std::make_unique<Workspace::Impl>();
  w->threads = std::max(1, threads);
  w->team = std::make_unique<kernels::ThreadTeam>(w->threads);
  allocate(*impl_, *w, std::max(1, max_batch));
  return std::unique_ptr<Workspace>(new Workspace(std::move(w)));
}

namespace {

// Runs `chunk(c, n0, n, grads_of_c)` for every chunk of the batch on the workspace's team, then
// sums the chunks' gradients into `grads` in chunk order (the result depends on the thread
// count only). Returns the sum of the chunks' losses.
template <typename ChunkFn>
double run_batch(const ModelCore& m, WorkspaceCore& w, int batch, std::span<float> grads,
                 WorkspaceCore* prof, const ChunkFn& chunk) {
  const Split sp = split_batch(batch, w.threads);
  const kernels::BlasThreadScope blas_threads(w.blas_threads);
  auto run = [&](int c) {
    const int n0 = c * sp.chunk;
    const int n = std::min(sp.chunk, batch - n0);
    ChunkBuffers& b = w.chunks[static_cast<size_t>(c)];
    float* g = c == 0 ? grads.data() : b.partial.data();
    b.loss = chunk(c, n0, n, g, b);
  };
  if (sp.count == 1) {
    run(0);
  } else {
    const int64_t np = m.num_params;
    // Reduction slices: whole cache lines (16 floats) per thread.
    const int64_t per = ceil_div(ceil_div(np, sp.count), 16) * 16;
    const int team = w.team->size();
    // Chunk c runs on team thread c (sp.count <= team size): the split, and so the result,
    // depends on the thread count only.
    w.team->run([&](int t) {
      for (int c = t; c < sp.count; c += team) run(c);
    });
    const auto t0 = prof != nullptr ? Clock::now() : Clock::time_point{};
    w.team->run([&](int t) {
      for (int c = t; c < sp.count; c += team) {
        const int64_t lo = std::min(np, c * per), hi = std::min(np, lo + per);
        for (int s = 1; s < sp.count; ++s) {  // fixed order: chunk 0 (in grads) + 1 + 2 ...
          kernels::add_into<float>(grads.data() + lo,
                                   w.chunks[static_cast<size_t>(s)].partial.data() + lo, hi - lo);
        }
      }
    });
    if (prof != nullptr) prof->bwd[m.layers.size() + 1] += seconds_between(t0, Clock::now());
  }
  double total = 0.0;
  for (int c = 0; c < sp.count; ++c) total += w.chunks[static_cast<size_t>(c)].loss;
  return total;
}

}  // namespace

float Model::forward_backward(std::span<const float> params, const float* x, const int32_t* y,
                              int batch, std::span<float> grads, Workspace& ws) const {
  const Impl& m = *impl_;
  if (static_cast<int64_t>(params.size()) != m.num_params ||
      static_cast<int64_t>(grads.size()) != m.num_params) {
    return std::nanf("");
  }
  if (batch <= 0) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    return 0.0f;
  }
  Workspace::Impl& w = *ws.impl_;
  prepare(m, w, batch);
  const float scale = 1.0f / static_cast<float>(batch);
  WorkspaceCore* prof = w.profiling ? &w : nullptr;
  const double total = run_batch(m, w, batch, grads, prof,
                                 [&](int c, int n0, int n, float* g, ChunkBuffers& b) {
                                   return run_chunk(m, params.data(), x + int64_t{n0} * m.input_size,
                                                    y + n0, n, scale, g, b, c == 0 ? prof : nullptr);
                                 });
  return static_cast<float>(total / batch);
}

float Model::clipped_gradient_sum(std::span<const float> params, const float* x, const int32_t* y,
                                  int batch, double clip, std::span<float> grads, Workspace& ws,
                                  std::span<float> norms) const {
  const Impl& m = *impl_;
  if (static_cast<int64_t>(params.size()) != m.num_params ||
      static_cast<int64_t>(grads.size()) != m.num_params || !(clip > 0.0) ||
      (!norms.empty() && static_cast<int>(norms.size()) < batch)) {
    return std::nanf("");
  }
  if (batch <= 0) {  // an empty Poisson batch: nothing to sum
    std::fill(grads.begin(), grads.end(), 0.0f);
    return 0.0f;
  }
  Workspace::Impl& w = *ws.impl_;
  prepare(m, w, batch);
  const Split sp = split_batch(batch, w.threads);
  for (ChunkBuffers& b : w.chunks) {  // the per-example buffers, on first use
    if (b.keep.size() == m.layers.size() &&
        b.norms2.size() >= static_cast<size_t>(sp.chunk)) {
      continue;
    }
    const int cap = std::max(sp.chunk, static_cast<int>(b.norms2.size()));
    b.keep.clear();
    for (const auto& l : m.layers) b.keep.emplace_back(static_cast<size_t>(cap * l->keep_floats()));
    b.norms2.assign(static_cast<size_t>(cap), 0.0);
    b.clip_scale.assign(static_cast<size_t>(cap), 0.0f);
  }
  const double total = run_batch(m, w, batch, grads, nullptr,
                                 [&](int, int n0, int n, float* g, ChunkBuffers& b) {
                                   return run_chunk_clipped(
                                       m, params.data(), x + int64_t{n0} * m.input_size, y + n0, n,
                                       clip, g, norms.empty() ? nullptr : norms.data() + n0, b);
                                 });
  return static_cast<float>(total / batch);
}

void Model::forward(std::span<const float> params, const float* x, int batch, float* logits,
                    Workspace& ws) const {
  const Impl& m = *impl_;
  if (batch <= 0 || static_cast<int64_t>(params.size()) != m.num_params) return;
  Workspace::Impl& w = *ws.impl_;
  prepare(m, w, batch);
  const Split sp = split_batch(batch, w.threads);
  const kernels::BlasThreadScope blas_threads(w.blas_threads);
  const int classes = m.spec.num_classes;
  auto run = [&](int c) {
    const int n0 = c * sp.chunk;
    const int n = std::min(sp.chunk, batch - n0);
    ChunkBuffers& b = w.chunks[static_cast<size_t>(c)];
    const float* out = run_forward(m, params.data(), x + int64_t{n0} * m.input_size, n, b, nullptr);
    std::copy(out, out + int64_t{n} * classes, logits + int64_t{n0} * classes);
  };
  if (sp.count == 1) {
    run(0);
  } else {
    const int team = w.team->size();
    w.team->run([&](int t) {
      for (int c = t; c < sp.count; c += team) run(c);
    });
  }
}

double Model::forward_backward_reference(std::span<const double> params, const double* x,
                                         const int32_t* y, int batch,
                                         std::span<double> grads) const {
  const Impl& m = *impl_;
  if (static_cast<int64_t>(params.size()) != m.num_params ||
      static_cast<int64_t>(grads.size()) != m.num_params || batch <= 0) {
    return std::nan("");
  }
  ReferencePass r(m, params.data(), x, batch, false);
  const double loss =
      kernels::softmax_xent<double>(r.logits, y, batch, m.spec.num_classes, 1.0 / batch, r.da.data());
  double* dcur = r.da.data();
  for (size_t i = m.layers.size(); i-- > 0;) {
    double* dx = i == 0 ? nullptr : (dcur == r.da.data() ? r.db.data() : r.da.data());
    m.layers[i]->backward(params.data(), r.input(i, x), r.act[i].data(), dcur, dx, grads.data(),
                          batch, {nullptr, r.aux[i].data()});
    dcur = dx;
  }
  return loss / batch;
}

double Model::clipped_gradient_sum_reference(std::span<const double> params, const double* x,
                                             const int32_t* y, int batch, double clip,
                                             std::span<double> grads,
                                             std::span<double> norms) const {
  const Impl& m = *impl_;
  if (static_cast<int64_t>(params.size()) != m.num_params ||
      static_cast<int64_t>(grads.size()) != m.num_params || batch <= 0 ||
      static_cast<int>(norms.size()) < batch) {
    return std::nan("");
  }
  const size_t nl = m.layers.size();
  ReferencePass r(m, params.data(), x, batch, true);
  const double loss = kernels::softmax_xent<double>(r.logits, y, batch, m.spec.num_classes, 1.0, r.da.data());
  std::vector<double> norms2(static_cast<size_t>(batch), 0.0), scale(norms2.size());
  double* dcur = r.da.data();
  for (size_t i = nl; i-- > 0;) {
    double* dx = i == 0 ? nullptr : (dcur == r.da.data() ? r.db.data() : r.da.data());
    m.layers[i]->backward_norms(params.data(), r.input(i, x), r.act[i].data(), dcur, dx,
                                r.keep[i].data(), norms2.data(), batch, {nullptr, r.aux[i].data()});
    dcur = dx;
  }
  for (int i = 0; i < batch; ++i) {
    norms[static_cast<size_t>(i)] = std::sqrt(norms2[static_cast<size_t>(i)]);
    scale[static_cast<size_t>(i)] = clip_factor<double>(norms2[static_cast<size_t>(i)], clip);
  }
  for (size_t i = 0; i < nl; ++i) {
    m.layers[i]->clipped_grads(r.input(i, x), r.keep[i].data(), scale.data(), grads.data(), batch,
                               {nullptr, r.aux[i].data()});
  }
  return loss / batch;
}

}  // namespace fedsilo::model
