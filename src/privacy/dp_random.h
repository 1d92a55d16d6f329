// DP-SGD's secret randomness. The run seed is public (config.toml), so the Poisson sampling of
// each batch and the Gaussian noise come from a per-silo secret key instead: 32 bytes from the
// operating system (libsodium), kept in the silo's private directory so that a resumed run
// continues the same streams (a step is never released twice with fresh noise). Each round
// expands the key into two AES-128-CTR streams (OpenSSL, AES-NI), one for sampling and one for
// noise; step s of the round reads its own counter range, so any step can be regenerated alone.
//
// The Gaussian sampler is a Ziggurat (Marsaglia and Tsang 2000, 128 layers) on 32-bit keystream
// words, with the layer index and the value taken from disjoint bits (Doornik 2005's fix), in
// double, rounded once to float when added. What remains of Mironov's (2012) floating-point
// attack is documented in docs/privacy.md: the noise takes values on a grid of 2^-24 of its
// layer's width, and the noised sum is rounded to float.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/cpu/thread_team.h"
#include "secagg/crypto.h"

namespace fedsilo::privacy {

/// The file of a silo's DP key inside its private directory (mode 0600).
inline constexpr const char* kDpKeyFile = "dp.key";

/// The silo's DP key: read from `private_dir`/dp.key when `resume`, else drawn from the
/// operating system and written there (0600, to a temporary name, then renamed). Errors name
/// the file (missing on resume, wrong size, unreadable).
[[nodiscard]] Result<secagg::Secret> load_or_create_key(const std::string& private_dir, bool resume);

/// Tests only (it voids the guarantee: anyone with the config can recompute the noise): the key
/// BLAKE2b-256("fsdptst1", seed, silo).
[[nodiscard]] Result<secagg::Secret> insecure_test_key(uint64_t seed, uint32_t silo);

/// One round's secret streams of one silo.
class RoundRandom {
 public:
  static Result<RoundRandom> create(const secagg::Secret& key, uint32_t round);
  RoundRandom(RoundRandom&&) noexcept = default;
  RoundRandom& operator=(RoundRandom&&) noexcept = default;
  ~RoundRandom();

  /// Poisson sampling for step `step`: each index of [0, n) independently with probability q
  /// (a 64-bit keystream word below q 2^64), ascending, into `out`.
  [[nodiscard]] Status poisson_sample(uint32_t step, int64_t n, double q, std::vector<int64_t>& out);

  /// out[j] = out[j] scale + (sigma scale) z_j, z_j standard normal, for step `step`. The vector
  /// is cut into segments of kNoiseSegment values, each with its own counter range, run on
  /// `team`'s threads when given: the noise depends on (key, round, step, j) only, never on the
  /// thread count.
  [[nodiscard]] Status add_gaussian(uint32_t step, double sigma, std::span<float> out,
                                    kernels::ThreadTeam* team = nullptr, float scale = 1.0f);
  static constexpr size_t kNoiseSegment = size_t{1} << 14;

  /// The hardened sampler (privacy.sampler = "discrete"), closed to floating-point attacks on
  /// the noise's low bits: on the grid lambda = 2^floor(log2(noise_multiplier clip 2^-16)),
  /// out[j] = (k_j + z_j) lambda scale with k_j = round(out[j] / lambda) and z_j an exact discrete
  /// Gaussian of integer scale s = ceil(noise_multiplier (clip / lambda + sqrt(n))) (Canonne,
  /// Kamath, Steinke 2020: integer arithmetic only), n = out.size(). The output depends on the
  /// clipped sum only through the integers k; rounding moves k by at most sqrt(n) in L2, which s
  /// pays for, so the effective noise multiplier is at least `noise_multiplier`. The same
  /// segments, counter ranges and threads as add_gaussian.
  [[nodiscard]] Status add_discrete_gaussian(uint32_t step, double noise_multiplier, double clip,
                                             std::span<float> out, kernels::ThreadTeam* team = nullptr,
                                             float scale = 1.0f);
  /// The grid and integer scale add_discrete_gaussian uses (exposed for tests).
  struct DiscreteGrid {
    double lambda = 0.0;
    int64_t scale = 0;
  };
  [[nodiscard]] static DiscreteGrid discrete_grid(double noise_multiplier, double clip, size_t n);

