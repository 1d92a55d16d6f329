#include "fl/backend.h"

namespace fedsilo::fl {

namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend(const model::Model& net, const SiloData& silo, int threads)
      : net_(net), silo_(silo), threads_(threads) {}

  Result<model::LocalTrainStats> train(std::span<float> local, std::span<const float> global,
                                       const model::LocalTrainOptions& lo) override {
    return model::train_local(net_, local, global, silo_.train, lo);
  }
  Result<model::EvalStats> evaluate(std::span<const float> params, TestSet which,
                                    int batch_size) override {
    const data::Dataset& ds = which == TestSet::kOwn ? silo_.test : silo_.global_test_slice;
    return model::evaluate(net_, params, ds, batch_size, threads_);
  }

 private:
  const model::Model& net_;
  const SiloData& silo_;
  int threads_;
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(std::unique_ptr<model::GpuTrainer> trainer) : trainer_(std::move(trainer)) {}

  Status upload(const SiloData& silo) {
    FEDSILO_ASSIGN_OR_RETURN(train_, trainer_->add_dataset(silo.train));
    FEDSILO_ASSIGN_OR_RETURN(test_, trainer_->add_dataset(silo.test));
    FEDSILO_ASSIGN_OR_RETURN(global_test_, trainer_->add_dataset(silo.global_test_slice));
    return {};
  }
  Result<model::LocalTrainStats> train(std::span<float> local, std::span<const float> global,
                                       const model::LocalTrainOptions& lo) override {
    return trainer_->train_local(local, global, train_, lo);
  }
  Result<model::EvalStats> evaluate(std::span<const float> params, TestSet which,
                                    int batch_size) override {
    return trainer_->evaluate(params, which == TestSet::kOwn ? test_ : global_test_, batch_size);
  }
  model::GpuTrainer* gpu() override { return trainer_.get(); }

 private:
  std::unique_ptr<model::GpuTrainer> trainer_;
  int train_ = -1, test_ = -1, global_test_ = -1;
};

}  // namespace

Result<std::unique_ptr<Backend>> make_backend(const model::Model& net,
                                             const model::DeviceChoice& device,
                                             const SiloData& silo, int threads, int max_batch) {
  if (!device.cuda) return std::unique_ptr<Backend>(new CpuBackend(net, silo, threads));
  auto made = [&]() -> Result<std::unique_ptr<Backend>> {
    FEDSILO_ASSIGN_OR_RETURN(auto trainer, model::GpuTrainer::create(net, device.device, max_batch));
    auto backend = std::make_unique<CudaBackend>(std::move(trainer));
    FEDSILO_CHECK(backend->upload(silo));
    return std::unique_ptr<Backend>(std::move(backend));
  }();
  if (!made.ok()) {
    return Status{made.status().code(), silo.name + " on " + device.label + ": " + made.status().message()};
  }
  return made;
}

}  // namespace fedsilo::fl
