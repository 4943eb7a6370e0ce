// Accept loop shared by the TCP and verbs listeners: one thread accepts, one thread per
// connection serves it. stop() wakes everything by shutting the sockets down.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/transport/transport.h"

namespace stor::transport {

class Acceptor {
 public:
  // serve(fd) runs on the connection's own thread and returns when the connection ends; the
  // acceptor closes fd afterwards.
  using ServeFn = std::function<void(int fd)>;

  // Binds host:port and starts accepting. io_uring selects the socket I/O of the accept loop.
  static Result<std::unique_ptr<Acceptor>> start(const Endpoint& ep, bool io_uring, ServeFn serve);
  ~Acceptor();

  uint16_t port() const { return port_; }
  void stop();

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> finished{false};
  };
  Acceptor() = default;
  void accept_loop(bool io_uring);
  void reap_finished_locked();

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  ServeFn serve_;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<Connection> connections_;
};

// A Listener is an Acceptor plus the endpoint it answers on, whatever the transport.
class AcceptorListener final : public Listener {
 public:
  AcceptorListener(std::unique_ptr<Acceptor> acceptor, std::string endpoint)
      : acceptor_(std::move(acceptor)), endpoint_(std::move(endpoint)) {}
  ~AcceptorListener() override { stop(); }
  const std::string& endpoint() const override { return endpoint_; }
  void stop() override { acceptor_->stop(); }

 private:
  std::unique_ptr<Acceptor> acceptor_;
  std::string endpoint_;
};

}  // namespace stor::transport
