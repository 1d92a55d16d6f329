// NIID-Bench partition schemes, per-silo test subsets and feature noise (see partition.h).
#include "data/partition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <utility>

namespace fedsilo::data {
namespace {

constexpr const char* kExpectedSchemes =
    "(expected iid, dirichlet:BETA, labels:K, quantity:BETA, noise:SIGMA)";

template <typename T>
bool parse_number(const std::string& s, T* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && !s.empty();
}

// A draw from Dir(beta, ..., beta) over `n` parts: normalised Gamma(beta) draws. Very small
// beta can make every Gamma draw underflow to 0; such draws are repeated.
std::vector<double> dirichlet(Philox& rng, double beta, size_t n) {
  std::vector<double> p(n);
  for (;;) {
    double sum = 0.0;
    for (double& v : p) {
      v = rng.gamma(beta);
      sum += v;
    }
    if (sum > 0.0 && std::isfinite(sum)) {
      for (double& v : p) v /= sum;
      return p;
    }
  }
}

// Splits `idx` at floor(cumsum(p) * size) (numpy's (cumsum * len).astype(int)[:-1]) and appends
// the pieces to the silos' lists.
void split_by_proportions(std::span<const int64_t> idx, const std::vector<double>& p,
                          SiloIndices* out) {
  const auto n = static_cast<int64_t>(idx.size());
  double cum = 0.0;
  int64_t start = 0;
  for (size_t j = 0; j < p.size(); ++j) {
    cum += p[j];
    int64_t stop = n;
    if (j + 1 < p.size()) {
      stop = std::clamp(static_cast<int64_t>(std::floor(cum * static_cast<double>(n))), start, n);
    }
    (*out)[j].insert((*out)[j].end(), idx.begin() + start, idx.begin() + stop);
    start = stop;
  }
}

// numpy.array_split: `parts` pieces, the first n % parts one larger.
std::vector<std::span<const int64_t>> array_split(std::span<const int64_t> v, int parts) {
  std::vector<std::span<const int64_t>> out;
  const auto n = static_cast<int64_t>(v.size());
  const int64_t base = n / parts, extra = n % parts;
  int64_t start = 0;
  for (int i = 0; i < parts; ++i) {
    const int64_t len = base + (i < extra ? 1 : 0);
    out.push_back(v.subspan(static_cast<size_t>(start), static_cast<size_t>(len)));
    start += len;
  }
  return out;
}

std::vector<std::vector<int64_t>> indices_by_class(std::span<const int32_t> y, int num_classes) {
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(num_classes));
  for (size_t i = 0; i < y.size(); ++i) {
    by_class[static_cast<size_t>(y[i])].push_back(static_cast<int64_t>(i));
  }
  return by_class;
}

std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  return v;
}

}  // namespace

// ------------------------------------------------------------------------------ parsing

Result<Scheme> parse_scheme(const std::string& text) {
  Scheme s;
  s.text = text;
  const size_t colon = text.find(':');
  const std::string name = text.substr(0, colon);
  const bool has_param = colon != std::string::npos;
  const std::string param = has_param ? text.substr(colon + 1) : std::string();
  const std::string where = "--scheme '" + text + "'";

  if (name == "iid") {
    if (has_param) return invalid_argument(where + ": iid takes no parameter");
    s.kind = SchemeKind::kIid;
    return s;
  }
  if (name == "dirichlet" || name == "quantity" || name == "noise") {
    const bool is_noise = name == "noise";
    const char* pname = is_noise ? "SIGMA" : "BETA";
    if (!has_param) {
      return invalid_argument(where + ": expected " + name + ":" + pname +
                              (is_noise ? " with SIGMA >= 0 (e.g. noise:0.1)"
                                        : " with BETA > 0 (e.g. " + name + ":0.5)"));
    }
    double v = 0.0;
    if (!parse_number(param, &v) || !std::isfinite(v)) {
      return invalid_argument(where + ": " + pname + " '" + param + "' is not a number");
    }
    if (is_noise) {
      if (v < 0.0) return invalid_argument(where + ": SIGMA must be >= 0");
      s.kind = SchemeKind::kNoise;
      s.sigma = v;
    } else {
      if (v <= 0.0) return invalid_argument(where + ": BETA must be > 0");
      s.kind = name == "dirichlet" ? SchemeKind::kDirichlet : SchemeKind::kQuantity;
      s.beta = v;
    }
    return s;
  }
  if (name == "labels") {
    if (!has_param) return invalid_argument(where + ": expected labels:K with K >= 1");
    int k = 0;
    if (!parse_number(param, &k)) {
      return invalid_argument(where + ": K '" + param + "' is not an integer");
    }
    if (k < 1) return invalid_argument(where + ": K must be >= 1");
    s.kind = SchemeKind::kLabels;
    s.k = k;
    return s;
  }
  return invalid_argument("--scheme: unknown scheme '" + text + "' " + kExpectedSchemes);
}

