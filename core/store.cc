#include "stor/store.h"

#include <cstdlib>
#include <map>
#include <shared_mutex>

#include "core/parquet_internal.h"
#include "core/plugin_loader.h"
#include "core/stats.h"

namespace stor {

const char* version() { return STOR_VERSION_STRING; }

// ---- File ----

File::File(std::unique_ptr<BackendFile> impl, Uri uri, std::shared_ptr<internal::StatsRegistry> stats)
    : impl_(std::move(impl)), uri_(std::move(uri)), stats_(std::move(stats)) {
  if (stats_) counters_ = stats_->counters(uri_.scheme);
}

namespace {
void add_io(internal::SchemeCounters* c, bool write, const Result<size_t>& r) {
  constexpr auto relaxed = std::memory_order_relaxed;
  if (!r.is_ok()) {
    c->errors.fetch_add(1, relaxed);
  } else if (write) {
    c->write_ops.fetch_add(1, relaxed);
    c->write_bytes.fetch_add(*r, relaxed);
  } else {
    c->read_ops.fetch_add(1, relaxed);
    c->read_bytes.fetch_add(*r, relaxed);
  }
}
}  // namespace

void File::count(bool write, const Result<size_t>& r) {
  if (counters_) add_io(counters_, write, r);
}

IoCallback File::counted(bool write, IoCallback done) {
  if (!counters_) return done;
  return [c = counters_, write, done = std::move(done)](Result<size_t> r) {
    add_io(c, write, r);
    done(std::move(r));
  };
}

File::~File() {
  if (impl_) (void)impl_->close();
}

Status File::check_open() const {
  if (!impl_) return Status::InvalidArgument("file is not open");
  return {};
}

Result<size_t> File::read(void* buf, size_t len, uint64_t offset) {
  STOR_RETURN_IF_ERROR(check_open());
  auto r = impl_->read(buf, len, offset);
  count(false, r);
  return r;
}

Status File::read_exact(void* buf, size_t len, uint64_t offset) {
  STOR_ASSIGN_OR_RETURN(size_t n, read(buf, len, offset));
  if (n != len)
    return Status::OutOfRange("read of " + std::to_string(len) + " bytes at offset " + std::to_string(offset) +
                                   " of " + uri_.to_string() + " got only " + std::to_string(n) + " (end of file)");
  return {};
}

Result<size_t> File::write(const void* buf, size_t len, uint64_t offset) {
  STOR_RETURN_IF_ERROR(check_open());
  auto r = impl_->write(buf, len, offset);
  count(true, r);
  return r;
}

void File::read_async(void* buf, size_t len, uint64_t offset, IoCallback done) {
  if (Status s = check_open(); !s.is_ok()) return done(std::move(s));
  impl_->read_async(buf, len, offset, counted(false, std::move(done)));
}

void File::write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) {
  if (Status s = check_open(); !s.is_ok()) return done(std::move(s));
  impl_->write_async(buf, len, offset, counted(true, std::move(done)));
}

Result<size_t> File::readv(std::span<const struct iovec> iov, uint64_t offset) {
  STOR_RETURN_IF_ERROR(check_open());
  auto r = impl_->readv(iov, offset);
  count(false, r);
  return r;
}

Result<size_t> File::writev(std::span<const struct iovec> iov, uint64_t offset) {
  STOR_RETURN_IF_ERROR(check_open());
  auto r = impl_->writev(iov, offset);
  count(true, r);
  return r;
}

void File::readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  if (Status s = check_open(); !s.is_ok()) return done(std::move(s));
  impl_->readv_async(iov, offset, counted(false, std::move(done)));
}

void File::writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  if (Status s = check_open(); !s.is_ok()) return done(std::move(s));
  impl_->writev_async(iov, offset, counted(true, std::move(done)));
}

Status File::sync(bool data_only) {
  STOR_RETURN_IF_ERROR(check_open());
  return impl_->sync(data_only);
}

Status File::truncate(uint64_t size) {
  STOR_RETURN_IF_ERROR(check_open());
  return impl_->truncate(size);
}

Result<FileInfo> File::stat() {
  STOR_RETURN_IF_ERROR(check_open());
  return impl_->stat();
}

Result<uint64_t> File::size() {
  STOR_ASSIGN_OR_RETURN(FileInfo info, stat());
  return info.size;
}

bool File::direct() const { return impl_ && impl_->direct(); }

Result<uint64_t> File::lock_range(uint64_t offset, uint64_t len, RangeLockMode mode, std::chrono::milliseconds timeout) {
  STOR_RETURN_IF_ERROR(check_open());
  auto r = impl_->lock_range(offset, len, mode, timeout);
  if (!r) return r.status().with_context(uri_.to_string());
  return r;
}

Status File::unlock_range(uint64_t lock_id) {
  STOR_RETURN_IF_ERROR(check_open());
  return impl_->unlock_range(lock_id).with_context(uri_.to_string());
}

Status File::close() {
  if (!impl_) return {};
  Status s = impl_->close();
  impl_.reset();
  return s;
}

Status File::abort() {
  if (!impl_) return {};
  Status s = impl_->abort();
  impl_.reset();
  return s;
}

// ---- Store ----

Store::Store(StoreOptions opts, std::unique_ptr<IoEngine> engine)
    : opts_(std::move(opts)), engine_(std::move(engine)), stats_(internal::StatsRegistry::create(opts_.publish_stats)) {}

std::vector<BackendStats> Store::stats() const { return stats_->snapshot(); }

Store::~Store() {
  // Backends may hold files with requests in flight on the engine: let those finish first.
  engine_->drain();
  backends_.clear();
}

