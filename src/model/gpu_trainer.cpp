// The CUDA backend of local training and evaluation (see gpu_trainer.h), and the device choice.
//
// Why a CUDA graph per step: at batch 64 the NIID-Bench CNN step is ~40 small launches (gather,
// 7 layers forward, loss, 7 backward with their bias/ReLU kernels, SGD, bookkeeping) whose GPU
// work is a few microseconds each; launched one by one from the host that is ~3-5 us per launch,
// ~150 us a step, the launch-bound regime PyTorch eager is in (~2.3 ms a step on the H200 at
// 27,200 samples/s). Replayed as one graph, the launch cost is paid once per step. To make one
// graph serve every batch, nothing in it changes from step to step: the batch is gathered by a
// step counter the device keeps (kernels/cuda/train_step.h), the loss is summed on the device,
// and divergence is recorded there and checked by the host once per epoch.
#include "model/gpu_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#ifdef FEDSILO_HAVE_CUDA
#include "kernels/cuda/conv2d.h"
#include "kernels/cuda/dense.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/device_props.h"
#include "kernels/cuda/dp_clip.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/graph.h"
#include "kernels/cuda/maxpool2d.h"
#include "kernels/cuda/relu.h"
#include "kernels/cuda/sgd.h"
#include "kernels/cuda/softmax_xent.h"
#include "kernels/cuda/train_step.h"
#include "privacy/dp_random.h"
#endif

namespace fedsilo::model {

bool cuda_built() {
#ifdef FEDSILO_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef FEDSILO_HAVE_CUDA
  return kernels::cuda::device_count();
#else
  return 0;
#endif
}

Result<DeviceChoice> choose_device(const std::string& kind, int local_rank) {
  if (kind == "cpu") return DeviceChoice{};
  if (kind != "cuda" && kind != "auto") {
    return invalid_argument("device.kind = \"" + kind +
                            "\": expected \"cpu\", \"cuda\" or \"auto\"");
  }
  if (!cuda_built()) {
    if (kind == "auto") return DeviceChoice{};
    return invalid_argument(
        "device.kind = \"cuda\": this fedsilo was built without CUDA (configure with "
        "-DFEDSILO_CUDA=ON)");
  }
  const int devices = cuda_device_count();
  if (devices == 0) {
    if (kind == "auto") return DeviceChoice{};
    return failed_precondition(
        "device.kind = \"cuda\": no CUDA device is visible to this process (no GPU, no driver, "
        "or CUDA_VISIBLE_DEVICES hides them); use kind = \"cpu\" or \"auto\"");
  }
  DeviceChoice c;
  c.cuda = true;
  c.device = std::max(0, local_rank) % devices;  // ranks of a node share the GPUs round-robin
#ifdef FEDSILO_HAVE_CUDA
  c.label = "cuda:" + std::to_string(c.device) + " (" + kernels::cuda::device_name(c.device) + ")";
#endif
  return c;
}

#ifndef FEDSILO_HAVE_CUDA

// A build without CUDA: the class exists (callers compile everywhere) and cannot be created.
struct GpuTrainer::Impl {
  std::string label;
};

GpuTrainer::GpuTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuTrainer::~GpuTrainer() = default;

Result<std::unique_ptr<GpuTrainer>> GpuTrainer::create(const Model&, int, int) {
  return invalid_argument(
      "GpuTrainer: this fedsilo was built without CUDA (configure with -DFEDSILO_CUDA=ON)");
}
Result<int> GpuTrainer::add_dataset(const data::Dataset&) {
  return failed_precondition("GpuTrainer: built without CUDA");
}
Result<LocalTrainStats> GpuTrainer::train_local(std::span<float>, std::span<const float>, int,
                                                const LocalTrainOptions&) {
  return failed_precondition("GpuTrainer: built without CUDA");
}
Result<EvalStats> GpuTrainer::evaluate(std::span<const float>, int, int) {
  return failed_precondition("GpuTrainer: built without CUDA");
}
const float* GpuTrainer::params_device() const {
  return nullptr;
}
void* GpuTrainer::stream() {
  return nullptr;
}
const std::string& GpuTrainer::label() const {
  return impl_->label;
}

#else  // FEDSILO_HAVE_CUDA

namespace cu = kernels::cuda;

namespace {

using Clock = std::chrono::steady_clock;

// The rank's stream, destroyed after everything that uses it.
struct OwnedStream {
  cu::Stream s;
  OwnedStream() = default;
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  ~OwnedStream() { cu::destroy_stream(s); }
};

// One uploaded data set.
struct DeviceData {
  cu::DeviceArray<float> x;    // [n x sample] NCHW
  cu::DeviceArray<int32_t> y;  // [n]
  int64_t n = 0;
  Status valid;  // check_data's verdict, made once at upload
};

// What a captured step depends on besides the trainer's fixed buffers: the data set (its
// pointers), the batch stride and size, and the SGD hyperparameters (kernel arguments).
// DP-SGD steps have batch = -(expected batch size) and their clip norm in `clip` (0 otherwise).
struct StepKey {
  int data = -1;
  int batch = 0;
  int rows = 0;
  kernels::SgdHyper<float> h;
  double clip = 0.0;
  bool correction = false;  // SCAFFOLD's correction in the SGD kernel
  bool operator==(const StepKey& o) const {
    return data == o.data && batch == o.batch && rows == o.rows && h.lr == o.h.lr &&
           h.momentum == o.h.momentum && h.weight_decay == o.h.weight_decay &&
           h.prox_mu == o.h.prox_mu && clip == o.clip && correction == o.correction;
  }
};

struct StepGraph {
  StepKey key;
  int uses = 0;     // 0: never run; the first run is a direct launch (warms up lazy loading)
  cu::Graph graph;  // captured on the second run, replayed from then on
};

// Distinct step shapes a run needs: full and last batch (x hyperparameter sets, normally one).
// Past this many the cache starts over rather than growing.
constexpr size_t kMaxGraphs = 16;

// DP-SGD pads each Poisson batch up to a multiple of this many rows, so that a few captured
// shapes serve every batch (at an expected 64, sizes 40-90 need 4 shapes; the padding costs
// at most 15 rows of work).
constexpr int kDpRowQuantum = 16;

template <class T>
Status alloc(cu::DeviceArray<T>& a, int64_t n) {
  a = cu::DeviceArray<T>();  // free first: peak memory is one copy
  FEDSILO_ASSIGN_OR_RETURN(a, cu::DeviceArray<T>::create(static_cast<size_t>(n)));
  return {};
}

}  // namespace

struct GpuTrainer::Impl {
  const Model* model = nullptr;
  std::vector<LayerDesc> layers;
  int device = 0;
  std::string label;
  int64_t np = 0;
  int64_t sample = 0;  // floats per input sample
  int classes = 0;

