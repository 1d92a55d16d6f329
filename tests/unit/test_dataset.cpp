// Tests of silo data files (data/dataset.h): round trip and every validation failure of
// read_dataset, naming the file and the problem; read_xy_file for user data.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/h5.h"
#include "test_util.h"
#include "data/dataset.h"

namespace fedsilo::data {
namespace {

namespace fsys = std::filesystem;

std::string test_dir() { return test::fresh_dir("dataset"); }

Dataset small_dataset(int n = 6) {
  Dataset ds;
  ds.chw = {1, 2, 3};
  ds.num_classes = 3;
  ds.name = "toy";
  ds.silo = 4;
  for (int i = 0; i < n; ++i) {
    ds.y.push_back(i % 3);
    for (int j = 0; j < 6; ++j) ds.x.push_back(static_cast<float>(i * 6 + j) / 100.0f);
  }
  return ds;
}

// A data file written field by field, so that each test can break one thing.
struct RawFile {
  std::vector<float> x = std::vector<float>(4 * 6, 0.5f);
  std::vector<int64_t> x_dims{4, 1, 2, 3};
  std::vector<int32_t> y{0, 1, 2, 1};
  std::vector<int64_t> y_dims{4};
  bool write_x = true, write_y = true, y_as_float = false;
  int64_t num_classes = 3, channels = 1, height = 2, width = 3;

