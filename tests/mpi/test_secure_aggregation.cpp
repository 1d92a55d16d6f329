// fl::SecureAggregation on 1-8 ranks: the decoded masked sum equals the plain fixed-point sum of
// the silos that trained, bit for bit (partial participation included), the weight sum too, for
// both shapes of the integer sum (flat, node by node on emulated nodes), dense and with a shared
// index set (rand-k, or the top-k of the previous round's sum; each silo's error feedback
// replayed here); fewer than 3 silos, bad keys and a failed key pair are refused on every rank.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compression/compressor.h"
#include "config/config.h"
#include "fl/secure_aggregation.h"
#include "fl/update_exchange.h"
#include "kernels/cpu/randk.h"
#include "kernels/cpu/topk.h"
#include "mpi/comm.h"
#include "secagg/crypto.h"
#include "secagg/masking.h"

namespace fedsilo::fl {
namespace {

config::Config secure_config() {
  config::Config c;
  c.run.seed = 5;
  c.secure_aggregation.enabled = true;
  c.secure_aggregation.range = 2.0;
  c.secure_aggregation.bits = 18;
  c.secure_aggregation.max_weight = 1000.0;
  return c;
}

// Silo q's local parameters in `round`: the global ones plus values in [-3, 3] (some clipped).
float delta(int q, uint32_t round, size_t i) {
  return static_cast<float>(static_cast<int>((i * 7919 + q * 104729 + round * 31) % 6001) - 3000) / 1000.0f;
}

// Silo q's plain fixed-point code of `values` at word `first` onwards: the masker of no peers.
std::vector<uint32_t> plain_code(const config::Config& cfg, int q, uint32_t round,
                                 std::span<const float> values, const secagg::FixedPoint& fp,
                                 uint64_t first) {
  const auto key = secagg::rounding_key(cfg.run.seed, round, static_cast<uint32_t>(q));
  auto coder = secagg::RoundMasker::create(key, q, {});
  EXPECT_TRUE(coder.ok());
  std::vector<uint32_t> out(values.size());
  EXPECT_TRUE(coder->code_and_mask(values, fp, first, out).ok());
  return out;
}

struct Case {
  config::Algorithm algorithm;
  int emulated_nodes;
  compression::Method method = compression::Method::kNone;  // none, randk, topk-previous (10%)
  std::string name() const {
    return std::string(config::name(algorithm)) + ", " + std::to_string(emulated_nodes) +
           " emulated nodes, " + compression::method_name(method);
  }
};

struct Made {
  std::unique_ptr<UpdateExchange> exchange;
  std::unique_ptr<SecureAggregation> aggregation;
};

Result<Made> make(const config::Config& cfg, mpi::Comm& world, int64_t n,
                  const SecureAggregation::KeyHook& hook = {}) {
  Made m;
  FEDSILO_ASSIGN_OR_RETURN(m.exchange, UpdateExchange::create(cfg, world, n, ""));
  FEDSILO_ASSIGN_OR_RETURN(m.aggregation, SecureAggregation::create(cfg, world, *m.exchange, n, hook));
  return m;
}

TEST(SecureAggregation, DecodedSumIsTheFixedPointSumOfTheSilosThatTrained) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  const int P = world->size(), me = world->rank();
  // Several pipeline pieces (at least 4096 words each), a length no piece divides.
  const int64_t n = 20001;
  using M = compression::Method;
  std::vector<Case> cases = {{config::Algorithm::kDenseFlat, 0, M::kNone},
                             {config::Algorithm::kDenseFlat, 0, M::kRandk},
                             {config::Algorithm::kDenseFlat, 0, M::kTopkPrevious}};
  if (P % 2 == 0 && P >= 4) {
    cases.push_back({config::Algorithm::kDenseHier, 2, M::kNone});
    cases.push_back({config::Algorithm::kDenseHier, 2, M::kRandk});
    cases.push_back({config::Algorithm::kDenseFlat, 2, M::kNone});
  }
  if (P % 3 == 0 && P >= 6) cases.push_back({config::Algorithm::kAuto, 3, M::kTopkPrevious});
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name());
    config::Config cfg = secure_config();
    cfg.allreduce.algorithm = c.algorithm;
    cfg.topology.emulated_nodes = c.emulated_nodes;
    const bool shared_set = c.method != M::kNone;
    if (shared_set) {
      cfg.compression.method = c.method;
      cfg.compression.density = 0.1;
      cfg.compression.error_feedback = true;
    }
    auto made = make(cfg, world.value(), n);
    if (P < 3) {
      ASSERT_FALSE(made.ok());
      EXPECT_NE(made.status().message().find("at least 3 silos"), std::string::npos) << made.status().message();
      return;
    }
    ASSERT_TRUE(made.ok()) << made.status().message();
    SecureAggregation& agg = *made->aggregation;
    const bool hier = c.algorithm != config::Algorithm::kDenseFlat && c.emulated_nodes > 1;
    EXPECT_EQ(agg.name(), hier ? "secure-dense-hier" : "secure-dense-flat");
    const secagg::FixedPoint fp{cfg.secure_aggregation.range, cfg.secure_aggregation.bits};
    const secagg::FixedPoint weight_fp{std::max(fp.range, 1.0), fp.bits};
    // Every silo's error-feedback residual and the previous aggregate, replayed on every rank.
    const auto zcfg = config::compression_config(cfg.compression);
    std::vector<std::vector<float>> residuals(static_cast<size_t>(P), std::vector<float>(n, 0.0f));
    std::vector<float> previous;  // the previous round's decoded sum
    const int64_t k = shared_set ? compression::selected_count(zcfg, n) : 0;

