// Splitting a labelled training set across silos with the NIID-Bench schemes (Li et al.,
// "Federated Learning on Non-IID Data Silos: An Experimental Study", ICDE 2022), drawing the
// per-silo test subsets, and the feature-noise scheme. Pure functions over labels and indices:
// no files, so tests can check every rule directly.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/philox.h"
#include "core/status.h"

namespace fedsilo::data {

/// The partition schemes of NIID-Bench.
enum class SchemeKind {
  kIid,        // "iid": random permutation split into near-equal parts
  kDirichlet,  // "dirichlet:BETA": label distribution skew, class proportions ~ Dir(BETA)
  kLabels,     // "labels:K": #C=K, each silo holds K distinct labels
  kQuantity,   // "quantity:BETA": quantity skew, silo sizes ~ Dir(BETA)
  kNoise,      // "noise:SIGMA": IID split, silo i's features get N(0, (SIGMA*i/(silos-1))^2)
};

/// A parsed --scheme value.
struct Scheme {
  SchemeKind kind = SchemeKind::kIid;
  double beta = 0.0;   // kDirichlet, kQuantity
  int k = 0;           // kLabels
  double sigma = 0.0;  // kNoise
  std::string text;    // as the user wrote it, for messages and partition.json

  /// Whether the scheme guarantees kMinSiloSamples per silo (and so needs 10 * silos samples).
  [[nodiscard]] bool needs_min_size() const {
    return kind == SchemeKind::kDirichlet || kind == SchemeKind::kQuantity;
  }
};

/// The least number of training samples that dirichlet and quantity give every silo.
inline constexpr int64_t kMinSiloSamples = 10;

/// Sample indices per silo: result[s] lists the training samples of silo s.
using SiloIndices = std::vector<std::vector<int64_t>>;

/// Parses "iid", "dirichlet:BETA", "labels:K", "quantity:BETA", "noise:SIGMA". Errors
/// (kInvalidArgument) start with "--scheme" and quote the text.
[[nodiscard]] Result<Scheme> parse_scheme(const std::string& text);

/// Checks a scheme against the data: silos >= 1; silos <= n (every silo gets a sample);
/// silos <= n / 10 for schemes that need 10 samples per silo; K <= num_classes.
[[nodiscard]] Status validate_scheme(const Scheme& scheme, int silos, int64_t n, int num_classes);

/// Splits labels `y` (values in [0, num_classes)) among `silos` with `scheme`, using the stream
/// Philox(seed, 0, 0, kPartition). Validates first; fails if a silo would be left empty.
[[nodiscard]] Result<SiloIndices> partition_indices(const Scheme& scheme,
                                                    std::span<const int32_t> y, int num_classes,
                                                    int silos, uint64_t seed);

/// iid: a random permutation of 0..n-1 split like numpy.array_split (sizes differ by <= 1,
/// the first n % silos parts one larger).
[[nodiscard]] SiloIndices split_iid(int64_t n, int silos, Philox& rng);

/// dirichlet:BETA (NIID-Bench "noniid-labeldir"): repeat { for each class: shuffle its indices,
/// draw proportions with dirichlet_proportions, split at floor(cumsum * count) } until every
/// silo holds >= kMinSiloSamples; then each silo's list is shuffled. Fails after
/// `max_attempts` rounds without success.
[[nodiscard]] Result<SiloIndices> split_dirichlet(std::span<const int32_t> y, int num_classes,
                                                  int silos, double beta, Philox& rng,
                                                  int max_attempts = 1000);

/// One class's share per silo for dirichlet: p ~ Dir(beta) over silos, with p_j = 0 for silos
/// already holding >= n_total / silos samples (`held`), renormalised to sum to 1.
[[nodiscard]] std::vector<double> dirichlet_proportions(Philox& rng, double beta,
                                                        std::span<const int64_t> held,
                                                        int64_t n_total);

/// The labels each silo holds under labels:K: silo i holds i % num_classes plus k-1 other
/// distinct labels drawn uniformly (rejection of repeats, as NIID-Bench).
[[nodiscard]] std::vector<std::vector<int>> choose_silo_labels(int num_classes, int silos, int k,
                                                               Philox& rng);

/// labels:K (NIID-Bench "noniid-#label"): each label's samples are shuffled and split like
/// numpy.array_split among the silos holding it, in silo order; labels nobody holds are dropped.
[[nodiscard]] SiloIndices split_labels(std::span<const int32_t> y, int num_classes, int silos,
                                       int k, Philox& rng);

/// quantity:BETA (NIID-Bench "iid-diff-quantity"): proportions ~ Dir(beta) redrawn until
/// min(p * n) >= kMinSiloSamples, then a random permutation split at floor(cumsum(p) * n).
[[nodiscard]] Result<SiloIndices> split_quantity(int64_t n, int silos, double beta, Philox& rng,
                                                 int max_attempts = 100000);

/// The feature-noise std of silo `silo` under noise:SIGMA: SIGMA * silo / (silos - 1)
/// (0 for a single silo, and for every other scheme).
[[nodiscard]] double silo_noise_std(const Scheme& scheme, int silo, int silos);

/// Adds N(0, std^2) to every value of x from `rng` (nothing when std == 0). No clipping.
void add_gaussian_noise(std::span<float> x, double std, Philox& rng);

/// A silo's share of the test split: round(n_test_total * n_train_silo / n_train_total),
/// halves rounded up.
[[nodiscard]] int64_t test_share(int64_t n_test_total, int64_t n_train_silo, int64_t n_train_total);

/// Per-class test counts for a silo: `n_test` split in proportion to `train_counts` with
/// largest-remainder rounding (ties to the lower class), each capped by `available`.
[[nodiscard]] std::vector<int64_t> test_class_targets(std::span<const int64_t> train_counts,
                                                      int64_t n_test,
                                                      std::span<const int64_t> available);

/// The indices (ascending) into the global test split `test_y` of silo `silo`'s test set:
/// test_share(...) samples (at least one), with the class mix of test_class_targets, drawn
/// without replacement with Philox(seed, 0, silo, kTestSplit).
[[nodiscard]] std::vector<int64_t> draw_silo_test(std::span<const int32_t> test_y, int num_classes,
                                                  std::span<const int64_t> train_counts,
                                                  int64_t n_train_total, uint64_t seed, int silo);

/// k indices of 0..n-1 chosen uniformly without replacement, ascending (all of them when
/// k <= 0 or k >= n).
[[nodiscard]] std::vector<int64_t> random_subset(int64_t n, int64_t k, Philox& rng);

/// Shuffles `v` in place (Fisher-Yates with unbiased draws from `rng`).
void shuffle(std::span<int64_t> v, Philox& rng);

/// "silo-07": the directory name of a silo, zero-padded to max(2, digits(silos - 1)).
[[nodiscard]] std::string silo_dir_name(int silo, int silos);

}  // namespace fedsilo::data
