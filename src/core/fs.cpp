// File-system helpers for atomic outputs.
#include "core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fedsilo::fs {

std::string temp_name(const std::string& path) {
  return path + ".tmp." + std::to_string(::getpid());
}

static Status fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return io_error("cannot open " + path + " to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return io_error("fsync " + path + ": " + std::strerror(err));
  return {};
}

Status fsync_file(const std::string& path) { return fsync_path(path, O_RDONLY); }

Status fsync_parent_dir(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  return fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

Status commit_file(const std::string& tmp, const std::string& path) {
  FEDSILO_CHECK(fsync_file(tmp));
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return io_error("rename " + tmp + " -> " + path + ": " + std::strerror(err));
  }
  return fsync_parent_dir(path);
}

Status write_text_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = temp_name(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return io_error("cannot create " + tmp + ": " + std::strerror(errno));
    out << text;
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      return io_error("cannot write " + tmp);
    }
  }
  return commit_file(tmp, path);
}

Result<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return not_found("cannot open " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status make_dirs(const std::string& path, unsigned mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return io_error("cannot create directory " + path + ": " + ec.message());
  if (::chmod(path.c_str(), mode) != 0) {
    return io_error("cannot chmod " + path + ": " + std::strerror(errno));
  }
  return {};
}

}  // namespace fedsilo::fs
