// Export: a dirty file's fast copy uploaded to the cold tier, after which the record is cached.
#include "backends/tier/tiered_store_impl.h"

namespace stor::tiering::internal {

Result<TieredStoreImpl::Upload> TieredStoreImpl::upload_fast_copy(const std::string& rel) {
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
Status TieredStoreImpl::export_locked(const std::string& rel) {
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

}  // namespace stor::tiering::internal