  // Declaration order is destruction order reversed: the stream outlives the handle and the
  // graphs that run on it.
  OwnedStream stream;
  cu::BlasHandle blas;

  // Fixed size (the model).
  cu::DeviceArray<float> w, g, buf, wg;  // params, grads, momentum, global params
  cu::DeviceArray<float> corr;           // SCAFFOLD's c - c_s (allocated on use)
  bool use_corr = false;                 // this call applies corr after each SGD step
  cu::DeviceArray<cu::StepCounters> counters;
  cu::DeviceArray<double> batch_loss, eval_loss;
  cu::DeviceArray<unsigned long long> eval_correct;

  // Sized for `cap` samples a batch (ensure_capacity).
  int cap = 0;
  std::vector<cu::DeviceArray<float>> act;    // act[i]: output of layer i
  std::vector<cu::DeviceArray<uint8_t>> aux;  // max-pool argmax, per layer (empty for others)
  cu::DeviceArray<float> ga, gb;              // activation gradients, ping-pong
  cu::DeviceArray<float> xb;                  // the gathered batch
  cu::DeviceArray<int32_t> yb, pred;
  cu::DeviceArray<std::byte> conv_ws;  // conv2d_backward's partial sums
  int64_t conv_ws_bytes = 0;

  std::vector<DeviceData> data;
  cu::DeviceArray<int32_t> order;  // the epoch's visiting order, for the largest data set
  std::vector<int64_t> host_order;
  std::vector<int32_t> host_order32;

  // DP-SGD (train_local with opts.dp_random), sized on first use for dp_cap padded rows.
  int dp_cap = 0;
  cu::DeviceArray<int32_t> dp_idx;         // the padded Poisson batch (indices into the data)
  cu::DeviceArray<int32_t> dp_count;       // its real size
  cu::DeviceArray<float> dp_noise;         // the step's noise, drawn on the host (num_params)
  cu::DeviceArray<double> dp_norms2;       // each row's squared gradient norm
  cu::DeviceArray<float> dp_scale;         // each row's clip factor
  cu::DeviceArray<float> dp_scratch;       // conv2d_backward's dw / db (discarded) for dx
  cu::DeviceArray<long long> dp_samples;   // real samples over the call
  std::vector<cu::DeviceArray<float>> dp_keep;  // per layer: rows x keep floats (dense: d;
                                                // conv: each sample's dw and db)
  std::vector<int32_t> dp_idx_host;
  std::vector<float> dp_noise_host;

  std::vector<StepGraph> graphs;  // last: destroyed first

  cu::Stream st() const { return stream.s; }

  uint32_t* nonfinite_flag() {
    return reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(counters.data()) +
                                       offsetof(cu::StepCounters, params_nonfinite));
  }

  Status ensure_capacity(int rows);
  Status enqueue_forward(const float* x, int rows);
  Status enqueue_step(const DeviceData& d, int batch, int rows, const kernels::SgdHyper<float>& h);
  // The start of a train call: parameters in (and the global ones for FedProx), a fresh momentum
  // buffer (zeros: see enqueue_step), the counters reset.
  Status begin_call(std::span<const float> params, std::span<const float> global_params,
                    const kernels::SgdHyper<float>& h);
  // Reads the counters after an epoch into c: kDiverged naming the first bad step, as the CPU.
  Status end_epoch(const LocalTrainOptions& opts, int epoch, cu::StepCounters& c);
  template <typename Enqueue>
  Status run_cached(const StepKey& key, const Enqueue& enqueue);
  Status run_step(int data_id, int batch, int rows, const kernels::SgdHyper<float>& h);

  Status ensure_dp_capacity(int rows);
  Status enqueue_dp_clipped_sum(const DeviceData& d, int rows, double clip);
  Status enqueue_dp_step(const DeviceData& d, int rows, double clip, float inv_batch,
                         const kernels::SgdHyper<float>& h);
  Status run_dp_step(int data_id, int rows, int expected, double clip,
                     const kernels::SgdHyper<float>& h);
  Result<LocalTrainStats> train_local_dp(std::span<float> params,
                                         std::span<const float> global_params, int data_id,
                                         const LocalTrainOptions& opts);
};

