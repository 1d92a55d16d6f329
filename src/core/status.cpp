// Names of status codes and Status formatting.
#include "core/status.h"

namespace fedsilo {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid argument";
    case StatusCode::kNotFound: return "not found";
    case StatusCode::kIoError: return "I/O error";
    case StatusCode::kCorruptData: return "corrupt data";
    case StatusCode::kFailedPrecondition: return "failed precondition";
    case StatusCode::kAlreadyExists: return "already exists";
    case StatusCode::kDiverged: return "diverged";
    case StatusCode::kCommError: return "communication error";
    case StatusCode::kInterrupted: return "interrupted";
    case StatusCode::kCancelled: return "cancelled";
    case StatusCode::kBudgetSpent: return "privacy budget spent";
    case StatusCode::kInternal: return "internal error";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

}  // namespace fedsilo