Status validate_scheme(const Scheme& scheme, int silos, int64_t n, int num_classes) {
  if (silos < 1) {
    return invalid_argument("--silos " + std::to_string(silos) + ": need at least 1 silo");
  }
  if (n < 1) return corrupt_data("the training set has no samples");
  if (silos > n) {
    return invalid_argument("--silos " + std::to_string(silos) + " exceeds the " +
                            std::to_string(n) + " training samples");
  }
  if (scheme.needs_min_size() && silos * kMinSiloSamples > n) {
    return invalid_argument("--silos " + std::to_string(silos) + " with --scheme '" + scheme.text +
                            "' needs at least " + std::to_string(silos * kMinSiloSamples) +
                            " training samples (" + std::to_string(kMinSiloSamples) +
                            " per silo); the training set has " + std::to_string(n));
  }
  if (scheme.kind == SchemeKind::kLabels && scheme.k > num_classes) {
    return invalid_argument("--scheme '" + scheme.text + "': K = " + std::to_string(scheme.k) +
                            " exceeds the " + std::to_string(num_classes) + " classes");
  }
  return {};
}

// ------------------------------------------------------------------------------ schemes

void shuffle(std::span<int64_t> v, Philox& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const auto j = static_cast<size_t>(rng.below(i));
    std::swap(v[i - 1], v[j]);
  }
}

SiloIndices split_iid(int64_t n, int silos, Philox& rng) {
  std::vector<int64_t> perm = iota(n);
  shuffle(perm, rng);
  SiloIndices out;
  for (std::span<const int64_t> part : array_split(perm, silos)) {
    out.emplace_back(part.begin(), part.end());
  }
  return out;
}

std::vector<double> dirichlet_proportions(Philox& rng, double beta, std::span<const int64_t> held,
                                          int64_t n_total) {
  const size_t silos = held.size();
  // A silo is still open while it holds fewer than n_total / silos samples (integer form).
  std::vector<bool> open(silos);
  size_t n_open = 0;
  for (size_t j = 0; j < silos; ++j) {
    open[j] = held[j] * static_cast<int64_t>(silos) < n_total;
    n_open += open[j] ? 1 : 0;
  }
  if (n_open == 0) std::fill(open.begin(), open.end(), true);  // cannot happen with samples left
  constexpr int kRedraws = 100;
  for (int attempt = 0; attempt < kRedraws; ++attempt) {
    std::vector<double> p = dirichlet(rng, beta, silos);
    double sum = 0.0;
    for (size_t j = 0; j < silos; ++j) {
      if (!open[j]) p[j] = 0.0;
      sum += p[j];
    }
    // All mass on closed silos (numpy would divide 0 by 0 here): draw again.
    if (sum > 0.0) {
      for (double& v : p) v /= sum;
      return p;
    }
  }
  std::vector<double> p(silos, 0.0);
  const size_t count = static_cast<size_t>(std::count(open.begin(), open.end(), true));
  for (size_t j = 0; j < silos; ++j) p[j] = open[j] ? 1.0 / static_cast<double>(count) : 0.0;
  return p;
}

Result<SiloIndices> split_dirichlet(std::span<const int32_t> y, int num_classes, int silos,
                                    double beta, Philox& rng, int max_attempts) {
  const auto n = static_cast<int64_t>(y.size());
  const std::vector<std::vector<int64_t>> by_class = indices_by_class(y, num_classes);
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    SiloIndices batch(static_cast<size_t>(silos));
    for (int k = 0; k < num_classes; ++k) {
      std::vector<int64_t> idx = by_class[static_cast<size_t>(k)];
      shuffle(idx, rng);
      std::vector<int64_t> held(static_cast<size_t>(silos));
      for (int j = 0; j < silos; ++j) held[j] = static_cast<int64_t>(batch[j].size());
      split_by_proportions(idx, dirichlet_proportions(rng, beta, held, n), &batch);
    }
    const bool big_enough = std::all_of(batch.begin(), batch.end(), [](const auto& b) {
      return static_cast<int64_t>(b.size()) >= kMinSiloSamples;
    });
    if (big_enough) {
      for (auto& b : batch) shuffle(b, rng);
      return batch;
    }
  }
  return invalid_argument("dirichlet:" + std::to_string(beta) + " gave some silo fewer than " +
                          std::to_string(kMinSiloSamples) + " samples in " +
                          std::to_string(max_attempts) +
                          " attempts; use a larger BETA or fewer silos");
}

