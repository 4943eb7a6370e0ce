#include "backends/lustre/remote_file.h"

#include <atomic>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <vector>

#include "backends/lustre/layout.h"
#include "core/transport/remote_object.h"

namespace stor::lustre {

namespace {

// Joins the per-object completions of one request: the first error wins.
class RemoteJoin {
 public:
  RemoteJoin(size_t bytes, IoCallback done, std::function<Status()> on_success)
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

class RemoteLustreFile final : public BackendFile {
 public:
  RemoteLustreFile(std::shared_ptr<FileSystem> fs, InodeRef inode, uint32_t flags, std::string path)
      : fs_(std::move(fs)), inode_(std::move(inode)), flags_(flags), path_(std::move(path)) {
    std::shared_lock lk(inode_->mu);
    layout_ = inode_->layout;
  }
  ~RemoteLustreFile() override { (void)close(); }

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (closed_) return done(Status(Code::kInvalidArgument, "lustre: read on a closed file"));
    if (!(flags_ & kOpenRead))
      return done(Status(Code::kPermissionDenied, "lustre: '" + path_ + "' was not opened for reading"));
    uint64_t size = current_size();
    if (offset >= size || len == 0) return done(size_t{0});
    len = static_cast<size_t>(std::min<uint64_t>(len, size - offset));
    auto pieces = coalesce(map_range(layout_, offset, len));
    auto op = std::make_shared<RemoteJoin>(len, std::move(done), nullptr);
    op->set_pieces(pieces.size());
    char* base = static_cast<char*>(buf);
    for (const auto& p : pieces) {
      char* dst = base + (p.file_offset - offset);
      size_t want = p.length;
      fs_->remote_target(p.target).read_async(
          FileSystem::object_name(inode_->ino, p.component, p.stripe), dst, want, p.object_offset,
          [op, dst, want](Result<size_t> r) {
            if (!r && r.status().code() == Code::kNotFound) std::memset(dst, 0, want);  // never written: a hole
            else if (!r) op->fail(r.status());
            else if (*r < want) std::memset(dst + *r, 0, want - *r);  // object ends early: sparse tail
            op->finish_one();
          });
    }
    op->finish_one();
  }

  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (closed_) return done(Status(Code::kInvalidArgument, "lustre: write on a closed file"));
    if (!(flags_ & kOpenWrite))
      return done(Status(Code::kPermissionDenied, "lustre: '" + path_ + "' was not opened for writing"));
    if (len == 0) return done(size_t{0});
    if (offset + len < offset) return done(Status(Code::kInvalidArgument, "lustre: write range overflows"));
    auto pieces = coalesce(map_range(layout_, offset, len));
    uint64_t end = offset + len;
    auto op = std::make_shared<RemoteJoin>(len, std::move(done),
                                           [fs = fs_, inode = inode_, end] { return fs->mds().extend_size(*inode, end); });
    op->set_pieces(pieces.size());
    const char* base = static_cast<const char*>(buf);
    // Set before any object can exist, so unlink knows to delete them (see Inode).
    inode_->may_have_objects = true;
    for (const auto& p : pieces) {
      size_t want = p.length;
      remember_written(p);
      fs_->remote_target(p.target).write_async(
          FileSystem::object_name(inode_->ino, p.component, p.stripe), base + (p.file_offset - offset), want,
          p.object_offset, [op, want](Result<size_t> r) {
            if (!r) op->fail(r.status());
            else if (*r != want) op->fail(Status(Code::kIoError, "lustre: short write to a remote stripe object"));
            op->finish_one();
          });
    }
    op->finish_one();
  }

  Status sync(bool data_only) override {
    if (closed_) return Status(Code::kInvalidArgument, "lustre: sync on a closed file");
    std::vector<std::future<Status>> waits;
    for (const auto& [target, name] : written_objects())
      waits.push_back(std::async(std::launch::async, [this, target, name, data_only] {
        return fs_->remote_target(target).sync(name, data_only);
      }));
    Status first;
    for (auto& w : waits)
      if (Status s = w.get(); !s.is_ok() && first.is_ok()) first = s;
    STOR_RETURN_IF_ERROR(first);
    return fs_->mds().sync();  // the file size lives in the metadata log
  }

  Status truncate(uint64_t size) override {
    if (closed_) return Status(Code::kInvalidArgument, "lustre: truncate on a closed file");
    if (!(flags_ & kOpenWrite))
      return Status(Code::kPermissionDenied, "lustre: '" + path_ + "' was not opened for writing");
    // Cut every object to what the smaller size keeps, so growing again exposes zeros, not old data.
    uint64_t keep = std::min(current_size(), size);
    for (int c = 0; c < layout_.components_size(); ++c) {
      const auto& comp = layout_.components(c);
      for (int s = 0; s < comp.targets_size(); ++s) {
        uint64_t want = object_size_for(layout_, static_cast<uint32_t>(c), static_cast<uint32_t>(s), keep);
        auto& target = fs_->remote_target(comp.targets(s));
        std::string name = FileSystem::object_name(inode_->ino, static_cast<uint32_t>(c), static_cast<uint32_t>(s));
        auto st = target.stat(name);
        if (!st && st.status().code() == Code::kNotFound) continue;  // never written: nothing to cut
        if (!st) return st.status();
        if (st->size > want) {
          inode_->may_have_objects = true;
          STOR_RETURN_IF_ERROR(target.truncate(name, want));
        }
      }
    }
    return fs_->mds().set_size(*inode_, size);
  }

  Result<FileInfo> stat() override {
    std::shared_lock lk(inode_->mu);
    FileInfo fi;
    fi.path = path_;
    fi.type = FileType::kRegular;
    fi.size = inode_->size;
    fi.mode = inode_->mode;
    fi.uid = inode_->uid;
    fi.gid = inode_->gid;
    fi.mtime_ns = inode_->mtime_ns;
    return fi;
  }

  Status close() override {
    if (closed_.exchange(true)) return Status::ok();
    fs_->mds().close_file(inode_);
    return Status::ok();
  }

 private:
  uint64_t current_size() const {
    std::shared_lock lk(inode_->mu);
    return inode_->size;
  }
  void remember_written(const StripePiece& p) {
    std::lock_guard lk(written_mu_);
    written_.emplace(p.target, FileSystem::object_name(inode_->ino, p.component, p.stripe));
  }
  std::set<std::pair<uint32_t, std::string>> written_objects() {
    std::lock_guard lk(written_mu_);
    return written_;
  }

  std::shared_ptr<FileSystem> fs_;
  InodeRef inode_;
  const uint32_t flags_;
  const std::string path_;
  pb::Layout layout_;  // fixed while open: set_layout refuses files with data
  std::mutex written_mu_;
  std::set<std::pair<uint32_t, std::string>> written_;  // objects this handle wrote: what sync flushes
  std::atomic<bool> closed_{false};
};

}  // namespace

std::unique_ptr<BackendFile> make_remote_file(std::shared_ptr<FileSystem> fs, InodeRef inode, uint32_t flags,
                                              std::string path) {
  return std::make_unique<RemoteLustreFile>(std::move(fs), std::move(inode), flags, std::move(path));
}

}  // namespace stor::lustre
