// DP-SGD's secret randomness: the silo key, its per-round AES-CTR streams, Poisson sampling and
// the Ziggurat Gaussian sampler (dp_random.h).
#include "privacy/dp_random.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/fs.h"
#include "kernels/cpu/cpu_level.h"

#if FEDSILO_X86
#include <immintrin.h>
#endif

namespace fedsilo::privacy {

namespace {

// Words per step and stream: a step's counter range starts at step << 36 blocks (2^38 words),
// far beyond what one step reads (the noise of 2^32 parameters needs ~2^32 words).
constexpr int kStepShift = 36;
constexpr size_t kBufferWords = 1024;  // read in 4 KiB pieces

// BLAKE2b-128 keyed by the silo's secret: the key of one stream of one round.
std::array<uint8_t, 16> stream_key(const secagg::Secret& key, const char tag[8], uint32_t round) {
  uint8_t in[8 + 4];
  std::memcpy(in, tag, 8);
  for (int b = 0; b < 4; ++b) in[8 + b] = static_cast<uint8_t>(round >> (8 * b));
  std::array<uint8_t, 16> out{};
  crypto_generichash(out.data(), out.size(), in, sizeof in, key.data(), secagg::kKeyBytes);
  return out;
}

// Reads keystream words of one step in order, buffer by buffer.
class WordReader {
 public:
  WordReader(secagg::Keystream& ks, std::vector<uint32_t>& buf, uint32_t step)
      : ks_(ks), buf_(buf), block_(static_cast<uint64_t>(step) << kStepShift) {
    buf_.resize(kBufferWords);
  }
  uint32_t next() {
    if (at_ == buf_.size()) refill();
    return buf_[at_++];
  }
  const Status& status() const { return status_; }

 private:
  void refill() {
    const Status st = ks_.fill(block_, buf_);
    if (!st.ok() && status_.ok()) status_ = st;
    block_ += kBufferWords / 4;
    at_ = 0;
  }
  secagg::Keystream& ks_;
  std::vector<uint32_t>& buf_;
  uint64_t block_;
  size_t at_ = kBufferWords;
  Status status_;
};

// Pass 1 of a noise segment: out[j] = fma(h_j, sw[i_j], out[j] scale) where word j falls inside its
// layer's rectangle (one rounding, the same on every path), and the positions of the others
// appended to `outside` (~1.2%). The AVX-512 path takes 16 words a step (table gathers from
// L1); the portable loop is the reference.
void add_rectangles_portable(const uint32_t* f, size_t from, size_t n, const int32_t* ki,
                             const float* sw, float scale, float* o, std::vector<uint32_t>& outside) {
  for (size_t j = from; j < n; ++j) {
    const uint32_t u = f[j];
    const int32_t h = static_cast<int32_t>(u) >> 7;
    const uint32_t i = u & 127u;
    const float v = o[j] * scale;
    if ((h < 0 ? -h : h) < ki[i]) {
      o[j] = std::fma(static_cast<float>(h), sw[i], v);
    } else {
      o[j] = v;
      outside.push_back(static_cast<uint32_t>(j));
    }
  }
}

#if FEDSILO_X86
#pragma GCC push_options
#pragma GCC target("avx512f")
// GCC 12 reports the intrinsics' own _mm512_undefined_* operands as maybe uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void add_rectangles_avx512(const uint32_t* f, size_t n, const int32_t* ki, const float* sw,
                           float scale, float* o, std::vector<uint32_t>& outside) {
  const __m512i mask7 = _mm512_set1_epi32(127);
  const __m512 scale16 = _mm512_set1_ps(scale);
  size_t j = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i u = _mm512_loadu_si512(f + j);
    const __m512i h = _mm512_srai_epi32(u, 7);
    const __m512i i = _mm512_and_si512(u, mask7);
    const __mmask16 in = _mm512_cmplt_epi32_mask(_mm512_abs_epi32(h), _mm512_i32gather_epi32(i, ki, 4));
    const __m512 x = _mm512_cvtepi32_ps(h);
    const __m512 s = _mm512_i32gather_ps(i, sw, 4);
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(o + j), scale16);
    _mm512_storeu_ps(o + j, _mm512_mask3_fmadd_ps(x, s, v, in));  // in ? x s + v : v
    for (unsigned out_bits = static_cast<uint16_t>(~in); out_bits != 0; out_bits &= out_bits - 1) {
      outside.push_back(static_cast<uint32_t>(j + static_cast<size_t>(__builtin_ctz(out_bits))));
    }
  }
  add_rectangles_portable(f, j, n, ki, sw, scale, o, outside);
}
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

