#include "net/socket_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace stor::transport {

namespace {

// Status for a failed socket operation: resets and refusals are Unavailable (retry may help).
Status socket_error(int err, const char* what) {
  Status s = Status::from_errno(err, std::string("transport: ") + what);
  if (err == ECONNRESET || err == ECONNREFUSED || err == EPIPE || err == ECONNABORTED || err == ENOTCONN ||
      err == EHOSTUNREACH || err == ENETUNREACH || err == ESHUTDOWN)
    return Status::Unavailable(s.message());
  return s;
}

// accept() failing for want of descriptors or memory: Busy, so the accept loop can tell it from
// other failures and make room.
Status accept_error(int err) {
  if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
    return Status::Busy(std::string("transport: accept: ") + std::strerror(err));
  return socket_error(err, "accept");
}

Status timed_out(const char* what) { return Status::Timeout(std::string("transport: ") + what + " timed out"); }

int remaining_ms(Deadline dl) {
  if (dl == kNoDeadline) return -1;
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(dl - Clock::now()).count();
  if (left <= 0) return 0;
  return left > INT_MAX ? INT_MAX : static_cast<int>(left);
}

class UringSocketIo final : public SocketIo {
 public:
  static std::unique_ptr<SocketIo> create() {
    auto io = std::unique_ptr<UringSocketIo>(new UringSocketIo);
    if (io_uring_queue_init(4, &io->ring_, 0) != 0) return nullptr;
    io->ok_ = true;
    return io;
  }
  ~UringSocketIo() override {
    if (ok_) io_uring_queue_exit(&ring_);
  }
  const char* name() const override { return "io_uring"; }

  Status send_all(int fd, const void* buf, size_t len, Deadline dl, bool more) override {
    auto p = static_cast<const char*>(buf);
    while (len > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(len, 1u << 30));
      int flags = MSG_NOSIGNAL | (more ? MSG_MORE : 0);
      auto r = run([&](io_uring_sqe* sqe) { io_uring_prep_send(sqe, fd, p, chunk, flags); }, dl);
      if (!r) return r.status().code() == Code::kTimeout ? timed_out("send") : r.status();
      if (*r < 0) return socket_error(-*r, "send");
      p += *r;
      len -= static_cast<size_t>(*r);
    }
    return {};
  }

  Status recv_all(int fd, void* buf, size_t len, Deadline dl) override {
    auto p = static_cast<char*>(buf);
    while (len > 0) {
      unsigned chunk = static_cast<unsigned>(std::min<size_t>(len, 1u << 30));
      auto r = run([&](io_uring_sqe* sqe) { io_uring_prep_recv(sqe, fd, p, chunk, 0); }, dl);
      if (!r) return r.status().code() == Code::kTimeout ? timed_out("receive") : r.status();
      if (*r < 0) return socket_error(-*r, "recv");
      if (*r == 0) return Status::Unavailable("transport: connection closed by peer");
      p += *r;
      len -= static_cast<size_t>(*r);
    }
    return {};
  }

