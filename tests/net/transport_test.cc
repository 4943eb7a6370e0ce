// Transport suite. Every TRANSPORT_CASE runs three times: over TCP with io_uring socket I/O,
// over TCP with plain send/recv, and over verbs, which skips with the reason when this machine
// has no RDMA device (or stor was built without rdma-core).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <future>
#include <random>
#include <thread>

#include "net/object_protocol.h"
#include "net/object_service.h"
#include "net/remote_object.h"
#include "net/socket_io.h"
#include "net/transport.h"
#include "net/wire.h"
#include "target_process.h"
#include "test_util.h"

using namespace stor;
using namespace stor::transport;
using stor::test::TargetProcess;
using stor::test::TempDir;

namespace {

struct Flavor {
  const char* name;
  const char* scheme;  // endpoint scheme
  bool io_uring;
};
const Flavor kTcp{"tcp", "tcp", true};
const Flavor kTcpPlain{"tcp-plain", "tcp", false};
const Flavor kVerbs{"verbs", "verbs", true};

TransportOptions options_for(const Flavor& f) {
  TransportOptions o;
  o.io_uring = f.io_uring;
  o.timeout = std::chrono::milliseconds(5000);
  return o;
}

std::string any_port(const Flavor& f) { return std::string(f.scheme) + "://127.0.0.1:0"; }

std::vector<std::string> target_args(const Flavor& f) {
  if (!f.io_uring) return {"--plain-sockets"};
  return {};
}

// Runs body for the flavor, or explains why it cannot run here.
void run_flavor(const Flavor& f, void (*body)(const Flavor&)) {
  auto t = Transport::create(f.scheme, options_for(f));
  if (!t) {
    REQUIRE(std::string(f.scheme) == "verbs");  // tcp must always work
    WARN("verbs transport skipped: " << t.status().message());
    return;
  }
  body(f);
}

std::span<const std::byte> bytes(const std::vector<char>& v) { return std::as_bytes(std::span<const char>(v)); }

}  // namespace

#define TRANSPORT_CASE(fn, title)                                                    \
  static void fn(const Flavor&);                                                     \
  TEST_CASE(title " [tcp]", "[transport][tcp]") { run_flavor(kTcp, fn); }           \
  TEST_CASE(title " [tcp-plain]", "[transport][tcp]") { run_flavor(kTcpPlain, fn); } \
  TEST_CASE(title " [verbs]", "[transport][verbs]") { run_flavor(kVerbs, fn); }      \
  static void fn(const Flavor& flavor)

// ---------------------------------------------------------------------------------------------
// Endpoints and frames

