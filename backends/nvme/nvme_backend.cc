#include "backends/nvme/nvme_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <future>

#include "core/ofd_locks.h"
#include "stor/register_backend.h"
#include "stor/settings.h"

namespace stor::nvme {

namespace {

Status check_uri(const Uri& uri) {
  if (!uri.authority.empty())
    return Status::InvalidArgument("nvme URIs have no authority: write nvme:///absolute/path, not " + uri.to_string());
  if (uri.path.empty()) return Status::InvalidArgument("nvme URI without a path");
  return {};
}

FileType type_of(mode_t m) {
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISBLK(m)) return FileType::kBlockDevice;
  return FileType::kOther;
}

Result<FileInfo> info_of(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "fstat " + path);
  FileInfo info;
  info.path = path;
  info.type = type_of(st.st_mode);
  info.size = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) == 0) info.size = bytes;
  }
  info.mode = st.st_mode & 07777;
  info.uid = st.st_uid;
  info.gid = st.st_gid;
  info.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return info;
}

// Direct-I/O alignment the kernel demands for this file.
uint32_t direct_alignment(int fd) {
#ifdef STATX_DIOALIGN
  struct statx stx {};
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align > 0)
    return std::max(stx.stx_dio_offset_align, stx.stx_dio_mem_align);
#endif
  return AlignedBuffer::kAlignment;
}

class NvmeFile final : public BackendFile {
 public:
  NvmeFile(IoEngine* engine, int fd, bool direct, std::string path)
      : engine_(engine), fd_(fd), direct_(direct), align_(direct ? direct_alignment(fd) : 1), path_(std::move(path)) {
    auto slot = engine_->register_file(fd_);  // optional: plain fds work everywhere
    if (slot.is_ok()) file_slot_ = *slot;
  }
  ~NvmeFile() override { (void)close(); }

  void read_async(void* buf, size_t len, uint64_t off, IoCallback done) override {
    submit(IoOp::kRead, buf, len, off, std::move(done));
  }
  // A blocking read of a buffered file first copies what the page cache already holds on the
  // caller's thread (preadv2 RWF_NOWAIT: never waits for the device): a hop to the engine and back
  // costs two thread wake-ups, ~12% of a 1 MiB cached read. The rest goes through the engine.
  Result<size_t> read(void* buf, size_t len, uint64_t off) override {
    if (fd_ < 0) return closed();
    size_t done = 0;
    if (!direct_ && len > 0) {
      struct iovec v{buf, len};
      ssize_t n = ::preadv2(fd_, &v, 1, static_cast<off_t>(off), RWF_NOWAIT);
      if (n > 0) done = static_cast<size_t>(n);
      if (done == len) return done;
      // n == 0 is end of file, or a page not cached yet: the engine tells them apart.
    }
    auto rest = BackendFile::read(static_cast<char*>(buf) + done, len - done, off + done);
    if (!rest) return rest.status();
    return done + *rest;
  }
  void write_async(const void* buf, size_t len, uint64_t off, IoCallback done) override {
    submit(IoOp::kWrite, const_cast<void*>(buf), len, off, std::move(done));
  }
  // One preadv/pwritev (IORING_OP_READV/WRITEV) for all segments; on an O_DIRECT file every
  // segment must be aligned like a plain request.
  void readv_async(std::span<const struct iovec> iov, uint64_t off, IoCallback done) override {
    submitv(IoOp::kRead, iov, off, std::move(done));
  }
  void writev_async(std::span<const struct iovec> iov, uint64_t off, IoCallback done) override {
    submitv(IoOp::kWrite, iov, off, std::move(done));
  }

  Status sync(bool data_only) override {
    if (fd_ < 0) return closed();
    auto r = engine_->fsync(fd_, data_only).get();
    return r.status().with_context(path_);
  }
  Status truncate(uint64_t size) override {
    if (fd_ < 0) return closed();
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Status::from_errno(errno, "truncate " + path_);
    return {};
  }
  Result<FileInfo> stat() override {
    if (fd_ < 0) return closed();
    return info_of(fd_, path_);
  }
  // OFD locks, one open file description per lock (core/ofd_locks.h).
  Result<uint64_t> lock_range(uint64_t off, uint64_t len, RangeLockMode mode,
                              std::chrono::milliseconds timeout) override {
    if (fd_ < 0) return closed();
    return locks_.lock(fd_, path_, off, len, mode, timeout);
  }
  Status unlock_range(uint64_t lock_id) override { return locks_.unlock(lock_id); }

