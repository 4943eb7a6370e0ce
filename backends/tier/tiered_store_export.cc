// Export: a dirty file's fast copy uploaded to the cold tier, after which the record is cached.
//
// Crash idempotence: before the upload starts, the record durably takes an export intent (the
// size and CRC32 of the bytes about to be sent). A crash after the upload reached the cold tier
// but before the record took its ETag leaves the intent behind; the next sync finds an object
// whose ETag it does not know, reads it back, and when its size and CRC32 are the intent's,
// adopts it as our own upload (adopt_completed_export) instead of calling it a conflict.
#include "backends/tier/tiered_store_impl.h"

#include <algorithm>
#include <vector>

namespace stor::tiering::internal {
namespace {

// Size and CRC32 of everything in f (read sequentially in 4 MiB pieces).
Status crc_of_file(BackendFile& f, const std::string& what, uint64_t* size, uint32_t* crc) {
  STOR_ASSIGN_OR_RETURN(FileInfo info, f.stat());
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(4ull << 20, std::max<uint64_t>(info.size, 1))));
  uint32_t c = 0;
  for (uint64_t off = 0; off < info.size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), info.size - off));
    STOR_ASSIGN_OR_RETURN(size_t n, f.read(buf.data(), want, off));
    if (n != want) return Status::IoError("short read of " + what);
    c = crc32(buf.data(), want, c);
    off += want;
  }
  *size = info.size;
  *crc = c;
  return {};
}

}  // namespace

Status TieredStoreImpl::fast_checksum(const std::string& rel, uint64_t* size, uint32_t* crc) {
  STOR_ASSIGN_OR_RETURN(auto f, opts_.fast->open(fast_uri(rel), OpenOptions{kOpenRead}));
  Status s = crc_of_file(*f, "the fast copy of " + rel, size, crc);
  Status c = f->close();
  return s.is_ok() ? c : s;
}

// Caller holds the op lock of rel.
Result<TieredStoreImpl::Upload> TieredStoreImpl::upload_fast_copy(const std::string& rel, const ExpectedVersion& expect,
                                                                 bool* refused) {
  *refused = false;
  STOR_ASSIGN_OR_RETURN(auto f, opts_.fast->open(fast_uri(rel), OpenOptions{kOpenRead}));
  Upload up;
  uint32_t intent_crc = 0;
  Status s = crc_of_file(*f, "the fast copy of " + rel, &up.size, &intent_crc);
  if (s.is_ok()) {
    std::lock_guard lk(mu_);
    auto it = records_.find(rel);
    if (it == records_.end()) {
      s = Status::NotFound("no such tiered file: " + rel);
    } else {
      it->second.export_pending = true;
      it->second.export_size = up.size;
      it->second.export_crc = intent_crc;
      s = journal_->put(it->second, true);  // durable: it must outlive an upload that completes
    }
  }
  if (!s.is_ok()) {
    (void)f->close();
    return s;
  }
  hook(rel, "export-intent");
  auto obj = cold_->write_from(rel, *f, up.size, &up.crc, expect, refused);
  (void)f->close();
  if (!obj.is_ok() && *refused) {
    // The cold tier may already hold exactly these bytes: our own upload, cut off from its
    // journal line by a crash (the intent's case). Then there is nothing to overwrite.
    auto current = cold_->stat(rel);
    if (current.is_ok() && current->size == up.size) {
      auto remote_crc = cold_->checksum(rel, *current, opts_.fetch_chunk);
      if (remote_crc.is_ok() && *remote_crc == intent_crc) {
        *refused = false;
        up.crc = intent_crc;
        up.object = *current;
        hook(rel, "uploaded");
        return up;
      }
    }
  }
  if (!obj.is_ok()) {
    if (*refused) {
      // Nothing of ours reached the cold tier: the intent has nothing to recognise.
      std::lock_guard lk(mu_);
      if (auto it = records_.find(rel); it != records_.end() && it->second.export_pending) {
        it->second.export_pending = false;
        (void)journal_->put(it->second, false);
      }
    }
    return obj.status();
  }
  if (up.crc != intent_crc)
    return Status::Aborted("the fast copy of " + rel + " changed while it was exported; export again");
  up.object = *obj;
  hook(rel, "uploaded");
  return up;
}

// Caller holds the op lock of rel.
Status TieredStoreImpl::export_locked(const std::string& rel, bool* refused) {
  bool refused_here = false;
  if (!refused) refused = &refused_here;
  *refused = false;
  std::optional<Record> r = find(rel);
  if (!r) return Status::NotFound("no such tiered file: " + rel);
  if (r->residency != Residency::kDirty) return {};
  {
    std::lock_guard lk(mu_);
    if (is_open(rel)) return Status::Busy(rel + " is open; exported when closed (next sync)");
  }
  // Replaces only the version the record last saw (none: a new object), so a change another
  // client made since is never overwritten; refused, it is a conflict for sync to resolve.
  auto up = upload_fast_copy(rel, expected_of(*r), refused);
  if (!up.is_ok()) {
    if (*refused)
      return Status::Aborted(up.status().message() + ". Run sync: the bucket's version keeps " + rel +
                             " and this one is kept beside it as " + rel + kConflictSuffix);
    return up.status();
  }
  {
    std::lock_guard lk(mu_);
    Record& cur = records_[rel];
    cur.residency = Residency::kCached;
    cur.export_pending = false;
    cur.size = up->size;
    cur.cold_etag = up->object.etag;
    cur.cold_mtime_ns = up->object.mtime_ns;
    validated(rel);
    ++stats_.exports;
    stats_.exported_bytes += up->size;
    // Not durable: if lost, the intent left behind lets the next sync recognise the upload.
    STOR_RETURN_IF_ERROR(journal_->put(cur, false));
    maybe_compact();
  }
  hook(rel, "exported");
  return {};
}

// Caller holds the op lock of rel, whose record is dirty with an export intent, and `listed` is
// an object at rel whose ETag the record does not know. If it holds exactly the bytes the intent
// describes, it is our upload that completed before a crash: the record takes its ETag, and
// becomes cached when the fast copy still holds those bytes (else it stays dirty and is exported
// normally). *ours says whether it was recognised; anything else is a change by another client.
Status TieredStoreImpl::adopt_completed_export(const std::string& rel, const ColdObject& listed, bool* ours) {
  *ours = false;
  std::optional<Record> r = find(rel);
  if (!r || r->residency != Residency::kDirty || !r->export_pending || listed.size != r->export_size) return {};
  STOR_ASSIGN_OR_RETURN(uint32_t remote_crc, cold_->checksum(rel, listed, opts_.fetch_chunk));
  if (remote_crc != r->export_crc) return {};
  *ours = true;
  uint64_t local_size = 0;
  uint32_t local_crc = 0;
  STOR_RETURN_IF_ERROR(fast_checksum(rel, &local_size, &local_crc));
  std::lock_guard lk(mu_);
  Record& cur = records_[rel];
  cur.export_pending = false;
  cur.cold_etag = listed.etag;
  cur.cold_mtime_ns = listed.mtime_ns;
  validated(rel);
  if (local_size == r->export_size && local_crc == r->export_crc) {
    cur.residency = Residency::kCached;
    cur.size = local_size;
    ++stats_.exports;
    stats_.exported_bytes += local_size;
  }
  return journal_->put(cur, true);
}

}  // namespace stor::tiering::internal
