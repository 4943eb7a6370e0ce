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
#include <vector>

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

// An OFD lock (fcntl F_OFD_SETLK) on one byte of a lock file, held by its own open file
// description: it excludes other processes and other FileLocks of this process alike, and
// closing the descriptor (destruction, or the process dying) releases it.
class FileLock {
 public:
  FileLock() = default;
  explicit FileLock(int fd) : fd_(fd) {}
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock& operator=(FileLock&& o) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock() { release(); }
  void release();
  bool held() const { return fd_ >= 0; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
};

// The state of one namespace, shared by every process (and every TieredStore instance) that has
// it open. Appends are whole lines written with one write() under an exclusive flock of the
// journal; each instance re-reads what others appended (refresh) under a shared one, and reloads
// everything when another instance compacted (the checkpoint it holds open is no longer the one
// in the directory). Crash recovery (TieredStoreImpl::init) runs only in the instance that opens
// the state while nobody else has it open (`alone`).
class Journal {
 public:
  // Loads dir/checkpoint and dir/journal into *records (creates dir if needed). *alone says
  // whether no other instance has the state open; until opened() is called, other instances
  // wait in their open() (the caller runs its recovery in between). Without `alone`, opened()
  // is called before returning.
  static Result<std::unique_ptr<Journal>> open(const std::string& dir, std::map<std::string, Record>* records,
                                               bool* alone = nullptr);
  // Lets other instances open the state (after recovery).
  void opened();
  ~Journal();

  // Applies what other instances appended since the last refresh (all of the state again after
  // another instance compacted). Records whose lines were not read are left as they are.
  Status refresh(std::map<std::string, Record>* records);
  // durable: fsync before returning (for records whose loss could lose data).
  Status put(const Record& r, bool durable);
  Status erase(const std::string& path, bool durable);
  // Under the journal's exclusive lock: refreshes *records, adds each record of `candidates`
  // whose path is absent, appends their lines and lists their paths in *added. No other
  // instance's line for such a path comes between the check and the append (imports).
  Status insert_absent(std::map<std::string, Record>* records, const std::vector<Record>& candidates,
                       bool durable, std::vector<std::string>* added);
  // Refreshes *records, rewrites the checkpoint from them and empties the journal.
  Status compact(std::map<std::string, Record>* records);
  uint64_t appended_since_compaction() const;

  // Cross-process locks of one path (see TieredStoreImpl::lock_ops): kOp serializes the
  // operations that move a file's bytes; kOpen is held shared by every open handle, so an
  // exclusive try tells whether a handle is open in any process.
  enum class Slot { kOp, kOpen };
  Result<FileLock> lock_path(const std::string& rel, Slot slot, bool exclusive, bool wait) const;
  static uint64_t slot_of(const std::string& rel, Slot slot);

 private:
  Journal(std::string dir, int fd) : dir_(std::move(dir)), fd_(fd) {}
  Status append(const std::string& lines, bool durable);  // caller holds mu_ and the exclusive flock
  Status refresh_locked(std::map<std::string, Record>* records);  // caller holds mu_ and a flock
  Status compact_locked(const std::map<std::string, Record>& records);
  Status flock_journal(int op);
  std::string dir_;
  int fd_ = -1;          // the journal (read + append); flock()ed for appends, refreshes, compaction
  int open_lock_fd_ = -1;  // dir/lock: held exclusively while an instance opens (and recovers)
  int users_fd_ = -1;      // dir/users: held shared while open; exclusive when alone at open
  int checkpoint_fd_ = -1;  // the checkpoint last loaded: its inode cannot be reused while held
  uint64_t offset_ = 0;     // journal bytes applied to the records
  mutable std::mutex mu_;   // orders this instance's flock calls (flock is per open file description)
  uint64_t appended_ = 0;
};

}  // namespace stor::tiering::internal
