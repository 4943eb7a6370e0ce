// include/stor/mds.h: an embedded mount of ROOT whose Mds serves MdsService requests behind a
// transport Listener.
#include <atomic>

#include "backends/lustre/fs.h"
#include "backends/lustre/remote_mds.h"
#include "net/auth.h"
#include "net/server_stats.h"
#include "net/transport.h"
#include "stor/mds.h"

namespace stor {
namespace {

class MdsServerImpl final : public MdsServer {
 public:
  ~MdsServerImpl() override { stop(); }
  const std::string& endpoint() const override { return listener_->endpoint(); }
  void stop() override {
    if (listener_) listener_->stop();
    if (log && service && !stopped_.exchange(true))
      log("stopped; " + std::to_string(service->resends_answered()) +
          " resent request(s) were answered from the reply cache");
  }

  // The server-stats call (net/server_stats.h, for `stctl cluster status` / `stctl top`), answered
  // here so the metadata protocol stays as it is.
  transport::ServerResult handle(const transport::ServerCall& c) {
    if (c.opcode == transport::kServerStatsOpcode) return stats();
    transport::ServerResult r = service->handle(c);
    requests.fetch_add(1, std::memory_order_relaxed);
    if (!r.status.is_ok()) errors.fetch_add(1, std::memory_order_relaxed);
    return r;
  }
  transport::ServerResult stats() const {
    ServerStats s;
    s.role = "mdt";
    const auto up = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    s.counters = {{"requests", requests.load(std::memory_order_relaxed)},
                  {"mdt_index", fs->mdt_index()},
                  {"pending_intents", service->pending_intents()},
                  {"errors", errors.load(std::memory_order_relaxed)},
                  {"inodes", fs->mds().inode_count()},
                  {"wal_bytes", fs->mds().wal_bytes()},
                  {"open_handles", service->open_handles()},
                  {"extent_locks", service->granted_locks()},
                  {"client_sessions", service->sessions()},
                  {"recovering", service->recovering() ? 1u : 0u},
                  {"replayed_locks", service->replayed_locks()},
                  {"refused_replays", service->refused_replays()},
                  {"uptime_ms", static_cast<uint64_t>(up.count())}};
    return {Status(), transport::encode_server_stats(s), 0};
  }
  const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  std::atomic<uint64_t> requests{0}, errors{0};

  std::function<void(const std::string&)> log;
  std::atomic<bool> stopped_{false};
  // Destroyed bottom-up: connection threads end before the service and the mount they use.
  std::shared_ptr<lustre::FileSystem> fs;
  std::unique_ptr<lustre::MdsService> service;
  std::unique_ptr<transport::Transport> transport;
  std::unique_ptr<transport::Listener> listener_;
};

}  // namespace

MdsServer::~MdsServer() = default;

Result<std::unique_ptr<MdsServer>> MdsServer::start(const MdsServerOptions& opts) {
  if (opts.root.empty() || opts.listen.empty()) return Status::InvalidArgument("stor-mds: need a root and a listen endpoint");
  transport::TransportOptions topts;
  topts.timeout = opts.timeout;
  topts.io_uring = opts.io_uring;
  topts.max_connections = opts.max_connections;
  topts.idle_timeout = opts.idle_timeout;
  topts.log = opts.log;
  topts.max_payload = lustre::kMdsReplyCapacity;
  if (!opts.key_file.empty()) {
    STOR_ASSIGN_OR_RETURN(topts.auth_key, transport::load_key_file(opts.key_file));
  }
  lustre::MountOptions mo;
  mo.key_file = opts.key_file;
  mo.cut_overlong = false;  // clients merge sizes at close: bytes past the size may be theirs
  mo.reconnect_timeout = opts.target_reconnect_timeout;
  mo.async_reap = true;
  mo.mdt_index = opts.mdt_index;
  auto server = std::make_unique<MdsServerImpl>();
  server->log = opts.log;
  STOR_ASSIGN_OR_RETURN(server->fs, lustre::FileSystem::mount(opts.root, mo));
  if (!server->fs->remote())
    return Status::InvalidArgument("stor-mds: " + opts.root +
                                   " keeps its objects in local directories; serve a file system made with "
                                   "`stctl mkfs ROOT --remote tcp://HOST:PORT ...` (stor-target servers)");
  lustre::MdsServiceOptions so;
  so.root_squash = opts.root_squash;
  so.squash_uid = opts.squash_uid;
  so.squash_gid = opts.squash_gid;
  so.crash_after_mutations = opts.crash_after_mutations;
  so.mdt_index = opts.mdt_index;
  so.crash_point = opts.crash_point;
  so.peer_key = topts.auth_key;
  so.peer_timeout = opts.target_reconnect_timeout;
  so.recovery_window = opts.recovery_window;
  so.log = opts.log;
  if (opts.crash_point.size() && opts.crash_point != "intent" && opts.crash_point != "peer" && opts.crash_point != "commit")
    return Status::InvalidArgument("stor-mds: --crash-point is one of intent, peer, commit");
  server->service = std::make_unique<lustre::MdsService>(server->fs, so);
  // A client's handles and locks go when its last connection has been gone for its grace period.
  topts.on_connection_closed = [svc = server->service.get()](uint64_t c) { svc->connection_closed(c); };
  STOR_ASSIGN_OR_RETURN(server->transport, transport::Transport::for_endpoint(opts.listen, topts));
  auto* srv = server.get();
  STOR_ASSIGN_OR_RETURN(server->listener_, server->transport->listen(opts.listen, [srv](const transport::ServerCall& c) {
    return srv->handle(c);
  }));
  return std::unique_ptr<MdsServer>(std::move(server));
}

}  // namespace stor
