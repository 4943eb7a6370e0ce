// Embedded metadata: the seam straight onto this process's Mds (unchanged behaviour: a write
// that grows a file logs its size before it is acknowledged).
#include "backends/lustre/metadata.h"

#include <atomic>

namespace stor::lustre {

namespace {

std::atomic<uint64_t> g_handle_seq{1};  // owner ids of embedded handles' locks

class EmbeddedFile final : public MetaFile {
 public:
  EmbeddedFile(Mds& mds, InodeRef inode) : mds_(mds), inode_(std::move(inode)) {
    std::shared_lock lk(inode_->mu);
    layout_ = inode_->layout;
  }
  ~EmbeddedFile() override { (void)close(); }

  uint64_t ino() const override { return inode_->ino; }
  const pb::Layout& layout() const override { return layout_; }
  uint64_t size() const override {
    std::shared_lock lk(inode_->mu);
    return inode_->size;
  }
  FileInfo info(const std::string& path) const override { return inode_->regular_file_info(path); }
  Status wrote(uint64_t end) override { return mds_.extend_size(*inode_, end); }
  Status set_size(uint64_t size) override { return mds_.set_size(*inode_, size); }
  Status sync() override { return mds_.sync(); }
  void objects_may_exist() override { inode_->may_have_objects = true; }
  Result<uint64_t> lock(RangeLockMode mode, uint64_t start, uint64_t end, std::chrono::milliseconds timeout) override {
    return inode_->locks.lock(owner_, 0, mode, start, end, lock_deadline(timeout));
  }
  Status unlock(uint64_t id) override {
    (void)inode_->locks.unlock(owner_.client, id);
    return Status::ok();
  }
  Status close() override {
    if (!closed_.exchange(true)) {
      inode_->locks.release(owner_);
      mds_.close_file(inode_);
    }
    return Status::ok();
  }

 private:
  Mds& mds_;
  const InodeRef inode_;
  const LockOwner owner_{0, g_handle_seq.fetch_add(1)};
  pb::Layout layout_;
  std::atomic<bool> closed_{false};
};

class EmbeddedMetadata final : public MetadataClient {
 public:
  explicit EmbeddedMetadata(Mds& mds) : mds_(mds) {}
  Result<FileInfo> stat(const Identity& id, std::string_view path) override { return mds_.stat(id, path); }
  Result<std::vector<DirEntry>> readdir(const Identity& id, std::string_view path) override {
    return mds_.readdir(id, path);
  }
  Status mkdir(const Identity& id, std::string_view path, uint32_t mode) override { return mds_.mkdir(id, path, mode); }
  Status remove(const Identity& id, std::string_view path) override { return mds_.remove(id, path); }
  Status rename(const Identity& id, std::string_view from, std::string_view to) override {
    return mds_.rename(id, from, to);
  }
  Status chmod(const Identity& id, std::string_view path, uint32_t mode) override { return mds_.chmod(id, path, mode); }
  Status chown(const Identity& id, std::string_view path, uint32_t uid, uint32_t gid) override {
    return mds_.chown(id, path, uid, gid);
  }
  Result<OpenedFile> open(const Identity& id, std::string_view path, uint32_t flags, uint32_t mode,
                          const pb::Layout* layout_template) override {
    STOR_ASSIGN_OR_RETURN(auto opened, mds_.open_file(id, path, flags, mode, layout_template));
    return OpenedFile{std::make_unique<EmbeddedFile>(mds_, std::move(opened.inode)), opened.created};
  }
  Status set_layout(const Identity& id, std::string_view path, const pb::Layout& tmpl) override {
    return mds_.set_layout(id, path, tmpl);
  }
  Result<LayoutInfo> get_layout(const Identity& id, std::string_view path) override {
    STOR_ASSIGN_OR_RETURN(auto l, mds_.get_layout(id, path));
    STOR_ASSIGN_OR_RETURN(FileInfo fi, mds_.stat(id, path));
    STOR_ASSIGN_OR_RETURN(uint64_t ino, mds_.inode_number(id, path));
    return LayoutInfo{std::move(l.first), l.second, ino, fi.size};
  }
  Result<MetaCounters> statfs() override { return MetaCounters{mds_.inode_count(), mds_.wal_bytes(), 0, {}}; }

 private:
  Mds& mds_;
};

}  // namespace

std::chrono::steady_clock::time_point lock_deadline(std::chrono::milliseconds timeout) {
  constexpr auto kYear = std::chrono::hours(24 * 365);
  return std::chrono::steady_clock::now() +
         (timeout > kYear ? std::chrono::duration_cast<std::chrono::milliseconds>(kYear) : timeout);
}

std::unique_ptr<MetadataClient> make_embedded_metadata(Mds& mds) { return std::make_unique<EmbeddedMetadata>(mds); }

}  // namespace stor::lustre
