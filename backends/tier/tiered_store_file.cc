// Opening tiered files and the TierFile handle: a handle on a cold file is pinned to the version
// it opened (reads fetch that version or fail), a cold parquet file serves its footer from memory.
#include "backends/tier/tiered_store_impl.h"

#include <atomic>
#include <cstring>

#include "core/parquet_internal.h"

namespace stor::tiering::internal {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A handle on one tiered file: reads and writes go to the fast copy; a handle opened on a cold
// file reads the prefetched parquet footer from memory, and fetches its pinned version (see
// PinnedVersion) on the first read outside it.
// The pinned cold version of a parquet file, as the parquet read path's byte source: every read
// is one ranged read of that version (If-Match on S3).
class ColdSource final : public parquet::internal::RangeSource {
 public:
  ColdSource(std::shared_ptr<TieredStoreImpl> store, std::string rel, ColdObject known)
      : store_(std::move(store)), rel_(std::move(rel)), known_(std::move(known)) {}
  Result<size_t> read(uint64_t offset, size_t len, char* dst) override {
    return store_->read_cold(rel_, known_, offset, len, dst);
  }

 private:
  std::shared_ptr<TieredStoreImpl> store_;
  std::string rel_;
  ColdObject known_;
};

using SparseReader = std::shared_ptr<parquet::Reader::Impl>;

class TierFile final : public BackendFile {
 public:
  TierFile(std::shared_ptr<TieredStoreImpl> store, std::string rel, std::unique_ptr<BackendFile> fast,
           std::shared_ptr<const Footer> footer, std::optional<PinnedVersion> pinned, bool writable,
           SparseReader sparse, FileLock held)
      : store_(std::move(store)), rel_(std::move(rel)), fast_(std::move(fast)), footer_(std::move(footer)),
        sparse_(std::move(sparse)), pinned_(std::move(pinned)), writable_(writable), open_hold_(std::move(held)) {}
  ~TierFile() override { (void)close(); }

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override;
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (!open_) return done(Status::InvalidArgument("tiered file " + rel_ + " is closed"));
    if (!writable_) return done(Status::PermissionDenied(rel_ + " was not opened for writing"));
    wrote_ = true;
    fast_->write_async(buf, len, offset, std::move(done));
  }
  Status sync(bool data_only) override {
    std::lock_guard lk(mu_);
    if (!open_) return Status::InvalidArgument("tiered file " + rel_ + " is closed");
    if (!fast_) return {};  // nothing local to sync: the data lives in the cold tier
    return fast_->sync(data_only);
  }
  Status truncate(uint64_t size) override {
    std::lock_guard lk(mu_);
    if (!open_) return Status::InvalidArgument("tiered file " + rel_ + " is closed");
    if (!writable_) return Status::PermissionDenied(rel_ + " was not opened for writing");
    wrote_ = true;
    return fast_->truncate(size);
  }
  Result<FileInfo> stat() override;
  Status close() override;

 private:
  Status ensure_fast();
  std::shared_ptr<TieredStoreImpl> store_;
  std::string rel_;
  std::mutex mu_;
  std::unique_ptr<BackendFile> fast_;
  std::shared_ptr<const Footer> footer_;
  SparseReader sparse_;  // a cold parquet file read through the parquet read path, never fetched
  std::optional<PinnedVersion> pinned_;  // set for handles opened on a cold file
  bool writable_;
  std::atomic<bool> wrote_{false};  // set by writers on any thread (BackendFile's contract)
  bool open_ = true;
  FileLock open_hold_;  // the file's kOpen slot, shared: other processes see the handle (is_open)
};

}  // namespace