TEST_CASE("endpoint URIs parse and reject junk", "[transport]") {
  auto ep = Endpoint::parse("tcp://127.0.0.1:7000");
  REQUIRE(ep.is_ok());
  CHECK(ep->scheme == "tcp");
  CHECK(ep->host == "127.0.0.1");
  CHECK(ep->port == 7000);
  CHECK(ep->to_string() == "tcp://127.0.0.1:7000");
  CHECK(Endpoint::parse("verbs://node1:18515").is_ok());
  for (const char* bad : {"", "127.0.0.1:1", "udp://h:1", "tcp://h", "tcp://h:", "tcp://h:70000", "tcp://h:1x",
                          "tcp://:5", "tcp://a/b:5"}) {
    INFO(bad);
    auto r = Endpoint::parse(bad);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("frame headers round-trip and bad ones are Corruption", "[transport]") {
  FrameHeader h;
  h.opcode = 7;
  h.flags = kFrameReply;
  h.request_id = 0x1122334455667788ull;
  h.control_len = 300;
  h.status = static_cast<uint32_t>(Code::kNotFound);
  h.payload_len = 1 << 20;
  auto b = encode_frame_header(h);
  auto d = decode_frame_header(b, "peer");
  REQUIRE(d.is_ok());
  CHECK(d->opcode == 7);
  CHECK(d->request_id == h.request_id);
  CHECK(d->control_len == 300);
  CHECK(d->payload_len == (1u << 20));
  CHECK(d->status == h.status);

  auto expect_corrupt = [&](FrameBytes x, const char* what) {
    auto r = decode_frame_header(x, "peer");
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK_THAT(r.status().message(), Catch::Contains(what));
  };
  auto flipped = b;
  flipped[0] ^= std::byte{1};
  expect_corrupt(flipped, "magic");
  flipped = b;
  flipped[17] ^= std::byte{1};
  expect_corrupt(flipped, "checksum");
  FrameHeader big = h;
  big.payload_len = kMaxPayloadLimit + 1;
  expect_corrupt(encode_frame_header(big), "payload length");
  big = h;
  big.control_len = kMaxControlBytes + 1;
  expect_corrupt(encode_frame_header(big), "control length");
  big = h;
  big.status = 999;
  expect_corrupt(encode_frame_header(big), "status code");
}

TEST_CASE("object names cannot escape the target directory", "[transport]") {
  for (const char* ok : {"a", "ost0/12/345.0.1", "x.y-z_1"}) CHECK(validate_object_name(ok).is_ok());
  for (std::string bad : {std::string(""), std::string("/etc/passwd"), std::string("../x"), std::string("a/../../x"),
                          std::string("a//b"), std::string("a/./b"), std::string("a/"), std::string("a\0b", 3),
                          std::string(1025, 'x')}) {
    INFO(bad);
    CHECK(validate_object_name(bad).code() == Code::kInvalidArgument);
  }
  ObjectCall c{"ab/cd", 1, 2, 3};
  auto d = decode_object_call(encode_object_call(c));
  REQUIRE(d.is_ok());
  CHECK(d->name == "ab/cd");
  CHECK(d->offset == 1);
  CHECK(d->length == 2);
  CHECK(d->flags == 3);
  auto enc = encode_object_call(c);
  CHECK(decode_object_call(enc.substr(0, enc.size() - 1)).status().code() == Code::kCorruption);
  CHECK(decode_object_call("short").status().code() == Code::kCorruption);
}

TEST_CASE("verbs: no device gives a clear Unavailable", "[transport][verbs]") {
  auto t = Transport::create("verbs");
  if (t.is_ok()) {
    WARN("an RDMA device exists here: verbs runs for real");
    return;
  }
  CHECK(t.status().code() == Code::kUnavailable);
  // Exactly this when the device list is empty; a kernel without RDMA support adds why.
  if (verbs_compiled())
    CHECK_THAT(t.status().message(), Catch::StartsWith("no RDMA device found (ibv_get_device_list returned 0 devices"));
  else
    CHECK_THAT(t.status().message(), Catch::Contains("not built"));
}

// ---------------------------------------------------------------------------------------------
// RPC over an in-process listener

TRANSPORT_CASE(rpc_roundtrip, "RPC carries control and bulk bytes both ways") {
  auto t = Transport::create(flavor.scheme, options_for(flavor)).value();
  std::atomic<int> calls{0};
  auto listener = t->listen(any_port(flavor), [&](const ServerCall& c) -> ServerResult {
                     ++calls;
                     if (c.opcode == 1) {  // echo: control reversed, payload copied back twice as far as room allows
                       std::string ctl(c.control.rbegin(), c.control.rend());
                       size_t n = std::min(c.payload.size(), c.reply_buffer.size());
                       if (n) std::memcpy(c.reply_buffer.data(), c.payload.data(), n);  // data() may be null when empty
                       return {Status(), ctl, n};
                     }
                     if (c.opcode == 2) return {Status::NotFound("no such thing"), {}, 0};
                     if (c.opcode == 3) return {Status(), {}, c.reply_buffer.size() + 1};  // buggy handler
                     return {Status::Unsupported("opcode"), {}, 0};
                   }).value();
  auto ch = t->connect(listener->endpoint()).value();
  REQUIRE(ch->max_payload() == options_for(flavor).max_payload);

  for (size_t n : {size_t{0}, size_t{1}, size_t{4095}, size_t{1} << 20, size_t{ch->max_payload()}}) {
    INFO(n);
    auto data = stor::test::pattern(n, n + 1);
    std::vector<std::byte> back(n);
    auto r = ch->call(1, "abc", bytes(data), back);
    REQUIRE(r.is_ok());
    CHECK(r->control == "cba");
    CHECK(r->payload_len == n);
    CHECK((n == 0 || std::memcmp(back.data(), data.data(), n) == 0));  // data() may be null when n == 0
  }
  // The reply is cut to the caller's buffer: the server learns the capacity.
  auto data = stor::test::pattern(1000);
  std::vector<std::byte> small(10);
  auto r = ch->call(1, "", bytes(data), small);
  REQUIRE(r.is_ok());
  CHECK(r->payload_len == 10);

  // A server-side error travels as its status and leaves the channel usable.
  auto e = ch->call(2, "", {}, {});
  REQUIRE_FALSE(e.is_ok());
  CHECK(e.status().code() == Code::kNotFound);
  CHECK_THAT(e.status().message(), Catch::Contains("no such thing"));
  CHECK_FALSE(ch->broken());
  auto bug = ch->call(3, "", {}, small);
  CHECK(bug.status().code() == Code::kInternal);
  CHECK(ch->call(1, "x", {}, {}).is_ok());

  // Oversized calls are refused before anything is sent.
  std::vector<char> huge(ch->max_payload() + 1);
  CHECK(ch->call(1, "", bytes(huge), {}).status().code() == Code::kInvalidArgument);
  CHECK_FALSE(ch->broken());

  // Several channels in parallel, each on its own server thread.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      auto c = t->connect(listener->endpoint());
      if (!c) return;
      auto d = stor::test::pattern(65536, i);
      std::vector<std::byte> b(65536);
      for (int k = 0; k < 20; ++k) {
        auto rr = (*c)->call(1, "q", bytes(d), b);
        if (!rr || std::memcmp(b.data(), d.data(), d.size()) != 0) return;
      }
      ++ok;
    });
  for (auto& th : threads) th.join();
  CHECK(ok == 4);
  listener->stop();
  // After stop the connection is gone.
  auto after = ch->call(1, "", {}, {});
  REQUIRE_FALSE(after.is_ok());
  CHECK(after.status().code() == Code::kUnavailable);
  CHECK(ch->broken());
}

