// Tiered store and S3 link: a namespace of files kept on a fast backend (nvme, lustre) with a
// cold backend (s3express bucket, another directory) behind it. See docs/tiering.md.
//
// Every file has one record (persisted, crash safe) saying where its bytes are:
//   kDirty    only on the fast tier: new, or changed since it was last exported;
//   kCached   on both tiers, identical (fetched from cold, or exported);
//   kUncached only on the cold tier, never fetched (imported from the bucket listing);
//   kDemoted  only on the cold tier, moved there by the policy.
// Reads of a cold file fetch the whole file to the fast tier first (ranged GETs in parallel for
// S3) and are then served by the fast tier; that is the "promotion". Writes go to the fast tier.
// One version per handle: a handle opened on a cold file reports and serves the version its
// record named at open; if the object was replaced meanwhile, its reads fail with Aborted (the
// record adopts the new version, so the next open reads it).
//
// Policy (run_policy): a file not read for demote_after is demoted; when the fast tier holds more
// than high_watermark_bytes, least recently read files are demoted until it holds at most
// low_watermark_bytes. Demotion is copy -> verify (read back, compare checksum) -> switch the
// persisted record -> release the fast copy, so a crash at any point loses nothing.
//
// Link (an S3 "data repository association"): import_listing() turns the cold root's listing
// into kUncached records (size, mtime, ETag) without reading data; sync() exports dirty files and
// imports new / changed / deleted objects. Conflict rule (both sides changed since the last sync):
// the bucket's version is imported at the path and the local version is kept as
// "PATH.stor-conflict" (dirty, so the same sync exports it); the pair is listed in the report.
// A file deleted in the bucket but changed locally is kept and exported again (also reported).
//
// Parquet: opening an uncached/demoted "*.parquet" file fetches its last 64 KiB (one ranged read)
// and, when the footer is longer, the rest of the footer; footers are kept in memory per
// (path, ETag), so reads inside the footer and later opens make no cold-tier request. A read-only
// handle on such a file of at least parquet_sparse_min bytes whose footer parses serves other
// reads through the parquet read path (docs/parquet.md): ranged reads of the column chunks a read
// touches (or a growing window for scans), without fetching the file.
//
// URI scheme tier:///ABS/DIR/file: DIR is the nearest ancestor holding ".stor-tier/" (created by
// `stctl link` / create_link). Its fast tier is that directory (nvme) unless .stor-tier/config
// names another root (fast=lustre:///...); its cold tier is the URI recorded there (cold=...).
// Settings: tier.demote_after (seconds), tier.high_watermark / tier.low_watermark (bytes),
// tier.auto_export (0/1), tier.policy_interval (seconds, default 300; 0 = on demand only),
// tier.revalidate_after (seconds, default 60; 0 = every open checks the cold tier),
// tier.sync_interval (seconds, default 0 = only stctl sync / sync()), tier.notify_listen
// (HOST:PORT of an HTTP endpoint for bucket change notifications; "" = off).
//
// Several processes (and several TieredStores in one process) may have one state directory open
// at once: they share its journal, and the operations that move one file's bytes are serialized
// across all of them by a per-path lock; a file open anywhere is not demoted, exported, removed
// or renamed by any of them (Busy). See docs/tiering.md, "Several processes".
//
// Thread safety: every TieredStore method may be called concurrently from any thread, alongside
// the policy thread; operations on one path (open, promote, demote, remove) are serialized by a
// per-path lock. Handles from open_file follow BackendFile's rules (many threads on one handle,
// close after every callback): I/O goes to the fast tier's handle, whose thread runs the
// callbacks; reads inside a prefetched parquet footer complete on the calling thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stor/export.h"
#include "stor/backend.h"

