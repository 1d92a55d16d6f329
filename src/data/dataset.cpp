// Silo data files (x, y and shape attributes in HDF5): validated reading, atomic writing, and
// small helpers on in-memory data sets.
#include "data/dataset.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <filesystem>
#include <utility>

#include "core/h5.h"

namespace fedsilo::data {
namespace {

std::string shape_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Labels in [0, num_classes), x finite, N >= 1, sizes consistent; errors carry `code`.
Status check_contents(const Dataset& ds, const std::string& what, StatusCode code) {
  if (ds.size() == 0) return {code, what + ": has no samples"};
  for (int i = 0; i < 3; ++i) {
    if (ds.chw[i] < 1) {
      return {code, what + ": shape {" + std::to_string(ds.chw[0]) + ", " +
                        std::to_string(ds.chw[1]) + ", " + std::to_string(ds.chw[2]) +
                        "} has a dimension below 1"};
    }
  }
  if (ds.num_classes < 1) {
    return {code, what + ": num_classes is " + std::to_string(ds.num_classes) + ", expected >= 1"};
  }
  const auto expected = static_cast<size_t>(ds.size() * ds.sample_size());
  if (ds.x.size() != expected) {
    return {code, what + ": x holds " + std::to_string(ds.x.size()) + " values, expected " +
                      std::to_string(expected) + " (" + std::to_string(ds.size()) + " samples of " +
                      std::to_string(ds.sample_size()) + ")"};
  }
  for (size_t i = 0; i < ds.y.size(); ++i) {
    if (ds.y[i] < 0 || ds.y[i] >= ds.num_classes) {
      return {code, what + ": label y[" + std::to_string(i) + "] = " + std::to_string(ds.y[i]) +
                        " is outside [0, " + std::to_string(ds.num_classes) + ")"};
    }
  }
  for (size_t i = 0; i < ds.x.size(); ++i) {
    if (!std::isfinite(ds.x[i])) {
      const auto ss = static_cast<size_t>(ds.sample_size());
      return {code, what + ": x holds a non-finite value (" + std::to_string(ds.x[i]) +
                        ") at sample " + std::to_string(i / ss) + ", element " +
                        std::to_string(i % ss)};
    }
  }
  return {};
}

// A missing attribute in a data file is a malformed file, not a missing file.
Result<int64_t> required_attr(const h5::File& f, const std::string& name) {
  if (!f.has_attr("", name)) {
    return corrupt_data(f.path() + ": missing root attribute '" + name + "'");
  }
  return f.read_attr_i64("", name);
}

Status check_present(const h5::File& f, const char* name) {
  if (!f.has(name)) return corrupt_data(f.path() + ": missing dataset '" + name + "'");
  return {};
}

// y is [N], with as many labels as x has samples, and N >= 1 (x's rank is checked by the caller).
Status check_labels_match(const std::string& path, const std::vector<int64_t>& xd,
                          const std::vector<int64_t>& yd) {
  if (yd.size() != 1) {
    return corrupt_data(path + ": dataset 'y' has rank " + std::to_string(yd.size()) + " (shape " +
                        shape_string(yd) + "), expected 1 ([N])");
  }
  if (xd[0] != yd[0]) {
    return corrupt_data(path + ": dataset 'x' has " + std::to_string(xd[0]) +
                        " samples but 'y' has " + std::to_string(yd[0]) + " labels");
  }
  if (xd[0] == 0) return corrupt_data(path + ": has no samples");
  return {};
}

}  // namespace

Status validate_dataset(const Dataset& ds, const std::string& what) {
  return check_contents(ds, what, StatusCode::kInvalidArgument);
}

Result<Dataset> read_dataset(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(h5::File f, h5::File::open_read(path));
  FEDSILO_CHECK(check_present(f, "x"));
  FEDSILO_CHECK(check_present(f, "y"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> xd, f.dims("x"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> yd, f.dims("y"));
  if (xd.size() != 4) {
    return corrupt_data(path + ": dataset 'x' has rank " + std::to_string(xd.size()) + " (shape " +
                        shape_string(xd) + "), expected 4 ([N, C, H, W])");
  }
  FEDSILO_CHECK(check_labels_match(path, xd, yd));

  Dataset ds;
  FEDSILO_ASSIGN_OR_RETURN(int64_t num_classes, required_attr(f, "num_classes"));
  if (num_classes < 1 || num_classes > INT_MAX) {
    return corrupt_data(path + ": attribute 'num_classes' is " + std::to_string(num_classes) +
                        ", expected >= 1");
  }
  ds.num_classes = static_cast<int>(num_classes);
  const char* kShapeAttrs[3] = {"channels", "height", "width"};
  for (int i = 0; i < 3; ++i) {
    FEDSILO_ASSIGN_OR_RETURN(int64_t v, required_attr(f, kShapeAttrs[i]));
    if (v != xd[i + 1]) {
      return corrupt_data(path + ": attribute '" + kShapeAttrs[i] + "' = " + std::to_string(v) +
                          " does not match dataset 'x' of shape " + shape_string(xd));
    }
    if (v < 1 || v > INT_MAX) {
      return corrupt_data(path + ": attribute '" + kShapeAttrs[i] + "' = " + std::to_string(v) +
                          " is not a valid dimension");
    }
    ds.chw[i] = static_cast<int>(v);
  }
  if (f.has_attr("", "name")) {
    FEDSILO_ASSIGN_OR_RETURN(ds.name, f.read_attr_str("", "name"));
  }
  if (f.has_attr("", "silo")) {
    FEDSILO_ASSIGN_OR_RETURN(ds.silo, f.read_attr_i64("", "silo"));
  }
  FEDSILO_ASSIGN_OR_RETURN(ds.y, f.read_i32("y"));
  FEDSILO_ASSIGN_OR_RETURN(ds.x, f.read_f32("x"));
  FEDSILO_CHECK(check_contents(ds, path, StatusCode::kCorruptData));
  return ds;
}

Status write_dataset(const std::string& path, const Dataset& ds) {
  FEDSILO_CHECK(validate_dataset(ds, path));
  const std::vector<int64_t> xdims{ds.size(), ds.chw[0], ds.chw[1], ds.chw[2]};
  return h5::write_atomically(path, [&](h5::File& f) -> Status {
    FEDSILO_CHECK(f.write_f32("x", ds.x, xdims));
    FEDSILO_CHECK(f.write_i32("y", ds.y, {ds.size()}));
    FEDSILO_CHECK(f.write_attr_i64("", "num_classes", ds.num_classes));
    FEDSILO_CHECK(f.write_attr_i64("", "channels", ds.chw[0]));
    FEDSILO_CHECK(f.write_attr_i64("", "height", ds.chw[1]));
    FEDSILO_CHECK(f.write_attr_i64("", "width", ds.chw[2]));
    FEDSILO_CHECK(f.write_attr_str("", "name", ds.name));
    FEDSILO_CHECK(f.write_attr_i64("", "silo", ds.silo));
    return {};
  });
}

Result<Dataset> read_xy_file(const std::string& path) {
  FEDSILO_ASSIGN_OR_RETURN(h5::File f, h5::File::open_read(path));
  FEDSILO_CHECK(check_present(f, "x"));
  FEDSILO_CHECK(check_present(f, "y"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> xd, f.dims("x"));
  FEDSILO_ASSIGN_OR_RETURN(std::vector<int64_t> yd, f.dims("y"));
  if (xd.size() < 2 || xd.size() > 4) {
    return corrupt_data(path + ": dataset 'x' has rank " + std::to_string(xd.size()) + " (shape " +
                        shape_string(xd) +
                        "), expected 2 ([N, F]), 3 ([N, H, W]) or 4 ([N, C, H, W])");
  }
  FEDSILO_CHECK(check_labels_match(path, xd, yd));
  for (size_t i = 1; i < xd.size(); ++i) {
    if (xd[i] < 1 || xd[i] > INT_MAX) {
      return corrupt_data(path + ": dataset 'x' of shape " + shape_string(xd) +
                          " has an empty or oversized dimension");
    }
  }
  Dataset ds;
  // Missing leading dimensions are 1: [N, F] -> {1, 1, F}, [N, H, W] -> {1, H, W}.
  const size_t lead = 4 - xd.size();
  for (size_t i = 0; i < 3; ++i) ds.chw[i] = i < lead ? 1 : static_cast<int>(xd[i + 1 - lead]);
  FEDSILO_ASSIGN_OR_RETURN(ds.y, f.read_i32("y"));
  FEDSILO_ASSIGN_OR_RETURN(ds.x, f.read_f32("x"));
  if (f.has_attr("", "num_classes")) {
    FEDSILO_ASSIGN_OR_RETURN(int64_t nc, f.read_attr_i64("", "num_classes"));
    if (nc < 1 || nc > INT_MAX) {
      return corrupt_data(path + ": attribute 'num_classes' is " + std::to_string(nc) +
                          ", expected >= 1");
    }
    ds.num_classes = static_cast<int>(nc);
  } else {
    int32_t max_label = -1;
    for (size_t i = 0; i < ds.y.size(); ++i) {
      if (ds.y[i] < 0) {
        return corrupt_data(path + ": label y[" + std::to_string(i) +
                            "] = " + std::to_string(ds.y[i]) + " is negative");
      }
      max_label = std::max(max_label, ds.y[i]);
    }
    ds.num_classes = max_label + 1;
  }
  if (f.has_attr("", "name")) {
    FEDSILO_ASSIGN_OR_RETURN(ds.name, f.read_attr_str("", "name"));
  } else {
    ds.name = std::filesystem::path(path).stem().string();
  }
  FEDSILO_CHECK(check_contents(ds, path, StatusCode::kCorruptData));
  return ds;
}

Dataset select(const Dataset& src, std::span<const int64_t> idx) {
  Dataset out;
  out.chw = src.chw;
  out.num_classes = src.num_classes;
  out.name = src.name;
  const int64_t ss = src.sample_size();
  out.x.resize(idx.size() * static_cast<size_t>(ss));
  out.y.resize(idx.size());
  for (size_t i = 0; i < idx.size(); ++i) {
    const float* from = src.sample(idx[i]);
    std::copy(from, from + ss, out.x.begin() + static_cast<std::ptrdiff_t>(i * ss));
    out.y[i] = src.y[static_cast<size_t>(idx[i])];
  }
  return out;
}

std::vector<int64_t> class_counts(std::span<const int32_t> y, int num_classes) {
  std::vector<int64_t> counts(static_cast<size_t>(std::max(num_classes, 0)), 0);
  for (int32_t label : y) {
    if (label >= 0 && label < num_classes) ++counts[static_cast<size_t>(label)];
  }
  return counts;
}

}  // namespace fedsilo::data
