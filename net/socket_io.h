// Blocking-with-deadline socket I/O for the TCP transport and the verbs side channel.
//
// UringSocketIo owns a small io_uring (one per channel or connection thread, so no locking) and
// issues IORING_OP_SEND/RECV/ACCEPT/CONNECT, each linked to an IORING_OP_LINK_TIMEOUT carrying
// the deadline. PlainSocketIo does the same with poll() + send/recv, for kernels or sandboxes
// without io_uring.
#pragma once

#include <netinet/in.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "stor/status.h"

namespace stor::transport {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

class SocketIo {
 public:
  virtual ~SocketIo() = default;

  // io_uring when wanted and available, otherwise plain system calls.
  static std::unique_ptr<SocketIo> create(bool want_io_uring);

  virtual const char* name() const = 0;
  // Sends all bytes. more: MSG_MORE (another send follows at once; lets TCP coalesce).
  // Unavailable on reset/closed peer, Timeout past the deadline.
  virtual Status send_all(int fd, const void* buf, size_t len, Deadline dl, bool more = false) = 0;
  // Receives exactly len bytes. A peer that closes first gives Unavailable.
  virtual Status recv_all(int fd, void* buf, size_t len, Deadline dl) = 0;
  // Accepts one connection; Timeout when none arrived before the deadline, Busy when the
  // process or system is out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM).
  virtual Result<int> accept(int listen_fd, Deadline dl) = 0;
  virtual Status connect(int fd, const sockaddr_in& addr, Deadline dl) = 0;
};

// Resolves host (IPv4 literal or name) and port. InvalidArgument/NotFound on failure.
Result<sockaddr_in> resolve_ipv4(const std::string& host, uint16_t port);
// socket() + connect through io; sets TCP_NODELAY. Unavailable on refusal.
Result<int> tcp_connect(SocketIo& io, const std::string& host, uint16_t port, Deadline dl, const std::string& peer);
// Bound, listening socket; port 0 picks a free one (read it back with bound_port()).
Result<int> tcp_listen(const std::string& host, uint16_t port);
Result<uint16_t> bound_port(int fd);

// Deadline from now, saturating.
Deadline deadline_after(std::chrono::milliseconds timeout);

}  // namespace stor::transport
