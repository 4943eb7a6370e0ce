// Connection authentication for the transport: a shared 32-byte key and a mutual HMAC-SHA256
// challenge-response run on every connection before its first request (docs/transport.md
// "Authentication"). Both ends prove they hold the key; nothing after the handshake is
// encrypted or integrity-protected.
//
//   client -> server  HELLO      "STRA" | version 1 | kind 1 | client nonce[32] | 0[8]      48 bytes
//   server -> client  CHALLENGE  "STRA" | version 1 | kind 2 | server nonce[32] | 0[8]      48 bytes
//                                + HMAC(key, "stor-transport-auth-v1 server" 0 | Nc | Ns)   32 bytes
//   client -> server  PROOF      "STRA" | version 1 | kind 3 | HMAC(key, "...-v1 client" 0 | Nc | Ns) | 0[8]
// then the first request frame at once (one round trip in all). A refusal at any step is the
// connection-level error frame (reply, request id 0, status + message), then a hang-up: in
// answer to the hello, or, after a bad proof, in place of the first reply.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "net/socket_io.h"
#include "stor/status.h"

namespace stor::transport {

inline constexpr size_t kAuthKeyBytes = 32;
inline constexpr size_t kAuthMessageBytes = 48;  // same size as a frame header: see client_handshake

// The shared secret of one file system's targets. Wiped on destruction.
class AuthKey {
 public:
  // 32 bytes from getrandom(2).
  static Result<AuthKey> generate();
  // A key file's contents: 32 raw bytes, or 64 hex digits with an optional trailing newline.
  static Result<AuthKey> parse(std::string_view text, const std::string& where);
  AuthKey(const AuthKey&) = default;
  AuthKey& operator=(const AuthKey&) = default;
  ~AuthKey();
  std::span<const uint8_t> bytes() const { return k_; }
  std::string hex() const;

 private:
  AuthKey() = default;
  std::array<uint8_t, kAuthKeyBytes> k_{};
};

// Reads a key file. Refused with PermissionDenied, as ssh refuses a private key, when it is not
// a regular file owned by this user (or root) or when group or others have any access to it
// (mode & 077): the key is the only thing standing between the network and the objects.
Result<std::shared_ptr<const AuthKey>> load_key_file(const std::string& path);
// Writes the key as 64 hex digits and a newline to a new file created with mode 0600 (never
// overwrites: AlreadyExists), and fsyncs it.
Status write_key_file(const std::string& path, const AuthKey& key);

// Client side, right after connect and before the first frame. Authentication failures
// (refused, wrong key on either side, a server that does not authenticate) are PermissionDenied
// "authentication failed: ..."; a peer that vanishes or stalls gives Unavailable/Timeout. A
// server refusing the proof itself (possible only if the stream was damaged, since the server's
// proof showed the keys match) answers the first call with a PermissionDenied error frame.
Status client_handshake(SocketIo& io, int fd, const AuthKey& key, Deadline dl, const std::string& peer);
// Server side, first thing on an accepted connection. On a refusal the client has been sent the
// reason (the error frame) where it could be; the status says why, for the server's log.
Status server_handshake(SocketIo& io, int fd, const AuthKey& key, Deadline dl);

class ConnectionState;
class RateLimitedLog;
struct TransportOptions;
// Server side of one accepted connection (TCP, or the verbs side channel): the handshake within
// the idle timeout or opts.timeout, whichever is shorter, while the connection counts as idle
// (so the acceptor may evict it). A refusal is logged with the peer's address, an eviction is
// not. False: drop the connection unread.
bool authenticate_connection(SocketIo& io, int fd, ConnectionState& state, const AuthKey& key,
                             const TransportOptions& opts, RateLimitedLog& log);

// Reads the rest of a connection-level error frame of which `have` holds the first bytes (at
// least its header) and returns it as that status with the peer's text; Corruption when it is
// not one. For the verbs set-up, which gets such a frame instead of a set-up answer when refused.
Status read_error_frame(SocketIo& io, int fd, std::string_view have, Deadline dl, const std::string& peer);

// The connection-level error frame (reply, request id 0, status + message as control bytes) that
// TcpChannel and client_handshake report as that status.
std::string connection_error_frame(const Status& why);

// Refused handshakes go to the server's log: the first at once, then at most one line a second
// with a count of the rest, so a flood of bad connections cannot flood the log.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(std::function<void(const std::string&)> sink) : sink_(std::move(sink)) {}
  void note(const std::string& line);

 private:
  std::function<void(const std::string&)> sink_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_{};
  uint64_t suppressed_ = 0;
};

}  // namespace stor::transport
