// Append-only, checksummed record log used by the metadata service.
//
// Frame: [u32 payload length][u32 crc32c(payload)][payload], payload non-empty. A record counts
// once its pwrite(2) returned: it is then in the page cache and survives kill -9 of the process.
// sync() makes it survive a machine crash too.
//
// Appenders reserve their byte range with one atomic add and write without a lock, so concurrent
// metadata operations do not queue behind each other's system calls. The log order is the
// reservation order, and callers reserve while holding the lock that orders dependent operations,
// so a record is only ever reserved after the records it depends on were fully written. A process
// killed between a reservation and its write leaves a zero-filled gap: that record was never
// acknowledged and nothing logged after it depends on it, so recovery skips zero runs. Recovery
// stops at the first frame that is neither intact nor preceded by zeros (a torn or corrupt tail)
// and truncates the log there.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "stor/status.h"

namespace stor::lustre {

uint32_t crc32c(const void* data, size_t len, uint32_t crc = 0);

class WalWriter {
 public:
  WalWriter() = default;
  ~WalWriter();
  WalWriter(const WalWriter&) = delete;
  WalWriter& operator=(const WalWriter&) = delete;

  // Opens (creating if needed) the log for appending at `valid_length` (after recovery).
  Status open(const std::string& path, uint64_t valid_length);
  // Appends one record with a single pwrite(2); thread safe, lock free. Not concurrent with
  // open()/close().
  Status append(std::string_view payload);
  // fdatasync; thread safe. Concurrent callers share one flush (group commit).
  Status sync();
  uint64_t size() const { return next_offset_.load(std::memory_order_relaxed); }
  void close();

 private:
  std::atomic<int> fd_{-1};
  std::string path_;
  std::atomic<uint64_t> next_offset_{0};
  std::atomic<uint64_t> sync_requests_{0};
  std::mutex sync_mu_;
  uint64_t synced_requests_ = 0;
};

// Calls `apply` for every intact record of the log at `path` in order. Returns the byte length of
// the intact prefix (0 when the file is missing), or an error from `apply` / reading.
Result<uint64_t> replay_wal(const std::string& path, const std::function<Status(std::string_view)>& apply);
// The same over a log held in memory (any bytes: frames are bounds-checked before use).
Result<uint64_t> replay_wal_data(std::string_view data, const std::function<Status(std::string_view)>& apply);

// Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory.
Status write_file_atomic(const std::string& path, std::string_view data);
Result<std::string> read_file(const std::string& path);
Status fsync_dir(const std::string& dir);

}  // namespace stor::lustre
