// Status and Result<T>: how every fallible function in fedsilo reports failure.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace fedsilo {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,   // bad config value, CLI flag, shape
  kNotFound,          // missing file, key, checkpoint
  kIoError,           // read/write/rename failed
  kCorruptData,       // malformed file or payload
  kFailedPrecondition,
  kAlreadyExists,     // finished run directory without --resume/--overwrite
  kDiverged,          // non-finite loss or update
  kCommError,         // MPI failure
  kInterrupted,       // stopped on SIGUSR1 after a checkpoint; resumable, to be requeued
  kCancelled,         // stopped on SIGINT/SIGTERM after a checkpoint; resumable, not requeued
  kBudgetSpent,       // stopped for good: the next round would exceed privacy.max_epsilon
  kInternal,
};

const char* status_code_name(StatusCode code);

/// The outcome of a fallible call: kOk or a code with a human-readable message.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return Status(); }

  [[nodiscard]] bool ok() const { return code_ == StatusCode::kOk; }
  [[nodiscard]] StatusCode code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  /// "code: message", for logs.
  [[nodiscard]] std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status io_error(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status corrupt_data(std::string m) { return {StatusCode::kCorruptData, std::move(m)}; }
inline Status failed_precondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status internal_error(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

/// A value or the Status that explains why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return std::holds_alternative<T>(v_); }
  [[nodiscard]] Status status() const { return ok() ? Status() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace fedsilo

#define FEDSILO_CONCAT_INNER(a, b) a##b
#define FEDSILO_CONCAT(a, b) FEDSILO_CONCAT_INNER(a, b)

/// Returns the Status of `expr` from the enclosing function if it is not ok.
#define FEDSILO_CHECK(expr)                             \
  do {                                                  \
    ::fedsilo::Status fedsilo_status_ = (expr);         \
    if (!fedsilo_status_.ok()) return fedsilo_status_;  \
  } while (0)

#define FEDSILO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()

/// `FEDSILO_ASSIGN_OR_RETURN(auto x, f());` binds the value or returns the Status.
#define FEDSILO_ASSIGN_OR_RETURN(lhs, expr) \
  FEDSILO_ASSIGN_OR_RETURN_IMPL(FEDSILO_CONCAT(fedsilo_result_, __LINE__), lhs, expr)