namespace stor::tiering {

enum class Residency : uint8_t { kDirty = 0, kCached = 1, kUncached = 2, kDemoted = 3 };
STOR_API const char* residency_name(Residency r);  // "dirty", "cached", "uncached", "demoted"

// Nanoseconds since the Unix epoch; injectable for policy tests.
using Clock = std::function<int64_t()>;
STOR_API int64_t system_clock_ns();

struct TierOptions {
  std::shared_ptr<Backend> fast;
  std::string fast_root;   // URI of the namespace root on the fast tier, e.g. "nvme:///data/ns"
  std::shared_ptr<Backend> cold;
  std::string cold_root;   // e.g. "s3express://bucket/prefix" or "nvme:///cold/ns"
  std::string state_dir;   // local directory for the journal (created); usually FAST_ROOT/.stor-tier
  Clock clock = system_clock_ns;
  int64_t demote_after_ns = 30ll * 24 * 3600 * 1'000'000'000;
  uint64_t high_watermark_bytes = 0;  // 0: no capacity eviction
  uint64_t low_watermark_bytes = 0;
  bool auto_export = false;           // export a written file when its last writer closes
  // fdatasync a fetched copy before recording it as cached. Off: faster first reads where syncs
  // are slow; a copy cut short by a machine crash is still caught (size check at open) and the
  // cold copy stays authoritative, but a same-size copy with lost blocks is not detected.
  bool durable_fetch = true;
  // S3 cold tiers: also write an empty "DIR/" marker object for every parent directory of an
  // exported file. Off: only the file's own object is written (S3 has no directories; listings
  // and imports work from the keys alone). On for clients that show a prefix as a directory only
  // when its marker exists. Cold tiers with real directories (nvme, lustre) always create them.
  bool cold_dir_markers = false;
  // Bytes fetched per step; an S3 step is split into s3.part_size ranged GETs run in parallel.
  uint64_t fetch_chunk = 64ull << 20;
  // A cold "*.parquet" file of at least this size whose footer stor parses is read sparsely by a
  // read-only handle: the parquet read path (stor/parquet.h) turns reads into ranged reads of the
  // column chunks they touch, and the file is not fetched. Smaller files, footers stor cannot
  // parse and writers fetch the whole file as before. 0: never. From the setting
  // parquet.small_object (the parquet path's own small-object threshold).
  uint64_t parquet_sparse_min = 8ull << 20;
  // Access times are persisted at most this often per file (they only steer the policy).
  int64_t access_persist_interval_ns = 60ll * 1'000'000'000;
  // > 0: a background thread applies the policy this often (wall time), and right away when a
  // fetch or a write pushes the fast tier over the high watermark. 0: only run_policy() does.
  int64_t policy_interval_ns = 0;
  // Revalidation on open: a file not dirty whose cold version was last confirmed (by the listing,
  // a sync, a fetch, an export or an earlier revalidation, in this process) longer ago than this
  // costs its open one cold-tier stat (a HEAD on S3): a new ETag makes the record adopt the new
  // version (the open serves its bytes), a deleted object fails the open with NotFound and drops
  // the record. 0: every open checks. Files open elsewhere in the process are not revalidated.
  int64_t revalidate_after_ns = 60ll * 1'000'000'000;
  // > 0: a background thread runs sync() this often (wall time): dirty files not open are
  // exported, new / changed / deleted cold objects are imported, without anyone calling sync().
  int64_t sync_interval_ns = 0;
  // "HOST:PORT" (IPv4; port 0: any free one; "" = off): an HTTP endpoint for bucket change
  // notifications (S3 event records pushed by Ceph RGW topics, or anything sending that format).
  // Each event for a key under the cold root is applied at once: one HEAD, then as sync would
  // (import, adopt, drop). The topic and the bucket's notification configuration are set up
  // outside (docs/tiering.md); the sync interval stays the fallback for lost events.
  std::string notify_listen;
  // Test seam (crash tests kill the process in it): called at each step of a demotion ("copied",
  // "verified", "switched", "released") and of an export ("export-intent": the intent is durable,
  // "uploaded": the object is in the cold tier, "exported": the record says so) and of a rename
  // ("rename-intent", "rename-cold": the cold object moved, "rename-fast": the fast copy moved).
  std::function<void(const std::string& path, const char* step)> step_hook;
};

struct FileStatus {
  std::string path;  // relative to the namespace root
  Residency residency = Residency::kDirty;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string cold_etag;  // validator of the cold copy as of the last import/export
  int64_t last_access_ns = 0;  // last open for reading; 0 if never read (reads == 0)
  uint64_t reads = 0;
};

struct TierStats {
  uint64_t files = 0;
  uint64_t fast_bytes = 0;  // bytes held on the fast tier
  uint64_t fetches = 0, fetched_bytes = 0;
  uint64_t demotions = 0, demoted_bytes = 0;
  uint64_t exports = 0, exported_bytes = 0;
  uint64_t footer_prefetches = 0, footer_hits = 0;
};

struct PolicyReport {
  std::vector<std::string> demoted;  // by age or watermark
  std::vector<std::string> failed;   // "path: status" (the file stays where it was)
};

struct SyncReport {
  std::vector<std::string> exported, imported_new, imported_changed, deleted_locally, exported_deletions;
  std::vector<std::string> conflicts;  // "PATH (local kept as PATH.stor-conflict)" etc.
  std::vector<std::string> failed;
};

class STOR_API TieredStore {
 public:
  // Opens (or creates) the namespace, replaying the journal and finishing interrupted moves.
  static Result<std::shared_ptr<TieredStore>> open(TierOptions opts);
  virtual ~TieredStore() = default;

