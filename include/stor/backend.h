// The backend seam: every storage system stor reaches (local flash, the Lustre-style striped
// file system, S3 Express, run-time plugins) implements Backend and BackendFile.
//
// A backend is resolved from a URI "scheme://authority/path":
//   nvme:///data/x.bin          local file or block device (authority empty)
//   lustre:///mnt/fs/dir/file   striped parallel file system
//   s3express://bucket/key      S3 / S3 Express One Zone object
// A bare path ("/data/x.bin" or "rel/x.bin") means nvme.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stor/export.h"
#include "stor/engine.h"
#include "stor/status.h"

namespace stor {

class ObjectStore;  // stor/object_store.h

struct STOR_API Uri {
  std::string scheme;     // "nvme", "lustre", "s3express", or a plugin's scheme
  std::string authority;  // bucket for s3express, empty for file systems
  std::string path;       // "/a/b" for file systems, "key/with/slashes" for objects

  // Rejects empty input, a missing path, NUL bytes, and "scheme:" without "//".
  static Result<Uri> parse(std::string_view text);
  std::string to_string() const;
};

// Backend feature bits, reported by `stctl info`.
enum Capability : uint32_t {
  kCapRead = 1u << 0,
  kCapWrite = 1u << 1,
  kCapRandomWrite = 1u << 2,  // objects stores accept only whole-object writes
  kCapDirectIo = 1u << 3,
  kCapDirectories = 1u << 4,
  kCapTruncate = 1u << 5,
  kCapStriping = 1u << 6,
  kCapPermissions = 1u << 7,
  kCapRename = 1u << 8,
};
STOR_API std::string capabilities_to_string(uint32_t caps);

enum class FileType : uint8_t { kRegular, kDirectory, kBlockDevice, kOther };

struct FileInfo {
  std::string path;
  FileType type = FileType::kRegular;
  uint64_t size = 0;
  uint32_t mode = 0;        // POSIX permission bits where the backend has them
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;
  std::string etag;         // object stores; empty elsewhere
};

struct DirEntry {
  std::string name;         // relative to the listed directory
  FileType type = FileType::kRegular;
  uint64_t size = 0;
};

// Flags for Backend::open.
enum OpenFlag : uint32_t {
  kOpenRead = 1u << 0,
  kOpenWrite = 1u << 1,
  kOpenCreate = 1u << 2,
  kOpenTruncate = 1u << 3,
  kOpenExclusive = 1u << 4,  // with kOpenCreate: fail with AlreadyExists
  kOpenDirect = 1u << 5,     // O_DIRECT; falls back to buffered if the file system refuses
  // With kOpenWrite: every write goes to the end of the file and its offset argument is ignored
  // (O_APPEND, as pwrite on Linux). nvme and native Lustre: O_APPEND. lustre:// striped files:
  // each write reserves the next bytes after the larger of the file's size and the handle's
  // last append. s3:// / s3express://: S3 Express appendable objects (directory buckets; writes
  // are collected and sent as appends with x-amz-write-offset-bytes at sync/close or every
  // s3.part_size; a concurrent appender makes them fail Aborted), Unsupported on general
  // purpose buckets. Backends that cannot append (the block cache, tier://, plugins) refuse it
  // with Unsupported.
  kOpenAppend = 1u << 6,
};

// Byte-range locks (BackendFile::lock_range): shared locks admit each other, an exclusive lock
// admits nothing overlapping it.
enum class RangeLockMode : uint8_t { kShared, kExclusive };

struct OpenOptions {
  uint32_t flags = kOpenRead;
  uint32_t mode = 0644;      // permission bits for newly created files
};

// An open file of a backend.
//
// Thread safety (every built-in backend meets this; the "[concurrency]" test cases check it on
// nvme, lustre, the cache and tier://, on both engines):
//  - The data calls may run concurrently on one handle from any number of threads: read_async,
//    write_async, readv_async, writev_async, their blocking forms, sync, truncate, stat and
//    direct. Each call is safe; what they do to the same bytes at once is not ordered: a read
//    overlapping a concurrent write or truncate may see old or new bytes, overlapping concurrent
//    writes leave either writer's bytes. Calls whose completions the caller ordered (waited for
//    one before starting the next) take effect in that order.
//  - close() and abort() end the handle. Call one of them once, after the callback of every async
//    call made on the handle has run, and with no other call on it in progress (a backend may
//    release the descriptors a request in flight still uses; only S3 waits). Destroying a handle
//    closes it, under the same rule. Calls after close fail with InvalidArgument.
//  - Callbacks run exactly once, on a thread the backend chooses: the engine's completion thread
//    (nvme, lustre with local targets, native Lustre), an S3 worker, a stor-target connection
//    worker (remote lustre targets), a plugin worker. They may also run on the calling thread
//    before the call returns: for errors found up front (closed handle, misaligned O_DIRECT
//    buffer, bad segments) and for backends that complete from memory (the block cache always,
//    tier:// footer hits). So do not hold a lock in the caller that the callback takes. A callback
//    may start new async calls; it must not block waiting for other I/O (a blocking read, write
//    or sync on any handle of the same Store): on io_uring it runs on the thread that would have
//    to complete that I/O.
//  - Handles must be closed before their Backend and the Store (or IoEngine) it was created with
//    are destroyed.
class STOR_API BackendFile {
 public:
  virtual ~BackendFile() = default;

