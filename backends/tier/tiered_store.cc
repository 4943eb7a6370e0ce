// The tiered store: records (journal.h) say where each file's bytes are; the fast backend holds
// dirty and cached files under fast_root, the cold tier (cold_tier.h) everything else.
#include "backends/tier/tiered_store.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "backends/tier/cold_tier.h"
#include "backends/tier/journal.h"

namespace stor::tiering {

const char* residency_name(Residency r) {
  switch (r) {
    case Residency::kDirty: return "dirty";
    case Residency::kCached: return "cached";
    case Residency::kUncached: return "uncached";
    case Residency::kDemoted: return "demoted";
  }
  return "?";
}

int64_t system_clock_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

namespace internal {

Result<std::string> normalize_path(const std::string& path) {
  std::string out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t slash = path.find('/', i);
    if (slash == std::string::npos) slash = path.size();
    const std::string part = path.substr(i, slash - i);
    i = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") return Status::InvalidArgument("tiered path '" + path + "' must not contain '..'");
    if (part == kStateDirName) return Status::InvalidArgument("'" + path + "' is tiering state, not a file");
    out += (out.empty() ? "" : "/") + part;
  }
  return out;
}

}  // namespace internal

namespace {

using internal::ColdObject;
using internal::ColdTier;
using internal::Journal;
using internal::Record;

constexpr uint64_t kFooterTail = 64 * 1024;
constexpr uint64_t kCompactEvery = 20'000;  // journal lines between checkpoints

bool fast_resident(Residency r) { return r == Residency::kDirty || r == Residency::kCached; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

FileStatus to_status(const Record& r) {
  // The record's last_access_ns starts at import / creation time so that the policy can age a
  // file nobody reads; as a "last read" it only means something once the file was read.
  return {r.path, r.residency, r.size, r.mtime_ns, r.cold_etag, r.reads ? r.last_access_ns : 0, r.reads};
}

// Computes the CRC32 of what is written to it, in order: the read-back check of a demotion.
class CrcSink final : public BackendFile {
 public:
  void read_async(void*, size_t, uint64_t, IoCallback done) override {
    done(Status::Unsupported("checksum sink is write-only"));
  }
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (offset != next_) return done(Status::Internal("checksum sink needs sequential writes"));
    crc = internal::crc32(buf, len, crc);
    next_ += len;
    done(len);
  }
  Status sync(bool) override { return {}; }
  Status truncate(uint64_t) override { return Status::Unsupported("checksum sink"); }
  Result<FileInfo> stat() override {
    FileInfo i;
    i.size = next_;
    return i;
  }
  Status close() override { return {}; }
  uint32_t crc = 0;

 private:
  uint64_t next_ = 0;
};

struct Footer {
  std::string etag;
  uint64_t offset = 0;  // file offset of bytes[0]; bytes run to the end of the file
  std::string bytes;
};

class TieredStoreImpl;

// A handle opened on a cold (uncached / demoted) file is pinned to the version it opened: its
// stat() reports that version's size, mtime and ETag, and its reads are served from that version
// only (a replaced object fails them with Aborted). Handles opened on a fast copy read that copy.
struct PinnedVersion {
  std::string etag;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

class TierFile final : public BackendFile {
 public:
  TierFile(std::shared_ptr<TieredStoreImpl> store, std::string rel, std::unique_ptr<BackendFile> fast,
           std::shared_ptr<const Footer> footer, std::optional<PinnedVersion> pinned, bool writable)
      : store_(std::move(store)), rel_(std::move(rel)), fast_(std::move(fast)), footer_(std::move(footer)),
        pinned_(std::move(pinned)), writable_(writable) {}
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
  std::optional<PinnedVersion> pinned_;  // set for handles opened on a cold file
  bool writable_;
  bool wrote_ = false;
  bool open_ = true;
};

class TieredStoreImpl final : public TieredStore, public std::enable_shared_from_this<TieredStoreImpl> {
 public:
  TieredStoreImpl(TierOptions opts, Uri fast_root, std::unique_ptr<ColdTier> cold)
      : opts_(std::move(opts)), fast_root_(std::move(fast_root)), cold_(std::move(cold)) {}

  ~TieredStoreImpl() override {
    {
      std::lock_guard lk(policy_mu_);
      stopping_ = true;
    }
    policy_cv_.notify_all();
    if (policy_thread_.joinable()) policy_thread_.join();
  }