  // Imports the cold root's listing as kUncached records; returns the number of new records.
  // Existing records are left alone (sync() reconciles them).
  virtual Result<size_t> import_listing() = 0;
  virtual Result<SyncReport> sync() = 0;
  virtual Result<PolicyReport> run_policy() = 0;
  // Moves one file now (policy-independent).
  virtual Status demote(const std::string& path) = 0;
  virtual Status promote(const std::string& path) = 0;

  // Paths are relative to the namespace root ("a/b.bin"); a leading '/' is ignored.
  virtual Result<std::unique_ptr<BackendFile>> open_file(const std::string& path, const OpenOptions& opts) = 0;
  virtual Result<FileInfo> stat(const std::string& path) = 0;
  virtual Result<std::vector<DirEntry>> list(const std::string& dir) = 0;
  virtual Status remove(const std::string& path) = 0;
  // Renames a file (not a directory: Unsupported); `to` must not exist (AlreadyExists) and neither
  // may be open (Busy). An exported file moves in the cold tier too (S3: server-side copy, then
  // delete); a not-yet-exported one only locally. Crash safe: the journal records the intent
  // first and the next open (or sync) finishes it.
  virtual Status rename(const std::string& from, const std::string& to) = 0;

  virtual Result<FileStatus> status(const std::string& path) = 0;
  // Every record at or under `prefix` ("" for all), sorted by path.
  virtual std::vector<FileStatus> status_all(const std::string& prefix) = 0;
  virtual TierStats stats() const = 0;
  // The notification endpoint ("http://HOST:PORT") when TierOptions::notify_listen is set, else "".
  virtual std::string notify_endpoint() const { return ""; }
};

// The tier:// backend (from Store::backend of any "tier://" URI) manages linked directories:
//
// create_link writes FAST_DIR/.stor-tier/config (cold root, policy) linking the local directory to
// cold_root, then imports the listing. Used by `stctl link`; the namespace is then reachable as
// tier:///FAST_DIR/... Linking a directory twice to the same cold root only re-imports.
struct LinkResult {
  std::shared_ptr<TieredStore> store;
  size_t imported = 0;
};
// fast_root: the fast tier's root when it is not fast_dir itself (e.g. "lustre:///mnt/fs/ns").
STOR_API Result<LinkResult> create_link(Backend& tier_backend, const std::string& fast_dir, const std::string& cold_root,
                               const std::string& fast_root = {});

// The namespace holding local path `path` (its nearest ancestor with .stor-tier); *rel receives
// the path relative to the namespace root. Instances are shared per root within the backend.
STOR_API Result<std::shared_ptr<TieredStore>> namespace_of(Backend& tier_backend, const std::string& path, std::string* rel);

}  // namespace stor::tiering
