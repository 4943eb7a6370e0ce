// stor::Store and stor::File: the application-facing C++ API.
//
//   auto store = stor::Store::create({}).value();
//   auto file  = store->open("nvme:///tmp/a.bin", stor::kOpenWrite | stor::kOpenCreate).value();
//   file.write(buf, n, 0);
//   file.read_async(dst, n, 0, [](stor::Result<size_t> r) { ... });
//   file.close();
#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stor/export.h"
#include "stor/backend.h"
#include "stor/engine.h"
#include "stor/stats.h"
#include "stor/status.h"

namespace stor {

namespace internal {
struct SchemeCounters;
class StatsRegistry;
}  // namespace internal

struct StoreOptions {
  EngineOptions engine;
  // Directory scanned for plugins (lib*.so exporting stor_plugin_init); empty: none.
  // STOR_PLUGIN_DIR in the environment is used when this is empty.
  std::string plugin_dir;
  // Backend settings, "backend.key" -> value, e.g. {"s3.endpoint", "http://127.0.0.1:9000"}.
  std::map<std::string, std::string> settings;
  // Publish per-backend counters in /dev/shm for `stctl top`.
  bool publish_stats = true;
};

// An open file: the application's handle on a BackendFile.
//
// Thread safety: the I/O calls (read*, write*, readv*, writev*, sync, truncate, stat, size,
// direct) may run concurrently from many threads, under BackendFile's rules (callbacks on a
// backend thread or inline, buffers valid until the callback). close(), abort(), moving and
// destroying the File need exclusive access and come after every callback of the File's async
// calls has run. uri(), is_open() and backend_file() are plain reads, safe while no one closes.
class STOR_API File {
 public:
  File() = default;
  File(std::unique_ptr<BackendFile> impl, Uri uri, std::shared_ptr<internal::StatsRegistry> stats = nullptr);
  File(File&&) noexcept = default;
  File& operator=(File&&) noexcept = default;
  ~File();  // closes if still open; errors are lost: call close() to see them

  bool is_open() const noexcept { return impl_ != nullptr; }
  const Uri& uri() const noexcept { return uri_; }

  Result<size_t> read(void* buf, size_t len, uint64_t offset);
  // Reads exactly len bytes or fails with OutOfRange (the file is shorter).
  Status read_exact(void* buf, size_t len, uint64_t offset);
  Result<size_t> write(const void* buf, size_t len, uint64_t offset);
  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done);
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done);
  // Scatter-gather (see BackendFile::readv_async): [offset, offset + total) to or from the
  // segments in order, one request where the backend has a vectored path. Counted as one
  // operation in the I/O statistics.
  Result<size_t> readv(std::span<const struct iovec> iov, uint64_t offset);
  Result<size_t> writev(std::span<const struct iovec> iov, uint64_t offset);
  void readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);
  void writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done);
  Status sync(bool data_only = false);
  Status truncate(uint64_t size);
  Result<FileInfo> stat();
  Result<uint64_t> size();
  bool direct() const;
  Status close();
  // Closes without publishing buffered writes (see BackendFile::abort): what a writer that
  // failed half-way calls so an object store keeps its previous object.
  Status abort();

  // Byte-range locks (see BackendFile::lock_range): the lock's id, for unlock_range.
  Result<uint64_t> lock_range(uint64_t offset, uint64_t len, RangeLockMode mode, std::chrono::milliseconds timeout);
  Status unlock_range(uint64_t lock_id);

  BackendFile* backend_file() noexcept { return impl_.get(); }

 private:
  Status check_open() const;
  void count(bool write, const Result<size_t>& r);
  IoCallback counted(bool write, IoCallback done);
  std::unique_ptr<BackendFile> impl_;
  Uri uri_;
  std::shared_ptr<internal::StatsRegistry> stats_;  // keeps counters_ alive
  internal::SchemeCounters* counters_ = nullptr;
};

// Thread safety: every method may be called concurrently from any thread (backends are created
// once per scheme under a lock). Destroy a Store only after every File it opened is closed and no
// call on it is in progress; the destructor drains the engine first. The Store owns the engine
// and the backends; Files refer to them, so they must not outlive it.
class STOR_API Store {
 public:
  // Creates the engine and loads plugins. Backends are created lazily, on first use of a scheme.
  static Result<std::unique_ptr<Store>> create(const StoreOptions& opts = {});
  ~Store();

  Result<File> open(std::string_view uri, uint32_t flags = kOpenRead, uint32_t mode = 0644);
  Result<FileInfo> stat(std::string_view uri);
  Result<std::vector<DirEntry>> list(std::string_view uri);
  Status remove(std::string_view uri);
  Status mkdir(std::string_view uri, uint32_t mode = 0755);
  Status rename(std::string_view from, std::string_view to);  // both on one backend
  std::map<std::string, std::string> describe(std::string_view uri);

  // A batch of whole-file (or range) reads, e.g. a data loader's next few hundred samples: item
  // i reads [offset, offset + len) of its file into its buffer, and result i is its byte count
  // (fewer than len only where the file ends) or its error; one failure does not stop the others.
  // No File is opened: on s3:// / s3express:// each item is one ranged GET (no HEAD), up to
  // s3.max_connections in flight, so one calling thread keeps the connection pool busy. Items
  // may mix schemes (one backend after another). Blocks until every item is done.
  struct ReadItem {
    std::string uri;
    void* buf = nullptr;
    size_t len = 0;
    uint64_t offset = 0;
  };
  std::vector<Result<size_t>> read_many(std::span<const ReadItem> items);

  // The backend serving a URI's scheme, created on first use.
  Result<std::shared_ptr<Backend>> backend(const Uri& uri);
  IoEngine& engine() noexcept { return *engine_; }
  // The settings the store was created with (StoreOptions::settings).
  const std::map<std::string, std::string>& settings() const noexcept { return opts_.settings; }
  // This store's I/O counters per scheme (also published for `stctl top`).
  std::vector<BackendStats> stats() const;

  // Loads one plugin shared object / every lib*.so in a directory.
  Status load_plugin(const std::string& path);
  Status load_plugins(const std::string& dir);

 private:
  explicit Store(StoreOptions opts, std::unique_ptr<IoEngine> engine);
  StoreOptions opts_;
  std::unique_ptr<IoEngine> engine_;
  std::shared_ptr<internal::StatsRegistry> stats_;
  std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<Backend>, std::less<>> backends_;
};

// Library version, "MAJOR.MINOR.PATCH".
STOR_API const char* version();

}  // namespace stor
