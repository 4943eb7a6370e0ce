// Rename of a tiered file. The journal first records the intent (the target's record, naming its
// source in renamed_from, durably); then the cold object moves (S3: server-side copy + delete; a
// dirty file's stale object is just deleted), then the fast copy; then the source record goes and
// the intent is cleared. Every step is idempotent, so a crash anywhere is finished by replaying
// the intent (finish_pending_renames at open and before each sync): never both names, never none.
#include "backends/tier/tiered_store_impl.h"

#include <algorithm>

namespace stor::tiering::internal {

Status TieredStoreImpl::rename(const std::string& from_path, const std::string& to_path) {
  STOR_ASSIGN_OR_RETURN(std::string from, normalize_path(from_path));
  STOR_ASSIGN_OR_RETURN(std::string to, normalize_path(to_path));
  if (from.empty() || to.empty()) return Status::InvalidArgument("tier: cannot rename the namespace root");
  if (from == to) return find(from) ? Status::ok() : Status::NotFound("no such tiered file: " + from);
  // Both op locks, in path order (no deadlock with a concurrent rename the other way).
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_ops({from, to}));
  Record t;
  std::optional<Record> src = find(from);
  if (!src) {
    if (is_directory(from))
      return Status::Unsupported("tier: renaming a directory is not supported (rename its files): " + from);
    return Status::NotFound("no such tiered file: " + from);
  }
  if (find(to)) return Status::AlreadyExists("tier: rename target exists: " + to);
  if (is_directory(to)) return Status::IsADirectory("tier: rename target is a directory: " + to);
  if (to.compare(0, from.size() + 1, from + "/") == 0) return Status::InvalidArgument("tier: rename into itself");
  {
    std::lock_guard lk(mu_);
    if (is_open(from) || is_open(to)) return Status::Busy("tier: " + from + " is open");
    t = *src;
    t.path = to;
    t.renamed_from = from;
    if (t.residency == Residency::kDirty) {
      // The object at `from` (if any) is an older version of this file, not a copy at `to`.
      t.cold_etag.clear();
      t.cold_mtime_ns = 0;
      t.export_pending = false;
    }
    records_[to] = t;
    STOR_RETURN_IF_ERROR(journal_->put(t, true));  // the intent, before anything moves
  }
  hook(to, "rename-intent");
  Status s = finish_rename(to);
  if (!s.is_ok()) {
    // Nothing has moved locally yet (the cold step comes first and failed): undo the intent when
    // the source object is still where it was, so the file keeps its old name.
    const bool source_intact = src->cold_etag.empty() || cold_->stat(from).is_ok();
    if (source_intact) {
      if (src->residency != Residency::kDirty && !src->cold_etag.empty()) (void)cold_->remove(to);  // a half copy
      std::lock_guard lk(mu_);
      records_.erase(to);
      (void)journal_->erase(to, true);
    }
    return s.with_context("tier: rename " + from + " -> " + to);
  }
  return {};
}

// Callers hold the op locks of `to` and its source (or run single-threaded, at open).
Status TieredStoreImpl::finish_rename(const std::string& to) {
  std::optional<Record> t = find(to);
  if (!t || t->renamed_from.empty()) return {};
  const std::string from = t->renamed_from;
  std::optional<Record> src = find(from);
  if (src && !src->cold_etag.empty()) {
    if (t->residency == Residency::kDirty) {
      Status s = cold_->remove(from);  // a renamed dirty file is exported under its new name
      if (!s.is_ok() && s.code() != Code::kNotFound) return s;
    } else {
      Status s = cold_->rename(from, to);
      if (!s.is_ok()) {
        // Already moved before a crash: the source is gone and the target is there.
        if (s.code() != Code::kNotFound || !cold_->stat(to).is_ok()) return s;
      }
      STOR_ASSIGN_OR_RETURN(ColdObject moved, cold_->stat(to));
      std::lock_guard lk(mu_);
      Record& cur = records_[to];
      cur.cold_etag = moved.etag;  // a copy may carry a new ETag
      cur.cold_mtime_ns = moved.mtime_ns;
      validated(to);
      STOR_RETURN_IF_ERROR(journal_->put(cur, false));  // every record change is journaled (other processes)
    }
  }
  hook(to, "rename-cold");
  if (fast_resident(t->residency) && opts_.fast->stat(fast_uri(from)).is_ok()) {
    STOR_RETURN_IF_ERROR(make_parents(*opts_.fast, fast_root_, to));
    STOR_RETURN_IF_ERROR(opts_.fast->rename(fast_uri(from), fast_uri(to)));
  }
  hook(to, "rename-fast");
  std::lock_guard lk(mu_);
  if (records_.erase(from)) {
    footers_.erase(from);
    validated_ns_.erase(from);
    STOR_RETURN_IF_ERROR(journal_->erase(from, true));
  }
  Record& cur = records_[to];
  cur.renamed_from.clear();
  return journal_->put(cur, true);
}

Status TieredStoreImpl::finish_pending_renames() {
  std::vector<std::pair<std::string, std::string>> pending;
  {
    std::lock_guard lk(mu_);
    for (auto& [p, r] : records_)
      if (!r.renamed_from.empty()) pending.emplace_back(p, r.renamed_from);
  }
  Status first;
  for (auto& [to, from] : pending) {
    auto g = lock_ops({from, to});
    Status s = g.is_ok() ? finish_rename(to) : g.status();
    if (!s.is_ok() && first.is_ok()) first = s.with_context("tier: finish rename " + from + " -> " + to);
  }
  return first;
}

}  // namespace stor::tiering::internal