Result<std::unique_ptr<BackendFile>> TieredStoreImpl::open_file(const std::string& path, const OpenOptions& oo) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  if (rel.empty()) return Status::IsADirectory("the tiered namespace root is a directory");
  const bool writable = oo.flags & kOpenWrite;
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(rel));
  const int64_t now = opts_.clock();
  if (Status v = revalidate_on_open(rel, now); !v.is_ok()) {
    // Deleted in the cold tier: the record is gone, so a creating open makes a new file.
    if (v.code() != Code::kNotFound || !(oo.flags & kOpenCreate)) return v;
  }
  std::optional<Record> found = find(rel);
  std::unique_ptr<BackendFile> fast;
  std::shared_ptr<const Footer> footer;
  SparseReader sparse;
  std::optional<PinnedVersion> pinned;
  OpenOptions fast_opts = oo;
  fast_opts.flags &= ~kOpenExclusive;
  if (!found) {
    if (!(oo.flags & kOpenCreate)) return Status::NotFound("no such tiered file: " + rel);
    if (is_directory(rel)) return Status::IsADirectory(rel + " is a directory");
    STOR_RETURN_IF_ERROR(make_fast_parents(rel));
    OpenOptions create_opts = fast_opts;
    create_opts.flags |= kOpenTruncate;  // a leftover fast file (from a failed cleanup) is not this file
    STOR_ASSIGN_OR_RETURN(fast, opts_.fast->open(fast_uri(rel), create_opts));
    Record r;
    r.path = rel;
    r.residency = Residency::kDirty;
    r.mtime_ns = now;
    r.last_access_ns = now;
    std::lock_guard lk(mu_);
    records_[rel] = r;
    STOR_RETURN_IF_ERROR(journal_->put(r, true));
  } else {
    if ((oo.flags & kOpenCreate) && (oo.flags & kOpenExclusive))
      return Status::AlreadyExists("tiered file exists: " + rel);
    Record r = *found;
    if (writable) {
      fast_opts.flags |= kOpenCreate;  // the record exists; a truncating open of a cold file starts it afresh
      if (!fast_resident(r.residency) && !(oo.flags & kOpenTruncate)) STOR_RETURN_IF_ERROR(fetch_locked(rel));
      if (!fast_resident(r.residency)) STOR_RETURN_IF_ERROR(make_fast_parents(rel));
      STOR_ASSIGN_OR_RETURN(fast, opts_.fast->open(fast_uri(rel), fast_opts));
      std::lock_guard lk(mu_);
      Record& cur = records_[rel];
      if (cur.residency != Residency::kDirty) {
        // Durable before the first write is acknowledged: a crash must not forget local changes.
        cur.residency = Residency::kDirty;
        STOR_RETURN_IF_ERROR(journal_->put(cur, true));
      }
    } else if (fast_resident(r.residency)) {
      STOR_ASSIGN_OR_RETURN(fast, opts_.fast->open(fast_uri(rel), fast_opts));
    } else {
      if (ends_with(rel, ".parquet")) {
        auto got = parquet_footer(r);
        if (!got.is_ok()) {
          // Nothing is pinned yet: a footer GET refused because the object was replaced since
          // the listing adopts the new version (as a fetch would) and this open serves that.
          bool adopted = false;
          Status v = revalidate_after_failed_fetch(rel, got.status(), &adopted);
          if (!adopted) return v;
          std::optional<Record> now_r = find(rel);
          if (!now_r) return Status::NotFound("no such tiered file: " + rel);
          r = *now_r;
          got = parquet_footer(r);
          if (!got.is_ok()) return got.status();
        }
        footer = *got;
        if (footer && opts_.parquet_sparse_min && r.size >= opts_.parquet_sparse_min) {
          // Column chunks by ranged reads of this version instead of a fetch of the whole file.
          auto src = std::make_unique<ColdSource>(shared_from_this(), rel, known_of(r));
          src->size = r.size;
          src->etag = r.cold_etag;
          src->validator = r.cold_etag.empty() ? "size:" + std::to_string(r.size) + ",mtime:" + std::to_string(r.cold_mtime_ns)
                                               : "etag:" + r.cold_etag;
          parquet::ReaderOptions po;
          po.small_object_bytes = 0;
          auto opened = parquet::internal::open_source(std::move(src), cold_uri_of(rel), po, footer->bytes, footer->offset, 0);
          // A footer stor cannot parse: reads outside it fetch the file, as for any cold file.
          if (opened.is_ok()) sparse = std::move(opened).value();
        }
      }
      pinned = PinnedVersion{r.cold_etag, r.size, r.mtime_ns};
    }
  }
  // Taken under the op lock, as other processes check it under theirs.
  auto held = hold_open(rel);
  if (!held.is_ok()) {
    if (fast) (void)fast->close();
    return held.status();
  }
  {
    std::lock_guard lk(mu_);
    ++open_handles_[rel];
    if (!writable) note_access(rel, now);
  }
  return std::unique_ptr<BackendFile>(
      std::make_unique<TierFile>(shared_from_this(), rel, std::move(fast), std::move(footer), std::move(pinned),
                                 writable, std::move(sparse), std::move(held).value()));
}

// For a handle pinned to the cold version `etag`: fetches that version unless the fast tier
// already holds it (another handle fetched it meanwhile), then opens the fast copy. A handle
// never adopts another version: if the record moved on, or the object was replaced in the cold
// tier (the failed If-Match GET revalidates the record for later opens), this is Aborted.
Result<std::unique_ptr<BackendFile>> TieredStoreImpl::open_version_for_read(const std::string& rel,
                                                                           const std::string& etag) {
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(rel));
  std::optional<Record> r = find(rel);
  if (!r) return Status::NotFound("no such tiered file: " + rel);
  if (r->cold_etag != etag) return changed_since_open(rel, etag, r->cold_etag);
  if (!fast_resident(r->residency)) {
    Status s = fetch_once(rel);
    if (!s.is_ok()) {
      bool adopted = false;
      Status v = revalidate_after_failed_fetch(rel, s, &adopted);
      if (!adopted) return v;
      std::optional<Record> now = find(rel);
      return changed_since_open(rel, etag, now ? now->cold_etag : std::string());
    }
  }
  return opts_.fast->open(fast_uri(rel), OpenOptions{kOpenRead});
}

