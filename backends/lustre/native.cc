#include "backends/lustre/native.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "core/ofd_locks.h"

namespace stor::lustre::native {

namespace {

FileType type_of(mode_t m) {
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISBLK(m)) return FileType::kBlockDevice;
  return FileType::kOther;
}

FileInfo info_of(const std::string& path, const struct stat& st) {
  FileInfo fi;
  fi.path = path;
  fi.type = type_of(st.st_mode);
  fi.size = static_cast<uint64_t>(st.st_size);
  fi.mode = st.st_mode & 07777;
  fi.uid = st.st_uid;
  fi.gid = st.st_gid;
  fi.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return fi;
}

class NativeFile final : public BackendFile {
 public:
  NativeFile(IoEngine* engine, int fd, std::string path) : engine_(engine), fd_(fd), path_(std::move(path)) {}
  ~NativeFile() override { (void)close(); }

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (fd_ < 0) return done(Status::InvalidArgument("lustre: read on a closed file"));
    engine_->submit(IoRequest{IoOp::kRead, fd_, buf, len, offset, -1, std::move(done)});
  }
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (fd_ < 0) return done(Status::InvalidArgument("lustre: write on a closed file"));
    engine_->submit(IoRequest{IoOp::kWrite, fd_, const_cast<void*>(buf), len, offset, -1, std::move(done)});
  }
  // One preadv/pwritev for all segments: Lustre's client stripes it like a plain request.
  void readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) override {
    submitv(IoOp::kRead, iov, offset, std::move(done));
  }
  void writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) override {
    submitv(IoOp::kWrite, iov, offset, std::move(done));
  }
  Status sync(bool data_only) override {
    if (fd_ < 0) return Status::InvalidArgument("lustre: sync on a closed file");
    auto r = engine_->fsync(fd_, data_only).get();
    return r.is_ok() ? Status::ok() : r.status();
  }
  Status truncate(uint64_t size) override {
    if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return Status::from_errno(errno, "lustre: truncate " + path_);
    return Status::ok();
  }
  Result<FileInfo> stat() override {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) return Status::from_errno(errno, "lustre: fstat " + path_);
    return info_of(path_, st);
  }
  // OFD locks, as nvme://. They exclude between the processes of one client node; whether the
  // Lustre client forwards them to the MDS for other nodes depends on its mount option (flock:
  // cluster-wide, localflock: node-local).
  Result<uint64_t> lock_range(uint64_t off, uint64_t len, RangeLockMode mode,
                              std::chrono::milliseconds timeout) override {
    if (fd_ < 0) return Status::InvalidArgument("lustre: lock on a closed file");
    return locks_.lock(fd_, path_, off, len, mode, timeout);
  }
  Status unlock_range(uint64_t lock_id) override { return locks_.unlock(lock_id); }
  Status close() override {
    locks_.close_all();
    int fd = fd_;
    fd_ = -1;
    if (fd >= 0 && ::close(fd) != 0) return Status::from_errno(errno, "lustre: close " + path_);
    return Status::ok();
  }

 private:
  void submitv(IoOp op, std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
    if (fd_ < 0) return done(Status::InvalidArgument("lustre: I/O on a closed file"));
    auto total = iov_total(iov);
    if (!total) return done(total.status());
    if (*total == 0) return done(size_t{0});
    IoRequest req{op, fd_, nullptr, *total, offset, -1, std::move(done)};
    req.iov = iov.data();
    req.iov_count = iov.size();
    engine_->submit(std::move(req));
  }

  IoEngine* engine_;
  int fd_;
  std::string path_;
  internal::OfdLocks locks_;
};

}  // namespace

Result<std::unique_ptr<BackendFile>> open(IoEngine* engine, const std::string& host, const OpenOptions& o,
                                          const std::string& uri) {
  int flags = O_CLOEXEC;
  bool r = o.flags & kOpenRead, w = o.flags & (kOpenWrite | kOpenTruncate);
  flags |= r && w ? O_RDWR : w ? O_WRONLY : O_RDONLY;
  if (o.flags & kOpenCreate) flags |= O_CREAT;
  if (o.flags & kOpenTruncate) flags |= O_TRUNC;
  if ((o.flags & kOpenExclusive) && (o.flags & kOpenCreate)) flags |= O_EXCL;
  if (o.flags & kOpenAppend) {
    if (!w) return Status::InvalidArgument("lustre: kOpenAppend needs kOpenWrite: " + host);
    flags |= O_APPEND;  // Lustre serialises appenders with a whole-file extent lock
  }
  int fd = ::open(host.c_str(), flags, o.mode);
  if (fd < 0) return Status::from_errno(errno, "lustre: open " + host);
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::IsADirectory("lustre: '" + host + "' is a directory");
  }
  return std::unique_ptr<BackendFile>(std::make_unique<NativeFile>(engine, fd, uri));
}

Result<FileInfo> stat(const std::string& host) {
  struct stat st {};
  if (::stat(host.c_str(), &st) != 0) return Status::from_errno(errno, "lustre: stat " + host);
  return info_of(host, st);
}

Result<std::vector<DirEntry>> list(const std::string& host) {
  DIR* d = ::opendir(host.c_str());
  if (!d) return Status::from_errno(errno, "lustre: opendir " + host);
  std::vector<DirEntry> out;
  while (auto* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st {};
    DirEntry de{name, FileType::kOther, 0};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
      de.type = type_of(st.st_mode);
      de.size = static_cast<uint64_t>(st.st_size);
    }
    out.push_back(std::move(de));
  }
  ::closedir(d);
  return out;
}

Status remove(const std::string& host) {
  struct stat st {};
  if (::lstat(host.c_str(), &st) != 0) return Status::from_errno(errno, "lustre: remove " + host);
  int rc = S_ISDIR(st.st_mode) ? ::rmdir(host.c_str()) : ::unlink(host.c_str());
  if (rc != 0) return Status::from_errno(errno, "lustre: remove " + host);
  return Status::ok();
}

Status mkdir(const std::string& host, uint32_t mode) {
  if (::mkdir(host.c_str(), mode) != 0) return Status::from_errno(errno, "lustre: mkdir " + host);
  return Status::ok();
}

Status rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return Status::from_errno(errno, "lustre: rename " + from);
  return Status::ok();
}

}  // namespace stor::lustre::native