TRANSPORT_CASE(rpc_timeout, "a call past its deadline is Timeout and the channel is broken") {
  auto opts = options_for(flavor);
  opts.timeout = std::chrono::milliseconds(300);
  auto t = Transport::create(flavor.scheme, opts).value();
  auto listener = t->listen(any_port(flavor), [](const ServerCall& c) -> ServerResult {
                     if (c.opcode == 9) std::this_thread::sleep_for(std::chrono::milliseconds(900));
                     return {};
                   }).value();
  auto ch = t->connect(listener->endpoint()).value();
  CHECK(ch->call(1, "", {}, {}).is_ok());
  auto start = std::chrono::steady_clock::now();
  auto r = ch->call(9, "", {}, {});
  auto took = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kTimeout);
  CHECK(took < std::chrono::milliseconds(850));
  CHECK(ch->broken());
  CHECK(ch->call(1, "", {}, {}).status().code() == Code::kUnavailable);
  // A fresh connection works.
  CHECK(t->connect(listener->endpoint()).value()->call(1, "", {}, {}).is_ok());
}

TRANSPORT_CASE(rpc_pipelined, "pipelined calls come back in order, one reply each") {
  auto opts = options_for(flavor);
  opts.timeout = std::chrono::milliseconds(1000);
  auto t = Transport::create(flavor.scheme, opts).value();
  auto listener = t->listen(any_port(flavor), [](const ServerCall& c) -> ServerResult {
                     if (c.opcode == 2) return {Status::NotFound("no such thing: " + std::string(c.control)), {}, 0};
                     if (c.opcode == 9) std::this_thread::sleep_for(std::chrono::milliseconds(1500));
                     // The whole reply buffer filled with the control's first byte; control echoed.
                     if (!c.reply_buffer.empty() && !c.control.empty())
                       std::memset(c.reply_buffer.data(), c.control[0], c.reply_buffer.size());
                     return {Status(), std::string(c.control), c.reply_buffer.size()};
                   }).value();
  auto ch = t->connect(listener->endpoint()).value();
  CHECK(ch->finish_call().status().code() == Code::kInvalidArgument);  // nothing outstanding

  // Ten calls of different reply sizes on the wire at once, one of them failing on the server.
  constexpr int kCalls = 10;
  std::vector<std::vector<std::byte>> bufs;
  for (int i = 0; i < kCalls; ++i) bufs.emplace_back(static_cast<size_t>(i) * 100000 + 1);
  for (int i = 0; i < kCalls; ++i) {
    std::string ctl(1, static_cast<char>('a' + i));
    REQUIRE(ch->start_call(i == 3 ? 2 : 1, ctl, {}, bufs[i]).is_ok());
  }
  CHECK(ch->outstanding_calls() == kCalls);
  // Refused while calls are outstanding, changing nothing: a request payload, a plain call (TCP).
  auto data = stor::test::pattern(100, 1);
  CHECK(ch->start_call(1, "p", bytes(data), {}).code() == Code::kInvalidArgument);
  if (std::string(flavor.scheme) == "tcp") CHECK(ch->call(1, "x", {}, {}).status().code() == Code::kInvalidArgument);
  CHECK(ch->outstanding_calls() == kCalls);
  for (int i = 0; i < kCalls; ++i) {
    INFO("call " << i);
    auto r = ch->finish_call();
    if (i == 3) {
      REQUIRE_FALSE(r.is_ok());
      CHECK(r.status().code() == Code::kNotFound);
      CHECK_THAT(r.status().message(), Catch::Contains("no such thing: d"));
      continue;
    }
    REQUIRE(r.is_ok());
    CHECK(r->control == std::string(1, static_cast<char>('a' + i)));
    REQUIRE(r->payload_len == bufs[i].size());
    CHECK(std::all_of(bufs[i].begin(), bufs[i].end(), [&](std::byte b) { return b == std::byte('a' + i); }));
  }
  CHECK(ch->outstanding_calls() == 0);
  CHECK_FALSE(ch->broken());
  // A call with a payload is fine again once nothing is outstanding.
  std::vector<std::byte> back(8);
  REQUIRE(ch->start_call(1, "z", bytes(data), back).is_ok());
  CHECK(ch->finish_call().value().payload_len == 8);

  // At most kMaxOutstandingCalls.
  for (size_t i = 0; i < Channel::kMaxOutstandingCalls; ++i) REQUIRE(ch->start_call(1, "m", {}, {}).is_ok());
  CHECK(ch->start_call(1, "m", {}, {}).code() == Code::kInvalidArgument);
  for (size_t i = 0; i < Channel::kMaxOutstandingCalls; ++i) REQUIRE(ch->finish_call().is_ok());

  // A transport failure (here a reply later than the deadline) fails every outstanding call.
  REQUIRE(ch->start_call(9, "s", {}, {}).is_ok());
  REQUIRE(ch->start_call(1, "t", {}, {}).is_ok());
  REQUIRE(ch->start_call(1, "u", {}, {}).is_ok());
  CHECK(ch->finish_call().status().code() == Code::kTimeout);
  CHECK(ch->broken());
  CHECK(ch->finish_call().status().code() == Code::kUnavailable);
  CHECK(ch->finish_call().status().code() == Code::kUnavailable);
  CHECK(ch->outstanding_calls() == 0);
  CHECK(ch->start_call(1, "v", {}, {}).code() == Code::kUnavailable);
}