Status GpuTrainer::Impl::ensure_capacity(int rows) {
  if (rows <= cap) return {};
  // A step launched before may still read the buffers replaced below (DP-SGD grows them between
  // steps), and captured graphs hold pointers into them.
  FEDSILO_CHECK(cu::synchronize(st()));
  graphs.clear();
  int64_t widest = sample;
  act.resize(layers.size());
  aux.resize(layers.size());
  conv_ws_bytes = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    widest = std::max(widest, l.out_size);
    FEDSILO_CHECK(alloc(act[i], int64_t{rows} * l.out_size));
    if (l.kind == LayerDesc::Kind::kMaxPool2x2) {
      FEDSILO_CHECK(alloc(aux[i], int64_t{rows} * l.out_size));
    }
    if (l.kind == LayerDesc::Kind::kConv2d) {
      // The scratch depends on the batch through the kernel's chunking: take the largest need of
      // every batch size up to rows (host arithmetic only).
      for (int b = 1; b <= rows; ++b) {
        const kernels::Conv2dShape s{b, l.c, l.h, l.w, l.out_c, l.k};
        conv_ws_bytes = std::max(conv_ws_bytes, cu::conv2d_backward_workspace_bytes(s));
      }
    }
  }
  FEDSILO_CHECK(alloc(ga, int64_t{rows} * widest));
  FEDSILO_CHECK(alloc(gb, int64_t{rows} * widest));
  FEDSILO_CHECK(alloc(xb, int64_t{rows} * sample));
  FEDSILO_CHECK(alloc(yb, rows));
  FEDSILO_CHECK(alloc(pred, rows));
  FEDSILO_CHECK(alloc(conv_ws, std::max<int64_t>(conv_ws_bytes, 1)));
  cap = rows;
  return {};
}

Status GpuTrainer::Impl::enqueue_forward(const float* x, int rows) {
  const float* in = x;
  const float* p = w.data();
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    float* out = act[i].data();
    switch (l.kind) {
      case LayerDesc::Kind::kDense: {
        const kernels::DenseShape s{rows, l.dense_in, l.dense_out};
        FEDSILO_CHECK(
            cu::dense_forward(blas, s, in, p + l.weight_offset, p + l.bias_offset, l.relu, out));
        break;
      }
      case LayerDesc::Kind::kConv2d: {
        const kernels::Conv2dShape s{rows, l.c, l.h, l.w, l.out_c, l.k};
        FEDSILO_CHECK(
            cu::conv2d_forward(s, in, p + l.weight_offset, p + l.bias_offset, l.relu, out, st()));
        break;
      }
      case LayerDesc::Kind::kMaxPool2x2: {
        const kernels::Pool2dShape s{rows, l.c, l.h, l.w};
        FEDSILO_CHECK(cu::maxpool2x2_forward(s, in, out, aux[i].data(), st()));
        break;
      }
    }
    in = out;
  }
  return {};
}

// One training step on `rows` samples: everything on the stream, no host read, no allocation
// (capturable). The batch is batch number counters->step of the epoch's order.
Status GpuTrainer::Impl::enqueue_step(const DeviceData& d, int batch, int rows,
                                      const kernels::SgdHyper<float>& h) {
  FEDSILO_CHECK(cu::gather_batch(d.x.data(), d.y.data(), d.n, sample, order.data(), counters.data(),
                                 batch, rows, xb.data(), yb.data(), st()));
  FEDSILO_CHECK(enqueue_forward(xb.data(), rows));
  // d(mean loss)/d(logits), as the CPU: scale 1/rows (float).
  FEDSILO_CHECK(cu::softmax_xent(act.back().data(), yb.data(), rows, classes,
                                 1.0f / static_cast<float>(rows), ga.data(), batch_loss.data(),
                                 false, st()));
  const float* p = w.data();
  float* grad = g.data();
  float* dcur = ga.data();
  for (size_t i = layers.size(); i-- > 0;) {
    const LayerDesc& l = layers[i];
    // The first layer's input gradient is never needed (as on the CPU).
    float* dx = i == 0 ? nullptr : (dcur == ga.data() ? gb.data() : ga.data());
    const float* x_in = i == 0 ? xb.data() : act[i - 1].data();
    const float* y_out = act[i].data();
    switch (l.kind) {
      case LayerDesc::Kind::kDense: {
        const kernels::DenseShape s{rows, l.dense_in, l.dense_out};
        FEDSILO_CHECK(cu::dense_backward(blas, s, x_in, p + l.weight_offset, y_out, l.relu, dcur,
                                         dx, grad + l.weight_offset, grad + l.bias_offset));
        break;
      }
      case LayerDesc::Kind::kConv2d: {
        const kernels::Conv2dShape s{rows, l.c, l.h, l.w, l.out_c, l.k};
        FEDSILO_CHECK(cu::conv2d_backward(s, x_in, p + l.weight_offset, y_out, l.relu, dcur, dx,
                                          grad + l.weight_offset, grad + l.bias_offset,
                                          conv_ws.data(), conv_ws_bytes, st()));
        break;
      }
      case LayerDesc::Kind::kMaxPool2x2: {
        if (dx != nullptr) {
          const kernels::Pool2dShape s{rows, l.c, l.h, l.w};
          FEDSILO_CHECK(cu::maxpool2x2_backward(s, dcur, aux[i].data(), dx, st()));
        }
        break;
      }
    }
    dcur = dx;
  }
  // The momentum buffer was zeroed at the start of the call, so the "running" form is the
  // first step too: buf = momentum * 0 + d = d exactly. One graph then serves every step.
  FEDSILO_CHECK(cu::sgd_update(w.data(), g.data(), h.momentum != 0.0f ? buf.data() : nullptr,
                               h.prox_mu != 0.0f ? wg.data() : nullptr, np, h, false,
                               nonfinite_flag(), st(), use_corr ? corr.data() : nullptr));
  return cu::end_step(batch_loss.data(), rows, counters.data(), st());
}

