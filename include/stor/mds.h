// The metadata server of a lustre:// cluster (the stor-mds daemon as a library call): serves the
// namespace of a file system made by `stctl mkfs ROOT --remote tcp://... --remote ...` to any number of
// client processes, which mount it as lustre://HOST:PORT/path and move file data straight to
// the stor-target servers. docs/lustre.md "Cluster mode".
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {

struct MdsServerOptions {
  std::string root;    // the file system (ROOT/.stor-lustre, ROOT/mdt); its targets must be remote
  std::string listen;  // tcp://HOST:PORT (port 0: any free port)
  // Key file (0600) every client must prove it holds; also the key the MDS uses with the
  // targets. Empty: no authentication of clients (stor-mds allows that only with
  // --insecure-no-auth); the targets are then reached with ROOT/mdt/target.key if it exists.
  std::string key_file;
  bool root_squash = true;  // uid 0 of clients becomes squash_uid / squash_gid
  uint32_t squash_uid = 65534;
  uint32_t squash_gid = 65534;
  std::chrono::milliseconds timeout{30000};
  unsigned max_connections = 1024;
  std::chrono::milliseconds idle_timeout{0};  // clients keep their connections between calls
  bool io_uring = true;
  // How long the MDS's own calls to a target that went away (object deletion) keep reconnecting.
  std::chrono::milliseconds target_reconnect_timeout{60000};
  std::function<void(const std::string&)> log;
  // Fault injection for recovery tests: > 0: the process SIGKILLs itself right after applying
  // this many client mutations, before the last reply is sent (stor-mds --crash-after-mutations).
  uint64_t crash_after_mutations = 0;
  // Several MDTs (DNE): the MDT this server is (ROOT/mdt for 0, ROOT/mdtK for K); the
  // superblock's MDT list says where the others listen. MDT 0 hands the configuration to clients.
  uint32_t mdt_index = 0;
  // Fault injection for the cross-MDT protocol (stor-mds --crash-point): SIGKILL at "intent",
  // "peer" or "commit" of a cross-MDT mkdir/rmdir this server coordinates (docs/lustre.md).
  std::string crash_point;
  // Recovery (docs/lustre.md "Lock replay"): after a start that follows a crash, or a clean stop
  // with open handles, clients replay their open handles and extent locks; new lock requests
  // wait this long for them (stor-mds --recovery-window-ms).
  std::chrono::milliseconds recovery_window{5000};
};

// A running metadata server. It holds ROOT/mdt/lock (an embedded mount of ROOT in another
// process gets Busy) until destroyed; destruction stops serving and checkpoints.
class STOR_API MdsServer {
 public:
  static Result<std::unique_ptr<MdsServer>> start(const MdsServerOptions& opts);
  virtual ~MdsServer();
  virtual const std::string& endpoint() const = 0;
  // Stops accepting and closes every connection (idempotent); the checkpoint follows on destruction.
  virtual void stop() = 0;
};

}  // namespace stor