  // The background policy: every policy_interval_ns, or when kicked by a full fast tier.
  void start_policy_thread() {
    if (opts_.policy_interval_ns <= 0) return;
    policy_thread_ = std::thread([this] {
      std::unique_lock lk(policy_mu_);
      while (!stopping_) {
        policy_cv_.wait_for(lk, std::chrono::nanoseconds(opts_.policy_interval_ns), [&] { return stopping_ || kicked_; });
        if (stopping_) break;
        kicked_ = false;
        lk.unlock();
        auto report = run_policy();
        lk.lock();
        ++policy_runs_;
        if (report.is_ok()) last_policy_ = *report;
      }
    });
  }

  // Caller holds mu_.
  void kick_policy_if_full() {
    if (opts_.policy_interval_ns <= 0 || opts_.high_watermark_bytes == 0) return;
    uint64_t fast_bytes = 0;
    for (auto& [p, r] : records_)
      if (fast_resident(r.residency)) fast_bytes += r.size;
    if (fast_bytes <= opts_.high_watermark_bytes) return;
    {
      std::lock_guard lk(policy_mu_);
      kicked_ = true;
    }
    policy_cv_.notify_all();
  }

  Status init() {
    STOR_ASSIGN_OR_RETURN(journal_, Journal::open(opts_.state_dir, &records_));
    // Finish or roll back whatever a crash interrupted; the journal says which copy is valid.
    for (auto it = records_.begin(); it != records_.end();) {
      Record& r = it->second;
      auto local = opts_.fast->stat(fast_uri(r.path));
      const bool have_local = local.is_ok();
      if (!have_local && local.status().code() != Code::kNotFound) return local.status();
      if (!fast_resident(r.residency)) {
        // A fetch that did not finish, or a demotion between switch and release.
        if (have_local) STOR_RETURN_IF_ERROR(opts_.fast->remove(fast_uri(r.path)));
      } else if (!have_local) {
        if (r.residency == Residency::kCached || !r.cold_etag.empty()) {
          r.residency = Residency::kDemoted;  // the cold copy is the valid one
        } else {
          it = records_.erase(it);  // created, never written, never exported
          continue;
        }
      } else if (r.residency == Residency::kDirty) {
        r.size = local->size;
        r.mtime_ns = local->mtime_ns;
      } else if (local->size != r.size) {
        // A cached copy cut short (machine crash before its data reached the disk): fetch again.
        STOR_RETURN_IF_ERROR(opts_.fast->remove(fast_uri(r.path)));
        r.residency = Residency::kUncached;
      }
      ++it;
    }
    return journal_->compact(records_);
  }

  // ---- TieredStore ----

  Result<size_t> import_listing() override {
    STOR_ASSIGN_OR_RETURN(auto objects, cold_->list_all());
    const int64_t now = opts_.clock();
    std::lock_guard lk(mu_);
    size_t added = 0;
    for (auto& o : objects) {
      auto rel = internal::normalize_path(o.path);
      if (!rel.is_ok() || rel->empty() || records_.count(*rel)) continue;
      records_[*rel] = uncached_record(*rel, o, now);
      ++added;
    }
    // One durable checkpoint instead of one journal line per object.
    STOR_RETURN_IF_ERROR(journal_->compact(records_));
    return added;
  }

  Result<SyncReport> sync() override {
    STOR_ASSIGN_OR_RETURN(auto listed, cold_->list_all());
    std::map<std::string, ColdObject> remote;
    for (auto& o : listed) {
      auto rel = internal::normalize_path(o.path);
      if (rel.is_ok() && !rel->empty()) remote[*rel] = o;
    }
    SyncReport report;
    std::vector<std::string> paths;
    {
      std::lock_guard lk(mu_);
      for (auto& [p, r] : records_) paths.push_back(p);
    }
    for (const auto& path : paths) {
      Status s = sync_one(path, remote, &report);
      if (!s.is_ok()) report.failed.push_back(path + ": " + s.to_string());
      remote.erase(path);
    }
    const int64_t now = opts_.clock();
    std::lock_guard lk(mu_);
    for (auto& [path, o] : remote) {
      if (records_.count(path)) continue;
      const Record& r = records_[path] = uncached_record(path, o, now);
      STOR_RETURN_IF_ERROR(journal_->put(r, false));
      report.imported_new.push_back(path);
    }
    STOR_RETURN_IF_ERROR(journal_->compact(records_));
    return report;
  }

