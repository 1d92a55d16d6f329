// Iterative radix-2 Cooley-Tukey FFT, and the real-input FFT built on it.
#include "privacy/fft.h"

#include <cmath>
#include <numbers>
#include <string>
#include <utility>

namespace fedsilo::privacy {

namespace {

bool is_power_of_two(size_t n) { return n != 0 && (n & (n - 1)) == 0; }

// e^(-2 pi i k / n) for k = 0..n/2, as (re, im) pairs.
std::vector<double> roots_of_unity(size_t n) {
  std::vector<double> r(2 * (n / 2 + 1));
  for (size_t k = 0; k <= n / 2; ++k) {
    const double angle = 2.0 * std::numbers::pi * static_cast<double>(k) / static_cast<double>(n);
    r[2 * k] = std::cos(angle);
    r[2 * k + 1] = -std::sin(angle);
  }
  return r;
}

// The per-pass twiddles of a length-m FFT taken from the roots of unity of a length n = m x
// stride: e^(-2 pi i j / (2h)) is root j (n / 2h).
std::vector<double> pass_twiddles(size_t m, const std::vector<double>& roots, size_t stride) {
  std::vector<double> tw(2 * m);
  for (size_t h = 1; h < m; h <<= 1) {
    const size_t step = (m / (2 * h)) * stride;
    for (size_t j = 0; j < h; ++j) {
      tw[2 * (h + j)] = roots[2 * j * step];
      tw[2 * (h + j) + 1] = roots[2 * j * step + 1];
    }
  }
  return tw;
}

}  // namespace

size_t next_power_of_two(size_t n) {
  size_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

Result<Fft> Fft::create(size_t n) {
  if (!is_power_of_two(n)) {
    return invalid_argument("fft: size must be a power of two, got " + std::to_string(n));
  }
  Fft f;
  f.n_ = n;
  f.tw_ = pass_twiddles(n, roots_of_unity(n), 1);
  return f;
}

// sign = -1 forward, +1 inverse (the twiddles' imaginary parts flip).
void Fft::transform(double* d, double sign) const {
  const size_t n = n_;
  // Bit-reversal permutation: afterwards each pass works on contiguous halves.
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      std::swap(d[2 * i], d[2 * j]);
      std::swap(d[2 * i + 1], d[2 * j + 1]);
    }
  }
  // The butterflies multiply by hand: std::complex's operator* checks for NaN and infinity
  // (C99 Annex G) through a library call, several times slower than these four products.
  // tw_ holds the forward twiddles; the inverse's are their conjugates.
  const double conj = sign < 0.0 ? 1.0 : -1.0;
  for (size_t h = 1; h < n; h <<= 1) {
    const double* w = tw_.data() + 2 * h;
    for (size_t start = 0; start < n; start += 2 * h) {
      double* u = d + 2 * start;
      double* v = d + 2 * (start + h);
      for (size_t j = 0; j < h; ++j) {
        const double c = w[2 * j], s = conj * w[2 * j + 1];
        const double tr = v[2 * j] * c - v[2 * j + 1] * s, ti = v[2 * j] * s + v[2 * j + 1] * c;
        v[2 * j] = u[2 * j] - tr;
        v[2 * j + 1] = u[2 * j + 1] - ti;
        u[2 * j] += tr;
        u[2 * j + 1] += ti;
      }
    }
  }
}

Status Fft::forward(std::span<std::complex<double>> a) const {
  if (a.size() != n_) {
    return invalid_argument("fft: planned for " + std::to_string(n_) + " values, got " +
                            std::to_string(a.size()));
  }
  transform(reinterpret_cast<double*>(a.data()), -1.0);  // std::complex<double> is double[2]
  return {};
}

Status Fft::inverse(std::span<std::complex<double>> a) const {
  if (a.size() != n_) {
    return invalid_argument("fft: planned for " + std::to_string(n_) + " values, got " +
                            std::to_string(a.size()));
  }
  double* d = reinterpret_cast<double*>(a.data());
  transform(d, 1.0);
  const double scale = 1.0 / static_cast<double>(n_);
  for (size_t i = 0; i < 2 * n_; ++i) d[i] *= scale;
  return {};
}

Result<RealFft> RealFft::create(size_t n) {
  if (n < 2 || !is_power_of_two(n)) {
    return invalid_argument("real fft: size must be a power of two >= 2, got " + std::to_string(n));
  }
  RealFft f;
  f.n_ = n;
  f.roots_ = roots_of_unity(n);
  // The half-length FFT's roots e^(-2 pi i k / (n/2)) are every other root of length n.
  f.half_.n_ = n / 2;
  f.half_.tw_ = pass_twiddles(n / 2, f.roots_, 2);
  return f;
}