TRANSPORT_CASE(connect_refused, "connecting to nobody is Unavailable") {
  auto t = Transport::create(flavor.scheme, options_for(flavor)).value();
  // Bind a port and close it again: nothing listens there now.
  auto l = t->listen(any_port(flavor), [](const ServerCall&) { return ServerResult{}; }).value();
  std::string ep = l->endpoint();
  l->stop();
  l.reset();
  auto c = t->connect(ep);
  REQUIRE_FALSE(c.is_ok());
  CHECK(c.status().code() == Code::kUnavailable);
  CHECK_THAT(c.status().message(), Catch::Contains(ep));
}

// ---------------------------------------------------------------------------------------------
// A file striped over two stor-target processes

namespace {

// RAID-0 over targets: stripe k of the file is stripe k / N of object `name` on target k % N.
class StripedFile {
 public:
  StripedFile(std::vector<std::shared_ptr<RemoteObjectTarget>> targets, std::string name, uint64_t stripe)
      : targets_(std::move(targets)), name_(std::move(name)), stripe_(stripe) {}

  Status write(const char* buf, size_t len, uint64_t offset) {
    return run(len, offset, [&](RemoteObjectTarget& t, size_t at, size_t n, uint64_t obj_off, IoCallback cb) {
      t.write_async(name_, buf + at, n, obj_off, std::move(cb));
    });
  }
  Status read(char* buf, size_t len, uint64_t offset) {
    return run(len, offset, [&](RemoteObjectTarget& t, size_t at, size_t n, uint64_t obj_off, IoCallback cb) {
      t.read_async(name_, buf + at, n, obj_off, [cb = std::move(cb), n](Result<size_t> r) {
        if (r.is_ok() && *r != n) return cb(Status::OutOfRange("short read from a stripe object"));
        cb(std::move(r));
      });
    });
  }

 private:
  template <typename Issue>
  Status run(size_t len, uint64_t offset, Issue issue) {
    const uint64_t n = targets_.size();
    struct Join {
      std::mutex mu;
      std::condition_variable cv;
      size_t left = 0;
      Status first;
    } join;
    std::vector<std::tuple<size_t, size_t, uint64_t, size_t>> pieces;  // at, len, object offset, target
    for (size_t at = 0; at < len;) {
      uint64_t off = offset + at;
      uint64_t k = off / stripe_, in = off % stripe_;
      size_t take = static_cast<size_t>(std::min<uint64_t>(stripe_ - in, len - at));
      pieces.emplace_back(at, take, (k / n) * stripe_ + in, static_cast<size_t>(k % n));
      at += take;
    }
    join.left = pieces.size();
    for (auto& [at, take, obj_off, target] : pieces)
      issue(*targets_[target], at, take, obj_off, [&join](Result<size_t> r) {
        std::lock_guard lk(join.mu);
        if (!r && join.first.is_ok()) join.first = r.status();
        if (--join.left == 0) join.cv.notify_all();
      });
    std::unique_lock lk(join.mu);
    join.cv.wait(lk, [&] { return join.left == 0; });
    return join.first;
  }

  std::vector<std::shared_ptr<RemoteObjectTarget>> targets_;
  std::string name_;
  uint64_t stripe_;
};

RemoteTargetOptions remote_options(const Flavor& f) {
  RemoteTargetOptions o;
  o.transport = options_for(f);
  o.transport.max_payload = 192 * 1024;  // small, so large pieces are split into several calls
  o.connections = 3;
  return o;
}

}  // namespace