  Result<PolicyReport> run_policy() override {
    const int64_t now = opts_.clock();
    struct Candidate {
      std::string path;
      int64_t last_access;
      uint64_t size;
    };
    std::vector<Candidate> candidates;
    uint64_t fast_bytes = 0;
    {
      std::lock_guard lk(mu_);
      for (auto& [p, r] : records_) {
        if (!fast_resident(r.residency)) continue;
        fast_bytes += r.size;
        if (open_handles_.count(p)) continue;
        candidates.push_back({p, r.last_access_ns, r.size});
      }
    }
    std::sort(candidates.begin(), candidates.end(),
              [](const Candidate& a, const Candidate& b) { return a.last_access < b.last_access; });
    PolicyReport report;
    const uint64_t low = opts_.low_watermark_bytes ? opts_.low_watermark_bytes : opts_.high_watermark_bytes;
    const bool over_high = opts_.high_watermark_bytes > 0 && fast_bytes > opts_.high_watermark_bytes;
    for (const auto& c : candidates) {
      const bool aged = now - c.last_access >= opts_.demote_after_ns;
      const bool evict = over_high && fast_bytes > low;
      if (!aged && !evict) continue;
      Status s = demote(c.path);
      if (s.is_ok()) {
        report.demoted.push_back(c.path);
        fast_bytes -= std::min(fast_bytes, c.size);
      } else {
        report.failed.push_back(c.path + ": " + s.to_string());
      }
    }
    return report;
  }

  Status demote(const std::string& path) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    auto op = op_lock(rel);
    std::lock_guard g(*op);
    return demote_locked(rel);
  }

  Status promote(const std::string& path) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    auto op = op_lock(rel);
    std::lock_guard g(*op);
    return fetch_locked(rel);
  }

