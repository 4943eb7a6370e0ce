// The lustre:// backend with remote object targets: two stor-target processes on 127.0.0.1
// serve the targets, and a striped file written and read through stor::Store matches a flat
// reference byte for byte. Every connection authenticates with the file system's key.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <random>
#include <thread>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "net/auth.h"
#include "net/remote_object.h"
#include "stor/store.h"
#include "io_check.h"
#include "test_util.h"
#include "target_process.h"

using namespace stor;
using namespace stor::lustre;

namespace {

// A new key file in dir (mode 0600), as `stor-target --make-key` writes it.
std::string new_key_file(const stor::test::TempDir& dir, const std::string& name = "fs.key") {
  std::string path = dir / name;
  REQUIRE(transport::write_key_file(path, transport::AuthKey::generate().value()).is_ok());
  return path;
}

std::shared_ptr<transport::RemoteObjectTarget> connect_keyed(const std::string& endpoint, const std::string& key_file) {
  transport::RemoteTargetOptions o;
  o.transport.auth_key = transport::load_key_file(key_file).value();
  return transport::RemoteObjectTarget::connect(endpoint, o).value();
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every file below dir with its contents.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir))
    out[e.path().string()] = e.is_regular_file() ? slurp(e.path().string()) : std::string("<dir>");
  return out;
}

}  // namespace

TEST_CASE("a lustre file system on two remote stor-targets stripes over the transport", "[lustre][remote]") {
  stor::test::TempDir dir, ost0, ost1, keys;
  const std::string key = new_key_file(keys);
  stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path(), {"--key-file", key});
  stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path(), {"--key-file", key});
  std::string root = dir.path() + "/fs";
  MkfsOptions o;
  o.target_endpoints = {p0.endpoint(), p1.endpoint()};
  o.targets = 2;
  o.default_layout = {StripeSpec{-1, 128 << 10}};
  o.key_file = key;
  REQUIRE(mkfs(root, o).is_ok());
  // mkfs keeps a 0600 copy of the key beside the metadata; mounts find it there.
  CHECK(target_key_path(root) == root + "/mdt/target.key");
  CHECK(slurp(target_key_path(root)) == slurp(key));
  struct stat st {};
  REQUIRE(::stat(target_key_path(root).c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);

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
    // Vectored: odd segments over both targets, each piece of each segment straight into place.
    stor::test::Segments segs(stor::test::odd_sizes(kSize - 999, 300 * 1024, 11));
    REQUIRE(f.readv(segs.iov, 999).value() == kSize - 999);
    CHECK(std::memcmp(segs.gather(kSize - 999).data(), reference.data() + 999, kSize - 999) == 0);
  }
  {  // and written vectored, read back plain
    auto f = store->open(uri, kOpenRead | kOpenWrite).value();
    auto fresh = stor::test::pattern(700 * 1024, 12);
    stor::test::Segments segs(stor::test::odd_sizes(fresh.size(), 90 * 1024, 13));
    segs.scatter(fresh);
    REQUIRE(f.writev(segs.iov, 100).value() == fresh.size());
    std::vector<char> back(fresh.size());
    REQUIRE(f.read(back.data(), back.size(), 100).value() == back.size());
    CHECK(back == fresh);
    REQUIRE(f.write(reference.data() + 100, fresh.size(), 100).value() == fresh.size());  // restore
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
    auto t = connect_keyed(o.target == 0 ? p0.endpoint() : p1.endpoint(), key);
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
    auto t0 = connect_keyed(p0.endpoint(), key);
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
  stor::test::TempDir dir, ost0, ost1, keys;
  const std::string key = new_key_file(keys);
  std::string root = dir.path() + "/fs";
  std::string gone;
  {
    stor::test::TargetProcess p(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path(), {"--key-file", key});
    gone = p.endpoint();
    CHECK(p.stop_cleanly());
  }
  MkfsOptions o;
  o.key_file = key;
  o.target_endpoints = {gone};
  auto s = mkfs(root, o);
  CHECK(s.code() == Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("target 0 (" + gone + ")"));
  o.target_endpoints = {"http://x:1"};
  CHECK(mkfs(root, o).code() == Code::kInvalidArgument);

  // A file system whose target went away does not mount: Unavailable, naming the target.
  {
    stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path(), {"--key-file", key});
    stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path(), {"--key-file", key});
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

