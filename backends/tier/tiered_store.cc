// The tiered store: records (journal.h) say where each file's bytes are; the fast backend holds
// dirty and cached files under fast_root, the cold tier (cold_tier.h) everything else.
// This file: opening a store, crash recovery, the records and namespace queries; the other
// concerns are in tiered_store_*.cc (see tiered_store_impl.h).
#include "backends/tier/tiered_store.h"

#include <algorithm>
#include <chrono>

#include "backends/tier/tiered_store_impl.h"

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

namespace {

constexpr uint64_t kCompactEvery = 20'000;  // journal lines between checkpoints

FileStatus to_status(const Record& r) {
  // The record's last_access_ns starts at import / creation time so that the policy can age a
  // file nobody reads; as a "last read" it only means something once the file was read.
  return {r.path, r.residency, r.size, r.mtime_ns, r.cold_etag, r.reads ? r.last_access_ns : 0, r.reads};
}

}  // namespace

TieredStoreImpl::~TieredStoreImpl() {
  listener_.reset();  // its handler uses everything else
  {
    std::lock_guard lk(policy_mu_);
    stopping_ = true;
  }
  policy_cv_.notify_all();
  if (policy_thread_.joinable()) policy_thread_.join();
  if (sync_thread_.joinable()) sync_thread_.join();
}

Status TieredStoreImpl::init() {
  bool alone = false;
  STOR_ASSIGN_OR_RETURN(journal_, Journal::open(opts_.state_dir, &records_, &alone));
  // Another process has the namespace open: its copies may be mid-move, nothing to recover.
  if (!alone) {
    journal_->opened();
    return {};
  }
  Status s = recover();
  journal_->opened();
  return s;
}