  Result<std::unique_ptr<BackendFile>> open_file(const std::string& path, const OpenOptions& oo) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    if (rel.empty()) return Status::IsADirectory("the tiered namespace root is a directory");
    const bool writable = oo.flags & kOpenWrite;
    auto op = op_lock(rel);
    std::lock_guard g(*op);
    std::optional<Record> found = find(rel);
    const int64_t now = opts_.clock();
    std::unique_ptr<BackendFile> fast;
    std::shared_ptr<const Footer> footer;
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
        }
        pinned = PinnedVersion{r.cold_etag, r.size, r.mtime_ns};
      }
    }
    {
      std::lock_guard lk(mu_);
      ++open_handles_[rel];
      if (!writable) note_access(rel, now);
    }
    return std::unique_ptr<BackendFile>(
        std::make_unique<TierFile>(shared_from_this(), rel, std::move(fast), std::move(footer), std::move(pinned),
                                   writable));
  }

  Result<FileInfo> stat(const std::string& path) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    std::optional<Record> r = find(rel);
    if (!r) {
      if (rel.empty() || is_directory(rel)) {
        FileInfo d;
        d.path = rel;
        d.type = FileType::kDirectory;
        d.mode = 0755;
        return d;
      }
      return Status::NotFound("no such tiered file: " + rel);
    }
    FileInfo info;
    info.path = rel;
    info.size = r->size;
    info.mtime_ns = r->mtime_ns;
    info.etag = r->cold_etag;
    info.mode = 0644;
    if (r->residency == Residency::kDirty) {
      auto local = opts_.fast->stat(fast_uri(rel));  // may be growing under an open writer
      if (local.is_ok()) {
        info.size = local->size;
        info.mtime_ns = local->mtime_ns;
      }
    }
    return info;
  }

  Result<std::vector<DirEntry>> list(const std::string& dir) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(dir));
    const std::string prefix = rel.empty() ? "" : rel + "/";
    std::vector<DirEntry> out;
    std::lock_guard lk(mu_);
    if (records_.count(rel)) return Status::NotADirectory(rel + " is a file");
    std::string last_dir;
    for (auto it = records_.lower_bound(prefix); it != records_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
         ++it) {
      const std::string rest = it->first.substr(prefix.size());
      const size_t slash = rest.find('/');
      if (slash == std::string::npos) {
        out.push_back({rest, FileType::kRegular, it->second.size});
      } else if (rest.substr(0, slash) != last_dir) {
        last_dir = rest.substr(0, slash);
        out.push_back({last_dir, FileType::kDirectory, 0});
      }
    }
    if (out.empty() && !rel.empty()) return Status::NotFound("no such tiered directory: " + rel);
    return out;
  }

  Status remove(const std::string& path) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    auto op = op_lock(rel);
    std::lock_guard g(*op);
    std::optional<Record> r;
    {
      std::lock_guard lk(mu_);
      auto it = records_.find(rel);
      if (it == records_.end()) return Status::NotFound("no such tiered file: " + rel);
      if (open_handles_.count(rel)) return Status::Busy(rel + " is open");
      r = it->second;
      // Forget first: a crash after this leaves at worst an orphan copy, never a dangling record.
      records_.erase(it);
      footers_.erase(rel);
      STOR_RETURN_IF_ERROR(journal_->erase(rel, true));
    }
    if (fast_resident(r->residency)) {
      Status s = opts_.fast->remove(fast_uri(rel));
      if (!s.is_ok() && s.code() != Code::kNotFound) return s;
    }
    if (!r->cold_etag.empty()) {
      Status s = cold_->remove(rel);  // the deletion is exported at once
      if (!s.is_ok() && s.code() != Code::kNotFound) return s;
    }
    return {};
  }

  Result<FileStatus> status(const std::string& path) override {
    STOR_ASSIGN_OR_RETURN(std::string rel, internal::normalize_path(path));
    std::optional<Record> r = find(rel);
    if (!r) return Status::NotFound("no such tiered file: " + rel);
    return to_status(*r);
  }

  std::vector<FileStatus> status_all(const std::string& prefix_path) override {
    auto rel = internal::normalize_path(prefix_path);
    std::vector<FileStatus> out;
    if (!rel.is_ok()) return out;
    std::lock_guard lk(mu_);
    for (auto& [p, r] : records_) {
      if (rel->empty() || p == *rel || p.compare(0, rel->size() + 1, *rel + "/") == 0) out.push_back(to_status(r));
    }
    return out;
  }

  TierStats stats() const override {
    std::lock_guard lk(mu_);
    TierStats s = stats_;
    s.files = records_.size();
    s.fast_bytes = 0;
    for (auto& [p, r] : records_)
      if (fast_resident(r.residency)) s.fast_bytes += r.size;
    return s;
  }

  // ---- used by TierFile ----

  // For a handle pinned to the cold version `etag`: fetches that version unless the fast tier
  // already holds it (another handle fetched it meanwhile), then opens the fast copy. A handle
  // never adopts another version: if the record moved on, or the object was replaced in the cold
  // tier (the failed If-Match GET revalidates the record for later opens), this is Aborted.
  Result<std::unique_ptr<BackendFile>> open_version_for_read(const std::string& rel, const std::string& etag) {
    auto op = op_lock(rel);
    std::lock_guard g(*op);
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

  void count_footer_hit() {
    std::lock_guard lk(mu_);
    ++stats_.footer_hits;
  }

  Status closed(const std::string& rel, bool wrote) {
    Status s;
    bool export_now = false;
    {
      std::lock_guard lk(mu_);
      if (--open_handles_[rel] == 0) open_handles_.erase(rel);
      auto it = records_.find(rel);
      if (wrote && it != records_.end()) {
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
        export_now = opts_.auto_export && !open_handles_.count(rel);
      }
    }
    if (s.is_ok() && export_now) {
      auto op = op_lock(rel);
      std::lock_guard g(*op);
      s = export_locked(rel);
    }
    return s;
  }

 private:
  Uri fast_uri(const std::string& rel) const {
    Uri u = fast_root_;
    if (!rel.empty()) u.path = (u.path.empty() || u.path.back() == '/' ? u.path : u.path + "/") + rel;
    return u;
  }

  std::shared_ptr<std::mutex> op_lock(const std::string& rel) {
    std::lock_guard lk(mu_);
    auto& m = op_locks_[rel];
    if (!m) m = std::make_shared<std::mutex>();
    return m;
  }

  std::optional<Record> find(const std::string& rel) const {
    std::lock_guard lk(mu_);
    auto it = records_.find(rel);
    if (it == records_.end()) return std::nullopt;
    return it->second;
  }

  bool is_directory(const std::string& rel) const {
    std::lock_guard lk(mu_);
    auto it = records_.lower_bound(rel + "/");
    return it != records_.end() && it->first.compare(0, rel.size() + 1, rel + "/") == 0;
  }

  // Caller holds mu_. Keeps the journal short: replay time and disk use stay bounded.
  void maybe_compact() {
    if (journal_->appended_since_compaction() >= kCompactEvery) (void)journal_->compact(records_);
  }

  // Caller holds mu_.
  void note_access(const std::string& rel, int64_t now) {
    auto it = records_.find(rel);
    if (it == records_.end()) return;
    it->second.last_access_ns = now;
    ++it->second.reads;
    int64_t& persisted = persisted_access_[rel];
    if (now - persisted >= opts_.access_persist_interval_ns) {
      persisted = now;
      (void)journal_->put(it->second, false);  // steers the policy only; losing it loses nothing
      maybe_compact();
    }
  }

  Status make_fast_parents(const std::string& rel) {
    for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
      Status s = opts_.fast->mkdir(fast_uri(rel.substr(0, slash)), 0755);
      if (!s.is_ok() && s.code() != Code::kAlreadyExists) return s;
    }
    return {};
  }

  static ColdObject known_of(const Record& r) { return {r.path, r.size, r.cold_mtime_ns, r.cold_etag}; }

  Status changed_since_open(const std::string& rel, const std::string& opened, const std::string& now) const {
    // The record's version at open may already have been stale (replaced after the listing).
    return Status::Aborted(cold_->uri_of(rel) + " no longer holds the version this handle opened (ETag " + opened +
                                ", now " + (now.empty() ? "unknown" : now) + "): reopen to read the new version");
  }

  // Caller holds the op lock of rel. Promotion (promote(), opening for writing): fetches the
  // record's version; if the object was replaced since the listing, adopts and fetches the new one.
  Status fetch_locked(const std::string& rel) {
    Status s = fetch_once(rel);
    if (s.is_ok()) return s;
    bool adopted = false;
    Status v = revalidate_after_failed_fetch(rel, s, &adopted);
    if (!adopted) return v;
    return fetch_once(rel);
  }

  // Caller holds the op lock of rel. After fetch_once failed with `s`: the object may have been
  // replaced since the listing (a ranged GET with If-Match fails). One HEAD tells; a replaced
  // object's new size/mtime/ETag are adopted by the record (*adopted), so the next open sees the
  // new version. Otherwise returns why the fetch failed.
  Status revalidate_after_failed_fetch(const std::string& rel, const Status& s, bool* adopted) {
    *adopted = false;
    std::optional<Record> r = find(rel);
    if (!r || fast_resident(r->residency)) return s;
    auto current = cold_->stat(rel);
    if (!current.is_ok()) {
      if (current.status().code() == Code::kNotFound)
        return Status::NotFound(cold_->uri_of(rel) + " was deleted from the cold tier; run sync");
      return s;
    }
    if (current->etag == r->cold_etag) return s;  // same version: a real failure
    {
      std::lock_guard lk(mu_);
      Record& cur = records_[rel];
      cur.size = current->size;
      cur.mtime_ns = current->mtime_ns;
      cur.cold_etag = current->etag;
      cur.cold_mtime_ns = current->mtime_ns;
      footers_.erase(rel);
      STOR_RETURN_IF_ERROR(journal_->put(cur, true));
    }
    *adopted = true;
    return {};
  }

  Status fetch_once(const std::string& rel) {
    std::optional<Record> r = find(rel);
    if (!r) return Status::NotFound("no such tiered file: " + rel);
    if (fast_resident(r->residency)) return {};
    STOR_RETURN_IF_ERROR(make_fast_parents(rel));
    STOR_ASSIGN_OR_RETURN(auto f, opts_.fast->open(fast_uri(rel), OpenOptions{kOpenWrite | kOpenCreate | kOpenTruncate}));
    Status s = cold_->fetch_into(rel, known_of(*r), *f, opts_.fetch_chunk, nullptr);
    if (s.is_ok() && f->stat().is_ok() && f->stat()->size != r->size)
      s = Status::IoError("fetched size differs from the recorded size");
    // Data reaches the disk before the record says it is there.
    if (s.is_ok() && opts_.durable_fetch) s = f->sync(true);
    Status c = f->close();
    if (s.is_ok()) s = c;
    if (!s.is_ok()) {
      (void)opts_.fast->remove(fast_uri(rel));
      return s.with_context("fetch " + cold_->uri_of(rel));
    }
    std::lock_guard lk(mu_);
    Record& cur = records_[rel];
    cur.residency = Residency::kCached;
    ++stats_.fetches;
    stats_.fetched_bytes += cur.size;
    kick_policy_if_full();
    footers_.erase(rel);
    // Not durable: if lost, the file is fetched again.
    STOR_RETURN_IF_ERROR(journal_->put(cur, false));
    maybe_compact();
    return {};
  }

  // A file known only from the cold tier's listing: nothing fetched yet.
  static Record uncached_record(const std::string& rel, const ColdObject& o, int64_t now) {
    Record r;
    r.path = rel;
    r.residency = Residency::kUncached;
    r.size = o.size;
    r.mtime_ns = o.mtime_ns;
    r.cold_etag = o.etag;
    r.cold_mtime_ns = o.mtime_ns;
    r.last_access_ns = now;
    return r;
  }

  // The fast copy of rel written to the cold tier, with the size and CRC32C of what was read.
  struct Upload {
    ColdObject object;
    uint64_t size = 0;
    uint32_t crc = 0;
  };
  Result<Upload> upload_fast_copy(const std::string& rel) {
    STOR_ASSIGN_OR_RETURN(auto f, opts_.fast->open(fast_uri(rel), OpenOptions{kOpenRead}));
    auto info = f->stat();
    if (!info.is_ok()) {
      (void)f->close();
      return info.status();
    }
    Upload up;
    up.size = info->size;
    auto obj = cold_->write_from(rel, *f, up.size, &up.crc);
    (void)f->close();
    if (!obj.is_ok()) return obj.status();
    up.object = *obj;
    return up;
  }

  // Caller holds the op lock of rel.
  Status export_locked(const std::string& rel) {
    std::optional<Record> r = find(rel);
    if (!r) return Status::NotFound("no such tiered file: " + rel);
    if (r->residency != Residency::kDirty) return {};
    {
      std::lock_guard lk(mu_);
      if (open_handles_.count(rel)) return Status::Busy(rel + " is open; exported when closed (next sync)");
    }
    STOR_ASSIGN_OR_RETURN(Upload up, upload_fast_copy(rel));
    std::lock_guard lk(mu_);
    Record& cur = records_[rel];
    cur.residency = Residency::kCached;
    cur.size = up.size;
    cur.cold_etag = up.object.etag;
    cur.cold_mtime_ns = up.object.mtime_ns;
    ++stats_.exports;
    stats_.exported_bytes += up.size;
    STOR_RETURN_IF_ERROR(journal_->put(cur, false));  // if lost, the file is exported again
    maybe_compact();
    return {};
  }

  void hook(const std::string& rel, const char* step) {
    if (opts_.demote_hook) opts_.demote_hook(rel, step);
  }

  // Caller holds the op lock of rel. Copy, verify, switch, release.
  Status demote_locked(const std::string& rel) {
    std::optional<Record> r = find(rel);
    if (!r) return Status::NotFound("no such tiered file: " + rel);
    if (!fast_resident(r->residency)) return {};
    {
      std::lock_guard lk(mu_);
      if (open_handles_.count(rel)) return Status::Busy(rel + " is open");
    }
    ColdObject target;
    bool need_copy = r->residency == Residency::kDirty;
    if (!r->cold_etag.empty()) {
      auto current = cold_->stat(rel);
      if (current.is_ok() && current->etag != r->cold_etag)
        return Status::Aborted(cold_->uri_of(rel) + " changed in the cold tier since the last sync: run sync first");
      if (!current.is_ok() && current.status().code() != Code::kNotFound) return current.status();
      if (!current.is_ok()) need_copy = true;  // the cold copy vanished: copy again
      else target = *current;
    }
    if (need_copy) {
      STOR_ASSIGN_OR_RETURN(Upload up, upload_fast_copy(rel));
      hook(rel, "copied");
      // Verify by reading the cold copy back before anything depends on it.
      if (up.object.size != up.size)
        return Status::Corruption(cold_->uri_of(rel) + ": cold copy has " + std::to_string(up.object.size) +
                                       " bytes, expected " + std::to_string(up.size));
      CrcSink sink;
      STOR_RETURN_IF_ERROR(cold_->fetch_into(rel, up.object, sink, opts_.fetch_chunk, nullptr));
      if (sink.crc != up.crc)
        return Status::Corruption(cold_->uri_of(rel) + ": cold copy does not read back as written (CRC mismatch)");
      hook(rel, "verified");
      target = up.object;
    }
    {
      std::lock_guard lk(mu_);
      Record& cur = records_[rel];
      cur.residency = Residency::kDemoted;
      cur.size = target.size;
      cur.cold_etag = target.etag;
      cur.cold_mtime_ns = target.mtime_ns;
      STOR_RETURN_IF_ERROR(journal_->put(cur, true));  // the switch: durable before the release
      ++stats_.demotions;
      stats_.demoted_bytes += target.size;
    }
    hook(rel, "switched");
    Status s = opts_.fast->remove(fast_uri(rel));
    if (!s.is_ok() && s.code() != Code::kNotFound) return s;  // retried by recovery at the next open
    hook(rel, "released");
    return {};
  }

  Result<std::shared_ptr<const Footer>> parquet_footer(const Record& r) {
    {
      std::lock_guard lk(mu_);
      auto it = footers_.find(r.path);
      if (it != footers_.end() && it->second->etag == r.cold_etag) {
        ++stats_.footer_hits;
        return it->second;
      }
    }
    if (r.size < 8) return std::shared_ptr<const Footer>();
    const ColdObject known = known_of(r);
    auto footer = std::make_shared<Footer>();
    footer->etag = r.cold_etag;
    const uint64_t tail = std::min<uint64_t>(kFooterTail, r.size);
    std::string bytes(tail, '\0');
    STOR_ASSIGN_OR_RETURN(size_t n, cold_->read(r.path, known, r.size - tail, tail, bytes.data()));
    if (n != tail) return Status::IoError(cold_->uri_of(r.path) + ": short read of the parquet tail");
    footer->offset = r.size - tail;
    // Parquet ends with <footer><4-byte little-endian footer length>"PAR1".
    if (std::memcmp(bytes.data() + tail - 4, "PAR1", 4) == 0) {
      const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + tail - 8);
      const uint64_t footer_len = p[0] | (p[1] << 8) | (p[2] << 16) | (uint64_t(p[3]) << 24);
      const uint64_t needed = footer_len + 8;
      if (needed > tail && needed <= r.size) {
        std::string head(needed - tail, '\0');
        STOR_ASSIGN_OR_RETURN(size_t m, cold_->read(r.path, known, r.size - needed, head.size(), head.data()));
        if (m != head.size()) return Status::IoError(cold_->uri_of(r.path) + ": short read of the parquet footer");
        bytes = head + bytes;
        footer->offset = r.size - needed;
      }
    }
    footer->bytes = std::move(bytes);
    std::lock_guard lk(mu_);
    ++stats_.footer_prefetches;
    footers_[r.path] = footer;
    return std::shared_ptr<const Footer>(footer);
  }

  Status sync_one(const std::string& path, const std::map<std::string, ColdObject>& remote, SyncReport* report) {
    auto op = op_lock(path);
    std::lock_guard g(*op);
    std::optional<Record> found = find(path);
    if (!found) return {};
    Record r = *found;
    {
      std::lock_guard lk(mu_);
      if (open_handles_.count(path)) return Status::Busy("open; synced at the next sync after it is closed");
    }
    auto it = remote.find(path);
    const bool in_remote = it != remote.end();
    const bool remote_changed = r.cold_etag.empty() ? in_remote : (!in_remote || it->second.etag != r.cold_etag);
    switch (r.residency) {
      case Residency::kUncached:
      case Residency::kDemoted:
      case Residency::kCached: {
        if (!in_remote) {
          {
            std::lock_guard lk(mu_);
            records_.erase(path);
            footers_.erase(path);
            STOR_RETURN_IF_ERROR(journal_->erase(path, true));
          }
          if (r.residency == Residency::kCached) (void)opts_.fast->remove(fast_uri(path));
          report->deleted_locally.push_back(path);
        } else if (it->second.etag != r.cold_etag) {
          {
            std::lock_guard lk(mu_);
            Record& cur = records_[path];
            cur.residency = Residency::kUncached;  // fetched again on the next read
            cur.size = it->second.size;
            cur.mtime_ns = it->second.mtime_ns;
            cur.cold_etag = it->second.etag;
            cur.cold_mtime_ns = it->second.mtime_ns;
            footers_.erase(path);
            STOR_RETURN_IF_ERROR(journal_->put(cur, true));
          }
          if (r.residency == Residency::kCached) (void)opts_.fast->remove(fast_uri(path));
          report->imported_changed.push_back(path);
        }
        return {};
      }
      case Residency::kDirty: {
        if (!remote_changed) {
          STOR_RETURN_IF_ERROR(export_locked(path));
          report->exported.push_back(path);
          return {};
        }
        if (!in_remote) {
          STOR_RETURN_IF_ERROR(export_locked(path));
          report->exported.push_back(path);
          report->conflicts.push_back(path + " (deleted in the bucket, changed locally: local version exported again)");
          return {};
        }
        // Both sides changed: the bucket keeps the path, the local version moves aside.
        std::string aside = path + internal::kConflictSuffix;
        for (int n = 2; find(aside) || is_directory(aside); ++n)
          aside = path + internal::kConflictSuffix + "-" + std::to_string(n);
        STOR_RETURN_IF_ERROR(opts_.fast->rename(fast_uri(path), fast_uri(aside)));
        {
          std::lock_guard lk(mu_);
          Record moved = r;
          moved.path = aside;
          moved.cold_etag.clear();
          moved.cold_mtime_ns = 0;
          records_[aside] = moved;
          Record& cur = records_[path];
          cur.residency = Residency::kUncached;
          cur.size = it->second.size;
          cur.mtime_ns = it->second.mtime_ns;
          cur.cold_etag = it->second.etag;
          cur.cold_mtime_ns = it->second.mtime_ns;
          footers_.erase(path);
          STOR_RETURN_IF_ERROR(journal_->put(moved, false));
          STOR_RETURN_IF_ERROR(journal_->put(cur, true));
        }
        report->conflicts.push_back(path + " (changed in the bucket and locally: bucket version kept at the path, "
                                           "local version exported as " + aside + ")");
        auto op2 = op_lock(aside);
        std::lock_guard g2(*op2);
        STOR_RETURN_IF_ERROR(export_locked(aside));
        report->exported.push_back(aside);
        return {};
      }
    }
    return {};
  }

  TierOptions opts_;
  Uri fast_root_;
  std::unique_ptr<ColdTier> cold_;
  std::unique_ptr<Journal> journal_;
  mutable std::mutex mu_;
  std::map<std::string, Record> records_;
  std::map<std::string, int> open_handles_;
  std::map<std::string, std::shared_ptr<std::mutex>> op_locks_;
  std::map<std::string, int64_t> persisted_access_;
  std::map<std::string, std::shared_ptr<const Footer>> footers_;
  TierStats stats_;

  std::mutex policy_mu_;
  std::condition_variable policy_cv_;
  bool stopping_ = false, kicked_ = false;
  uint64_t policy_runs_ = 0;
  PolicyReport last_policy_;
  std::thread policy_thread_;  // last member: started after everything else is built
};

