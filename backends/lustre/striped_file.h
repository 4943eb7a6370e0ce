// An open regular file of a Lustre-style file system: the part of the data path that does not
// depend on where the stripe objects live. Subclasses put the per-object pieces on local ostK
// directories through the IoEngine (LustreFile) or on stor-target servers (RemoteLustreFile).
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/lustre/fs.h"
#include "backends/lustre/layout.h"
#include "stor/backend.h"

namespace stor::lustre {

// Joins the per-object completions of one request: the first error wins, otherwise the caller
// gets the full byte count once every piece is done.
class PendingIo {
 public:
  PendingIo(size_t bytes, IoCallback done, std::function<Status()> on_success)
      : bytes_(bytes), done_(std::move(done)), on_success_(std::move(on_success)) {}
  void set_pieces(size_t n) { remaining_.store(n + 1); }  // +1: the submitter's guard
  void fail(Status s) {
    std::lock_guard lk(mu_);
    if (error_.is_ok()) error_ = std::move(s);
  }
  void finish_one() {
    if (remaining_.fetch_sub(1) != 1) return;
    Status err;
    {
      std::lock_guard lk(mu_);
      err = error_;
    }
    if (err.is_ok() && on_success_) err = on_success_();
    if (!err.is_ok()) done_(std::move(err));
    else done_(bytes_);
  }

 private:
  const size_t bytes_;
  IoCallback done_;
  std::function<Status()> on_success_;
  std::atomic<size_t> remaining_{1};
  std::mutex mu_;
  Status error_;
};

// One piece of a request: a contiguous run of one stripe object (piece.file_offset is where its
// first byte is in the file; later bytes may come from further rows), and the caller's memory
// for it in object order (the parts of the request's segments that map to the run).
struct PieceIo {
  StripePiece piece;
  std::vector<struct iovec> iov;
};

// Zero-fills bytes [skip, skip + len) of the concatenated segments (holes, sparse tails).
void zero_fill(std::span<const struct iovec> iov, size_t skip, size_t len);

// Thread safety: as BackendFile. The layout is fixed while open, object descriptors are opened
// under a lock, and each request joins its own pieces (PendingIo).
class StripedFile : public BackendFile {
 public:
  StripedFile(std::shared_ptr<FileSystem> fs, std::unique_ptr<MetaFile> meta, uint32_t flags, std::string path);

  // Plain requests are vectored requests of one segment. A request becomes one piece per
  // contiguous run of a stripe object, each carrying the caller's segments for that run (several
  // when the run spans rows or the caller gave several): nothing is copied and each object gets
  // one vectored request per run, e.g. 4 requests, not 16, for 1 MiB over 4 stripes of 64 KiB.
  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) final;
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) final;
  void readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) final;
  void writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) final;
  Status sync(bool data_only) final;
  Status truncate(uint64_t size) final;
  Result<FileInfo> stat() final { return meta_->info(path_); }
  Status close() final;
  // Extent locks through the metadata side (embedded Mds, or the stor-mds's lock service).
  Result<uint64_t> lock_range(uint64_t offset, uint64_t len, RangeLockMode mode,
                              std::chrono::milliseconds timeout) final;
  Status unlock_range(uint64_t lock_id) final;

 protected:
  // Issue every piece of one request. Call op->set_pieces(n) before the first of n completions
  // calls op->finish_one(). A piece whose object was never written reads as zeros. The pieces
  // (and their segment arrays) live until these return, not until the completions.
  virtual void read_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) = 0;
  virtual void write_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) = 0;
  // Makes every object this handle wrote durable.
  virtual Status sync_objects(bool data_only) = 0;
  // Cuts the object of (component, stripe) on target to at most `keep` bytes, if it exists.
  virtual Status cut_object(uint32_t target, uint32_t component, uint32_t stripe, uint64_t keep) = 0;
  virtual Status close_objects() = 0;

  uint64_t current_size() const;

  const std::shared_ptr<FileSystem> fs_;
  const std::unique_ptr<MetaFile> meta_;  // the metadata side: size, layout, open handle
  const uint64_t ino_;
  const uint32_t flags_;
  const std::string path_;
  const pb::Layout layout_;  // fixed while open: set_layout refuses files with data

 private:
  void start_read(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);
  void start_write(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);
  std::atomic<bool> closed_{false};
  // kOpenAppend: the end of the last append this handle reserved (its bytes may still be in
  // flight, so the file's size does not show them yet).
  std::mutex append_mu_;
  uint64_t append_end_ = 0;
};

}  // namespace stor::lustre
