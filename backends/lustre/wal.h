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
//
// Acknowledgement rule: writes complete out of reservation order, and a record behind a torn
// earlier one (a crash mid-pwrite, a short write) is unreachable by replay. So sync() waits until
// every byte reserved before it started is written (the contiguous written prefix covers it)
// before the fdatasync that acknowledges, and the first failed append (or fdatasync) breaks the
// log: every later append and sync fails, so nothing behind the gap is acknowledged, until open()
// starts a log again (the MDS does at mount and when a checkpoint rotates the log).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
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
  // Appends one record with a single pwrite(2); thread safe, no lock around the write. Not
  // concurrent with open()/close(). Fails once the log is broken, and when its record lies
  // behind the failed one of a concurrent append.
  Status append(std::string_view payload);
  // Waits until every record reserved before the call is written, then fdatasyncs; thread safe.
  // Concurrent callers share one flush (group commit). Fails once the log is broken. A sync
  // waiting when open()/close() replaces the log returns OK: the MDS replaces it only after a
  // checkpoint made its content durable (or at unmount/destruction).
  Status sync();
  uint64_t size() const { return next_offset_.load(std::memory_order_relaxed); }
  // An append or fdatasync failed since open(): nothing more is acknowledged until open().
  bool broken() const { return broken_.load(); }
  void close();

 private:
  std::atomic<int> fd_{-1};
  std::string path_;
  std::atomic<uint64_t> next_offset_{0};
  std::atomic<bool> broken_{false};

  // Marks [off, end) written; advances the contiguous written prefix.
  Status mark_written(uint64_t off, uint64_t end);
  // Breaks the log at `off` (a failed append's offset; 0 for a failed fdatasync).
  void mark_broken(uint64_t off, const Status& why);
  Status broken_status() const;  // written_mu_ held

  // Guarded by written_mu_: every byte below written_prefix_ is written; done_ holds the ranges
  // (start -> end) written beyond it. epoch_ counts open()/close(), so waiters of a replaced log
  // stop waiting.
  std::mutex written_mu_;
  std::condition_variable written_cv_;
  uint64_t written_prefix_ = 0;
  std::map<uint64_t, uint64_t> done_;
  uint64_t epoch_ = 0;
  uint64_t broken_at_ = 0;
  std::string broken_why_;

  // Group commit, guarded by sync_mu_: an fdatasync of epoch synced_epoch_ covered every byte
  // below synced_to_.
  std::mutex sync_mu_;
  uint64_t synced_epoch_ = 0;
  uint64_t synced_to_ = 0;

  // Test-only (set through WalWriterTestPeer in the tests): called by append() between the
  // reservation of [offset, offset + len) and its pwrite. A non-zero return is an errno the write
  // then fails with, as if pwrite(2) had returned it.
  friend struct WalWriterTestPeer;
  std::function<int(uint64_t offset, size_t len)> before_write_;
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
