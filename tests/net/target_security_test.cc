// stor-target hardening: object paths never leave the target directory (symlinks are refused),
// idle or stalled connections cannot lock valid clients out, and only holders of the key are
// served (the authentication handshake).
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include "net/auth.h"
#include "net/object_protocol.h"
#include "net/object_service.h"
#include "net/remote_object.h"
#include "net/socket_io.h"
#include "net/transport.h"
#include "net/wire.h"
#include "stor/engine.h"
#include "target_process.h"
#include "test_util.h"

using namespace stor;
using namespace stor::transport;
using stor::test::TargetProcess;
using stor::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One object call, however it reaches the service: status plus reply payload bytes.
struct Outcome {
  Status status;
  std::string payload;
};
using CallFn = std::function<Outcome(ObjectOp op, const ObjectCall& c, std::string_view payload)>;

// A target directory with three planted symlinks (to a file outside, to a directory outside and
// to "/") and one honest object; `outside` holds the file the links point at.
struct Planted {
  TempDir outside, target;
  std::string secret_path;
  Planted() {
    secret_path = outside / "secret";
    std::ofstream(secret_path) << "SECRET";
    std::filesystem::create_directory(outside / "sub");
    std::ofstream(outside / "sub/inner") << "INNER";
    std::filesystem::create_symlink(secret_path, target / "lf");
    std::filesystem::create_symlink(outside.path(), target / "ld");
    std::filesystem::create_symlink("/", target / "lr");
    std::filesystem::create_directory(target / "real");
    std::filesystem::create_symlink(outside.path(), target / "real/ld");  // deeper down
  }
  // Names that must not resolve: the links themselves and paths through them. All of them aim at
  // the scratch directory `outside` (through "/" too), never at system files: a regression
  // must not damage the machine running the test.
  std::vector<std::string> bad_names() const {
    std::string via_root = "lr" + outside.path();  // "lr/tmp/stor-test-XXXX"
    return {"lf", "ld", "lr", "ld/secret", "ld/sub/inner", "ld/new", "ld/sub/new", via_root + "/secret",
            via_root + "/new", "real/ld/secret", "real/ld/new"};
  }
  void check_outside_untouched() const {
    CHECK(slurp(secret_path) == "SECRET");
    CHECK(slurp(outside / "sub/inner") == "INNER");
    size_t n = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(outside.path())) (void)e, ++n;
    CHECK(n == 3);  // secret, sub, sub/inner: nothing created
    for (const char* l : {"lf", "ld", "lr", "real/ld"}) CHECK(std::filesystem::is_symlink(target / l));
  }
};

// Every operation through every planted link fails with PermissionDenied and touches nothing.
void check_links_refused(const Planted& p, const CallFn& call) {
  for (const auto& name : p.bad_names()) {
    INFO("object name " << name);
    std::vector<std::pair<ObjectOp, ObjectCall>> ops = {
        {ObjectOp::kRead, {name, 0, 6, 0}},     {ObjectOp::kWrite, {name, 0, 4, 0}},
        {ObjectOp::kTruncate, {name, 0, 0, 0}}, {ObjectOp::kStat, {name, 0, 0, 0}},
        {ObjectOp::kSync, {name, 0, 0, 0}},     {ObjectOp::kRemove, {name, 0, 0, 0}},
    };
    for (auto& [op, c] : ops) {
      INFO("opcode " << static_cast<int>(op));
      auto r = call(op, c, op == ObjectOp::kWrite ? std::string_view("EVIL") : std::string_view());
      CHECK(r.status.code() == Code::kPermissionDenied);
      CHECK_THAT(r.status.message(), Catch::Contains("symbolic link"));
      CHECK(r.payload.empty());
    }
  }
  // The listing shows the honest object only: links are neither listed nor followed.
  auto l = call(ObjectOp::kList, ObjectCall{"", 0, 0, 0}, {});
  REQUIRE(l.status.is_ok());
  auto entries = decode_object_entries(l.payload).value();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].name == "real/ok");
  CHECK(entries[0].size == 2);
  p.check_outside_untouched();
}

// Honest objects, in and below the directory, still work.
void check_honest_objects(const Planted& p, const CallFn& call) {
  REQUIRE(call(ObjectOp::kWrite, {"real/ok", 0, 2, 0}, "ok").status.is_ok());
  REQUIRE(call(ObjectOp::kWrite, {"new/deep/obj", 0, 3, 0}, "abc").status.is_ok());
  auto r = call(ObjectOp::kRead, {"new/deep/obj", 0, 3, 0}, {});
  REQUIRE(r.status.is_ok());
  CHECK(r.payload == "abc");
  CHECK(call(ObjectOp::kStat, {"new/deep/obj", 0, 0, 0}, {}).status.is_ok());
  CHECK(call(ObjectOp::kRemove, {"new/deep/obj", 0, 0, 0}, {}).status.is_ok());
  CHECK(call(ObjectOp::kStat, {"new/deep/obj", 0, 0, 0}, {}).status.code() == Code::kNotFound);
  CHECK(slurp(p.target / "real/ok") == "ok");
}

