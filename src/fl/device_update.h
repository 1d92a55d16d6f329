// A GPU rank's weighted update, formed in device memory where its new parameters already are
// (the GPU trainer's buffer, or a CUDA tensor of the PyTorch binding), for the device sum
// (mpi::DeviceAllreduce). Plain C++ (no CUDA types): it compiles in every build; without CUDA
// create() says why it cannot run.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "core/status.h"

namespace fedsilo::fl {

/// Where a rank's new parameters are in device memory, and the stream whose work wrote them (a
/// cudaStream_t; nullptr: the legacy default stream, e.g. after the caller synchronised).
struct DeviceParams {
  const float* data = nullptr;
  void* stream = nullptr;
};

class DeviceUpdate {
 public:
  /// A buffer of n floats (and a copy of the global model) on CUDA device `device`, allocated
  /// on first use. kFailedPrecondition in a build without CUDA.
  [[nodiscard]] static Result<std::unique_ptr<DeviceUpdate>> create(int device, int64_t n);
  ~DeviceUpdate();
  DeviceUpdate(const DeviceUpdate&) = delete;
  DeviceUpdate& operator=(const DeviceUpdate&) = delete;

  /// update = weight * (local - global), with `local` n floats of device memory and `global`
  /// n floats of host memory (uploaded), on local.stream: bitwise the host's
  /// `weight * (local[i] - global[i])` (one rounding each). kDiverged when an element is not
  /// finite (read back: the call is synchronous).
  [[nodiscard]] Status form(DeviceParams local, std::span<const float> global, float weight);
  /// update = 0, on `stream` (a silo that did not train contributes nothing).
  [[nodiscard]] Status clear(void* stream);
  /// The update (n floats of device memory: do not dereference on the host) and the stream of
  /// the last form() or clear(), which orders the work on it.
  [[nodiscard]] float* data();
  [[nodiscard]] void* stream() const;
  /// Copies the update (after a device allreduce: the sum over ranks) into `out` (n floats).
  [[nodiscard]] Status download(std::span<float> out);

  /// Copies host `from` into device memory `to` (from.size() floats) on `stream`; complete when
  /// the call returns.
  [[nodiscard]] static Status upload(std::span<const float> from, float* to, void* stream);

 private:
  struct Impl;
  explicit DeviceUpdate(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fedsilo::fl
