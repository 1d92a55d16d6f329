// Secure aggregation's primitives and arithmetic: X25519 (RFC 7748 section 6.1) and AES-128-CTR
// (NIST SP 800-38A F.5.1) known answers, low-order keys refused, pairwise round seeds, the
// fixed-point code (exact sums, unbiased rounding, the modulus check) and masks that cancel.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "secagg/crypto.h"
#include "secagg/masking.h"

namespace fedsilo::secagg {
namespace {

std::vector<uint8_t> hex(const std::string& h) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(h.substr(i, 2), nullptr, 16)));
  return out;
}

std::array<uint8_t, 32> key32(const std::string& h) {
  std::array<uint8_t, 32> k{};
  const auto v = hex(h);
  std::copy(v.begin(), v.end(), k.begin());
  return k;
}

TEST(SecaggCrypto, X25519MatchesRfc7748) {
  const auto a = key32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const auto b = key32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  auto alice = keypair_from_secret(a);
  auto bob = keypair_from_secret(b);
  ASSERT_TRUE(alice.ok() && bob.ok());
  EXPECT_EQ(to_hex(alice->public_key), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(to_hex(bob->public_key), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto ab = shared_secret(alice->secret, bob->public_key, "bob");
  auto ba = shared_secret(bob->secret, alice->public_key, "alice");
  ASSERT_TRUE(ab.ok() && ba.ok());
  const std::string want = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
  EXPECT_EQ(to_hex(std::span<const uint8_t>(ab->data(), kKeyBytes)), want);
  EXPECT_EQ(to_hex(std::span<const uint8_t>(ba->data(), kKeyBytes)), want);
}

TEST(SecaggCrypto, LowOrderPublicKeyIsRefusedNamingThePeer) {
  auto me = generate_keypair();
  ASSERT_TRUE(me.ok());
  PublicKey zero{};  // the point of order 1 (and 0): X25519 gives all zeros
  auto s = shared_secret(me->secret, zero, "silo-02");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("silo-02"), std::string::npos) << s.status().message();
  EXPECT_NE(s.status().message().find("low order"), std::string::npos) << s.status().message();
}

TEST(SecaggCrypto, AesCtrMatchesSp800_38a) {
  auto ks = Keystream::create(hex("2b7e151628aed2a6abf7158809cf4f3c"));
  ASSERT_TRUE(ks.ok());
  std::array<uint8_t, 16> counter{};
  const auto c = hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
  std::copy(c.begin(), c.end(), counter.begin());
  auto data = hex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
                  "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710");
  ASSERT_TRUE(ks->apply(counter, data).ok());
  EXPECT_EQ(to_hex(data), "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff"
                          "5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee");
}

TEST(SecaggCrypto, KeystreamBlocksCanBeMadeInAnyOrder) {
  auto ks = Keystream::create(hex("000102030405060708090a0b0c0d0e0f"));
  ASSERT_TRUE(ks.ok());
  std::vector<uint32_t> whole(64), part(16);
  ASSERT_TRUE(ks->fill(0, whole).ok());
  ASSERT_TRUE(ks->fill(5, part).ok());  // blocks 5..8 = words 20..35
  for (size_t i = 0; i < part.size(); ++i) EXPECT_EQ(part[i], whole[20 + i]) << i;
  EXPECT_FALSE(ks->fill(0, std::span<uint32_t>(whole.data(), 6)).ok());  // not whole blocks
}