Status RealFft::check_sizes(size_t values, size_t frequencies) const {
  if (values == n_ && frequencies == n_ / 2 + 1) return {};
  return invalid_argument("real fft: planned for " + std::to_string(n_) + " values and " +
                          std::to_string(n_ / 2 + 1) + " frequencies, got " +
                          std::to_string(values) + " and " + std::to_string(frequencies));
}

// With z[j] = x[2j] + i x[2j+1] and Z its DFT of length m = n/2, the DFTs of the even and odd
// samples are E[k] = (Z[k] + conj Z[m-k]) / 2 and O[k] = (Z[k] - conj Z[m-k]) / 2i, and
// X[k] = E[k] + w^k O[k] with w = e^(-2 pi i / n), for k = 0..m (Z[m] = Z[0]).
Status RealFft::forward(std::span<const double> x, std::span<std::complex<double>> spectrum) const {
  const size_t m = n_ / 2;
  FEDSILO_CHECK(check_sizes(x.size(), spectrum.size()));
  double* z = reinterpret_cast<double*>(spectrum.data());
  for (size_t i = 0; i < n_; ++i) z[i] = x[i];  // z[j] = x[2j] + i x[2j+1]
  half_.transform(z, -1.0);
  z[2 * m] = z[0];
  z[2 * m + 1] = z[1];
  // Pairs (k, m - k) are read before either is written.
  for (size_t k = 0; k <= m / 2; ++k) {
    const size_t l = m - k;
    const double ar = z[2 * k], ai = z[2 * k + 1], br = z[2 * l], bi = z[2 * l + 1];
    // k: E = (a + conj b) / 2, O = (a - conj b) / 2i; l: E' = (b + conj a) / 2 = conj E,
    // O' = (b - conj a) / 2i = conj O.
    const double er = 0.5 * (ar + br), ei = 0.5 * (ai - bi);
    const double or_ = 0.5 * (ai + bi), oi = -0.5 * (ar - br);
    const double wr = roots_[2 * k], wi = roots_[2 * k + 1];
    const double vr = wr * or_ - wi * oi, vi = wr * oi + wi * or_;  // w^k O
    // w^l = w^(m-k) = -conj(w^k) (w^m = -1), so w^l conj(O) = -conj(w^k O).
    z[2 * k] = er + vr;
    z[2 * k + 1] = ei + vi;
    z[2 * l] = er - vr;
    z[2 * l + 1] = -ei + vi;
  }
  return {};
}

// The inverse of forward: E[k] = (X[k] + conj X[m-k]) / 2, O[k] = (X[k] - conj X[m-k]) w^-k / 2,
// Z[k] = E[k] + i O[k], z = IDFT_m(Z), x[2j] + i x[2j+1] = z[j].
Status RealFft::inverse(std::span<std::complex<double>> spectrum, std::span<double> x) const {
  const size_t m = n_ / 2;
  FEDSILO_CHECK(check_sizes(x.size(), spectrum.size()));
  double* z = reinterpret_cast<double*>(spectrum.data());
  for (size_t k = 0; k <= m / 2; ++k) {
    const size_t l = m - k;
    const double ar = z[2 * k], ai = z[2 * k + 1], br = z[2 * l], bi = z[2 * l + 1];
    const double er = 0.5 * (ar + br), ei = 0.5 * (ai - bi);
    const double dr = 0.5 * (ar - br), di = 0.5 * (ai + bi);  // (X[k] - conj X[l]) / 2
    const double wr = roots_[2 * k], wi = -roots_[2 * k + 1];  // w^-k = conj(w^k)
    const double or_ = dr * wr - di * wi, oi = dr * wi + di * wr;
    // Z[k] = E + i O, and Z[l] = conj E + i conj O (E and O, the DFTs of real sequences,
    // have E[l] = conj E[k] and O[l] = conj O[k]).
    z[2 * k] = er - oi;
    z[2 * k + 1] = ei + or_;
    z[2 * l] = er + oi;
    z[2 * l + 1] = -ei + or_;
  }
  half_.transform(z, 1.0);
  const double scale = 1.0 / static_cast<double>(m);
  for (size_t i = 0; i < n_; ++i) x[i] = z[i] * scale;
  return {};
}

Status fft(std::span<std::complex<double>> a, bool inverse) {
  FEDSILO_ASSIGN_OR_RETURN(const Fft plan, Fft::create(a.size()));
  return inverse ? plan.inverse(a) : plan.forward(a);
}

}  // namespace fedsilo::privacy
