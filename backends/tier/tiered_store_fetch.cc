// Fetch and promote: copying a cold file's recorded version to the fast tier, and adopting the
// new version of an object replaced since the listing.
#include "backends/tier/tiered_store_impl.h"

namespace stor::tiering::internal {

Status TieredStoreImpl::promote(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(rel));
  return fetch_locked(rel);
}

Status TieredStoreImpl::changed_since_open(const std::string& rel, const std::string& opened,
                                           const std::string& now) const {
  // The record's version at open may already have been stale (replaced after the listing).
  return Status::Aborted(cold_->uri_of(rel) + " no longer holds the version this handle opened (ETag " + opened +
                              ", now " + (now.empty() ? "unknown" : now) + "): reopen to read the new version");
}

// Caller holds the op lock of rel. Promotion (promote(), opening for writing): fetches the
// record's version; if the object was replaced since the listing, adopts and fetches the new one.
Status TieredStoreImpl::fetch_locked(const std::string& rel) {
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
Status TieredStoreImpl::revalidate_after_failed_fetch(const std::string& rel, const Status& s, bool* adopted) {
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
    take_cold_version(cur, *current);
    footers_.erase(rel);
    validated(rel);
    STOR_RETURN_IF_ERROR(journal_->put(cur, true));
  }
  *adopted = true;
  return {};
}

// Caller holds the op lock of rel. See TierOptions::revalidate_after_ns: one cold-tier stat when
// the record's version was last confirmed too long ago; a replaced object is adopted (a cached
// copy dropped, the open then fetches the new version), a deleted one drops the record.
Status TieredStoreImpl::revalidate_on_open(const std::string& rel, int64_t now) {
  std::optional<Record> r = find(rel);
  if (!r || r->residency == Residency::kDirty) return {};  // local changes win until exported
  {
    std::lock_guard lk(mu_);
    // A handle open on the fast copy must keep reading that copy: nothing is swapped under it.
    if (is_open(rel)) return {};
    auto it = validated_ns_.find(rel);
    if (it != validated_ns_.end() && now - it->second < opts_.revalidate_after_ns) return {};
  }
  auto current = cold_->stat(rel);
  if (!current.is_ok() && current.status().code() != Code::kNotFound)
    return current.status().with_context("revalidate " + cold_->uri_of(rel));
  const bool gone = !current.is_ok();
  if (!gone && current->etag == r->cold_etag) {
    std::lock_guard lk(mu_);
    validated(rel);
    return {};
  }
  {
    std::lock_guard lk(mu_);
    footers_.erase(rel);
    if (gone) {
      records_.erase(rel);
      validated_ns_.erase(rel);
      STOR_RETURN_IF_ERROR(journal_->erase(rel, true));
    } else {
      Record& cur = records_[rel];
      if (cur.residency == Residency::kCached) cur.residency = Residency::kUncached;  // fetched again
      take_cold_version(cur, *current);
      validated(rel);
      STOR_RETURN_IF_ERROR(journal_->put(cur, true));
    }
  }
  if (r->residency == Residency::kCached) (void)opts_.fast->remove(fast_uri(rel));
  if (gone) return Status::NotFound(cold_->uri_of(rel) + " was deleted from the cold tier");
  return {};
}

Status TieredStoreImpl::fetch_once(const std::string& rel) {
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
  validated(rel);  // its If-Match reads just confirmed the version
  ++stats_.fetches;
  stats_.fetched_bytes += cur.size;
  kick_policy_if_full();
  footers_.erase(rel);
  // Not durable: if lost, the file is fetched again.
  STOR_RETURN_IF_ERROR(journal_->put(cur, false));
  maybe_compact();
  return {};
}

}  // namespace stor::tiering::internal
