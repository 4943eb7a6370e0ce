// Atomic mode (MPI_File_set_atomicity): MPI's guarantee that concurrent overlapping accesses
// from different ranks see one another whole. On nvme:// every access takes an OFD byte-range
// lock (F_OFD_SETLKW: owned by the open file description, so it works between processes and
// between threads) over its extent, shared for reads, exclusive for writes. Where one process
// does all the I/O of a file (the emulated lustre:// mount, held by the delegate; the other
// ranks' independent calls are served there one at a time) a mutex in that process serialises
// its own calls with the ones it serves.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

Status ofd_lock(int fd, short type, int64_t lo, int64_t hi) {
  struct flock fl {};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = lo;
  fl.l_len = hi - lo;
  fl.l_pid = 0;  // required for OFD locks
  while (::fcntl(fd, F_OFD_SETLKW, &fl) != 0) {
    if (errno != EINTR) return Status::from_errno(errno, "byte-range lock (F_OFD_SETLKW) for atomic mode");
  }
  return Status::ok();
}

}  // namespace

Status set_atomicity(StorFile& f, bool on) {
  Status s;
  int lock_fd = -1;
  if (on && f.file) {
    auto uri = Uri::parse(f.uri);
    if (!uri.is_ok()) {
      s = uri.status();
    } else if (uri->scheme == "nvme") {
      // A descriptor of our own to hang the locks on; write locks need one open for writing.
      lock_fd = ::open(uri->path.c_str(), ((f.amode & MPI_MODE_RDONLY) ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      if (lock_fd < 0) s = Status::from_errno(errno, "open " + uri->path + " for atomic-mode locks");
    } else if (f.io_ranks.size() > 1) {
      // The multi-client lustre://HOST:PORT/ mount is such a backend: every rank holds its own
      // handle and there are no extent locks between client processes (yet).
      s = Status::Unsupported("atomic mode needs byte-range locks: " + std::to_string(f.io_ranks.size()) +
                              " processes hold handles and the " + uri->scheme +
                              " backend offers no byte-range locks between them (atomic mode needs nvme://, or "
                              "one process doing all I/O as on the embedded lustre:/// mount; a lustre://HOST:PORT "
                              "cluster mount has no extent locks yet)");
    }
  }
  s = agree(f.comm, s);
  if (!s.is_ok()) {
    if (lock_fd >= 0) ::close(lock_fd);
    return s;
  }
  if (f.lock_fd >= 0) ::close(f.lock_fd);
  f.lock_fd = lock_fd;
  f.atomic.store(on);
  return Status::ok();
}

AtomicGuard::AtomicGuard(StorFile& f, const std::vector<Block>& segments, bool write) : f_(f) {
  if (!f.atomic.load() || segments.empty()) return;
  if (f.lock_fd < 0) {
    f.atomic_mu.lock();
    mutex_held_ = true;
    return;
  }
  lo_ = segments.front().off;
  hi_ = lo_;
  for (const auto& b : segments) {
    lo_ = std::min(lo_, b.off);
    hi_ = std::max(hi_, b.off + b.len);
  }
  if (hi_ <= lo_) return;
  status_ = ofd_lock(f.lock_fd, write ? F_WRLCK : F_RDLCK, lo_, hi_);
  locked_ = status_.is_ok();
}

AtomicGuard::~AtomicGuard() {
  if (locked_) (void)ofd_lock(f_.lock_fd, F_UNLCK, lo_, hi_);
  if (mutex_held_) f_.atomic_mu.unlock();
}

void close_atomic(StorFile& f) {
  if (f.lock_fd >= 0) ::close(f.lock_fd);
  f.lock_fd = -1;
}

}  // namespace stor::mpiio
