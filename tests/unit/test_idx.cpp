// Tests of the IDX gzip reader (read_idx_pair): a round trip through files written here with
// zlib, bad magic numbers, truncation, count mismatches, and the installed Fashion-MNIST.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <filesystem>

#include "data/dataset.h"
#include "test_util.h"

namespace fedsilo::data {
namespace {

namespace fsys = std::filesystem;

std::string test_dir() { return test::fresh_dir("idx"); }

void put_be32(std::vector<uint8_t>* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<uint8_t>(v >> s));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<uint8_t> images_bytes(uint32_t n, uint32_t rows, uint32_t cols,
                                  uint32_t magic = 0x803) {
  std::vector<uint8_t> b;
  put_be32(&b, magic);
  put_be32(&b, n);
  put_be32(&b, rows);
  put_be32(&b, cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i) b.push_back(static_cast<uint8_t>(i * 37 % 256));
  return b;
}

std::vector<uint8_t> labels_bytes(const std::vector<uint8_t>& labels, uint32_t magic = 0x801) {
  std::vector<uint8_t> b;
  put_be32(&b, magic);
  put_be32(&b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

TEST(Idx, RoundTripsSmallFiles) {
  const std::string dir = test_dir();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4));
  write_gz(dir + "/lab.gz", labels_bytes({9, 0, 4}));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->size(), 3);
  EXPECT_EQ(r->chw, (std::array<int, 3>{1, 2, 4}));
  EXPECT_EQ(r->num_classes, 10);
  EXPECT_EQ(r->name, "fashion-mnist");
  EXPECT_EQ(r->y, (std::vector<int32_t>{9, 0, 4}));
  ASSERT_EQ(r->x.size(), 24u);
  for (uint32_t i = 0; i < 24; ++i) {
    EXPECT_FLOAT_EQ(r->x[i], static_cast<float>(i * 37 % 256) / 255.0f) << i;
  }
  EXPECT_EQ(r->x[0], 0.0f);
  EXPECT_EQ(*std::max_element(r->x.begin(), r->x.end()) <= 1.0f, true);
}

TEST(Idx, RejectsBadMagicNamingTheFile) {
  const std::string dir = test_dir();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4, 0x801));  // a labels magic on images
  write_gz(dir + "/lab.gz", labels_bytes({1, 2, 3}));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(r.status().message().find(dir + "/img.gz"), std::string::npos);
  EXPECT_NE(r.status().message().find("bad magic number 0x00000801, expected 0x00000803"),
            std::string::npos)
      << r.status().message();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4));
  write_gz(dir + "/lab.gz", labels_bytes({1, 2, 3}, 0x803));
  auto l = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find(dir + "/lab.gz: bad magic"), std::string::npos);
}

TEST(Idx, RejectsTruncatedDataWithExpectedAndFoundBytes) {
  const std::string dir = test_dir();
  std::vector<uint8_t> img = images_bytes(3, 2, 4);  // 16 + 24 bytes
  img.resize(30);
  write_gz(dir + "/img.gz", img);
  write_gz(dir + "/lab.gz", labels_bytes({1, 2, 3}));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(r.status().message().find(dir + "/img.gz: truncated: expected 40 bytes"),
            std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("found 30"), std::string::npos);
}

TEST(Idx, RejectsTruncatedGzipStream) {
  const std::string dir = test_dir();
  write_gz(dir + "/full.gz", images_bytes(50, 28, 28));
  const auto size = fsys::file_size(dir + "/full.gz");
  fsys::resize_file(dir + "/full.gz", size / 2);
  write_gz(dir + "/lab.gz", labels_bytes(std::vector<uint8_t>(50, 1)));
  auto r = read_idx_pair(dir + "/full.gz", dir + "/lab.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(r.status().message().find(dir + "/full.gz"), std::string::npos);
}

TEST(Idx, ReportsMissingFileAsNotFound) {
  const std::string dir = test_dir();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/absent.gz");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(dir + "/absent.gz"), std::string::npos);
}

TEST(Idx, RejectsImageAndLabelCountMismatch) {
  const std::string dir = test_dir();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4));
  write_gz(dir + "/lab.gz", labels_bytes({1, 2}));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("holds 3 images but"), std::string::npos);
  EXPECT_NE(r.status().message().find("holds 2 labels"), std::string::npos);
}

TEST(Idx, RejectsLabelAboveNine) {
  const std::string dir = test_dir();
  write_gz(dir + "/img.gz", images_bytes(3, 2, 4));
  write_gz(dir + "/lab.gz", labels_bytes({1, 10, 2}));
  auto r = read_idx_pair(dir + "/img.gz", dir + "/lab.gz");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("label 1 = 10"), std::string::npos);
}

TEST(Idx, ReadsInstalledFashionMnistTestSplit) {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  if (!fsys::exists(dir + "/t10k-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  }
  auto r = read_idx_pair(dir + "/t10k-images-idx3-ubyte.gz", dir + "/t10k-labels-idx1-ubyte.gz");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->size(), 10000);
  EXPECT_EQ(r->chw, (std::array<int, 3>{1, 28, 28}));
  EXPECT_EQ(class_counts(r->y, 10), std::vector<int64_t>(10, 1000));
  EXPECT_EQ(*std::max_element(r->x.begin(), r->x.end()), 1.0f);
  EXPECT_TRUE(validate_dataset(r.value(), "t10k").ok());
}

}  // namespace
}  // namespace fedsilo::data
