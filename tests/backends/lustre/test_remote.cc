// The lustre:// backend with remote object targets: two stor-target processes on 127.0.0.1
// serve the targets, and a striped file written and read through stor::Store matches a flat
// reference byte for byte.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <thread>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "net/remote_object.h"
#include "stor/store.h"
#include "test_util.h"
#include "tests/net/target_process.h"

using namespace stor;
using namespace stor::lustre;

TEST_CASE("a lustre file system on two remote stor-targets stripes over the transport", "[lustre][remote]") {
  stor::test::TempDir dir, ost0, ost1;
  stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path());
  stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path());
  std::string root = dir.path() + "/fs";
  MkfsOptions o;
  o.target_endpoints = {p0.endpoint(), p1.endpoint()};
  o.targets = 2;
  o.default_layout = {StripeSpec{-1, 128 << 10}};
  REQUIRE(mkfs(root, o).is_ok());

  auto store = Store::create().value();
  std::string uri = "lustre://" + root + "/data.bin";
  constexpr size_t kSize = (3 << 20) + 4321;
  auto reference = stor::test::pattern(kSize, 5);
  {
    auto f = store->open(uri, kOpenWrite | kOpenCreate).value();
    // Uneven pieces so writes straddle stripe boundaries.
    for (size_t at = 0; at < kSize;) {
      size_t n = std::min<size_t>(kSize - at, 200 * 1024 + 17);
      REQUIRE(f.write(reference.data() + at, n, at).value() == n);
      at += n;
    }
    REQUIRE(f.sync().is_ok());
    REQUIRE(f.close().is_ok());
  }
  CHECK(store->stat(uri).value().size == kSize);
  {
    auto f = store->open(uri).value();
    std::vector<char> whole(kSize);
    REQUIRE(f.read(whole.data(), kSize, 0).value() == kSize);
    CHECK(whole == reference);
    std::mt19937_64 rng(9);
    for (int i = 0; i < 60; ++i) {
      uint64_t off = rng() % kSize;
      size_t n = std::min<size_t>(kSize - off, 1 + rng() % (600 * 1024));
      std::vector<char> got(n);
      INFO("read " << n << " at " << off);
      REQUIRE(f.read(got.data(), n, off).value() == n);
      REQUIRE(std::memcmp(got.data(), reference.data() + off, n) == 0);
    }
  }
  // The bytes live on the targets, not in the file system's directory; getstripe asks the
  // targets for the object sizes.
  auto info = store->describe(uri);
  CHECK(info["lustre.target_endpoints"] == p0.endpoint() + "," + p1.endpoint());
  CHECK_FALSE(std::filesystem::exists(root + "/ost0"));
  auto stripe = getstripe(uri).value();
  REQUIRE(stripe.objects.size() == 2);
  CHECK(stripe.objects[0].exists);
  CHECK(stripe.objects[0].size + stripe.objects[1].size == kSize);
  for (const auto& o : stripe.objects) {  // the same object, asked directly: "XX/INO.C.S"
    std::string name = o.path.substr(o.path.rfind('/', o.path.rfind('/') - 1) + 1);
    auto t = transport::RemoteObjectTarget::connect(o.target == 0 ? p0.endpoint() : p1.endpoint()).value();
    CHECK(t->stat(name).value().size == o.size);
  }
  uint64_t on_targets = 0;
  for (auto& entry : std::filesystem::recursive_directory_iterator(ost0.path()))
    if (entry.is_regular_file()) on_targets += entry.file_size();
  for (auto& entry : std::filesystem::recursive_directory_iterator(ost1.path()))
    if (entry.is_regular_file()) on_targets += entry.file_size();
  CHECK(on_targets == kSize);

  // Holes read as zeros; truncate cuts the remote objects.
  {
    auto f = store->open(uri, kOpenRead | kOpenWrite).value();
    REQUIRE(f.truncate(1000).is_ok());
    REQUIRE(f.write("x", 1, 2 << 20).value() == 1);
    std::vector<char> got(4096);
    REQUIRE(f.read(got.data(), got.size(), 1 << 20).value() == got.size());
    CHECK(std::all_of(got.begin(), got.end(), [](char c) { return c == 0; }));
    std::vector<char> head(1000);
    REQUIRE(f.read(head.data(), 1000, 0).value() == 1000);
    CHECK(std::memcmp(head.data(), reference.data(), 1000) == 0);
  }
  // fsck lists the remote targets: a stray object is an orphan, repair removes it; df counts.
  {
    auto t0 = transport::RemoteObjectTarget::connect(p0.endpoint()).value();
    REQUIRE(t0->write("e7/999999.0.0", "stray", 5, 0).is_ok());
    auto report = fsck(root).value();
    CHECK(report.orphans == 1);
    CHECK(report.overlong == 0);
    auto usage = df(root).value();
    REQUIRE(usage.targets.size() == 2);
    CHECK(usage.targets[0].path == p0.endpoint());
    CHECK(usage.targets[0].objects + usage.targets[1].objects == 3);
    // object 0: stripe 0 cut to 1000 bytes, then 1 byte at stripe 16 (object offset 1 MiB); object 1: cut to 0
    CHECK(usage.targets[0].apparent_bytes + usage.targets[1].apparent_bytes == (1u << 20) + 1 + 5);
    CHECK(fsck(root, /*repair=*/true).value().orphans == 1);
    CHECK(fsck(root).value().orphans == 0);
    CHECK(t0->stat("e7/999999.0.0").status().code() == Code::kNotFound);
  }
  // Unlink removes the remote objects.
  REQUIRE(store->remove(uri).is_ok());
  on_targets = 0;
  for (auto* d : {&ost0, &ost1})
    for (auto& entry : std::filesystem::recursive_directory_iterator(d->path()))
      if (entry.is_regular_file()) ++on_targets;
  CHECK(on_targets == 0);

  // A dead target makes I/O fail with Unavailable instead of hanging.
  {
    auto f = store->open("lustre://" + root + "/second.bin", kOpenWrite | kOpenCreate).value();
    p1.kill(SIGKILL);
    std::vector<char> buf(512 * 1024, 'a');
    auto w = f.write(buf.data(), buf.size(), 0);
    REQUIRE_FALSE(w.is_ok());
    CHECK(w.status().code() == Code::kUnavailable);
  }
  CHECK(p0.stop_cleanly());
}

