// Secure aggregation: shared-index selection, fixed point, pairwise masks, a pipelined uint32
// sum, decoding.
#include "fl/secure_aggregation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "fl/strategy.h"

namespace fedsilo::fl {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
}  // namespace

SecureAggregation::SecureAggregation(mpi::Comm& comm, UpdateExchange& exchange,
                                     const config::Config& cfg, int64_t length)
    : comm_(comm),
      exchange_(exchange),
      fp_{cfg.secure_aggregation.range, cfg.secure_aggregation.bits},
      max_weight_(cfg.secure_aggregation.max_weight),
      aux_bound_(fednova_aux_bound(cfg)),
      seed_(cfg.run.seed),
      scaled_(static_cast<size_t>(length)),
      total_(static_cast<size_t>(length)) {
  if (exchange.shared_index_transform() != nullptr) {
    shared_count_ = compression::selected_count(config::compression_config(cfg.compression), length);
  }
  codes_.resize(static_cast<size_t>(shared_count_ > 0 ? shared_count_ : length) + tail_words());
  sums_.resize(codes_.size());
}

Result<std::unique_ptr<SecureAggregation>> SecureAggregation::create(const config::Config& cfg,
                                                                     mpi::Comm& comm,
                                                                     UpdateExchange& exchange,
                                                                     int64_t length,
                                                                     const KeyHook& key_hook,
                                                                     int cuda_device) {
  std::unique_ptr<SecureAggregation> self(new SecureAggregation(comm, exchange, cfg, length));
  if (cuda_device >= 0) {
    // GPU ranks whose GPUs NCCL can sum on (one GPU per rank): the masked words go there.
    // Otherwise (ranks sharing a GPU) the host's pipelined MPI sum below is the faster one.
    auto dev = mpi::DeviceAllreduce::create(exchange.node_topology(), cuda_device,
                                            config::name(cfg.device.reduce));
    FEDSILO_CHECK(dev.status());  // agreed inside
    if (dev.value()->name() == "nccl") self->device_sum_ = std::move(dev).value();
  }
  if (!self->device_sum_) {
    // The masked words are summed in the exchange's shape: flat, or node by node.
    auto sum = mpi::IntegerSum::create(exchange.node_topology(),
                                       exchange.algorithm() == "dense-hier"
                                           ? mpi::IntegerSum::Shape::kHier
                                           : mpi::IntegerSum::Shape::kFlat);
    FEDSILO_CHECK(comm.agree(sum.status()));
    self->sum_ = std::move(sum).value();
  }
  FEDSILO_CHECK(comm.agree(secagg::check_fits(self->fp_, comm.size())));
  if (comm.size() < 3) {
    FEDSILO_CHECK(comm.agree(invalid_argument(
        "secure_aggregation.enabled = true needs at least 3 silos (with 2, the sum reveals the "
        "other's update); this run has " + std::to_string(comm.size()))));
  }
  // This rank's key pair; the public keys go to every rank. FEDSILO_INSECURE_TEST_KEYS (tests
  // only) derives every key pair from its value, so that a test can look for the keys.
  const char* test_keys = std::getenv("FEDSILO_INSECURE_TEST_KEYS");
  const bool insecure = test_keys != nullptr && *test_keys != '\0';
  if (insecure && comm.rank() == 0) {
    std::fprintf(stderr,
                 "fedsilo: warning: FEDSILO_INSECURE_TEST_KEYS is set: every silo's key pair derives "
                 "from it, so secure aggregation hides nothing (for tests only)\n");
  }
  auto keys = insecure ? secagg::test_keypair(test_keys, comm.rank()) : secagg::generate_keypair();
  Status made = keys.status();
  std::vector<uint8_t> mine;
  if (made.ok()) mine.assign(keys->public_key.begin(), keys->public_key.end());
  if (made.ok() && key_hook) made = key_hook(mine);
  if (!made.ok()) {
    made = Status(made.code(), "secure aggregation: rank " + std::to_string(comm.rank()) +
                                   " could not make its key pair: " + made.message());
  }
  FEDSILO_CHECK(comm.agree(made));
  std::vector<uint8_t> all;
  std::vector<int64_t> offsets;
  FEDSILO_CHECK(comm.allgatherv_bytes(mine, all, offsets));
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
                                     float weight, bool trained, const SiloExtras& extras) {
  w_ = trained ? static_cast<float>(weight / max_weight_) : 0.0f;
  aux_ = trained && aux_bound_ > 0.0 ? static_cast<float>(w_ * (extras.aux / aux_bound_)) : 0.0f;
  if (w_ > 1.0f) {
    return invalid_argument("secure aggregation: this silo's sample count " +
                            std::to_string(static_cast<int64_t>(weight)) +
                            " exceeds secure_aggregation.max_weight = " + std::to_string(max_weight_));
  }
  if (!trained) {
    std::fill(scaled_.begin(), scaled_.end(), 0.0f);
    return {};
  }
  const size_t n = local.size();
  if (n + extras.tail.size() != scaled_.size() || global.size() != n) {
    return internal_error("contribute: the update's parts do not add up to the exchange's length");
  }
  if (extras.aux > aux_bound_) {
    return invalid_argument(
        "secure aggregation: FedNova's a_s = " + std::to_string(extras.aux) +
        " exceeds the bound it is coded against, " + std::to_string(aux_bound_) +
        " (local.epochs x ceil(secure_aggregation.max_weight / local.batch_size) steps at "
        "local.momentum): the silo took more steps, or a higher momentum, than the config says");
  }
  // FedNova's d_s = (y - w) / a_s is a_s times smaller than an update: coded as is, it would
  // sit near the code's resolution. Scaled by the largest a_s it is about an update's size
  // again (n_s / max_weight times bound / a_s stays near 1: a_s grows with the silo's steps),
  // and the decoded sum is divided by the bound.
  const float u = aux_bound_ > 0.0 ? static_cast<float>(w_ * (aux_bound_ / extras.divisor)) : w_;
  for (size_t i = 0; i < n; ++i) scaled_[i] = u * (local[i] - global[i]);
  std::copy(extras.tail.begin(), extras.tail.end(), scaled_.begin() + static_cast<std::ptrdiff_t>(n));
  return check_finite(scaled_, "update");
}

