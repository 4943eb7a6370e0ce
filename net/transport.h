// The transport seam: how a stor client reaches remote object targets (tools/stor-target).
//
// A Transport makes client Channels (connect) and server Listeners (listen) for one kind of
// network. Endpoints are URIs:
//   tcp://127.0.0.1:7000    TCP sockets; socket I/O through io_uring (plain send/recv fallback)
//   verbs://10.0.0.1:7000   ibverbs RC queue pairs; the TCP address is the side channel used to
//                           exchange QP numbers, LIDs/GIDs and rkeys
//
// The model is RPC: a call sends an opcode, a few control bytes and an optional bulk payload, and
// gets back a status, control bytes and an optional bulk payload written into the caller's
// buffer. Over TCP the bulk bytes follow the frame; over verbs they move by RDMA READ (request
// payload, pulled by the server) and RDMA WRITE (reply payload, pushed by the server) between
// registered buffers, and only the control frames travel by send/recv. docs/transport.md has
// the wire format.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "stor/status.h"

namespace stor::transport {

class AuthKey;  // net/auth.h

struct Endpoint {
  std::string scheme;  // "tcp" or "verbs"
  std::string host;    // IPv4 address or a name resolving to one
  uint16_t port = 0;   // 0 in listen(): any free port

  // "tcp://127.0.0.1:7000". InvalidArgument on anything else (no path, no user info).
  static Result<Endpoint> parse(std::string_view uri);
  std::string to_string() const;
};

struct TransportOptions {
  // Deadline of one call (client) or of the rest of a frame once its header arrived (server).
  std::chrono::milliseconds timeout{30000};
  // Largest bulk payload of one call, each way. Callers split bigger transfers (Channel::
  // max_payload()). Over verbs this is also the size of each registered bulk buffer.
  uint64_t max_payload = 4ull << 20;
  // TCP: do socket I/O through io_uring when the kernel allows; false forces send/recv.
  bool io_uring = true;

  // Server only (listen()); docs/transport.md "Security and limits".
  // Connections served at once. At the limit a new connection evicts the one idle longest
  // (waiting for a request, possibly part-way through its header); when none is idle it is
  // refused with an Unavailable "too many connections" error frame. 0: no limit.
  unsigned max_connections = 256;
  // A connection that does not deliver a whole request header within this time after accept or
  // its previous reply is closed, whether it sent nothing or a few bytes. 0: never.
  std::chrono::milliseconds idle_timeout{60000};
  // Where refused and evicted connections, refused handshakes and accept failures are reported
  // (rate-limited to one summary a second). Empty: nowhere.
  std::function<void(const std::string&)> log;

  // The shared key of the authentication handshake (net/auth.h, docs/transport.md
  // "Authentication"). Client: every connection proves it holds the key, and checks the server
  // does, before its first call. Server: a connection that does not complete the handshake
  // within the idle timeout (or `timeout`, whichever is shorter) is refused before any request
  // is read. Null: no handshake (stor-target allows that only with --insecure-no-auth).
  std::shared_ptr<const AuthKey> auth_key;

  // Server only: called on the connection's thread when a connection that reached the handler
  // (ServerCall::connection) ends, whatever ended it (peer closed or reset, timeout, eviction,
  // stop()). A server keeping per-connection state (stor-mds: client sessions) drops it here.
  std::function<void(uint64_t connection)> on_connection_closed;
};

// Protocol-wide bounds, checked on every frame read from the wire.
inline constexpr uint64_t kMaxPayloadLimit = 64ull << 20;
inline constexpr uint32_t kMaxControlBytes = 64 * 1024;

struct Reply {
  std::string control;     // reply control bytes (opcode-specific)
  size_t payload_len = 0;  // bulk bytes written into the caller's reply buffer
};

// Client end of one connection. One call at a time: callers wanting parallel calls use several
// channels (see RemoteObjectTarget). After a transport failure (reset, timeout, bad frame) the
// channel is broken() and every later call fails at once; an error status sent by the server
// leaves it usable.
class Channel {
 public:
  virtual ~Channel() = default;

  // Sends (opcode, control, payload) and waits for the reply; reply payload bytes land in
  // reply_payload (at most its size; the server is told that capacity). payload.size() and
  // reply_payload.size() must be <= max_payload(). A server-side error comes back as that status.
  virtual Result<Reply> call(uint16_t opcode, std::string_view control, std::span<const std::byte> payload,
                             std::span<std::byte> reply_payload) = 0;

