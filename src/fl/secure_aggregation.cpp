// Secure aggregation: fixed point, pairwise masks, a uint32 MPI_Allreduce, decoding.
#include "fl/secure_aggregation.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/philox.h"

namespace fedsilo::fl {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

SecureAggregation::SecureAggregation(mpi::Comm& comm, const config::Config& cfg, int64_t length)
    : comm_(comm),
      fp_{cfg.secure_aggregation.range, cfg.secure_aggregation.bits},
      max_weight_(cfg.secure_aggregation.max_weight),
      seed_(cfg.run.seed),
      scaled_(static_cast<size_t>(length)),
      codes_(static_cast<size_t>(length) + 1),
      random_(static_cast<size_t>(length) + 1),
      sum_(static_cast<size_t>(length)) {}

Result<std::unique_ptr<SecureAggregation>> SecureAggregation::create(const config::Config& cfg,
                                                                     mpi::Comm& comm, int64_t length) {
  std::unique_ptr<SecureAggregation> self(new SecureAggregation(comm, cfg, length));
  FEDSILO_CHECK(comm.agree(secagg::check_fits(self->fp_, comm.size())));
  if (comm.size() < 3) {
    FEDSILO_CHECK(comm.agree(invalid_argument(
        "secure_aggregation.enabled = true needs at least 3 silos (with 2, the sum reveals the "
        "other's update); this run has " + std::to_string(comm.size()))));
  }
  // This rank's key pair; the public keys go to every rank.
  auto keys = secagg::generate_keypair();
  FEDSILO_CHECK(comm.agree(keys.status()));
  std::vector<uint8_t> all;
  std::vector<int64_t> offsets;
  FEDSILO_CHECK(comm.allgatherv_bytes(keys->public_key, all, offsets));
  Status st;
  for (int p = 0; p < comm.size() && st.ok(); ++p) {
    if (p == comm.rank()) continue;
    const std::string who = "rank " + std::to_string(p);
    if (offsets[p + 1] - offsets[p] != static_cast<int64_t>(secagg::kKeyBytes)) {
      st = invalid_argument("secure aggregation: " + who + " sent a public key of " +
                            std::to_string(offsets[p + 1] - offsets[p]) + " bytes, not 32");
      break;
    }
    secagg::PublicKey peer;
    std::copy_n(all.begin() + offsets[p], secagg::kKeyBytes, peer.begin());
    auto shared = secagg::shared_secret(keys->secret, peer, who);
    if (!shared.ok()) {
      st = Status(shared.status().code(), "secure aggregation: " + shared.status().message());
    } else {
      self->shared_.emplace_back(p, std::move(shared).value());
    }
  }
  FEDSILO_CHECK(comm.agree(st));
  // The run id: fresh for every start, so a requeued run masks with fresh seeds.
  self->run_id_.assign(16, 0);
  if (comm.rank() == 0) {
    auto r = secagg::random_bytes(16);
    if (r.ok()) self->run_id_ = std::move(r).value();
  }
  FEDSILO_CHECK(comm.broadcast(std::span<uint8_t>(self->run_id_), 0));
  return self;  // the key pair's secret is wiped here (Secret's destructor)
}

Status SecureAggregation::contribute(std::span<const float> local, std::span<const float> global,
                                     float weight, bool trained) {
  w_ = trained ? static_cast<float>(weight / max_weight_) : 0.0f;
  if (w_ > 1.0f) {
    return invalid_argument("secure aggregation: this silo's sample count " +
                            std::to_string(static_cast<int64_t>(weight)) +
                            " exceeds secure_aggregation.max_weight = " + std::to_string(max_weight_));
  }
  if (!trained) {
    std::fill(scaled_.begin(), scaled_.end(), 0.0f);
    return {};
  }
  for (size_t i = 0; i < scaled_.size(); ++i) scaled_[i] = w_ * (local[i] - global[i]);
  return check_finite(scaled_, "update");
}

Result<Combined> SecureAggregation::combine(uint32_t round, bool trained, ExchangeStats& stats) {
  stats = ExchangeStats{};
  const size_t n = scaled_.size();
  // How many silos trained is public (the sampling is); fewer than 3 would reveal updates.
  int64_t count = trained ? 1 : 0;
  FEDSILO_CHECK(comm_.allreduce_sum(std::span<int64_t>(&count, 1)));
  if (count < 3) {
    FEDSILO_CHECK(comm_.agree(invalid_argument(
        "secure aggregation needs at least 3 silos that train in a round; round " +
        std::to_string(round) + " had " + std::to_string(count) +
        " (raise strategy.fraction, or run more silos)")));
  }

  // Fixed point: the update, then the weight (whose range is at least 1: w <= 1).
  auto t0 = Clock::now();
  std::vector<uint32_t>& random = random_;
  Philox rng(seed_, round, static_cast<uint32_t>(comm_.rank()), RngPurpose::kSecureRounding);
  for (auto& r : random) r = rng.next_u32();
  clipped_ = secagg::encode(scaled_, fp_, std::span<const uint32_t>(random.data(), n),
                            std::span<uint32_t>(codes_.data(), n));
  const secagg::FixedPoint weight_fp{std::max(fp_.range, 1.0), fp_.bits};
  const float w[1] = {w_};
  secagg::encode(w, weight_fp, std::span<const uint32_t>(random.data() + n, 1),
                 std::span<uint32_t>(codes_.data() + n, 1));
  // The pairwise masks of this round, from each pair's seed.
  Status st = [&]() -> Status {
    std::vector<secagg::MaskPeer> peers;
    for (const auto& [p, secret] : shared_) {
      FEDSILO_ASSIGN_OR_RETURN(secagg::Secret seed, secagg::round_seed(secret, run_id_, round));
      peers.push_back({p, std::move(seed)});
    }
    return secagg::add_masks(codes_, comm_.rank(), peers);
  }();
  FEDSILO_CHECK(comm_.agree(st));
  stats.compress_seconds = since(t0);

  // The masked sum, modulo 2^32 (bytes as the ring model counts them).
  t0 = Clock::now();
  FEDSILO_CHECK(comm_.allreduce_sum(std::span<uint32_t>(codes_)));
  const int P = comm_.size();
  const int64_t bytes = 4 * static_cast<int64_t>(codes_.size());
  const int64_t moved = P > 1 ? 2 * bytes * (P - 1) / P : 0;
  const bool one_node = comm_.local_size() == P;
  (one_node ? stats.intra_bytes_sent : stats.inter_bytes_sent) = moved;
  (one_node ? stats.intra_bytes_received : stats.inter_bytes_received) = moved;
  (one_node ? stats.intra_seconds : stats.inter_seconds) = since(t0);

  t0 = Clock::now();
  secagg::decode(std::span<const uint32_t>(codes_.data(), n), fp_, sum_);
  float weight_sum[1];
  secagg::decode(std::span<const uint32_t>(codes_.data() + n, 1), weight_fp, weight_sum);
  stats.decompress_seconds = since(t0);
  stats.dense_bytes = 4 * static_cast<int64_t>(n);
  stats.payload_bytes = bytes;
  if (!(weight_sum[0] > 0.0f)) {
    FEDSILO_CHECK(comm_.agree(internal_error("secure aggregation: the decoded weight sum of round " +
                                             std::to_string(round) + " is not positive")));
  }
  return Combined{std::span<const float>(sum_), static_cast<double>(weight_sum[0])};
}

}  // namespace fedsilo::fl