  // Asynchronous positional I/O. The callback gets the bytes transferred (a read may be short at
  // end of file) or an error. Buffers must stay valid until the callback runs.
  virtual void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) = 0;
  virtual void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) = 0;

  // Scatter-gather I/O: the file range [offset, offset + total of the segments) to or from the
  // segments in order, as preadv/pwritev. Zero-length segments are skipped; no segments (or only
  // empty ones) completes with 0. A read is short only at end of file, and the count is then the
  // bytes of the leading segments that were filled (later segments are left untouched). The
  // segment array is copied before the call returns; the memory it points to must stay valid
  // until the callback runs. InvalidArgument for a segment with bytes but no address, or a total
  // that overflows.
  //
  // The default issues one read_async/write_async per non-empty segment, all at once (so it
  // relies on the concurrency rule above), and joins them: no copies, but one backend request
  // per segment. nvme and native Lustre override it with one preadv/pwritev (IORING_OP_READV /
  // WRITEV) per file; striped lustre files with one vectored request per stripe object; the
  // block cache copies between its blocks and the segments directly and fetches the missing
  // blocks of a request with one vectored read of the backend.
  virtual void readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);
  virtual void writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);

  // Blocking forms, built on the async ones. A backend may serve a blocking read without the
  // engine when it can do so without waiting (nvme: from the page cache), hence virtual.
  virtual Result<size_t> read(void* buf, size_t len, uint64_t offset);
  Result<size_t> write(const void* buf, size_t len, uint64_t offset);
  Result<size_t> readv(std::span<const struct iovec> iov, uint64_t offset);
  Result<size_t> writev(std::span<const struct iovec> iov, uint64_t offset);

  // data_only: fdatasync semantics (file data plus the metadata needed to read it back, e.g.
  // size), otherwise fsync (all metadata too). When it returns OK, acknowledged writes (those
  // whose callbacks ran before sync was called) survive a crash of the process and the machine.
  virtual Status sync(bool data_only) = 0;
  virtual Status truncate(uint64_t size) = 0;
  virtual Result<FileInfo> stat() = 0;
  // Releases resources; for object stores this is where buffered writes are uploaded.
  virtual Status close() = 0;
  // Closes without publishing, for a writer that failed half-way: an object store drops what
  // is buffered and aborts an unfinished upload, so the object keeps what it held before this
  // handle (or stays absent). Backends that write in place (files, striped files) keep the
  // writes already made and just close.
  virtual Status abort() { return close(); }

  // True when the file is really open with O_DIRECT (the backend may have fallen back).
  virtual bool direct() const { return false; }

  // Byte-range locks between handles, also of different processes: what MPI-IO's atomic mode is
  // built on. Locks only coordinate lock_range callers (reads and writes do not check them).
  // Each lock is its own owner: two overlapping locks conflict unless both are shared, even when
  // taken through the same handle. Blocks until [offset, offset + len) is granted or `timeout`
  // passed (Timeout naming the range; a backend may bound the wait further, e.g. lustre cluster
  // mounts by lustre.lock_timeout_ms). Waiters are served in arrival order where the backend
  // queues them (lustre: the MDS, as Lustre's LDLM serves extent locks, so a writer is not
  // starved by a stream of readers). Returns the lock's id for unlock_range. kExclusive needs a
  // handle open for writing (PermissionDenied otherwise), len must be > 0 (InvalidArgument).
  // Closing the handle releases its locks; on lustre:// cluster mounts, so does the death of
  // the client process (its MDS connections closing). Default: Unsupported.
  // Implemented by nvme:// and native (real) Lustre mounts (OFD locks, F_OFD_SETLK; on Lustre
  // cluster-wide only with the client's flock mount option), and the emulated lustre:// (extent
  // locks of its metadata service, embedded and cluster).
  virtual Result<uint64_t> lock_range(uint64_t offset, uint64_t len, RangeLockMode mode,
                                      std::chrono::milliseconds timeout);
  // Releases a lock of this handle. Releasing an id that is not held (released already, or
  // lost with a restarted lustre MDS) is not an error.
  virtual Status unlock_range(uint64_t lock_id);
};

