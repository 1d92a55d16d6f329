// End-to-end tests of `fedsilo partition` (cli::run_partition): files that read back, a
// partition.json that matches them, refusal to overwrite, usage errors, noise and holdout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/commands.h"
#include "core/fs.h"
#include "core/h5.h"
#include "data/dataset.h"
#include "data/partition.h"

namespace fedsilo::cli {
namespace {

namespace fsys = std::filesystem;
constexpr const char* kIdxDir = "/usr/share/datasets/fashion-mnist";

std::string test_dir() {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const fsys::path dir = fsys::path(FEDSILO_TEST_TMPDIR) /
                         (std::string("partition-") + info->name() + "-" +
                          std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fsys::remove_all(dir);
  fsys::create_directories(dir);
  return dir.string();
}

// A user data file: n samples of f features, label i % classes, x = value (or i / n).
std::string write_input(const std::string& dir, int64_t n, int64_t f, int classes,
                        float value = -1.0f) {
  const std::string path = dir + "/input.h5";
  std::vector<float> x(static_cast<size_t>(n * f));
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = value >= 0 ? value : static_cast<float>(i % 97) / 97.0f;
  }
  std::vector<int32_t> y(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) y[static_cast<size_t>(i)] = static_cast<int32_t>(i % classes);
  EXPECT_TRUE(h5::write_atomically(path, [&](h5::File& file) -> Status {
                FEDSILO_CHECK(file.write_f32("x", x, {n, f}));
                return file.write_i32("y", y, {n});
              }).ok());
  return path;
}

double stddev(const std::vector<float>& x) {
  double sum = 0, sq = 0;
  for (float v : x) {
    sum += v;
    sq += double{v} * v;
  }
  const double mean = sum / x.size();
  return std::sqrt(std::max(0.0, sq / x.size() - mean * mean));
}

// Checks that every file of the partition in `out` reads back and agrees with partition.json.
// Silo test sets add up to the global test split up to rounding (one per silo), or fewer where a
// class of the test split runs short (`capped`).
void expect_consistent_partition(const std::string& out, int silos, int64_t train_total,
                                 int64_t test_total, bool capped = false) {
  auto text = fs::read_text(out + "/partition.json");
  ASSERT_TRUE(text.ok());
  const auto j = nlohmann::json::parse(text.value());
  EXPECT_EQ(j["silos"].get<int>(), silos);
  EXPECT_EQ(j["train_samples"].get<int64_t>(), train_total);
  EXPECT_EQ(j["test_samples"].get<int64_t>(), test_total);
  const int classes = j["num_classes"].get<int>();
  ASSERT_EQ(j["per_silo"].size(), static_cast<size_t>(silos));
  int64_t train_sum = 0, test_sum = 0;
  for (int s = 0; s < silos; ++s) {
    SCOPED_TRACE("silo " + std::to_string(s));
    const auto& e = j["per_silo"][s];
    const std::string dir = out + "/" + data::silo_dir_name(s, silos);
    EXPECT_EQ(e["dir"].get<std::string>(), data::silo_dir_name(s, silos));
    auto train = data::read_dataset(dir + "/train.h5");
    ASSERT_TRUE(train.ok()) << train.status().to_string();
    auto test = data::read_dataset(dir + "/test.h5");
    ASSERT_TRUE(test.ok()) << test.status().to_string();
    EXPECT_EQ(train->silo, s);
    EXPECT_EQ(test->silo, s);
    EXPECT_EQ(e["train_samples"].get<int64_t>(), train->size());
    EXPECT_EQ(e["test_samples"].get<int64_t>(), test->size());
    EXPECT_EQ(e["train_class_counts"].get<std::vector<int64_t>>(),
              data::class_counts(train->y, classes));
    EXPECT_EQ(e["test_class_counts"].get<std::vector<int64_t>>(),
              data::class_counts(test->y, classes));
    train_sum += train->size();
    test_sum += test->size();
  }
  EXPECT_EQ(train_sum, train_total);
  EXPECT_LE(test_sum, test_total + silos);
  if (!capped) {
    EXPECT_GE(test_sum, test_total - silos);
  }
  auto global = data::read_dataset(out + "/test.h5");
  ASSERT_TRUE(global.ok()) << global.status().to_string();
  EXPECT_EQ(global->size(), test_total);
  EXPECT_EQ(global->silo, -1);
}

TEST(PartitionCli, WritesAFashionMnistSubsetThatReadsBack) {
  if (!fsys::exists(std::string(kIdxDir) + "/train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  PartitionArgs a;
  a.dataset = "fashion-mnist";
  a.silos = 4;
  a.scheme = "dirichlet:0.5";
  a.seed = 3;
  a.out = test_dir() + "/part";
  a.max_train = 2000;
  a.max_test = 500;
  a.quiet = true;
  ASSERT_EQ(run_partition(a), 0);
  expect_consistent_partition(a.out, 4, 2000, 500);
  auto t = data::read_dataset(a.out + "/silo-00/train.h5");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->chw, (std::array<int, 3>{1, 28, 28}));
  EXPECT_EQ(t->num_classes, 10);
  EXPECT_EQ(t->name, "fashion-mnist");
  // Deterministic: the same command gives the same files.
  PartitionArgs b = a;
  b.out = test_dir() + "/again";
  ASSERT_EQ(run_partition(b), 0);
  auto u = data::read_dataset(b.out + "/silo-00/train.h5");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(t->y, u->y);
  EXPECT_EQ(t->x, u->x);
}

TEST(PartitionCli, HoldsOutASeventhOfAnInputFile) {
  const std::string dir = test_dir();
  PartitionArgs a;
  a.input = write_input(dir, 700, 12, 5);
  a.silos = 3;
  a.scheme = "labels:2";
  a.out = dir + "/part";
  a.quiet = true;
  ASSERT_EQ(run_partition(a), 0);
  // 700 / 7 = 100 held out; labels:2 over 3 silos may drop unheld labels.
  auto text = fs::read_text(a.out + "/partition.json");
  ASSERT_TRUE(text.ok());
  const auto j = nlohmann::json::parse(text.value());
  EXPECT_EQ(j["dataset"].get<std::string>(), "input");
  EXPECT_EQ(j["scheme"].get<std::string>(), "labels:2");
  EXPECT_EQ(j["chw"].get<std::vector<int>>(), (std::vector<int>{1, 1, 12}));
  expect_consistent_partition(a.out, 3, j["train_samples"].get<int64_t>(), 100, true);
  for (int s = 0; s < 3; ++s) {
    auto t = data::read_dataset(a.out + "/" + data::silo_dir_name(s, 3) + "/train.h5");
    ASSERT_TRUE(t.ok());
    int held = 0;
    for (int64_t n : data::class_counts(t->y, 5)) held += n > 0 ? 1 : 0;
    EXPECT_EQ(held, 2);
  }
}

TEST(PartitionCli, NoiseSchemeAddsTheSilosNoiseLevelToTrainAndTest) {
  const std::string dir = test_dir();
  PartitionArgs a;
  a.input = write_input(dir, 2100, 50, 10, 0.0f);  // all-zero features: the noise is all there is
  a.silos = 3;
  a.scheme = "noise:0.2";
  a.out = dir + "/part";
  a.quiet = true;
  ASSERT_EQ(run_partition(a), 0);
  for (int s = 0; s < 3; ++s) {
    SCOPED_TRACE("silo " + std::to_string(s));
    const std::string sd = a.out + "/" + data::silo_dir_name(s, 3);
    auto train = data::read_dataset(sd + "/train.h5");
    auto test = data::read_dataset(sd + "/test.h5");
    ASSERT_TRUE(train.ok() && test.ok());
    EXPECT_NEAR(stddev(train->x), 0.2 * s / 2, 0.01);
    EXPECT_NEAR(stddev(test->x), 0.2 * s / 2, 0.02);
  }
  auto global = data::read_dataset(a.out + "/test.h5");
  ASSERT_TRUE(global.ok());
  EXPECT_EQ(stddev(global->x), 0.0);  // the global test split is clean
}

TEST(PartitionCli, RefusesToReplaceAPartitionWithoutOverwrite) {
  const std::string dir = test_dir();
  PartitionArgs a;
  a.input = write_input(dir, 700, 4, 3);
  a.silos = 4;
  a.out = dir + "/part";
  a.quiet = true;
  ASSERT_EQ(run_partition(a), 0);
  EXPECT_TRUE(fsys::exists(a.out + "/silo-03/train.h5"));
  a.silos = 2;
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_partition(a), 3);  // the README's "output already holds a run or partition"
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "fedsilo partition: error: --out " + a.out +
                     " already holds a partition; pass --overwrite\n");
  a.overwrite = true;
  ASSERT_EQ(run_partition(a), 0);
  EXPECT_FALSE(fsys::exists(a.out + "/silo-03"));  // stale silos of the old partition are gone
  expect_consistent_partition(a.out, 2, 600, 100);
}

// The README's exit codes: 2 for a bad flag or a flag value the data cannot satisfy, 1 for a
// file that cannot be read.
TEST(PartitionCli, ReportsBadUsageOnOneLineWithExitCodeTwoAndUnreadableInputWithOne) {
  const std::string dir = test_dir();
  PartitionArgs a;
  a.input = write_input(dir, 140, 4, 3);
  a.out = dir + "/part";
  a.scheme = "foo";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_partition(a), 2);
  std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(err,
            "fedsilo partition: error: --scheme: unknown scheme 'foo' (expected iid, "
            "dirichlet:BETA, labels:K, quantity:BETA, noise:SIGMA)\n");

  a.scheme = "dirichlet:0.5";
  a.silos = 13;  // 120 training samples hold only 12 silos of 10
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_partition(a), 2);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("needs at least 130 training samples"), std::string::npos) << err;
  EXPECT_FALSE(fsys::exists(a.out + "/partition.json"));

  a.input = dir + "/absent.h5";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_partition(a), 1);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(dir + "/absent.h5"), std::string::npos) << err;

  PartitionArgs none;
  none.out = dir + "/x";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(run_partition(none), 2);
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("exactly one of --dataset"), std::string::npos) << err;
}

TEST(PartitionCli, UsesTheGivenTestInputAsTheGlobalTestSplit) {
  const std::string dir = test_dir();
  fsys::create_directories(dir + "/test");
  PartitionArgs a;
  a.input = write_input(dir, 300, 6, 4);
  a.test_input = write_input(dir + "/test", 80, 6, 4);
  a.silos = 2;
  a.scheme = "quantity:1";
  a.max_test = 40;
  a.out = dir + "/part";
  a.quiet = true;
  ASSERT_EQ(run_partition(a), 0);
  expect_consistent_partition(a.out, 2, 300, 40, true);
}

}  // namespace
}  // namespace fedsilo::cli
