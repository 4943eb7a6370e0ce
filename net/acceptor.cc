#include "net/acceptor.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "net/socket_io.h"

namespace stor::transport {

namespace {
// Connections whose descriptors (a socket and an io_uring each) fit under RLIMIT_NOFILE while
// a quarter of it (at least 32) stays free for object files, the engine and the rest of the
// process. Read each time: the io_uring engine may raise the soft limit after start.
size_t descriptor_budget() {
  rlimit l{};
  if (::getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  rlim_t reserve = std::max<rlim_t>(32, l.rlim_cur / 4);
  return l.rlim_cur > reserve + 2 ? static_cast<size_t>((l.rlim_cur - reserve) / 2) : 1;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void ConnectionState::idle() {
  int64_t cur = v_.load();
  while (cur != kEvicted && !v_.compare_exchange_weak(cur, now_ns())) {
  }
}

bool ConnectionState::begin_request() {
  int64_t cur = v_.load();
  for (;;) {
    if (cur == kEvicted) return false;
    if (v_.compare_exchange_weak(cur, kBusy)) return true;
  }
}

bool ConnectionState::try_evict() {
  int64_t cur = v_.load();
  return cur >= 0 && v_.compare_exchange_strong(cur, kEvicted);
}

int64_t ConnectionState::idle_since() const {
  int64_t v = v_.load();
  return v >= 0 ? v : -1;
}

Result<std::unique_ptr<Acceptor>> Acceptor::start(const Endpoint& ep, const TransportOptions& opts, ServeFn serve,
                                                  RejectFn reject) {
  std::unique_ptr<Acceptor> a(new Acceptor);
  STOR_ASSIGN_OR_RETURN(a->listen_fd_, tcp_listen(ep.host, ep.port));
  auto port = bound_port(a->listen_fd_);
  if (!port) {
    ::close(a->listen_fd_);
    return port.status();
  }
  a->port_ = *port;
  a->opts_ = opts;
  a->serve_ = std::move(serve);
  a->reject_ = std::move(reject);
  a->accept_thread_ = std::thread([raw = a.get()] { raw->accept_loop(); });
  return a;
}

Acceptor::~Acceptor() { stop(); }

void Acceptor::accept_loop() {
  using std::chrono::milliseconds;
  auto io = SocketIo::create(opts_.io_uring);
  milliseconds backoff{0};
  while (!stopping_.load()) {
    {
      // Finished connections give their descriptor and thread back here, accepts or not.
      std::lock_guard lk(mu_);
      reap_finished_locked();
    }
    note(nullptr);
    // A short deadline bounds how long stop() waits for this thread.
    auto fd = io->accept(listen_fd_, deadline_after(milliseconds(100)));
    if (!fd) {
      if (fd.status().code() == Code::kTimeout) continue;
      if (stopping_.load()) break;
      bool freed = false;
      if (fd.status().code() == Code::kBusy) {
        // Out of descriptors (EMFILE/ENFILE) or memory: an idle connection is the cheapest thing
        // to give up, and the waiting client may well be a real one.
        std::lock_guard lk(mu_);
        freed = evict_oldest_idle_locked();
      }
      note("accept", fd.status().to_string());
      // The evicted thread ends within moments; otherwise back off, doubling to 500 ms, so a
      // lasting failure never spins.
      backoff = freed ? milliseconds(5) : std::min(std::max(backoff * 2, milliseconds(10)), milliseconds(500));
      std::this_thread::sleep_for(backoff);
      continue;
    }
    backoff = milliseconds(0);
    int one = 1;  // replies are small frames: never wait for Nagle
    ::setsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::lock_guard lk(mu_);
    reap_finished_locked();
    if (stopping_.load()) {
      ::close(*fd);
      break;
    }
    size_t limit = std::min<size_t>(opts_.max_connections > 0 ? opts_.max_connections : SIZE_MAX, descriptor_budget());
    effective_limit_ = limit;
    if (connections_.size() >= limit && !evict_oldest_idle_locked()) {
      Status why(Code::kUnavailable, "too many connections: all " + std::to_string(connections_.size()) +
                                         " are inside requests (limit " + std::to_string(limit) + "); try again later");
      if (reject_) reject_(*fd, why);
      ::close(*fd);
      note("refused", why.message());
      continue;
    }
    auto& c = connections_.emplace_back();
    c.fd = *fd;
    c.state.idle();
    try {
      c.thread = std::thread([this, &c] {
        serve_(c.fd, c.state);
        // The peer sees end of stream now; the descriptor is closed when the thread is reaped,
        // so stop() never shuts down a number the process reused meanwhile.
        ::shutdown(c.fd, SHUT_RDWR);
        c.finished.store(true);
      });
    } catch (const std::system_error& e) {  // no thread to be had (thread limit, memory)
      Status why(Code::kUnavailable, std::string("cannot start a connection thread: ") + e.what());
      if (reject_) reject_(c.fd, why);
      ::close(c.fd);
      connections_.pop_back();
      note("refused", why.message());
    }
  }
}

bool Acceptor::evict_oldest_idle_locked() {
  // A connection may turn busy between the scan and the eviction: then look again.
  for (size_t attempts = 0; attempts < 4; ++attempts) {
    Connection* oldest = nullptr;
    int64_t since = 0;
    for (auto& c : connections_) {
      int64_t s = c.finished.load() ? -1 : c.state.idle_since();
      if (s >= 0 && (!oldest || s < since)) {
        oldest = &c;
        since = s;
      }
    }
    if (!oldest) return false;
    if (oldest->state.try_evict()) {
      // Its thread sees end of stream and returns at once (it was waiting for a header, and
      // begin_request() now fails): reap it here, so its descriptors are free before the
      // newcomer takes its place.
      ::shutdown(oldest->fd, SHUT_RDWR);
      oldest->thread.join();
      ::close(oldest->fd);
      connections_.remove_if([oldest](const Connection& c) { return &c == oldest; });
      note("evicted");
      return true;
    }
  }
  return false;
}

void Acceptor::note(const char* what, const std::string& detail) {
  // Only the accept thread calls this: no lock.
  if (what) {
    std::string_view w(what);
    if (w == "refused") ++refused_;
    else if (w == "evicted") ++evicted_;
    else ++accept_errors_;
    if (!detail.empty()) last_detail_ = detail;
  }
  if (refused_ + evicted_ + accept_errors_ == 0 || !opts_.log) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_log_ < std::chrono::seconds(1)) return;
  last_log_ = now;
  std::string msg = "listener on port " + std::to_string(port_) + ":";
  if (refused_) msg += " refused " + std::to_string(refused_) + " connection(s);";
  if (evicted_)
    msg += " closed " + std::to_string(evicted_) + " idle connection(s) to make room (limit " +
           std::to_string(effective_limit_) + ");";
  if (accept_errors_) msg += " " + std::to_string(accept_errors_) + " accept failure(s), backing off;";
  if (!last_detail_.empty()) msg += " last: " + last_detail_;
  opts_.log(msg);
  refused_ = evicted_ = accept_errors_ = 0;
  last_detail_.clear();
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
  // Shutting the listening socket down fails a blocked accept at once (EINVAL), so stop() does
  // not wait out the accept deadline; the deadline stays as the fallback.
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
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