void add_rectangles(const uint32_t* f, size_t n, const int32_t* ki, const float* sw, float scale,
                    float* o, std::vector<uint32_t>& outside) {
#if FEDSILO_X86
  if (kernels::cpu_level() == kernels::CpuLevel::kAvx512) {
    add_rectangles_avx512(f, n, ki, sw, scale, o, outside);
    return;
  }
#endif
  add_rectangles_portable(f, 0, n, ki, sw, scale, o, outside);
}

const Ziggurat& ziggurat() {
  static const Ziggurat z;  // immutable tables, built once (thread-safe initialisation)
  return z;
}

}  // namespace

Result<secagg::Secret> load_or_create_key(const std::string& private_dir, bool resume) {
  const std::string path = private_dir + "/" + kDpKeyFile;
  FEDSILO_ASSIGN_OR_RETURN(secagg::Secret key, secagg::Secret::allocate());
  if (resume) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return Status(StatusCode::kIoError,
                    "privacy: cannot read the silo's DP key " + path + ": " + std::strerror(errno) +
                        " (a resumed private run needs the key its noise came from)");
    }
    uint8_t extra = 0;
    const ssize_t got = ::read(fd, key.data(), secagg::kKeyBytes);
    const ssize_t more = ::read(fd, &extra, 1);
    ::close(fd);
    if (got != static_cast<ssize_t>(secagg::kKeyBytes) || more != 0) {
      return invalid_argument("privacy: the DP key " + path + " is not " +
                              std::to_string(secagg::kKeyBytes) + " bytes");
    }
    return key;
  }
  if (sodium_init() < 0) return internal_error("libsodium: sodium_init failed");
  randombytes_buf(key.data(), secagg::kKeyBytes);
  const std::string tmp = fs::temp_name(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status(StatusCode::kIoError,
                  "privacy: cannot write the DP key " + tmp + ": " + std::strerror(errno));
  }
  const ssize_t put = ::write(fd, key.data(), secagg::kKeyBytes);
  ::close(fd);
  if (put != static_cast<ssize_t>(secagg::kKeyBytes)) {
    ::unlink(tmp.c_str());
    return Status(StatusCode::kIoError, "privacy: cannot write the DP key " + tmp);
  }
  FEDSILO_CHECK(fs::commit_file(tmp, path));
  return key;
}

Result<secagg::Secret> insecure_test_key(uint64_t seed, uint32_t silo) {
  FEDSILO_ASSIGN_OR_RETURN(secagg::Secret key, secagg::Secret::allocate());
  uint8_t in[8 + 8 + 4] = {'f', 's', 'd', 'p', 't', 's', 't', '1'};
  for (int b = 0; b < 8; ++b) in[8 + b] = static_cast<uint8_t>(seed >> (8 * b));
  for (int b = 0; b < 4; ++b) in[16 + b] = static_cast<uint8_t>(silo >> (8 * b));
  crypto_generichash(key.data(), secagg::kKeyBytes, in, sizeof in, nullptr, 0);
  return key;
}

Result<RoundRandom> RoundRandom::create(const secagg::Secret& key, uint32_t round) {
  const auto sk = stream_key(key, "fsdpsmp1", round);
  const auto nk = stream_key(key, "fsdpnoi1", round);
  FEDSILO_ASSIGN_OR_RETURN(secagg::Keystream sampling, secagg::Keystream::create(sk));
  std::vector<secagg::Keystream> noise;
  FEDSILO_ASSIGN_OR_RETURN(secagg::Keystream first, secagg::Keystream::create(nk));
  noise.push_back(std::move(first));
  return RoundRandom(std::move(sampling), std::move(noise), nk);
}

RoundRandom::~RoundRandom() {
  sodium_memzero(noise_key_.data(), noise_key_.size());
}