// Runs one step through the graph cache: the first time a key is met the step launches
// directly (kernels are loaded lazily on first use, which must not happen inside a capture; a
// step used once then costs no capture), the second time it is captured, then replayed.
template <typename Enqueue>
Status GpuTrainer::Impl::run_cached(const StepKey& key, const Enqueue& enqueue) {
  StepGraph* sg = nullptr;
  for (auto& e : graphs) {
    if (e.key == key) sg = &e;
  }
  if (sg == nullptr) {
    if (graphs.size() >= kMaxGraphs) graphs.clear();
    graphs.push_back(StepGraph{key, 0, cu::Graph()});
    sg = &graphs.back();
  }
  if (sg->graph.empty()) {
    if (sg->uses == 0) {
      ++sg->uses;
      return enqueue();
    }
    FEDSILO_ASSIGN_OR_RETURN(sg->graph, cu::Graph::capture(st(), enqueue));
  }
  ++sg->uses;
  return sg->graph.launch(st());
}

Status GpuTrainer::Impl::run_step(int data_id, int batch, int rows,
                                  const kernels::SgdHyper<float>& h) {
  StepKey key{data_id, batch, rows, h};
  key.correction = use_corr;
  const DeviceData& d = data[static_cast<size_t>(data_id)];
  return run_cached(key, [&]() -> Status { return enqueue_step(d, batch, rows, h); });
}

Status GpuTrainer::Impl::begin_call(std::span<const float> params,
                                    std::span<const float> global_params,
                                    const kernels::SgdHyper<float>& h) {
  const cu::Stream s = st();
  FEDSILO_CHECK(cu::copy_to_device(w.data(), params.data(), params.size_bytes(), s));
  if (h.prox_mu != 0.0f) {
    FEDSILO_CHECK(
        cu::copy_to_device(wg.data(), global_params.data(), global_params.size_bytes(), s));
  }
  if (h.momentum != 0.0f) {
    FEDSILO_CHECK(cu::fill_bytes(buf.data(), 0, static_cast<size_t>(np) * sizeof(float), s));
  }
  return cu::reset_step_counters(counters.data(), true, s);
}

Status GpuTrainer::Impl::end_epoch(const LocalTrainOptions& opts, int epoch,
                                   cu::StepCounters& c) {
  FEDSILO_CHECK(cu::copy_to_host(&c, counters.data(), sizeof c, st()));
  if (c.first_bad_loss >= 0 &&
      (c.first_bad_params < 0 || c.first_bad_loss <= c.first_bad_params)) {
    // As the CPU, which checks the loss before the update of the same step.
    return Status(StatusCode::kDiverged, train_position(opts, epoch, c.first_bad_loss + 1) +
                                             ": loss is " +
                                             (c.bad_loss_is_nan != 0u ? "nan" : "inf"));
  }
  if (c.first_bad_params >= 0) {
    return Status(StatusCode::kDiverged, train_position(opts, epoch, c.first_bad_params + 1) +
                                             ": parameters are not finite after the update");
  }
  return {};
}

Status GpuTrainer::Impl::ensure_dp_capacity(int rows) {
  FEDSILO_CHECK(ensure_capacity(rows));
  if (rows <= dp_cap) return {};
  FEDSILO_CHECK(cu::synchronize(st()));  // the previous step may still read these buffers
  graphs.clear();  // they hold pointers into the buffers replaced below
  int64_t conv_largest = 1;
  dp_keep.resize(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    if (l.kind == LayerDesc::Kind::kDense) {
      FEDSILO_CHECK(alloc(dp_keep[i], int64_t{rows} * l.dense_out));
    } else if (l.kind == LayerDesc::Kind::kConv2d) {
      const int64_t per = int64_t{l.out_c} * l.c * l.k * l.k + l.out_c;
      conv_largest = std::max(conv_largest, per);
      FEDSILO_CHECK(alloc(dp_keep[i], int64_t{rows} * per));
    }
  }
  FEDSILO_CHECK(alloc(dp_idx, rows));
  FEDSILO_CHECK(alloc(dp_norms2, rows));
  FEDSILO_CHECK(alloc(dp_scale, rows));
  FEDSILO_CHECK(alloc(dp_scratch, conv_largest));
  if (dp_count.size() == 0) {
    FEDSILO_CHECK(alloc(dp_count, 1));
    FEDSILO_CHECK(alloc(dp_samples, 1));
    FEDSILO_CHECK(alloc(dp_noise, np));
  }
  dp_cap = rows;
  return {};
}

