// Radix-2 FFTs for the privacy-loss-distribution accountant's convolutions, planned once per
// length (fedsilo takes on no FFT library for one use).
#pragma once

#include <complex>
#include <cstddef>
#include <span>
#include <vector>

#include "core/status.h"

namespace fedsilo::privacy {

/// The smallest power of two >= n (1 for n = 0).
[[nodiscard]] size_t next_power_of_two(size_t n);

/// The DFT of complex sequences of one length n (a power of two), with its twiddles computed
/// once, each directly from its angle (no recurrence: each is within an ulp, so the error grows
/// as log2(n), not n).
class Fft {
 public:
  /// kInvalidArgument unless n is a power of two.
  static Result<Fft> create(size_t n);
  [[nodiscard]] size_t size() const { return n_; }
  /// In place: a[k] <- sum_j a[j] e^(-2 pi i j k / n). kInvalidArgument unless a.size() == n.
  [[nodiscard]] Status forward(std::span<std::complex<double>> a) const;
  /// In place: a[k] <- (1 / n) sum_j a[j] e^(+2 pi i j k / n).
  [[nodiscard]] Status inverse(std::span<std::complex<double>> a) const;

 private:
  friend class RealFft;
  Fft() = default;
  void transform(double* d, double sign) const;
  size_t n_ = 0;
  // The twiddles of the pass of half-length h, e^(-2 pi i j / (2h)) for j < h, one pass after
  // the other at (re, im) pairs tw_[2 (h + j)]: every pass reads them in order.
  std::vector<double> tw_;
};

/// The DFT of real sequences of one length n (a power of two >= 2) through one complex FFT of
/// length n / 2: the even and odd samples as real and imaginary parts, separated afterwards.
class RealFft {
 public:
  /// kInvalidArgument unless n is a power of two >= 2.
  static Result<RealFft> create(size_t n);
  [[nodiscard]] size_t size() const { return n_; }
  /// spectrum[k] = sum_j x[j] e^(-2 pi i j k / n) for k = 0..n/2 (the others are conjugates).
  /// kInvalidArgument unless x.size() == n and spectrum.size() == n / 2 + 1.
  [[nodiscard]] Status forward(std::span<const double> x,
                               std::span<std::complex<double>> spectrum) const;
  /// x[j] = (1 / n) sum_k X[k] e^(+2 pi i j k / n) from X[0..n/2] of a real sequence (its
  /// conjugate symmetry gives the rest); `spectrum` is overwritten.
  [[nodiscard]] Status inverse(std::span<std::complex<double>> spectrum, std::span<double> x) const;

 private:
  // kInvalidArgument unless x holds n_ values and the spectrum n_ / 2 + 1 frequencies.
  [[nodiscard]] Status check_sizes(size_t values, size_t frequencies) const;
  RealFft() = default;
  size_t n_ = 0;
  Fft half_;
  std::vector<double> roots_;  // e^(-2 pi i k / n) for k = 0..n/2, (re, im) pairs
};

/// In place, a one-off transform of length a.size() (a power of two): Fft::forward or
/// Fft::inverse.
[[nodiscard]] Status fft(std::span<std::complex<double>> a, bool inverse);

}  // namespace fedsilo::privacy