std::vector<std::vector<int>> choose_silo_labels(int num_classes, int silos, int k, Philox& rng) {
  std::vector<std::vector<int>> contain(static_cast<size_t>(silos));
  for (int i = 0; i < silos; ++i) {
    std::vector<int>& cur = contain[static_cast<size_t>(i)];
    cur.push_back(i % num_classes);
    while (static_cast<int>(cur.size()) < k) {
      const auto label = static_cast<int>(rng.below(static_cast<uint64_t>(num_classes)));
      if (std::find(cur.begin(), cur.end(), label) == cur.end()) cur.push_back(label);
    }
  }
  return contain;
}

SiloIndices split_labels(std::span<const int32_t> y, int num_classes, int silos, int k,
                         Philox& rng) {
  const std::vector<std::vector<int>> contain = choose_silo_labels(num_classes, silos, k, rng);
  std::vector<int> holders(static_cast<size_t>(num_classes), 0);
  for (const auto& labels : contain) {
    for (int c : labels) ++holders[static_cast<size_t>(c)];
  }
  std::vector<std::vector<int64_t>> by_class = indices_by_class(y, num_classes);
  SiloIndices out(static_cast<size_t>(silos));
  for (int c = 0; c < num_classes; ++c) {
    if (holders[c] == 0) continue;  // nobody holds this label: its samples are dropped
    std::vector<int64_t>& idx = by_class[static_cast<size_t>(c)];
    shuffle(idx, rng);
    const auto parts = array_split(idx, holders[c]);
    size_t next = 0;
    for (int j = 0; j < silos; ++j) {
      const auto& labels = contain[static_cast<size_t>(j)];
      if (std::find(labels.begin(), labels.end(), c) == labels.end()) continue;
      out[j].insert(out[j].end(), parts[next].begin(), parts[next].end());
      ++next;
    }
  }
  return out;
}

Result<SiloIndices> split_quantity(int64_t n, int silos, double beta, Philox& rng,
                                   int max_attempts) {
  std::vector<int64_t> perm = iota(n);
  shuffle(perm, rng);
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    const std::vector<double> p = dirichlet(rng, beta, static_cast<size_t>(silos));
    const double min_p = *std::min_element(p.begin(), p.end());
    if (min_p * static_cast<double>(n) < static_cast<double>(kMinSiloSamples)) continue;
    SiloIndices out(static_cast<size_t>(silos));
    split_by_proportions(perm, p, &out);
    return out;
  }
  return invalid_argument("quantity:" + std::to_string(beta) + " gave some silo fewer than " +
                          std::to_string(kMinSiloSamples) + " samples in " +
                          std::to_string(max_attempts) +
                          " draws; use a larger BETA or fewer silos");
}

Result<SiloIndices> partition_indices(const Scheme& scheme, std::span<const int32_t> y,
                                      int num_classes, int silos, uint64_t seed) {
  const auto n = static_cast<int64_t>(y.size());
  FEDSILO_CHECK(validate_scheme(scheme, silos, n, num_classes));
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] < 0 || y[i] >= num_classes) {
      return corrupt_data("label y[" + std::to_string(i) + "] = " + std::to_string(y[i]) +
                              " is outside [0, " + std::to_string(num_classes) + ")");
    }
  }
  Philox rng(seed, 0, 0, RngPurpose::kPartition);
  SiloIndices parts;
  switch (scheme.kind) {
    case SchemeKind::kIid:
    case SchemeKind::kNoise:
      parts = split_iid(n, silos, rng);
      break;
    case SchemeKind::kDirichlet: {
      FEDSILO_ASSIGN_OR_RETURN(parts, split_dirichlet(y, num_classes, silos, scheme.beta, rng));
      break;
    }
    case SchemeKind::kQuantity: {
      FEDSILO_ASSIGN_OR_RETURN(parts, split_quantity(n, silos, scheme.beta, rng));
      break;
    }
    case SchemeKind::kLabels:
      parts = split_labels(y, num_classes, silos, scheme.k, rng);
      break;
  }
  for (int s = 0; s < silos; ++s) {
    if (parts[s].empty()) {
      return invalid_argument("--scheme '" + scheme.text + "' left silo " + std::to_string(s) +
                              " with no samples (too few samples of its labels for " +
                              std::to_string(silos) + " silos); use fewer silos or more data");
    }
  }
  return parts;
}