    std::vector<float> global(n);
    for (int64_t i = 0; i < n; ++i) global[i] = 0.25f * static_cast<float>(i % 8);
    for (uint32_t round = 1; round <= 3; ++round) {
      // With 4 or more ranks the last one sits a round out (partial participation).
      const auto trains = [&](int q) { return P == 3 || q != P - 1 || round == 2; };
      std::vector<float> local(n);
      for (int64_t i = 0; i < n; ++i) local[i] = global[i] + delta(me, round, i);
      const float weight = 100.0f * static_cast<float>(me + 1);
      ASSERT_TRUE(agg.contribute(local, global, weight, trains(me), {}).ok());
      ExchangeStats stats;
      auto got = agg.combine(round, trains(me), stats);
      ASSERT_TRUE(got.ok()) << got.status().message();

      // The plain fixed-point sum: every silo's code, as that silo made it, summed modulo 2^32.
      // The round's set: rand-k, or the top-k of the previous round's sum once there is one.
      // (topk-previous: its top k/2, then the first of rand-2k's draws not among them).
      std::vector<uint32_t> shared;
      if (shared_set && (c.method == M::kRandk || previous.empty())) {
        shared = kernels::randk_indices(n, k, cfg.run.seed, round);
      } else if (shared_set) {
        std::set<uint32_t> chosen;
        for (uint32_t i : kernels::topk_indices(previous, k / 2, 1)) chosen.insert(i);
        for (uint32_t i : kernels::randk_indices(n, 2 * k, cfg.run.seed, round)) {
          if (static_cast<int64_t>(chosen.size()) == k) break;
          chosen.insert(i);
        }
        shared.assign(chosen.begin(), chosen.end());
      }
      const size_t m = shared_set ? static_cast<size_t>(k) : static_cast<size_t>(n);
      std::vector<uint32_t> sum(m, 0u);
      uint32_t weight_code_sum = 0;
      for (int q = 0; q < P; ++q) {
        if (!trains(q)) continue;
        const auto w = static_cast<float>(100.0 * (q + 1) / cfg.secure_aggregation.max_weight);
        std::vector<float> scaled(n);
        for (int64_t i = 0; i < n; ++i) scaled[i] = w * ((global[i] + delta(q, round, i)) - global[i]);
        std::vector<float> values = scaled;
        if (shared_set) {
          std::vector<float>& r = residuals[q];
          for (int64_t i = 0; i < n; ++i) r[i] += scaled[i];
          values.assign(m, 0.0f);
          for (size_t j = 0; j < m; ++j) {
            values[j] = r[shared[j]];
            r[shared[j]] = 0.0f;
          }
        }
        const auto code = plain_code(cfg, q, round, values, fp, 0);
        const float wv[1] = {w};
        const auto wcode = plain_code(cfg, q, round, wv, weight_fp, m);
        for (size_t i = 0; i < m; ++i) sum[i] += code[i];
        weight_code_sum += wcode[0];
      }
      std::vector<float> decoded(m);
      secagg::decode(sum, fp, decoded);
      std::vector<float> want(n, 0.0f);
      for (size_t i = 0; i < m; ++i) want[shared_set ? shared[i] : i] = decoded[i];
      previous = want;
      float want_weight[1];
      const uint32_t wc[1] = {weight_code_sum};
      secagg::decode(wc, weight_fp, want_weight);
      ASSERT_EQ(got->sum.size(), static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got->sum[i], want[i]) << "round " << round << ", i " << i;
      EXPECT_EQ(got->weight_sum, static_cast<double>(want_weight[0])) << "round " << round;
      EXPECT_EQ(stats.payload_bytes, 4 * static_cast<int64_t>(m + 1));
      EXPECT_GT(stats.bytes_sent(), 0);
    }
  }
}

