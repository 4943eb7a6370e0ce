// BackendFile::lock_range on a file descriptor: OFD byte-range locks (F_OFD_SETLK[W]), for the
// backends whose handle is a kernel file (nvme://, native Lustre mounts).
//
// Each lock hangs on an open file description of its own (the file reopened through
// /proc/self/fd): OFD locks of one description never conflict with each other, and ours must,
// also between locks of one handle. Closing that description releases the lock; descriptors of
// released locks are kept for reuse (an open through /proc per lock costs more than the lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "stor/backend.h"
#include "stor/status.h"

namespace stor::internal {

class OfdLocks {
 public:
  OfdLocks() = default;
  OfdLocks(const OfdLocks&) = delete;
  OfdLocks& operator=(const OfdLocks&) = delete;
  ~OfdLocks() { close_all(); }

  // The contract of BackendFile::lock_range, for the file open as fd (path: messages, and the
  // file to open where /proc is missing). timeout milliseconds::max(): the kernel's queue
  // (F_OFD_SETLKW), no bound; otherwise F_OFD_SETLK retried with a back-off until then.
  Result<uint64_t> lock(int fd, const std::string& path, uint64_t off, uint64_t len, RangeLockMode mode,
                        std::chrono::milliseconds timeout);
  Status unlock(uint64_t id);
  // Releases every lock (the handle closes).
  void close_all();

 private:
  std::mutex mu_;
  bool closed_ = false;
  uint64_t next_ = 0;
  std::map<uint64_t, std::pair<int, int>> held_;  // lock id -> (descriptor, 0 shared / 1 exclusive)
  std::vector<int> idle_[2];  // descriptors without a lock: opened for reading / for writing
};

}  // namespace stor::internal