Result<size_t> TieredStoreImpl::read_cold(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                                          char* dst) {
  return cold_->read(rel, known, offset, len, dst);
}

Uri TieredStoreImpl::cold_uri_of(const std::string& rel) const {
  Result<Uri> u = Uri::parse(cold_->uri_of(rel));
  return u.is_ok() ? *u : Uri{"tier-cold", "", "/" + rel};
}

void TieredStoreImpl::count_footer_hit() {
  std::lock_guard lk(mu_);
  ++stats_.footer_hits;
}

Status TieredStoreImpl::closed(const std::string& rel, bool wrote) {
  Status s;
  bool export_now = false;
  std::optional<OpGuard> g;
  if (wrote) {
    // The record changes: under the op lock, refreshed (another process may have written too).
    auto locked = lock_op(rel);
    if (locked.is_ok()) g.emplace(std::move(locked).value());
    else s = locked.status();
  }
  {
    std::lock_guard lk(mu_);
    if (--open_handles_[rel] == 0) open_handles_.erase(rel);
    auto it = records_.find(rel);
    if (wrote && s.is_ok() && it != records_.end()) {
      auto local = opts_.fast->stat(fast_uri(rel));
      if (local.is_ok()) {
        it->second.size = local->size;
        it->second.mtime_ns = local->mtime_ns;
        s = journal_->put(it->second, false);
        maybe_compact();
        kick_policy_if_full();
      } else {
        s = local.status();
      }
      export_now = opts_.auto_export && !is_open(rel);
    }
  }
  if (s.is_ok() && export_now) s = export_locked(rel);
  return s;
}

Status TierFile::ensure_fast() {
  if (fast_) return {};
  if (!pinned_) return Status::Internal("tiered file " + rel_ + " has neither a fast copy nor a version");
  STOR_ASSIGN_OR_RETURN(fast_, store_->open_version_for_read(rel_, pinned_->etag));
  return {};
}

void TierFile::read_async(void* buf, size_t len, uint64_t offset, IoCallback done) {
  BackendFile* fast = nullptr;
  SparseReader sparse;
  {
    std::lock_guard lk(mu_);
    if (!open_) return done(Status::InvalidArgument("tiered file " + rel_ + " is closed"));
    if (!fast_ && footer_ && offset >= footer_->offset) {
      // Inside the prefetched parquet footer: no cold-tier request.
      const uint64_t end = footer_->offset + footer_->bytes.size();
      const size_t n = offset >= end ? 0 : static_cast<size_t>(std::min<uint64_t>(len, end - offset));
      if (n) std::memcpy(buf, footer_->bytes.data() + (offset - footer_->offset), n);
      store_->count_footer_hit();
      return done(n);
    }
    if (!fast_ && sparse_) {
      sparse = sparse_;
    } else {
      if (Status s = ensure_fast(); !s.is_ok()) return done(std::move(s));
      fast = fast_.get();
    }
  }
  // Blocking on the calling thread, as a fetch by ensure_fast() is.
  if (sparse) return done(parquet::internal::read(*sparse, static_cast<char*>(buf), len, offset));
  fast->read_async(buf, len, offset, std::move(done));
}

Result<FileInfo> TierFile::stat() {
  std::shared_ptr<TieredStoreImpl> store;
  {
    std::lock_guard lk(mu_);
    if (!open_) return Status::InvalidArgument("tiered file " + rel_ + " is closed");
    if (fast_ && writable_) return fast_->stat();
    store = store_;
  }
  STOR_ASSIGN_OR_RETURN(FileInfo info, store->stat(rel_));
  if (pinned_) {
    // The version this handle serves, whatever the record says now.
    info.size = pinned_->size;
    info.mtime_ns = pinned_->mtime_ns;
    info.etag = pinned_->etag;
  }
  return info;
}

Status TierFile::close() {
  std::unique_ptr<BackendFile> fast;
  SparseReader sparse;
  {
    std::lock_guard lk(mu_);
    if (!open_) return {};
    open_ = false;
    fast = std::move(fast_);
    sparse = std::move(sparse_);
  }
  sparse.reset();  // its source holds the namespace
  Status s = fast ? fast->close() : Status::ok();
  open_hold_.release();  // before closed(): a last writer's auto-export must not see itself as open
  Status c = store_->closed(rel_, wrote_);
  store_.reset();  // a closed handle must not keep the namespace (and its state lock) alive
  return s.is_ok() ? c : s;
}

}  // namespace stor::tiering::internal