// The sum over the padded batch of each example's gradient clipped to L2 norm `clip`, into g:
// the CPU's run_chunk_clipped. Pass 1 runs the backward pass for the activation gradients and
// each row's squared norm (dense: the ghost norm from the kept pre-activation gradient; conv:
// each sample's gradient, materialised and kept); pass 2 sums the kept gradients with the clip
// factors. Padded rows have a zero loss gradient, so they add exactly nothing.
Status GpuTrainer::Impl::enqueue_dp_clipped_sum(const DeviceData& d, int rows, double clip) {
  const cu::Stream s = st();
  FEDSILO_CHECK(cu::gather_rows(d.x.data(), d.y.data(), d.n, sample, dp_idx.data(), rows, xb.data(),
                                yb.data(), s));
  FEDSILO_CHECK(enqueue_forward(xb.data(), rows));
  FEDSILO_CHECK(cu::masked_softmax_xent(act.back().data(), yb.data(), dp_count.data(), rows,
                                        classes, ga.data(), batch_loss.data(), s));
  FEDSILO_CHECK(cu::fill_bytes(dp_norms2.data(), 0, static_cast<size_t>(rows) * sizeof(double), s));
  const float* p = w.data();
  float* dcur = ga.data();
  for (size_t i = layers.size(); i-- > 0;) {
    const LayerDesc& l = layers[i];
    float* dx = i == 0 ? nullptr : (dcur == ga.data() ? gb.data() : ga.data());
    const float* x_in = i == 0 ? xb.data() : act[i - 1].data();
    const float* y_out = act[i].data();
    switch (l.kind) {
      case LayerDesc::Kind::kDense: {
        if (l.relu)
          FEDSILO_CHECK(cu::relu_backward(y_out, dcur, dcur, int64_t{rows} * l.dense_out, s));
        if (dx != nullptr) {
          FEDSILO_CHECK(cu::gemm(blas, false, false, rows, l.dense_in, l.dense_out, 1.0f, dcur,
                                 l.dense_out, p + l.weight_offset, l.dense_in, 0.0f, dx,
                                 l.dense_in));
        }
        FEDSILO_CHECK(
            cu::add_ghost_norms(dcur, l.dense_out, x_in, l.dense_in, rows, dp_norms2.data(), s));
        FEDSILO_CHECK(cu::copy_on_device(
            dp_keep[i].data(), dcur, static_cast<size_t>(rows) * l.dense_out * sizeof(float), s));
        break;
      }
      case LayerDesc::Kind::kConv2d: {
        const kernels::Conv2dShape shape{rows, l.c, l.h, l.w, l.out_c, l.k};
        if (l.relu)
          FEDSILO_CHECK(cu::relu_backward(y_out, dcur, dcur, int64_t{rows} * l.out_size, s));
        FEDSILO_CHECK(cu::conv2d_per_sample_grads(shape, x_in, dcur, dp_keep[i].data(), s));
        const int64_t per = int64_t{l.out_c} * l.c * l.k * l.k + l.out_c;
        FEDSILO_CHECK(cu::add_row_sq_norms(dp_keep[i].data(), per, rows, dp_norms2.data(), s));
        if (dx != nullptr) {
          float* dw = dp_scratch.data();
          FEDSILO_CHECK(cu::conv2d_backward(shape, x_in, p + l.weight_offset, y_out, false, dcur,
                                            dx, dw, dw + (per - l.out_c), conv_ws.data(),
                                            conv_ws_bytes, s));
        }
        break;
      }
      case LayerDesc::Kind::kMaxPool2x2: {
        if (dx != nullptr) {
          const kernels::Pool2dShape ps{rows, l.c, l.h, l.w};
          FEDSILO_CHECK(cu::maxpool2x2_backward(ps, dcur, aux[i].data(), dx, s));
        }
        break;
      }
    }
    dcur = dx;
  }
  FEDSILO_CHECK(cu::clip_factors(dp_norms2.data(), rows, clip, dp_scale.data(), s));
  float* grad = g.data();
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    const float* x_in = i == 0 ? xb.data() : act[i - 1].data();
    if (l.kind == LayerDesc::Kind::kDense) {
      // sum_i s_i d_i x_i^T: the rows scaled, then one GEMM; the bias is the rows' sum.
      float* keep = dp_keep[i].data();
      FEDSILO_CHECK(cu::scale_rows(keep, l.dense_out, rows, dp_scale.data(), s));
      FEDSILO_CHECK(cu::gemm(blas, true, false, l.dense_out, l.dense_in, rows, 1.0f, keep,
                             l.dense_out, x_in, l.dense_in, 0.0f, grad + l.weight_offset,
                             l.dense_in));
      FEDSILO_CHECK(cu::weighted_row_sums(keep, l.dense_out, rows, nullptr, grad + l.bias_offset,
                                          l.dense_out, nullptr, s));
    } else if (l.kind == LayerDesc::Kind::kConv2d) {
      const int64_t weights = int64_t{l.out_c} * l.c * l.k * l.k;
      FEDSILO_CHECK(cu::weighted_row_sums(dp_keep[i].data(), weights + l.out_c, rows,
                                          dp_scale.data(), grad + l.weight_offset, weights,
                                          grad + l.bias_offset, s));
    }
  }
  return {};
}

// One DP-SGD step with the Gaussian noise already in dp_noise (scaled): capturable.
Status GpuTrainer::Impl::enqueue_dp_step(const DeviceData& d, int rows, double clip,
                                         float inv_batch, const kernels::SgdHyper<float>& h) {
  FEDSILO_CHECK(enqueue_dp_clipped_sum(d, rows, clip));
  FEDSILO_CHECK(cu::add_scaled_noise(g.data(), dp_noise.data(), np, inv_batch, st()));
  FEDSILO_CHECK(cu::sgd_update(w.data(), g.data(), h.momentum != 0.0f ? buf.data() : nullptr,
                               h.prox_mu != 0.0f ? wg.data() : nullptr, np, h, false,
                               nonfinite_flag(), st(), use_corr ? corr.data() : nullptr));
  return cu::end_dp_step(batch_loss.data(), dp_count.data(), counters.data(), dp_samples.data(),
                         st());
}