TRANSPORT_CASE(striped_file, "a file striped over two stor-target processes reads back exactly") {
  TempDir d0, d1;
  TargetProcess p0(STOR_TARGET_PATH, any_port(flavor), d0.path(), target_args(flavor));
  TargetProcess p1(STOR_TARGET_PATH, any_port(flavor), d1.path(), target_args(flavor));
  CHECK(Endpoint::parse(p0.endpoint()).value().port != 0);
  auto t0 = RemoteObjectTarget::connect(p0.endpoint(), remote_options(flavor)).value();
  auto t1 = RemoteObjectTarget::connect(p1.endpoint(), remote_options(flavor)).value();

  constexpr uint64_t kStripe = 256 * 1024;
  constexpr size_t kSize = 6 * 1024 * 1024 + 12345;
  StripedFile file({t0, t1}, "dir/file.0", kStripe);
  auto reference = stor::test::pattern(kSize, 42);

  // Write in random-length pieces, a few of them concurrently.
  std::mt19937_64 rng(7);
  std::vector<std::future<Status>> writes;
  for (size_t at = 0; at < kSize;) {
    size_t n = std::min<size_t>(kSize - at, 1 + rng() % (700 * 1024));
    writes.push_back(std::async(std::launch::async, [&, at, n] { return file.write(reference.data() + at, n, at); }));
    at += n;
    if (writes.size() == 4) {
      for (auto& w : writes) REQUIRE(w.get().is_ok());
      writes.clear();
    }
  }
  for (auto& w : writes) REQUIRE(w.get().is_ok());

  // The objects hold exactly their stripes.
  uint64_t stripes = (kSize + kStripe - 1) / kStripe;
  uint64_t obj0 = 0, obj1 = 0;
  for (uint64_t k = 0; k < stripes; ++k) (k % 2 ? obj1 : obj0) += std::min<uint64_t>(kStripe, kSize - k * kStripe);
  CHECK(t0->stat("dir/file.0").value().size == obj0);
  CHECK(t1->stat("dir/file.0").value().size == obj1);
  REQUIRE(t0->sync("dir/file.0", true).is_ok());
  REQUIRE(t1->sync("dir/file.0", false).is_ok());

  // Random reads compare against the flat reference.
  std::vector<char> got;
  for (int i = 0; i < 150; ++i) {
    uint64_t off = rng() % kSize;
    size_t n = std::min<size_t>(kSize - off, 1 + rng() % (1536 * 1024));
    got.assign(n, 0);
    INFO("read " << n << " at " << off);
    REQUIRE(file.read(got.data(), n, off).is_ok());
    REQUIRE(std::memcmp(got.data(), reference.data() + off, n) == 0);
  }
  std::vector<char> whole(kSize);
  REQUIRE(file.read(whole.data(), kSize, 0).is_ok());
  CHECK(whole == reference);

  // Object reads past the end are short; truncate and remove work remotely.
  std::vector<char> tail(100);
  CHECK(t0->read("dir/file.0", tail.data(), 100, obj0 - 40).value() == 40);
  CHECK(t0->read("dir/file.0", tail.data(), 100, obj0 + 10).value() == 0);
  auto listed = t0->list().value();
  REQUIRE(listed.size() == 1);
  CHECK(listed[0].name == "dir/file.0");
  CHECK(listed[0].size == obj0);
  REQUIRE(t1->truncate("dir/file.0", 1000).is_ok());
  CHECK(t1->stat("dir/file.0").value().size == 1000);
  REQUIRE(t0->remove("dir/file.0").is_ok());
  CHECK(t0->stat("dir/file.0").status().code() == Code::kNotFound);
  CHECK(t0->remove("dir/file.0").code() == Code::kNotFound);
  CHECK(t0->list().value().empty());
  // Listing pages through many objects (a 4 KiB max_payload: about ten pages).
  for (int i = 0; i < 600; ++i) REQUIRE(t1->truncate("many/object-with-a-long-name-" + std::to_string(i), i).is_ok());
  auto small_pages = remote_options(flavor);
  small_pages.transport.max_payload = 4096;
  auto many = RemoteObjectTarget::connect(p1.endpoint(), small_pages).value()->list().value();
  REQUIRE(many.size() == 601);
  CHECK(std::is_sorted(many.begin(), many.end(), [](auto& a, auto& b) { return a.name < b.name; }));

  CHECK(p0.stop_cleanly());
  CHECK(p1.stop_cleanly());
}

TRANSPORT_CASE(pipelined_reads, "reads split into pipelined frames, cached or through the engine, read back exactly") {
  TempDir dir;
  auto engine = IoEngine::create().value();
  constexpr size_t kSize = 1024 * 1024 + 100;
  auto reference = stor::test::pattern(kSize, 5);
  for (bool inline_reads : {true, false}) {
    ObjectServiceOptions so;
    so.inline_cached_reads = inline_reads;
    auto svc = ObjectService::create(dir.path(), engine.get(), so).value();
    auto t = Transport::create(flavor.scheme, options_for(flavor)).value();
    auto listener = t->listen(any_port(flavor), [&](const ServerCall& c) { return svc->handle(c); }).value();
    for (unsigned pipeline : {1u, 4u, 16u}) {
      INFO((inline_reads ? "cached reads inline" : "every read through the engine") << ", pipeline " << pipeline);
      RemoteTargetOptions ro;
      ro.transport = options_for(flavor);
      ro.transport.max_payload = 64 * 1024;  // a 2 MiB read is 32 frames
      ro.connections = 1;                    // every read on the same channel: it must stay in step
      ro.pipeline = pipeline;
      auto target = RemoteObjectTarget::connect(listener->endpoint(), ro).value();
      REQUIRE(target->write("obj", reference.data(), kSize, 0).value() == kSize);
      // Past the end: the frame holding the end is short, the ones asked for after it are empty.
      std::vector<char> got(2 * kSize, 'x');
      REQUIRE(target->read("obj", got.data(), got.size(), 0).value() == kSize);
      CHECK(std::memcmp(got.data(), reference.data(), kSize) == 0);
      // Unaligned ranges, inside and across the end.
      for (auto [off, n] : {std::pair<size_t, size_t>{1, 300000}, {65535, 65537}, {kSize - 70000, 200000}, {kSize, 10}}) {
        INFO("read " << n << " at " << off);
        size_t want = off >= kSize ? 0 : std::min(n, kSize - off);
        REQUIRE(target->read("obj", got.data(), n, off).value() == want);
        CHECK(std::memcmp(got.data(), reference.data() + std::min(off, kSize), want) == 0);
      }
      // Failures of every frame leave the channel usable: a missing object, a bad name.
      CHECK(target->read("missing", got.data(), 300000, 0).status().code() == Code::kNotFound);
      CHECK(target->read("missing", got.data(), 0, 0).status().code() == Code::kNotFound);
      CHECK(target->read("obj", got.data(), 0, 0).value() == 0);
      REQUIRE(target->read("obj", got.data(), kSize, 0).value() == kSize);
      CHECK(std::memcmp(got.data(), reference.data(), kSize) == 0);
      REQUIRE(target->remove("obj").is_ok());
    }
    listener->stop();
  }
}