CallFn in_process(ObjectService& svc) {
  return [&svc](ObjectOp op, const ObjectCall& c, std::string_view payload) {
    std::vector<std::byte> reply(op == ObjectOp::kList ? 65536 : c.length);
    std::string control = encode_object_call(c);
    ServerCall call{static_cast<uint16_t>(op), control,
                    std::as_bytes(std::span<const char>(payload.data(), payload.size())), reply};
    ServerResult r = svc.handle(call);
    Outcome o{r.status, {}};
    if (r.status.is_ok()) o.payload.assign(reinterpret_cast<const char*>(reply.data()), r.payload_len);
    return o;
  };
}

CallFn over_channel(Channel& ch) {
  return [&ch](ObjectOp op, const ObjectCall& c, std::string_view payload) {
    std::vector<std::byte> reply(op == ObjectOp::kList ? 65536 : c.length);
    auto r = ch.call(static_cast<uint16_t>(op), encode_object_call(c),
                     std::as_bytes(std::span<const char>(payload.data(), payload.size())), reply);
    Outcome o;
    if (!r) o.status = r.status();
    else o.payload.assign(reinterpret_cast<const char*>(reply.data()), r->payload_len);
    return o;
  };
}

}  // namespace

TEST_CASE("object service refuses symlinks in and below its directory", "[transport][security]") {
  auto engine = IoEngine::create().value();
  for (bool walk : {false, true}) {
    INFO((walk ? "O_NOFOLLOW component walk" : "openat2"));
    Planted p;
    ObjectServiceOptions o;
    o.force_component_walk = walk;
    auto svc = ObjectService::create(p.target.path(), engine.get(), o).value();
    if (walk) CHECK_FALSE(svc->uses_openat2());
    else CHECK(svc->uses_openat2());  // Linux >= 5.6 without a seccomp filter refusing it
    auto call = in_process(*svc);
    check_honest_objects(p, call);
    check_links_refused(p, call);
    // A link planted where a parent directory would be created is not followed either.
    std::filesystem::create_symlink(p.outside.path(), p.target / "real/later");
    auto r = call(ObjectOp::kWrite, {"real/later/x/y", 0, 1, 0}, "z");
    CHECK(r.status.code() == Code::kPermissionDenied);
    p.check_outside_untouched();
  }
}

TEST_CASE("stor-target refuses symlinks in its directory", "[transport][security]") {
  Planted p;
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", p.target.path());
  auto ch = Transport::create("tcp").value()->connect(t.endpoint()).value();
  auto call = over_channel(*ch);
  check_honest_objects(p, call);
  check_links_refused(p, call);
  CHECK_FALSE(ch->broken());
  CHECK(t.stop_cleanly());
}

// ---------------------------------------------------------------------------------------------
// Connection limit and idle timeout

namespace {

using Ms = std::chrono::milliseconds;

int raw_connect(const std::string& endpoint) {
  auto ep = Endpoint::parse(endpoint).value();
  auto io = SocketIo::create(false);
  return tcp_connect(*io, ep.host, ep.port, deadline_after(Ms(5000)), endpoint).value();
}

// True when the server closed fd (end of stream or reset) within `wait`; bytes it sent first
// (an error frame) are skipped.
bool closed_by_peer(int fd, Ms wait) {
  auto end = std::chrono::steady_clock::now() + wait;
  for (;;) {
    auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now()).count();
    if (left < 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[256];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
  }
}

size_t count_entries(const std::string& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}
size_t threads_of(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/task"); }
size_t fds_of(pid_t pid) { return count_entries("/proc/" + std::to_string(pid) + "/fd"); }
std::string fd_kinds(pid_t pid) {
  std::map<std::string, int> kinds;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    auto t = std::filesystem::read_symlink(e.path(), ec).string();
    kinds[t.substr(0, t.find(':'))]++;
  }
  std::string out;
  for (auto& [k, n] : kinds) out += k + " x" + std::to_string(n) + ", ";
  return out;
}

// Waits (up to `limit`) for pred to hold.
bool eventually(Ms limit, const std::function<bool()>& pred) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(Ms(20));
  }
  return true;
}

// The first `n` bytes of a valid request header.
void send_header_prefix(int fd, size_t n, uint32_t control_len = 0) {
  FrameHeader h;
  h.opcode = static_cast<uint16_t>(ObjectOp::kStat);
  h.request_id = 1;
  h.control_len = control_len;
  auto b = encode_frame_header(h);
  REQUIRE(::send(fd, b.data(), n, MSG_NOSIGNAL) == static_cast<ssize_t>(n));
}

// Established connections to the target's port whose receive queue on the target's side is
// empty, i.e. the target has read everything sent so far (/proc/net/tcp).
int drained_connections(const std::string& endpoint) {
  uint16_t port = Endpoint::parse(endpoint).value().port;
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);
  int drained = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, queues;
    f >> sl >> local >> remote >> st >> queues;
    if (st != "01" || std::stoul(local.substr(local.find(':') + 1), nullptr, 16) != port) continue;
    drained += std::stoul(queues.substr(queues.find(':') + 1), nullptr, 16) == 0;
  }
  return drained;
}

