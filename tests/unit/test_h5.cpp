// Tests of the HDF5 wrapper (core/h5.h): round trips, exact type checks, corrupt and truncated
// files, move semantics and atomic writes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>

#include "core/h5.h"
#include "test_util.h"

namespace fedsilo::h5 {
namespace {

namespace fsys = std::filesystem;

std::string test_dir() { return test::fresh_dir("h5"); }

TEST(H5File, RoundTripsEveryNumericType) {
  const std::string path = test_dir() + "/all.h5";
  const std::vector<float> f32{1.5f, -2.25f, 3.0f, 1e-30f, 0.0f, 7.0f};
  const std::vector<double> f64{1.0 / 3.0, -1e300};
  const std::vector<int32_t> i32{INT32_MIN, -1, 0, INT32_MAX};
  const std::vector<int64_t> i64{INT64_MIN, 42, INT64_MAX};
  const std::vector<uint8_t> u8{0, 128, 255};
  {
    auto f = File::create(path);
    ASSERT_TRUE(f.ok()) << f.status().to_string();
    ASSERT_TRUE(f->write_f32("layers/conv1/w", f32, {2, 3}).ok());
    ASSERT_TRUE(f->write_f64("f64", f64, {2}).ok());
    ASSERT_TRUE(f->write_i32("i32", i32, {4}).ok());
    ASSERT_TRUE(f->write_i64("i64", i64, {3, 1}).ok());
    ASSERT_TRUE(f->write_u8("u8", u8, {3}).ok());
    ASSERT_TRUE(f->close().ok());
  }
  auto f = File::open_read(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  std::vector<int64_t> dims;
  auto a = f->read_f32("layers/conv1/w", &dims);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a.value(), f32);
  EXPECT_EQ(dims, (std::vector<int64_t>{2, 3}));
  auto b = f->read_f64("f64");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value(), f64);
  auto c = f->read_i32("i32");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c.value(), i32);
  auto d = f->read_i64("i64", &dims);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value(), i64);
  EXPECT_EQ(dims, (std::vector<int64_t>{3, 1}));
  auto e = f->read_u8("u8");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e.value(), u8);
  auto shape = f->dims("layers/conv1/w");
  ASSERT_TRUE(shape.ok());
  EXPECT_EQ(shape.value(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(f->has("layers/conv1/w"));
  EXPECT_TRUE(f->has("layers"));
  EXPECT_FALSE(f->has("layers/conv2/w"));
  EXPECT_FALSE(f->has("missing"));
  auto names = f->list_datasets();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"f64", "i32", "i64", "layers/conv1/w", "u8"}));
}

TEST(H5File, RoundTripsStringsAndAttributes) {
  const std::string path = test_dir() + "/attrs.h5";
  const std::vector<std::string> strings{"conv1.weight", "", "fc.bias \xc3\xa9"};
  {
    auto f = File::create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_strings("names", strings).ok());
    ASSERT_TRUE(f->write_f32("w", std::vector<float>{1, 2}, {2}).ok());
    ASSERT_TRUE(f->write_attr_i64("", "round", 7).ok());
    ASSERT_TRUE(f->write_attr_i64("", "round", -9).ok());  // replaced, not duplicated
    ASSERT_TRUE(f->write_attr_f64("", "lr", 0.125).ok());
    ASSERT_TRUE(f->write_attr_str("", "name", "fashion-mnist").ok());
    ASSERT_TRUE(f->write_attr_str("w", "unit", "").ok());
  }  // closed by the destructor
  auto f = File::open_read(path);
  ASSERT_TRUE(f.ok());
  auto s = f->read_strings("names");
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s.value(), strings);
  EXPECT_EQ(f->read_attr_i64("", "round").value(), -9);
  EXPECT_EQ(f->read_attr_f64("", "lr").value(), 0.125);
  EXPECT_EQ(f->read_attr_str("", "name").value(), "fashion-mnist");
  EXPECT_EQ(f->read_attr_str("w", "unit").value(), "");
  EXPECT_TRUE(f->has_attr("", "lr"));
  EXPECT_TRUE(f->has_attr("w", "unit"));
  EXPECT_FALSE(f->has_attr("", "unit"));
  EXPECT_FALSE(f->has_attr("nope", "unit"));
  auto attrs = f->list_root_attrs();
  std::sort(attrs.begin(), attrs.end());
  EXPECT_EQ(attrs, (std::vector<std::string>{"lr", "name", "round"}));
  auto missing = f->read_attr_i64("", "epochs");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'epochs'"), std::string::npos);
}