// One read of a batch (Backend::read_many): [offset, offset + len) of the file at `uri` into buf.
struct ReadRequest {
  Uri uri;
  void* buf = nullptr;
  size_t len = 0;
  uint64_t offset = 0;
};

// Thread safety: every method may be called concurrently from any thread; each open() returns an
// independent handle (see BackendFile for what a handle allows). A Backend lives as long as the
// Store that created it, or its last shared owner; close its handles before it goes.
class STOR_API Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view scheme() const = 0;
  virtual uint32_t capabilities() const = 0;

  virtual Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) = 0;
  virtual Result<FileInfo> stat(const Uri& uri) = 0;
  virtual Result<std::vector<DirEntry>> list(const Uri& uri) = 0;
  virtual Status remove(const Uri& uri) = 0;
  virtual Status mkdir(const Uri& uri, uint32_t mode) = 0;
  virtual Status rename(const Uri& from, const Uri& to) {
    (void)from; (void)to;
    return Status::Unsupported(std::string(scheme()) + ": rename not supported");
  }

  // Backend-specific description for `stctl info`: "key: value" pairs (layout, targets, ...).
  virtual std::map<std::string, std::string> describe(const Uri& uri) {
    (void)uri;
    return {};
  }

  // Reads every request's range into its buffer; returns, in order, each one's byte count (fewer
  // than len only where its file ends) or error. Blocks until all are done. Object stores
  // override it to keep many requests in flight at once with one request per item (S3: a ranged
  // GET each, no HEAD); the default opens, reads and closes each file in turn.
  virtual std::vector<Result<size_t>> read_many(std::span<const ReadRequest> reads);

  // Optional capabilities, found by asking rather than by the backend's concrete type:
  // object_store() is the listing / version-pinned read interface of an object store
  // (stor/object_store.h), nullptr for backends that are not one. Owned by the backend.
  virtual ObjectStore* object_store() { return nullptr; }
};

// What a backend factory receives: the shared engine and free-form "key=value" settings
// (from StoreOptions::settings, e.g. "s3.endpoint").
struct BackendContext {
  IoEngine* engine = nullptr;
  std::map<std::string, std::string> settings;
};

using BackendFactory = std::function<Result<std::shared_ptr<Backend>>(const BackendContext&)>;

// Process-wide registry of backend factories by scheme. Built-in backends register themselves
// at library load time; plugins register when loaded. Thread safe: add, find and schemes may run
// concurrently; a factory found is a copy, callable after the registry changed.
class STOR_API BackendRegistry {
 public:
  static BackendRegistry& global();
  // AlreadyExists when the scheme is taken (a plugin cannot replace a built-in backend).
  Status add(std::string scheme, BackendFactory factory);
  Result<BackendFactory> find(std::string_view scheme) const;
  std::vector<std::string> schemes() const;
};

}  // namespace stor