size_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

// A client that is served: connect, write, read back.
void check_served(const std::string& endpoint, const char* name) {
  RemoteTargetOptions o;
  o.transport.timeout = Ms(10000);
  o.connections = 1;
  auto t = RemoteObjectTarget::connect(endpoint, o);
  REQUIRE(t.is_ok());
  auto w = (*t)->write(name, "valid", 5, 0);
  INFO(w.status().to_string());
  REQUIRE(w.is_ok());
  char back[5];
  REQUIRE((*t)->read(name, back, 5, 0).value() == 5);
  CHECK(std::memcmp(back, "valid", 5) == 0);
}

struct Sockets {
  std::vector<int> fds;
  ~Sockets() {
    for (int fd : fds) ::close(fd);
  }
};

}  // namespace

static void check_idle_closing(bool plain) {
  INFO((plain ? "--plain-sockets" : "io_uring sockets"));
  TempDir dir;
  std::vector<std::string> args = {"--idle-timeout-ms", "1500", "--timeout-ms", "1000"};
  if (plain) args.push_back("--plain-sockets");
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), args);
  // An active client calling more often than the idle timeout keeps its connection.
  auto ch = Transport::create("tcp").value()->connect(t.endpoint()).value();
  REQUIRE(ch->call(static_cast<uint16_t>(ObjectOp::kTruncate), encode_object_call({"a", 0, 1, 0}), {}, {}).is_ok());
  size_t baseline = threads_of(t.pid());

  Sockets idle, slow, half;
  for (int i = 0; i < 4; ++i) idle.fds.push_back(raw_connect(t.endpoint()));  // send nothing
  for (int i = 0; i < 4; ++i) {                                              // one byte of a header
    slow.fds.push_back(raw_connect(t.endpoint()));
    send_header_prefix(slow.fds.back(), 1);
  }
  for (int i = 0; i < 2; ++i) {  // 47 bytes of a header
    slow.fds.push_back(raw_connect(t.endpoint()));
    send_header_prefix(slow.fds.back(), kFrameHeaderSize - 1);
  }
  for (int i = 0; i < 2; ++i) {  // a whole header, then only part of its control bytes
    half.fds.push_back(raw_connect(t.endpoint()));
    send_header_prefix(half.fds.back(), kFrameHeaderSize, 30);
    REQUIRE(::send(half.fds.back(), "12345", 5, MSG_NOSIGNAL) == 5);
  }
  auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < 12; ++k) {  // 3 s: twice the idle timeout
    std::this_thread::sleep_for(Ms(250));
    INFO("call " << k);
    CHECK(ch->call(static_cast<uint16_t>(ObjectOp::kStat), encode_object_call({"a", 0, 0, 0}), {}, {}).is_ok());
  }
  for (auto* group : {&idle, &slow, &half})
    for (int fd : group->fds) CHECK(closed_by_peer(fd, Ms(10000)));
  CHECK(std::chrono::steady_clock::now() - start < Ms(10000));
  CHECK_FALSE(ch->broken());
  // Their threads are gone too, not only their sockets.
  CHECK(eventually(Ms(5000), [&] { return threads_of(t.pid()) <= baseline; }));
  CHECK(t.stop_cleanly());
}

TEST_CASE("stor-target closes idle connections and stalled frames after its timeouts", "[transport][limits]") {
  check_idle_closing(false);
  check_idle_closing(true);
}

TEST_CASE("pooled client connections closed by the idle timeout are replaced, not failed", "[transport][limits]") {
  TempDir dir;
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), {"--idle-timeout-ms", "300"});
  RemoteTargetOptions o;
  o.connections = 3;
  auto target = RemoteObjectTarget::connect(t.endpoint(), o).value();
  std::vector<std::future<Result<size_t>>> writes;
  for (int i = 0; i < 3; ++i)  // fill the pool with several connections
    writes.push_back(std::async(std::launch::async, [&, i] { return target->write("o" + std::to_string(i), "xyz", 3, 0); }));
  for (auto& w : writes) REQUIRE(w.get().is_ok());
  for (int round = 0; round < 2; ++round) {
    std::this_thread::sleep_for(Ms(900));  // every pooled connection is closed by the target now
    INFO("round " << round);
    char back[3];
    auto r = target->read("o1", back, 3, 0);
    INFO(r.status().to_string());
    CHECK(r.is_ok());
    CHECK(target->stat("o2").is_ok());
    CHECK(target->list().is_ok());
    CHECK(target->write("o0", "abc", 3, 0).is_ok());
  }
  CHECK(t.stop_cleanly());
}

