// include/stor/mds.h: an embedded mount of ROOT whose Mds serves MdsService requests behind a
// transport Listener.
#include <atomic>

#include "backends/lustre/fs.h"
#include "backends/lustre/remote_mds.h"
#include "net/auth.h"
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
  server->service = std::make_unique<lustre::MdsService>(server->fs, so);
  STOR_ASSIGN_OR_RETURN(server->transport, transport::Transport::for_endpoint(opts.listen, topts));
  auto* svc = server->service.get();
  STOR_ASSIGN_OR_RETURN(server->listener_, server->transport->listen(opts.listen, [svc](const transport::ServerCall& c) {
    return svc->handle(c);
  }));
  return std::unique_ptr<MdsServer>(std::move(server));
}

}  // namespace stor
