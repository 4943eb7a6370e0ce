// Accept loop shared by the TCP and verbs listeners: one thread accepts, one thread per
// connection serves it. stop() wakes everything by shutting the sockets down.
//
// Bounds (TransportOptions): at most max_connections connections are served, fewer when
// RLIMIT_NOFILE leaves room for fewer (two descriptors each, a quarter of the limit kept for
// the rest); at the limit the connection idle longest is evicted for the newcomer, or, when
// every connection is inside a request, the newcomer is refused. Running out of descriptors
// all the same (EMFILE) also evicts the longest-idle connection, and the loop backs off
// instead of spinning.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "net/transport.h"

namespace stor::transport {

// What a connection thread tells the acceptor about itself: idle (waiting for a request; may be
// evicted) or busy (inside one; never evicted). Lock-free: the acceptor reads it while the
// connection thread runs.
class ConnectionState {
 public:
  // The thread starts waiting for the next request (the state on accept).
  void idle();
  // A request header arrived: busy from now on. False when the acceptor evicted the connection
  // first; the request must then be dropped unanswered (its socket is already shut down).
  bool begin_request();

  // Acceptor side: when idle, marks evicted and returns true.
  bool try_evict();
  // Steady-clock nanoseconds since the connection became idle, or -1 when busy or evicted.
  int64_t idle_since() const;
  bool evicted() const { return v_.load() == kEvicted; }

 private:
  static constexpr int64_t kBusy = -1, kEvicted = -2;
  std::atomic<int64_t> v_{kBusy};
};

class Acceptor {
 public:
  // serve(fd, state) runs on the connection's own thread and returns when the connection ends;
  // the acceptor closes fd afterwards.
  using ServeFn = std::function<void(int fd, ConnectionState& state)>;
  // Tells a refused connection why, without blocking (the acceptor closes fd afterwards).
  using RejectFn = std::function<void(int fd, const Status& why)>;

  // Binds host:port and starts accepting. opts: io_uring (socket I/O of the accept loop),
  // max_connections, log.
  static Result<std::unique_ptr<Acceptor>> start(const Endpoint& ep, const TransportOptions& opts, ServeFn serve,
                                                 RejectFn reject = {});
  ~Acceptor();

  uint16_t port() const { return port_; }
  void stop();

 private:
  struct Connection {
    int fd = -1;
    std::thread thread;
    std::atomic<bool> finished{false};
    ConnectionState state;
  };
  Acceptor() = default;
  void accept_loop();
  void reap_finished_locked();
  // Evicts the connection idle longest and reaps it; false when none is idle.
  bool evict_oldest_idle_locked();
  // Counts an event and logs a summary at most once a second.
  void note(const char* what, const std::string& detail = {});

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  TransportOptions opts_;
  ServeFn serve_;
  RejectFn reject_;
  std::atomic<bool> stopping_{false};
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<Connection> connections_;
  // note(): events since the last summary
  std::chrono::steady_clock::time_point last_log_{};
  uint64_t refused_ = 0, evicted_ = 0, accept_errors_ = 0;
  size_t effective_limit_ = 0;  // max_connections or the descriptor budget, whichever is lower
  std::string last_detail_;
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