TEST_CASE("a flood of idle connections at the limit does not lock out a valid client", "[transport][limits]") {
  TempDir dir;
  constexpr size_t kLimit = 16;
  // The default idle timeout (60 s) is far beyond this test: only eviction can make room.
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), {"--max-connections", std::to_string(kLimit)});
  // Measured before any connection: the objects written below add a cached descriptor each.
  size_t threads0 = threads_of(t.pid()), fds0 = fds_of(t.pid()) + 2;
  check_served(t.endpoint(), "before");

  Sockets flood;
  for (int i = 0; i < 40; ++i) flood.fds.push_back(raw_connect(t.endpoint()));
  for (int i = 0; i < 8; ++i) {
    flood.fds.push_back(raw_connect(t.endpoint()));
    send_header_prefix(flood.fds.back(), 3);
  }
  // The target holds at most kLimit of them: the oldest idle ones were evicted, and their
  // threads and descriptors are released (the accept loop reaps at least every 100 ms).
  CHECK(eventually(Ms(10000), [&] {
    size_t closed = 0;
    for (int fd : flood.fds) closed += closed_by_peer(fd, Ms(0));
    return closed >= flood.fds.size() - kLimit;
  }));
  bool bounded = eventually(Ms(5000), [&] {
    // a socket and at most an io_uring each
    return threads_of(t.pid()) <= threads0 + kLimit && fds_of(t.pid()) <= fds0 + 2 * kLimit;
  });
  INFO("threads " << threads_of(t.pid()) << " (idle target: " << threads0 << "), fds " << fds_of(t.pid()) << " "
                  << fd_kinds(t.pid()) << " (idle target: " << fds0 << ")");
  CHECK(bounded);

  // A valid client is served while the flood is still connected.
  auto start = std::chrono::steady_clock::now();
  check_served(t.endpoint(), "during");
  CHECK(std::chrono::steady_clock::now() - start < Ms(10000));
  CHECK(t.stop_cleanly());
}

TEST_CASE("stor-target refuses a connection when every slot is busy, with a clear error", "[transport][limits]") {
  TempDir dir;
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(),
                  {"--max-connections", "3", "--timeout-ms", "3000"});
  // Three connections stalled inside a request (header sent, control bytes missing): busy, not
  // idle, so not evictable until --timeout-ms ends them.
  Sockets busy;
  for (int i = 0; i < 3; ++i) {
    busy.fds.push_back(raw_connect(t.endpoint()));
    send_header_prefix(busy.fds.back(), kFrameHeaderSize, 30);
  }
  // Wait until the target has read those headers: its ends of the connections, established
  // on its port, have nothing left in their receive queues (/proc/net/tcp).
  REQUIRE(eventually(Ms(10000), [&] { return drained_connections(t.endpoint()) == 3; }));
  TransportOptions o;
  o.timeout = Ms(5000);
  auto ch = Transport::create("tcp", o).value()->connect(t.endpoint()).value();
  auto r = ch->call(static_cast<uint16_t>(ObjectOp::kStat), encode_object_call({"a", 0, 0, 0}), {}, {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("too many connections"));
  // Once the stalled requests time out, clients are served again.
  for (int fd : busy.fds) CHECK(closed_by_peer(fd, Ms(10000)));
  check_served(t.endpoint(), "after");
  CHECK(t.stop_cleanly());
}

TEST_CASE("stor-target survives running out of descriptors and still serves", "[transport][limits]") {
  TempDir dir;
  // 64 descriptors: about 25 connections' worth.
  auto t = std::make_unique<TargetProcess>(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(),
                                           std::vector<std::string>{}, 64);
  Sockets flood;  // more idle connections than the target has descriptors
  for (int i = 0; i < 100; ++i) flood.fds.push_back(raw_connect(t->endpoint()));
  auto start = std::chrono::steady_clock::now();
  check_served(t->endpoint(), "valid");
  CHECK(std::chrono::steady_clock::now() - start < Ms(15000));

  // Accepting while out of descriptors backs off instead of spinning: with the flood still
  // connected, the target uses well under half a CPU.
  auto cpu = [&] {
    std::ifstream in("/proc/" + std::to_string(t->pid()) + "/stat");
    std::string line;
    std::getline(in, line);
    std::istringstream rest(line.substr(line.rfind(')') + 2));
    std::string f;
    uint64_t ticks = 0;
    for (int i = 3; i <= 15; ++i) {
      rest >> f;
      if (i == 14 || i == 15) ticks += std::stoull(f);  // utime, stime
    }
    return ticks;
  };
  std::this_thread::sleep_for(Ms(500));
  uint64_t before = cpu();
  std::this_thread::sleep_for(Ms(2000));
  CHECK((cpu() - before) < static_cast<uint64_t>(::sysconf(_SC_CLK_TCK)));  // < 1 s of CPU in 2 s
  check_served(t->endpoint(), "again");
  CHECK(t->stop_cleanly());
}

