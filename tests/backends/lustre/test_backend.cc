// The lustre:// backend through stor::Store: striped I/O against a flat reference, holes and
// truncation, objects per target, identities from settings, bad input, driver detection.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>

#include "backends/lustre/fs.h"
#include "backends/lustre/layout_driver.h"
#include "backends/lustre/lustre_admin.h"
#include "stor/store.h"
#include "io_check.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace {

struct Fixture {
  stor::test::TempDir dir;
  std::string root = dir.path() + "/fs";
  std::unique_ptr<Store> store;
  explicit Fixture(uint32_t targets = 4, std::map<std::string, std::string> settings = {}) {
    MkfsOptions o;
    o.targets = targets;
    o.root_mode = 0777;
    REQUIRE(mkfs(root, o).is_ok());
    StoreOptions so;
    so.settings = std::move(settings);
    auto s = Store::create(so);
    REQUIRE(s.is_ok());
    store = std::move(*s);
  }
  std::string uri(const std::string& p) const { return "lustre://" + root + p; }
};

}  // namespace

TEST_CASE("striped file I/O matches a flat reference under random writes, reads and truncates", "[lustre][io]") {
  Fixture fx(8);
  const std::vector<LayoutSpec> layouts = {
      {{1, 64 << 10}},
      {{4, 64 << 10}},
      {{-1, 128 << 10, 3}},
      {{1, 64 << 10, -1, 256 << 10}, {2, 64 << 10, -1, 1 << 20}, {-1, 64 << 10}},  // PFL
  };
  std::mt19937_64 rng(1234);
  for (size_t li = 0; li < layouts.size(); ++li) {
    std::string name = "/file" + std::to_string(li);
    REQUIRE(setstripe(fx.root + name, layouts[li]).is_ok());
    auto f = fx.store->open(fx.uri(name), kOpenRead | kOpenWrite);
    REQUIRE(f.is_ok());
    std::vector<char> flat;
    for (int op = 0; op < 120; ++op) {
      int kind = static_cast<int>(rng() % 10);
      if (kind < 5) {  // write, often unaligned and sometimes far past EOF (sparse)
        uint64_t off = rng() % (kind == 0 ? (6 << 20) : (2 << 20));
        size_t len = 1 + rng() % (300 << 10);
        auto data = stor::test::pattern(len, rng());
        auto w = f->write(data.data(), len, off);
        REQUIRE(w.is_ok());
        REQUIRE(*w == len);
        if (flat.size() < off + len) flat.resize(off + len, 0);
        std::copy(data.begin(), data.end(), flat.begin() + static_cast<long>(off));
      } else if (kind < 9) {  // read, possibly past EOF
        uint64_t off = rng() % (flat.size() + 100000);
        size_t len = 1 + rng() % (400 << 10);
        std::vector<char> got(len, 'X');
        auto r = f->read(got.data(), len, off);
        REQUIRE(r.is_ok());
        size_t expect = off >= flat.size() ? 0 : std::min<size_t>(len, flat.size() - off);
        REQUIRE(*r == expect);
        // (off may lie past an empty flat: no iterator arithmetic then)
        REQUIRE((expect == 0 || std::equal(got.begin(), got.begin() + static_cast<long>(expect),
                                           flat.begin() + static_cast<long>(off))));
      } else {  // truncate down or up: the cut-off part must read back as zeros
        uint64_t size = rng() % (flat.size() + (1 << 20));
        REQUIRE(f->truncate(size).is_ok());
        flat.resize(size, 0);
      }
      REQUIRE(*f->size() == flat.size());
    }
    REQUIRE(f->close().is_ok());
    // Reopen and read everything back in one request: all stripes in parallel.
    auto g = fx.store->open(fx.uri(name), kOpenRead);
    REQUIRE(g.is_ok());
    std::vector<char> all(flat.size());
    REQUIRE(g->read_exact(all.data(), all.size(), 0).is_ok());
    REQUIRE(all == flat);
  }
}

