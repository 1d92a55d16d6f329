// Helpers shared by the unit tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace fedsilo::test {

/// A fresh, empty directory under FEDSILO_TEST_TMPDIR for the running test:
/// PREFIX-<test name>-<pid>-<counter>.
inline std::string fresh_dir(const std::string& prefix) {
  static std::atomic<int> counter{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path dir =
      std::filesystem::path(FEDSILO_TEST_TMPDIR) /
      (prefix + "-" + info->name() + "-" + std::to_string(::getpid()) + "-" +
       std::to_string(counter++));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace fedsilo::test