TEST_CASE("reads of objects not in the page cache go through the engine", "[transport]") {
  TempDir dir;
  auto engine = IoEngine::create().value();
  auto svc = ObjectService::create(dir.path(), engine.get()).value();
  constexpr size_t kSize = 512 * 1024;
  auto reference = stor::test::pattern(kSize, 11);
  auto call = [&](ObjectOp op, const ObjectCall& c, std::span<const std::byte> payload, std::span<std::byte> reply) {
    std::string control = encode_object_call(c);
    return svc->handle(ServerCall{static_cast<uint16_t>(op), control, payload, reply});
  };
  std::vector<std::byte> got(kSize + 4096);
  REQUIRE(call(ObjectOp::kWrite, {"o", 0, kSize, 0}, bytes(reference), {}).status.is_ok());
  REQUIRE(call(ObjectOp::kSync, {"o", 0, 0, 0}, {}, {}).status.is_ok());
  // Cached (just written): copied inline, the engine sees no read.
  uint64_t before = engine->stats().bytes_read;
  auto r = call(ObjectOp::kRead, {"o", 0, got.size(), 0}, {}, got);
  REQUIRE(r.status.is_ok());
  CHECK(r.payload_len == kSize);
  CHECK(std::memcmp(got.data(), reference.data(), kSize) == 0);
  CHECK(engine->stats().bytes_read == before);
  // Dropped from the page cache: the engine reads it (unless the file system keeps it cached,
  // as tmpfs does: then the inline path serves it again).
  int fd = ::open((dir / "o").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) == 0);
  // Residency by mincore (a probing read would start readahead and cache it again).
  void* map = ::mmap(nullptr, kSize, PROT_READ, MAP_SHARED, fd, 0);
  REQUIRE(map != MAP_FAILED);
  std::vector<unsigned char> resident((kSize + 4095) / 4096);
  REQUIRE(::mincore(map, kSize, resident.data()) == 0);
  bool cached = std::any_of(resident.begin(), resident.end(), [](unsigned char c) { return c & 1; });
  ::munmap(map, kSize);
  ::close(fd);
  std::fill(got.begin(), got.end(), std::byte{0});
  r = call(ObjectOp::kRead, {"o", 0, got.size(), 0}, {}, got);
  REQUIRE(r.status.is_ok());
  CHECK(r.payload_len == kSize);
  CHECK(std::memcmp(got.data(), reference.data(), kSize) == 0);
  if (cached) WARN("the file system kept the object cached after POSIX_FADV_DONTNEED; engine path not exercised");
  else CHECK(engine->stats().bytes_read > before);
}