TEST_CASE("holes read as zeros and objects are allocated lazily", "[lustre][io]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/sparse", {{4, 1 << 20}}).is_ok());
  auto f = fx.store->open(fx.uri("/sparse"), kOpenRead | kOpenWrite);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(1000, 5);
  REQUIRE(f->write(data.data(), data.size(), (3u << 20) + 17).is_ok());  // lands on stripe 3 only
  REQUIRE(*f->size() == (3u << 20) + 17 + 1000);
  auto info = getstripe(fx.root + "/sparse");
  REQUIRE(info.is_ok());
  REQUIRE(info->objects.size() == 4);
  int allocated = 0;
  for (auto& o : info->objects) allocated += o.exists;
  REQUIRE(allocated == 1);
  std::vector<char> buf(3u << 20, 'X');
  REQUIRE(f->read_exact(buf.data(), buf.size(), 0).is_ok());
  REQUIRE(std::all_of(buf.begin(), buf.end(), [](char c) { return c == 0; }));
  REQUIRE(f->truncate(10u << 20).is_ok());  // extend: the tail is a hole too
  std::vector<char> tail(1 << 20, 'X');
  REQUIRE(f->read_exact(tail.data(), tail.size(), 9u << 20).is_ok());
  REQUIRE(std::all_of(tail.begin(), tail.end(), [](char c) { return c == 0; }));
  REQUIRE(f->close().is_ok());
}

TEST_CASE("a striped file puts one object per stripe on distinct targets; unlink frees them", "[lustre][io]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/wide", {{4, 1 << 20, 0}}).is_ok());
  auto f = fx.store->open(fx.uri("/wide"), kOpenWrite);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(4u << 20, 9);
  REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
  REQUIRE(f->sync().is_ok());
  auto info = getstripe(fx.root + "/wide");
  REQUIRE(info.is_ok());
  for (uint32_t s = 0; s < 4; ++s) {
    REQUIRE(info->objects[s].target == s);
    REQUIRE(info->objects[s].exists);
    REQUIRE(info->objects[s].size == (1u << 20));
  }
  REQUIRE_THAT(format_stripe_info(*info), Catch::Contains("obdidx"));
  auto usage = df(fx.root);
  REQUIRE(usage.is_ok());
  REQUIRE(usage->targets.size() == 4);
  for (auto& t : usage->targets) REQUIRE(t.apparent_bytes == (1u << 20));
  // Unlinked while open: data stays readable until the last close, then the objects go.
  auto r = fx.store->open(fx.uri("/wide"), kOpenRead);
  REQUIRE(r.is_ok());
  REQUIRE(f->close().is_ok());
  REQUIRE(fx.store->remove(fx.uri("/wide")).is_ok());
  std::vector<char> back(data.size());
  REQUIRE(r->read_exact(back.data(), back.size(), 0).is_ok());
  REQUIRE(back == data);
  REQUIRE(r->close().is_ok());
  for (auto& o : info->objects) REQUIRE_FALSE(std::filesystem::exists(o.path));
}

TEST_CASE("many async reads in flight over all stripes", "[lustre][io]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/big", {{-1, 64 << 10}}).is_ok());
  auto f = fx.store->open(fx.uri("/big"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(8u << 20, 3);
  REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
  const int kReqs = 64;
  std::vector<std::vector<char>> bufs(kReqs, std::vector<char>(200000));
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, errors = 0;
  for (int i = 0; i < kReqs; ++i) {
    uint64_t off = static_cast<uint64_t>(i) * 123457;
    f->read_async(bufs[i].data(), bufs[i].size(), off, [&, i, off](Result<size_t> r) {
      std::lock_guard lk(mu);
      if (!r || *r != bufs[i].size() || !std::equal(bufs[i].begin(), bufs[i].end(), data.begin() + static_cast<long>(off)))
        ++errors;
      ++done;
      cv.notify_all();
    });
  }
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return done == kReqs; });
  REQUIRE(errors == 0);
}