 private:
  // Runs fn(keystream, words, outside, segment, first, len) over the segments of an n-value
  // vector on up to team->size() threads; the first error is returned.
  template <typename Fn>
  [[nodiscard]] Status for_segments(size_t n, kernels::ThreadTeam* team, const Fn& fn);
  RoundRandom(secagg::Keystream sampling, std::vector<secagg::Keystream> noise,
              const std::array<uint8_t, 16>& noise_key)
      : sampling_(std::move(sampling)), noise_(std::move(noise)), noise_key_(noise_key) {}
  [[nodiscard]] Status noise_segment(secagg::Keystream& ks, std::vector<uint32_t>& words,
                                     std::vector<uint32_t>& outside,
                                     uint32_t step, size_t segment, double sigma, float scale,
                                     std::span<float> out) const;
  secagg::Keystream sampling_;
  std::vector<secagg::Keystream> noise_;  // one per thread (the same key)
  std::array<uint8_t, 16> noise_key_;     // for the threads' streams; wiped with the object
  std::vector<uint32_t> words_;
  std::vector<std::vector<uint32_t>> noise_words_;    // per thread: a segment's keystream
  std::vector<std::vector<uint32_t>> noise_outside_;  // per thread: its rejected positions
};

/// Standard normal draws from a sequence of uniform 32-bit words (the Ziggurat): `next` returns
/// the next word. Exposed for the statistical tests.
class Ziggurat {
 public:
  Ziggurat();
  template <typename NextWord>
  double draw(NextWord&& next) const;
  /// The fast path of one word: true and the value (in units of the layer width) when the word
  /// falls inside its layer's rectangle (~98.8% of words), else false (draw() from the next
  /// words then gives the value).
  [[nodiscard]] bool inside(uint32_t u) const {
    const int i = static_cast<int>(u & 127u);
    const int32_t h = static_cast<int32_t>(u) >> 7;
    return (h < 0 ? -h : h) < ki_[i];
  }
  [[nodiscard]] double value(uint32_t u) const {
    return static_cast<double>(static_cast<int32_t>(u) >> 7) * w_[u & 127u];
  }
  /// Layer i's width in units of the 25-bit value, and the bounds inside() compares with.
  [[nodiscard]] double width(int i) const { return w_[i]; }
  [[nodiscard]] const int32_t* inside_bounds() const { return ki_; }
  /// The value of a word that fell outside its rectangle: the wedge or the tail test, then new
  /// words from `next` until one is accepted.
  template <typename NextWord>
  double finish(uint32_t u, NextWord&& next) const;

