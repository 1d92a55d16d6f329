// A small RAII layer over the serial HDF5 C API: the only file that talks to HDF5 directly.
// All errors come back as Status naming the file and the dataset; HDF5's own error printing is
// switched off.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace fedsilo::h5 {

/// An open HDF5 file. Dataset and attribute names are paths inside the file ("x", "layers/name").
/// Attributes given with an empty `object` live on the root group.
class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  /// Opens an existing file read-only; kNotFound if absent, kCorruptData if not HDF5.
  static Result<File> open_read(const std::string& path);
  /// Creates (truncates) a file for writing.
  static Result<File> create(const std::string& path);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] bool has(const std::string& name) const;

  /// Dimensions of a dataset (kNotFound if absent).
  [[nodiscard]] Result<std::vector<int64_t>> dims(const std::string& name) const;
  /// Reads a whole dataset, checking the stored type is exactly the requested one
  /// (kCorruptData naming the dataset otherwise). `dims_out` receives its shape if non-null.
  [[nodiscard]] Result<std::vector<float>> read_f32(const std::string& name,
                                                    std::vector<int64_t>* dims_out = nullptr) const;
  [[nodiscard]] Result<std::vector<double>> read_f64(const std::string& name,
                                                     std::vector<int64_t>* dims_out = nullptr) const;
  [[nodiscard]] Result<std::vector<int32_t>> read_i32(const std::string& name,
                                                      std::vector<int64_t>* dims_out = nullptr) const;
  [[nodiscard]] Result<std::vector<int64_t>> read_i64(const std::string& name,
                                                      std::vector<int64_t>* dims_out = nullptr) const;
  [[nodiscard]] Result<std::vector<uint8_t>> read_u8(const std::string& name,
                                                     std::vector<int64_t>* dims_out = nullptr) const;
  /// A variable-length string array (e.g. layer names).
  [[nodiscard]] Result<std::vector<std::string>> read_strings(const std::string& name) const;

  /// Writes a dataset with the given shape (product of dims == data.size()); creates
  /// intermediate groups.
  [[nodiscard]] Status write_f32(const std::string& name, std::span<const float> data,
                                 const std::vector<int64_t>& dims);
  [[nodiscard]] Status write_f64(const std::string& name, std::span<const double> data,
                                 const std::vector<int64_t>& dims);
  [[nodiscard]] Status write_i32(const std::string& name, std::span<const int32_t> data,
                                 const std::vector<int64_t>& dims);
  [[nodiscard]] Status write_i64(const std::string& name, std::span<const int64_t> data,
                                 const std::vector<int64_t>& dims);
  [[nodiscard]] Status write_u8(const std::string& name, std::span<const uint8_t> data,
                                const std::vector<int64_t>& dims);
  [[nodiscard]] Status write_strings(const std::string& name, const std::vector<std::string>& s);

  /// Scalar attributes on `object` (a dataset or group path; "" = root group).
  [[nodiscard]] Status write_attr_i64(const std::string& object, const std::string& name,
                                      int64_t v);
  [[nodiscard]] Status write_attr_f64(const std::string& object, const std::string& name,
                                      double v);
  [[nodiscard]] Status write_attr_str(const std::string& object, const std::string& name,
                                      const std::string& v);
  [[nodiscard]] Result<int64_t> read_attr_i64(const std::string& object,
                                              const std::string& name) const;
  [[nodiscard]] Result<double> read_attr_f64(const std::string& object,
                                             const std::string& name) const;
  [[nodiscard]] Result<std::string> read_attr_str(const std::string& object,
                                                  const std::string& name) const;
  [[nodiscard]] bool has_attr(const std::string& object, const std::string& name) const;
  /// Names of the root group's attributes and of all datasets (recursively), for `inspect`.
  [[nodiscard]] std::vector<std::string> list_datasets() const;
  [[nodiscard]] std::vector<std::string> list_root_attrs() const;

  /// Flushes and closes; reports errors that a destructor could not.
  [[nodiscard]] Status close();

 private:
  int64_t id_ = -1;  // hid_t
  std::string path_;
};

/// How many HDF5 identifiers (files, datasets, attributes, ...) are open in this process; a
/// test can check that a sequence of calls, failing ones included, leaves none behind.
[[nodiscard]] int64_t open_handle_count();

/// Writes `path` atomically: `fill` writes into a temporary file beside it, which is closed,
/// fsynced and renamed over `path` only if `fill` succeeded; otherwise it is removed.
[[nodiscard]] Status write_atomically(const std::string& path,
                                      const std::function<Status(File&)>& fill);

}  // namespace fedsilo::h5
