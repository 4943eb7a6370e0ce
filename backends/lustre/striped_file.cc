#include "backends/lustre/striped_file.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <shared_mutex>

namespace stor::lustre {

namespace {
// Pieces of [offset, offset + len), or Corruption when the layout cannot map all of it (layouts
// are validated when loaded, so this only guards against a bug).
Result<std::vector<StripePiece>> pieces_for(const pb::Layout& layout, uint64_t offset, uint64_t len,
                                            const std::string& path) {
  auto pieces = coalesce(map_range(layout, offset, len));
  uint64_t covered = 0;
  for (const auto& p : pieces) covered += p.length;
  if (covered != len)
    return Status::Corruption("lustre: the layout of '" + path + "' does not map [" + std::to_string(offset) +
                                         ", +" + std::to_string(len) + "): " + describe_layout(layout));
  return pieces;
}
}  // namespace

StripedFile::StripedFile(std::shared_ptr<FileSystem> fs, std::unique_ptr<MetaFile> meta, uint32_t flags,
                         std::string path)
    : fs_(std::move(fs)),
      meta_(std::move(meta)),
      ino_(meta_->ino()),
      flags_(flags),
      path_(std::move(path)),
      layout_(meta_->layout()) {}

uint64_t StripedFile::current_size() const { return meta_->size(); }

namespace {
// Pairs each piece with the caller's segments for it, and joins the pieces that continue each
// other inside one object even when they are apart in the file (stripe k and k + count of a
// row-major layout): a request over R rows of C stripes becomes C vectored requests, not R * C.
// Pieces come in file order, so each object's segments are in object order.
std::vector<PieceIo> with_segments(const std::vector<StripePiece>& pieces, std::span<const struct iovec> iov) {
  std::vector<PieceIo> out;
  out.reserve(pieces.size());
  std::map<std::pair<uint32_t, uint32_t>, size_t> last;  // (component, stripe) -> its latest entry
  IovCursor segs(iov);  // the pieces tile the request in order
  for (const auto& p : pieces) {
    auto [it, fresh] = last.try_emplace({p.component, p.stripe}, out.size());
    if (!fresh) {
      PieceIo& prev = out[it->second];
      if (prev.piece.object_offset + prev.piece.length == p.object_offset) {
        prev.piece.length += p.length;
        segs.take(static_cast<size_t>(p.length), &prev.iov);
        continue;
      }
      it->second = out.size();
    }
    PieceIo pi{p, {}};
    segs.take(static_cast<size_t>(p.length), &pi.iov);
    out.push_back(std::move(pi));
  }
  return out;
}
}  // namespace

void zero_fill(std::span<const struct iovec> iov, size_t skip, size_t len) {
  std::vector<struct iovec> part;
  iov_slice(iov, skip, len, &part);
  for (const auto& v : part) std::memset(v.iov_base, 0, v.iov_len);
}

void StripedFile::read_async(void* buf, size_t len, uint64_t offset, IoCallback done) {
  const struct iovec one{buf, len};
  start_read(std::span<const struct iovec>(&one, 1), offset, std::move(done));
}

void StripedFile::write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) {
  const struct iovec one{const_cast<void*>(buf), len};
  start_write(std::span<const struct iovec>(&one, 1), offset, std::move(done));
}

void StripedFile::readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  start_read(iov, offset, std::move(done));
}

void StripedFile::writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  start_write(iov, offset, std::move(done));
}

void StripedFile::start_read(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  if (closed_) return done(Status::InvalidArgument("lustre: read on a closed file"));
  if (!(flags_ & kOpenRead))
    return done(Status::PermissionDenied("lustre: '" + path_ + "' was not opened for reading"));
  auto total = iov_total(iov);
  if (!total) return done(total.status().with_context("lustre: " + path_));
  uint64_t size = current_size();
  if (offset >= size || *total == 0) return done(size_t{0});
  // Past the end only the leading segments are filled; the rest stay untouched.
  const size_t len = static_cast<size_t>(std::min<uint64_t>(*total, size - offset));
  auto pieces = pieces_for(layout_, offset, len, path_);
  if (!pieces) return done(pieces.status());
  auto work = with_segments(*pieces, iov);
  auto op = std::make_shared<PendingIo>(len, std::move(done), nullptr);
  read_pieces(work, op);
  op->finish_one();
}