  Status close() override {
    if (fd_ < 0) return {};
    locks_.close_all();
    int fd = fd_;
    fd_ = -1;
    if (file_slot_ >= 0) engine_->unregister_file(file_slot_);
    file_slot_ = -1;
    if (::close(fd) != 0) return Status::from_errno(errno, "close " + path_);
    return {};
  }
  bool direct() const override { return direct_; }

 private:
  Status closed() const { return Status::InvalidArgument(path_ + ": file is closed"); }

  Status check_direct(const void* buf, size_t len, uint64_t off) const {
    auto addr = reinterpret_cast<uintptr_t>(buf);
    if (!direct_ || (addr % align_ == 0 && len % align_ == 0 && off % align_ == 0)) return {};
    return Status::InvalidArgument(path_ + " is open with O_DIRECT: buffer address, length (" + std::to_string(len) +
                                   ") and offset (" + std::to_string(off) + ") must be multiples of " +
                                   std::to_string(align_) + " (use stor::AlignedBuffer)");
  }

  void submit(IoOp op, void* buf, size_t len, uint64_t off, IoCallback done) {
    if (fd_ < 0) return done(closed());
    if (Status s = check_direct(buf, len, off); !s.is_ok()) return done(std::move(s));
    engine_->submit(IoRequest{op, fd_, buf, len, off, -1, std::move(done), file_slot_});
  }

  void submitv(IoOp op, std::span<const struct iovec> iov, uint64_t off, IoCallback done) {
    if (fd_ < 0) return done(closed());
    auto total = iov_total(iov);
    if (!total) return done(total.status().with_context(path_));
    if (*total == 0) return done(size_t{0});
    for (const auto& v : iov)
      if (Status s = check_direct(v.iov_base, v.iov_len, off); !s.is_ok()) return done(std::move(s));
    IoRequest req{op, fd_, nullptr, *total, off, -1, std::move(done), file_slot_};
    req.iov = iov.data();
    req.iov_count = iov.size();
    engine_->submit(std::move(req));
  }

  IoEngine* engine_;
  int fd_;
  bool direct_;
  uint32_t align_;
  std::string path_;
  int file_slot_ = -1;
  internal::OfdLocks locks_;
};

class NvmeBackend final : public Backend {
 public:
  NvmeBackend(IoEngine* engine, NvmeOptions opts) : engine_(engine), opts_(opts) {}

