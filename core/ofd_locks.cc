#include "core/ofd_locks.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <thread>

namespace stor::internal {

Result<uint64_t> OfdLocks::lock(int fd, const std::string& path, uint64_t off, uint64_t len, RangeLockMode mode,
                                std::chrono::milliseconds timeout) {
  if (len == 0) return Status::InvalidArgument(path + ": byte-range lock of 0 bytes");
  constexpr uint64_t kMaxOff = static_cast<uint64_t>(INT64_MAX);
  if (off > kMaxOff || len > kMaxOff - off) return Status::InvalidArgument(path + ": byte-range lock past 2^63 - 1");
  const int acc = ::fcntl(fd, F_GETFL) & O_ACCMODE;
  if (mode == RangeLockMode::kExclusive && acc == O_RDONLY)
    return Status::PermissionDenied(path + ": an exclusive byte-range lock needs a handle open for writing");
  // F_RDLCK needs a descriptor open for reading, F_WRLCK one open for writing, whatever the
  // handle's own mode (a write-only handle may take shared locks).
  const int kind = mode == RangeLockMode::kExclusive ? 1 : 0;
  int lfd = -1;
  {
    std::lock_guard lk(mu_);
    if (!idle_[kind].empty()) {
      lfd = idle_[kind].back();
      idle_[kind].pop_back();
    }
  }
  if (lfd < 0) {
    const int want = kind ? O_WRONLY : O_RDONLY;
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    lfd = ::open(self.c_str(), want | O_CLOEXEC);
    if (lfd < 0 && errno == ENOENT) lfd = ::open(path.c_str(), want | O_CLOEXEC);  // no /proc
    if (lfd < 0) return Status::from_errno(errno, "open " + path + " for a byte-range lock");
  }
  struct flock fl {};
  fl.l_type = kind ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(off);
  fl.l_len = static_cast<off_t>(len);
  fl.l_pid = 0;  // required for OFD locks
  const std::string range = path + " bytes [" + std::to_string(off) + ", " + std::to_string(off + len) + ")";
  if (timeout == std::chrono::milliseconds::max()) {
    // No bound: the kernel's queue, no polling delay.
    while (::fcntl(lfd, F_OFD_SETLKW, &fl) != 0) {
      if (errno == EINTR) continue;
      Status s = Status::from_errno(errno, "byte-range lock (F_OFD_SETLKW) of " + range);
      ::close(lfd);
      return s;
    }
  } else {
    // The kernel has no timed wait: try, and back off from 20 us to 2 ms until the deadline.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto pause = std::chrono::microseconds(20);
    while (::fcntl(lfd, F_OFD_SETLK, &fl) != 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EACCES) {
        Status s = Status::from_errno(errno, "byte-range lock (F_OFD_SETLK) of " + range);
        ::close(lfd);
        return s;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        ::close(lfd);
        return Status::Timeout("byte-range lock of " + range + " not granted within " + std::to_string(timeout.count()) +
                               " ms");
      }
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(2));
    }
  }
  std::lock_guard lk(mu_);
  const uint64_t id = ++next_;
  held_[id] = {lfd, kind};
  return id;
}

Status OfdLocks::unlock(uint64_t id) {
  std::pair<int, int> held;
  {
    std::lock_guard lk(mu_);
    auto it = held_.find(id);
    if (it == held_.end()) return {};
    held = it->second;
    held_.erase(it);
  }
  struct flock fl {};
  fl.l_type = F_UNLCK;
  fl.l_whence = SEEK_SET;  // l_start = l_len = 0: the whole file
  if (::fcntl(held.first, F_OFD_SETLK, &fl) == 0) {
    std::lock_guard lk(mu_);
    if (!closed_ && idle_[held.second].size() < 4) {
      idle_[held.second].push_back(held.first);
      return {};
    }
  }
  ::close(held.first);  // closing the description releases its lock in any case
  return {};
}

void OfdLocks::close_all() {
  std::lock_guard lk(mu_);
  closed_ = true;
  for (auto& [id, held] : held_) ::close(held.first);
  held_.clear();
  for (auto& pool : idle_) {
    for (int lfd : pool) ::close(lfd);
    pool.clear();
  }
}

}  // namespace stor::internal
