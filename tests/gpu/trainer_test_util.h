// Helpers of the GPU trainer tests (test_gpu_trainer.cpp, test_gpu_dp.cpp): Fashion-MNIST-shaped
// random data and the built-in models.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/philox.h"
#include "data/dataset.h"
#include "model/gpu_trainer.h"
#include "model/model.h"

namespace fedsilo::test {

/// n images 1x28x28 of uniform [0, scale) values, labels in 0..9, from stream `stream`.
inline data::Dataset images(int n, uint32_t stream, float scale = 1.0f) {
  data::Dataset ds;
  ds.chw = {1, 28, 28};
  ds.num_classes = 10;
  ds.name = "images";
  Philox rng(11, stream, 0, RngPurpose::kNoise);
  ds.x.resize(static_cast<size_t>(n) * 784);
  for (auto& v : ds.x) v = scale * static_cast<float>(rng.uniform());
  for (int i = 0; i < n; ++i) ds.y.push_back(static_cast<int32_t>(rng.below(10)));
  return ds;
}

/// A built-in model for 1x28x28 inputs and 10 classes (mlp: hidden 200, 200).
inline model::Model build(const std::string& arch) {
  auto m = model::Model::build(
      {arch, arch == "mlp" ? std::vector<int>{200, 200} : std::vector<int>{}, {1, 28, 28}, 10});
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return std::move(m).value();
}

/// The model's initial parameters from seed 3.
inline std::vector<float> initial(const model::Model& m) {
  std::vector<float> p(static_cast<size_t>(m.num_params()));
  m.init_params(p, 3);
  return p;
}

/// A GPU trainer on device 0 for batches of up to max_batch (nullptr, with a test failure, when
/// it cannot be created).
inline std::unique_ptr<model::GpuTrainer> trainer(const model::Model& m, int max_batch) {
  auto t = model::GpuTrainer::create(m, 0, max_batch);
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

}  // namespace fedsilo::test
