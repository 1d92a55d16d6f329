// The RAII layer over the serial HDF5 C API declared in core/h5.h: handle ownership, exact type
// checks, and errors turned into Status values that name the file and the object.
#include "core/h5.h"

#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <type_traits>
#include <utility>

#include "core/fs.h"

namespace fedsilo::h5 {
namespace {

// HDF5 prints its error stack to stderr by default; we report through Status instead.
void silence_hdf5_errors() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

// Owns one HDF5 identifier and closes it with `Close` (H5Dclose, H5Sclose, ...).
template <herr_t (*Close)(hid_t)>
class Id {
 public:
  Id() = default;
  explicit Id(hid_t id) : id_(id) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;

  [[nodiscard]] bool valid() const { return id_ >= 0; }
  [[nodiscard]] hid_t get() const { return id_; }
  /// Gives up ownership: the caller closes the id.
  [[nodiscard]] hid_t release() { return std::exchange(id_, H5I_INVALID_HID); }
  void reset() {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using DatasetId = Id<H5Dclose>;
using SpaceId = Id<H5Sclose>;
using TypeId = Id<H5Tclose>;
using AttrId = Id<H5Aclose>;
using ObjectId = Id<H5Oclose>;
using PlistId = Id<H5Pclose>;

// The innermost message of HDF5's current error stack (the root cause), then clears the stack.
herr_t innermost_cb(unsigned /*n*/, const H5E_error2_t* err, void* data) {
  auto* out = static_cast<std::string*>(data);
  if (out->empty() && err != nullptr && err->desc != nullptr && err->desc[0] != '\0') {
    *out = err->desc;
  }
  return 0;
}

std::string hdf5_detail() {
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail.empty() ? std::string() : " (" + detail + ")";
}

// What a typed read or write expects the stored type to be: class, size and sign exactly.
struct TypeSpec {
  H5T_class_t cls;
  size_t size;
  H5T_sign_t sign;  // H5T_SGN_ERROR for floats (not checked)
  const char* name;
};

template <typename T>
constexpr TypeSpec type_spec();
template <>
constexpr TypeSpec type_spec<float>() {
  return {H5T_FLOAT, 4, H5T_SGN_ERROR, "float32"};
}
template <>
constexpr TypeSpec type_spec<double>() {
  return {H5T_FLOAT, 8, H5T_SGN_ERROR, "float64"};
}
template <>
constexpr TypeSpec type_spec<int32_t>() {
  return {H5T_INTEGER, 4, H5T_SGN_2, "int32"};
}
template <>
constexpr TypeSpec type_spec<int64_t>() {
  return {H5T_INTEGER, 8, H5T_SGN_2, "int64"};
}
template <>
constexpr TypeSpec type_spec<uint8_t>() {
  return {H5T_INTEGER, 1, H5T_SGN_NONE, "uint8"};
}

// The native in-memory type for T (HDF5 converts byte order on read and write).
template <typename T>
hid_t native_type() {
  if constexpr (std::is_same_v<T, float>) return H5T_NATIVE_FLOAT;
  if constexpr (std::is_same_v<T, double>) return H5T_NATIVE_DOUBLE;
  if constexpr (std::is_same_v<T, int32_t>) return H5T_NATIVE_INT32;
  if constexpr (std::is_same_v<T, int64_t>) return H5T_NATIVE_INT64;
  if constexpr (std::is_same_v<T, uint8_t>) return H5T_NATIVE_UINT8;
}

// "float32", "int64", "uint8", "string", ... for error messages.
std::string describe_type(hid_t type) {
  const H5T_class_t cls = H5Tget_class(type);
  const size_t bits = H5Tget_size(type) * 8;
  switch (cls) {
    case H5T_INTEGER:
      return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT:
      return "float" + std::to_string(bits);
    case H5T_STRING:
      return "string";
    case H5T_COMPOUND:
      return "compound";
    case H5T_ENUM:
      return "enum";
    case H5T_ARRAY:
      return "array";
    case H5T_VLEN:
      return "vlen";
    case H5T_BITFIELD:
      return "bitfield";
    case H5T_OPAQUE:
      return "opaque";
    case H5T_REFERENCE:
      return "reference";
    default:
      return "unknown type";
  }
}

bool type_matches(hid_t type, const TypeSpec& spec) {
  if (H5Tget_class(type) != spec.cls || H5Tget_size(type) != spec.size) return false;
  return spec.cls != H5T_INTEGER || H5Tget_sign(type) == spec.sign;
}

// Dimensions of a dataspace; a scalar space has none.
Result<std::vector<int64_t>> space_dims(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) return corrupt_data("unreadable dataspace" + hdf5_detail());
  std::vector<hsize_t> d(static_cast<size_t>(rank));
  if (rank > 0 && H5Sget_simple_extent_dims(space, d.data(), nullptr) < 0) {
    return corrupt_data("unreadable dataspace" + hdf5_detail());
  }
  return std::vector<int64_t>(d.begin(), d.end());
}

int64_t element_count(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string quoted(const std::string& name) {
  return "'" + name + "'";
}

std::string object_label(const std::string& object) {
  return object.empty() ? std::string("the root group") : "object " + quoted(object);
}

// A variable-length UTF-8 string type, the one h5py writes for str.
TypeId vlen_string_type() {
  TypeId t(H5Tcopy(H5T_C_S1));
  H5Tset_size(t.get(), H5T_VARIABLE);
  H5Tset_cset(t.get(), H5T_CSET_UTF8);
  return t;
}

// Creates intermediate groups for "a/b/c" dataset names.
PlistId link_create_plist() {
  PlistId lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

Result<SpaceId> make_space(const std::vector<int64_t>& dims, size_t count,
                           const std::string& where) {
  for (int64_t d : dims) {
    if (d < 0) return invalid_argument(where + ": negative dimension " + std::to_string(d));
  }
  if (element_count(dims) != static_cast<int64_t>(count)) {
    return invalid_argument(where + ": shape holds " + std::to_string(element_count(dims)) +
                            " elements but " + std::to_string(count) + " were given");
  }
  if (dims.empty()) return SpaceId(H5Screate(H5S_SCALAR));
  const std::vector<hsize_t> d(dims.begin(), dims.end());
  return SpaceId(H5Screate_simple(static_cast<int>(d.size()), d.data(), nullptr));
}

// Reads strings stored with a variable- or fixed-length string type, through `read`, which
// fills a buffer in the given memory type.
template <typename ReadFn>
Result<std::vector<std::string>> read_string_payload(hid_t file_type, hid_t space, size_t count,
                                                     const std::string& where, ReadFn read) {
  std::vector<std::string> out;
  out.reserve(count);
  if (H5Tis_variable_str(file_type) > 0) {
    TypeId mem = vlen_string_type();
    std::vector<char*> ptrs(count, nullptr);
    if (count > 0 && read(mem.get(), ptrs.data()) < 0) {
      return corrupt_data(where + ": cannot read strings" + hdf5_detail());
    }
    for (char* p : ptrs) out.emplace_back(p != nullptr ? p : "");
    if (count > 0) {
      if (space >= 0) {
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mem.get(), space, H5P_DEFAULT, ptrs.data());
#else
        H5Dvlen_reclaim(mem.get(), space, H5P_DEFAULT, ptrs.data());
#endif
      } else {
        for (char* p : ptrs) H5free_memory(p);
      }
    }
    return out;
  }
  const size_t len = H5Tget_size(file_type);
  TypeId mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem.get(), len);
  std::vector<char> buf(count * len + 1, '\0');
  if (count > 0 && read(mem.get(), buf.data()) < 0) {
    return corrupt_data(where + ": cannot read strings" + hdf5_detail());
  }
  for (size_t i = 0; i < count; ++i) {
    const char* s = buf.data() + i * len;
    out.emplace_back(s, strnlen(s, len));
  }
  return out;
}

}  // namespace

// ------------------------------------------------------------------------------- lifetime

File::~File() {
  (void)close();
}

File::File(File&& other) noexcept
    : id_(std::exchange(other.id_, -1)), path_(std::move(other.path_)) {}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    (void)close();
    id_ = std::exchange(other.id_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

Status File::close() {
  if (id_ < 0) return {};
  const hid_t id = std::exchange(id_, -1);
  if (H5Fclose(id) < 0) return io_error(path_ + ": cannot close HDF5 file" + hdf5_detail());
  return {};
}

Result<File> File::open_read(const std::string& path) {
  silence_hdf5_errors();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(path + ": no such file");
  if (std::filesystem::is_directory(path, ec)) {
    return invalid_argument(path + ": is a directory, not an HDF5 file");
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return io_error(path + ": cannot read: " + std::strerror(errno));
  }
#if H5_VERSION_GE(1, 12, 0)
  const htri_t is_h5 = H5Fis_accessible(path.c_str(), H5P_DEFAULT);
#else
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
#endif
  if (is_h5 <= 0) {
    (void)hdf5_detail();
    return corrupt_data(path + ": not an HDF5 file");
  }
  // STRONG: closing the file also closes anything still open in it.
  PlistId fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  const hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) {
    return corrupt_data(path + ": cannot open HDF5 file (truncated or corrupt)" + hdf5_detail());
  }
  File f;
  f.id_ = id;
  f.path_ = path;
  return f;
}

Result<File> File::create(const std::string& path) {
  silence_hdf5_errors();
  PlistId fapl(H5Pcreate(H5P_FILE_ACCESS));
  H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get());
  if (id < 0) return io_error(path + ": cannot create HDF5 file" + hdf5_detail());
  File f;
  f.id_ = id;
  f.path_ = path;
  return f;
}

// ------------------------------------------------------------------------------- queries

bool File::has(const std::string& name) const {
  if (id_ < 0 || name.empty()) return false;
  // H5Lexists fails on "a/b" when "a" is missing, so walk the path one component at a time.
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = name.find('/', pos + 1);
    const std::string prefix = name.substr(0, pos);
    if (prefix.empty() || prefix == "/") continue;
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
  }
  const htri_t exists = H5Oexists_by_name(id_, name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return exists > 0;
}

namespace {

// Opens dataset `name` of `file` (kNotFound naming it if absent).
Result<DatasetId> open_dataset(const File& file, hid_t fid, const std::string& name) {
  if (fid < 0) return failed_precondition("HDF5 file is not open");
  if (!file.has(name)) return not_found(file.path() + ": no dataset " + quoted(name));
  DatasetId d(H5Dopen2(fid, name.c_str(), H5P_DEFAULT));
  if (!d.valid()) {
    return corrupt_data(file.path() + ": " + quoted(name) + " is not a readable dataset" +
                        hdf5_detail());
  }
  return d;
}

}  // namespace

Result<std::vector<int64_t>> File::dims(const std::string& name) const {
  FEDSILO_ASSIGN_OR_RETURN(DatasetId d, open_dataset(*this, id_, name));
  SpaceId space(H5Dget_space(d.get()));
  auto dims = space_dims(space.get());
  if (!dims.ok()) {
    return corrupt_data(path_ + ": dataset " + quoted(name) + ": " + dims.status().message());
  }
  return dims;
}

namespace {

template <typename T>
Result<std::vector<T>> read_numeric(const File& file, hid_t fid, const std::string& name,
                                    std::vector<int64_t>* dims_out) {
  FEDSILO_ASSIGN_OR_RETURN(DatasetId d, open_dataset(file, fid, name));
  const std::string where = file.path() + ": dataset " + quoted(name);
  constexpr TypeSpec spec = type_spec<T>();
  TypeId type(H5Dget_type(d.get()));
  if (!type.valid()) return corrupt_data(where + ": unreadable type" + hdf5_detail());
  if (!type_matches(type.get(), spec)) {
    return corrupt_data(where + " has type " + describe_type(type.get()) + ", expected " +
                        spec.name);
  }
  SpaceId space(H5Dget_space(d.get()));
  auto dims = space_dims(space.get());
  if (!dims.ok()) return corrupt_data(where + ": " + dims.status().message());
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) dims.value() = {0};
  const int64_t n = element_count(dims.value());
  std::vector<T> out(static_cast<size_t>(n));
  if (n > 0 && H5Dread(d.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    return corrupt_data(where + ": cannot read data" + hdf5_detail());
  }
  if (dims_out != nullptr) *dims_out = std::move(dims).value();
  return out;
}

}  // namespace

Result<std::vector<float>> File::read_f32(const std::string& name,
                                          std::vector<int64_t>* dims_out) const {
  return read_numeric<float>(*this, id_, name, dims_out);
}
Result<std::vector<double>> File::read_f64(const std::string& name,
                                           std::vector<int64_t>* dims_out) const {
  return read_numeric<double>(*this, id_, name, dims_out);
}
Result<std::vector<int32_t>> File::read_i32(const std::string& name,
                                            std::vector<int64_t>* dims_out) const {
  return read_numeric<int32_t>(*this, id_, name, dims_out);
}
Result<std::vector<int64_t>> File::read_i64(const std::string& name,
                                            std::vector<int64_t>* dims_out) const {
  return read_numeric<int64_t>(*this, id_, name, dims_out);
}
Result<std::vector<uint8_t>> File::read_u8(const std::string& name,
                                           std::vector<int64_t>* dims_out) const {
  return read_numeric<uint8_t>(*this, id_, name, dims_out);
}

Result<std::vector<std::string>> File::read_strings(const std::string& name) const {
  FEDSILO_ASSIGN_OR_RETURN(DatasetId d, open_dataset(*this, id_, name));
  const std::string where = path_ + ": dataset " + quoted(name);
  TypeId type(H5Dget_type(d.get()));
  if (!type.valid()) return corrupt_data(where + ": unreadable type" + hdf5_detail());
  if (H5Tget_class(type.get()) != H5T_STRING) {
    return corrupt_data(where + " has type " + describe_type(type.get()) + ", expected string");
  }
  SpaceId space(H5Dget_space(d.get()));
  auto dims = space_dims(space.get());
  if (!dims.ok()) return corrupt_data(where + ": " + dims.status().message());
  const auto count = static_cast<size_t>(element_count(dims.value()));
  const hid_t did = d.get();
  return read_string_payload(type.get(), space.get(), count, where, [did](hid_t mem, void* buf) {
    return H5Dread(did, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  });
}

// ------------------------------------------------------------------------------- writes

namespace {

template <typename T>
Status write_numeric(const std::string& path, hid_t fid, const std::string& name,
                     std::span<const T> data, const std::vector<int64_t>& dims) {
  if (fid < 0) return failed_precondition("HDF5 file is not open");
  const std::string where = path + ": dataset " + quoted(name);
  FEDSILO_ASSIGN_OR_RETURN(SpaceId space, make_space(dims, data.size(), where));
  PlistId lcpl = link_create_plist();
  DatasetId d(H5Dcreate2(fid, name.c_str(), native_type<T>(), space.get(), lcpl.get(), H5P_DEFAULT,
                         H5P_DEFAULT));
  if (!d.valid()) return io_error(where + ": cannot create" + hdf5_detail());
  if (!data.empty() &&
      H5Dwrite(d.get(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0) {
    return io_error(where + ": cannot write" + hdf5_detail());
  }
  // Close here rather than in the destructor so that a failed flush is reported.
  if (H5Dclose(d.release()) < 0) return io_error(where + ": cannot close" + hdf5_detail());
  return {};
}

}  // namespace

Status File::write_f32(const std::string& name, std::span<const float> data,
                       const std::vector<int64_t>& dims) {
  return write_numeric<float>(path_, id_, name, data, dims);
}
Status File::write_f64(const std::string& name, std::span<const double> data,
                       const std::vector<int64_t>& dims) {
  return write_numeric<double>(path_, id_, name, data, dims);
}
Status File::write_i32(const std::string& name, std::span<const int32_t> data,
                       const std::vector<int64_t>& dims) {
  return write_numeric<int32_t>(path_, id_, name, data, dims);
}
Status File::write_i64(const std::string& name, std::span<const int64_t> data,
                       const std::vector<int64_t>& dims) {
  return write_numeric<int64_t>(path_, id_, name, data, dims);
}
Status File::write_u8(const std::string& name, std::span<const uint8_t> data,
                      const std::vector<int64_t>& dims) {
  return write_numeric<uint8_t>(path_, id_, name, data, dims);
}

Status File::write_strings(const std::string& name, const std::vector<std::string>& s) {
  if (id_ < 0) return failed_precondition("HDF5 file is not open");
  const std::string where = path_ + ": dataset " + quoted(name);
  std::vector<const char*> ptrs;
  ptrs.reserve(s.size());
  for (const std::string& str : s) ptrs.push_back(str.c_str());
  FEDSILO_ASSIGN_OR_RETURN(SpaceId space,
                           make_space({static_cast<int64_t>(s.size())}, s.size(), where));
  TypeId type = vlen_string_type();
  PlistId lcpl = link_create_plist();
  DatasetId d(
      H5Dcreate2(id_, name.c_str(), type.get(), space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!d.valid()) return io_error(where + ": cannot create" + hdf5_detail());
  if (!ptrs.empty() &&
      H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0) {
    return io_error(where + ": cannot write" + hdf5_detail());
  }
  return {};
}

// ------------------------------------------------------------------------------- attributes

namespace {

// Opens `object` ("" = root group) of the file.
Result<ObjectId> open_object(const File& file, hid_t fid, const std::string& object) {
  if (fid < 0) return failed_precondition("HDF5 file is not open");
  if (!object.empty() && !file.has(object)) {
    return not_found(file.path() + ": no object " + quoted(object));
  }
  ObjectId o(H5Oopen(fid, object.empty() ? "/" : object.c_str(), H5P_DEFAULT));
  if (!o.valid()) {
    return corrupt_data(file.path() + ": cannot open " + object_label(object) + hdf5_detail());
  }
  return o;
}

// Creates attribute `name` on `obj`, replacing an existing one.
Status write_attr(const File& file, hid_t fid, const std::string& object, const std::string& name,
                  hid_t type, const void* value) {
  FEDSILO_ASSIGN_OR_RETURN(ObjectId obj, open_object(file, fid, object));
  const std::string where =
      file.path() + ": attribute " + quoted(name) + " of " + object_label(object);
  const htri_t exists = H5Aexists(obj.get(), name.c_str());
  if (exists > 0 && H5Adelete(obj.get(), name.c_str()) < 0) {
    return io_error(where + ": cannot replace" + hdf5_detail());
  }
  SpaceId space(H5Screate(H5S_SCALAR));
  AttrId attr(H5Acreate2(obj.get(), name.c_str(), type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr.valid()) return io_error(where + ": cannot create" + hdf5_detail());
  if (H5Awrite(attr.get(), type, value) < 0) {
    return io_error(where + ": cannot write" + hdf5_detail());
  }
  return {};
}

// Opens attribute `name` of `object` and checks that it holds exactly one value.
Result<AttrId> open_scalar_attr(const File& file, hid_t fid, const std::string& object,
                                const std::string& name, TypeId* type_out) {
  FEDSILO_ASSIGN_OR_RETURN(ObjectId obj, open_object(file, fid, object));
  const std::string where =
      file.path() + ": attribute " + quoted(name) + " of " + object_label(object);
  if (H5Aexists(obj.get(), name.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    return not_found(file.path() + ": no attribute " + quoted(name) + " on " +
                     object_label(object));
  }
  AttrId attr(H5Aopen(obj.get(), name.c_str(), H5P_DEFAULT));
  if (!attr.valid()) return corrupt_data(where + ": cannot open" + hdf5_detail());
  SpaceId space(H5Aget_space(attr.get()));
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  if (n != 1) {
    return corrupt_data(where + " holds " + std::to_string(n) + " values, expected one");
  }
  *type_out = TypeId(H5Aget_type(attr.get()));
  if (!type_out->valid()) return corrupt_data(where + ": unreadable type" + hdf5_detail());
  return attr;
}

template <typename T>
Result<T> read_attr_numeric(const File& file, hid_t fid, const std::string& object,
                            const std::string& name) {
  TypeId type;
  FEDSILO_ASSIGN_OR_RETURN(AttrId attr, open_scalar_attr(file, fid, object, name, &type));
  const std::string where =
      file.path() + ": attribute " + quoted(name) + " of " + object_label(object);
  constexpr TypeSpec spec = type_spec<T>();
  if (!type_matches(type.get(), spec)) {
    return corrupt_data(where + " has type " + describe_type(type.get()) + ", expected " +
                        spec.name);
  }
  T v{};
  if (H5Aread(attr.get(), native_type<T>(), &v) < 0) {
    return corrupt_data(where + ": cannot read" + hdf5_detail());
  }
  return v;
}

}  // namespace

Status File::write_attr_i64(const std::string& object, const std::string& name, int64_t v) {
  return write_attr(*this, id_, object, name, H5T_NATIVE_INT64, &v);
}
Status File::write_attr_f64(const std::string& object, const std::string& name, double v) {
  return write_attr(*this, id_, object, name, H5T_NATIVE_DOUBLE, &v);
}
Status File::write_attr_str(const std::string& object, const std::string& name,
                            const std::string& v) {
  TypeId type = vlen_string_type();
  const char* p = v.c_str();
  return write_attr(*this, id_, object, name, type.get(), &p);
}

Result<int64_t> File::read_attr_i64(const std::string& object, const std::string& name) const {
  return read_attr_numeric<int64_t>(*this, id_, object, name);
}
Result<double> File::read_attr_f64(const std::string& object, const std::string& name) const {
  return read_attr_numeric<double>(*this, id_, object, name);
}

Result<std::string> File::read_attr_str(const std::string& object, const std::string& name) const {
  TypeId type;
  FEDSILO_ASSIGN_OR_RETURN(AttrId attr, open_scalar_attr(*this, id_, object, name, &type));
  const std::string where = path_ + ": attribute " + quoted(name) + " of " + object_label(object);
  if (H5Tget_class(type.get()) != H5T_STRING) {
    return corrupt_data(where + " has type " + describe_type(type.get()) + ", expected string");
  }
  const hid_t aid = attr.get();
  FEDSILO_ASSIGN_OR_RETURN(
      std::vector<std::string> v,
      read_string_payload(type.get(), -1, 1, where,
                          [aid](hid_t mem, void* buf) { return H5Aread(aid, mem, buf); }));
  return v.front();
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  if (id_ < 0) return false;
  if (!object.empty() && !has(object)) return false;
  const htri_t e =
      H5Aexists_by_name(id_, object.empty() ? "/" : object.c_str(), name.c_str(), H5P_DEFAULT);
  H5Eclear2(H5E_DEFAULT);
  return e > 0;
}

// ------------------------------------------------------------------------------- listings

namespace {

herr_t visit_link(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  if (info->type != H5L_TYPE_HARD) return 0;
  ObjectId obj(H5Oopen(group, name, H5P_DEFAULT));
  if (obj.valid() && H5Iget_type(obj.get()) == H5I_DATASET) {
    static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  }
  return 0;
}

herr_t visit_attr(hid_t /*loc*/, const char* name, const H5A_info_t* /*info*/, void* data) {
  static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

}  // namespace

std::vector<std::string> File::list_datasets() const {
  std::vector<std::string> out;
  if (id_ < 0) return out;
  H5Lvisit(id_, H5_INDEX_NAME, H5_ITER_INC, visit_link, &out);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

std::vector<std::string> File::list_root_attrs() const {
  std::vector<std::string> out;
  if (id_ < 0) return out;
  hsize_t idx = 0;
  H5Aiterate2(id_, H5_INDEX_NAME, H5_ITER_INC, &idx, visit_attr, &out);
  H5Eclear2(H5E_DEFAULT);
  return out;
}

// ------------------------------------------------------------------------------- atomic writes

int64_t open_handle_count() {
  silence_hdf5_errors();
  return H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
}

Status write_atomically(const std::string& path, const std::function<Status(File&)>& fill) {
  const std::string tmp = fs::temp_name(path);
  Status st;
  {
    auto file = File::create(tmp);
    if (!file.ok()) {
      std::remove(tmp.c_str());
      return io_error("cannot write " + path + ": " + file.status().message());
    }
    st = fill(file.value());
    const Status closed = file->close();
    if (st.ok()) st = closed;
  }
  if (st.ok()) st = fs::commit_file(tmp, path);
  if (!st.ok()) std::remove(tmp.c_str());
  return st;
}

}  // namespace fedsilo::h5
