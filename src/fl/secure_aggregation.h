// Secure aggregation over MPI (docs/threat-model.md): each silo clips its weighted update,
// codes it in fixed point modulo 2^32 together with its weight, adds pairwise masks that cancel
// in the sum, and the ranks sum the masked integers (flat or node by node, mpi::IntegerSum);
// every rank decodes the sum. With compression.method = "randk" or "topk-previous" a silo sends
// only the round's shared index set (fl::SharedIndexTransform: the same for every silo, from the
// run seed and the round, or the top-k of the previous round's public aggregate), keeping the
// rest in its own error-feedback residual. Coding, masking and summing run as a pipeline: piece p's
// sum is on the wire while piece p + 1 is coded and masked. No rank, node leader or launcher
// sees another silo's update or weight, only their sums.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "fl/aggregation.h"
#include "mpi/comm.h"
#include "mpi/device_allreduce.h"
#include "mpi/integer_sum.h"
#include "secagg/crypto.h"
#include "secagg/masking.h"

namespace fedsilo::fl {

class SecureAggregation final : public Aggregation {
 public:
  /// Checks that the fixed-point code fits 2^32 for this many silos, makes this rank's X25519
  /// key pair, exchanges the public keys (one allgather) and derives the shared secret with
  /// every other rank (a malformed or low-order key is an error naming the rank, on every rank);
  /// rank 0 draws the run id (16 random bytes) that keys every round's masks. The secret key is
  /// dropped once the shared secrets exist. Collective.
  /// Tests only: called on this rank's public key before it is sent; it may change the key
  /// (a malformed or low-order key) or fail (a rank whose key exchange fails).
  using KeyHook = std::function<Status(std::vector<uint8_t>& public_key)>;
  /// `exchange` (which outlives this) gives the topology and the silo's transform chain.
  /// `cuda_device` >= 0 (GPU ranks): the masked words are summed on the GPUs when
  /// device.reduce resolves to NCCL (mpi::DeviceAllreduce::reduce_words, an ncclUint32 sum);
  /// with the host path they are summed as on CPU ranks.
  static Result<std::unique_ptr<SecureAggregation>> create(const config::Config& cfg,
                                                           mpi::Comm& comm,
                                                           UpdateExchange& exchange,
                                                           int64_t length,
                                                           const KeyHook& key_hook = {},
                                                           int cuda_device = -1);

  /// "secure-dense-flat", "secure-dense-hier" (the shape of the integer sum) or
  /// "secure-device-nccl".
  [[nodiscard]] std::string name() const override {
    return "secure-" + (device_sum_ ? "device-" + device_sum_->name() : sum_->name());
  }
  /// Keeps w = weight / max_weight and (local - global) scaled by w, then extras.tail; zeros
  /// where not trained. Under FedNova the update is scaled by w bound / a_s (and the decoded
  /// sum divided by the bound, fednova_aux_bound), and w a_s / bound is summed in a word of
  /// its own beside the weight.
  [[nodiscard]] Status contribute(std::span<const float> local, std::span<const float> global,
                                  float weight, bool trained, const SiloExtras& extras) override;
  /// Compresses (where the chain selects), codes, masks, sums and decodes; kInvalidArgument on
  /// every rank when fewer than 3 silos trained this round (the sum of two would give each the
  /// other's update).
  [[nodiscard]] Result<Combined> combine(uint32_t round, bool trained, ExchangeStats& stats) override;

  /// How many coordinates were clipped to [-range, range] in this rank's last round (a silo's
  /// own count, never reported to others).
  [[nodiscard]] int64_t clipped() const { return clipped_; }

 private:
  SecureAggregation(mpi::Comm& comm, UpdateExchange& exchange, const config::Config& cfg,
                    int64_t length);
  // This silo's values of the round (every coordinate, or the shared index set's) into values_.
  [[nodiscard]] Status select(uint32_t round, bool trained);
  // The words after the values: the weight, and FedNova's w a_s.
  [[nodiscard]] size_t tail_words() const { return aux_bound_ > 0.0 ? 2 : 1; }

  mpi::Comm& comm_;
  UpdateExchange& exchange_;
  std::unique_ptr<mpi::IntegerSum> sum_;                // the MPI sum, pipelined
  std::unique_ptr<mpi::DeviceAllreduce> device_sum_;    // or the GPUs' (NCCL), after masking
  int64_t shared_count_ = 0;              // k of the shared index set; 0: every coordinate
  std::vector<uint32_t> indices_;         // the round's shared index set
  std::vector<float> selected_;           // this silo's values at indices_
  std::span<const float> values_;         // what is coded: scaled_ or selected_
  secagg::FixedPoint fp_;
  double max_weight_ = 1.0;
  double aux_bound_ = 0.0;  // FedNova: the largest a_s any silo can have (fednova_aux_bound)
  uint64_t seed_ = 0;
  std::vector<uint8_t> run_id_;
  std::vector<std::pair<int, secagg::Secret>> shared_;  // (peer rank, shared secret)
  std::vector<float> scaled_;           // w * (local - global), w = weight / max_weight
  float w_ = 0.0f, aux_ = 0.0f;
  std::vector<uint32_t> codes_;         // m + 1 (+ 1) words: the coded values, the weight (, w a_s)
  std::vector<uint32_t> sums_;          // their sum over the ranks
  std::vector<float> decoded_;          // the decoded sum of the shared index set's values
  std::vector<float> total_;            // the dense sum every rank gets
  int64_t clipped_ = 0;
};

}  // namespace fedsilo::fl