TEST(SecaggCrypto, RoundSeedsAgreeBetweenThePairAndDifferAcrossRoundsAndRuns) {
  auto a = generate_keypair(), b = generate_keypair();
  ASSERT_TRUE(a.ok() && b.ok());
  auto ab = shared_secret(a->secret, b->public_key, "b");
  auto ba = shared_secret(b->secret, a->public_key, "a");
  ASSERT_TRUE(ab.ok() && ba.ok());
  const std::vector<uint8_t> run1 = {1, 2, 3}, run2 = {1, 2, 4};
  const auto seed_hex = [](const Result<Secret>& s) {
    return to_hex(std::span<const uint8_t>(s->data(), kKeyBytes));
  };
  auto s_ab = round_seed(ab.value(), run1, 7), s_ba = round_seed(ba.value(), run1, 7);
  ASSERT_TRUE(s_ab.ok() && s_ba.ok());
  EXPECT_EQ(seed_hex(s_ab), seed_hex(s_ba));
  EXPECT_NE(seed_hex(s_ab), seed_hex(round_seed(ab.value(), run1, 8)));
  EXPECT_NE(seed_hex(s_ab), seed_hex(round_seed(ab.value(), run2, 7)));
}

TEST(SecaggFixedPoint, ModulusCheckNamesBothSettingsAndTheNumbers) {
  EXPECT_TRUE(check_fits({1.0, 16}, 10).ok());   // 10 x 2 x 1 x 65536 = 1.3e6
  EXPECT_TRUE(check_fits({4.0, 24}, 31).ok());   // 31 x 2 x 4 x 2^24 = 4.16e9 < 2^32
  const Status s = check_fits({4.0, 24}, 32);    // 32 x 2 x 4 x 2^24 = 2^32: wraps
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("secure_aggregation.range"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("secure_aggregation.bits"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("32 silos"), std::string::npos) << s.message();
  EXPECT_FALSE(check_fits({0.0, 8}, 3).ok());
  EXPECT_FALSE(check_fits({1.0, 31}, 3).ok());
}

TEST(SecaggFixedPoint, DecodedSumIsTheFixedPointSumAndWithinSilosTimesResolution) {
  const FixedPoint fp{2.0, 12};
  const int silos = 5;
  const size_t n = 4000;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 0.7f);
  std::uniform_int_distribution<uint32_t> word;
  std::vector<uint32_t> sum(n, 0u);
  std::vector<double> exact(n, 0.0);
  std::vector<int64_t> codes(n, 0);
  int64_t clipped = 0;
  for (int s = 0; s < silos; ++s) {
    std::vector<float> v(n);
    std::vector<uint32_t> random(n), code(n);
    for (auto& x : v) x = normal(gen);
    for (auto& r : random) r = word(gen);
    clipped += encode(v, fp, random, code);
    for (size_t i = 0; i < n; ++i) {
      sum[i] += code[i];
      codes[i] += static_cast<int32_t>(code[i]);
      exact[i] += std::clamp(static_cast<double>(v[i]), -fp.range, fp.range);
    }
  }
  EXPECT_GT(clipped, 0);  // 0.7 sigma: some values beyond 2
  std::vector<float> decoded(n);
  decode(sum, fp, decoded);
  double bias = 0.0;
  for (size_t i = 0; i < n; ++i) {
    // Bit for bit the fixed-point sum, and within one unit per silo of the clipped float sum.
    EXPECT_EQ(decoded[i], static_cast<float>(static_cast<double>(codes[i]) / fp.scale())) << i;
    EXPECT_LE(std::abs(decoded[i] - exact[i]), silos / fp.scale() + 1e-6) << i;
    bias += static_cast<double>(codes[i]) / fp.scale() - exact[i];
  }
  // Stochastic rounding is unbiased: the mean error is far below the half unit that rounding
  // down would give (0.5 x silos / 2^12 = 6e-4 per coordinate).
  EXPECT_LT(std::abs(bias / n), 1e-4);
}