TEST(H5File, RejectsReadWithWrongType) {
  const std::string path = test_dir() + "/types.h5";
  {
    auto f = File::create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_f32("y", std::vector<float>{1, 2}, {2}).ok());
    ASSERT_TRUE(f->write_i64("n", std::vector<int64_t>{1}, {1}).ok());
    ASSERT_TRUE(f->write_u8("b", std::vector<uint8_t>{1}, {1}).ok());
    ASSERT_TRUE(f->write_attr_f64("", "lr", 0.5).ok());
  }
  auto f = File::open_read(path);
  ASSERT_TRUE(f.ok());
  auto y = f->read_i32("y");
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kCorruptData);
  EXPECT_EQ(y.status().message(), path + ": dataset 'y' has type float32, expected int32");
  // Same class, different size.
  auto n = f->read_i32("n");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("has type int64, expected int32"), std::string::npos);
  EXPECT_FALSE(f->read_f64("y").ok());
  // uint8 is not int8-compatible: no read_i8, but u8 data must not read as anything else.
  EXPECT_FALSE(f->read_i32("b").ok());
  EXPECT_TRUE(f->read_u8("b").ok());
  EXPECT_FALSE(f->read_strings("y").ok());
  auto lr = f->read_attr_i64("", "lr");
  ASSERT_FALSE(lr.ok());
  EXPECT_NE(lr.status().message().find("has type float64, expected int64"), std::string::npos);
  EXPECT_FALSE(f->read_attr_str("", "lr").ok());
}

TEST(H5File, ReportsMissingDatasetAsNotFound) {
  const std::string path = test_dir() + "/one.h5";
  {
    auto f = File::create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_f32("x", std::vector<float>{1}, {1}).ok());
  }
  auto f = File::open_read(path);
  ASSERT_TRUE(f.ok());
  auto r = f->read_f32("layers/x");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(path), std::string::npos);
  EXPECT_NE(r.status().message().find("'layers/x'"), std::string::npos);
  EXPECT_EQ(f->dims("y").status().code(), StatusCode::kNotFound);
}

TEST(H5File, ReportsMissingFileAsNotFound) {
  const std::string path = test_dir() + "/absent.h5";
  auto f = File::open_read(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kNotFound);
  EXPECT_NE(f.status().message().find(path), std::string::npos);
}

TEST(H5File, RejectsGarbageFileAsCorrupt) {
  const std::string dir = test_dir();
  const std::string garbage = dir + "/garbage.h5";
  {
    std::ofstream out(garbage, std::ios::binary);
    for (int i = 0; i < 4096; ++i) out.put(static_cast<char>((i * 131 + 7) & 0xff));
  }
  auto f = File::open_read(garbage);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), StatusCode::kCorruptData);
  EXPECT_NE(f.status().message().find(garbage), std::string::npos);
  const std::string empty = dir + "/empty.h5";
  { std::ofstream out(empty, std::ios::binary); }
  EXPECT_EQ(File::open_read(empty).status().code(), StatusCode::kCorruptData);
}

TEST(H5File, RejectsTruncatedFileAsCorrupt) {
  const std::string path = test_dir() + "/big.h5";
  const std::vector<float> data(100000, 0.5f);
  {
    auto f = File::create(path);
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_f32("x", data, {1000, 100}).ok());
    ASSERT_TRUE(f->write_attr_i64("", "n", 1000).ok());
  }
  const auto size = fsys::file_size(path);
  fsys::resize_file(path, size / 2);
  auto f = File::open_read(path);
  if (f.ok()) {
    // If the library opens it at all, the data read must fail.
    auto x = f->read_f32("x");
    ASSERT_FALSE(x.ok());
    EXPECT_EQ(x.status().code(), StatusCode::kCorruptData);
  } else {
    EXPECT_EQ(f.status().code(), StatusCode::kCorruptData);
    EXPECT_NE(f.status().message().find(path), std::string::npos);
  }
}

