// The tiered store's implementation class, shared by its sources (one concern per file):
//   tiered_store.cc          open, crash recovery, records and journal, namespace queries
//   tiered_store_file.cc     open_file and the TierFile handle (pinned versions, footer reads)
//   tiered_store_fetch.cc    fetch and promote, revalidation of a replaced object
//   tiered_store_demote.cc   demotion (copy, verify, switch, release) and the policy thread
//   tiered_store_export.cc   export of dirty files to the cold tier
//   tiered_store_sync.cc     import_listing and the two-way sync / conflict state machine
//   tiered_store_footer.cc   the parquet footer cache
//
// Locking: mu_ guards records_, open_handles_, op_locks_, persisted_access_, footers_, stats_,
// validated_ns_ and the journal; it is held for bookkeeping and journal updates, never across a cold-tier
// request. The per-path op lock (lock_ops(rel)) serializes the operations that move one file's
// bytes (open, close after writing, fetch, demote, export, sync, remove, rename) among the
// threads of this process (a mutex) and among processes (an OFD lock, Journal::lock_path); take
// it before mu_. policy_mu_ guards the policy and sync threads' flags only.
//
// Several processes: records_ is this process's copy of the shared journal. Every change to a
// file's record is made under its op lock, right after refreshing records_ from the journal
// (lock_ops does), and is appended to the journal before the lock is released, so the journal
// orders each file's changes as the op locks did. Imports of new objects go through
// Journal::insert_absent. An open handle holds its file's kOpen slot shared (is_open).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backends/tier/cold_tier.h"
#include "backends/tier/journal.h"
#include "backends/tier/notify_listener.h"
#include "backends/tier/tiered_store.h"

namespace stor::tiering::internal {

inline bool fast_resident(Residency r) { return r == Residency::kDirty || r == Residency::kCached; }

// The record describes the cold object's version `o` as the file's content (import, a change
// found by sync, an object replaced since the listing). Residency is the caller's.
inline void take_cold_version(Record& r, const ColdObject& o) {
  r.size = o.size;
  r.mtime_ns = o.mtime_ns;
  r.cold_etag = o.etag;
  r.cold_mtime_ns = o.mtime_ns;
}

// The tail of a parquet file kept in memory for one cold version (tiered_store_footer.cc).
struct Footer {
  std::string etag;
  uint64_t offset = 0;  // file offset of bytes[0]; bytes run to the end of the file
  std::string bytes;
};

// A handle opened on a cold (uncached / demoted) file is pinned to the version it opened: its
// stat() reports that version's size, mtime and ETag, and its reads are served from that version
// only (a replaced object fails them with Aborted). Handles opened on a fast copy read that copy.
struct PinnedVersion {
  std::string etag;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

class TieredStoreImpl final : public TieredStore, public std::enable_shared_from_this<TieredStoreImpl> {
 public:
  TieredStoreImpl(TierOptions opts, Uri fast_root, std::unique_ptr<ColdTier> cold)
      : opts_(std::move(opts)), fast_root_(std::move(fast_root)), cold_(std::move(cold)) {}
  ~TieredStoreImpl() override;

  Status init();                // replays the journal and finishes interrupted moves (recover)
  void start_policy_thread();   // when opts_.policy_interval_ns > 0
  void start_sync_thread();     // when opts_.sync_interval_ns > 0 (tiered_store_sync.cc)
  Status start_listener();      // when opts_.notify_listen is set (tiered_store_sync.cc)

  // ---- TieredStore ----
  Result<size_t> import_listing() override;
  Result<SyncReport> sync() override;
  Result<PolicyReport> run_policy() override;
  Status demote(const std::string& path) override;
  Status promote(const std::string& path) override;
  Result<std::unique_ptr<BackendFile>> open_file(const std::string& path, const OpenOptions& oo) override;
  Result<FileInfo> stat(const std::string& path) override;
  Result<std::vector<DirEntry>> list(const std::string& dir) override;
  Status remove(const std::string& path) override;
  Status rename(const std::string& from, const std::string& to) override;  // tiered_store_rename.cc
  Result<FileStatus> status(const std::string& path) override;
  std::vector<FileStatus> status_all(const std::string& prefix_path) override;
  TierStats stats() const override;
  std::string notify_endpoint() const override { return listener_ ? listener_->endpoint() : ""; }

  // ---- used by TierFile ----
  // The shared hold on rel's kOpen slot that an open handle keeps (see is_open).
  Result<FileLock> hold_open(const std::string& rel) { return journal_->lock_path(rel, Journal::Slot::kOpen, false, true); }
  // Opens the fast copy of the cold version `etag` of rel, fetching it first if needed.
  Result<std::unique_ptr<BackendFile>> open_version_for_read(const std::string& rel, const std::string& etag);
  void count_footer_hit();
  // One ranged read of the cold version `known` of rel (the sparse parquet path of TierFile).
  Result<size_t> read_cold(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len, char* dst);
  Uri cold_uri_of(const std::string& rel) const;
  // A handle on rel closed; `wrote`: it wrote, so the record takes the fast copy's size/mtime.
  Status closed(const std::string& rel, bool wrote);

