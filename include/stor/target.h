// Object targets: the server behind the stor-target daemon, which serves the objects of one
// directory to remote clients (the Lustre backend's remote targets) over tcp:// or verbs://, and
// a client reading those objects directly (benches, tools). docs/transport.md describes the
// protocol and the limits below.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stor/engine.h"
#include "stor/export.h"
#include "stor/status.h"

namespace stor {

struct TargetOptions {
  std::string listen;  // tcp://HOST:PORT or verbs://HOST:PORT (port 0: any free port)
  std::string dir;     // directory holding the objects (must exist)
  // Deadline for the rest of a request once its header arrived.
  std::chrono::milliseconds timeout{30000};
  uint64_t max_payload = 4ull << 20;  // largest bulk transfer per call (verbs buffer size)
  // Connections served at once; at the limit the longest-idle one is closed for a newcomer, or
  // the newcomer is refused when none is idle. 0: no limit.
  unsigned max_connections = 256;
  // Close a connection that sends no complete request header for this long. 0: never.
  std::chrono::milliseconds idle_timeout{60000};
  bool io_uring = true;  // false: plain send/recv for socket I/O
  // Key file (0600) every client must prove it holds (docs/transport.md "Authentication"); start()
  // refuses one that is unsafe or malformed. Empty: no authentication (stor-target allows that
  // only with --insecure-no-auth).
  std::string key_file;
  // Refused and evicted connections, accept failures (at most one line a second). Empty: nowhere.
  std::function<void(const std::string&)> log;
};

// A listening target. Connection threads serve requests until stop() or destruction.
// endpoint() and stop() may be called from any thread; stop() is idempotent.
class STOR_API TargetServer {
 public:
  // Binds opts.listen and starts serving opts.dir with I/O through `engine` (which must outlive
  // the server).
  static Result<std::unique_ptr<TargetServer>> start(const TargetOptions& opts, IoEngine* engine);
  virtual ~TargetServer();
  // The bound endpoint, with the real port when listen asked for port 0.
  virtual const std::string& endpoint() const = 0;
  // Stops accepting, closes every connection and waits for their threads.
  virtual void stop() = 0;
};

struct TargetClientOptions {
  unsigned connections = 4;           // parallel calls to the target
  uint64_t max_payload = 4ull << 20;  // largest bulk transfer per call; bigger reads are split
  std::chrono::milliseconds timeout{30000};  // deadline of one call
  std::string key_file;  // the target's key file; empty: no handshake (an unkeyed target)
};

// Writes a new random key to `path` (created 0600, never overwritten), as stor-target --make-key.
STOR_API Status make_target_key(const std::string& path);

// A client of one target. read_async may be called from any thread at once; `done` runs on a
// transport thread, exactly once.
class STOR_API TargetClient {
 public:
  // Connects once to check the target answers (Unavailable/Timeout otherwise); further
  // connections open on demand.
  static Result<std::unique_ptr<TargetClient>> connect(const std::string& endpoint, const TargetClientOptions& opts = {});
  virtual ~TargetClient();
  // Reads up to len bytes at offset of object `name` (a path relative to the target's directory).
  virtual void read_async(const std::string& name, void* buf, size_t len, uint64_t offset, IoCallback done) = 0;
};

// What a stor daemon (stor-target, stor-mds) says about itself when asked: its role ("ost",
// "mdt") and named counters (requests, errors, bytes, uptime_ms, ...; each daemon documents its
// own). docs/transport.md "Server stats".
struct STOR_API ServerStats {
  std::string role;
  std::vector<std::pair<std::string, uint64_t>> counters;
  // The counter called `name`, or fallback when the server does not report it.
  uint64_t get(std::string_view name, uint64_t fallback = 0) const;
};

struct ServerQueryOptions {
  std::string key_file;  // the server's key file; empty: no handshake (an --insecure-no-auth server)
  std::chrono::milliseconds timeout{5000};
};

// Connects to `endpoint` (tcp:// or verbs://), authenticates with opts.key_file and asks for the
// server's stats. Unavailable or Timeout when nothing answers there; PermissionDenied
// ("authentication failed: ...") when the server refuses the key or has another one.
STOR_API Result<ServerStats> query_server_stats(const std::string& endpoint, const ServerQueryOptions& opts = {});

}  // namespace stor