  Result<int> accept(int listen_fd, Deadline dl) override {
    auto r = run([&](io_uring_sqe* sqe) { io_uring_prep_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC); }, dl);
    if (!r) return r.status().code() == Code::kTimeout ? timed_out("accept") : r.status();
    if (*r < 0) return accept_error(-*r);
    return *r;
  }

  Status connect(int fd, const sockaddr_in& addr, Deadline dl) override {
    auto r = run([&](io_uring_sqe* sqe) {
      io_uring_prep_connect(sqe, fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    }, dl);
    if (!r) return r.status().code() == Code::kTimeout ? timed_out("connect") : r.status();
    if (*r < 0) return socket_error(-*r, "connect");
    return {};
  }

 private:
  UringSocketIo() = default;

  // Runs one operation to completion; returns its cqe->res (negative errno), or Timeout when
  // the linked timeout cancelled it. Retries EINTR/EAGAIN results.
  template <typename Prep>
  Result<int> run(Prep prep, Deadline dl) {
    for (;;) {
      bool timed = dl != kNoDeadline;
      __kernel_timespec ts{};
      if (timed) {
        auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(dl - Clock::now()).count();
        if (left <= 0) return Status::Timeout("deadline passed");
        ts.tv_sec = left / 1000000000;
        ts.tv_nsec = left % 1000000000;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
      prep(sqe);
      io_uring_sqe_set_data64(sqe, kOpTag);
      if (timed) {
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe* t = io_uring_get_sqe(&ring_);
        io_uring_prep_link_timeout(t, &ts, 0);
        io_uring_sqe_set_data64(t, kTimeoutTag);
      }
      int rc;
      do rc = io_uring_submit(&ring_);
      while (rc == -EINTR);
      if (rc < 0) return Status::from_errno(-rc, "transport: io_uring_submit");
      int res = 0;
      bool timeout_fired = false;
      for (int seen = 0; seen < (timed ? 2 : 1);) {
        io_uring_cqe* cqe = nullptr;
        rc = io_uring_wait_cqe(&ring_, &cqe);
        if (rc == -EINTR) continue;
        if (rc < 0) return Status::from_errno(-rc, "transport: io_uring_wait_cqe");
        if (io_uring_cqe_get_data64(cqe) == kOpTag) res = cqe->res;
        else if (cqe->res == -ETIME) timeout_fired = true;
        io_uring_cqe_seen(&ring_, cqe);
        ++seen;
      }
      if (res == -ECANCELED && timeout_fired) return Status::Timeout("deadline passed");
      if (res == -EINTR || res == -EAGAIN) continue;
      return res;
    }
  }

  static constexpr uint64_t kOpTag = 1, kTimeoutTag = 2;
  io_uring ring_{};
  bool ok_ = false;
};

class PlainSocketIo final : public SocketIo {
 public:
  const char* name() const override { return "plain"; }

  Status send_all(int fd, const void* buf, size_t len, Deadline dl, bool more) override {
    auto p = static_cast<const char*>(buf);
    while (len > 0) {
      STOR_RETURN_IF_ERROR(wait(fd, POLLOUT, dl, "send"));
      ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return socket_error(errno, "send");
      }
      p += n;
      len -= static_cast<size_t>(n);
    }
    return {};
  }

  Status recv_all(int fd, void* buf, size_t len, Deadline dl) override {
    auto p = static_cast<char*>(buf);
    while (len > 0) {
      STOR_RETURN_IF_ERROR(wait(fd, POLLIN, dl, "receive"));
      ssize_t n = ::recv(fd, p, len, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return socket_error(errno, "recv");
      }
      if (n == 0) return Status::Unavailable("transport: connection closed by peer");
      p += n;
      len -= static_cast<size_t>(n);
    }
    return {};
  }

  Result<int> accept(int listen_fd, Deadline dl) override {
    for (;;) {
      STOR_RETURN_IF_ERROR(wait(listen_fd, POLLIN, dl, "accept"));
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) return fd;
      if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
      return accept_error(errno);
    }
  }

  Status connect(int fd, const sockaddr_in& addr, Deadline dl) override {
    // Non-blocking connect, so the deadline applies; back to blocking afterwards.
    int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      Status w = wait(fd, POLLOUT, dl, "connect");
      if (!w.is_ok()) return w;
      socklen_t l = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    }
    ::fcntl(fd, F_SETFL, fl);
    return err == 0 ? Status() : socket_error(err, "connect");
  }

 private:
  static Status wait(int fd, short events, Deadline dl, const char* what) {
    for (;;) {
      pollfd p{fd, events, 0};
      int ms = remaining_ms(dl);
      if (ms == 0 && dl != kNoDeadline) return timed_out(what);
      int rc = ::poll(&p, 1, ms);
      if (rc > 0) return {};  // ready, or an error the next call reports
      if (rc == 0) return timed_out(what);
      if (errno != EINTR) return socket_error(errno, "poll");
    }
  }
};

}  // namespace

std::unique_ptr<SocketIo> SocketIo::create(bool want_io_uring) {
  if (want_io_uring) {
    if (auto io = UringSocketIo::create()) return io;
  }
  return std::make_unique<PlainSocketIo>();
}

Deadline deadline_after(std::chrono::milliseconds timeout) {
  if (timeout.count() <= 0) return kNoDeadline;
  auto now = Clock::now();
  if (timeout > std::chrono::duration_cast<std::chrono::milliseconds>(kNoDeadline - now)) return kNoDeadline;
  return now + timeout;
}

Result<sockaddr_in> resolve_ipv4(const std::string& host, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1) return a;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0 || !res)
    return Status::NotFound("transport: cannot resolve host '" + host + "': " + ::gai_strerror(rc));
  a.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
  ::freeaddrinfo(res);
  return a;
}

Result<int> tcp_connect(SocketIo& io, const std::string& host, uint16_t port, Deadline dl, const std::string& peer) {
  STOR_ASSIGN_OR_RETURN(sockaddr_in addr, resolve_ipv4(host, port));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return socket_error(errno, "socket");
  Status s = io.connect(fd, addr, dl);
  if (!s.is_ok()) {
    ::close(fd);
    return s.with_suffix(" (" + peer + ")");
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

Result<int> tcp_listen(const std::string& host, uint16_t port) {
  STOR_ASSIGN_OR_RETURN(sockaddr_in addr, resolve_ipv4(host, port));
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return socket_error(errno, "socket");
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 128) != 0) {
    Status s = Status::from_errno(errno, "transport: bind/listen " + host + ":" + std::to_string(port));
    ::close(fd);
    return s;
  }
  return fd;
}

Result<uint16_t> bound_port(int fd) {
  sockaddr_in a{};
  socklen_t l = sizeof a;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l) != 0) return Status::from_errno(errno, "getsockname");
  return ntohs(a.sin_port);
}

}  // namespace stor::transport