Status SecureAggregation::select(uint32_t round, bool trained) {
  SharedIndexTransform* shared = exchange_.shared_index_transform();
  if (shared == nullptr) {
    values_ = scaled_;
    return {};
  }
  // The round's shared index set: every silo knows it, so an untrained silo sends zeros at it
  // and every rank places the decoded sum.
  const auto n = static_cast<int64_t>(scaled_.size());
  indices_ = shared->indices(round, n);
  selected_.assign(indices_.size(), 0.0f);
  values_ = selected_;
  SiloUpdate mine;
  mine.dense = scaled_;
  mine.shared = indices_;
  FEDSILO_CHECK(exchange_.run_chain(round, trained, mine));
  if (!trained) return {};
  selected_ = std::move(mine.sparse.values);
  values_ = selected_;
  return {};
}

Result<Combined> SecureAggregation::combine(uint32_t round, bool trained, ExchangeStats& stats) {
  stats = ExchangeStats{};
  const size_t n = scaled_.size();
  // How many silos trained is public (the sampling is); fewer than 3 would reveal updates.
  // Only they take part: the masks are between pairs of silos that trained, and a silo that did
  // not sends zeros, unmasked (everyone knows it sat out), and skips the code and masks.
  const int64_t mine[1] = {trained ? 1 : 0};
  std::vector<int64_t> trained_by_rank;
  FEDSILO_CHECK(comm_.allgather(std::span<const int64_t>(mine, 1), trained_by_rank));
  const int64_t count = std::accumulate(trained_by_rank.begin(), trained_by_rank.end(), int64_t{0});
  if (count < 3) {
    FEDSILO_CHECK(comm_.agree(invalid_argument(
        "secure aggregation needs at least 3 silos that train in a round; round " +
        std::to_string(round) + " had " + std::to_string(count) +
        " (raise strategy.fraction, or run more silos)")));
  }

  auto t0 = Clock::now();
  FEDSILO_CHECK(comm_.agree(select(round, trained)));
  // This round's masker: the rounding words' key and every pair's seed.
  auto masker = [&]() -> Result<secagg::RoundMasker> {
    std::vector<secagg::MaskPeer> peers;
    for (const auto& [p, secret] : shared_) {
      if (!trained || trained_by_rank[static_cast<size_t>(p)] == 0) continue;
      FEDSILO_ASSIGN_OR_RETURN(secagg::Secret seed, secagg::round_seed(secret, run_id_, round));
      peers.push_back({p, std::move(seed)});
    }
    const auto key = secagg::rounding_key(seed_, round, static_cast<uint32_t>(comm_.rank()));
    return secagg::RoundMasker::create(key, comm_.rank(), peers);
  }();
  FEDSILO_CHECK(comm_.agree(masker.status()));

  // Words [0, m) code the values, word m the weight (whose range is at least 1: w <= 1), and
  // under FedNova word m + 1 its w a_s / bound (<= 1). The pipeline: each piece is coded and
  // masked, then its sum starts and moves on while the next piece is coded (the masker lets it
  // progress after every block).
  const size_t m = values_.size(), words = m + tail_words();
  const secagg::FixedPoint weight_fp{std::max(fp_.range, 1.0), fp_.bits};
  const float w[2] = {w_, aux_};
  const size_t piece = std::clamp<size_t>((words / 8 + 3) / 4 * 4, 4096, size_t{1} << 20);
  const auto progress = [this] {
    if (sum_) sum_->progress();
  };
  Status st;
  clipped_ = 0;
  double masking = since(t0);  // the selection, then every piece's code and masks
  for (size_t first = 0; first < words; first += piece) {
    const size_t len = std::min(piece, words - first);
    const size_t nv = first < m ? std::min(len, m - first) : 0;
    const auto tm = Clock::now();
    if (!trained) {
      std::fill_n(codes_.begin() + static_cast<std::ptrdiff_t>(first), len, 0u);
    } else if (st.ok()) {
      auto c = masker->code_and_mask(values_.subspan(first, nv), fp_, first,
                                     std::span<uint32_t>(codes_.data() + first, nv), progress);
      if (c.ok()) clipped_ += c.value();
      st = c.status();
    }
    if (trained && st.ok() && first + len == words) {
      st = masker->code_and_mask(std::span<const float>(w, tail_words()), weight_fp, m,
                                 std::span<uint32_t>(codes_.data() + m, tail_words()))
               .status();
    }
    masking += since(tm);
    // A failed rank still starts every piece (the others wait for it); the outcome is agreed
    // after the sum. The device sum takes the whole vector once it is masked.
    if (!sum_) continue;
    const Status started = sum_->start(std::span<const uint32_t>(codes_.data() + first, len),
                                       std::span<uint32_t>(sums_.data() + first, len));
    if (st.ok()) st = started;
  }
  stats.compress_seconds = masking;
  mpi::AllreduceStats as;
  if (device_sum_) {
    FEDSILO_CHECK(comm_.agree(st));
    FEDSILO_CHECK(device_sum_->reduce_words(codes_, sums_, as));  // agreed inside
  } else {
    const Status summed = sum_->finish(as);
    FEDSILO_CHECK(comm_.agree(st.ok() ? summed : st));
  }
  stats.take(as);

  t0 = Clock::now();
  float weight_sum[2] = {0.0f, 0.0f};
  secagg::decode(std::span<const uint32_t>(sums_.data() + m, tail_words()), weight_fp,
                 std::span<float>(weight_sum, tail_words()));
  if (shared_count_ == 0) {
    secagg::decode(std::span<const uint32_t>(sums_.data(), m), fp_, total_);
  } else {
    decoded_.resize(m);
    secagg::decode(std::span<const uint32_t>(sums_.data(), m), fp_, decoded_);
    std::fill(total_.begin(), total_.end(), 0.0f);
    for (size_t i = 0; i < m; ++i) total_[indices_[i]] = decoded_[i];
    // The public aggregate: what the next round's top-k-previous set is drawn from.
    exchange_.shared_index_transform()->remember(total_);
  }
  if (aux_bound_ > 0.0) {
    const auto inv = static_cast<float>(1.0 / aux_bound_);
    for (float& v : total_) v *= inv;
  }
  stats.decompress_seconds = since(t0);
  stats.dense_bytes = 4 * static_cast<int64_t>(n);
  stats.payload_bytes = 4 * static_cast<int64_t>(words);
  if (!(weight_sum[0] > 0.0f)) {
    FEDSILO_CHECK(comm_.agree(internal_error("secure aggregation: the decoded weight sum of round " +
                                             std::to_string(round) + " is not positive")));
  }
  // sum w_s (a_s / bound) over sum w_s, times the bound: the weighted mean of a_s.
  const double aux_mean = static_cast<double>(weight_sum[1]) / weight_sum[0] * aux_bound_;
  return Combined{std::span<const float>(total_), static_cast<double>(weight_sum[0]), aux_mean};
}

}  // namespace fedsilo::fl
