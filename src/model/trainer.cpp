// Local training (shuffled mini-batch SGD) and evaluation of a model on one silo's data.
#include "model/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "core/philox.h"
#include "kernels/cpu/softmax_xent.h"
#include "optim/sgd.h"
#include "privacy/dp_random.h"

namespace fedsilo::model {

namespace {

std::string shape_text(const std::array<int, 3>& chw) {
  return std::to_string(chw[0]) + "x" + std::to_string(chw[1]) + "x" + std::to_string(chw[2]);
}

}  // namespace

// The checks train_local and evaluate share: the data fits the model and labels are in range
// (the loss kernel indexes logits by label).
Status check_data(const Model& model, const data::Dataset& ds) {
  const ModelSpec& spec = model.spec();
  if (ds.chw != spec.input_chw) {
    return invalid_argument("data " + ds.name + ": sample shape " + shape_text(ds.chw) +
                            " differs from the model input " + shape_text(spec.input_chw));
  }
  if (static_cast<int64_t>(ds.x.size()) != ds.size() * ds.sample_size()) {
    return invalid_argument("data " + ds.name + ": x holds " + std::to_string(ds.x.size()) +
                            " values for " + std::to_string(ds.size()) + " samples");
  }
  for (int64_t i = 0; i < ds.size(); ++i) {
    const int32_t y = ds.y[static_cast<size_t>(i)];
    if (y < 0 || y >= spec.num_classes) {
      return invalid_argument("data " + ds.name + ": label " + std::to_string(y) + " of sample " +
                              std::to_string(i) + " is outside [0, " +
                              std::to_string(spec.num_classes) + ")");
    }
  }
  return {};
}

std::string train_position(const LocalTrainOptions& o, int epoch, int64_t batch) {
  return "silo " + std::to_string(o.silo) + ", round " + std::to_string(o.round) + ", epoch " +
         std::to_string(epoch) + ", batch " + std::to_string(batch);
}

void draw_epoch_order(Philox& rng, std::span<int64_t> order) {
  const auto n = static_cast<int64_t>(order.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
}

Status check_train_args(const Model& model, int64_t params_size, int64_t global_size,
                        const LocalTrainOptions& opts) {
  const int64_t np = model.num_params();
  if (params_size != np) {
    return invalid_argument("train_local: params hold " + std::to_string(params_size) +
                            " values, the model has " + std::to_string(np));
  }
  if (opts.prox_mu != 0.0f && global_size != np) {
    return invalid_argument("train_local: the FedProx term needs the global parameters (" +
                            std::to_string(np) + " values), got " + std::to_string(global_size));
  }
  if (opts.batch_size <= 0) {
    return invalid_argument("local.batch_size = " + std::to_string(opts.batch_size) +
                            " must be > 0");
  }
  if (!opts.correction.empty() && static_cast<int64_t>(opts.correction.size()) != np) {
    return invalid_argument("train_local: the SCAFFOLD correction holds " +
                            std::to_string(opts.correction.size()) + " values, the model has " +
                            std::to_string(np));
  }
  if (opts.epochs < 0) {
    return invalid_argument("local.epochs = " + std::to_string(opts.epochs) + " must be >= 0");
  }
  if (!std::isfinite(opts.lr) || opts.lr < 0.0f) {
    return invalid_argument("local.lr = " + std::to_string(opts.lr) + " must be finite and >= 0");
  }
  return {};
}

namespace {

// DP-SGD (Abadi et al. 2016) with Poisson sampling, as LocalTrainOptions describes.
Result<LocalTrainStats> train_local_dp(const Model& model, std::span<float> params,
                                       std::span<const float> global_params,
                                       const data::Dataset& ds, const LocalTrainOptions& opts) {
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t np = model.num_params();
  const int64_t n = ds.size();
  LocalTrainStats stats;
  if (n == 0 || opts.epochs == 0) return stats;
  if (!(opts.dp_clip > 0.0) || !(opts.dp_noise_multiplier > 0.0)) {
    return invalid_argument("train_local: DP-SGD needs privacy.clip > 0 and a noise multiplier > 0");
  }
  if (opts.batch_size > n) {
    return invalid_argument("local.batch_size = " + std::to_string(opts.batch_size) +
                            " is larger than silo " + std::to_string(opts.silo) + "'s " +
                            std::to_string(n) + " training records (privacy.level = \"sample\" "
                            "samples each batch with rate batch_size / records, at most 1)");
  }
  const int expected = opts.batch_size;
  const double q = static_cast<double>(expected) / static_cast<double>(n);
  const int64_t sample = ds.sample_size();
  const int64_t steps_per_epoch = (n + expected - 1) / expected;
  auto ws = model.make_workspace(expected, opts.threads);
  std::vector<float> grads(static_cast<size_t>(np));
  std::vector<float> xb;
  std::vector<int32_t> yb;
  std::vector<int64_t> picked;
  optim::Sgd sgd(np, {opts.lr, opts.momentum, opts.weight_decay, opts.prox_mu});
  const double sigma = opts.dp_noise_multiplier * opts.dp_clip;
  const float inv = 1.0f / static_cast<float>(expected);
  double loss_sum = 0.0;
  uint32_t step = 0;
  for (int epoch = 1; epoch <= opts.epochs; ++epoch) {
    for (int64_t b = 0; b < steps_per_epoch; ++b, ++step) {
      if (opts.stop != nullptr && *opts.stop != 0) {
        return Status(StatusCode::kCancelled, train_position(opts, epoch, b + 1) + ": stopped by a signal");
      }
      FEDSILO_CHECK(opts.dp_random->poisson_sample(step, n, q, picked));
      const int bs = static_cast<int>(picked.size());
      xb.resize(static_cast<size_t>(bs * sample));
      yb.resize(static_cast<size_t>(bs));
      for (int i = 0; i < bs; ++i) {
        const int64_t s = picked[static_cast<size_t>(i)];
        std::memcpy(xb.data() + i * sample, ds.sample(s), static_cast<size_t>(sample) * sizeof(float));
        yb[static_cast<size_t>(i)] = ds.y[static_cast<size_t>(s)];
      }
      const float loss =
          model.clipped_gradient_sum(params, xb.data(), yb.data(), bs, opts.dp_clip, grads, *ws);
      if (!std::isfinite(loss)) {
        return Status(StatusCode::kDiverged, train_position(opts, epoch, b + 1) + ": loss is " +
                                                 (std::isnan(loss) ? "nan" : "inf"));
      }
      // The noised sum over the expected batch size (Opacus's "mean" reduction).
      FEDSILO_CHECK(opts.dp_discrete
                        ? opts.dp_random->add_discrete_gaussian(step, opts.dp_noise_multiplier,
                                                                opts.dp_clip, grads, &ws->team(), inv)
                        : opts.dp_random->add_gaussian(step, sigma, grads, &ws->team(), inv));
      if (!sgd.step(params, grads, global_params, &ws->team(), opts.correction)) {
        return Status(StatusCode::kDiverged, train_position(opts, epoch, b + 1) +
                                                 ": parameters are not finite after the update");
      }
      loss_sum += static_cast<double>(loss) * bs;
      stats.samples_processed += bs;
    }
  }
  stats.steps = step;
  stats.mean_loss = stats.samples_processed > 0 ? loss_sum / static_cast<double>(stats.samples_processed) : 0.0;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return stats;
}

}  // namespace

Result<LocalTrainStats> train_local(const Model& model, std::span<float> params,
                                    std::span<const float> global_params, const data::Dataset& ds,
                                    const LocalTrainOptions& opts) {
  if (opts.dp_random != nullptr) {
    FEDSILO_CHECK(check_train_args(model, static_cast<int64_t>(params.size()),
                                   static_cast<int64_t>(global_params.size()), opts));
    FEDSILO_CHECK(check_data(model, ds));
    return train_local_dp(model, params, global_params, ds, opts);
  }
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t np = model.num_params();
  FEDSILO_CHECK(check_train_args(model, static_cast<int64_t>(params.size()),
                                 static_cast<int64_t>(global_params.size()), opts));
  FEDSILO_CHECK(check_data(model, ds));
  const int64_t n = ds.size();
  LocalTrainStats stats;
  if (n == 0 || opts.epochs == 0) return stats;

  const int batch = static_cast<int>(std::min<int64_t>(opts.batch_size, n));
  const int64_t sample = ds.sample_size();
  auto ws = model.make_workspace(batch, opts.threads);
  std::vector<float> grads(static_cast<size_t>(np));
  std::vector<float> xb(static_cast<size_t>(batch * sample));
  std::vector<int32_t> yb(static_cast<size_t>(batch));
  std::vector<int64_t> order(static_cast<size_t>(n));
  optim::Sgd sgd(np, {opts.lr, opts.momentum, opts.weight_decay, opts.prox_mu});
  // One stream for the call; epoch e's permutation is the e-th Fisher-Yates draw from it.
  Philox rng(opts.seed, opts.round, opts.silo, RngPurpose::kShuffle);
  const int64_t batches = (n + batch - 1) / batch;

  double loss_sum = 0.0;
  for (int epoch = 1; epoch <= opts.epochs; ++epoch) {
    draw_epoch_order(rng, order);
    for (int64_t b = 0; b < batches; ++b) {
      if (opts.stop != nullptr && *opts.stop != 0) {
        return Status(StatusCode::kCancelled, train_position(opts, epoch, b + 1) + ": stopped by a signal");
      }
      const int64_t first = b * batch;
      const int bs = static_cast<int>(std::min<int64_t>(batch, n - first));
      for (int i = 0; i < bs; ++i) {
        const int64_t s = order[static_cast<size_t>(first + i)];
        std::memcpy(xb.data() + i * sample, ds.sample(s),
                    static_cast<size_t>(sample) * sizeof(float));
        yb[static_cast<size_t>(i)] = ds.y[static_cast<size_t>(s)];
      }
      const float loss = model.forward_backward(params, xb.data(), yb.data(), bs, grads, *ws);
      if (!std::isfinite(loss)) {
        return Status(StatusCode::kDiverged, train_position(opts, epoch, b + 1) + ": loss is " +
                                                 (std::isnan(loss) ? "nan" : "inf"));
      }
      if (!sgd.step(params, grads, global_params, &ws->team(), opts.correction)) {
        return Status(StatusCode::kDiverged, train_position(opts, epoch, b + 1) +
                                                 ": parameters are not finite after the update");
      }
      loss_sum += static_cast<double>(loss) * bs;
    }
  }
  stats.samples_processed = n * opts.epochs;
  stats.steps = batches * opts.epochs;
  stats.mean_loss = loss_sum / static_cast<double>(stats.samples_processed);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return stats;
}

EvalStats evaluate(const Model& model, std::span<const float> params, const data::Dataset& ds,
                   int batch_size, int threads) {
  EvalStats stats;
  const int64_t n = ds.size();
  if (n == 0 || batch_size <= 0 || static_cast<int64_t>(params.size()) != model.num_params() ||
      !check_data(model, ds).ok()) {
    stats.mean_loss = std::nan("");
    stats.accuracy = std::nan("");
    return stats;
  }
  const int batch = static_cast<int>(std::min<int64_t>(batch_size, n));
  const int classes = model.spec().num_classes;
  auto ws = model.make_workspace(batch, threads);
  std::vector<float> logits(static_cast<size_t>(batch) * classes);
  std::vector<int32_t> pred(static_cast<size_t>(batch));
  double loss_sum = 0.0;
  for (int64_t first = 0; first < n; first += batch) {
    const int bs = static_cast<int>(std::min<int64_t>(batch, n - first));
    model.forward(params, ds.sample(first), bs, logits.data(), *ws);
    const int32_t* y = ds.y.data() + first;
    loss_sum += kernels::softmax_xent<float>(logits.data(), y, bs, classes, 0.0f, nullptr);
    kernels::argmax_rows<float>(logits.data(), bs, classes, pred.data());
    for (int i = 0; i < bs; ++i) stats.correct += pred[static_cast<size_t>(i)] == y[i] ? 1 : 0;
  }
  stats.samples = n;
  stats.mean_loss = loss_sum / static_cast<double>(n);
  stats.accuracy = static_cast<double>(stats.correct) / static_cast<double>(n);
  return stats;
}

}  // namespace fedsilo::model