TEST_CASE("lustre.* settings are parsed strictly and errors name the setting", "[lustre][errors]") {
  auto ok = backend_options_from_settings({{"lustre.uid", "1000"},
                                           {"lustre.gids", "1000,,50"},
                                           {"lustre.checkpoint_bytes", "48KiB"},
                                           {"lustre.sync_metadata", "on"}});
  REQUIRE(ok.is_ok());
  CHECK(ok->identity.uid == 1000);
  CHECK(ok->identity.gids == std::vector<uint32_t>{1000, 50});
  CHECK(ok->mds.checkpoint_bytes == 48 * 1024);
  CHECK(ok->mds.sync_each_op);
  auto uid_only = backend_options_from_settings({{"lustre.uid", "7"}});
  REQUIRE(uid_only.is_ok());
  CHECK(uid_only->identity.gids == std::vector<uint32_t>{7});  // a user-private group
  for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
           {"lustre.uid", "-1"},
           {"lustre.uid", "4294967296"},
           {"lustre.uid", ""},
           {"lustre.gids", "1,-2"},
           {"lustre.gids", "1,4294967296"},
           {"lustre.checkpoint_bytes", "99999999999999999999"},
           {"lustre.checkpoint_bytes", "1Q"},
           {"lustre.sync_metadata", "maybe"}}) {
    INFO(key << "=" << value);
    auto r = backend_options_from_settings({{key, value}});
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find(key + "='" + value + "'") != std::string::npos);
  }
}

TEST_CASE("vectored I/O over stripes and components round trips, odd segments included", "[lustre][vectored]") {
  Fixture fx(4);
  const std::vector<LayoutSpec> layouts = {
      {{4, 64 << 10}},
      {{1, 64 << 10, -1, 256 << 10}, {2, 64 << 10, -1, 1 << 20}, {-1, 64 << 10}},  // PFL
  };
  for (size_t li = 0; li < layouts.size(); ++li) {
    const std::string name = "/v" + std::to_string(li);
    REQUIRE(setstripe(fx.root + name, layouts[li]).is_ok());
    auto f = fx.store->open(fx.uri(name), kOpenRead | kOpenWrite);
    REQUIRE(f.is_ok());
    // Segments of up to 100 KiB starting at an odd offset: many straddle stripe and component ends.
    stor::test::check_vectored_round_trip(*f->backend_file(), (1 << 20) + 54321, 12345, 100 << 10, li + 1);
  }
  // A hole in the middle of a vectored read reads as zeros; a read over a never-written object too.
  REQUIRE(setstripe(fx.root + "/holes", {{4, 64 << 10}}).is_ok());
  auto f = fx.store->open(fx.uri("/holes"), kOpenRead | kOpenWrite);
  REQUIRE(f.is_ok());
  REQUIRE(f->write("z", 1, (512 << 10) - 1).value() == 1);
  stor::test::Segments segs(stor::test::odd_sizes(512 << 10, 30000, 9));
  REQUIRE(f->readv(segs.iov, 0).value() == (512u << 10));
  auto got = segs.gather(512 << 10);
  CHECK(std::count(got.begin(), got.end(), 0) == (512 << 10) - 1);
  CHECK(got.back() == 'z');
}

