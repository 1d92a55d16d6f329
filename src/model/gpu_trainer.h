// Local training and evaluation on a CUDA device (the `[device] kind = "cuda"` backend), with
// the contract of train_local / evaluate in trainer.h, and the choice of the device itself.
// Plain C++: compiled in every build; without CUDA (FEDSILO_HAVE_CUDA undefined) the device is
// always the CPU and GpuTrainer::create says why it cannot run.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/status.h"
#include "data/dataset.h"
#include "model/model.h"
#include "model/trainer.h"

namespace fedsilo::model {

/// Where a rank trains: the CPU, or CUDA device `device`.
struct DeviceChoice {
  bool cuda = false;
  int device = -1;            // CUDA device index when cuda
  std::string label = "cpu";  // for the banner and metrics: "cpu", "cuda:0 (NVIDIA H200)"
};

/// True when this fedsilo was built with the CUDA backend.
[[nodiscard]] bool cuda_built();
/// CUDA devices this process sees (0 without CUDA, a driver or a GPU).
[[nodiscard]] int cuda_device_count();

/// This process's device for `[device] kind`:
///  - "cpu": the CPU;
///  - "cuda": device local_rank % devices (ranks of a node share the GPUs round-robin);
///    kInvalidArgument in a build without CUDA, kFailedPrecondition when no device is visible;
///  - "auto": as "cuda" when a device is visible, else the CPU.
/// Rank-local: the caller agrees across ranks (run_federation: "auto" takes CUDA only when every
/// rank has a device).
[[nodiscard]] Result<DeviceChoice> choose_device(const std::string& kind, int local_rank);

/// Trains and evaluates one model on one CUDA device. Created once per run: the data sets are
/// uploaded once (add_dataset) and stay on the device, and parameters, gradients, momentum,
/// the global parameters and every activation live there; train_local copies the parameters in
/// and out, nothing else crosses per call. One training step (gather by index, forward, loss,
/// backward, fused SGD) is captured as a CUDA graph the second time a batch shape is met and
/// replayed from then on, so a step costs one launch and no host synchronisation; the host
/// reads the device once per epoch (loss, divergence).
/// Results equal the CPU's to float rounding (the kernels sum in other orders) and are bitwise
/// identical run to run on one GPU. Not thread-safe; the model must outlive it.
class GpuTrainer {
 public:
  /// Selects `device` for the calling thread, creates a stream and a cuBLAS handle, and
  /// allocates buffers for batches of up to max_batch samples (train and eval; they grow when
  /// a call needs more). kInvalidArgument in a build without CUDA.
  [[nodiscard]] static Result<std::unique_ptr<GpuTrainer>> create(const Model& model, int device,
                                                                  int max_batch);
  ~GpuTrainer();
  GpuTrainer(const GpuTrainer&) = delete;
  GpuTrainer& operator=(const GpuTrainer&) = delete;

  /// Uploads a data set (checked as train_local checks it: shape, size, labels) and keeps it on
  /// the device for the trainer's lifetime; returns its id for train_local and evaluate.
  [[nodiscard]] Result<int> add_dataset(const data::Dataset& ds);

  /// model::train_local on data set `data`: same checks and messages, same Philox shuffle per
  /// epoch (drawn on the host, uploaded), same batch split (the last batch may be smaller),
  /// fresh momentum, FedProx against global_params, SCAFFOLD's correction in the SGD kernel.
  /// DP-SGD (opts.dp_random) draws the CPU's Poisson batches and noise on the host and pads
  /// each batch to a multiple of 16 masked rows (one graph per padded size; the hardened
  /// sampler's steps read the clipped sum back instead). kDiverged names the first epoch and batch
  /// whose loss (or updated parameters) was not finite, as the CPU does; the device notes it
  /// without stopping and the host checks at the end of each epoch. opts.threads is ignored.
  [[nodiscard]] Result<LocalTrainStats> train_local(std::span<float> params,
                                                    std::span<const float> global_params, int data,
                                                    const LocalTrainOptions& opts);

  /// The parameters of the last train_local in device memory (num_params floats: do not
  /// dereference on the host), where the device sum forms the update (fl::DeviceUpdate), and
  /// the stream that orders the work on them (a cudaStream_t).
  [[nodiscard]] const float* params_device() const;
  [[nodiscard]] void* stream();

  /// model::evaluate on data set `data` (batches of batch_size, in order). As the CPU, bad
  /// arguments give NaN loss and accuracy; a CUDA failure is an error.
  [[nodiscard]] Result<EvalStats> evaluate(std::span<const float> params, int data, int batch_size);

  /// "cuda:D (name)".
  [[nodiscard]] const std::string& label() const;

 private:
  struct Impl;
  explicit GpuTrainer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::model
