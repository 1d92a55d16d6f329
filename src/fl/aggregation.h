// How this silo's update joins the round's sum: one interface for the host exchange
// (fl::UpdateExchange: the dense and sparse allreduce algorithms, per-silo or node-level
// compression) and the device sum of GPU ranks (mpi::DeviceAllreduce: NCCL or host-staged).
// The round driver makes its contribution, then combines; it never asks which one it has.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "fl/backend.h"
#include "fl/device_update.h"
#include "fl/update_exchange.h"
#include "mpi/comm.h"

namespace fedsilo::fl {

/// What a silo's strategy adds to its contribution (fl::Strategy::silo_extras): nothing for
/// FedAvg and the server optimizers.
struct SiloExtras {
  /// The model part is weight * (local - global) / divisor (FedNova: a_s, its normalized steps).
  double divisor = 1.0;
  /// Sent after the model part, unweighted (SCAFFOLD: the control-variate update c_s+ - c_s).
  std::span<const float> tail;
  /// A per-silo number whose weighted mean every rank gets (FedNova: a_s).
  double aux = 0.0;
};

/// What one round's aggregation gives every rank.
struct Combined {
  std::span<const float> sum;  // the sum of the contributions (model part, then the tails)
  double weight_sum = 0.0;     // the sum of the weights
  double aux_mean = 0.0;       // sum of weight * aux over sum of weight (0 where no weight)
};

class Aggregation {
 public:
  virtual ~Aggregation() = default;
  /// "dense-flat", ..., "device-nccl": the metrics' and the start-up line's name for it.
  [[nodiscard]] virtual std::string name() const = 0;
  /// This silo's contribution: weight * (local - global) / extras.divisor where it trained
  /// (`local` are its new parameters, on the host or, on a GPU backend, in the device's
  /// memory), then extras.tail; zeros where not. kDiverged naming the first non-finite element.
  [[nodiscard]] virtual Status contribute(std::span<const float> local,
                                          std::span<const float> global, float weight,
                                          bool trained, const SiloExtras& extras) = 0;
  /// The sum of every rank's contribution, on the host, and the sum of their weights (the
  /// weights given to contribute, 0 where a silo did not train). Collective; errors are agreed.
  [[nodiscard]] virtual Result<Combined> combine(uint32_t round, bool trained,
                                                 ExchangeStats& stats) = 0;
};

/// kDiverged "WHAT is not finite (element I)" naming the first non-finite element, else OK.
[[nodiscard]] Status check_finite(std::span<const float> v, const std::string& what);
/// check_finite that also copies `v` into `copy_to` (the same length) in the same pass: the
/// loop is bound by its test of each element, not by memory, so the stores cost next to nothing
/// where a separate copy is another pass over both buffers. On kDiverged, `copy_to` holds `v`
/// up to the element named.
[[nodiscard]] Status check_finite_and_copy(std::span<const float> v, std::span<float> copy_to,
                                           const std::string& what);

/// Where a GPU rank's new parameters are in device memory, given contribute()'s `local`: the
/// GPU trainer's own buffer (whatever `local` is), or, in the PyTorch binding, `local` itself
/// (a CUDA tensor's memory).
using DeviceSource = std::function<DeviceParams(std::span<const float> local)>;

/// Whether a round's update can be summed on the devices: plain weighted updates only, so not
/// compressed, not secure, and not SCAFFOLD's tail or FedNova's divisor.
[[nodiscard]] bool device_sum_applies(const config::Config& cfg);

/// Secure aggregation where `[secure_aggregation] enabled` (fl/secure_aggregation.h; its words
/// go through NCCL on `cuda_device` where that is >= 0); else the device sum on CUDA device
/// `cuda_device` where `device_params` is given and device_sum_applies(cfg); else the
/// host exchange (which `exchange` is, and outlives the result). `length`: the model's
/// parameters plus the strategy's tail (Strategy::tail_length). Collective.
[[nodiscard]] Result<std::unique_ptr<Aggregation>> make_aggregation(const config::Config& cfg,
                                                                   mpi::Comm& comm, int cuda_device,
                                                                   DeviceSource device_params,
                                                                   UpdateExchange& exchange,
                                                                   int64_t length);

}  // namespace fedsilo::fl