Status RoundRandom::poisson_sample(uint32_t step, int64_t n, double q, std::vector<int64_t>& out) {
  out.clear();
  if (!(q >= 0.0 && q <= 1.0)) return invalid_argument("privacy: sample rate outside [0, 1]");
  WordReader r(sampling_, words_, step);
  // Include i when a uniform 64-bit word is below q 2^64 (q = 1: always).
  const bool all = q >= 1.0;
  // q < 1 in double is at most 1 - 2^-53: q 2^64 fits in 64 bits.
  const uint64_t threshold = all ? 0 : static_cast<uint64_t>(std::ldexp(q, 64));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t u = (static_cast<uint64_t>(r.next()) << 32) | r.next();
    if (all || u < threshold) out.push_back(i);
  }
  return r.status();
}

// Segment g of step s reads its rectangle words from block (s << 36) + (g << 20) on and the
// words of its rejections (~1.2% of values, a few words each) from 2^19 blocks further: 2^21
// words that 2^14 values cannot exhaust (an error says so if they ever did).
Status RoundRandom::noise_segment(secagg::Keystream& ks, std::vector<uint32_t>& words,
                                  std::vector<uint32_t>& outside, uint32_t step, size_t segment, double sigma, float scale,
                                  std::span<float> out) const {
  const Ziggurat& z = ziggurat();
  const uint64_t base = (static_cast<uint64_t>(step) << kStepShift) + (uint64_t{segment} << 20);
  words.resize(kNoiseSegment + kBufferWords);
  const std::span<uint32_t> fast(words.data(), (out.size() + 3) / 4 * 4);
  FEDSILO_CHECK(ks.fill(base, fast));
  // The rejections' words, read on demand.
  const std::span<uint32_t> slow(words.data() + kNoiseSegment, kBufferWords);
  uint64_t slow_block = base + (uint64_t{1} << 19);
  size_t at = slow.size();
  Status st;
  auto next = [&]() -> uint32_t {
    if (at == slow.size()) {
      if (slow_block >= base + (uint64_t{1} << 20)) {
        if (st.ok()) st = internal_error("privacy: a noise segment ran out of keystream");
        return 0;
      }
      const Status f = ks.fill(slow_block, slow);
      if (!f.ok() && st.ok()) st = f;
      slow_block += slow.size() / 4;
      at = 0;
    }
    return slow[at++];
  };
  // Pass 1, branch-free (it vectorises: table gathers from L1): every word inside its layer's
  // rectangle (~98.8%) adds h * (sigma w_i), the scale rounded to float once per layer (a
  // relative error of at most 2^-24 in a layer's width). Pass 2 finishes the others.
  float sw[128];
  for (int i = 0; i < 128; ++i) sw[i] = static_cast<float>(sigma * scale * z.width(i));
  const size_t n = out.size();
  float* o = out.data();
  const uint32_t* f = fast.data();
  outside.clear();
  add_rectangles(f, n, z.inside_bounds(), sw, scale, o, outside);
  // Pass 2: the words outside their rectangle, in order.
  for (const uint32_t j : outside) {
    o[j] = static_cast<float>(static_cast<double>(o[j]) + sigma * scale * z.finish(f[j], next));
  }
  return st;
}

template <typename Fn>
Status RoundRandom::for_segments(size_t n, kernels::ThreadTeam* team, const Fn& fn) {
  const size_t segments = (n + kNoiseSegment - 1) / kNoiseSegment;
  const int threads = team != nullptr ? std::min<int>(team->size(), static_cast<int>(segments)) : 1;
  while (noise_.size() < static_cast<size_t>(std::max(threads, 1))) {
    FEDSILO_ASSIGN_OR_RETURN(secagg::Keystream ks, secagg::Keystream::create(noise_key_));
    noise_.push_back(std::move(ks));
  }
  noise_words_.resize(noise_.size());
  noise_outside_.resize(noise_.size());
  std::vector<Status> status(static_cast<size_t>(std::max(threads, 1)));
  auto work = [&](int t) {
    const auto ts = static_cast<size_t>(t);
    for (size_t g = ts; g < segments; g += static_cast<size_t>(threads)) {
      const size_t first = g * kNoiseSegment;
      const Status st = fn(noise_[ts], noise_words_[ts], noise_outside_[ts], g, first,
                           std::min(kNoiseSegment, n - first));
      if (!st.ok() && status[ts].ok()) status[ts] = st;
    }
  };
  if (threads <= 1) {
    work(0);
  } else {
    team->run([&](int t) {
      if (t < threads) work(t);
    });
  }
  for (const Status& st : status) FEDSILO_CHECK(st);
  return {};
}