  Status write(const std::string& path) const {
    return h5::write_atomically(path, [&](h5::File& f) -> Status {
      if (write_x) FEDSILO_CHECK(f.write_f32("x", x, x_dims));
      if (write_y && y_as_float) {
        const std::vector<float> yf(y.begin(), y.end());
        FEDSILO_CHECK(f.write_f32("y", yf, y_dims));
      } else if (write_y) {
        FEDSILO_CHECK(f.write_i32("y", y, y_dims));
      }
      FEDSILO_CHECK(f.write_attr_i64("", "num_classes", num_classes));
      FEDSILO_CHECK(f.write_attr_i64("", "channels", channels));
      FEDSILO_CHECK(f.write_attr_i64("", "height", height));
      FEDSILO_CHECK(f.write_attr_i64("", "width", width));
      return {};
    });
  }
};

// Writes `raw`, reads it back, and expects kCorruptData whose message holds the path and `what`.
void expect_rejected(const RawFile& raw, const std::string& what) {
  const std::string path = test_dir() + "/bad.h5";
  ASSERT_TRUE(raw.write(path).ok());
  auto r = read_dataset(path);
  ASSERT_FALSE(r.ok()) << "expected an error mentioning: " << what;
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData) << r.status().to_string();
  EXPECT_NE(r.status().message().find(path), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

TEST(Dataset, RoundTripsThroughAFile) {
  const std::string path = test_dir() + "/train.h5";
  const Dataset ds = small_dataset();
  ASSERT_TRUE(write_dataset(path, ds).ok());
  auto r = read_dataset(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->x, ds.x);
  EXPECT_EQ(r->y, ds.y);
  EXPECT_EQ(r->chw, ds.chw);
  EXPECT_EQ(r->num_classes, 3);
  EXPECT_EQ(r->name, "toy");
  EXPECT_EQ(r->silo, 4);
  auto f = h5::File::open_read(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->dims("x").value(), (std::vector<int64_t>{6, 1, 2, 3}));
}

TEST(Dataset, ReadAcceptsAWellFormedRawFile) {
  const std::string path = test_dir() + "/ok.h5";
  ASSERT_TRUE(RawFile{}.write(path).ok());
  auto r = read_dataset(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->size(), 4);
  EXPECT_EQ(r->silo, -1);  // no silo attribute
}

TEST(Dataset, ReadRejectsMissingX) {
  RawFile raw;
  raw.write_x = false;
  expect_rejected(raw, "missing dataset 'x'");
}

TEST(Dataset, ReadRejectsMissingY) {
  RawFile raw;
  raw.write_y = false;
  expect_rejected(raw, "missing dataset 'y'");
}

TEST(Dataset, ReadRejectsLabelsOfWrongType) {
  RawFile raw;
  raw.y_as_float = true;
  expect_rejected(raw, "dataset 'y' has type float32, expected int32");
}

TEST(Dataset, ReadRejectsXOfWrongRank) {
  RawFile raw;
  raw.x_dims = {4, 6};
  expect_rejected(raw, "dataset 'x' has rank 2");
}

TEST(Dataset, ReadRejectsYOfWrongRank) {
  RawFile raw;
  raw.y_dims = {4, 1};
  expect_rejected(raw, "dataset 'y' has rank 2");
}

TEST(Dataset, ReadRejectsSampleCountMismatch) {
  RawFile raw;
  raw.y = {0, 1, 2};
  raw.y_dims = {3};
  expect_rejected(raw, "'x' has 4 samples but 'y' has 3 labels");
}

TEST(Dataset, ReadRejectsShapeAttributeThatDisagreesWithX) {
  RawFile raw;
  raw.height = 3;
  expect_rejected(raw, "attribute 'height' = 3 does not match dataset 'x' of shape [4, 1, 2, 3]");
}

TEST(Dataset, ReadRejectsLabelOutOfRange) {
  RawFile raw;
  raw.y = {0, 1, 2, 3};
  expect_rejected(raw, "label y[3] = 3 is outside [0, 3)");
  raw.y = {0, -1, 2, 1};
  expect_rejected(raw, "label y[1] = -1");
}

TEST(Dataset, ReadRejectsFileWithNoSamples) {
  RawFile raw;
  raw.x.clear();
  raw.x_dims = {0, 1, 2, 3};
  raw.y.clear();
  raw.y_dims = {0};
  expect_rejected(raw, "has no samples");
}

TEST(Dataset, ReadRejectsNonFiniteFeatures) {
  RawFile raw;
  raw.x[13] = std::numeric_limits<float>::quiet_NaN();
  expect_rejected(raw, "non-finite value (nan) at sample 2, element 1");
  raw.x[13] = 0.0f;
  raw.x[0] = std::numeric_limits<float>::infinity();
  expect_rejected(raw, "non-finite");
}

TEST(Dataset, ReadRejectsMissingShapeAttribute) {
  const std::string path = test_dir() + "/noattr.h5";
  ASSERT_TRUE(h5::write_atomically(path, [](h5::File& f) -> Status {
                FEDSILO_CHECK(f.write_f32("x", std::vector<float>(6, 0.f), {1, 1, 2, 3}));
                return f.write_i32("y", std::vector<int32_t>{0}, {1});
              }).ok());
  auto r = read_dataset(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(r.status().message().find("missing root attribute 'num_classes'"), std::string::npos);
}

TEST(Dataset, ReadOfMissingFileIsNotFound) {
  const std::string path = test_dir() + "/silo-03/train.h5";
  auto r = read_dataset(path);
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
}

TEST(Dataset, WriteRejectsInconsistentDataAndLeavesNoFile) {
  const std::string path = test_dir() + "/bad.h5";
  Dataset ds = small_dataset();
  ds.x.pop_back();
  EXPECT_EQ(write_dataset(path, ds).code(), StatusCode::kInvalidArgument);
  ds = small_dataset();
  ds.y[2] = 7;
  const Status st = write_dataset(path, ds);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("y[2] = 7"), std::string::npos);
  EXPECT_FALSE(fsys::exists(path));
}

TEST(Dataset, ReadXyFileTreatsTwoDimensionalXAsFeatures) {
  const std::string path = test_dir() + "/tabular.h5";
  ASSERT_TRUE(h5::write_atomically(path, [](h5::File& f) -> Status {
                FEDSILO_CHECK(f.write_f32("x", std::vector<float>(3 * 5, 1.f), {3, 5}));
                return f.write_i32("y", std::vector<int32_t>{0, 4, 2}, {3});
              }).ok());
  auto r = read_xy_file(path);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->chw, (std::array<int, 3>{1, 1, 5}));
  EXPECT_EQ(r->num_classes, 5);  // max label + 1 without a num_classes attribute
  EXPECT_EQ(r->name, "tabular");
}

TEST(Dataset, ReadXyFileRejectsNegativeLabels) {
  const std::string path = test_dir() + "/neg.h5";
  ASSERT_TRUE(h5::write_atomically(path, [](h5::File& f) -> Status {
                FEDSILO_CHECK(f.write_f32("x", std::vector<float>(2 * 2, 1.f), {2, 2}));
                return f.write_i32("y", std::vector<int32_t>{0, -2}, {2});
              }).ok());
  auto r = read_xy_file(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("y[1] = -2"), std::string::npos);
}

TEST(Dataset, SelectCopiesTheChosenSamples) {
  const Dataset ds = small_dataset();
  const std::vector<int64_t> idx{5, 0};
  const Dataset sub = select(ds, idx);
  ASSERT_EQ(sub.size(), 2);
  EXPECT_EQ(sub.y, (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(sub.x[0], ds.sample(5)[0]);
  EXPECT_EQ(sub.x[6], ds.sample(0)[0]);
  EXPECT_EQ(class_counts(ds.y, 3), (std::vector<int64_t>{2, 2, 2}));
}

}  // namespace
}  // namespace fedsilo::data
