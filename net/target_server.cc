// include/stor/target.h. TargetServer: an ObjectService behind a Transport listener, the whole of
// the stor-target daemon apart from its argument parsing and signal handling. TargetClient: a
// RemoteObjectTarget behind the public interface.
#include "net/auth.h"
#include "net/object_service.h"
#include "net/remote_object.h"
#include "net/server_stats.h"
#include "net/transport.h"
#include "stor/target.h"

namespace stor {
namespace {

class TargetServerImpl final : public TargetServer {
 public:
  TargetServerImpl(std::unique_ptr<transport::ObjectService> service, std::unique_ptr<transport::Transport> transport)
      : service_(std::move(service)), transport_(std::move(transport)) {}
  ~TargetServerImpl() override { stop(); }

  Status listen(const std::string& endpoint) {
    auto* svc = service_.get();
    STOR_ASSIGN_OR_RETURN(listener_, transport_->listen(endpoint, [svc](const transport::ServerCall& c) {
                            return svc->handle(c);
                          }));
    return Status::ok();
  }
  const std::string& endpoint() const override { return listener_->endpoint(); }
  void stop() override {
    if (listener_) listener_->stop();
  }

 private:
  // Destroyed bottom-up: the listener (and its connection threads) before what they use.
  std::unique_ptr<transport::ObjectService> service_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<transport::Listener> listener_;
};

class TargetClientImpl final : public TargetClient {
 public:
  explicit TargetClientImpl(std::shared_ptr<transport::RemoteObjectTarget> target) : target_(std::move(target)) {}
  void read_async(const std::string& name, void* buf, size_t len, uint64_t offset, IoCallback done) override {
    target_->read_async(name, buf, len, offset, std::move(done));
  }

 private:
  std::shared_ptr<transport::RemoteObjectTarget> target_;
};

}  // namespace

TargetServer::~TargetServer() = default;

Status make_target_key(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(transport::AuthKey key, transport::AuthKey::generate());
  return transport::write_key_file(path, key);
}
TargetClient::~TargetClient() = default;

Result<std::unique_ptr<TargetClient>> TargetClient::connect(const std::string& endpoint,
                                                           const TargetClientOptions& opts) {
  transport::RemoteTargetOptions ro;
  ro.connections = opts.connections;
  ro.transport.max_payload = opts.max_payload;
  ro.transport.timeout = opts.timeout;
  if (!opts.key_file.empty()) {
    STOR_ASSIGN_OR_RETURN(ro.transport.auth_key, transport::load_key_file(opts.key_file));
  }
  STOR_ASSIGN_OR_RETURN(auto target, transport::RemoteObjectTarget::connect(endpoint, ro));
  return std::unique_ptr<TargetClient>(std::make_unique<TargetClientImpl>(std::move(target)));
}

Result<ServerStats> query_server_stats(const std::string& endpoint, const ServerQueryOptions& opts) {
  transport::TransportOptions topts;
  topts.timeout = opts.timeout;
  topts.max_payload = 4096;  // the call carries no bulk bytes
  if (!opts.key_file.empty()) {
    STOR_ASSIGN_OR_RETURN(topts.auth_key, transport::load_key_file(opts.key_file));
  }
  STOR_ASSIGN_OR_RETURN(auto transport, transport::Transport::for_endpoint(endpoint, topts));
  STOR_ASSIGN_OR_RETURN(auto channel, transport->connect(endpoint));
  STOR_ASSIGN_OR_RETURN(transport::Reply reply, channel->call(transport::kServerStatsOpcode, {}, {}, {}));
  auto stats = transport::decode_server_stats(reply.control);
  if (!stats.is_ok()) return stats.status().with_context(endpoint);
  return stats;
}

Result<std::unique_ptr<TargetServer>> TargetServer::start(const TargetOptions& opts, IoEngine* engine) {
  if (engine == nullptr) return Status::InvalidArgument("target server: no I/O engine");
  STOR_ASSIGN_OR_RETURN(auto service, transport::ObjectService::create(opts.dir, engine));
  transport::TransportOptions topts;
  topts.timeout = opts.timeout;
  topts.max_payload = opts.max_payload;
  topts.io_uring = opts.io_uring;
  topts.max_connections = opts.max_connections;
  topts.idle_timeout = opts.idle_timeout;
  topts.log = opts.log;
  if (!opts.key_file.empty()) {
    STOR_ASSIGN_OR_RETURN(topts.auth_key, transport::load_key_file(opts.key_file));
  }
  STOR_ASSIGN_OR_RETURN(auto transport, transport::Transport::for_endpoint(opts.listen, topts));
  auto server = std::make_unique<TargetServerImpl>(std::move(service), std::move(transport));
  STOR_RETURN_IF_ERROR(server->listen(opts.listen));
  return std::unique_ptr<TargetServer>(std::move(server));
}

}  // namespace stor
