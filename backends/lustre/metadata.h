// The metadata seam of the lustre:// backend: what the backend, the data path and the admin
// calls need from a metadata service. Two implementations:
//   * embedded (make_embedded_metadata): the in-process Mds of a file system this process
//     mounted from its host directory (lustre:///host/dir/...), the zero-setup default;
//   * cluster (remote_mds.h, MdsClient): a stor-mds daemon reached over the transport
//     (lustre://HOST:PORT/path), shared by any number of client processes.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/lustre/lustre.pb.h"
#include "backends/lustre/mds.h"
#include "stor/backend.h"
#include "stor/status.h"

namespace stor::lustre {

// The metadata side of one open regular file. Thread-safe. The layout is fixed while open.
class MetaFile {
 public:
  virtual ~MetaFile() = default;
  virtual uint64_t ino() const = 0;
  virtual const pb::Layout& layout() const = 0;
  // The size reads are bounded by: what the MDS said at open (or later), grown by this handle's
  // own writes.
  virtual uint64_t size() const = 0;
  virtual FileInfo info(const std::string& path) const = 0;
  // A write up to `end` is on the objects. Embedded: logs the grown size before the write is
  // acknowledged. Cluster: remembered here and merged at the MDS by sync/close (no round trip).
  virtual Status wrote(uint64_t end) = 0;
  // truncate: the objects are cut; the size is set at the MDS at once.
  virtual Status set_size(uint64_t size) = 0;
  // fsync: the size this handle reached is merged at the MDS and the metadata made durable.
  virtual Status sync() = 0;
  // Called before the data path may create an object of this file (unlink then deletes objects).
  virtual void objects_may_exist() = 0;
  // Extent locks owned by this handle (BackendFile::lock_range; Inode::locks embedded, the
  // MDS's LOCK/UNLOCK in cluster mode). close() releases them.
  virtual Result<uint64_t> lock(RangeLockMode mode, uint64_t start, uint64_t end, std::chrono::milliseconds timeout) = 0;
  virtual Status unlock(uint64_t id) = 0;
  // Merges the size (cluster) and releases the open handle and its locks. Idempotent.
  virtual Status close() = 0;
  // Cluster: other clients' writes past size() may be on the objects, not yet merged at the MDS
  // (so a truncate that grows the file must not cut objects back to size()).
  virtual bool others_may_write_past_size() const { return false; }
};

struct OpenedFile {
  std::unique_ptr<MetaFile> file;
  bool created = false;
};

struct LayoutInfo {
  pb::Layout layout;  // a file's resolved layout, or a directory's default (empty: inherits)
  bool is_dir = false;
  uint64_t ino = 0;
  uint64_t size = 0;
};

struct MetaCounters {
  uint64_t inodes = 0;
  uint64_t wal_bytes = 0;
  uint64_t requests = 0;  // cluster: requests the MDS served since it started (0 embedded)
  // Several MDTs: inodes and WAL bytes of each one (the totals are above).
  std::vector<std::pair<uint64_t, uint64_t>> per_mdt;
};

// Every call acts as `id`. Thread-safe.
class MetadataClient {
 public:
  virtual ~MetadataClient() = default;
  virtual Result<FileInfo> stat(const Identity& id, std::string_view path) = 0;
  virtual Result<std::vector<DirEntry>> readdir(const Identity& id, std::string_view path) = 0;
  virtual Status mkdir(const Identity& id, std::string_view path, uint32_t mode) = 0;
  virtual Status remove(const Identity& id, std::string_view path) = 0;
  virtual Status rename(const Identity& id, std::string_view from, std::string_view to) = 0;
  virtual Status chmod(const Identity& id, std::string_view path, uint32_t mode) = 0;
  virtual Status chown(const Identity& id, std::string_view path, uint32_t uid, uint32_t gid) = 0;
  // Opens (kOpenCreate: creates with `layout_template`, else the directory / fs default).
  virtual Result<OpenedFile> open(const Identity& id, std::string_view path, uint32_t flags, uint32_t mode,
                                  const pb::Layout* layout_template = nullptr) = 0;
  virtual Status set_layout(const Identity& id, std::string_view path, const pb::Layout& layout_template) = 0;
  virtual Result<LayoutInfo> get_layout(const Identity& id, std::string_view path) = 0;
  virtual Result<MetaCounters> statfs() = 0;
};

// now + timeout as a deadline (capped at a year, so "no bound" does not overflow).
std::chrono::steady_clock::time_point lock_deadline(std::chrono::milliseconds timeout);

// The in-process Mds behind the seam (the Mds must outlive it).
std::unique_ptr<MetadataClient> make_embedded_metadata(Mds& mds);

}  // namespace stor::lustre
