// Secure aggregation over MPI (docs/threat-model.md): each silo clips its weighted update,
// codes it in fixed point modulo 2^32 together with its weight, adds pairwise masks that cancel
// in the sum, and the ranks sum the masked integers with MPI_Allreduce; every rank decodes the
// sum. No rank, node leader or launcher sees another silo's update or weight, only their sums.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/status.h"
#include "fl/aggregation.h"
#include "mpi/comm.h"
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
  static Result<std::unique_ptr<SecureAggregation>> create(const config::Config& cfg,
                                                           mpi::Comm& comm, int64_t length);

  [[nodiscard]] std::string name() const override { return "secure-dense-flat"; }
  /// Keeps weight / max_weight and (local - global) scaled by it; zeros where not trained.
  [[nodiscard]] Status contribute(std::span<const float> local, std::span<const float> global,
                                  float weight, bool trained) override;
  /// Codes, masks, sums and decodes; kInvalidArgument on every rank when fewer than 3 silos
  /// trained this round (the sum of two would give each the other's update).
  [[nodiscard]] Result<Combined> combine(uint32_t round, bool trained, ExchangeStats& stats) override;

  /// How many coordinates were clipped to [-range, range] in this rank's last round (a silo's
  /// own count, never reported to others).
  [[nodiscard]] int64_t clipped() const { return clipped_; }

 private:
  SecureAggregation(mpi::Comm& comm, const config::Config& cfg, int64_t length);

  mpi::Comm& comm_;
  secagg::FixedPoint fp_;
  double max_weight_ = 1.0;
  uint64_t seed_ = 0;
  std::vector<uint8_t> run_id_;
  std::vector<std::pair<int, secagg::Secret>> shared_;  // (peer rank, shared secret)
  std::vector<float> scaled_;           // w * (local - global), w = weight / max_weight
  float w_ = 0.0f;
  std::vector<uint32_t> codes_;         // n + 1 words: the coded update, then the weight
  std::vector<uint32_t> random_;        // n + 1 stochastic-rounding words (reused each round)
  std::vector<float> sum_;
  int64_t clipped_ = 0;
};

}  // namespace fedsilo::fl
