// Where a silo trains and evaluates: the CPU (model::train_local on host data) or a CUDA device
// (model::GpuTrainer, the silo's data uploaded once). The round driver calls a Backend and has
// no device branches; the device-side sum of updates (fl/aggregation.h) reaches the GPU
// trainer through gpu().
#pragma once

#include <memory>
#include <span>
#include <string>

#include "core/status.h"
#include "data/dataset.h"
#include "model/gpu_trainer.h"
#include "model/model.h"
#include "model/trainer.h"

namespace fedsilo::fl {

/// What one rank holds for its silo.
struct SiloData {
  int silo = 0;
  std::string name;                 // "silo-03"
  data::Dataset train;
  data::Dataset test;               // the silo's own test split
  data::Dataset global_test_slice;  // this rank's share of the global test split
  int64_t global_test_size = 0;
  std::string private_dir;
};

/// The test sets a backend evaluates on.
enum class TestSet { kOwn, kGlobalSlice };

class Backend {
 public:
  virtual ~Backend() = default;
  /// Trains `local` in place from its current value (the global model, `global`).
  [[nodiscard]] virtual Result<model::LocalTrainStats> train(
      std::span<float> local, std::span<const float> global, const model::LocalTrainOptions& lo) = 0;
  /// Loss and accuracy of `params` on one of the silo's test sets.
  [[nodiscard]] virtual Result<model::EvalStats> evaluate(std::span<const float> params,
                                                          TestSet which, int batch_size) = 0;
  /// The GPU trainer (whose device memory holds the last trained parameters), or nullptr.
  [[nodiscard]] virtual model::GpuTrainer* gpu() { return nullptr; }
};

/// The backend `device` names, for `silo`'s data (which it must outlive). Errors name the silo
/// and the device.
[[nodiscard]] Result<std::unique_ptr<Backend>> make_backend(const model::Model& net,
                                                           const model::DeviceChoice& device,
                                                           const SiloData& silo, int threads,
                                                           int max_batch);

}  // namespace fedsilo::fl
