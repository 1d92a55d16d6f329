// In-memory labelled data set (one silo's train or test split) and its HDF5 file format.
//
// File format (docs/architecture.md): datasets `x` float32 [N, C, H, W] (NCHW, values in [0,1]
// for images) and `y` int32 [N]; root attributes `num_classes` (int64), `channels`, `height`,
// `width` (int64), `name` (string, e.g. "fashion-mnist"), `silo` (int64, -1 for the global test
// split).
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace fedsilo::data {

struct Dataset {
  std::vector<float> x;         // N * C * H * W, sample-major
  std::vector<int32_t> y;       // N labels in [0, num_classes)
  std::array<int, 3> chw{1, 1, 1};
  int num_classes = 0;
  std::string name;
  int64_t silo = -1;

  [[nodiscard]] int64_t size() const { return static_cast<int64_t>(y.size()); }
  [[nodiscard]] int64_t sample_size() const { return int64_t{chw[0]} * chw[1] * chw[2]; }
  [[nodiscard]] const float* sample(int64_t i) const { return x.data() + i * sample_size(); }
};

/// Reads a silo/test file; validates everything a later step relies on and names the file and
/// the dataset in every error: presence and dtype of x and y, matching N, shape attributes equal
/// to x's dims, labels in [0, num_classes), N >= 1, finite x.
[[nodiscard]] Result<Dataset> read_dataset(const std::string& path);
/// Writes atomically (temporary name, fsync, rename).
[[nodiscard]] Status write_dataset(const std::string& path, const Dataset& ds);

/// Fashion-MNIST (or MNIST) from IDX gzip files: train-images-idx3-ubyte.gz etc. in `dir`.
/// Pixels scaled to [0,1]; errors name the file (missing, truncated, bad magic, size mismatch).
[[nodiscard]] Result<Dataset> read_idx_pair(const std::string& images_gz,
                                            const std::string& labels_gz);

/// Reads a consortium's own data: `x` float32 [N, ...] and `y` int32 [N], other attributes
/// optional. x of rank 2 [N, F] gives chw {1, 1, F}, rank 3 [N, H, W] gives {1, H, W}, rank 4 is
/// NCHW. num_classes is the `num_classes` attribute when present, else max(y) + 1; `name` the
/// `name` attribute, else the file's stem. Validates like read_dataset (N >= 1, labels >= 0 and
/// below num_classes, finite x) and names the file in every error.
[[nodiscard]] Result<Dataset> read_xy_file(const std::string& path);

/// Checks an in-memory data set: x.size() == N * C * H * W, chw >= 1, labels in
/// [0, num_classes), finite x, N >= 1. `what` names it in errors (a path or "training data").
[[nodiscard]] Status validate_dataset(const Dataset& ds, const std::string& what);

/// The samples `idx` of `src`, in that order (same chw, num_classes, name; silo = -1).
[[nodiscard]] Dataset select(const Dataset& src, std::span<const int64_t> idx);

/// How many labels of each class 0..num_classes-1 `y` holds (labels outside are ignored).
[[nodiscard]] std::vector<int64_t> class_counts(std::span<const int32_t> y, int num_classes);

}  // namespace fedsilo::data