TEST_CASE("request lengths do not make stor-target commit memory before the bytes arrive", "[transport][limits]") {
  TempDir dir;
  constexpr uint64_t kMax = 16 << 20;
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), {"--max-payload", std::to_string(kMax)});
  check_served(t.endpoint(), "warm");  // engine and first connection set up
  size_t rss0 = rss_kib(t.pid());

  Sockets conns;
  // Writes announcing the largest payload the target accepts, then stalling before any of it.
  for (int i = 0; i < 8; ++i) {
    conns.fds.push_back(raw_connect(t.endpoint()));
    std::string control = encode_object_call({"w" + std::to_string(i), 0, kMax, 0});
    FrameHeader h;
    h.opcode = static_cast<uint16_t>(ObjectOp::kWrite);
    h.request_id = 1;
    h.control_len = static_cast<uint32_t>(control.size());
    h.payload_len = kMax;
    auto b = encode_frame_header(h);
    REQUIRE(::send(conns.fds.back(), b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
    REQUIRE(::send(conns.fds.back(), control.data(), control.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(control.size()));
  }
  // Reads of a missing object offering the largest reply capacity: answered NotFound at once.
  for (int i = 0; i < 8; ++i) {
    conns.fds.push_back(raw_connect(t.endpoint()));
    std::string control = encode_object_call({"missing", 0, kMax, 0});
    FrameHeader h;
    h.opcode = static_cast<uint16_t>(ObjectOp::kRead);
    h.request_id = 1;
    h.control_len = static_cast<uint32_t>(control.size());
    h.reply_capacity = kMax;
    auto b = encode_frame_header(h);
    REQUIRE(::send(conns.fds.back(), b.data(), b.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(b.size()));
    REQUIRE(::send(conns.fds.back(), control.data(), control.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(control.size()));
    FrameBytes rb;
    REQUIRE(::recv(conns.fds.back(), rb.data(), rb.size(), MSG_WAITALL) == static_cast<ssize_t>(rb.size()));
    CHECK(decode_frame_header(rb, "target").value().status == static_cast<uint32_t>(Code::kNotFound));
  }
  REQUIRE(eventually(Ms(10000), [&] { return drained_connections(t.endpoint()) >= 16; }));
  std::this_thread::sleep_for(Ms(200));  // the stalled writers are inside recv now
  // 16 x 16 MiB were announced; committing them up front would show as 256 MiB.
  size_t grown = rss_kib(t.pid()) - std::min(rss0, rss_kib(t.pid()));
  INFO("RSS grew by " << grown << " KiB");
  CHECK(grown < 48 * 1024);
  // A real transfer of that size still works.
  RemoteTargetOptions o;
  o.transport.max_payload = kMax;
  auto target = RemoteObjectTarget::connect(t.endpoint(), o).value();
  auto data = stor::test::pattern(kMax, 9);
  REQUIRE(target->write("big", data.data(), data.size(), 0).value() == kMax);
  std::vector<char> back(kMax);
  REQUIRE(target->read("big", back.data(), kMax, 0).value() == kMax);
  CHECK(std::memcmp(back.data(), data.data(), kMax) == 0);
  CHECK(t.stop_cleanly());
}

// ---- Authentication (net/auth.h): the key handshake every connection must pass ----

namespace {

// Every file below `dir` with its contents: what a refused client must leave exactly as it was.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    out[e.path().string()] = e.is_regular_file() ? slurp(e.path().string()) : std::string("<dir>");
  return out;
}

std::shared_ptr<const AuthKey> make_key(const std::string& path) {
  auto k = AuthKey::generate().value();
  REQUIRE(write_key_file(path, k).is_ok());
  return load_key_file(path).value();
}

TransportOptions keyed(std::shared_ptr<const AuthKey> key, Ms timeout = Ms(5000)) {
  TransportOptions o;
  o.auth_key = std::move(key);
  o.timeout = timeout;
  return o;
}

// Reads exactly n bytes, or fewer when the peer closes or `wait` passes.
std::string recv_upto(int fd, size_t n, Ms wait = Ms(5000)) {
  std::string out;
  auto end = std::chrono::steady_clock::now() + wait;
  while (out.size() < n) {
    auto left = std::chrono::duration_cast<Ms>(end - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) break;
    if (r > 0) out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// The connection-level error frame at the start of `bytes`: its status and text.
Status error_frame(std::string_view bytes) {
  REQUIRE(bytes.size() >= kFrameHeaderSize);
  FrameBytes fb;
  std::memcpy(fb.data(), bytes.data(), fb.size());
  auto h = decode_frame_header(fb, "test").value();
  CHECK(h.request_id == 0);
  return Status(static_cast<Code>(h.status), std::string(bytes.substr(kFrameHeaderSize)));
}

std::string file_text(const std::string& path) { return slurp(path); }

// Forwards one client connection to `upstream` and records what each side sent: the bytes an
// eavesdropper on the network would capture.
class RecordingProxy {
 public:
  explicit RecordingProxy(const std::string& upstream) : upstream_(upstream) {
    listen_fd_ = tcp_listen("127.0.0.1", 0).value();
    endpoint_ = "tcp://127.0.0.1:" + std::to_string(bound_port(listen_fd_).value());
    thread_ = std::thread([this] { run(); });
  }
  ~RecordingProxy() {
    wait();
    ::close(listen_fd_);
  }
  const std::string& endpoint() const { return endpoint_; }
  // Valid once the client hung up (the thread is joined by wait()).
  void wait() {
    if (thread_.joinable()) thread_.join();
  }
  std::string from_client, from_server;

 private:
  void run() {
    int c = ::accept(listen_fd_, nullptr, nullptr);
    if (c < 0) return;
    int s = raw_connect(upstream_);
    pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
    for (bool open = true; open;) {
      if (::poll(p, 2, 10000) <= 0) break;
      for (int i = 0; i < 2 && open; ++i) {
        if (!p[i].revents) continue;
        char buf[65536];
        ssize_t n = ::recv(p[i].fd, buf, sizeof buf, 0);
        if (n <= 0) {
          open = false;
          break;
        }
        (i == 0 ? from_client : from_server).append(buf, static_cast<size_t>(n));
        if (::send(p[1 - i].fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) open = false;
      }
    }
    ::close(c);
    ::close(s);
  }
  std::string upstream_, endpoint_;
  int listen_fd_ = -1;
  std::thread thread_;
};

}  // namespace

TEST_CASE("key files: written 0600, hex or raw accepted, refused when group or others may read them", "[transport][auth]") {
  TempDir d;
  auto k = AuthKey::generate().value();
  REQUIRE(write_key_file(d / "k", k).is_ok());
  struct stat st {};
  REQUIRE(::stat((d / "k").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(file_text(d / "k") == k.hex() + "\n");
  auto loaded = load_key_file(d / "k");
  REQUIRE(loaded.is_ok());
  CHECK(std::equal((*loaded)->bytes().begin(), (*loaded)->bytes().end(), k.bytes().begin()));
  CHECK(AuthKey::generate().value().hex() != k.hex());  // random, not a constant
  // Never overwrites an existing key (it may be the one every target holds).
  CHECK(write_key_file(d / "k", AuthKey::generate().value()).code() == Code::kAlreadyExists);
  CHECK(file_text(d / "k") == k.hex() + "\n");

  // 32 raw bytes work too.
  {
    std::ofstream(d / "raw", std::ios::binary)
        .write(reinterpret_cast<const char*>(k.bytes().data()), static_cast<std::streamsize>(k.bytes().size()));
  }
  ::chmod((d / "raw").c_str(), 0600);
  auto raw = load_key_file(d / "raw");
  REQUIRE(raw.is_ok());
  CHECK((*raw)->hex() == k.hex());

  for (mode_t m : {0644, 0640, 0604, 0620, 0602}) {
    INFO("mode " << std::oct << m);
    ::chmod((d / "k").c_str(), m);
    auto r = load_key_file(d / "k");
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK_THAT(r.status().message(), Catch::Contains("chmod 600"));
  }
  ::chmod((d / "k").c_str(), 0600);
  std::filesystem::create_symlink(d / "k", d / "link");
  CHECK_FALSE(load_key_file(d / "link").is_ok());
  std::ofstream(d / "short") << "abc123\n";
  ::chmod((d / "short").c_str(), 0600);
  CHECK(load_key_file(d / "short").status().code() == Code::kInvalidArgument);
  CHECK(load_key_file(d / "missing").status().code() == Code::kNotFound);

  // The daemon: a 0644 key is refused at start; no key and no --insecure-no-auth: refuses to start.
  TempDir dir;
  ::chmod((d / "k").c_str(), 0644);
  std::string bin = STOR_TARGET_PATH;
  auto run = [&](const std::string& args) {
    int st = std::system((bin + " --listen tcp://127.0.0.1:0 --dir " + dir.path() + " " + args + " >" + d.path() +
                          "/out 2>" + d.path() + "/err </dev/null")
                             .c_str());
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  };
  CHECK(run("--key-file " + d / "k") == 1);
  CHECK_THAT(file_text(d / "err"), Catch::Contains("mode 0644"));
  CHECK(file_text(d / "out").empty());  // never printed an endpoint
  CHECK(run("") == 2);
  CHECK_THAT(file_text(d / "err"), Catch::Contains("refusing to serve objects to unauthenticated clients"));
  CHECK(file_text(d / "out").empty());
  // --make-key makes a loadable 0600 key and never overwrites.
  int st2 = std::system((bin + " --make-key " + d / "made" + " >/dev/null").c_str());
  CHECK((WIFEXITED(st2) && WEXITSTATUS(st2) == 0));
  CHECK(load_key_file(d / "made").is_ok());
  int st3 = std::system((bin + " --make-key " + d / "made" + " >/dev/null 2>&1").c_str());
  CHECK((WIFEXITED(st3) && WEXITSTATUS(st3) == 1));
}

TEST_CASE("in-process: only a client with the listener's key reaches the handler", "[transport][auth]") {
  TempDir d;
  auto key = make_key(d / "a"), other = make_key(d / "b");
  std::atomic<int> calls{0};
  auto handler = [&](const ServerCall&) {
    ++calls;
    return ServerResult{};
  };
  for (bool plain : {false, true}) {
    INFO((plain ? "plain sockets" : "io_uring sockets"));
    calls = 0;
    auto server_opts = keyed(key);
    server_opts.io_uring = !plain;
    auto listener = Transport::create("tcp", server_opts).value()->listen("tcp://127.0.0.1:0", handler).value();
    const std::string ep = listener->endpoint();

    auto good = Transport::create("tcp", keyed(key)).value()->connect(ep);
    REQUIRE(good.is_ok());
    CHECK((*good)->call(9, "x", {}, {}).is_ok());
    CHECK(calls == 1);

    // No key: the request frame is refused unread.
    auto bare = Transport::create("tcp").value()->connect(ep).value();
    auto r = bare->call(9, "x", {}, {});
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK_THAT(r.status().message(), Catch::Contains("requires authentication"));
    // Wrong key: the client finds out from the server's proof and hangs up without its own.
    auto wrong = Transport::create("tcp", keyed(other)).value()->connect(ep);
    CHECK(wrong.status().code() == Code::kPermissionDenied);
    CHECK_THAT(wrong.status().message(), Catch::StartsWith("authentication failed: "));
    CHECK_THAT(wrong.status().message(), Catch::Contains("could not prove it holds this key"));
    CHECK(calls == 1);
    listener->stop();
  }
  // A client with a key talking to a listener without one: told so at once, not after a timeout.
  auto open_listener = Transport::create("tcp").value()->listen("tcp://127.0.0.1:0", handler).value();
  auto start = std::chrono::steady_clock::now();
  auto c = Transport::create("tcp", keyed(key, Ms(20000))).value()->connect(open_listener->endpoint());
  CHECK(c.status().code() == Code::kPermissionDenied);
  CHECK_THAT(c.status().message(), Catch::Contains("does not authenticate connections"));
  CHECK(std::chrono::steady_clock::now() - start < Ms(5000));
}

TEST_CASE("a client refuses a server that cannot prove the key, and sends it nothing more", "[transport][auth]") {
  TempDir d;
  auto key = make_key(d / "k");
  int lfd = tcp_listen("127.0.0.1", 0).value();
  std::string ep = "tcp://127.0.0.1:" + std::to_string(bound_port(lfd).value());
  std::string after_challenge;
  std::thread fake([&] {
    int c = ::accept(lfd, nullptr, nullptr);
    std::string hello = recv_upto(c, 48);
    // A well-formed challenge with a made-up proof: an impostor that does not hold the key.
    std::string m;
    put_u32(m, 0x41525453);  // "STRA"
    put_u16(m, 1);
    put_u16(m, 2);
    auto nonce = AuthKey::generate().value();
    m.append(reinterpret_cast<const char*>(nonce.bytes().data()), 32);
    m.append(8, '\0');
    m.append(reinterpret_cast<const char*>(AuthKey::generate().value().bytes().data()), 32);
    if (hello.size() == 48) (void)!::send(c, m.data(), m.size(), MSG_NOSIGNAL);
    after_challenge = recv_upto(c, 48, Ms(3000));
    ::close(c);
  });
  auto r = Transport::create("tcp", keyed(key)).value()->connect(ep);
  fake.join();
  ::close(lfd);
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK_THAT(r.status().message(), Catch::Contains("could not prove it holds this key"));
  CHECK(after_challenge.empty());  // no proof handed to the impostor
}

TEST_CASE("a keyed client refused for want of slots gets Unavailable, not an authentication error", "[transport][auth]") {
  TempDir d;
  auto key = make_key(d / "k");
  int lfd = tcp_listen("127.0.0.1", 0).value();
  std::string ep = "tcp://127.0.0.1:" + std::to_string(bound_port(lfd).value());
  std::thread full([&] {  // what the acceptor sends when every connection is inside a request
    int c = ::accept(lfd, nullptr, nullptr);
    (void)recv_upto(c, 48);
    std::string f = connection_error_frame(Status::Unavailable("too many connections: all 3 are inside requests"));
    (void)!::send(c, f.data(), f.size(), MSG_NOSIGNAL);
    ::close(c);
  });
  auto r = Transport::create("tcp", keyed(key)).value()->connect(ep);
  full.join();
  ::close(lfd);
  CHECK(r.status().code() == Code::kUnavailable);
  CHECK_THAT(r.status().message(), Catch::Contains("too many connections"));
}

static void check_target_auth(bool plain) {
  INFO((plain ? "--plain-sockets" : "io_uring sockets"));
  TempDir keys, dir;
  auto key = make_key(keys / "fs.key"), other = make_key(keys / "other.key");
  std::filesystem::create_directory(dir / "ab");
  std::ofstream(dir / "ab/held") << "SECRET";
  std::vector<std::string> args = {"--key-file", keys / "fs.key", "--idle-timeout-ms", "800"};
  if (plain) args.push_back("--plain-sockets");
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), args, 0, keys / "log");

  // The key holder is served.
  RemoteTargetOptions good;
  good.transport = keyed(key);
  good.connections = 1;
  {
    auto target = RemoteObjectTarget::connect(t.endpoint(), good).value();
    REQUIRE(target->write("ab/new", "valid", 5, 0).is_ok());
    char back[6] = {};
    REQUIRE(target->read("ab/held", back, 6, 0).value() == 6);
    CHECK(std::string(back, 6) == "SECRET");
  }
  const auto before = snapshot(dir.path());

  // No key: every operation refused before the target reads the request.
  {
    auto ch = Transport::create("tcp").value()->connect(t.endpoint()).value();
    auto w = ch->call(static_cast<uint16_t>(ObjectOp::kWrite), encode_object_call({"ab/evil", 0, 4, 0}),
                      std::as_bytes(std::span<const char>("EVIL", 4)), {});
    CHECK(w.status().code() == Code::kPermissionDenied);
    CHECK_THAT(w.status().message(), Catch::Contains("authentication failed"));
    auto ch2 = Transport::create("tcp").value()->connect(t.endpoint()).value();
    std::vector<std::byte> buf(6);
    auto r = ch2->call(static_cast<uint16_t>(ObjectOp::kRead), encode_object_call({"ab/held", 0, 6, 0}), {}, buf);
    CHECK(r.status().code() == Code::kPermissionDenied);
    CHECK(std::all_of(buf.begin(), buf.end(), [](std::byte b) { return b == std::byte{0}; }));
  }
  // Wrong key.
  {
    auto w = Transport::create("tcp", keyed(other)).value()->connect(t.endpoint());
    CHECK(w.status().code() == Code::kPermissionDenied);
  }
  // Garbage instead of a hello: an error frame, then hung up.
  {
    int fd = raw_connect(t.endpoint());
    std::string junk(200, '\x5a');
    REQUIRE(::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL) == 200);
    auto got = recv_upto(fd, 4096);
    Status s = error_frame(got);
    CHECK(s.code() == Code::kPermissionDenied);
    CHECK_THAT(s.message(), Catch::Contains("expected a handshake hello"));
    CHECK(closed_by_peer(fd, Ms(3000)));
    ::close(fd);
  }
  // Truncated handshakes: part of a hello, then gone; a hello, then gone after the challenge;
  // a hello and half a proof, then stalled past the idle timeout.
  RecordingProxy proxy(t.endpoint());
  {
    RemoteTargetOptions via = good;
    auto target = RemoteObjectTarget::connect(proxy.endpoint(), via).value();
    REQUIRE(target->write("ab/replayed", "first", 5, 0).is_ok());
  }
  proxy.wait();
  REQUIRE(proxy.from_client.size() > 96);
  const std::string hello = proxy.from_client.substr(0, 48);
  {
    int fd = raw_connect(t.endpoint());
    REQUIRE(::send(fd, hello.data(), 20, MSG_NOSIGNAL) == 20);
    ::close(fd);
  }
  {
    int fd = raw_connect(t.endpoint());
    REQUIRE(::send(fd, hello.data(), 48, MSG_NOSIGNAL) == 48);
    CHECK(recv_upto(fd, 80).size() == 80);  // the challenge
    ::close(fd);
  }
  {
    auto start = std::chrono::steady_clock::now();
    int fd = raw_connect(t.endpoint());
    REQUIRE(::send(fd, hello.data(), 48, MSG_NOSIGNAL) == 48);
    CHECK(recv_upto(fd, 80).size() == 80);
    REQUIRE(::send(fd, proxy.from_client.data() + 48, 24, MSG_NOSIGNAL) == 24);
    CHECK(closed_by_peer(fd, Ms(5000)));
    CHECK(std::chrono::steady_clock::now() - start >= Ms(700));
    ::close(fd);
  }
  // Nothing sent at all: closed after the idle timeout.
  {
    int fd = raw_connect(t.endpoint());
    CHECK(closed_by_peer(fd, Ms(5000)));
    ::close(fd);
  }
  // Replay: what the key holder sent through the proxy (hello, proof, the write request),
  // byte for byte on a new connection. The target's nonce differs, so the proof fails and the
  // write is never read. Remove the object first so a replayed write would show.
  {
    auto target = RemoteObjectTarget::connect(t.endpoint(), good).value();
    REQUIRE(target->remove("ab/replayed").is_ok());
  }
  {
    int fd = raw_connect(t.endpoint());
    REQUIRE(::send(fd, proxy.from_client.data(), proxy.from_client.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(proxy.from_client.size()));
    auto got = recv_upto(fd, 8192);
    REQUIRE(got.size() > 80 + kFrameHeaderSize);
    CHECK(got.substr(8, 32) != proxy.from_server.substr(8, 32));  // a fresh server nonce
    Status s = error_frame(std::string_view(got).substr(80));
    CHECK(s.code() == Code::kPermissionDenied);
    CHECK_THAT(s.message(), Catch::Contains("does not match this target's key"));
    CHECK(closed_by_peer(fd, Ms(3000)));
    ::close(fd);
  }
  CHECK(snapshot(dir.path()) == before);  // no object read-modified, written or created
  CHECK_FALSE(std::filesystem::exists(dir / "ab/evil"));
  CHECK_FALSE(std::filesystem::exists(dir / "ab/replayed"));

  // Still serving its key holders; the refusals are in its log.
  {
    auto target = RemoteObjectTarget::connect(t.endpoint(), good).value();
    CHECK(target->stat("ab/new").is_ok());
  }
  CHECK(t.stop_cleanly());
  std::string log = file_text(keys / "log");
  CHECK_THAT(log, Catch::Contains("refused connection from 127.0.0.1:"));
  CHECK_THAT(log, Catch::Contains("authentication failed"));
}

TEST_CASE("stor-target refuses unauthenticated, wrong-key, garbage, truncated, stalled and replayed handshakes",
          "[transport][auth]") {
  check_target_auth(false);
  check_target_auth(true);
}