 private:
  int32_t ki_[128]; // k_ rounded up: |h| < ki_ iff |h| < k_ (h an integer)
  static constexpr double kR = 3.442619855899;  // where the tail starts (128 layers)
  double k_[128];   // |value| below k_[i]: inside layer i's rectangle
  double w_[128];   // layer width / 2^24
  double f_[128];   // exp(-x_i^2 / 2) at the layer's edge
};

/// Exact samplers on the integers from uniform 32-bit words (Canonne, Kamath, Steinke 2020,
/// Algorithms 1-3), in integer arithmetic (128-bit where products need it): Bernoulli(p) for a
/// rational p, Bernoulli(exp(-gamma)) for a rational gamma >= 0, the discrete Laplace and the
/// discrete Gaussian of integer scale. `next` returns the next uniform word.
template <typename NextWord>
class ExactSampler {
 public:
  using u128 = unsigned __int128;
  explicit ExactSampler(NextWord& next) : next_(next) {}
  /// Uniform in [0, n), n >= 1 (rejection from the next power of two).
  u128 below(u128 n) {
    if (n <= 1) return 0;
    int bits = 0;
    for (u128 m = n - 1; m != 0; m >>= 1) ++bits;
    for (;;) {
      u128 u = 0;
      for (int b = 0; b < bits; b += 32) u = (u << 32) | next_();
      if (bits < 128) u &= (u128{1} << bits) - 1;
      if (u < n) return u;
    }
  }
  /// Bernoulli(num / den), 0 <= num <= den, den >= 1.
  bool bernoulli(u128 num, u128 den) { return below(den) < num; }
  /// Bernoulli(exp(-num / den)), den >= 1.
  bool bernoulli_exp_minus(u128 num, u128 den) {
    while (num > den) {  // exp(-gamma) = exp(-1) ... exp(-1) exp(-(gamma - floor))
      if (!bernoulli_exp_minus_at_most_one(1, 1)) return false;
      num -= den;
    }
    return bernoulli_exp_minus_at_most_one(num, den);
  }
  /// The discrete Laplace of scale t >= 1: P(x) proportional to exp(-|x| / t).
  int64_t discrete_laplace(int64_t t) {
    for (;;) {
      const auto u = static_cast<int64_t>(below(static_cast<u128>(t)));
      if (!bernoulli_exp_minus(static_cast<u128>(u), static_cast<u128>(t))) continue;
      int64_t v = 0;
      while (bernoulli_exp_minus(1, 1)) ++v;
      const int64_t x = u + t * v;
      const bool negative = bernoulli(1, 2);
      if (negative && x == 0) continue;
      return negative ? -x : x;
    }
  }
  /// The discrete Gaussian of scale s >= 1: P(x) proportional to exp(-x^2 / (2 s^2)).
  int64_t discrete_gaussian(int64_t s) {
    const int64_t t = s + 1;  // floor(sigma) + 1
    const u128 s2 = static_cast<u128>(s) * static_cast<u128>(s);
    for (;;) {
      const int64_t y = discrete_laplace(t);
      // Accept with exp(-(|y| - s^2 / t)^2 / (2 s^2)) = exp(-(|y| t - s^2)^2 / (2 s^2 t^2)).
      const u128 yt = static_cast<u128>(y < 0 ? -y : y) * static_cast<u128>(t);
      const u128 diff = yt > s2 ? yt - s2 : s2 - yt;
      if (bernoulli_exp_minus(diff * diff, 2 * s2 * static_cast<u128>(t) * static_cast<u128>(t))) {
        return y;
      }
    }
  }

 private:
  bool bernoulli_exp_minus_at_most_one(u128 num, u128 den) {
    u128 k = 1;
    while (bernoulli(num, den * k)) ++k;  // the first k with A_k = 0 ends it
    return (k & 1) == 1;
  }
  NextWord& next_;
};

/// A uniform in (0, 1] from one word (never 0: the logarithms of the tail need it).
inline double unit_from_word(uint32_t w) {
  return (static_cast<double>(w) + 1.0) * 0x1p-32;
}

template <typename NextWord>
double Ziggurat::draw(NextWord&& next) const {
  const uint32_t u = next();
  return inside(u) ? value(u) : finish(u, next);
}

template <typename NextWord>
double Ziggurat::finish(uint32_t u, NextWord&& next) const {
  for (;;) {
    const int i = static_cast<int>(u & 127u);                      // layer: the low 7 bits
    const int32_t h = static_cast<int32_t>(u) >> 7;                // value: the other 25, signed
    const double x = static_cast<double>(h) * w_[i];
    if ((h < 0 ? -h : h) < ki_[i]) return x;                       // inside the rectangle
    if (i == 0) {  // beyond kR: Marsaglia's exponential rejection for the tail
      for (;;) {
        const double tx = -std::log(unit_from_word(next())) / kR;
        const double ty = -std::log(unit_from_word(next()));
        if (ty + ty >= tx * tx) return h < 0 ? -(kR + tx) : kR + tx;
      }
    }
    // The wedge between the rectangle and the curve: accept under the density.
    const double y = f_[i] + unit_from_word(next()) * (f_[i - 1] - f_[i]);
    if (y < std::exp(-0.5 * x * x)) return x;
    u = next();
  }
}

}  // namespace fedsilo::privacy
