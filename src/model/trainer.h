// Local training (SGD with momentum, weight decay, FedProx term) and evaluation of a model on a
// silo's data set.
#pragma once

#include <csignal>
#include <cstdint>
#include <span>
#include <string>

#include "core/philox.h"
#include "core/status.h"
#include "data/dataset.h"
#include "model/model.h"

namespace fedsilo::privacy {
class RoundRandom;
}  // namespace fedsilo::privacy

namespace fedsilo::model {

struct LocalTrainOptions {
  int epochs = 1;
  int batch_size = 64;
  float lr = 0.01f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  float prox_mu = 0.0f;           // FedProx: adds mu * (w - w_global) to the gradient
  // SCAFFOLD: after every SGD step w -= lr * correction (c - c_s, one value per parameter), as
  // NIID-Bench applies it after the momentum step. Empty: none.
  std::span<const float> correction;
  int threads = 1;
  // Shuffling stream: Philox(seed, round, silo, kShuffle), one permutation per epoch.
  uint64_t seed = 0;
  uint32_t round = 0;
  uint32_t silo = 0;
  // DP-SGD (privacy.level = "sample") when dp_random is set: each step draws a Poisson batch
  // (every record with probability q = batch_size / N, from dp_random's secret stream), clips
  // each example's gradient to L2 norm dp_clip, adds N(0, (dp_noise_multiplier dp_clip)^2) to
  // every coordinate of the sum, and divides by the expected batch size batch_size. An epoch is
  // ceil(N / batch_size) steps; step s of the round uses dp_random's stream s.
  privacy::RoundRandom* dp_random = nullptr;
  double dp_clip = 0.0;
  double dp_noise_multiplier = 0.0;
  bool dp_discrete = false;  // the hardened sampler (RoundRandom::add_discrete_gaussian)
  // Set asynchronously (a signal handler) to stop at the next mini-batch: the call then returns
  // kCancelled and the parameters are to be discarded. nullptr: never.
  const volatile std::sig_atomic_t* stop = nullptr;
};

struct LocalTrainStats {
  double mean_loss = 0.0;         // mean over all mini-batches of all epochs (sample weighted)
  int64_t samples_processed = 0;  // epochs * N (DP-SGD: the sum of the Poisson batch sizes)
  int64_t steps = 0;              // optimizer steps taken
  double seconds = 0.0;
};

struct EvalStats {
  double mean_loss = 0.0;
  double accuracy = 0.0;          // fraction in [0,1]
  int64_t correct = 0;
  int64_t samples = 0;
};

/// Trains `params` in place from their current value (the global model) for opts.epochs epochs.
/// A fresh momentum buffer is used (as NIID-Bench). The last batch of an epoch may be smaller.
/// Returns kDiverged naming the epoch and batch if the loss or the parameters become non-finite
/// ("silo 3, round 5, epoch 1, batch 17: loss is nan"; epochs and batches count from 1).
/// Epoch e visits the samples in the e-th Fisher-Yates permutation drawn from
/// Philox(seed, round, silo, kShuffle). The result depends on opts.threads (the batch split),
/// never on timing: identical calls give bitwise-identical parameters.
[[nodiscard]] Result<LocalTrainStats> train_local(const Model& model, std::span<float> params,
                                                  std::span<const float> global_params,
                                                  const data::Dataset& ds,
                                                  const LocalTrainOptions& opts);

/// Loss and accuracy over a whole data set (batches of `batch_size`).
[[nodiscard]] EvalStats evaluate(const Model& model, std::span<const float> params,
                                 const data::Dataset& ds, int batch_size, int threads);

// What every backend's train_local shares (the GPU trainer, gpu_trainer.h, uses these so that
// its checks, shuffles and messages are the CPU's).

/// train_local's argument checks (before check_data): parameter and global sizes, batch size,
/// epochs, lr. The messages name the config key.
[[nodiscard]] Status check_train_args(const Model& model, int64_t params_size,
                                      int64_t global_size, const LocalTrainOptions& opts);
/// The data fits the model (sample shape, x size) and every label is in [0, num_classes).
[[nodiscard]] Status check_data(const Model& model, const data::Dataset& ds);
/// The next epoch's visiting order: order = 0..n-1, then a Fisher-Yates shuffle drawn from rng
/// (train_local's rng is Philox(seed, round, silo, kShuffle), one draw per epoch).
void draw_epoch_order(Philox& rng, std::span<int64_t> order);
/// "silo S, round R, epoch E, batch B" (epochs and batches count from 1): where a divergence
/// happened, the prefix of kDiverged messages.
[[nodiscard]] std::string train_position(const LocalTrainOptions& opts, int epoch, int64_t batch);

}  // namespace fedsilo::model