TEST_CASE("a request over several rows of stripes is one vectored request per object", "[lustre][vectored]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/rows", {{4, 64 << 10}}).is_ok());
  auto f = fx.store->open(fx.uri("/rows"), kOpenRead | kOpenWrite);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(1 << 20, 6);  // 4 rows of 4 stripes
  auto& engine = fx.store->engine();
  uint64_t before = engine.stats().submitted;
  REQUIRE(f->write(data.data(), data.size(), 0).value() == data.size());
  CHECK(engine.stats().submitted - before == 4);  // 16 stripe units, 4 objects
  std::vector<char> back(data.size());
  before = engine.stats().submitted;
  REQUIRE(f->read(back.data(), back.size(), 0).value() == back.size());
  CHECK(engine.stats().submitted - before == 4);
  CHECK(back == data);
  // 64 caller segments of 16 KiB: still 4 requests; one call per segment (the default) makes 64.
  stor::test::Segments segs(std::vector<size_t>(64, 16 << 10));
  before = engine.stats().submitted;
  REQUIRE(f->readv(segs.iov, 0).value() == data.size());
  CHECK(engine.stats().submitted - before == 4);
  CHECK(segs.gather(data.size()) == data);
  stor::test::Segments each(std::vector<size_t>(64, 16 << 10));
  std::promise<Result<size_t>> done;
  before = engine.stats().submitted;
  f->backend_file()->BackendFile::readv_async(each.iov, 0, [&](Result<size_t> r) { done.set_value(r); });
  CHECK(done.get_future().get().value() == data.size());
  CHECK(engine.stats().submitted - before == 64);
  CHECK(each.gather(data.size()) == data);
}

TEST_CASE("many threads read and write one striped handle at once", "[lustre][concurrency]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/shared", {{4, 64 << 10}}).is_ok());
  auto f = fx.store->open(fx.uri("/shared"), kOpenRead | kOpenWrite);
  REQUIRE(f.is_ok());
  // Regions of 300000 bytes: each thread's writes and reads cross stripes the others also use.
  CHECK(stor::test::hammer_one_handle(*f->backend_file(), 300000, 4, 6) == 0);
}

TEST_CASE("the identity comes from lustre.uid / lustre.gids settings", "[lustre][perm]") {
  Fixture admin(2);
  REQUIRE(admin.store->mkdir(admin.uri("/private"), 0700).is_ok());
  REQUIRE(admin.store->mkdir(admin.uri("/open"), 0777).is_ok());
  StoreOptions so;
  so.settings = {{"lustre.uid", "1000"}, {"lustre.gids", "1000,50"}};
  auto user = Store::create(so);
  REQUIRE(user.is_ok());
  auto denied = (*user)->open(admin.uri("/private/f"), kOpenWrite | kOpenCreate);
  REQUIRE(denied.status().code() == Code::kPermissionDenied);
  REQUIRE((*user)->list(admin.uri("/private")).status().code() == Code::kPermissionDenied);
  auto mine = (*user)->open(admin.uri("/open/f"), kOpenWrite | kOpenCreate, 0600);
  REQUIRE(mine.is_ok());
  REQUIRE(mine->close().is_ok());
  auto st = admin.store->stat(admin.uri("/open/f"));
  REQUIRE(st.is_ok());
  REQUIRE(st->uid == 1000);
  REQUIRE(st->gid == 1000);
  REQUIRE(st->mode == 0600);
  // make_backend: the same through the admin API.
  BackendOptions bo;
  bo.identity = Identity{2000, {2000}};
  auto be = make_backend(&admin.store->engine(), bo);
  REQUIRE(be.is_ok());
  auto uri = Uri::parse(admin.uri("/open/f"));
  OpenOptions oo;
  oo.flags = kOpenRead;
  REQUIRE((*be)->open(*uri, oo).status().code() == Code::kPermissionDenied);
  StoreOptions bad;
  bad.settings = {{"lustre.uid", "alice"}};
  auto b = Store::create(bad);
  REQUIRE(b.is_ok());
  REQUIRE((*b)->stat(admin.uri("/open/f")).status().code() == Code::kInvalidArgument);
}