TRANSPORT_CASE(target_errors, "bad names, missing objects and a killed target map to clear statuses") {
  TempDir dir;
  TargetProcess p(STOR_TARGET_PATH, any_port(flavor), dir.path(), target_args(flavor));
  auto t = RemoteObjectTarget::connect(p.endpoint(), remote_options(flavor)).value();
  char buf[64] = {};

  // Client-side name check.
  for (const char* bad : {"../escape", "/abs", "a/../../b", ""}) {
    INFO(bad);
    CHECK(t->write(bad, buf, 10, 0).status().code() == Code::kInvalidArgument);
    CHECK(t->read(bad, buf, 10, 0).status().code() == Code::kInvalidArgument);
  }
  // The server checks again: a raw channel bypassing the client check.
  auto transport = Transport::create(flavor.scheme, options_for(flavor)).value();
  auto raw = transport->connect(p.endpoint()).value();
  auto r = raw->call(static_cast<uint16_t>(ObjectOp::kWrite), encode_object_call({"../../etc/x", 0, 4, 0}),
                     std::as_bytes(std::span<const char>(buf, 4)), {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("'..'"));
  CHECK(raw->call(static_cast<uint16_t>(ObjectOp::kRead), "garbage", {}, {}).status().code() == Code::kCorruption);
  CHECK(raw->call(77, encode_object_call({"x", 0, 0, 0}), {}, {}).status().code() == Code::kUnsupported);
  CHECK_FALSE(raw->broken());

  CHECK(t->read("missing", buf, 10, 0).status().code() == Code::kNotFound);
  CHECK(t->read("missing", buf, 0, 0).status().code() == Code::kNotFound);
  CHECK(t->stat("missing").status().code() == Code::kNotFound);
  REQUIRE(t->write("present", "hello", 5, 0).is_ok());

  // Kill the target: calls fail with Unavailable, on the open connection and on reconnect.
  p.kill(SIGKILL);
  std::promise<Result<size_t>> got;
  t->read_async("present", buf, 5, 0, [&](Result<size_t> res) { got.set_value(std::move(res)); });
  auto res = got.get_future().get();
  REQUIRE_FALSE(res.is_ok());
  CHECK(res.status().code() == Code::kUnavailable);
  for (int i = 0; i < 4; ++i) {  // every pooled connection, then fresh ones
    auto again = t->read("present", buf, 5, 0);
    REQUIRE_FALSE(again.is_ok());
    CHECK(again.status().code() == Code::kUnavailable);
  }
  auto after = raw->call(static_cast<uint16_t>(ObjectOp::kStat), encode_object_call({"present", 0, 0, 0}), {}, {});
  CHECK(after.status().code() == Code::kUnavailable);
}

// ---------------------------------------------------------------------------------------------
// Frame corruption on a TCP stream (a hand-made peer; verbs frames cannot be forged this way)

namespace {

// Listens on 127.0.0.1, accepts one connection and lets `script` talk to it.
class FakePeer {
 public:
  explicit FakePeer(std::function<void(int fd)> script) {
    fd_ = tcp_listen("127.0.0.1", 0).value();
    port_ = bound_port(fd_).value();
    thread_ = std::thread([this, script = std::move(script)] {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c >= 0) {
        script(c);
        ::close(c);
      }
    });
  }
  ~FakePeer() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
};

void read_request(int fd) {
  FrameBytes hb;
  if (::recv(fd, hb.data(), hb.size(), MSG_WAITALL) != static_cast<ssize_t>(hb.size())) return;
  auto h = decode_frame_header(hb, "test");
  if (!h) return;
  std::vector<char> rest(h->control_len + h->payload_len);
  if (!rest.empty()) ::recv(fd, rest.data(), rest.size(), MSG_WAITALL);
}

}  // namespace

TEST_CASE("a corrupt reply frame is Corruption", "[transport][tcp]") {
  for (bool uring : {true, false}) {
    INFO("io_uring " << uring);
    TransportOptions o;
    o.io_uring = uring;
    o.timeout = std::chrono::milliseconds(2000);
    auto t = Transport::create("tcp", o).value();

    {  // garbage instead of a header
      FakePeer peer([](int fd) {
        read_request(fd);
        std::string junk(kFrameHeaderSize, 'Z');
        ::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
        char c;
        ::recv(fd, &c, 1, 0);  // wait for the client to hang up
      });
      auto ch = t->connect(peer.endpoint()).value();
      auto r = ch->call(1, "x", {}, {});
      REQUIRE_FALSE(r.is_ok());
      CHECK(r.status().code() == Code::kCorruption);
      CHECK_THAT(r.status().message(), Catch::Contains("magic"));
      CHECK(ch->broken());
      ch.reset();
    }
    {  // a well-formed header announcing more payload than the caller's buffer
      FakePeer peer([](int fd) {
        read_request(fd);
        FrameHeader h;
        h.flags = kFrameReply;
        h.opcode = 1;
        h.request_id = 1;
        h.payload_len = 1 << 20;
        auto b = encode_frame_header(h);
        ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
        char c;
        ::recv(fd, &c, 1, 0);
      });
      auto ch = t->connect(peer.endpoint()).value();
      std::vector<std::byte> small(16);
      auto r = ch->call(1, "", {}, small);
      CHECK(r.status().code() == Code::kCorruption);
      ch.reset();
    }
    {  // wrong request id
      FakePeer peer([](int fd) {
        read_request(fd);
        FrameHeader h;
        h.flags = kFrameReply;
        h.opcode = 1;
        h.request_id = 99;
        auto b = encode_frame_header(h);
        ::send(fd, b.data(), b.size(), MSG_NOSIGNAL);
        char c;
        ::recv(fd, &c, 1, 0);
      });
      auto ch = t->connect(peer.endpoint()).value();
      auto r = ch->call(1, "", {}, {});
      CHECK(r.status().code() == Code::kCorruption);
      CHECK_THAT(r.status().message(), Catch::Contains("request id"));
      ch.reset();
    }
    {  // the peer hangs up mid-frame
      FakePeer peer([](int fd) {
        read_request(fd);
        ::send(fd, "STRT", 4, MSG_NOSIGNAL);
      });
      auto ch = t->connect(peer.endpoint()).value();
      CHECK(ch->call(1, "", {}, {}).status().code() == Code::kUnavailable);
      ch.reset();
    }
    {  // the peer never answers: Timeout
      o.timeout = std::chrono::milliseconds(200);
      auto t2 = Transport::create("tcp", o).value();
      FakePeer peer([](int fd) {
        char c[256];
        while (::recv(fd, c, sizeof c, 0) > 0) {  // swallow the request, answer nothing, until the client hangs up
        }
      });
      auto ch = t2->connect(peer.endpoint()).value();
      CHECK(ch->call(1, "", {}, {}).status().code() == Code::kTimeout);
      ch.reset();
    }
  }
}

