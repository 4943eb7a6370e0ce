// Transport frames and object-protocol control bytes (net/wire.h, object_protocol.h,
// object_service.h). First byte, low two bits:
//   0  the decoders alone: frame header, object call, listing, stat and server-stats replies
//      (with round trips)
//   1  server side: the bytes are sent on a TCP connection to a real Listener serving an
//      ObjectService (as stor-target does) over a scratch directory
//   2  client side: a Channel sends a call and the bytes come back as the reply
// Bit 2: fix up the checksum of each frame header in the stream, so decoding gets past it.
// Bit 3: socket I/O through io_uring instead of send/recv.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "net/object_protocol.h"
#include "net/object_service.h"
#include "net/server_stats.h"
#include "net/transport.h"
#include "net/wire.h"
#include "fuzz/fuzz_util.h"
#include "stor/engine.h"

using namespace stor;
using namespace stor::transport;

namespace {

constexpr auto kTimeout = std::chrono::milliseconds(2000);

// Rewrites the header checksum of every frame in a stream of header | control | payload frames
// (lengths as the headers say, clipped to what is there).
void fix_checksums(std::string& s) {
  size_t at = 0;
  while (s.size() - at >= kFrameHeaderSize) {
    // FNV-1a over the header with the checksum field counted as zeros (see wire.h).
    uint32_t c = 2166136261u;
    for (size_t i = 0; i < kFrameHeaderSize; ++i) {
      uint8_t v = (i >= 28 && i < 32) ? 0 : static_cast<uint8_t>(s[at + i]);
      c = (c ^ v) * 16777619u;
    }
    for (int i = 0; i < 4; ++i) s[at + 28 + i] = static_cast<char>(c >> (8 * i));
    const uint64_t body = static_cast<uint64_t>(get_u32(s.data() + at + 12)) + get_u64(s.data() + at + 32);
    at += kFrameHeaderSize;
    if (body > s.size() - at) break;
    at += body;
  }
}

void decoders(std::string_view in) {
  if (in.size() >= kFrameHeaderSize) {
    FrameBytes b;
    std::memcpy(b.data(), in.data(), kFrameHeaderSize);
    auto h = decode_frame_header(b, "fuzz");
    if (h.is_ok()) {
      FrameBytes again = encode_frame_header(*h);
      STOR_FUZZ_CHECK(again == b, "a decoded frame header does not encode to the same bytes");
    }
    in.remove_prefix(kFrameHeaderSize);
  }
  auto call = decode_object_call(in);
  if (call.is_ok()) {
    STOR_FUZZ_CHECK(encode_object_call(*call) == in, "a decoded object call does not encode to the same bytes");
    if (validate_object_name(call->name).is_ok()) {
      // Accepted names stay inside the target's directory.
      const std::string& n = call->name;
      STOR_FUZZ_CHECK(n.front() != '/', "an absolute name was accepted");
      for (size_t i = 0; i <= n.size();) {
        size_t j = std::min(n.find('/', i), n.size());
        const std::string comp = n.substr(i, j - i);
        STOR_FUZZ_CHECK(!comp.empty() && comp != "." && comp != "..", "a bad component was accepted: " + n);
        i = j + 1;
      }
    }
  }
  auto entries = decode_object_entries(in);
  if (entries.is_ok())
    for (const auto& e : *entries) STOR_FUZZ_CHECK(validate_object_name(e.name).is_ok(), "listing kept a bad name");
  auto info = decode_object_info(in);
  if (info.is_ok()) STOR_FUZZ_CHECK(encode_object_info(*info) == in, "stat reply does not round trip");
  auto stats = decode_server_stats(in);
  if (stats.is_ok()) STOR_FUZZ_CHECK(encode_server_stats(*stats) == in, "server stats reply does not round trip");
}

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Closing with a reset leaves no TIME_WAIT entry: thousands of inputs a second would otherwise
  // use up the loopback's ephemeral ports within a 30 s run and connect() would fail.
  const linger reset{1, 0};
  if (fd < 0 || ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) != 0)
    stor::fuzz::fail(std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    // libFuzzer's SIGALRM (the -timeout watchdog) can interrupt connect(); the connection then
    // completes in the background: wait for it and take its outcome.
    int err = errno;
    if (err == EINTR) {
      pollfd p{fd, POLLOUT, 0};
      while (::poll(&p, 1, static_cast<int>(kTimeout.count())) < 0 && errno == EINTR) {
      }
      socklen_t len = sizeof err;
      if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    }
    if (err != 0) stor::fuzz::fail(std::string("connect to loopback: ") + std::strerror(err));
  }
  return fd;
}

// Reads until EOF or a quiet period; returns the byte count.
size_t drain(int fd) {
  char buf[65536];
  size_t total = 0;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(kTimeout.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return total;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return total;
    total += static_cast<size_t>(n);
  }
}

void send_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::send(fd, s.data() + done, s.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the server hung up on a bad frame: fine
    done += static_cast<size_t>(n);
  }
}

// ---- server side ---------------------------------------------------------------------------

struct Server {
  std::unique_ptr<IoEngine> engine;
  std::unique_ptr<Transport> transport;
  std::unique_ptr<Listener> listener;
  uint16_t port = 0;
  std::mutex mu;
  std::shared_ptr<ObjectService> service;  // replaced for every input
};

