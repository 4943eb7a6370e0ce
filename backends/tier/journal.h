// Persisted tiering state: a checkpoint file plus an append-only journal, both lines of
// "CRC32 payload". A torn last line (crash mid-append) fails its CRC and is ignored; that record
// was never acknowledged. Every other line must be a valid record (normalized relative path,
// residency 0..3, sizes <= 2^63-1, strict decimal numbers, well-formed %XX escapes, an ETag without
// control bytes that uncached/demoted files must have); anything else is Corruption naming the
// file and line, and nothing is applied or rewritten. Compaction writes checkpoint.tmp, fsyncs it, renames it over the
// checkpoint, fsyncs the directory, then empties the journal.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "stor/status.h"
#include "stor/tiering.h"

namespace stor::tiering::internal {

struct Record {
  std::string path;
  Residency residency = Residency::kDirty;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string cold_etag;      // validator of the cold copy as of the last import/export ("" = none)
  int64_t cold_mtime_ns = 0;
  int64_t last_access_ns = 0;
  uint64_t reads = 0;
  // Export intent: set (durably) before a dirty file's upload starts, cleared when the record
  // takes the uploaded version. After a crash between the two, an object with this size and
  // CRC32 is recognised as our own completed upload rather than a change by another client.
  bool export_pending = false;
  uint64_t export_size = 0;
  uint32_t export_crc = 0;
  // Rename intent: this record is the target of a rename from `renamed_from` that has not
  // finished (the old record still exists); replay finishes it (TieredStoreImpl::finish_rename).
  std::string renamed_from;
};

uint32_t crc32(const void* data, size_t len, uint32_t crc = 0);

// Applies the lines of a checkpoint or journal held in memory to *records, exactly as open()
// does (`is_journal`: a last line failing its CRC is a torn append and skipped). `name` prefixes
// errors ("DIR/journal line 7: ..."). Any bytes give a Status, never a crash (for fuzzing).
Status replay_lines(std::string_view text, const std::string& name, bool is_journal,
                    std::map<std::string, Record>* records);

class Journal {
 public:
  // Locks dir/lock (Busy when another process or instance holds it), loads dir/checkpoint and
  // replays dir/journal into *records (creates dir if needed).
  static Result<std::unique_ptr<Journal>> open(const std::string& dir, std::map<std::string, Record>* records);
  ~Journal();

  // durable: fsync before returning (for records whose loss could lose data).
  Status put(const Record& r, bool durable);
  Status erase(const std::string& path, bool durable);
  // Rewrites the checkpoint from `records` and empties the journal.
  Status compact(const std::map<std::string, Record>& records);
  uint64_t appended_since_compaction() const;

 private:
  Journal(std::string dir, int fd, int lock_fd) : dir_(std::move(dir)), fd_(fd), lock_fd_(lock_fd) {}
  Status append(const std::string& payload, bool durable);
  std::string dir_;
  int fd_ = -1;
  int lock_fd_ = -1;  // flock()ed: one process owns the state at a time
  mutable std::mutex mu_;
  uint64_t appended_ = 0;
};

}  // namespace stor::tiering::internal