TEST(SecureAggregation, FewerThanThreeTrainedSilosAreRefusedOnEveryRank) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "needs 3 ranks";
  const int64_t n = 16;
  auto made = make(secure_config(), world.value(), n);
  ASSERT_TRUE(made.ok()) << made.status().message();
  const bool trains = world->rank() < 2;
  std::vector<float> local(n, 1.0f), global(n, 0.0f);
  ASSERT_TRUE(made->aggregation->contribute(local, global, 10.0f, trains, {}).ok());
  ExchangeStats stats;
  auto got = made->aggregation->combine(7, trains, stats);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("round 7 had 2"), std::string::npos) << got.status().message();
}

TEST(SecureAggregation, InsecureTestKeysAreTheOnesTestsRecompute) {
  // The end-to-end test looks for the keys of FEDSILO_INSECURE_TEST_KEYS in a run's outputs:
  // that search only means something if the run uses exactly secagg::test_keypair's keys.
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "needs 3 ranks";
  setenv("FEDSILO_INSECURE_TEST_KEYS", "mpi-test", 1);
  std::vector<uint8_t> sent;
  auto made = make(secure_config(), world.value(), 16, [&](std::vector<uint8_t>& key) {
    sent = key;
    return Status();
  });
  unsetenv("FEDSILO_INSECURE_TEST_KEYS");
  ASSERT_TRUE(made.ok()) << made.status().message();
  auto want = secagg::test_keypair("mpi-test", world->rank());
  ASSERT_TRUE(want.ok());
  EXPECT_EQ(sent, std::vector<uint8_t>(want->public_key.begin(), want->public_key.end()));
  // Without the variable the keys are fresh.
  auto fresh = make(secure_config(), world.value(), 16, [&](std::vector<uint8_t>& key) {
    sent = key;
    return Status();
  });
  ASSERT_TRUE(fresh.ok());
  EXPECT_NE(sent, std::vector<uint8_t>(want->public_key.begin(), want->public_key.end()));
}

TEST(SecureAggregation, ABadKeyOrAFailedKeyExchangeOnOneRankIsOneClearErrorOnEveryRank) {
  auto world = mpi::Comm::world();
  ASSERT_TRUE(world.ok());
  if (world->size() < 3) GTEST_SKIP() << "needs 3 ranks";
  const bool culprit = world->rank() == 1;
  struct BadKey {
    SecureAggregation::KeyHook hook;
    std::string want;
  };
  const std::vector<BadKey> cases = {
      {[](std::vector<uint8_t>& key) {
         key.pop_back();  // truncated
         return Status();
       },
       "rank 1 sent a public key of 31 bytes, not 32"},
      {[](std::vector<uint8_t>& key) {
         std::fill(key.begin(), key.end(), 0);  // the point of order 1 (low order)
         return Status();
       },
       "rank 1's public key 0000000000000000000000000000000000000000000000000000000000000000 is "
       "malformed or of low order"},
      {[](std::vector<uint8_t>& key) {
         key.assign(32, 0);
         key[0] = 1;  // order 4: low order too
         return Status();
       },
       "rank 1's public key 0100000000000000000000000000000000000000000000000000000000000000 is "
       "malformed or of low order"},
      {[](std::vector<uint8_t>&) { return internal_error("the random source failed"); },
       "rank 1 could not make its key pair: the random source failed"},
  };
  for (const BadKey& c : cases) {
    auto made = make(secure_config(), world.value(), 16, culprit ? c.hook : SecureAggregation::KeyHook());
    ASSERT_FALSE(made.ok());
    EXPECT_NE(made.status().message().find(c.want), std::string::npos) << made.status().message();
  }
}

}  // namespace
}  // namespace fedsilo::fl
