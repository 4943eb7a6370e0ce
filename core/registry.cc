#include <cstdio>
#include <cstdlib>
#include <future>
#include <mutex>

#include "stor/backend.h"
#include "stor/register_backend.h"

namespace stor {

namespace {
struct RegistryState {
  std::mutex mu;
  std::map<std::string, BackendFactory, std::less<>> factories;
};
RegistryState& state() {
  static RegistryState s;  // function-local: safe during static registration of backends
  return s;
}

Result<size_t> wait_for(const std::function<void(IoCallback)>& start) {
  std::promise<Result<size_t>> p;
  auto f = p.get_future();
  start([&p](Result<size_t> r) { p.set_value(std::move(r)); });
  return f.get();
}
}  // namespace

BackendRegistry& BackendRegistry::global() {
  static BackendRegistry r;
  return r;
}

Status BackendRegistry::add(std::string scheme, BackendFactory factory) {
  auto& s = state();
  std::lock_guard lk(s.mu);
  if (scheme.empty()) return Status::InvalidArgument("backend scheme must not be empty");
  if (s.factories.count(scheme)) return Status::AlreadyExists("a backend for scheme '" + scheme + "' is already registered");
  s.factories.emplace(std::move(scheme), std::move(factory));
  return {};
}

Result<BackendFactory> BackendRegistry::find(std::string_view scheme) const {
  auto& s = state();
  std::lock_guard lk(s.mu);
  auto it = s.factories.find(scheme);
  if (it == s.factories.end()) {
    std::string known;
    for (auto& [name, f] : s.factories) known += (known.empty() ? "" : ", ") + name;
    return Status::NotFound("unknown URI scheme '" + std::string(scheme) + "' (known: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> BackendRegistry::schemes() const {
  auto& s = state();
  std::lock_guard lk(s.mu);
  std::vector<std::string> out;
  for (auto& [name, f] : s.factories) out.push_back(name);
  return out;
}

namespace internal {

Status register_builtin_backend(const char* scheme, BackendFactory factory, const char* where) {
  return BackendRegistry::global()
      .add(scheme ? scheme : "", std::move(factory))
      .with_context(std::string("built-in backend '") + (scheme ? scheme : "") + "' (" + (where ? where : "?") + ")");
}

bool registered_or_abort(const Status& s) noexcept {
  if (s.is_ok()) return true;
  // During static initialisation: no caller to return an error to, and a missing backend would
  // only surface later as a confusing "unknown URI scheme".
  std::fprintf(stderr, "stor: %s\n", s.to_string().c_str());
  std::abort();
}

}  // namespace internal

std::vector<Result<size_t>> Backend::read_many(std::span<const ReadRequest> reads) {
  std::vector<Result<size_t>> out;
  out.reserve(reads.size());
  for (const ReadRequest& r : reads) {
    Result<std::unique_ptr<BackendFile>> f = open(r.uri, OpenOptions{kOpenRead, 0});
    if (!f.is_ok()) {
      out.push_back(f.status());
      continue;
    }
    Result<size_t> n = (*f)->read(r.buf, r.len, r.offset);
    Status closed = (*f)->close();
    out.push_back(n.is_ok() && !closed.is_ok() ? Result<size_t>(closed) : std::move(n));
  }
  return out;
}

Result<size_t> BackendFile::read(void* buf, size_t len, uint64_t offset) {
  return wait_for([&](IoCallback cb) { read_async(buf, len, offset, std::move(cb)); });
}

Result<size_t> BackendFile::write(const void* buf, size_t len, uint64_t offset) {
  return wait_for([&](IoCallback cb) { write_async(buf, len, offset, std::move(cb)); });
}

Result<size_t> BackendFile::readv(std::span<const struct iovec> iov, uint64_t offset) {
  return wait_for([&](IoCallback cb) { readv_async(iov, offset, std::move(cb)); });
}

Result<size_t> BackendFile::writev(std::span<const struct iovec> iov, uint64_t offset) {
  return wait_for([&](IoCallback cb) { writev_async(iov, offset, std::move(cb)); });
}

Result<uint64_t> BackendFile::lock_range(uint64_t offset, uint64_t len, RangeLockMode mode,
                                         std::chrono::milliseconds timeout) {
  (void)offset; (void)len; (void)mode; (void)timeout;
  return Status::Unsupported("byte-range locks are not supported by this backend");
}

Status BackendFile::unlock_range(uint64_t lock_id) {
  (void)lock_id;
  return Status::Unsupported("byte-range locks are not supported by this backend");
}

}  // namespace stor
