// File-system helpers for atomic outputs: temporary names, fsync, rename.
#pragma once

#include <string>

#include "core/status.h"

namespace fedsilo::fs {

/// A temporary name beside `path` that is unique to this process: "path.tmp.<pid>".
std::string temp_name(const std::string& path);
/// fsyncs the file at `path` (kIoError naming it on failure).
[[nodiscard]] Status fsync_file(const std::string& path);
/// fsyncs the directory holding `path`, so a rename into it survives a crash.
[[nodiscard]] Status fsync_parent_dir(const std::string& path);
/// fsync(tmp), rename(tmp, path), fsync(parent): the file is either old or complete.
[[nodiscard]] Status commit_file(const std::string& tmp, const std::string& path);
/// Writes a text file atomically.
[[nodiscard]] Status write_text_atomically(const std::string& path, const std::string& text);
/// Reads a whole text file.
[[nodiscard]] Result<std::string> read_text(const std::string& path);
/// Creates a directory and its parents with `mode` (existing ones are fine).
[[nodiscard]] Status make_dirs(const std::string& path, unsigned mode = 0755);

}  // namespace fedsilo::fs