// Alone with the state (no other instance has it open): finish or roll back what a crash
// interrupted.
Status TieredStoreImpl::recover() {
  // A rename a crash interrupted is finished first; when the cold tier cannot be reached now, its
  // records stay as they are (the source's copies have not moved yet) and sync finishes it.
  (void)finish_pending_renames();
  // Finish or roll back whatever a crash interrupted; the journal says which copy is valid.
  for (auto it = records_.begin(); it != records_.end();) {
    Record& r = it->second;
    if (!r.renamed_from.empty()) {  // an unfinished rename's target: its copies are still at the source
      ++it;
      continue;
    }
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
  return journal_->compact(&records_);
}

Result<FileInfo> TieredStoreImpl::stat(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  STOR_RETURN_IF_ERROR(refresh());
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

Result<std::vector<DirEntry>> TieredStoreImpl::list(const std::string& dir) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(dir));
  const std::string prefix = rel.empty() ? "" : rel + "/";
  std::vector<DirEntry> out;
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(journal_->refresh(&records_));
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

Status TieredStoreImpl::remove(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(rel));
  std::optional<Record> r;
  {
    std::lock_guard lk(mu_);
    auto it = records_.find(rel);
    if (it == records_.end()) return Status::NotFound("no such tiered file: " + rel);
    if (is_open(rel)) return Status::Busy(rel + " is open");
    r = it->second;
    // Forget first: a crash after this leaves at worst an orphan copy, never a dangling record.
    records_.erase(it);
    footers_.erase(rel);
    validated_ns_.erase(rel);
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

Result<FileStatus> TieredStoreImpl::status(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  STOR_RETURN_IF_ERROR(refresh());
  std::optional<Record> r = find(rel);
  if (!r) return Status::NotFound("no such tiered file: " + rel);
  return to_status(*r);
}

std::vector<FileStatus> TieredStoreImpl::status_all(const std::string& prefix_path) {
  auto rel = normalize_path(prefix_path);
  std::vector<FileStatus> out;
  if (!rel.is_ok()) return out;
  std::lock_guard lk(mu_);
  (void)journal_->refresh(&records_);  // on failure: what this process knows
  for (auto& [p, r] : records_) {
    if (rel->empty() || p == *rel || p.compare(0, rel->size() + 1, *rel + "/") == 0) out.push_back(to_status(r));
  }
  return out;
}

TierStats TieredStoreImpl::stats() const {
  std::lock_guard lk(mu_);
  (void)journal_->refresh(&records_);  // on failure: what this process knows
  TierStats s = stats_;
  s.files = records_.size();
  s.fast_bytes = 0;
  for (auto& [p, r] : records_)
    if (fast_resident(r.residency)) s.fast_bytes += r.size;
  return s;
}

Result<TieredStoreImpl::OpGuard> TieredStoreImpl::lock_ops(std::vector<std::string> rels) {
  std::sort(rels.begin(), rels.end());
  rels.erase(std::unique(rels.begin(), rels.end()), rels.end());
  OpGuard g;
  {
    std::lock_guard lk(mu_);
    for (const auto& rel : rels) {
      auto& m = op_locks_[rel];
      if (!m) m = std::make_shared<std::mutex>();
      g.mutexes.push_back(m);
    }
  }
  for (auto& m : g.mutexes) g.held.emplace_back(*m);
  std::vector<uint64_t> slots;
  for (const auto& rel : rels) {
    const uint64_t slot = Journal::slot_of(rel, Journal::Slot::kOp);
    // Two paths on one slot (a hash collision) take it once: a second descriptor would wait for the first.
    if (std::find(slots.begin(), slots.end(), slot) != slots.end()) continue;
    slots.push_back(slot);
    STOR_ASSIGN_OR_RETURN(FileLock f, journal_->lock_path(rel, Journal::Slot::kOp, true, true));
    g.files.push_back(std::move(f));
  }
  STOR_RETURN_IF_ERROR(refresh());
  return g;
}

Status TieredStoreImpl::refresh() {
  std::lock_guard lk(mu_);
  return journal_->refresh(&records_);
}

bool TieredStoreImpl::is_open(const std::string& rel) {
  if (open_handles_.count(rel)) return true;
  // Handles of other processes hold the slot shared: an exclusive try fails while one is open.
  return !journal_->lock_path(rel, Journal::Slot::kOpen, true, false).is_ok();
}

std::optional<Record> TieredStoreImpl::find(const std::string& rel) const {
  std::lock_guard lk(mu_);
  auto it = records_.find(rel);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

bool TieredStoreImpl::is_directory(const std::string& rel) const {
  std::lock_guard lk(mu_);
  auto it = records_.lower_bound(rel + "/");
  return it != records_.end() && it->first.compare(0, rel.size() + 1, rel + "/") == 0;
}

// Caller holds mu_. Keeps the journal short: replay time and disk use stay bounded.
void TieredStoreImpl::maybe_compact() {
  if (journal_->appended_since_compaction() >= kCompactEvery) (void)journal_->compact(&records_);
}

// Caller holds mu_.
void TieredStoreImpl::note_access(const std::string& rel, int64_t now) {
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

// A file known only from the cold tier's listing: nothing fetched yet.
Record TieredStoreImpl::uncached_record(const std::string& rel, const ColdObject& o, int64_t now) {
  Record r;
  r.path = rel;
  r.residency = Residency::kUncached;
  take_cold_version(r, o);
  r.last_access_ns = now;
  return r;
}

}  // namespace internal

Result<std::shared_ptr<TieredStore>> TieredStore::open(TierOptions opts) {
  if (!opts.fast || !opts.cold) return Status::InvalidArgument("tiered store needs a fast and a cold backend");
  if (opts.state_dir.empty()) return Status::InvalidArgument("tiered store needs a state_dir");
  if (!opts.clock) opts.clock = system_clock_ns;
  if (opts.low_watermark_bytes > opts.high_watermark_bytes)
    return Status::InvalidArgument("tiering: low watermark above the high watermark");
  STOR_ASSIGN_OR_RETURN(Uri fast_root, internal::parse_root(opts.fast_root));
  STOR_ASSIGN_OR_RETURN(auto cold, internal::ColdTier::make(opts.cold, opts.cold_root, opts.cold_dir_markers));
  auto store = std::make_shared<internal::TieredStoreImpl>(std::move(opts), std::move(fast_root), std::move(cold));
  STOR_RETURN_IF_ERROR(store->init());
  STOR_RETURN_IF_ERROR(store->start_listener());
  store->start_policy_thread();
  store->start_sync_thread();
  return std::shared_ptr<TieredStore>(store);
}

}  // namespace stor::tiering

