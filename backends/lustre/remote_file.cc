#include "backends/lustre/remote_file.h"

#include <atomic>
#include <cstring>
#include <future>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <vector>

#include "backends/lustre/layout.h"
#include "backends/lustre/striped_file.h"
#include "net/remote_object.h"

namespace stor::lustre {

namespace {

// Stripe objects on stor-target servers: each piece goes through its target's
// RemoteObjectTarget, all pieces of a request in flight at once.
class RemoteLustreFile final : public StripedFile {
 public:
  using StripedFile::StripedFile;
  ~RemoteLustreFile() override { (void)close(); }

 private:
  // The object protocol has no vectored call: one call per segment of a piece, each straight
  // into (or from) the caller's memory, all in flight at once.
  static size_t segment_count(const std::vector<PieceIo>& pieces) {
    size_t n = 0;
    for (const auto& pi : pieces) n += pi.iov.size();
    return n;
  }

  void read_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) override {
    op->set_pieces(segment_count(pieces));
    for (const auto& pi : pieces) {
      uint64_t object_offset = pi.piece.object_offset;
      for (const auto& v : pi.iov) {
        char* dst = static_cast<char*>(v.iov_base);
        size_t want = v.iov_len;
        fs_->remote_target(pi.piece.target).read_async(
            FileSystem::object_name(ino_, pi.piece.component, pi.piece.stripe), dst, want, object_offset,
            [op, dst, want](Result<size_t> r) {
              if (!r && r.status().code() == Code::kNotFound) std::memset(dst, 0, want);  // never written: a hole
              else if (!r) op->fail(r.status());
              else if (*r < want) std::memset(dst + *r, 0, want - *r);  // object ends early: sparse tail
              op->finish_one();
            });
        object_offset += want;
      }
    }
  }

  void write_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) override {
    op->set_pieces(segment_count(pieces));
    // Set before any object can exist, so unlink knows to delete them (see Inode).
    meta_->objects_may_exist();
    for (const auto& pi : pieces) {
      remember_written(pi.piece);
      uint64_t object_offset = pi.piece.object_offset;
      for (const auto& v : pi.iov) {
        size_t want = v.iov_len;
        fs_->remote_target(pi.piece.target).write_async(
            FileSystem::object_name(ino_, pi.piece.component, pi.piece.stripe), v.iov_base, want,
            object_offset, [op, want](Result<size_t> r) {
              if (!r) op->fail(r.status());
              else if (*r != want) op->fail(Status::IoError("lustre: short write to a remote stripe object"));
              op->finish_one();
            });
        object_offset += want;
      }
    }
  }

  Status sync_objects(bool data_only) override {
    std::vector<std::future<Status>> waits;
    // Init-captures: clang before 16 cannot capture structured bindings by name.
    for (const auto& [t, n] : written_objects())
      waits.push_back(std::async(std::launch::async, [this, target = t, name = n, data_only] {
        return fs_->remote_target(target).sync(name, data_only);
      }));
    Status first;
    for (auto& w : waits)
      if (Status s = w.get(); !s.is_ok() && first.is_ok()) first = s;
    return first;
  }

  Status cut_object(uint32_t target_index, uint32_t component, uint32_t stripe, uint64_t keep) override {
    auto& target = fs_->remote_target(target_index);
    std::string name = FileSystem::object_name(ino_, component, stripe);
    auto st = target.stat(name);
    if (!st && st.status().code() == Code::kNotFound) return {};  // never written: nothing to cut
    if (!st) return st.status();
    if (st->size <= keep) return {};
    meta_->objects_may_exist();
    return target.truncate(name, keep);
  }

  Status close_objects() override { return {}; }  // connections belong to the mount

  void remember_written(const StripePiece& p) {
    std::lock_guard lk(written_mu_);
    written_.emplace(p.target, FileSystem::object_name(ino_, p.component, p.stripe));
  }
  std::set<std::pair<uint32_t, std::string>> written_objects() {
    std::lock_guard lk(written_mu_);
    return written_;
  }

  std::mutex written_mu_;
  std::set<std::pair<uint32_t, std::string>> written_;  // objects this handle wrote: what sync flushes
};

}  // namespace

std::unique_ptr<BackendFile> make_remote_file(std::shared_ptr<FileSystem> fs, std::unique_ptr<MetaFile> meta,
                                              uint32_t flags, std::string path) {
  return std::make_unique<RemoteLustreFile>(std::move(fs), std::move(meta), flags, std::move(path));
}

}  // namespace stor::lustre
