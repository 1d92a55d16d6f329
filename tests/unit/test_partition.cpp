// Tests of the NIID-Bench partition schemes, per-silo test draws and noise (data/partition.h),
// on labels alone: no files.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "data/dataset.h"
#include "data/partition.h"

namespace fedsilo::data {
namespace {

constexpr int kClasses = 10;

// n labels, mildly imbalanced: class c appears about in proportion to (c + 5).
std::vector<int32_t> make_labels(int64_t n, uint64_t seed = 99) {
  Philox rng(seed, 0, 0, RngPurpose::kInit);
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (auto& v : y) {
    const auto r = static_cast<int>(rng.below(95));  // sum of (c + 5) for c < 10 = 95
    int c = 0, acc = 5;
    while (r >= acc) acc += (++c) + 5;
    v = c;
  }
  return y;
}

Scheme scheme(const std::string& text) {
  auto s = parse_scheme(text);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? s.value() : Scheme{};
}

SiloIndices split(const std::string& text, const std::vector<int32_t>& y, int silos,
                  uint64_t seed) {
  auto r = partition_indices(scheme(text), y, kClasses, silos, seed);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().to_string();
  return r.ok() ? r.value() : SiloIndices{};
}

// Every index in `expected` appears in exactly one silo, and nothing else appears.
void expect_partition_of(const SiloIndices& parts, std::vector<int64_t> expected) {
  std::vector<int64_t> all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  std::sort(all.begin(), all.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(all, expected);
}

std::vector<int64_t> all_indices(int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::string join(const std::vector<int64_t>& v) {
  std::string s;
  for (int64_t x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
  return s;
}

std::set<int> labels_of(const std::vector<int64_t>& idx, const std::vector<int32_t>& y) {
  std::set<int> s;
  for (int64_t i : idx) s.insert(y[static_cast<size_t>(i)]);
  return s;
}

TEST(PartitionScheme, ParsesEveryScheme) {
  EXPECT_EQ(scheme("iid").kind, SchemeKind::kIid);
  const Scheme d = scheme("dirichlet:0.5");
  EXPECT_EQ(d.kind, SchemeKind::kDirichlet);
  EXPECT_EQ(d.beta, 0.5);
  EXPECT_EQ(d.text, "dirichlet:0.5");
  const Scheme l = scheme("labels:3");
  EXPECT_EQ(l.kind, SchemeKind::kLabels);
  EXPECT_EQ(l.k, 3);
  EXPECT_EQ(scheme("quantity:1e-1").beta, 0.1);
  const Scheme n = scheme("noise:0.25");
  EXPECT_EQ(n.kind, SchemeKind::kNoise);
  EXPECT_EQ(n.sigma, 0.25);
}

TEST(PartitionScheme, RejectsUnknownSchemeNamingIt) {
  auto r = parse_scheme("foo");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "--scheme: unknown scheme 'foo' (expected iid, dirichlet:BETA, labels:K, "
            "quantity:BETA, noise:SIGMA)");
}

TEST(PartitionScheme, RejectsInvalidParametersNamingTheScheme) {
  for (const std::string text :
       {"dirichlet:0", "dirichlet:-1", "dirichlet:abc", "dirichlet", "dirichlet:", "labels:0",
        "labels:1.5", "quantity:0", "noise:-0.1", "iid:3", "dirichlet:nan", "quantity:inf"}) {
    auto r = parse_scheme(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("'" + text + "'"), std::string::npos)
        << r.status().message();
  }
}

TEST(PartitionScheme, ValidationRejectsImpossibleSettings) {
  const Status k = validate_scheme(scheme("labels:11"), 5, 1000, kClasses);
  EXPECT_EQ(k.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(k.message().find("exceeds the 10 classes"), std::string::npos);
  EXPECT_FALSE(validate_scheme(scheme("iid"), 0, 1000, kClasses).ok());
  EXPECT_FALSE(validate_scheme(scheme("iid"), 11, 10, kClasses).ok());
  EXPECT_TRUE(validate_scheme(scheme("iid"), 10, 10, kClasses).ok());
  const Status d = validate_scheme(scheme("dirichlet:0.5"), 11, 100, kClasses);
  EXPECT_FALSE(d.ok());
  EXPECT_NE(d.message().find("needs at least 110 training samples"), std::string::npos);
  EXPECT_FALSE(validate_scheme(scheme("quantity:0.5"), 11, 100, kClasses).ok());
  EXPECT_TRUE(validate_scheme(scheme("quantity:0.5"), 10, 100, kClasses).ok());
  EXPECT_TRUE(validate_scheme(scheme("labels:10"), 5, 1000, kClasses).ok());
}

TEST(Partition, EverySchemeAssignsEachSampleExactlyOnce) {
  const auto y = make_labels(3000);
  for (const std::string text : {"iid", "dirichlet:0.5", "dirichlet:0.1", "quantity:0.5",
                                 "noise:0.1", "labels:2", "labels:10"}) {
    SCOPED_TRACE(text);
    const SiloIndices parts = split(text, y, 10, 7);
    ASSERT_EQ(parts.size(), 10u);
    expect_partition_of(parts, all_indices(3000));  // 10 silos hold every label at least once
  }
}

TEST(Partition, SameSeedGivesSameSplitAndOtherSeedsDiffer) {
  const auto y = make_labels(2000);
  for (const std::string text : {"iid", "dirichlet:0.5", "quantity:1", "labels:3", "noise:1"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(split(text, y, 8, 11), split(text, y, 8, 11));
    EXPECT_NE(split(text, y, 8, 11), split(text, y, 8, 12));
  }
}

TEST(Partition, IidSizesDifferByAtMostOne) {
  Philox rng(3, 0, 0, RngPurpose::kPartition);
  const SiloIndices parts = split_iid(1003, 10, rng);
  std::vector<size_t> sizes;
  for (const auto& p : parts) sizes.push_back(p.size());
  EXPECT_EQ(sizes.front(), 101u);  // numpy.array_split: the first 1003 % 10 parts are larger
  EXPECT_EQ(sizes.back(), 100u);
  EXPECT_LE(
      *std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()),
      1u);
}

TEST(Partition, DirichletGivesEverySiloAtLeastTenSamples) {
  const auto y = make_labels(1000);
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const SiloIndices parts = split("dirichlet:0.1", y, 20, seed);
    for (const auto& p : parts) EXPECT_GE(p.size(), 10u) << "seed " << seed;
  }
}

TEST(Partition, DirichletProportionsSkipSilosHoldingTheirShare) {
  Philox rng(5, 0, 0, RngPurpose::kPartition);
  // n_total 100 over 4 silos: a share is 25; silos 1 (25) and 3 (40) are full.
  const std::vector<int64_t> held{10, 25, 24, 40};
  for (int i = 0; i < 50; ++i) {
    const std::vector<double> p = dirichlet_proportions(rng, 0.5, held, 100);
    EXPECT_EQ(p[1], 0.0);
    EXPECT_EQ(p[3], 0.0);
    EXPECT_NEAR(p[0] + p[2], 1.0, 1e-12);
  }
}

TEST(Partition, DirichletStopsFillingSilosPastTheirShare) {
  // Once a silo holds N/silos samples it gets nothing more, so no silo can exceed its share by
  // more than one class's samples.
  const auto y = make_labels(4000);
  const auto counts = class_counts(y, kClasses);
  const int64_t largest = *std::max_element(counts.begin(), counts.end());
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const SiloIndices parts = split("dirichlet:0.05", y, 5, seed);
    for (const auto& p : parts) EXPECT_LT(static_cast<int64_t>(p.size()), 4000 / 5 + largest);
  }
}

TEST(Partition, LabelsGiveEachSiloExactlyKLabelsSplitEvenly) {
  const auto y = make_labels(5000);
  const int silos = 12, k = 3;
  const SiloIndices parts = split("labels:3", y, silos, 21);
  std::vector<std::vector<int64_t>> per_label_sizes(kClasses);
  for (int s = 0; s < silos; ++s) {
    const std::set<int> labels = labels_of(parts[s], y);
    EXPECT_EQ(static_cast<int>(labels.size()), k) << "silo " << s;
    EXPECT_EQ(labels.count(s % kClasses), 1u) << "silo " << s;
    for (int c : labels) {
      per_label_sizes[c].push_back(std::count_if(parts[s].begin(), parts[s].end(), [&](int64_t i) {
        return y[static_cast<size_t>(i)] == c;
      }));
    }
  }
  for (int c = 0; c < kClasses; ++c) {
    if (per_label_sizes[c].empty()) continue;
    const auto [lo, hi] = std::minmax_element(per_label_sizes[c].begin(), per_label_sizes[c].end());
    EXPECT_LE(*hi - *lo, 1) << "label " << c;
  }
}

TEST(Partition, LabelsDropsLabelsNobodyHolds) {
  const auto y = make_labels(2000);
  const SiloIndices parts = split("labels:1", y, 3, 4);  // silos hold labels 0, 1, 2 only
  std::vector<int64_t> held;
  for (size_t i = 0; i < y.size(); ++i) {
    if (y[i] <= 2) held.push_back(static_cast<int64_t>(i));
  }
  expect_partition_of(parts, held);
  for (int s = 0; s < 3; ++s) EXPECT_EQ(labels_of(parts[s], y), std::set<int>{s});
}

TEST(Partition, ChoosesDistinctLabelsIncludingSiloIndexModClasses) {
  Philox rng(8, 0, 0, RngPurpose::kPartition);
  const auto contain = choose_silo_labels(kClasses, 25, 4, rng);
  for (int s = 0; s < 25; ++s) {
    EXPECT_EQ(contain[s].front(), s % kClasses);
    EXPECT_EQ(std::set<int>(contain[s].begin(), contain[s].end()).size(), 4u);
  }
}

TEST(Partition, QuantityGivesEverySiloAtLeastTenSamples) {
  const auto y = make_labels(600);
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    const SiloIndices parts = split("quantity:0.5", y, 10, seed);
    std::set<size_t> sizes;
    for (const auto& p : parts) {
      EXPECT_GE(p.size(), 10u) << "seed " << seed;
      sizes.insert(p.size());
    }
    EXPECT_GT(sizes.size(), 1u);  // quantity skew: sizes are not all equal
  }
}

TEST(Partition, LeftEmptySiloIsAnError) {
  // labels:1 with 11 silos over 10 classes: silos 0 and 10 share label 0, which has one
  // sample, so silo 10 gets none.
  std::vector<int32_t> y{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1};
  auto r = partition_indices(scheme("labels:1"), y, kClasses, 11, 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("left silo 10 with no samples"), std::string::npos)
      << r.status().message();
}

TEST(Partition, NoiseStdFollowsTheSiloSchedule) {
  const Scheme s = scheme("noise:0.4");
  EXPECT_EQ(silo_noise_std(s, 0, 5), 0.0);
  EXPECT_DOUBLE_EQ(silo_noise_std(s, 4, 5), 0.4);
  EXPECT_EQ(silo_noise_std(scheme("iid"), 4, 5), 0.0);
  for (int silo = 0; silo < 5; ++silo) {
    std::vector<float> x(100000, 0.5f);
    Philox rng(1, 0, static_cast<uint32_t>(silo), RngPurpose::kNoise);
    add_gaussian_noise(x, silo_noise_std(s, silo, 5), rng);
    double sum = 0, sq = 0;
    for (float v : x) {
      sum += v - 0.5;
      sq += (v - 0.5) * (v - 0.5);
    }
    const double mean = sum / x.size();
    const double sd = std::sqrt(sq / x.size() - mean * mean);
    EXPECT_NEAR(sd, 0.4 * silo / 4, 0.01) << "silo " << silo;
    EXPECT_NEAR(mean, 0.0, 0.01);
  }
}

TEST(PartitionTest, ShareIsRoundedProportionOfTrainingSamples) {
  EXPECT_EQ(test_share(10000, 6000, 60000), 1000);
  EXPECT_EQ(test_share(10, 1, 4), 3);  // 2.5 rounds up
  EXPECT_EQ(test_share(10, 1, 6), 2);  // 1.67
  EXPECT_EQ(test_share(10, 0, 6), 0);
}

TEST(PartitionTest, ClassTargetsUseLargestRemainderAndCaps) {
  // Compared as text: GCC 12.2 with AVX-512 (-march=native here) miscompiles this function when
  // it builds the int64 vector literals {1, 1, 1, 0} and {1, 1, 0, 0} (both become all ones).
  const std::vector<int64_t> avail(4, 100);
  EXPECT_EQ(join(test_class_targets(std::vector<int64_t>{1, 1, 1, 0}, 2, avail)),
            "1 1 0 0");  // ties go to the lower class
  EXPECT_EQ(join(test_class_targets(std::vector<int64_t>{50, 30, 15, 5}, 10, avail)),
            "5 3 2 0");  // 5, 3, 1.5, 0.5: a tie, the lower class wins
  EXPECT_EQ(join(test_class_targets(std::vector<int64_t>{90, 10, 0, 0}, 50,
                                    std::vector<int64_t>{20, 100, 100, 100})),
            "20 5 0 0");  // capped by the test split's 20
}

TEST(PartitionTest, SiloTestSetFollowsItsTrainClassMix) {
  // Global test split: 100 of each class. Silo trained on 500/300/200 of classes 0/1/2 out of
  // 5000 training samples overall -> 200 test samples, 100/60/40.
  std::vector<int32_t> test_y;
  for (int i = 0; i < 1000; ++i) test_y.push_back(i % kClasses);
  std::vector<int64_t> train_counts(kClasses, 0);
  train_counts[0] = 500;
  train_counts[1] = 300;
  train_counts[2] = 200;
  const std::vector<int64_t> idx = draw_silo_test(test_y, kClasses, train_counts, 5000, 9, 3);
  EXPECT_EQ(idx.size(), 200u);
  EXPECT_TRUE(std::is_sorted(idx.begin(), idx.end()));
  EXPECT_EQ(std::set<int64_t>(idx.begin(), idx.end()).size(), idx.size());  // no replacement
  std::vector<int32_t> picked;
  for (int64_t i : idx) picked.push_back(test_y[static_cast<size_t>(i)]);
  std::vector<int64_t> expected(kClasses, 0);
  expected[0] = 100;
  expected[1] = 60;
  expected[2] = 40;
  EXPECT_EQ(class_counts(picked, kClasses), expected);
  EXPECT_EQ(idx, draw_silo_test(test_y, kClasses, train_counts, 5000, 9, 3));
  EXPECT_NE(idx, draw_silo_test(test_y, kClasses, train_counts, 5000, 9, 4));
}

TEST(PartitionNames, SiloDirectoriesAreZeroPadded) {
  EXPECT_EQ(silo_dir_name(0, 1), "silo-00");
  EXPECT_EQ(silo_dir_name(9, 10), "silo-09");
  EXPECT_EQ(silo_dir_name(99, 100), "silo-99");
  EXPECT_EQ(silo_dir_name(0, 101), "silo-000");
  EXPECT_EQ(silo_dir_name(100, 101), "silo-100");
  EXPECT_EQ(silo_dir_name(7, 1001), "silo-0007");
}

TEST(PartitionSubset, IsSortedUniqueAndSeeded) {
  Philox a(1, 1, 0, RngPurpose::kPartition), b(1, 1, 0, RngPurpose::kPartition);
  const auto s = random_subset(1000, 100, a);
  EXPECT_EQ(s.size(), 100u);
  EXPECT_TRUE(std::is_sorted(s.begin(), s.end()));
  EXPECT_EQ(std::set<int64_t>(s.begin(), s.end()).size(), 100u);
  EXPECT_EQ(s, random_subset(1000, 100, b));
  EXPECT_EQ(random_subset(5, 0, a).size(), 5u);
}

}  // namespace
}  // namespace fedsilo::data
