#include "fl/aggregation.h"

#include <algorithm>
#include <cmath>

#include "fl/secure_aggregation.h"
#include "mpi/device_allreduce.h"
#include "mpi/topology.h"

namespace fedsilo::fl {

namespace {

// The weights' sum over ranks and the weighted mean of the silos' aux (one double allreduce:
// each weight is a silo's sample count) into `out`.
Status weight_sums(mpi::Comm& comm, bool trained, double weight, double aux, Combined& out) {
  double w[2] = {trained ? weight : 0.0, trained ? weight * aux : 0.0};
  FEDSILO_CHECK(comm.allreduce_sum(std::span<double>(w, 2)));
  out.weight_sum = w[0];
  out.aux_mean = w[0] > 0.0 ? w[1] / w[0] : 0.0;
  return {};
}

// The host exchange. The update is written where the exchange reads it without a copy when it
// has such memory (sparse-hier: this rank's segment of the node-shared window), else in a vector.
class HostAggregation final : public Aggregation {
 public:
  HostAggregation(mpi::Comm& comm, UpdateExchange& exchange, std::span<float> update, int64_t length)
      : comm_(comm), exchange_(exchange), update_(update) {
    if (update_.empty()) {
      storage_.resize(static_cast<size_t>(length));
      update_ = storage_;
    }
  }
  std::string name() const override { return exchange_.algorithm(); }
  Status contribute(std::span<const float> local, std::span<const float> global, float weight,
                    bool trained, const SiloExtras& extras) override {
    weight_ = weight;
    aux_ = extras.aux;
    if (!trained) {
      std::fill(update_.begin(), update_.end(), 0.0f);
      return {};
    }
    const size_t n = local.size();
    if (n + extras.tail.size() != update_.size() || global.size() != n) {
      return internal_error("contribute: the update's parts do not add up to the exchange's length");
    }
    // The scale in float as FedAvg always had it (divisor 1 leaves it exact).
    const float scale = extras.divisor == 1.0 ? weight : static_cast<float>(weight / extras.divisor);
    for (size_t i = 0; i < n; ++i) update_[i] = scale * (local[i] - global[i]);
    std::copy(extras.tail.begin(), extras.tail.end(), update_.begin() + static_cast<std::ptrdiff_t>(n));
    return check_finite(update_, "update");
  }
  Result<Combined> combine(uint32_t round, bool trained, ExchangeStats& stats) override {
    FEDSILO_CHECK(exchange_.exchange(round, update_, trained, stats));
    Combined out{std::span<const float>(update_)};
    FEDSILO_CHECK(weight_sums(comm_, trained, weight_, aux_, out));
    return out;
  }

 private:
  mpi::Comm& comm_;
  double weight_ = 0.0, aux_ = 0.0;
  UpdateExchange& exchange_;
  std::span<float> update_;
  std::vector<float> storage_;
};

// Dense rounds of GPU ranks sum on the device: the weighted update is formed where training
// left the parameters, and only the sum comes back to the host.
class DeviceAggregation final : public Aggregation {
 public:
  /// `topology` is the exchange's (UpdateExchange::node_topology), which outlives this.
  DeviceAggregation(DeviceSource params, mpi::Topology& topology, int64_t length)
      : params_(std::move(params)), topology_(topology), sum_(static_cast<size_t>(length)) {}
  Status init(int device, const std::string& reduce) {
    FEDSILO_ASSIGN_OR_RETURN(sum_op_, mpi::DeviceAllreduce::create(topology_, device, reduce));
    auto update = DeviceUpdate::create(device, static_cast<int64_t>(sum_.size()));
    FEDSILO_CHECK(topology_.world().agree(update.status()));
    update_ = std::move(update).value();
    return {};
  }
  std::string name() const override { return "device-" + sum_op_->name(); }
  Status contribute(std::span<const float> local, std::span<const float> global, float weight,
                    bool trained, const SiloExtras& extras) override {
    if (extras.divisor != 1.0 || !extras.tail.empty()) {
      return internal_error("the device sum carries plain weighted updates only (SCAFFOLD and "
                            "FedNova go through the host exchange)");
    }
    weight_ = weight;
    const DeviceParams at = params_(local);
    return trained ? update_->form(at, global, weight) : update_->clear(at.stream);
  }
  Result<Combined> combine(uint32_t, bool trained, ExchangeStats& stats) override {
    mpi::AllreduceStats as;
    const auto n = static_cast<int64_t>(sum_.size());
    FEDSILO_CHECK(sum_op_->reduce(update_->data(), n, update_->stream(), as));
    FEDSILO_CHECK(topology_.world().agree(update_->download(sum_)));
    stats.take(as);
    stats.dense_bytes = 4 * n;
    stats.payload_bytes = stats.dense_bytes;
    Combined out{std::span<const float>(sum_)};
    FEDSILO_CHECK(weight_sums(topology_.world(), trained, weight_, 0.0, out));
    return out;
  }

 private:
  double weight_ = 0.0;
  DeviceSource params_;
  mpi::Topology& topology_;
  std::unique_ptr<DeviceUpdate> update_;
  // Declared after the update: the allreduce (an NCCL communicator) is destroyed first.
  std::unique_ptr<mpi::DeviceAllreduce> sum_op_;
  std::vector<float> sum_;
};

}  // namespace

Status check_finite(std::span<const float> v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (!std::isfinite(v[i])) {
      return {StatusCode::kDiverged, what + " is not finite (element " + std::to_string(i) + ")"};
    }
  }
  return {};
}

Status check_finite_and_copy(std::span<const float> v, std::span<float> copy_to,
                             const std::string& what) {
  if (copy_to.size() != v.size()) return internal_error("check_finite_and_copy: lengths differ");
  for (size_t i = 0; i < v.size(); ++i) {
    copy_to[i] = v[i];
    if (!std::isfinite(v[i])) {
      return {StatusCode::kDiverged, what + " is not finite (element " + std::to_string(i) + ")"};
    }
  }
  return {};
}

bool device_sum_applies(const config::Config& cfg) {
  const auto strategy = cfg.strategy.name;
  return cfg.compression.method == compression::Method::kNone && !cfg.secure_aggregation.enabled &&
         strategy != config::StrategyName::kScaffold && strategy != config::StrategyName::kFedNova;
}

Result<std::unique_ptr<Aggregation>> make_aggregation(const config::Config& cfg, mpi::Comm& comm,
                                                     int cuda_device, DeviceSource device_params,
                                                     UpdateExchange& exchange, int64_t length) {
  if (cfg.secure_aggregation.enabled) {
    FEDSILO_ASSIGN_OR_RETURN(auto secure, SecureAggregation::create(cfg, comm, exchange, length, {},
                                                                           cuda_device));
    return std::unique_ptr<Aggregation>(std::move(secure));
  }
  if (device_params && device_sum_applies(cfg)) {
    auto device = std::make_unique<DeviceAggregation>(std::move(device_params),
                                                      exchange.node_topology(), length);
    FEDSILO_CHECK(device->init(cuda_device, config::name(cfg.device.reduce)));
    return std::unique_ptr<Aggregation>(std::move(device));
  }
  auto buffer = exchange.buffer();
  FEDSILO_CHECK(comm.agree(buffer.status()));
  return std::unique_ptr<Aggregation>(new HostAggregation(comm, exchange, buffer.value(), length));
}

}  // namespace fedsilo::fl