Server& server(bool uring) {
  static Server* s[2] = {nullptr, nullptr};
  Server*& me = s[uring];
  if (me) return *me;
  me = new Server();  // lives until exit: its threads may outlast any input
  EngineOptions eo;
  eo.kind = EngineKind::kThreadPool;
  auto engine = IoEngine::create(eo);
  if (!engine.is_ok()) stor::fuzz::fail("engine: " + engine.status().to_string());
  me->engine = std::move(*engine);
  TransportOptions to;
  to.timeout = kTimeout;
  to.io_uring = uring;
  auto t = Transport::create("tcp", to);
  if (!t.is_ok()) stor::fuzz::fail("transport: " + t.status().to_string());
  me->transport = std::move(*t);
  Server* self = me;
  auto l = me->transport->listen("tcp://127.0.0.1:0", [self](const ServerCall& call) {
    std::shared_ptr<ObjectService> svc;
    {
      std::lock_guard lk(self->mu);
      svc = self->service;
    }
    return svc->handle(call);
  });
  if (!l.is_ok()) stor::fuzz::fail("listen: " + l.status().to_string());
  me->listener = std::move(*l);
  auto ep = Endpoint::parse((*me->listener).endpoint());
  me->port = ep->port;
  return *me;
}

void server_side(const std::string& stream, bool uring) {
  Server& s = server(uring);
  const std::string dir = stor::fuzz::scratch_dir() + "/objects";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir);
  {
    auto svc = ObjectService::create(dir, s.engine.get());
    if (!svc.is_ok()) stor::fuzz::fail("object service: " + svc.status().to_string());
    std::lock_guard lk(s.mu);
    s.service = std::move(*svc);
  }
  int fd = connect_to(s.port);
  send_all(fd, stream);
  ::shutdown(fd, SHUT_WR);
  drain(fd);  // the server answers, then sees EOF (or hangs up on a bad frame) and closes
  ::close(fd);
  // Nothing the server did may reach outside its directory.
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    auto rel = std::filesystem::relative(it->path(), dir, ec).string();
    STOR_FUZZ_CHECK(rel != ".." && rel.rfind("../", 0) != 0, "object service wrote outside its directory: " + rel);
  }
}

// ---- client side ---------------------------------------------------------------------------

struct FakeTarget {
  int listen_fd = -1;
  uint16_t port = 0;
};

FakeTarget& fake_target() {
  static FakeTarget t = [] {
    FakeTarget f;
    f.listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(f.listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(f.listen_fd, 16) != 0 ||
        ::getsockname(f.listen_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      stor::fuzz::fail("fake target socket");
    f.port = ntohs(a.sin_port);
    return f;
  }();
  return t;
}

bool recv_exact(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void client_side(uint8_t op_byte, const std::string& reply, bool uring) {
  FakeTarget& t = fake_target();
  TransportOptions to;
  to.timeout = kTimeout;
  to.io_uring = uring;
  to.max_payload = 1 << 16;
  static std::unique_ptr<Transport> transports[2];
  auto& tr = transports[uring];
  if (!tr) tr = std::move(Transport::create("tcp", to).value());

  // The fake target: reads one request frame, answers with the input, hangs up.
  std::thread target([&] {
    int fd = ::accept4(t.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    FrameBytes hb;
    if (recv_exact(fd, hb.data(), hb.size())) {
      auto h = decode_frame_header(hb, "fuzz client");
      if (!h.is_ok()) stor::fuzz::fail("the client sent a bad frame: " + h.status().to_string());
      std::string body(h->control_len + h->payload_len, '\0');
      if (recv_exact(fd, body.data(), body.size())) send_all(fd, reply);
    }
    ::shutdown(fd, SHUT_WR);
    drain(fd);
    ::close(fd);
  });

  auto ch = tr->connect("tcp://127.0.0.1:" + std::to_string(t.port));
  if (ch.is_ok()) {
    const auto op = static_cast<ObjectOp>(1 + op_byte % 7);
    ObjectCall c{op == ObjectOp::kList ? "" : "ab/1.0.0", 0, 4096, 0};
    std::vector<std::byte> out(op == ObjectOp::kWrite ? 4096 : 0);
    std::vector<std::byte> in(op == ObjectOp::kRead || op == ObjectOp::kList ? 4096 : 0);
    if (op != ObjectOp::kWrite) c.length = in.size();
    auto r = (*ch)->call(static_cast<uint16_t>(op), encode_object_call(c), out, in);
    if (r.is_ok()) {
      STOR_FUZZ_CHECK(r->payload_len <= in.size(), "reply payload larger than the buffer");
      if (op == ObjectOp::kStat) (void)decode_object_info(r->control);
      if (op == ObjectOp::kList)
        (void)decode_object_entries(std::string_view(reinterpret_cast<const char*>(in.data()), r->payload_len));
    }
    ch->reset();  // hang up before joining: the fake target waits for EOF
  }
  target.join();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t mode = data[0];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool fixup = mode & 4, uring = mode & 8;
  switch (mode & 3) {
    case 0: decoders(rest); break;
    case 1:
      if (fixup) fix_checksums(rest);
      server_side(rest, uring);
      break;
    case 2: {
      const uint8_t op = static_cast<uint8_t>(rest[0]);
      rest.erase(0, 1);
      if (fixup) fix_checksums(rest);
      client_side(op, rest, uring);
      break;
    }
    default: break;
  }
  return 0;
}