TEST_CASE("bad input gets clear errors", "[lustre][errors]") {
  Fixture fx(2);
  auto s = fx.store->stat("lustre://" + fx.root + "/../etc/passwd");
  REQUIRE(s.status().code() == Code::kInvalidArgument);
  REQUIRE_THAT(s.status().message(), Catch::Contains("escape"));
  REQUIRE(fx.store->open("lustre://" + fx.root + "/a/../../x", kOpenWrite | kOpenCreate).status().code() ==
          Code::kInvalidArgument);
  REQUIRE(fx.store->stat("lustre://host" + fx.root + "/x").status().code() == Code::kInvalidArgument);
  auto nofs = fx.store->stat("lustre://" + fx.dir.path() + "/elsewhere/x");
  REQUIRE(nofs.status().code() == Code::kNotFound);
  REQUIRE_THAT(nofs.status().message(), Catch::Contains("mkfs"));
  auto ss = setstripe(fx.root + "/f", {{1, 1000}});
  REQUIRE(ss.code() == Code::kInvalidArgument);
  REQUIRE_THAT(ss.message(), Catch::Contains("64 KiB"));
  ss = setstripe(fx.root + "/f", {{3, 1 << 20}});
  REQUIRE_THAT(ss.message(), Catch::Contains("exceeds the 2 targets"));
  // A file with data keeps its layout.
  auto f = fx.store->open(fx.uri("/g"), kOpenWrite | kOpenCreate);
  REQUIRE(f->write("x", 1, 0).is_ok());
  REQUIRE(setstripe(fx.root + "/g", {{2, 1 << 20}}).code() == Code::kBusy);
  MkfsOptions o;
  REQUIRE(mkfs(fx.root, o).code() == Code::kAlreadyExists);
  o.targets = 0;
  REQUIRE(mkfs(fx.dir.path() + "/other", o).code() == Code::kInvalidArgument);
}

TEST_CASE("layout driver detection falls back to the emulation off Lustre", "[lustre][driver]") {
  Fixture fx(2);
  auto d = detect_layout_driver(fx.root);
  REQUIRE(d.native == nullptr);
  REQUIRE_THAT(d.reason, Catch::Contains("not on a Lustre mount"));
  REQUIRE_THAT(d.reason, Catch::Contains("0xbd00bd0"));
  auto missing = detect_layout_driver(fx.dir.path() + "/does/not/exist/yet", "libstor-no-such-lustreapi.so");
  REQUIRE(missing.native == nullptr);
  auto info = layout_driver_for(fx.root + "/x");
  REQUIRE(info.driver == "emulated");
  REQUIRE_THAT(info.reason, Catch::Contains(".stor-lustre"));
  auto desc = fx.store->describe(fx.uri("/"));
  REQUIRE(desc["lustre.layout_driver"] == "emulated");
  REQUIRE(desc["lustre.targets"] == "2");
}

TEST_CASE("fsck finds orphan objects; an unclean mount sweeps them", "[lustre][fsck]") {
  std::string orphan, overlong;
  stor::test::TempDir dir;
  std::string root = dir.path() + "/fs";
  REQUIRE(mkfs(root, MkfsOptions{}).is_ok());
  {
    auto fs = FileSystem::mount(root);
    REQUIRE(fs.is_ok());
    REQUIRE(setstripe(root + "/f", {{2, 64 << 10}}).is_ok());
    orphan = (*fs)->object_path(1, 424242, 0, 0);
    std::filesystem::create_directories(std::filesystem::path(orphan).parent_path());
    FILE* f = std::fopen(orphan.c_str(), "w");
    REQUIRE(f);
    std::fputs("stale", f);
    std::fclose(f);
    // Bytes past the file's size in a live object: a write that was never acknowledged.
    overlong = getstripe(root + "/f")->objects.at(1).path;
    std::filesystem::create_directories(std::filesystem::path(overlong).parent_path());
    f = std::fopen(overlong.c_str(), "w");
    REQUIRE(f);
    std::fputs("unacknowledged", f);
    std::fclose(f);
    auto r = fsck(root);
    REQUIRE(r.is_ok());
    REQUIRE(r->orphans == 1);
    REQUIRE(r->orphan_paths.at(0) == orphan);
    REQUIRE(r->overlong == 1);
  }
  // Clean unmount: the next mount trusts the targets and does not scan.
  { REQUIRE(FileSystem::mount(root).is_ok()); }
  REQUIRE(std::filesystem::exists(orphan));
  // Pretend the last mount crashed: no clean marker.
  std::filesystem::remove(root + "/mdt/clean");
  {
    auto fs = FileSystem::mount(root);
    REQUIRE(fs.is_ok());
    REQUIRE_FALSE(std::filesystem::exists(orphan));
    REQUIRE(std::filesystem::file_size(overlong) == 0);
    REQUIRE(fsck(root)->orphans == 0);
    REQUIRE(fsck(root)->overlong == 0);
  }
}

