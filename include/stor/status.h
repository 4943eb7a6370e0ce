// stor::Status and stor::Result<T>: every fallible call in stor returns one of these.
// Nothing in the public API throws; the C API maps Code values 1:1 onto stor_code_t.
// Thread safety: plain values. Copies are independent; one object may be read from many threads
// at once, but not modified while another thread reads it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "stor/export.h"

namespace stor {

enum class Code : int {
  kOk = 0,
  kInvalidArgument = 1,   // bad URI, misaligned O_DIRECT request, bad option value
  kNotFound = 2,          // missing file, object, directory or unknown scheme
  kPermissionDenied = 3,  // POSIX permission check or server 403
  kAlreadyExists = 4,
  kOutOfRange = 5,        // read past end when the caller asked for exact reads
  kIoError = 6,           // the device or server failed
  kUnsupported = 7,       // the backend lacks the capability
  kNotADirectory = 8,
  kIsADirectory = 9,
  kNotEmpty = 10,
  kNoSpace = 11,
  kBusy = 12,
  kCorruption = 13,       // checksum mismatch, malformed persisted metadata
  kTimeout = 14,
  kUnavailable = 15,      // transient: retry may help (5xx, connection reset)
  kAborted = 16,
  kInternal = 17,
};

// Human-readable name of a code, e.g. "NotFound".
STOR_API std::string_view code_name(Code c) noexcept;

class [[nodiscard]] STOR_API Status {
 public:
  Status() noexcept = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok() noexcept { return {}; }
  // Translates an errno value into the closest Code, keeping strerror text plus context.
  static Status from_errno(int err, std::string_view context);

  // Named factories: the one way to build an error with a code known at the call site.
  // The (Code, message) constructor is for codes decoded at run time (wire, C API).
  static Status InvalidArgument(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
  static Status NotFound(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
  static Status PermissionDenied(std::string msg) { return {Code::kPermissionDenied, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) { return {Code::kAlreadyExists, std::move(msg)}; }
  static Status OutOfRange(std::string msg) { return {Code::kOutOfRange, std::move(msg)}; }
  static Status IoError(std::string msg) { return {Code::kIoError, std::move(msg)}; }
  static Status Unsupported(std::string msg) { return {Code::kUnsupported, std::move(msg)}; }
  static Status NotADirectory(std::string msg) { return {Code::kNotADirectory, std::move(msg)}; }
  static Status IsADirectory(std::string msg) { return {Code::kIsADirectory, std::move(msg)}; }
  static Status NotEmpty(std::string msg) { return {Code::kNotEmpty, std::move(msg)}; }
  static Status NoSpace(std::string msg) { return {Code::kNoSpace, std::move(msg)}; }
  static Status Busy(std::string msg) { return {Code::kBusy, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
  static Status Timeout(std::string msg) { return {Code::kTimeout, std::move(msg)}; }
  static Status Unavailable(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
  static Status Aborted(std::string msg) { return {Code::kAborted, std::move(msg)}; }
  static Status Internal(std::string msg) { return {Code::kInternal, std::move(msg)}; }

  // Same code, message prefixed: NotFound("x") .with_context("open /a") -> "open /a: x".
  // An OK status stays OK.
  Status with_context(std::string_view prefix) const;
  // Same code, text appended to the message: " (peer 10.0.0.1:7000)". An OK status stays OK.
  Status with_suffix(std::string_view suffix) const;

  bool is_ok() const noexcept { return code_ == Code::kOk; }
  explicit operator bool() const noexcept { return is_ok(); }
  Code code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // "NotFound: open /x: No such file or directory"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).is_ok()) v_ = Status::Internal("Result built from an OK status without a value");
  }

  bool is_ok() const noexcept { return std::holds_alternative<T>(v_); }
  explicit operator bool() const noexcept { return is_ok(); }

  // Precondition: is_ok(). Checked in every build: misuse is a bug, not an I/O error.
  T& value() & { check(); return std::get<T>(v_); }
  const T& value() const& { check(); return std::get<T>(v_); }
  T&& value() && { check(); return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(v_); }

 private:
  void check() const;
  std::variant<T, Status> v_;
};

[[noreturn]] STOR_API void result_value_of_error(const Status& s);

template <typename T>
void Result<T>::check() const {
  if (!is_ok()) result_value_of_error(std::get<Status>(v_));
}

}  // namespace stor

// Propagate a non-OK Status from an expression returning Status.
#define STOR_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::stor::Status stor_s_ = (expr);          \
    if (!stor_s_.is_ok()) return stor_s_;     \
  } while (0)

#define STOR_CONCAT_INNER(a, b) a##b
#define STOR_CONCAT(a, b) STOR_CONCAT_INNER(a, b)
// `STOR_ASSIGN_OR_RETURN(auto x, f());` binds x to f()'s value or returns its Status.
#define STOR_ASSIGN_OR_RETURN(lhs, expr) STOR_ASSIGN_OR_RETURN_IMPL(STOR_CONCAT(stor_r_, __LINE__), lhs, expr)
#define STOR_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.is_ok()) return tmp.status();           \
  lhs = std::move(tmp).value()
