// stor-target hardening: object paths never leave the target directory (symlinks are refused),
// and idle or stalled connections cannot lock valid clients out.
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

#include "net/object_protocol.h"
#include "net/object_service.h"
#include "net/remote_object.h"
#include "net/socket_io.h"
#include "net/transport.h"
#include "net/wire.h"
#include "stor/engine.h"
#include "tests/net/target_process.h"
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