Status RoundRandom::add_gaussian(uint32_t step, double sigma, std::span<float> out,
                                 kernels::ThreadTeam* team, float scale) {
  return for_segments(out.size(), team,
                      [&](secagg::Keystream& ks, std::vector<uint32_t>& words,
                          std::vector<uint32_t>& outside, size_t g, size_t first, size_t len) {
                        return noise_segment(ks, words, outside, step, g, sigma, scale,
                                             out.subspan(first, len));
                      });
}

RoundRandom::DiscreteGrid RoundRandom::discrete_grid(double noise_multiplier, double clip, size_t n) {
  DiscreteGrid grid;
  // The noise's standard deviation is 2^16 to 2^17 grid steps: fine enough that rounding to
  // the grid costs at most sqrt(n) steps of sensitivity (0.7% of the noise for sigma 1 and
  // n = 2e5), coarse enough that every product below fits 128 bits.
  grid.lambda = std::exp2(std::floor(std::log2(noise_multiplier * clip * 0x1p-16)));
  grid.scale = static_cast<int64_t>(
      std::ceil(noise_multiplier * (clip / grid.lambda + std::sqrt(static_cast<double>(n)))));
  return grid;
}

Status RoundRandom::add_discrete_gaussian(uint32_t step, double noise_multiplier, double clip,
                                          std::span<float> out, kernels::ThreadTeam* team,
                                          float scale) {
  if (!(noise_multiplier > 0.0) || !(clip > 0.0)) {
    return invalid_argument("privacy: the discrete sampler needs a noise multiplier and clip > 0");
  }
  const DiscreteGrid grid = discrete_grid(noise_multiplier, clip, out.size());
  return for_segments(
      out.size(), team,
      [&](secagg::Keystream& ks, std::vector<uint32_t>& words, std::vector<uint32_t>&, size_t g,
          size_t first, size_t len) -> Status {
        // The segment's own counter range (add_gaussian's layout), read in order.
        const uint64_t base = (static_cast<uint64_t>(step) << kStepShift) + (uint64_t{g} << 20);
        words.resize(kBufferWords);
        uint64_t block = base;
        size_t at = words.size();
        Status st;
        auto next = [&]() -> uint32_t {
          if (at == words.size()) {
            if (block >= base + (uint64_t{1} << 20)) {
              if (st.ok()) st = internal_error("privacy: a noise segment ran out of keystream");
              return 0;
            }
            const Status f = ks.fill(block, words);
            if (!f.ok() && st.ok()) st = f;
            block += words.size() / 4;
            at = 0;
          }
          return words[at++];
        };
        ExactSampler<decltype(next)> exact(next);
        for (size_t j = first; j < first + len; ++j) {
          // round(x / lambda): lambda is a power of two, so the division is exact.
          const auto k = static_cast<int64_t>(std::nearbyint(static_cast<double>(out[j]) / grid.lambda));
          const int64_t z = exact.discrete_gaussian(grid.scale);
          // Post-processing of the integer k + z: to float on the grid, then the scale.
          out[j] = static_cast<float>(static_cast<double>(k + z) * grid.lambda) * scale;
          if (!st.ok()) break;
        }
        return st;
      });
}

Ziggurat::Ziggurat() {
  // Marsaglia and Tsang's 128-layer tables: layer 0 is the base strip with the tail, every
  // layer has area v; values are 25-bit signed integers, so |h| < 2^24.
  const double m = 0x1p24;
  const double v = 9.91256303526217e-3;
  double d = kR, t = kR;
  const double q = v / std::exp(-0.5 * d * d);
  k_[0] = (d / q) * m;
  k_[1] = 0.0;
  w_[0] = q / m;
  w_[127] = d / m;
  f_[0] = 1.0;
  f_[127] = std::exp(-0.5 * d * d);
  for (int i = 126; i >= 1; --i) {
    d = std::sqrt(-2.0 * std::log(v / d + std::exp(-0.5 * d * d)));
    k_[i + 1] = (d / t) * m;
    t = d;
    f_[i] = std::exp(-0.5 * d * d);
    w_[i] = d / m;
  }
  for (int i = 0; i < 128; ++i) ki_[i] = static_cast<int32_t>(std::ceil(k_[i]));
}

}  // namespace fedsilo::privacy
