// What every benchmark prints about where it ran: the CPU model and the commit.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>

namespace fedsilo::bench {

/// The "model name" line of /proc/cpuinfo, or "unknown".
inline std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown";
}

/// `given` if set, else $FEDSILO_COMMIT, else "unknown".
inline std::string commit_or_env(const std::string& given) {
  if (!given.empty()) return given;
  const char* env = std::getenv("FEDSILO_COMMIT");
  return env != nullptr ? env : "unknown";
}

}  // namespace fedsilo::bench