Status GpuTrainer::Impl::run_dp_step(int data_id, int rows, int expected, double clip,
                                     const kernels::SgdHyper<float>& h) {
  const StepKey key{data_id, -expected, rows, h, clip, use_corr};
  const DeviceData& d = data[static_cast<size_t>(data_id)];
  const float inv = 1.0f / static_cast<float>(expected);
  return run_cached(key, [&]() -> Status { return enqueue_dp_step(d, rows, clip, inv, h); });
}

// DP-SGD as model::train_local's (trainer.cpp): the same Poisson batches and the same noise,
// both drawn on the host from opts.dp_random's secret streams, so a run on the GPU equals the
// CPU's to float rounding. Per step the host draws the batch and the noise while the device
// runs the previous step, then uploads both (the copy waits for that step) and replays the
// step's graph; the hardened sampler (dp_discrete) needs the clipped sum on the host, so its
// steps run without a graph and read the sum back.
Result<LocalTrainStats> GpuTrainer::Impl::train_local_dp(std::span<float> params,
                                                         std::span<const float> global_params,
                                                         int data_id,
                                                         const LocalTrainOptions& opts) {
  const auto t_start = Clock::now();
  const DeviceData& d = data[static_cast<size_t>(data_id)];
  const int64_t n = d.n;
  LocalTrainStats stats;
  if (!(opts.dp_clip > 0.0) || !(opts.dp_noise_multiplier > 0.0)) {
    return invalid_argument(
        "train_local: DP-SGD needs privacy.clip > 0 and a noise multiplier > 0");
  }
  if (opts.batch_size > n) {
    return invalid_argument("local.batch_size = " + std::to_string(opts.batch_size) +
                            " is larger than silo " + std::to_string(opts.silo) + "'s " +
                            std::to_string(n) +
                            " training records (privacy.level = \"sample\" "
                            "samples each batch with rate batch_size / records, at most 1)");
  }
  if (n > INT32_MAX)
    return invalid_argument("train_local: DP-SGD on the GPU takes up to 2^31 records");
  const int expected = opts.batch_size;
  const double q = static_cast<double>(expected) / static_cast<double>(n);
  const int64_t steps_per_epoch = (n + expected - 1) / expected;
  const double sigma = opts.dp_noise_multiplier * opts.dp_clip;
  const float inv = 1.0f / static_cast<float>(expected);
  const kernels::SgdHyper<float> h{opts.lr, opts.momentum, opts.weight_decay, opts.prox_mu};
  const cu::Stream s = st();
  // Room for all but the rarest batch sizes up front (expected + 5 standard deviations):
  // growing later clears the captured graphs.
  const int typical = expected + static_cast<int>(std::ceil(5.0 * std::sqrt(expected))) + 1;
  FEDSILO_CHECK(ensure_dp_capacity((typical + kDpRowQuantum - 1) / kDpRowQuantum * kDpRowQuantum));

  FEDSILO_CHECK(begin_call(params, global_params, h));
  FEDSILO_CHECK(cu::fill_bytes(dp_samples.data(), 0, sizeof(long long), s));
  std::vector<int64_t> picked;
  dp_noise_host.resize(static_cast<size_t>(np));
  cu::StepCounters c{};
  uint32_t step = 0;
  for (int epoch = 1; epoch <= opts.epochs; ++epoch) {
    FEDSILO_CHECK(cu::reset_step_counters(counters.data(), false, s));
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      if (opts.stop != nullptr && *opts.stop != 0) {
        return Status(StatusCode::kCancelled,
                      train_position(opts, epoch, b + 1) + ": stopped by a signal");
      }
      FEDSILO_CHECK(opts.dp_random->poisson_sample(step, n, q, picked));
      const int real = static_cast<int>(picked.size());
      const int rows = std::max(1, (real + kDpRowQuantum - 1) / kDpRowQuantum) * kDpRowQuantum;
      FEDSILO_CHECK(ensure_dp_capacity(rows));
      // Padding rows: index -1 gathers zeros and label -1, which the masked loss skips, so no
      // record takes part in a step that did not draw it (a non-finite record included).
      dp_idx_host.assign(static_cast<size_t>(rows), -1);
      for (int i = 0; i < real; ++i)
        dp_idx_host[static_cast<size_t>(i)] = static_cast<int32_t>(picked[static_cast<size_t>(i)]);
      if (!opts.dp_discrete) {
        std::fill(dp_noise_host.begin(), dp_noise_host.end(), 0.0f);
        FEDSILO_CHECK(opts.dp_random->add_gaussian(step, sigma, dp_noise_host, nullptr, inv));
      }
      // Synchronous copies: the previous step has finished reading these buffers.
      FEDSILO_CHECK(cu::copy_to_device(dp_idx.data(), dp_idx_host.data(),
                                       static_cast<size_t>(rows) * sizeof(int32_t), s));
      FEDSILO_CHECK(cu::copy_to_device(dp_count.data(), &real, sizeof real, s));
      if (!opts.dp_discrete) {
        FEDSILO_CHECK(cu::copy_to_device(dp_noise.data(), dp_noise_host.data(),
                                         dp_noise_host.size() * sizeof(float), s));
        FEDSILO_CHECK(run_dp_step(data_id, rows, expected, opts.dp_clip, h));
        continue;
      }
      // The hardened sampler: the clipped sum to the host, noised there, and back.
      FEDSILO_CHECK(enqueue_dp_clipped_sum(d, rows, opts.dp_clip));
      FEDSILO_CHECK(cu::copy_to_host(dp_noise_host.data(), g.data(),
                                     dp_noise_host.size() * sizeof(float), s));
      FEDSILO_CHECK(opts.dp_random->add_discrete_gaussian(
          step, opts.dp_noise_multiplier, opts.dp_clip, dp_noise_host, nullptr, inv));
      FEDSILO_CHECK(cu::copy_to_device(g.data(), dp_noise_host.data(),
                                       dp_noise_host.size() * sizeof(float), s));
      FEDSILO_CHECK(cu::sgd_update(w.data(), g.data(), h.momentum != 0.0f ? buf.data() : nullptr,
                                   h.prox_mu != 0.0f ? wg.data() : nullptr, np, h, false,
                                   nonfinite_flag(), s, use_corr ? corr.data() : nullptr));
      FEDSILO_CHECK(cu::end_dp_step(batch_loss.data(), dp_count.data(), counters.data(),
                                    dp_samples.data(), s));
    }
    FEDSILO_CHECK(end_epoch(opts, epoch, c));
  }
  long long samples = 0;
  FEDSILO_CHECK(cu::copy_to_host(&samples, dp_samples.data(), sizeof samples, s));
  FEDSILO_CHECK(cu::copy_to_host(params.data(), w.data(), params.size_bytes(), s));
  stats.steps = step;
  stats.samples_processed = samples;
  stats.mean_loss = samples > 0 ? c.loss_sum / static_cast<double>(samples) : 0.0;
  stats.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return stats;
}

