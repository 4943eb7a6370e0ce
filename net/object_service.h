// Server side of the object-target protocol: serves the objects of one directory, doing file
// I/O through the IoEngine (reads copy what the page cache already holds inline). stor-target
// wraps this in a Listener; it is thread-safe, so every connection thread calls handle() directly.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/object_protocol.h"
#include "net/transport.h"
#include "stor/engine.h"

namespace stor::transport {

struct ObjectServiceOptions {
  // Tests only: resolve paths by walking their components with O_NOFOLLOW, as on kernels
  // without openat2 (before 5.6), even where openat2 works.
  bool force_component_walk = false;
  // Reads copy what the page cache already holds on the calling thread (preadv2 RWF_NOWAIT) and
  // hand only the rest to the IoEngine. false: every read through the engine (tests of that path).
  bool inline_cached_reads = true;
};

// Every object path is resolved beneath the directory, relative to a descriptor opened once in
// create(), and never through a symbolic link (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or
// a walk opening each component with O_NOFOLLOW where openat2 is missing): a name leading
// through a link, wherever it points, fails with PermissionDenied, and listings skip links.
class ObjectService {
 public:
  // dir must exist. The engine must outlive the service.
  static Result<std::unique_ptr<ObjectService>> create(const std::string& dir, IoEngine* engine,
                                                       const ObjectServiceOptions& opts = {});
  ~ObjectService();

  // Object calls, and the server-stats call (net/server_stats.h) with role "ost" and counters
  // requests, errors, read_bytes, write_bytes (object calls since start), open_objects
  // (descriptors cached), uptime_ms.
  ServerResult handle(const ServerCall& call);
  // Whether paths are resolved by openat2 (false: the O_NOFOLLOW component walk).
  bool uses_openat2() const { return use_openat2_; }

 private:
  struct OpenObject;
  ObjectService(std::string dir, IoEngine* engine, int dir_fd, bool use_openat2, bool inline_cached_reads)
      : dir_(std::move(dir)), engine_(engine), dir_fd_(dir_fd), use_openat2_(use_openat2),
        inline_cached_reads_(inline_cached_reads) {}
  // Bytes of [offset, offset + len) copied from the page cache without waiting for the device,
  // front to back until the first byte that is not cached; eof: the object ends there.
  struct CachedRead {
    size_t bytes = 0;
    bool eof = false;
  };
  static CachedRead read_cached(int fd, std::byte* dst, size_t len, uint64_t offset);
  // The object's descriptor, opened read-write on first use; NotFound when missing and !create.
  Result<std::shared_ptr<OpenObject>> open_object(const std::string& name, bool create);
  // Opens `rel` (a validated object name or one component) beneath dirfd without following any
  // symbolic link; returns the descriptor or -errno (ELOOP for a link). O_CLOEXEC is added.
  int open_beneath(int dirfd, std::string_view rel, int flags, mode_t mode = 0) const;
  // The directory holding object `name` (dir_fd_ itself for top-level names: not to be closed),
  // making missing directories when create. Sets *fd, returns the error for `name`.
  Status open_parent(const std::string& name, bool create, int* fd) const;
  Status list_dir(int fd, const std::string& prefix, std::vector<std::pair<std::string, uint64_t>>& out) const;
  void forget(const std::string& name);

  ServerResult read(const ObjectCall& c, const ServerCall& call);
  ServerResult write(const ObjectCall& c, const ServerCall& call);
  ServerResult sync(const ObjectCall& c);
  ServerResult truncate(const ObjectCall& c);
  ServerResult stat(const ObjectCall& c);
  ServerResult remove(const ObjectCall& c);
  ServerResult list(const ObjectCall& c, const ServerCall& call);
  ServerResult dispatch(const ServerCall& call);
  ServerResult stats();

  const std::string dir_;
  IoEngine* engine_;
  const int dir_fd_;  // the object directory, opened once: every path is resolved beneath it
  const bool use_openat2_;
  const bool inline_cached_reads_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<OpenObject>> open_;  // bounded: see open_object
  // For stats(): relaxed counters, one add per call.
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::atomic<uint64_t> requests_{0}, errors_{0}, read_bytes_{0}, write_bytes_{0};
};

}  // namespace stor::transport