TEST(SecaggMasks, CancelInTheSumOfEverySampledSiloAndHideEachUpdate) {
  const FixedPoint fp{1.0, 16};
  for (int silos = 3; silos <= 8; ++silos) {
    // Pairwise seeds from real key pairs, as the protocol makes them.
    std::vector<KeyPair> keys;
    for (int s = 0; s < silos; ++s) {
      auto k = generate_keypair();
      ASSERT_TRUE(k.ok());
      keys.push_back(std::move(k).value());
    }
    const size_t n = 1001;  // not whole blocks
    std::vector<uint32_t> plain_sum(n, 0u), masked_sum(n, 0u);
    for (int s = 0; s < silos; ++s) {
      std::vector<float> v(n);
      for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((i * 37 + s) % 200) / 100.0f - 1.0f;
      std::vector<MaskPeer> peers;
      for (int p = 0; p < silos; ++p) {
        if (p == s) continue;
        auto shared = shared_secret(keys[s].secret, keys[p].public_key, "peer");
        ASSERT_TRUE(shared.ok());
        auto seed = round_seed(shared.value(), std::vector<uint8_t>{9}, 1);
        ASSERT_TRUE(seed.ok());
        peers.push_back({p, std::move(seed).value()});
      }
      const auto key = rounding_key(7, 1, static_cast<uint32_t>(s));
      auto coder = RoundMasker::create(key, s, {});
      auto masker = RoundMasker::create(key, s, peers, 64);
      ASSERT_TRUE(coder.ok() && masker.ok());
      std::vector<uint32_t> plain(n), masked(n), pieces(n);
      ASSERT_TRUE(coder->code_and_mask(v, fp, 0, plain).ok());
      int blocks = 0;
      ASSERT_TRUE(masker->code_and_mask(v, fp, 0, masked, [&] { ++blocks; }).ok());
      EXPECT_EQ(blocks, 16);  // ceil(1001 / 64)
      // Coded in two pieces at an unaligned offset: the same words.
      const size_t cut = 333;
      const std::span<const float> vs(v);
      ASSERT_TRUE(masker->code_and_mask(vs.first(cut), fp, 0, std::span<uint32_t>(pieces).first(cut)).ok());
      ASSERT_TRUE(masker->code_and_mask(vs.subspan(cut), fp, cut, std::span<uint32_t>(pieces).subspan(cut)).ok());
      EXPECT_EQ(pieces, masked) << "silo " << s;
      size_t same = 0;
      for (size_t i = 0; i < n; ++i) {
        plain_sum[i] += plain[i];
        masked_sum[i] += masked[i];
        same += masked[i] == plain[i];
      }
      EXPECT_LT(same, 3u) << "silo " << s << " of " << silos;
    }
    EXPECT_EQ(masked_sum, plain_sum) << silos << " silos";
  }
}

TEST(SecaggMasks, RoundingKeysDifferBySeedRoundAndSiloAndTheCodeUsesThem) {
  const auto a = rounding_key(1, 2, 3);
  EXPECT_EQ(a, rounding_key(1, 2, 3));
  EXPECT_NE(a, rounding_key(2, 2, 3));
  EXPECT_NE(a, rounding_key(1, 3, 3));
  EXPECT_NE(a, rounding_key(1, 2, 4));
  // The rounding words are the keystream's: word i rounds value i.
  const FixedPoint fp{1.0, 4};
  std::vector<float> v(64, 0.03125f);  // half a unit: rounds up exactly when u >= 1/2
  auto coder = RoundMasker::create(a, 0, {});
  ASSERT_TRUE(coder.ok());
  std::vector<uint32_t> code(64);
  ASSERT_TRUE(coder->code_and_mask(v, fp, 0, code).ok());
  auto ks = Keystream::create(a);
  ASSERT_TRUE(ks.ok());
  std::vector<uint32_t> words(64);
  ASSERT_TRUE(ks->fill(0, words).ok());
  for (size_t i = 0; i < 64; ++i) EXPECT_EQ(code[i], words[i] >= 0x80000000u ? 1u : 0u) << i;
  EXPECT_FALSE(RoundMasker::create(a, 0, {}, 6).ok());  // blocks of whole AES blocks
}

}  // namespace
}  // namespace fedsilo::secagg