TEST_CASE("stor-target answers a corrupt request with Corruption and keeps serving", "[transport][tcp]") {
  TempDir dir;
  TargetProcess p(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path());
  auto ep = Endpoint::parse(p.endpoint()).value();
  auto io = SocketIo::create(true);
  int fd = tcp_connect(*io, ep.host, ep.port, deadline_after(std::chrono::seconds(5)), p.endpoint()).value();
  FrameHeader h;
  h.opcode = 1;
  h.request_id = 5;
  h.payload_len = kMaxPayloadLimit + 1;  // out of bounds: must not make the target allocate it
  auto b = encode_frame_header(h);
  REQUIRE(io->send_all(fd, b.data(), b.size(), kNoDeadline).is_ok());
  FrameBytes rb;
  REQUIRE(io->recv_all(fd, rb.data(), rb.size(), deadline_after(std::chrono::seconds(5))).is_ok());
  auto rh = decode_frame_header(rb, "target");
  REQUIRE(rh.is_ok());
  CHECK(rh->status == static_cast<uint32_t>(Code::kCorruption));
  std::string why(rh->control_len, '\0');
  REQUIRE(io->recv_all(fd, why.data(), why.size(), deadline_after(std::chrono::seconds(5))).is_ok());
  CHECK_THAT(why, Catch::Contains("payload length"));
  char c;
  CHECK(io->recv_all(fd, &c, 1, deadline_after(std::chrono::seconds(5))).code() == Code::kUnavailable);  // hung up
  ::close(fd);

  // Random bytes on another connection, then a real client still works.
  fd = tcp_connect(*io, ep.host, ep.port, deadline_after(std::chrono::seconds(5)), p.endpoint()).value();
  auto junk = stor::test::pattern(4096, 3);
  (void)io->send_all(fd, junk.data(), junk.size(), deadline_after(std::chrono::seconds(5)));
  ::close(fd);
  auto t = RemoteObjectTarget::connect(p.endpoint()).value();
  REQUIRE(t->write("ok", "data", 4, 0).is_ok());
  char back[4];
  CHECK(t->read("ok", back, 4, 0).value() == 4);
  CHECK(std::memcmp(back, "data", 4) == 0);

  auto ch = Transport::create("tcp").value()->connect(p.endpoint()).value();
  CHECK(ch->call(static_cast<uint16_t>(ObjectOp::kStat), encode_object_call({"ok", 0, 0, 0}), {}, {}).is_ok());
  CHECK(p.stop_cleanly());
}

TEST_CASE("stor-target enforces its --max-payload", "[transport][tcp]") {
  TempDir dir;
  TargetProcess p(STOR_TARGET_PATH, "tcp://127.0.0.1:0", dir.path(), {"--max-payload", "65536"});
  auto ch = Transport::create("tcp").value()->connect(p.endpoint()).value();
  std::vector<char> big(65537);
  // Too large a reply buffer: refused, and the connection stays usable.
  std::vector<std::byte> reply(65537);
  auto r = ch->call(static_cast<uint16_t>(ObjectOp::kRead), encode_object_call({"x", 0, 65537, 0}), {}, reply);
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains("limit of 65536"));
  CHECK_FALSE(ch->broken());
  // Too large a request payload: refused unread, so the server hangs up.
  auto w = ch->call(static_cast<uint16_t>(ObjectOp::kWrite), encode_object_call({"x", 0, big.size(), 0}), bytes(big), {});
  CHECK(w.status().code() == Code::kInvalidArgument);
  CHECK(ch->broken());
  // Within the limit all is well.
  RemoteTargetOptions o;
  o.transport.max_payload = 65536;
  auto t = RemoteObjectTarget::connect(p.endpoint(), o).value();
  REQUIRE(t->write("x", big.data(), big.size(), 0).value() == big.size());
  CHECK(t->read("x", big.data(), big.size(), 0).value() == big.size());
  CHECK(p.stop_cleanly());
}

TEST_CASE("stor-target refuses negative, junk and overflowing numbers", "[transport][args]") {
  stor::test::TempDir dir;
  for (const char* bad : {"--max-payload -1", "--timeout-ms ' 5'", "--max-connections 12abc",
                          "--idle-timeout-ms 99999999999999999999"}) {
    INFO(bad);
    // Exit 2 before binding anything (strtoull used to wrap "-1" to an unlimited payload).
    auto r = stor::test::run_command(std::string(STOR_TARGET_PATH) + " --listen tcp://127.0.0.1:0 --dir " + dir.path() +
                                     " " + bad + " 2>&1");
    CHECK(r.exit_code == 2);
    CHECK(r.out.find("bad argument") != std::string::npos);
  }
}
