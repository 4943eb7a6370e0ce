// The link's two directions: import_listing (cold listing -> uncached records) and sync (export
// dirty files, import new / changed / deleted objects, resolve conflicts; see stor/tiering.h).
#include "backends/tier/tiered_store_impl.h"

#include <chrono>
#include <thread>

namespace stor::tiering::internal {

Result<size_t> TieredStoreImpl::import_listing() {
  STOR_ASSIGN_OR_RETURN(auto objects, cold_->list_all());
  const int64_t now = opts_.clock();
  std::vector<Record> candidates;
  for (auto& o : objects) {
    auto rel = normalize_path(o.path);
    if (rel.is_ok() && !rel->empty()) candidates.push_back(uncached_record(*rel, o, now));
  }
  std::lock_guard lk(mu_);
  // One append for all (absent paths only: a file another process made meanwhile stays its own).
  std::vector<std::string> added;
  STOR_RETURN_IF_ERROR(journal_->insert_absent(&records_, candidates, false, &added));
  for (const Record& c : candidates)  // the listing confirms every record naming its ETag
    if (auto it = records_.find(c.path); it != records_.end() && it->second.cold_etag == c.cold_etag) validated(c.path);
  // Then one durable checkpoint.
  STOR_RETURN_IF_ERROR(journal_->compact(&records_));
  return added.size();
}

// Automatic export and import: sync() on an interval. A file open at that moment is skipped
// (reported Busy to nobody) and taken by a later round; errors are retried the same way.
void TieredStoreImpl::start_sync_thread() {
  if (opts_.sync_interval_ns <= 0) return;
  sync_thread_ = std::thread([this] {
    std::unique_lock lk(policy_mu_);
    while (!stopping_) {
      policy_cv_.wait_for(lk, std::chrono::nanoseconds(opts_.sync_interval_ns), [&] { return stopping_; });
      if (stopping_) break;
      lk.unlock();
      (void)sync();
      lk.lock();
    }
  });
}

Status TieredStoreImpl::start_listener() {
  if (opts_.notify_listen.empty()) return {};
  // The handler holds no reference: the destructor stops the listener before anything it uses.
  STOR_ASSIGN_OR_RETURN(listener_, NotifyListener::start(opts_.notify_listen, [this](const std::vector<BucketEvent>& events) {
    for (const auto& e : events) {
      auto rel = cold_->rel_of_key(e.bucket, e.key);
      if (!rel) continue;  // another bucket or prefix
      auto norm = normalize_path(*rel);
      if (!norm.is_ok() || norm->empty() || *norm != *rel) continue;  // markers, "..", the state dir
      apply_bucket_event(*norm, e);
    }
  }));
  return {};
}

void TieredStoreImpl::apply_bucket_event(const std::string& rel, const BucketEvent& e) {
  if (!e.removed && !e.etag.empty()) {
    std::lock_guard lk(mu_);
    if (!journal_->refresh(&records_).is_ok()) return;
    auto it = records_.find(rel);
    if (it != records_.end() && it->second.cold_etag == e.etag) {
      validated(rel);  // a version the record already names (our own export, for one)
      return;
    }
  }
  // The event names a key to check, not the truth: the bucket says what is there now. A server
  // may send the event a moment before the new version is visible: wait for it, briefly.
  Result<ColdObject> current = Status::NotFound("");
  for (int attempt = 0; attempt < 10; ++attempt) {
    current = cold_->stat(rel);
    if (!current.is_ok() && current.status().code() != Code::kNotFound) return;  // the interval sync retries
    const bool settled = e.removed ? !current.is_ok() : (current.is_ok() && (e.etag.empty() || current->etag == e.etag));
    if (settled) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::map<std::string, ColdObject> remote;
  if (current.is_ok()) remote[rel] = *current;
  if (!find(rel)) {
    if (!current.is_ok()) return;
    std::lock_guard lk(mu_);
    std::vector<std::string> added;
    if (journal_->insert_absent(&records_, {uncached_record(rel, *current, opts_.clock())}, false, &added).is_ok())
      for (const auto& p : added) validated(p);
    return;
  }
  SyncReport ignored;
  (void)sync_one(rel, remote, &ignored);  // an open file: the next open or sync round takes it
  std::lock_guard lk(mu_);
  if (auto it = records_.find(rel); it != records_.end() && current.is_ok() && it->second.cold_etag == current->etag)
    validated(rel);
}

Result<SyncReport> TieredStoreImpl::sync() {
  STOR_RETURN_IF_ERROR(finish_pending_renames());  // the listing must not see a half-moved file
  STOR_ASSIGN_OR_RETURN(auto listed, cold_->list_all());
  std::map<std::string, ColdObject> remote;
  for (auto& o : listed) {
    auto rel = normalize_path(o.path);
    if (rel.is_ok() && !rel->empty()) remote[*rel] = o;
  }
  const std::map<std::string, ColdObject> listed_by_path = remote;
  SyncReport report;
  std::vector<std::string> paths;
  {
    std::lock_guard lk(mu_);
    STOR_RETURN_IF_ERROR(journal_->refresh(&records_));
    for (auto& [p, r] : records_) paths.push_back(p);
  }
  for (const auto& path : paths) {
    Status s = sync_one(path, remote, &report);
    if (!s.is_ok()) report.failed.push_back(path + ": " + s.to_string());
    remote.erase(path);
  }
  const int64_t now = opts_.clock();
  std::lock_guard lk(mu_);
  for (auto& [path, o] : listed_by_path)  // the listing confirms every record still naming its ETag
    if (auto it = records_.find(path); it != records_.end() && it->second.cold_etag == o.etag) validated(path);
  std::vector<Record> candidates;
  for (auto& [path, o] : remote)
    if (!records_.count(path)) candidates.push_back(uncached_record(path, o, now));
  // Absent paths only, checked under the journal's lock: a file another process created
  // meanwhile is not overwritten by the import (the next sync sees both: a conflict).
  STOR_RETURN_IF_ERROR(journal_->insert_absent(&records_, candidates, false, &report.imported_new));
  for (const auto& path : report.imported_new) validated(path);
  STOR_RETURN_IF_ERROR(journal_->compact(&records_));
  return report;
}

Status TieredStoreImpl::sync_one(const std::string& path, const std::map<std::string, ColdObject>& remote,
                                 SyncReport* report) {
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(path));
  std::optional<Record> found = find(path);
  if (!found) return {};
  Record r = *found;
  auto it = remote.find(path);
  bool in_remote = it != remote.end();
  bool remote_changed = r.cold_etag.empty() ? in_remote : (!in_remote || it->second.etag != r.cold_etag);
  if (!remote_changed && r.residency != Residency::kDirty) return {};  // in sync, open or not
  {
    std::lock_guard lk(mu_);
    if (is_open(path)) return Status::Busy("open; synced at the next sync after it is closed");
  }
  if (remote_changed && in_remote && r.residency == Residency::kDirty && r.export_pending) {
    // An export interrupted by a crash may have completed: then the new object is ours.
    bool ours = false;
    STOR_RETURN_IF_ERROR(adopt_completed_export(path, it->second, &ours));
    if (ours) {
      r = *find(path);
      if (r.residency != Residency::kDirty) {
        report->exported.push_back(path);
        return {};
      }
      remote_changed = false;  // changed locally since: exported below over our own upload
    }
  }
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
          take_cold_version(cur, it->second);
          footers_.erase(path);
          STOR_RETURN_IF_ERROR(journal_->put(cur, true));
        }
        if (r.residency == Residency::kCached) (void)opts_.fast->remove(fast_uri(path));
        report->imported_changed.push_back(path);
      }
      return {};
    }
    case Residency::kDirty: {
      ColdObject current;  // the bucket's version, when it changed
      if (in_remote) current = it->second;
      if (!remote_changed) {
        bool refused = false;
        Status s = export_locked(path, &refused);
        if (s.is_ok()) {
          report->exported.push_back(path);
          return {};
        }
        if (!refused) return s;
        // Changed in the bucket between the listing and the upload (the conditional write was
        // refused): the conflict rule, with what the bucket holds now.
        auto now = cold_->stat(path);
        if (!now.is_ok() && now.status().code() != Code::kNotFound) return now.status();
        in_remote = now.is_ok();
        if (in_remote) current = *now;
      }
      if (!in_remote) {
        if (!r.cold_etag.empty()) {
          // The object the record knew is gone: the local version is exported as a new one.
          std::lock_guard lk(mu_);
          Record& cur = records_[path];
          cur.cold_etag.clear();
          cur.cold_mtime_ns = 0;
          STOR_RETURN_IF_ERROR(journal_->put(cur, false));
        }
        STOR_RETURN_IF_ERROR(export_locked(path));
        report->exported.push_back(path);
        report->conflicts.push_back(path + " (deleted in the bucket, changed locally: local version exported again)");
        return {};
      }
      // Both sides changed: the bucket keeps the path, the local version moves aside.
      std::string aside;
      OpGuard g2;
      for (int n = 1;; ++n) {
        aside = path + kConflictSuffix + (n == 1 ? "" : "-" + std::to_string(n));
        if (find(aside) || is_directory(aside)) continue;
        auto locked = lock_op(aside);  // then checked again: another process may have taken the name
        if (!locked.is_ok()) return locked.status();
        g2 = std::move(locked).value();
        if (!find(aside) && !is_directory(aside)) break;
      }
      STOR_RETURN_IF_ERROR(opts_.fast->rename(fast_uri(path), fast_uri(aside)));
      {
        std::lock_guard lk(mu_);
        Record moved = r;
        moved.path = aside;
        moved.cold_etag.clear();
        moved.cold_mtime_ns = 0;
        moved.export_pending = false;
        records_[aside] = moved;
        Record& cur = records_[path];
        cur.residency = Residency::kUncached;
        take_cold_version(cur, current);
        footers_.erase(path);
        STOR_RETURN_IF_ERROR(journal_->put(moved, false));
        STOR_RETURN_IF_ERROR(journal_->put(cur, true));
      }
      report->conflicts.push_back(path + " (changed in the bucket and locally: bucket version kept at the path, "
                                         "local version exported as " + aside + ")");
      STOR_RETURN_IF_ERROR(export_locked(aside));
      report->exported.push_back(aside);
      return {};
    }
  }
  return {};
}

}  // namespace stor::tiering::internal