Status TierFile::ensure_fast() {
  if (fast_) return {};
  if (!pinned_) return Status::Internal("tiered file " + rel_ + " has neither a fast copy nor a version");
  STOR_ASSIGN_OR_RETURN(fast_, store_->open_version_for_read(rel_, pinned_->etag));
  return {};
}

void TierFile::read_async(void* buf, size_t len, uint64_t offset, IoCallback done) {
  BackendFile* fast = nullptr;
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
    if (Status s = ensure_fast(); !s.is_ok()) return done(std::move(s));
    fast = fast_.get();
  }
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
  {
    std::lock_guard lk(mu_);
    if (!open_) return {};
    open_ = false;
    fast = std::move(fast_);
  }
  Status s = fast ? fast->close() : Status::ok();
  Status c = store_->closed(rel_, wrote_);
  store_.reset();  // a closed handle must not keep the namespace (and its state lock) alive
  return s.is_ok() ? c : s;
}

}  // namespace

Result<std::shared_ptr<TieredStore>> TieredStore::open(TierOptions opts) {
  if (!opts.fast || !opts.cold) return Status::InvalidArgument("tiered store needs a fast and a cold backend");
  if (opts.state_dir.empty()) return Status::InvalidArgument("tiered store needs a state_dir");
  if (!opts.clock) opts.clock = system_clock_ns;
  if (opts.low_watermark_bytes > opts.high_watermark_bytes)
    return Status::InvalidArgument("tiering: low watermark above the high watermark");
  STOR_ASSIGN_OR_RETURN(Uri fast_root, Uri::parse(opts.fast_root));
  while (fast_root.path.size() > 1 && fast_root.path.back() == '/') fast_root.path.pop_back();
  STOR_ASSIGN_OR_RETURN(auto cold, ColdTier::make(opts.cold, opts.cold_root, opts.cold_dir_markers));
  auto store = std::make_shared<TieredStoreImpl>(std::move(opts), std::move(fast_root), std::move(cold));
  STOR_RETURN_IF_ERROR(store->init());
  store->start_policy_thread();
  return std::shared_ptr<TieredStore>(store);
}

}  // namespace stor::tiering
