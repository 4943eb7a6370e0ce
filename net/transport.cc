#include <atomic>
#include <charconv>

#include "net/transport.h"
#include "net/transport_internal.h"

namespace stor::transport {

Result<Endpoint> Endpoint::parse(std::string_view uri) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("transport: endpoint '" + std::string(uri) + "' " + why +
                                              " (want tcp://HOST:PORT or verbs://HOST:PORT)");
  };
  size_t sep = uri.find("://");
  if (sep == std::string_view::npos) return bad("has no scheme");
  Endpoint ep;
  ep.scheme = std::string(uri.substr(0, sep));
  if (ep.scheme != "tcp" && ep.scheme != "verbs") return bad("has an unknown scheme");
  std::string_view rest = uri.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  size_t colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad("needs HOST:PORT");
  std::string_view host = rest.substr(0, colon), port = rest.substr(colon + 1);
  if (host.find_first_of("/@?#[] ") != std::string_view::npos) return bad("has a bad host");
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || value > 65535) return bad("has a bad port");
  ep.host = std::string(host);
  ep.port = static_cast<uint16_t>(value);
  return ep;
}

uint64_t next_connection_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

std::string Endpoint::to_string() const { return scheme + "://" + host + ":" + std::to_string(port); }

Status Channel::check_start(std::string_view control, std::span<const std::byte> payload,
                            std::span<std::byte> reply_payload) const {
  if (control.size() > kMaxControlBytes || payload.size() > max_payload() || reply_payload.size() > max_payload())
    return Status::InvalidArgument("transport: call to " + peer() + " exceeds the frame limits (control " +
                                   std::to_string(control.size()) + ", payload " + std::to_string(payload.size()) +
                                   ", reply " + std::to_string(reply_payload.size()) + " bytes)");
  size_t n = outstanding_calls();
  if (n >= kMaxOutstandingCalls)
    return Status::InvalidArgument("transport: " + std::to_string(n) + " calls to " + peer() +
                                   " are outstanding already (the limit)");
  if (n > 0 && !payload.empty())
    return Status::InvalidArgument("transport: a call with a request payload cannot be pipelined behind " +
                                   std::to_string(n) + " outstanding call(s) to " + peer());
  return {};
}

Status Channel::start_call(uint16_t opcode, std::string control, std::span<const std::byte> payload,
                           std::span<std::byte> reply_payload) {
  STOR_RETURN_IF_ERROR(check_start(control, payload, reply_payload));
  deferred_.push_back(DeferredCall{opcode, std::move(control), payload, reply_payload});
  return {};
}

Result<Reply> Channel::finish_call() {
  if (deferred_.empty()) return Status::InvalidArgument("transport: no call to " + peer() + " is outstanding");
  DeferredCall c = std::move(deferred_.front());
  deferred_.pop_front();
  return call(c.opcode, c.control, c.payload, c.reply_payload);
}

Result<std::unique_ptr<Transport>> Transport::create(std::string_view kind, const TransportOptions& opts) {
  if (opts.max_payload == 0 || opts.max_payload > kMaxPayloadLimit)
    return Status::InvalidArgument("transport: max_payload must be 1.." + std::to_string(kMaxPayloadLimit));
  if (kind == "tcp") return make_tcp_transport(opts);
  if (kind == "verbs") return make_verbs_transport(opts);
  return Status::InvalidArgument("transport: unknown kind '" + std::string(kind) + "' (tcp or verbs)");
}

Result<std::unique_ptr<Transport>> Transport::for_endpoint(std::string_view uri, const TransportOptions& opts) {
  STOR_ASSIGN_OR_RETURN(Endpoint ep, Endpoint::parse(uri));
  return create(ep.scheme, opts);
}

Result<std::unique_ptr<Channel>> Transport::connect(std::string_view uri) {
  STOR_ASSIGN_OR_RETURN(Endpoint ep, Endpoint::parse(uri));
  return connect(ep);
}

Result<std::unique_ptr<Listener>> Transport::listen(std::string_view uri, Handler handler) {
  STOR_ASSIGN_OR_RETURN(Endpoint ep, Endpoint::parse(uri));
  return listen(ep, std::move(handler));
}

#ifndef STOR_HAVE_RDMA
bool verbs_compiled() { return false; }
Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportOptions&) {
  return Status::Unavailable("transport: verbs support not built (rdma-core/libibverbs was not found at configure time)");
}
#endif

Status check_reply_capacity(uint64_t capacity, uint64_t limit) {
  if (capacity <= limit) return {};
  return Status::InvalidArgument("transport: reply capacity of " + std::to_string(capacity) +
                                      " bytes exceeds this server's limit of " + std::to_string(limit));
}

void finish_result(ServerResult& result, uint64_t capacity, FrameHeader& reply) {
  if (result.status.is_ok() && result.payload_len > capacity)
    result = ServerResult{Status::Internal("transport: handler returned more than the reply capacity"), {}, 0};
  if (result.status.is_ok() && result.control.size() > kMaxControlBytes)
    result = ServerResult{Status::Internal("transport: handler reply control bytes exceed the limit"), {}, 0};
  if (!result.status.is_ok()) {
    result.control = result.status.message().substr(0, kMaxControlBytes);
    result.payload_len = 0;
  }
  reply.status = static_cast<uint32_t>(result.status.code());
  reply.control_len = static_cast<uint32_t>(result.control.size());
  reply.payload_len = result.payload_len;
}

}  // namespace stor::transport
