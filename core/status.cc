#include "stor/status.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace stor {

std::string_view code_name(Code c) noexcept {
  switch (c) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: return "InvalidArgument";
    case Code::kNotFound: return "NotFound";
    case Code::kPermissionDenied: return "PermissionDenied";
    case Code::kAlreadyExists: return "AlreadyExists";
    case Code::kOutOfRange: return "OutOfRange";
    case Code::kIoError: return "IoError";
    case Code::kUnsupported: return "Unsupported";
    case Code::kNotADirectory: return "NotADirectory";
    case Code::kIsADirectory: return "IsADirectory";
    case Code::kNotEmpty: return "NotEmpty";
    case Code::kNoSpace: return "NoSpace";
    case Code::kBusy: return "Busy";
    case Code::kCorruption: return "Corruption";
    case Code::kTimeout: return "Timeout";
    case Code::kUnavailable: return "Unavailable";
    case Code::kAborted: return "Aborted";
    case Code::kInternal: return "Internal";
  }
  return "Unknown";
}

static Code code_of_errno(int err) {
  switch (err) {
    case 0: return Code::kOk;
    case ENOENT: return Code::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS: return Code::kPermissionDenied;
    case EEXIST: return Code::kAlreadyExists;
    case EINVAL:
    case ENAMETOOLONG:
    case EBADF: return Code::kInvalidArgument;
    case ENOTDIR: return Code::kNotADirectory;
    case EISDIR: return Code::kIsADirectory;
    case ENOTEMPTY: return Code::kNotEmpty;
    case ENOSPC:
    case EDQUOT:
    case EFBIG: return Code::kNoSpace;
    case EBUSY:
    case ETXTBSY: return Code::kBusy;
    case ETIMEDOUT: return Code::kTimeout;
    case EAGAIN:
    case ECONNRESET:
    case ECONNREFUSED:
    case EPIPE: return Code::kUnavailable;
    case ENOSYS:
    case EOPNOTSUPP: return Code::kUnsupported;
    case ECANCELED: return Code::kAborted;
    case EOVERFLOW: return Code::kOutOfRange;
    default: return Code::kIoError;
  }
}

Status Status::from_errno(int err, std::string_view context) {
  std::string msg(context);
  msg += ": ";
  msg += std::strerror(err);
  return {code_of_errno(err), std::move(msg)};
}

Status Status::with_context(std::string_view prefix) const {
  if (is_ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += message_;
  return {code_, std::move(msg)};
}

Status Status::with_suffix(std::string_view suffix) const {
  if (is_ok()) return *this;
  return {code_, message_ + std::string(suffix)};
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  std::string s(code_name(code_));
  s += ": ";
  s += message_;
  return s;
}

void result_value_of_error(const Status& s) {
  std::fprintf(stderr, "stor: Result::value() called on an error: %s\n", s.to_string().c_str());
  std::abort();
}

}  // namespace stor
