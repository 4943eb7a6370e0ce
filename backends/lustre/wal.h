// Append-only, checksummed record log used by the metadata service.
//
// Frame: [u32 payload length][u32 crc32c(payload)][payload]. A record counts once its write(2)
// returned: it is then in the page cache and survives kill -9 of the process. sync() makes it
// survive a machine crash too. Recovery stops at the first short or corrupt frame (a torn tail)
// and truncates the log there.
#pragma once

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
  // Appends one record with a single write(2); thread safe.
  Status append(std::string_view payload);
  // fdatasync; thread safe. Concurrent callers share one flush (group commit).
  Status sync();
  uint64_t size() const;
  void close();

 private:
  int fd_ = -1;
  std::string path_;
  mutable std::mutex mu_;
  uint64_t size_ = 0;
  uint64_t appended_seq_ = 0;
  std::mutex sync_mu_;
  uint64_t synced_seq_ = 0;
};

// Calls `apply` for every intact record of the log at `path` in order. Returns the byte length of
// the intact prefix (0 when the file is missing), or an error from `apply` / reading.
Result<uint64_t> replay_wal(const std::string& path, const std::function<Status(std::string_view)>& apply);

// Writes `data` to `path` atomically: temp file, fsync, rename, fsync of the directory.
Status write_file_atomic(const std::string& path, std::string_view data);
Result<std::string> read_file(const std::string& path);
Status fsync_dir(const std::string& dir);

}  // namespace stor::lustre