  // Pipelined calls. start_call() sends a call and returns without waiting for its reply;
  // finish_call() waits for the reply of the oldest call started and not finished yet, so replies
  // come back in the order the calls started. Over TCP the requests are on the wire before the
  // earlier replies are read, so the server goes from one reply straight to the next request
  // without waiting for the client in between (docs/transport.md "Pipelined calls"); elsewhere the
  // call runs inside finish_call() (this default). The rules of call() apply to each call, and:
  // a call with a request payload starts only while no call is outstanding (with payloads both
  // ends could block sending to each other); at most kMaxOutstandingCalls are outstanding. Such
  // refusals are InvalidArgument and change nothing. Every started call must be finished before
  // call() (TCP refuses it meanwhile) or before the channel goes back to a pool; after a transport
  // failure the outstanding calls finish with its status at once.
  // reply_payload must stay valid until the call is finished.
  static constexpr size_t kMaxOutstandingCalls = 64;
  virtual Status start_call(uint16_t opcode, std::string control, std::span<const std::byte> payload,
                            std::span<std::byte> reply_payload);
  virtual Result<Reply> finish_call();
  virtual size_t outstanding_calls() const { return deferred_.size(); }

  virtual uint64_t max_payload() const = 0;
  virtual bool broken() const = 0;
  // True when the server already hung up (idle timeout, eviction, restart): reading the socket
  // would give end of stream or a reset. A pool checks this before reusing an idle channel.
  virtual bool peer_closed() const = 0;
  virtual const std::string& peer() const = 0;  // endpoint URI, for messages

 protected:
  // The InvalidArgument for a call start_call() must refuse, or OK.
  Status check_start(std::string_view control, std::span<const std::byte> payload,
                     std::span<std::byte> reply_payload) const;

 private:
  // The default start_call()/finish_call(): calls kept until finished, then run one at a time.
  struct DeferredCall {
    uint16_t opcode;
    std::string control;
    std::span<const std::byte> payload;
    std::span<std::byte> reply_payload;
  };
  std::deque<DeferredCall> deferred_;
};

// What a server handler sees of one request.
struct ServerCall {
  uint16_t opcode = 0;
  std::string_view control;
  std::span<const std::byte> payload;  // request bulk bytes
  std::span<std::byte> reply_buffer;   // room for reply bulk bytes (the caller's capacity)
  // This connection, unique within the process (never 0): calls with the same id came over one
  // connection, in order (TransportOptions::on_connection_closed reports its end).
  uint64_t connection = 0;
  // True once the client hung up on this connection (end of stream, reset), seen without reading
  // a byte; a handler that waits long (stor-mds extent locks) polls it to drop the request of a
  // dead client at once. Null where the transport cannot tell (verbs).
  std::function<bool()> peer_gone{};  // an initializer: callers may leave it out
};

// A fresh ServerCall::connection id (transports' serving loops).
uint64_t next_connection_id();

struct ServerResult {
  Status status;           // sent to the caller; its message travels as the reply control bytes
  std::string control;     // reply control bytes when status is OK
  size_t payload_len = 0;  // bytes of reply_buffer to send back (OK only)
};

// Called on the connection's thread; connections run concurrently, so it must be thread-safe.
using Handler = std::function<ServerResult(const ServerCall&)>;

// Serves connections until stop() or destruction. Each connection has its own thread.
class Listener {
 public:
  virtual ~Listener() = default;
  // The bound endpoint, with the real port when listen() was given port 0.
  virtual const std::string& endpoint() const = 0;
  // Stops accepting, closes every connection and waits for their threads. Idempotent.
  virtual void stop() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // kind "tcp" or "verbs". verbs: Unavailable when stor was built without rdma-core or no RDMA
  // device exists; the message says which.
  static Result<std::unique_ptr<Transport>> create(std::string_view kind, const TransportOptions& opts = {});
  // The transport an endpoint URI's scheme names.
  static Result<std::unique_ptr<Transport>> for_endpoint(std::string_view uri, const TransportOptions& opts = {});

  virtual std::string_view kind() const = 0;
  // Unavailable when refused/unreachable, Timeout past the deadline.
  virtual Result<std::unique_ptr<Channel>> connect(const Endpoint& ep) = 0;
  virtual Result<std::unique_ptr<Listener>> listen(const Endpoint& ep, Handler handler) = 0;

  Result<std::unique_ptr<Channel>> connect(std::string_view uri);
  Result<std::unique_ptr<Listener>> listen(std::string_view uri, Handler handler);
};

// Whether this build has the ibverbs transport (rdma-core found at configure time).
bool verbs_compiled();

}  // namespace stor::transport
