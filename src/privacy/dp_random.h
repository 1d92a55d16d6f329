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

 private:
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
