// See device_update.h.
#include "fl/device_update.h"

#include <string>

#ifdef FEDSILO_HAVE_CUDA
#include "kernels/cuda/device.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/sgd.h"
#endif

namespace fedsilo::fl {

#ifndef FEDSILO_HAVE_CUDA

struct DeviceUpdate::Impl {};

Result<std::unique_ptr<DeviceUpdate>> DeviceUpdate::create(int, int64_t) {
  return failed_precondition("the device sum needs fedsilo built with CUDA (this build has none)");
}
DeviceUpdate::DeviceUpdate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceUpdate::~DeviceUpdate() = default;
Status DeviceUpdate::form(DeviceParams, std::span<const float>, float) {
  return failed_precondition("DeviceUpdate: built without CUDA");
}
Status DeviceUpdate::clear(void*) {
  return failed_precondition("DeviceUpdate: built without CUDA");
}
float* DeviceUpdate::data() {
  return nullptr;
}
void* DeviceUpdate::stream() const {
  return nullptr;
}
Status DeviceUpdate::download(std::span<float>) {
  return failed_precondition("DeviceUpdate: built without CUDA");
}
Status DeviceUpdate::upload(std::span<const float>, float*, void*) {
  return failed_precondition("DeviceUpdate: built without CUDA");
}

#else  // FEDSILO_HAVE_CUDA

namespace cu = kernels::cuda;

struct DeviceUpdate::Impl {
  int device = 0;
  int64_t n = 0;
  cu::DeviceArray<float> update, global;
  cu::DeviceArray<uint32_t> bad;  // form()'s non-finite flag
  cu::Stream stream;

  Status ensure() {
    FEDSILO_CHECK(cu::set_device(device));
    if (update.size() != 0) return {};
    FEDSILO_ASSIGN_OR_RETURN(update, cu::DeviceArray<float>::create(static_cast<size_t>(n)));
    FEDSILO_ASSIGN_OR_RETURN(global, cu::DeviceArray<float>::create(static_cast<size_t>(n)));
    FEDSILO_ASSIGN_OR_RETURN(bad, cu::DeviceArray<uint32_t>::create(1));
    return {};
  }
};

Result<std::unique_ptr<DeviceUpdate>> DeviceUpdate::create(int device, int64_t n) {
  if (device < 0 || device >= cu::device_count()) {
    return invalid_argument("the device sum: CUDA device " + std::to_string(device) +
                            " does not exist (" + std::to_string(cu::device_count()) + " visible)");
  }
  if (n <= 0) return invalid_argument("the device sum: nothing to sum (" + std::to_string(n) + " floats)");
  auto impl = std::make_unique<Impl>();
  impl->device = device;
  impl->n = n;
  // Allocated now, at start-up: by the first round a framework's caching allocator (PyTorch's)
  // may hold the device's free memory.
  FEDSILO_CHECK(impl->ensure());
  return std::unique_ptr<DeviceUpdate>(new DeviceUpdate(std::move(impl)));
}

DeviceUpdate::DeviceUpdate(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceUpdate::~DeviceUpdate() {
  if (impl_ != nullptr) (void)cu::set_device(impl_->device);  // free on the device they live on
}

Status DeviceUpdate::form(DeviceParams local, std::span<const float> global, float weight) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(global.size()) != m.n || local.data == nullptr) {
    return invalid_argument("DeviceUpdate::form: " + std::to_string(global.size()) +
                            " global parameters for an update of " + std::to_string(m.n));
  }
  FEDSILO_CHECK(m.ensure());
  // The address comes from the caller (the binding: a tensor's data_ptr): it must be memory of
  // the device this sums on, or the kernel below would fault or read across devices.
  const Result<int> where = cu::pointer_device(local.data);
  if (!where.ok() || where.value() != m.device) {
    return invalid_argument("the device sum: the parameters are not in CUDA device " +
                            std::to_string(m.device) + "'s memory (" +
                            (where.ok() ? "device " + std::to_string(where.value())
                                        : where.status().message()) +
                            ")");
  }
  m.stream = cu::Stream{local.stream};
  FEDSILO_CHECK(cu::fill_bytes(m.update.data(), 0, static_cast<size_t>(m.n) * sizeof(float), m.stream));
  FEDSILO_CHECK(cu::copy_to_device(m.global.data(), global.data(), global.size_bytes(), m.stream));
  FEDSILO_CHECK(cu::fill_bytes(m.bad.data(), 0, sizeof(uint32_t), m.stream));
  // The fused SGD kernel on update = 0 with g = local, prox_mu = 1, lr = -weight computes
  //   d = local + 1 * (0 - global) = local - global        (one rounding, as the host's)
  //   update = 0 - (-weight) * d = weight * d              (one rounding)
  // which is bitwise the host's weight * (local - global), and flags non-finite results.
  const kernels::SgdHyper<float> h{-weight, 0.0f, 0.0f, 1.0f};
  FEDSILO_CHECK(cu::sgd_update(m.update.data(), local.data, nullptr, m.global.data(), m.n, h, false,
                               m.bad.data(), m.stream));
  uint32_t bad = 0;
  FEDSILO_CHECK(cu::copy_to_host(&bad, m.bad.data(), sizeof bad, m.stream));
  if (bad != 0u) return Status(StatusCode::kDiverged, "update is not finite");
  return {};
}

Status DeviceUpdate::clear(void* stream) {
  Impl& m = *impl_;
  FEDSILO_CHECK(m.ensure());
  m.stream = cu::Stream{stream};
  return cu::fill_bytes(m.update.data(), 0, static_cast<size_t>(m.n) * sizeof(float), m.stream);
}

float* DeviceUpdate::data() {
  return impl_->update.data();
}

void* DeviceUpdate::stream() const {
  return impl_->stream.handle;
}

Status DeviceUpdate::download(std::span<float> out) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(out.size()) != m.n || m.update.size() == 0) {
    return invalid_argument("DeviceUpdate::download: no update of " + std::to_string(out.size()) +
                            " floats on the device");
  }
  FEDSILO_CHECK(cu::set_device(m.device));
  return cu::copy_to_host(out.data(), m.update.data(), out.size_bytes(), m.stream);
}

Status DeviceUpdate::upload(std::span<const float> from, float* to, void* stream) {
  const cu::Stream s{stream};
  FEDSILO_CHECK(cu::copy_to_device(to, from.data(), from.size_bytes(), s));
  return cu::synchronize(s);
}

#endif  // FEDSILO_HAVE_CUDA

}  // namespace fedsilo::fl