TEST(H5File, RejectsShapeThatDoesNotMatchData) {
  auto f = File::create(test_dir() + "/shape.h5");
  ASSERT_TRUE(f.ok());
  const Status st = f->write_f32("x", std::vector<float>{1, 2, 3}, {2, 2});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'x'"), std::string::npos);
  EXPECT_FALSE(f->has("x"));
}

TEST(H5File, MoveTransfersOwnershipOfTheHandle) {
  const std::string path = test_dir() + "/move.h5";
  File b;
  {
    auto a = File::create(path);
    ASSERT_TRUE(a.ok());
    File moved(std::move(a.value()));
    EXPECT_FALSE(a->has("x"));     // the moved-from file holds no handle
    EXPECT_TRUE(a->close().ok());  // and closing it is a no-op
    ASSERT_TRUE(moved.write_f32("x", std::vector<float>{4}, {1}).ok());
    b = std::move(moved);
  }  // `moved` and `a` destroyed: must not close b's handle
  ASSERT_TRUE(b.write_f32("y", std::vector<float>{5}, {1}).ok());
  EXPECT_EQ(b.path(), path);
  File c = File::create(test_dir() + "/other.h5").value();
  c = std::move(b);  // closes c's own file, takes b's
  ASSERT_TRUE(c.close().ok());
  auto r = File::open_read(path);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->read_f32("y").value(), std::vector<float>{5});
}

TEST(H5WriteAtomically, ReplacesTheFileOnlyWhenFillSucceeds) {
  const std::string path = test_dir() + "/model.h5";
  ASSERT_TRUE(write_atomically(path, [](File& f) {
                return f.write_i32("v", std::vector<int32_t>{1}, {1});
              }).ok());
  const Status failed = write_atomically(path, [](File& f) -> Status {
    FEDSILO_CHECK(f.write_i32("v", std::vector<int32_t>{2}, {1}));
    return io_error("disk full (simulated)");
  });
  EXPECT_EQ(failed.code(), StatusCode::kIoError);
  EXPECT_FALSE(fsys::exists(path + ".tmp." + std::to_string(::getpid())));
  auto f = File::open_read(path);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->read_i32("v").value(), std::vector<int32_t>{1});
}

TEST(H5WriteAtomically, LeavesNothingWhenTheFirstWriteFails) {
  const std::string path = test_dir() + "/never.h5";
  const Status st = write_atomically(path, [](File&) { return invalid_argument("nope"); });
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(fsys::exists(path));
  EXPECT_TRUE(fsys::is_empty(fsys::path(path).parent_path()));
  const Status no_dir = write_atomically(path + "/sub/x.h5", [](File&) { return Status(); });
  EXPECT_EQ(no_dir.code(), StatusCode::kIoError);
}

TEST(H5File, LeavesNoHandlesOpenAfterSuccessAndFailure) {
  const std::string dir = test_dir();
  const int64_t before = open_handle_count();
  {
    auto f = File::create(dir + "/a.h5");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write_f32("g/x", std::vector<float>{1, 2}, {2}).ok());
    ASSERT_TRUE(f->write_strings("s", {"a"}).ok());
    ASSERT_TRUE(f->write_attr_str("g/x", "unit", "m").ok());
    EXPECT_GT(open_handle_count(), before);  // the file itself is open
  }
  {
    auto f = File::open_read(dir + "/a.h5");
    ASSERT_TRUE(f.ok());
    EXPECT_FALSE(f->read_i32("g/x").ok());        // wrong type
    EXPECT_FALSE(f->read_f32("g/missing").ok());  // missing
    EXPECT_FALSE(f->read_attr_i64("g/x", "unit").ok());
    EXPECT_TRUE(f->read_strings("s").ok());
    EXPECT_TRUE(f->read_attr_str("g/x", "unit").ok());
    EXPECT_EQ(f->list_datasets().size(), 2u);
  }
  EXPECT_FALSE(write_atomically(dir + "/b.h5", [](File& f) -> Status {
                 FEDSILO_CHECK(f.write_u8("u", std::vector<uint8_t>{1}, {1}));
                 return internal_error("stop");
               }).ok());
  EXPECT_EQ(open_handle_count(), before);
}

}  // namespace
}  // namespace fedsilo::h5