void StripedFile::start_write(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  if (closed_) return done(Status::InvalidArgument("lustre: write on a closed file"));
  if (!(flags_ & kOpenWrite))
    return done(Status::PermissionDenied("lustre: '" + path_ + "' was not opened for writing"));
  auto total = iov_total(iov);
  if (!total) return done(total.status().with_context("lustre: " + path_));
  const size_t len = *total;
  if (len == 0) return done(size_t{0});
  if (flags_ & kOpenAppend) {
    // O_APPEND: the offset given is ignored; each append takes the bytes after the file's end
    // and after every append of this handle still in flight, so concurrent appends through one
    // handle never overlap.
    std::lock_guard<std::mutex> lock(append_mu_);
    offset = std::max(current_size(), append_end_);
    if (offset <= kMaxFileSize && len <= kMaxFileSize - offset) append_end_ = offset + len;
  }
  if (offset > kMaxFileSize || len > kMaxFileSize - offset)
    return done(Status::InvalidArgument("lustre: write past the largest file size (2^63 - 1 bytes)"));
  uint64_t end = offset + len;
  auto pieces = pieces_for(layout_, offset, len, path_);
  if (!pieces) return done(pieces.status());
  auto work = with_segments(*pieces, iov);
  // The size grows only once every piece is on its object (embedded: logged before the
  // acknowledgement; cluster: merged at the MDS by sync/close).
  auto op = std::make_shared<PendingIo>(len, std::move(done), [meta = meta_.get(), end] { return meta->wrote(end); });
  write_pieces(work, op);
  op->finish_one();
}

Status StripedFile::sync(bool data_only) {
  if (closed_) return Status::InvalidArgument("lustre: sync on a closed file");
  STOR_RETURN_IF_ERROR(sync_objects(data_only));
  return meta_->sync();  // the file size lives in the metadata service
}

Status StripedFile::truncate(uint64_t size) {
  if (closed_) return Status::InvalidArgument("lustre: truncate on a closed file");
  if (!(flags_ & kOpenWrite))
    return Status::PermissionDenied("lustre: '" + path_ + "' was not opened for writing");
  // Larger sizes could not be loaded back (offset math must not overflow).
  if (size > kMaxFileSize)
    return Status::InvalidArgument("lustre: truncate past the largest file size (2^63 - 1 bytes)");
  // Cut every object to what the smaller size keeps, so growing again exposes zeros, not old data.
  // On a cluster mount, bytes past the size this handle knows may be another client's writes
  // that are not merged yet: only a shrink below this handle's size cuts, and at the new size.
  uint64_t keep = std::min(current_size(), size);
  const bool cut = !meta_->others_may_write_past_size() || size < current_size();
  for (int c = 0; cut && c < layout_.components_size(); ++c) {
    const auto& comp = layout_.components(c);
    for (int s = 0; s < comp.targets_size(); ++s) {
      auto component = static_cast<uint32_t>(c), stripe = static_cast<uint32_t>(s);
      STOR_ASSIGN_OR_RETURN(uint64_t object_size, object_size_for(layout_, component, stripe, keep));
      STOR_RETURN_IF_ERROR(cut_object(comp.targets(s), component, stripe, object_size));
    }
  }
  return meta_->set_size(size);
}

Result<uint64_t> StripedFile::lock_range(uint64_t offset, uint64_t len, RangeLockMode mode,
                                         std::chrono::milliseconds timeout) {
  if (closed_.load()) return Status::InvalidArgument("lustre: '" + path_ + "' is closed");
  if (len == 0) return Status::InvalidArgument("lustre: '" + path_ + "': byte-range lock of 0 bytes");
  if (offset > kMaxFileSize || len > kMaxFileSize - offset)
    return Status::InvalidArgument("lustre: '" + path_ + "': byte-range lock past 2^63 - 1");
  if (mode == RangeLockMode::kExclusive && !(flags_ & kOpenWrite))
    return Status::PermissionDenied("lustre: '" + path_ + "': an exclusive byte-range lock needs a handle open for writing");
  auto r = meta_->lock(mode, offset, offset + len, timeout);
  if (!r) return r.status().with_context("lustre: '" + path_ + "'");
  return r;
}

Status StripedFile::unlock_range(uint64_t lock_id) {
  if (closed_.load()) return Status::ok();  // close released it
  return meta_->unlock(lock_id).with_context("lustre: '" + path_ + "'");
}

Status StripedFile::close() {
  if (closed_.exchange(true)) return Status::ok();
  Status s = close_objects();
  Status m = meta_->close();
  return s.is_ok() ? m : s;
}

}  // namespace stor::lustre