Result<std::unique_ptr<Store>> Store::create(const StoreOptions& opts) {
  STOR_ASSIGN_OR_RETURN(auto engine, IoEngine::create(opts.engine));
  std::unique_ptr<Store> store(new Store(opts, std::move(engine)));
  std::string dir = opts.plugin_dir;
  if (dir.empty()) {
    const char* env = std::getenv("STOR_PLUGIN_DIR");
    if (env) dir = env;
  }
  if (!dir.empty()) STOR_RETURN_IF_ERROR(store->load_plugins(dir));
  return store;
}

Result<std::shared_ptr<Backend>> Store::backend(const Uri& uri) {
  {
    std::shared_lock lk(mu_);  // every call looks up; only the first use of a scheme creates
    if (auto it = backends_.find(uri.scheme); it != backends_.end()) return it->second;
  }
  std::lock_guard lk(mu_);
  if (auto it = backends_.find(uri.scheme); it != backends_.end()) return it->second;
  STOR_ASSIGN_OR_RETURN(BackendFactory factory, BackendRegistry::global().find(uri.scheme));
  BackendContext ctx{engine_.get(), opts_.settings};
  STOR_ASSIGN_OR_RETURN(std::shared_ptr<Backend> b, factory(ctx));
  backends_.emplace(uri.scheme, b);
  return b;
}

Result<File> Store::open(std::string_view text, uint32_t flags, uint32_t mode) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto b, backend(uri));
  if (!(flags & (kOpenRead | kOpenWrite))) flags |= kOpenRead;
  // Parquet objects opened for reading get the parquet read path (docs/parquet.md).
  STOR_ASSIGN_OR_RETURN(auto pq, parquet::internal::maybe_open_parquet(*this, *b, uri, flags, opts_.settings));
  if (pq) return File(std::move(pq), std::move(uri), stats_);
  STOR_ASSIGN_OR_RETURN(auto impl, b->open(uri, OpenOptions{flags, mode}));
  return File(std::move(impl), std::move(uri), stats_);
}

std::vector<Result<size_t>> Store::read_many(std::span<const ReadItem> items) {
  std::vector<Result<size_t>> out(items.size(), Result<size_t>(Status::Internal("read_many: not run")));
  // Items grouped by backend, in their order; each group is one Backend::read_many.
  std::map<Backend*, std::pair<std::shared_ptr<Backend>, std::vector<size_t>>> groups;
  std::vector<ReadRequest> reqs(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    Result<Uri> uri = Uri::parse(items[i].uri);
    if (!uri.is_ok()) {
      out[i] = uri.status();
      continue;
    }
    Result<std::shared_ptr<Backend>> b = backend(*uri);
    if (!b.is_ok()) {
      out[i] = b.status();
      continue;
    }
    reqs[i] = ReadRequest{std::move(uri).value(), items[i].buf, items[i].len, items[i].offset};
    auto& g = groups[b->get()];
    g.first = *b;
    g.second.push_back(i);
  }
  for (auto& [raw, group] : groups) {
    std::vector<ReadRequest> batch;
    batch.reserve(group.second.size());
    for (size_t i : group.second) batch.push_back(std::move(reqs[i]));
    std::vector<Result<size_t>> got = group.first->read_many(batch);
    internal::SchemeCounters* counters = stats_ ? stats_->counters(batch.front().uri.scheme) : nullptr;
    for (size_t j = 0; j < group.second.size(); ++j) {
      Result<size_t> r = j < got.size() ? std::move(got[j])
                                        : Result<size_t>(Status::Internal("read_many: the backend skipped an item"));
      if (counters) add_io(counters, false, r);
      out[group.second[j]] = std::move(r);
    }
  }
  return out;
}

Result<FileInfo> Store::stat(std::string_view text) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto b, backend(uri));
  return b->stat(uri);
}

Result<std::vector<DirEntry>> Store::list(std::string_view text) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto b, backend(uri));
  return b->list(uri);
}

Status Store::remove(std::string_view text) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto b, backend(uri));
  return b->remove(uri);
}

Status Store::mkdir(std::string_view text, uint32_t mode) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto b, backend(uri));
  return b->mkdir(uri, mode);
}

Status Store::rename(std::string_view from, std::string_view to) {
  STOR_ASSIGN_OR_RETURN(Uri a, Uri::parse(from));
  STOR_ASSIGN_OR_RETURN(Uri b, Uri::parse(to));
  if (a.scheme != b.scheme || a.authority != b.authority)
    return Status::InvalidArgument("rename across backends (" + a.scheme + "://" + a.authority + " -> " + b.scheme +
                                        "://" + b.authority + ") is a copy: use stctl cp");
  STOR_ASSIGN_OR_RETURN(auto backend_ptr, backend(a));
  return backend_ptr->rename(a, b);
}

std::map<std::string, std::string> Store::describe(std::string_view text) {
  auto uri = Uri::parse(text);
  if (!uri.is_ok()) return {{"error", uri.status().to_string()}};
  auto b = backend(*uri);
  if (!b.is_ok()) return {{"error", b.status().to_string()}};
  auto out = (*b)->describe(*uri);
  out["backend"] = std::string((*b)->scheme());
  out["capabilities"] = capabilities_to_string((*b)->capabilities());
  out["engine"] = engine_->name();
  return out;
}

Status Store::load_plugin(const std::string& path) { return internal::load_plugin(path); }
Status Store::load_plugins(const std::string& dir) { return internal::load_plugin_dir(dir); }

}  // namespace stor