 private:
  // ---- records and journal (tiered_store.cc) ----
  Status recover();  // at open, when no other instance has the state open
  Uri fast_uri(const std::string& rel) const { return child_uri(fast_root_, rel); }
  // The op locks of `rels` (one or two paths), in path order, then refresh(): see Locking above.
  struct OpGuard {
    std::vector<std::shared_ptr<std::mutex>> mutexes;  // declared first: outlive the locks below
    std::vector<std::unique_lock<std::mutex>> held;
    std::vector<FileLock> files;
  };
  Result<OpGuard> lock_ops(std::vector<std::string> rels);
  Result<OpGuard> lock_op(const std::string& rel) { return lock_ops({rel}); }
  Status refresh();  // applies the other processes' journal lines to records_
  // Whether a handle on rel is open in this or another process; caller holds mu_ and the op lock.
  bool is_open(const std::string& rel);
  std::optional<Record> find(const std::string& rel) const;
  bool is_directory(const std::string& rel) const;
  void maybe_compact();                                // caller holds mu_
  void note_access(const std::string& rel, int64_t now);  // caller holds mu_
  Status make_fast_parents(const std::string& rel) { return make_parents(*opts_.fast, fast_root_, rel); }
  static Record uncached_record(const std::string& rel, const ColdObject& o, int64_t now);

 public:
  static ColdObject known_of(const Record& r) { return {r.path, r.size, r.cold_mtime_ns, r.cold_etag}; }

 private:

  // ---- fetch and promote (tiered_store_fetch.cc); callers hold the op lock of rel ----
  Status fetch_once(const std::string& rel);
  Status fetch_locked(const std::string& rel);
  Status revalidate_after_failed_fetch(const std::string& rel, const Status& s, bool* adopted);
  Status changed_since_open(const std::string& rel, const std::string& opened, const std::string& now) const;
  // Revalidation on open (TierOptions::revalidate_after_ns); caller holds the op lock of rel.
  Status revalidate_on_open(const std::string& rel, int64_t now);
  void validated(const std::string& rel) { validated_ns_[rel] = opts_.clock(); }  // caller holds mu_

  // ---- export (tiered_store_export.cc) ----
  // The fast copy of rel written to the cold tier, with the size and CRC32 of what was read.
  struct Upload {
    ColdObject object;
    uint64_t size = 0;
    uint32_t crc = 0;
  };
  // Records the export intent (durably), then uploads over `expect` only (*refused when the cold
  // tier holds something else); caller holds the op lock of rel.
  Result<Upload> upload_fast_copy(const std::string& rel, const ExpectedVersion& expect, bool* refused);
  // Caller holds the op lock of rel. *refused: the cold object is not the version the record
  // last saw (another client changed it); nothing was written.
  Status export_locked(const std::string& rel, bool* refused = nullptr);
  static ExpectedVersion expected_of(const Record& r) { return {r.cold_etag.empty(), r.cold_etag}; }
  // Sync after a crash: is `listed` the upload an export intent describes? (op lock of rel held)
  Status adopt_completed_export(const std::string& rel, const ColdObject& listed, bool* ours);
  Status fast_checksum(const std::string& rel, uint64_t* size, uint32_t* crc);

  // ---- demote and policy (tiered_store_demote.cc) ----
  Status demote_locked(const std::string& rel);  // caller holds the op lock of rel
  void hook(const std::string& rel, const char* step);
  void kick_policy_if_full();                    // caller holds mu_

  // ---- rename (tiered_store_rename.cc) ----
  // Rolls the rename whose target record is `to` forward (idempotent); callers hold both op locks.
  Status finish_rename(const std::string& to);
  Status finish_pending_renames();  // every record with a rename intent (init, sync)

  // ---- sync (tiered_store_sync.cc) ----
  Status sync_one(const std::string& path, const std::map<std::string, ColdObject>& remote, SyncReport* report);
  // A bucket notification for rel: what the bucket holds now (one HEAD) is applied as sync would.
  void apply_bucket_event(const std::string& rel, const BucketEvent& e);

  // ---- parquet footers (tiered_store_footer.cc) ----
  Result<std::shared_ptr<const Footer>> parquet_footer(const Record& r);

  TierOptions opts_;
  Uri fast_root_;
  std::unique_ptr<ColdTier> cold_;
  std::unique_ptr<Journal> journal_;
  mutable std::mutex mu_;
  mutable std::map<std::string, Record> records_;  // refreshed from the journal by const queries too
  std::map<std::string, int> open_handles_;
  std::map<std::string, std::shared_ptr<std::mutex>> op_locks_;
  std::map<std::string, int64_t> persisted_access_;
  std::map<std::string, std::shared_ptr<const Footer>> footers_;
  // When each record's cold version was last confirmed against the cold tier (this process only:
  // after a restart, the first open of each file checks).
  std::map<std::string, int64_t> validated_ns_;
  TierStats stats_;

  std::mutex policy_mu_;
  std::condition_variable policy_cv_;
  bool stopping_ = false, kicked_ = false;
  std::thread policy_thread_;  // last members: started after everything else is built
  std::thread sync_thread_;
  std::unique_ptr<NotifyListener> listener_;  // stopped first by the destructor
};

}  // namespace stor::tiering::internal