GpuTrainer::GpuTrainer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GpuTrainer::~GpuTrainer() {
  if (impl_ != nullptr) {
    (void)cu::set_device(impl_->device);  // frees below run on the trainer's device
    (void)cu::synchronize(impl_->st());
  }
}

Result<std::unique_ptr<GpuTrainer>> GpuTrainer::create(const Model& model, int device,
                                                       int max_batch) {
  if (device < 0 || device >= cu::device_count()) {
    return invalid_argument("GpuTrainer: CUDA device " + std::to_string(device) +
                            " does not exist (" + std::to_string(cu::device_count()) + " visible)");
  }
  FEDSILO_CHECK(cu::set_device(device));
  auto impl = std::make_unique<Impl>();
  Impl& m = *impl;
  m.model = &model;
  m.layers = model.layers();
  m.device = device;
  m.label = "cuda:" + std::to_string(device) + " (" + cu::device_name(device) + ")";
  m.np = model.num_params();
  const auto& chw = model.spec().input_chw;
  m.sample = int64_t{chw[0]} * chw[1] * chw[2];
  m.classes = model.spec().num_classes;
  if (m.layers.empty()) return invalid_argument("GpuTrainer: the model has no layers");
  FEDSILO_ASSIGN_OR_RETURN(m.stream.s, cu::create_stream());
  FEDSILO_ASSIGN_OR_RETURN(m.blas, cu::BlasHandle::create(m.stream.s));
  FEDSILO_CHECK(alloc(m.w, m.np));
  FEDSILO_CHECK(alloc(m.g, m.np));
  FEDSILO_CHECK(alloc(m.buf, m.np));
  FEDSILO_CHECK(alloc(m.wg, m.np));
  FEDSILO_CHECK(alloc(m.counters, 1));
  FEDSILO_CHECK(alloc(m.batch_loss, 1));
  FEDSILO_CHECK(alloc(m.eval_loss, 1));
  FEDSILO_CHECK(alloc(m.eval_correct, 1));
  FEDSILO_CHECK(m.ensure_capacity(std::max(1, max_batch)));
  return std::unique_ptr<GpuTrainer>(new GpuTrainer(std::move(impl)));
}

Result<int> GpuTrainer::add_dataset(const data::Dataset& ds) {
  Impl& m = *impl_;
  FEDSILO_CHECK(cu::set_device(m.device));
  DeviceData d;
  d.valid = check_data(*m.model, ds);
  d.n = ds.size();
  if (d.valid.ok()) {
    FEDSILO_ASSIGN_OR_RETURN(d.x, cu::DeviceArray<float>::from_host(ds.x, m.st()));
    FEDSILO_ASSIGN_OR_RETURN(d.y, cu::DeviceArray<int32_t>::from_host(ds.y, m.st()));
    if (static_cast<int64_t>(m.order.size()) < d.n) {
      m.graphs.clear();  // they gather through the old `order`
      FEDSILO_CHECK(alloc(m.order, d.n));
    }
  }
  m.data.push_back(std::move(d));
  return static_cast<int>(m.data.size()) - 1;
}