// ------------------------------------------------------------------------------ noise

double silo_noise_std(const Scheme& scheme, int silo, int silos) {
  if (scheme.kind != SchemeKind::kNoise || silos <= 1) return 0.0;
  return scheme.sigma * static_cast<double>(silo) / static_cast<double>(silos - 1);
}

void add_gaussian_noise(std::span<float> x, double std, Philox& rng) {
  if (std == 0.0) return;
  for (float& v : x) v += static_cast<float>(std * rng.normal());
}

// ------------------------------------------------------------------------------ test sets

int64_t test_share(int64_t n_test_total, int64_t n_train_silo, int64_t n_train_total) {
  if (n_train_total <= 0) return 0;
  // round(a * b / c) with halves up, in integers: (2ab + c) / 2c.
  return (2 * n_test_total * n_train_silo + n_train_total) / (2 * n_train_total);
}

std::vector<int64_t> test_class_targets(std::span<const int64_t> train_counts, int64_t n_test,
                                        std::span<const int64_t> available) {
  const size_t classes = train_counts.size();
  std::vector<int64_t> target(classes, 0);
  const int64_t total = std::accumulate(train_counts.begin(), train_counts.end(), int64_t{0});
  if (total <= 0 || n_test <= 0) return target;
  // Quota of class c = n_test * train_c / total; floors first, then one more for the largest
  // remainders (ties to the lower class) until the quotas add up to n_test.
  std::vector<int64_t> rem(classes);
  int64_t assigned = 0;
  for (size_t c = 0; c < classes; ++c) {
    target[c] = n_test * train_counts[c] / total;
    rem[c] = n_test * train_counts[c] % total;
    assigned += target[c];
  }
  std::vector<size_t> order(classes);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  for (size_t i = 0; assigned < n_test && i < classes; ++i, ++assigned) ++target[order[i]];
  for (size_t c = 0; c < classes; ++c) target[c] = std::min(target[c], available[c]);
  return target;
}

std::vector<int64_t> draw_silo_test(std::span<const int32_t> test_y, int num_classes,
                                    std::span<const int64_t> train_counts, int64_t n_train_total,
                                    uint64_t seed, int silo) {
  const int64_t n_train_silo =
      std::accumulate(train_counts.begin(), train_counts.end(), int64_t{0});
  // A test file needs a sample to be readable: at least one for a silo that trains.
  int64_t n_test = test_share(static_cast<int64_t>(test_y.size()), n_train_silo, n_train_total);
  if (n_train_silo > 0 && !test_y.empty()) n_test = std::max<int64_t>(n_test, 1);
  std::vector<std::vector<int64_t>> by_class = indices_by_class(test_y, num_classes);
  std::vector<int64_t> available(static_cast<size_t>(num_classes));
  for (int c = 0; c < num_classes; ++c) available[c] = static_cast<int64_t>(by_class[c].size());
  const std::vector<int64_t> target = test_class_targets(train_counts, n_test, available);

  Philox rng(seed, 0, static_cast<uint32_t>(silo), RngPurpose::kTestSplit);
  std::vector<int64_t> out;
  for (int c = 0; c < num_classes; ++c) {
    // Partial Fisher-Yates: the first target[c] entries become a uniform sample.
    std::vector<int64_t>& idx = by_class[static_cast<size_t>(c)];
    for (int64_t i = 0; i < target[c]; ++i) {
      const auto j = static_cast<size_t>(i) + rng.below(idx.size() - static_cast<size_t>(i));
      std::swap(idx[static_cast<size_t>(i)], idx[j]);
      out.push_back(idx[static_cast<size_t>(i)]);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ------------------------------------------------------------------------------ misc

std::vector<int64_t> random_subset(int64_t n, int64_t k, Philox& rng) {
  std::vector<int64_t> v = iota(n);
  if (k <= 0 || k >= n) return v;
  for (int64_t i = 0; i < k; ++i) {
    const auto j = static_cast<size_t>(i) + rng.below(static_cast<uint64_t>(n - i));
    std::swap(v[static_cast<size_t>(i)], v[j]);
  }
  v.resize(static_cast<size_t>(k));
  std::sort(v.begin(), v.end());
  return v;
}

std::string silo_dir_name(int silo, int silos) {
  const int last = std::max(silos - 1, 0);
  const size_t width = std::max<size_t>(2, std::to_string(last).size());
  std::string digits = std::to_string(silo);
  if (digits.size() < width) digits.insert(0, width - digits.size(), '0');
  return "silo-" + digits;
}

}  // namespace fedsilo::data