TEST_CASE("remote targets must answer at mkfs and at mount", "[lustre][remote]") {
  stor::test::TempDir dir, ost0, ost1;
  std::string root = dir.path() + "/fs";
  std::string gone;
  {
    stor::test::TargetProcess p(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path());
    gone = p.endpoint();
    CHECK(p.stop_cleanly());
  }
  MkfsOptions o;
  o.target_endpoints = {gone};
  auto s = mkfs(root, o);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("target 0 (" + gone + ")"));
  o.target_endpoints = {"http://x:1"};
  CHECK(mkfs(root, o).code() == Code::kInvalidArgument);

  // A file system whose target went away does not mount: Unavailable, naming the target.
  {
    stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path());
    stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path());
    o.target_endpoints = {p0.endpoint(), p1.endpoint()};
    REQUIRE(mkfs(root, o).is_ok());
    gone = p1.endpoint();
    p1.kill(SIGKILL);
    // The kernel may keep a dead process's listening socket for a moment (io_uring tears the
    // ring down asynchronously): wait until connections are refused.
    for (int i = 0; i < 500 && transport::Transport::create("tcp").value()->connect(gone).is_ok(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto store = Store::create().value();
    auto f = store->open("lustre://" + root + "/x", kOpenWrite | kOpenCreate);
    REQUIRE_FALSE(f.is_ok());
    CHECK(f.status().code() == Code::kUnavailable);
    CHECK_THAT(f.status().message(), Catch::Contains("target 1 (" + gone + ")"));
  }
}