Result<LocalTrainStats> GpuTrainer::train_local(std::span<float> params,
                                                std::span<const float> global_params, int data,
                                                const LocalTrainOptions& opts) {
  const auto t_start = Clock::now();
  Impl& m = *impl_;
  FEDSILO_CHECK(check_train_args(*m.model, static_cast<int64_t>(params.size()),
                                 static_cast<int64_t>(global_params.size()), opts));
  if (data < 0 || data >= static_cast<int>(m.data.size())) {
    return invalid_argument("GpuTrainer::train_local: unknown data set " + std::to_string(data));
  }
  const DeviceData& d = m.data[static_cast<size_t>(data)];
  FEDSILO_CHECK(d.valid);
  const int64_t n = d.n;
  LocalTrainStats stats;
  FEDSILO_CHECK(cu::set_device(m.device));
  if (n == 0 || opts.epochs == 0) {
    // Nothing to train: the device parameters still become `params` (the device sum reads them).
    FEDSILO_CHECK(cu::copy_to_device(m.w.data(), params.data(), params.size_bytes(), m.st()));
    return stats;
  }
  m.use_corr = !opts.correction.empty();
  if (m.use_corr) {
    if (m.corr.size() == 0) FEDSILO_CHECK(alloc(m.corr, m.np));
    FEDSILO_CHECK(cu::copy_to_device(m.corr.data(), opts.correction.data(),
                                     opts.correction.size_bytes(), m.st()));
  }
  if (opts.dp_random != nullptr) return m.train_local_dp(params, global_params, data, opts);

  const int batch = static_cast<int>(std::min<int64_t>(opts.batch_size, n));
  FEDSILO_CHECK(m.ensure_capacity(batch));
  const int64_t batches = (n + batch - 1) / batch;
  const int last_rows = static_cast<int>(n - (batches - 1) * batch);
  const kernels::SgdHyper<float> h{opts.lr, opts.momentum, opts.weight_decay, opts.prox_mu};
  const cu::Stream s = m.st();

  FEDSILO_CHECK(m.begin_call(params, global_params, h));

  // The CPU's stream and draws: epoch e's order is the e-th Fisher-Yates draw.
  Philox rng(opts.seed, opts.round, opts.silo, RngPurpose::kShuffle);
  m.host_order.resize(static_cast<size_t>(n));
  m.host_order32.resize(static_cast<size_t>(n));
  draw_epoch_order(rng, m.host_order);
  cu::StepCounters c{};
  for (int epoch = 1; epoch <= opts.epochs; ++epoch) {
    std::copy(m.host_order.begin(), m.host_order.end(), m.host_order32.begin());
    // Synchronous: the previous epoch's steps have finished reading `order` (read back below).
    FEDSILO_CHECK(cu::copy_to_device(m.order.data(), m.host_order32.data(),
                                     m.host_order32.size() * sizeof(int32_t), s));
    FEDSILO_CHECK(cu::reset_step_counters(m.counters.data(), false, s));
    for (int64_t b = 0; b < batches; ++b) {
      if (opts.stop != nullptr && *opts.stop != 0) {
        return Status(StatusCode::kCancelled,
                      train_position(opts, epoch, b + 1) + ": stopped by a signal");
      }
      FEDSILO_CHECK(m.run_step(data, batch, b + 1 < batches ? batch : last_rows, h));
    }
    // The next epoch's shuffle on the host while the device runs this one.
    if (epoch < opts.epochs) draw_epoch_order(rng, m.host_order);
    FEDSILO_CHECK(m.end_epoch(opts, epoch, c));
  }
  FEDSILO_CHECK(cu::copy_to_host(params.data(), m.w.data(), params.size_bytes(), s));
  stats.samples_processed = n * opts.epochs;
  stats.steps = batches * opts.epochs;
  stats.mean_loss = c.loss_sum / static_cast<double>(stats.samples_processed);
  stats.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return stats;
}

Result<EvalStats> GpuTrainer::evaluate(std::span<const float> params, int data, int batch_size) {
  Impl& m = *impl_;
  EvalStats stats;
  const bool known = data >= 0 && data < static_cast<int>(m.data.size());
  if (!known || m.data[static_cast<size_t>(data)].n == 0 || batch_size <= 0 ||
      static_cast<int64_t>(params.size()) != m.np ||
      !m.data[static_cast<size_t>(data)].valid.ok()) {
    stats.mean_loss = std::nan("");  // as model::evaluate
    stats.accuracy = std::nan("");
    return stats;
  }
  FEDSILO_CHECK(cu::set_device(m.device));
  const DeviceData& d = m.data[static_cast<size_t>(data)];
  const int64_t n = d.n;
  const int batch = static_cast<int>(std::min<int64_t>(batch_size, n));
  FEDSILO_CHECK(m.ensure_capacity(batch));
  const cu::Stream s = m.st();
  FEDSILO_CHECK(cu::copy_to_device(m.w.data(), params.data(), params.size_bytes(), s));
  for (int64_t first = 0; first < n; first += batch) {
    const int rows = static_cast<int>(std::min<int64_t>(batch, n - first));
    const int32_t* y = d.y.data() + first;
    FEDSILO_CHECK(m.enqueue_forward(d.x.data() + first * m.sample, rows));
    const float* logits = m.act.back().data();
    // Per-batch sums added in batch order, as the CPU's loss_sum.
    FEDSILO_CHECK(cu::softmax_xent(logits, y, rows, m.classes, 0.0f, nullptr, m.eval_loss.data(),
                                   first > 0, s));
    FEDSILO_CHECK(cu::argmax_rows(logits, rows, m.classes, m.pred.data(), s));
    FEDSILO_CHECK(cu::count_correct(m.pred.data(), y, rows, m.eval_correct.data(), first > 0, s));
  }
  double loss = 0.0;
  unsigned long long correct = 0;
  FEDSILO_CHECK(cu::copy_to_host(&loss, m.eval_loss.data(), sizeof loss, s));
  FEDSILO_CHECK(cu::copy_to_host(&correct, m.eval_correct.data(), sizeof correct, s));
  stats.samples = n;
  stats.correct = static_cast<int64_t>(correct);
  stats.mean_loss = loss / static_cast<double>(n);
  stats.accuracy = static_cast<double>(stats.correct) / static_cast<double>(n);
  return stats;
}

const float* GpuTrainer::params_device() const {
  return impl_->w.data();
}

void* GpuTrainer::stream() {
  return impl_->st().handle;
}

const std::string& GpuTrainer::label() const {
  return impl_->label;
}

#endif  // FEDSILO_HAVE_CUDA

}  // namespace fedsilo::model
