#include "core/transport/acceptor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/transport/socket_io.h"

namespace stor::transport {

Result<std::unique_ptr<Acceptor>> Acceptor::start(const Endpoint& ep, bool io_uring, ServeFn serve) {
  std::unique_ptr<Acceptor> a(new Acceptor);
  STOR_ASSIGN_OR_RETURN(a->listen_fd_, tcp_listen(ep.host, ep.port));
  auto port = bound_port(a->listen_fd_);
  if (!port) {
    ::close(a->listen_fd_);
    return port.status();
  }
  a->port_ = *port;
  a->serve_ = std::move(serve);
  a->accept_thread_ = std::thread([raw = a.get(), io_uring] { raw->accept_loop(io_uring); });
  return a;
}

Acceptor::~Acceptor() { stop(); }

void Acceptor::accept_loop(bool io_uring) {
  auto io = SocketIo::create(io_uring);
  while (!stopping_.load()) {
    // A short deadline bounds how long stop() waits for this thread.
    auto fd = io->accept(listen_fd_, deadline_after(std::chrono::milliseconds(100)));
    if (!fd) {
      if (fd.status().code() == Code::kTimeout) continue;
      if (stopping_.load()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // EMFILE and friends: back off
      continue;
    }
    int one = 1;  // replies are small frames: never wait for Nagle
    ::setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lk(mu_);
    reap_finished_locked();
    if (stopping_.load()) {
      ::close(*fd);
      break;
    }
    auto& c = connections_.emplace_back();
    c.fd = *fd;
    c.thread = std::thread([this, &c] {
      serve_(c.fd);
      // The peer sees end of stream now; the descriptor is closed when the thread is reaped, so
      // stop() never shuts down a number the process reused meanwhile.
      ::shutdown(c.fd, SHUT_RDWR);
      c.finished.store(true);
    });
  }
}

void Acceptor::reap_finished_locked() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    if (it->finished.load()) {
      it->thread.join();
      ::close(it->fd);
      it = connections_.erase(it);
    } else {
      ++it;
    }
  }
}

void Acceptor::stop() {
  if (stopping_.exchange(true)) return;
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<Connection> conns;
  {
    std::lock_guard lk(mu_);
    // Wakes connection threads blocked in recv: they see end of stream and return.
    for (auto& c : connections_) ::shutdown(c.fd, SHUT_RDWR);
    conns.splice(conns.end(), connections_);
  }
  for (auto& c : conns) {
    c.thread.join();
    ::close(c.fd);
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  listen_fd_ = -1;
}

}  // namespace stor::transport