TEST_CASE("a remote-target file system authenticates every connection with its key", "[lustre][remote][auth]") {
  stor::test::TempDir dir, ost0, ost1, keys;
  const std::string key = new_key_file(keys), other = new_key_file(keys, "other.key");
  stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost0.path(), {"--key-file", key});
  stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost1.path(), {"--key-file", key});
  MkfsOptions o;
  o.target_endpoints = {p0.endpoint(), p1.endpoint()};
  auto targets_before = std::make_pair(snapshot(ost0.path()), snapshot(ost1.path()));
  auto targets_untouched = [&] {
    return snapshot(ost0.path()) == targets_before.first && snapshot(ost1.path()) == targets_before.second;
  };

  // mkfs with a key others may read, or with a key the targets do not hold: refused, nothing made.
  ::chmod(other.c_str(), 0644);
  o.key_file = other;
  auto s = mkfs(dir / "loose", o);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK_THAT(s.message(), Catch::Contains("chmod 600"));
  ::chmod(other.c_str(), 0600);
  s = mkfs(dir / "wrong", o);
  CHECK(s.code() == Code::kPermissionDenied);
  CHECK_THAT(s.message(), Catch::Contains("authentication failed"));
  CHECK_FALSE(std::filesystem::exists(dir / "wrong/.stor-lustre"));

  // Without a key file mkfs makes a new one; the running targets cannot hold it yet, so the
  // mount is refused by them until they are restarted with it.
  o.key_file.clear();
  REQUIRE(mkfs(dir / "fresh", o).is_ok());
  auto fresh_key = transport::load_key_file(target_key_path(dir / "fresh"));
  REQUIRE(fresh_key.is_ok());
  CHECK((*fresh_key)->hex() != transport::load_key_file(key).value()->hex());
  auto store = Store::create().value();
  auto f = store->open("lustre://" + dir / "fresh" + "/x", kOpenWrite | kOpenCreate);
  REQUIRE_FALSE(f.is_ok());
  CHECK(f.status().code() == Code::kPermissionDenied);
  CHECK_THAT(f.status().message(), Catch::Contains("authentication failed"));
  CHECK(targets_untouched());
  {
    stor::test::TempDir ost2;
    stor::test::TargetProcess p2(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost2.path(),
                                 {"--key-file", target_key_path(dir / "fresh")});
    MkfsOptions o2;
    o2.target_endpoints = {p2.endpoint()};
    o2.key_file = target_key_path(dir / "fresh");
    REQUIRE(mkfs(dir / "fresh2", o2).is_ok());
    auto g = store->open("lustre://" + dir / "fresh2" + "/x", kOpenWrite | kOpenCreate);
    REQUIRE(g.is_ok());
    CHECK(g->write("hello", 5, 0).value() == 5);
    CHECK(g->close().is_ok());
  }

  // The right key: served.
  o.key_file = key;
  REQUIRE(mkfs(dir / "fs", o).is_ok());
  {
    auto h = store->open("lustre://" + dir / "fs" + "/ok", kOpenWrite | kOpenCreate).value();
    CHECK(h.write("hello", 5, 0).value() == 5);
    CHECK(h.close().is_ok());
  }
  targets_before = std::make_pair(snapshot(ost0.path()), snapshot(ost1.path()));

  // A mount given the wrong key (lustre.key_file) is refused by the targets before any object
  // is touched (the orphan sweep of an unclean mount would list and remove objects).
  REQUIRE(mkfs(dir / "fs2", o).is_ok());
  StoreOptions wrong;
  wrong.settings = {{"lustre.key_file", other}};
  auto store2 = Store::create(wrong).value();
  auto w = store2->open("lustre://" + dir / "fs2" + "/evil", kOpenWrite | kOpenCreate);
  REQUIRE_FALSE(w.is_ok());
  CHECK(w.status().code() == Code::kPermissionDenied);
  CHECK_THAT(w.status().message(), Catch::Contains("authentication failed"));
  CHECK_THAT(w.status().message(), Catch::Contains("target 0"));
  // Its own key file loosened to 0644: refused before connecting.
  ::chmod(target_key_path(dir / "fs2").c_str(), 0644);
  auto store3 = Store::create().value();
  auto l = store3->open("lustre://" + dir / "fs2" + "/evil", kOpenWrite | kOpenCreate);
  REQUIRE_FALSE(l.is_ok());
  CHECK(l.status().code() == Code::kPermissionDenied);
  CHECK_THAT(l.status().message(), Catch::Contains("mode 0644"));
  // Gone altogether: the mount connects without a key (as for file systems made before keys)
  // and the targets refuse its first request, saying why.
  std::filesystem::remove(target_key_path(dir / "fs2"));
  auto n = store3->open("lustre://" + dir / "fs2" + "/evil", kOpenWrite | kOpenCreate);
  REQUIRE_FALSE(n.is_ok());
  CHECK(n.status().code() == Code::kPermissionDenied);
  CHECK_THAT(n.status().message(), Catch::Contains("requires authentication"));
  CHECK(targets_untouched());
  // With lustre.key_file naming the right key, it mounts again.
  StoreOptions right;
  right.settings = {{"lustre.key_file", key}};
  auto store4 = Store::create(right).value();
  CHECK(store4->open("lustre://" + dir / "fs2" + "/fine", kOpenWrite | kOpenCreate).is_ok());

  // A target started without authentication is refused by a keyed file system, with the reason.
  {
    stor::test::TempDir ost3;
    stor::test::TargetProcess open_target(STOR_TARGET_PATH, "tcp://127.0.0.1:0", ost3.path());
    MkfsOptions o3;
    o3.target_endpoints = {open_target.endpoint()};
    o3.key_file = key;
    auto m = mkfs(dir / "fs3", o3);
    CHECK(m.code() == Code::kPermissionDenied);
    CHECK_THAT(m.message(), Catch::Contains("does not authenticate connections"));
  }
  CHECK(p0.stop_cleanly());
  CHECK(p1.stop_cleanly());
}