  std::string_view scheme() const override { return "nvme"; }
  uint32_t capabilities() const override {
    return kCapRead | kCapWrite | kCapRandomWrite | kCapDirectIo | kCapDirectories | kCapTruncate |
           kCapPermissions | kCapRename;
  }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& o) override {
    STOR_RETURN_IF_ERROR(check_uri(uri));
    if (o.flags &
        ~uint32_t{kOpenRead | kOpenWrite | kOpenCreate | kOpenTruncate | kOpenExclusive | kOpenDirect | kOpenAppend})
      return Status::InvalidArgument("unknown open flags");
    if ((o.flags & (kOpenCreate | kOpenTruncate | kOpenAppend)) && !(o.flags & kOpenWrite))
      return Status::InvalidArgument("create/truncate/append need kOpenWrite: " + uri.path);
    int flags = O_CLOEXEC;
    bool rd = o.flags & kOpenRead, wr = o.flags & kOpenWrite;
    flags |= (rd && wr) ? O_RDWR : wr ? O_WRONLY : O_RDONLY;
    if (o.flags & kOpenCreate) flags |= O_CREAT;
    if (o.flags & kOpenTruncate) flags |= O_TRUNC;
    if (o.flags & kOpenExclusive) flags |= O_EXCL;
    // io_uring writes and pwrite on an O_APPEND file go to its end whatever offset they carry.
    if (o.flags & kOpenAppend) flags |= O_APPEND;
    bool direct = (o.flags & kOpenDirect) && !opts_.refuse_direct;
    int fd = ::open(uri.path.c_str(), flags | (direct ? O_DIRECT : 0), o.mode);
    if (fd < 0 && direct && errno == EINVAL) {  // the file system refuses O_DIRECT: go buffered
      direct = false;
      fd = ::open(uri.path.c_str(), flags, o.mode);
    }
    if (fd < 0) return Status::from_errno(errno, "open " + uri.path);
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      ::close(fd);
      return Status::IsADirectory("open " + uri.path + ": is a directory");
    }
    return std::unique_ptr<BackendFile>(new NvmeFile(engine_, fd, direct, uri.path));
  }

  Result<FileInfo> stat(const Uri& uri) override {
    STOR_RETURN_IF_ERROR(check_uri(uri));
    int fd = ::open(uri.path.c_str(), O_RDONLY | O_CLOEXEC | O_PATH);
    if (fd < 0) return Status::from_errno(errno, "stat " + uri.path);
    auto info = info_of(fd, uri.path);
    if (info.is_ok() && info->type == FileType::kBlockDevice) {  // O_PATH cannot ioctl: reopen
      int bfd = ::open(uri.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (bfd >= 0) {
        info = info_of(bfd, uri.path);
        ::close(bfd);
      }
    }
    ::close(fd);
    return info;
  }

  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    STOR_RETURN_IF_ERROR(check_uri(uri));
    DIR* d = ::opendir(uri.path.c_str());
    if (!d) return Status::from_errno(errno, "list " + uri.path);
    std::vector<DirEntry> out;
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      DirEntry entry{name, FileType::kOther, 0};
      if (::fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        entry.type = type_of(st.st_mode);
        entry.size = static_cast<uint64_t>(st.st_size);
      }
      out.push_back(std::move(entry));
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
    return out;
  }

  Status remove(const Uri& uri) override {
    STOR_RETURN_IF_ERROR(check_uri(uri));
    if (::unlink(uri.path.c_str()) == 0) return {};
    if (errno == EISDIR || errno == EPERM) {
      if (::rmdir(uri.path.c_str()) == 0) return {};
    }
    return Status::from_errno(errno, "remove " + uri.path);
  }

  Status mkdir(const Uri& uri, uint32_t mode) override {
    STOR_RETURN_IF_ERROR(check_uri(uri));
    if (::mkdir(uri.path.c_str(), mode) != 0) return Status::from_errno(errno, "mkdir " + uri.path);
    return {};
  }

  Status rename(const Uri& from, const Uri& to) override {
    STOR_RETURN_IF_ERROR(check_uri(from));
    STOR_RETURN_IF_ERROR(check_uri(to));
    if (::rename(from.path.c_str(), to.path.c_str()) != 0)
      return Status::from_errno(errno, "rename " + from.path + " -> " + to.path);
    return {};
  }

  std::map<std::string, std::string> describe(const Uri& uri) override {
    std::map<std::string, std::string> out;
    struct statfs fs {};
    if (::statfs(uri.path.c_str(), &fs) == 0) {
      char magic[32];
      std::snprintf(magic, sizeof magic, "0x%lx", static_cast<unsigned long>(fs.f_type));
      out["fs_magic"] = magic;
      out["fs_block_size"] = std::to_string(fs.f_bsize);
    }
    int fd = ::open(uri.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      out["direct_io_alignment"] = std::to_string(direct_alignment(fd));
      ::close(fd);
    }
    out["layout"] = "local file (no striping)";
    return out;
  }

 private:
  IoEngine* engine_;
  NvmeOptions opts_;
};

STOR_REGISTER_BACKEND("nvme", [](const BackendContext& ctx) -> Result<std::shared_ptr<Backend>> {
  NvmeOptions o;
  STOR_ASSIGN_OR_RETURN(o.refuse_direct, Settings(ctx.settings).get_bool("nvme.refuse_direct", o.refuse_direct));
  return make_backend(ctx.engine, o);
});

}  // namespace

std::shared_ptr<Backend> make_backend(IoEngine* engine, NvmeOptions opts) {
  return std::make_shared<NvmeBackend>(engine, opts);
}

}  // namespace stor::nvme