namespace {
// Stands in for liblustreapi: remembers layouts per path.
class FakeLlapi final : public LayoutDriver {
 public:
  explicit FakeLlapi(std::shared_ptr<std::map<std::string, pb::Layout>> store) : store_(std::move(store)) {}
  std::string_view name() const override { return "fake-llapi"; }
  Status set_layout(const std::string& path, const pb::Layout& l) override {
    if (!std::filesystem::exists(path)) {
      FILE* f = std::fopen(path.c_str(), "w");
      if (!f) return Status::from_errno(errno, path);
      std::fclose(f);
    }
    (*store_)[path] = l;
    return Status::ok();
  }
  Result<pb::Layout> get_layout(const std::string& path) override {
    auto it = store_->find(path);
    if (it == store_->end()) return Status::NotFound("no layout for " + path);
    return it->second;
  }

 private:
  std::shared_ptr<std::map<std::string, pb::Layout>> store_;
};

struct ProbeGuard {
  ~ProbeGuard() { set_layout_driver_probe_for_testing(nullptr); }
};
}  // namespace

TEST_CASE("on a (simulated) Lustre mount the backend runs natively and layouts go to the driver", "[lustre][driver]") {
  stor::test::TempDir dir;
  std::string mnt = dir.path() + "/mnt";
  std::filesystem::create_directories(mnt);
  auto layouts = std::make_shared<std::map<std::string, pb::Layout>>();
  ProbeGuard guard;
  set_layout_driver_probe_for_testing([&](const std::string& p) {
    LayoutDriverChoice c;
    if (p.rfind(mnt, 0) == 0) {
      c.native = std::make_unique<FakeLlapi>(layouts);
      c.reason = p + " is on a (simulated) Lustre mount";
    } else {
      c.reason = p + " is not on a Lustre mount";
    }
    return c;
  });
  auto store = Store::create();
  REQUIRE(store.is_ok());
  auto& s = **store;
  std::string u = "lustre://" + mnt;
  REQUIRE(s.mkdir(u + "/d").is_ok());
  auto f = s.open(u + "/d/a", kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(300000, 4);
  REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
  std::vector<char> back(data.size());
  REQUIRE(f->read_exact(back.data(), back.size(), 0).is_ok());
  REQUIRE(back == data);
  {  // byte-range locks: OFD locks on the file, as on nvme://
    auto g = s.open(u + "/d/a", kOpenRead | kOpenWrite);
    REQUIRE(g.is_ok());
    auto held = f->lock_range(0, 100, RangeLockMode::kExclusive, std::chrono::milliseconds(0));
    REQUIRE(held.is_ok());
    CHECK(g->lock_range(50, 1, RangeLockMode::kShared, std::chrono::milliseconds(0)).status().code() == Code::kTimeout);
    REQUIRE(f->unlock_range(*held).is_ok());
    CHECK(g->lock_range(50, 1, RangeLockMode::kShared, std::chrono::milliseconds(0)).is_ok());
  }
  REQUIRE(f->close().is_ok());
  REQUIRE(std::filesystem::file_size(mnt + "/d/a") == data.size());  // a plain file: Lustre stripes it
  REQUIRE(s.rename(u + "/d/a", u + "/d/b").is_ok());
  auto l = s.list(u + "/d");
  REQUIRE(l.is_ok());
  REQUIRE(l->size() == 1);
  REQUIRE(l->at(0).name == "b");
  REQUIRE(setstripe(mnt + "/d/striped", {{4, 1 << 20}}).is_ok());
  auto gs = getstripe(mnt + "/d/striped");
  REQUIRE(gs.is_ok());
  REQUIRE(gs->driver == "fake-llapi");
  REQUIRE(gs->layout.components(0).stripe_count() == 4);
  auto desc = s.describe(u + "/d/striped");
  REQUIRE(desc["lustre.mode"] == "native");
  REQUIRE(desc["lustre.layout_driver"] == "fake-llapi");
  REQUIRE(s.remove(u + "/d/b").is_ok());
  REQUIRE(s.stat(u + "/d/b").status().code() == Code::kNotFound);
  // Outside the mount: no emulated file system either, and the error says why.
  auto off = s.stat("lustre://" + dir.path() + "/elsewhere");
  REQUIRE(off.status().code() == Code::kNotFound);
  REQUIRE_THAT(off.status().message(), Catch::Contains("not on a Lustre mount"));
}

TEST_CASE("lustre.sync_metadata fdatasyncs the log before acknowledging, and still works", "[lustre][io]") {
  Fixture fx(2, {{"lustre.sync_metadata", "1"}, {"lustre.checkpoint_bytes", "4K"}});
  for (int i = 0; i < 20; ++i) {
    auto f = fx.store->open(fx.uri("/s" + std::to_string(i)), kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write("abc", 3, static_cast<uint64_t>(i)).is_ok());
    REQUIRE(f->close().is_ok());
  }
  auto l = fx.store->list(fx.uri("/"));
  REQUIRE(l.is_ok());
  REQUIRE(l->size() == 20);
  REQUIRE(fx.store->stat(fx.uri("/s19"))->size == 22);
  StoreOptions bad;
  bad.settings = {{"lustre.checkpoint_bytes", "lots"}};
  auto b = Store::create(bad);
  REQUIRE(b.is_ok());
  REQUIRE((*b)->stat(fx.uri("/s1")).status().code() == Code::kInvalidArgument);
}

TEST_CASE("kOpenAppend on a striped file: every write lands at the end, concurrent ones never overlap",
          "[lustre][io]") {
  Fixture fx(4);
  REQUIRE(setstripe(fx.root + "/log", {{4, 64 << 10}}).is_ok());
  {
    auto f = fx.store->open(fx.uri("/log"), kOpenWrite);
    REQUIRE(f.is_ok());
    REQUIRE(f->write("head", 4, 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  auto f = fx.store->open(fx.uri("/log"), kOpenRead | kOpenWrite | kOpenAppend);
  REQUIRE(f.is_ok());
  // 64 async appends of 10000 bytes (each crossing stripes), all in flight at once, offsets 0.
  constexpr int kN = 64;
  constexpr size_t kLen = 10000;
  std::vector<std::vector<char>> bufs;
  for (int i = 0; i < kN; ++i) bufs.emplace_back(kLen, static_cast<char>('A' + i % 26));
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, failed = 0;
  for (int i = 0; i < kN; ++i) {
    f->write_async(bufs[i].data(), kLen, 0, [&](Result<size_t> r) {
      std::lock_guard<std::mutex> lock(mu);
      if (!r.is_ok() || *r != kLen) ++failed;
      ++done;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == kN; });
  }
  CHECK(failed == 0);
  REQUIRE(*f->size() == 4 + kN * kLen);
  std::vector<char> back(4 + kN * kLen);
  REQUIRE(f->read_exact(back.data(), back.size(), 0).is_ok());
  CHECK(std::string(back.data(), 4) == "head");
  // Each append is one whole run of its letter: nothing interleaved or overwritten.
  std::map<char, int> runs;
  for (size_t off = 4; off < back.size(); off += kLen) {
    const char c = back[off];
    CHECK(std::all_of(back.begin() + off, back.begin() + off + kLen, [c](char x) { return x == c; }));
    ++runs[c];
  }
  for (int i = 0; i < 26; ++i) CHECK(runs[static_cast<char>('A' + i)] == (kN / 26 + (i < kN % 26 ? 1 : 0)));
  REQUIRE(f->close().is_ok());
  CHECK(fx.store->open(fx.uri("/log"), kOpenRead | kOpenAppend).status().code() == Code::kInvalidArgument);
}
