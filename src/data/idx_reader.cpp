// Reads MNIST-style IDX files (gzip-compressed, as Debian's dataset-fashion-mnist ships them)
// into a Dataset: big-endian headers, uint8 pixels scaled to [0, 1], uint8 labels.
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "data/dataset.h"

namespace fedsilo::data {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // uint8 data, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // uint8 data, 1 dimension
constexpr int kIdxClasses = 10;
constexpr size_t kChunk = size_t{1} << 20;  // gzread takes an unsigned int length

// Owns a gzFile.
class GzFile {
 public:
  explicit GzFile(gzFile f) : f_(f) {}
  ~GzFile() {
    if (f_ != nullptr) gzclose(f_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;
  [[nodiscard]] gzFile get() const { return f_; }

 private:
  gzFile f_;
};

// Reads up to `n` bytes (fewer at the end of the data) and appends them to `out`.
Status read_bytes(gzFile f, const std::string& path, size_t n, std::vector<uint8_t>* out) {
  // Grow as data arrives rather than trusting a header that may promise gigabytes.
  while (n > 0) {
    const size_t want = std::min(n, kChunk);
    const size_t old = out->size();
    out->resize(old + want);
    const int got = gzread(f, out->data() + old, static_cast<unsigned>(want));
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f, &errnum);
      out->resize(old);
      return corrupt_data(path + ": cannot decompress: " + (msg != nullptr ? msg : "zlib error"));
    }
    out->resize(old + static_cast<size_t>(got));
    if (static_cast<size_t>(got) < want) return {};  // end of data (or a truncated stream)
    n -= want;
  }
  return {};
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08X", v);
  return buf;
}

struct IdxArray {
  std::vector<uint32_t> dims;
  std::vector<uint8_t> data;
};

// Reads one IDX file with the given magic and rank; checks that the data is complete.
Result<IdxArray> read_idx(const std::string& path, uint32_t magic, size_t rank) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return not_found(path + ": no such file");
  GzFile f(gzopen(path.c_str(), "rb"));
  if (f.get() == nullptr) return io_error(path + ": cannot open: " + std::strerror(errno));

  const size_t header = 4 + 4 * rank;
  std::vector<uint8_t> head;
  FEDSILO_CHECK(read_bytes(f.get(), path, header, &head));
  if (head.size() < 4) {
    return corrupt_data(path + ": truncated: expected at least " + std::to_string(header) +
                        " header bytes, found " + std::to_string(head.size()));
  }
  const uint32_t found_magic = be32(head.data());
  if (found_magic != magic) {
    return corrupt_data(path + ": bad magic number " + hex32(found_magic) + ", expected " +
                        hex32(magic) + (magic == kImagesMagic ? " (IDX images)" : " (IDX labels)"));
  }
  if (head.size() < header) {
    return corrupt_data(path + ": truncated: expected " + std::to_string(header) +
                        " header bytes, found " + std::to_string(head.size()));
  }
  IdxArray arr;
  uint64_t count = 1;
  for (size_t i = 0; i < rank; ++i) {
    arr.dims.push_back(be32(head.data() + 4 + 4 * i));
    count *= arr.dims.back();
    if (count > (uint64_t{1} << 40)) return corrupt_data(path + ": implausible dimensions");
  }
  if (count == 0) return corrupt_data(path + ": has no samples (a dimension is 0)");
  FEDSILO_CHECK(read_bytes(f.get(), path, static_cast<size_t>(count), &arr.data));
  if (arr.data.size() < count) {
    return corrupt_data(path + ": truncated: expected " + std::to_string(header + count) +
                        " bytes (uncompressed), found " + std::to_string(header + arr.data.size()));
  }
  return arr;
}

}  // namespace

Result<Dataset> read_idx_pair(const std::string& images_gz, const std::string& labels_gz) {
  FEDSILO_ASSIGN_OR_RETURN(IdxArray images, read_idx(images_gz, kImagesMagic, 3));
  FEDSILO_ASSIGN_OR_RETURN(IdxArray labels, read_idx(labels_gz, kLabelsMagic, 1));
  if (images.dims[0] != labels.dims[0]) {
    return corrupt_data(images_gz + " holds " + std::to_string(images.dims[0]) + " images but " +
                        labels_gz + " holds " + std::to_string(labels.dims[0]) + " labels");
  }
  if (images.dims[1] > INT_MAX || images.dims[2] > INT_MAX) {
    return corrupt_data(images_gz + ": implausible image size");
  }
  Dataset ds;
  ds.chw = {1, static_cast<int>(images.dims[1]), static_cast<int>(images.dims[2])};
  ds.num_classes = kIdxClasses;
  ds.name = "fashion-mnist";
  ds.y.resize(labels.data.size());
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= kIdxClasses) {
      return corrupt_data(labels_gz + ": label " + std::to_string(i) + " = " +
                          std::to_string(labels.data[i]) + " is outside [0, " +
                          std::to_string(kIdxClasses) + ")");
    }
    ds.y[i] = labels.data[i];
  }
  ds.x.resize(images.data.size());
  std::transform(images.data.begin(), images.data.end(), ds.x.begin(),
                 [](uint8_t v) { return static_cast<float>(v) / 255.0f; });
  return ds;
}

}  // namespace fedsilo::data
