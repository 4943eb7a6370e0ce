// Metadata service: namespace operations, POSIX permission checks, rename atomicity, concurrent
// creates, and persistence across remounts (WAL replay and checkpoints).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <set>
#include <thread>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/wal.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace {

const Identity kRoot{0, {0}};
const Identity kAlice{1000, {1000}};
const Identity kBob{1001, {1001, 2000}};  // also in group 2000

std::shared_ptr<FileSystem> make_fs(const stor::test::TempDir& dir, uint32_t targets = 4, MountOptions mo = {}) {
  MkfsOptions o;
  o.targets = targets;
  o.root_mode = 0755;
  REQUIRE(mkfs(dir.path() + "/fs", o).is_ok());
  auto fs = FileSystem::mount(dir.path() + "/fs", mo);
  REQUIRE(fs.is_ok());
  return *fs;
}

Status create(Mds& m, const Identity& id, const std::string& path, uint32_t mode = 0644) {
  auto r = m.open_file(id, path, kOpenWrite | kOpenCreate | kOpenExclusive, mode);
  if (!r) return r.status();
  m.close_file(r->inode);
  return Status::ok();
}

std::set<std::string> names(Mds& m, const std::string& dir) {
  auto r = m.readdir(kRoot, dir);
  REQUIRE(r.is_ok());
  std::set<std::string> out;
  for (auto& e : *r) out.insert(e.name);
  return out;
}

}  // namespace

TEST_CASE("namespace operations and their errors", "[lustre][mds]") {
  stor::test::TempDir dir;
  auto fs = make_fs(dir);
  Mds& m = fs->mds();
  REQUIRE(m.mkdir(kRoot, "/a", 0755).is_ok());
  REQUIRE(m.mkdir(kRoot, "/a/b", 0755).is_ok());
  REQUIRE(create(m, kRoot, "/a/f").is_ok());
  REQUIRE(m.mkdir(kRoot, "/a", 0755).code() == Code::kAlreadyExists);
  REQUIRE(create(m, kRoot, "/a/f").code() == Code::kAlreadyExists);
  REQUIRE(m.mkdir(kRoot, "/missing/x", 0755).code() == Code::kNotFound);
  REQUIRE(m.mkdir(kRoot, "/a/f/x", 0755).code() == Code::kNotADirectory);
  REQUIRE(m.open_file(kRoot, "/a/b", kOpenRead, 0).status().code() == Code::kIsADirectory);
  REQUIRE(names(m, "/a") == std::set<std::string>{"b", "f"});
  auto st = m.stat(kRoot, "/a/b");
  REQUIRE(st.is_ok());
  REQUIRE(st->type == FileType::kDirectory);
  REQUIRE(m.remove(kRoot, "/a").code() == Code::kNotEmpty);
  REQUIRE(m.rename(kRoot, "/a/f", "/a/b/g").is_ok());
  REQUIRE(m.stat(kRoot, "/a/f").status().code() == Code::kNotFound);
  REQUIRE(m.stat(kRoot, "/a/b/g").is_ok());
  REQUIRE(m.rename(kRoot, "/a", "/a/b/c").code() == Code::kInvalidArgument);  // into itself
  REQUIRE(m.mkdir(kRoot, "/e", 0755).is_ok());
  REQUIRE(m.rename(kRoot, "/e", "/a").code() == Code::kNotEmpty);
  REQUIRE(m.rename(kRoot, "/a/b/g", "/e").code() == Code::kIsADirectory);
  REQUIRE(m.remove(kRoot, "/a/b/g").is_ok());
  REQUIRE(m.remove(kRoot, "/a/b").is_ok());
  REQUIRE(m.remove(kRoot, "/").code() == Code::kInvalidArgument);
  REQUIRE(m.stat(kRoot, "/a/../etc").status().code() == Code::kInvalidArgument);
  REQUIRE_THAT(m.stat(kRoot, "/a/../etc").status().message(), Catch::Contains("escape"));
}

TEST_CASE("POSIX permission checks use the caller's uid and groups", "[lustre][mds][perm]") {
  stor::test::TempDir dir;
  auto fs = make_fs(dir);
  Mds& m = fs->mds();
  // Root dir is 0755 root: others may not create there.
  auto s = create(m, kAlice, "/x");
  REQUIRE(s.code() == Code::kPermissionDenied);
  REQUIRE_THAT(s.message(), Catch::Contains("uid 1000"));
  REQUIRE(m.mkdir(kRoot, "/home", 0755).is_ok());
  REQUIRE(m.mkdir(kRoot, "/home/alice", 0700).is_ok());
  REQUIRE(m.chown(kRoot, "/home/alice", 1000, 1000).is_ok());
  REQUIRE(create(m, kAlice, "/home/alice/secret", 0600).is_ok());
  REQUIRE(m.stat(kAlice, "/home/alice/secret")->uid == 1000);
  // Bob cannot even search alice's 0700 home.
  REQUIRE(m.stat(kBob, "/home/alice/secret").status().code() == Code::kPermissionDenied);
  REQUIRE(m.readdir(kBob, "/home/alice").status().code() == Code::kPermissionDenied);
  REQUIRE(m.chmod(kBob, "/home/alice", 0777).code() == Code::kPermissionDenied);
  REQUIRE(m.chmod(kAlice, "/home/alice", 0755).is_ok());
  // Now he may search, but the file itself is 0600.
  REQUIRE(m.stat(kBob, "/home/alice/secret").is_ok());
  REQUIRE(m.open_file(kBob, "/home/alice/secret", kOpenRead, 0).status().code() == Code::kPermissionDenied);
  REQUIRE(m.remove(kBob, "/home/alice/secret").code() == Code::kPermissionDenied);
  // Group access: alice hands the file to group 2000 with g+r; bob is a member.
  REQUIRE(m.chown(kAlice, "/home/alice/secret", UINT32_MAX, 2000).code() == Code::kPermissionDenied);  // not her group
  REQUIRE(m.chown(kRoot, "/home/alice/secret", UINT32_MAX, 2000).is_ok());
  REQUIRE(m.chmod(kAlice, "/home/alice/secret", 0640).is_ok());
  auto r = m.open_file(kBob, "/home/alice/secret", kOpenRead, 0);
  REQUIRE(r.is_ok());
  m.close_file(r->inode);
  REQUIRE(m.open_file(kBob, "/home/alice/secret", kOpenWrite, 0).status().code() == Code::kPermissionDenied);
  // Only root gives files away.
  REQUIRE(m.chown(kAlice, "/home/alice/secret", 1001, UINT32_MAX).code() == Code::kPermissionDenied);
  // Sticky shared directory: bob may not delete alice's file even with write access to the dir.
  REQUIRE(m.mkdir(kRoot, "/tmp", 01777).is_ok());
  REQUIRE(create(m, kAlice, "/tmp/a").is_ok());
  REQUIRE(m.remove(kBob, "/tmp/a").code() == Code::kPermissionDenied);
  REQUIRE(m.rename(kBob, "/tmp/a", "/tmp/b").code() == Code::kPermissionDenied);
  REQUIRE(m.remove(kAlice, "/tmp/a").is_ok());
  // Root bypasses permission bits.
  REQUIRE(m.chmod(kRoot, "/home/alice", 0).is_ok());
  REQUIRE(m.stat(kRoot, "/home/alice/secret").is_ok());
  REQUIRE(m.stat(kAlice, "/home/alice/secret").status().code() == Code::kPermissionDenied);
}

TEST_CASE("rename is atomic to concurrent observers", "[lustre][mds][rename]") {
  stor::test::TempDir dir;
  auto fs = make_fs(dir);
  Mds& m = fs->mds();
  REQUIRE(m.mkdir(kRoot, "/d", 0755).is_ok());
  REQUIRE(m.mkdir(kRoot, "/e", 0755).is_ok());
  REQUIRE(create(m, kRoot, "/d/x").is_ok());
  REQUIRE(create(m, kRoot, "/d/target").is_ok());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::thread observer([&] {
    while (!stop) {
      auto d = m.readdir(kRoot, "/d");
      if (!d) { ++bad; continue; }
      int xs = 0;
      bool target = false;
      for (auto& e : *d) {
        if (e.name == "x" || e.name == "y") ++xs;
        if (e.name == "target") target = true;
      }
      // x/y flip within /d, or the file is over in /e: never in both or neither of x/y unless moved.
      if (xs != 1 || !target) ++bad;
      if (!m.stat(kRoot, "/d/target").is_ok()) ++bad;  // replaced atomically: never missing
    }
  });
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(m.rename(kRoot, i % 2 ? "/d/y" : "/d/x", i % 2 ? "/d/x" : "/d/y").is_ok());
    if (i % 10 == 0) {
      REQUIRE(create(m, kRoot, "/d/newtarget").is_ok());
      REQUIRE(m.rename(kRoot, "/d/newtarget", "/d/target").is_ok());  // replaces the old target
    }
  }
  stop = true;
  observer.join();
  REQUIRE(bad == 0);
  // Cross-directory move keeps exactly one name.
  std::string cur = names(m, "/d").count("x") ? "/d/x" : "/d/y";
  REQUIRE(m.rename(kRoot, cur, "/e/x").is_ok());
  REQUIRE(names(m, "/d") == std::set<std::string>{"target"});
  REQUIRE(names(m, "/e") == std::set<std::string>{"x"});
}

TEST_CASE("concurrent creates and lookups; everything survives a remount", "[lustre][mds][concurrency]") {
  stor::test::TempDir dir;
  MountOptions mo;
  mo.mds.checkpoint_bytes = 64 << 10;  // force several checkpoints mid-workload
  auto fs = make_fs(dir, 4, mo);
  const int kThreads = 4, kPerThread = 1500;
  REQUIRE(fs->mds().mkdir(kRoot, "/shared", 0777).is_ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      Mds& m = fs->mds();
      std::string own = "/t" + std::to_string(t);
      if (!m.mkdir(kRoot, own, 0755).is_ok()) ++failures;
      for (int i = 0; i < kPerThread; ++i) {
        std::string n = std::to_string(i);
        if (!create(m, kRoot, own + "/f" + n).is_ok()) ++failures;
        if (!create(m, kRoot, "/shared/t" + std::to_string(t) + "_" + n).is_ok()) ++failures;
        if (!m.stat(kRoot, own + "/f" + n).is_ok()) ++failures;
        if (i % 100 == 0 && !m.readdir(kRoot, "/shared").is_ok()) ++failures;
      }
    });
  }
  for (auto& t : ts) t.join();
  REQUIRE(failures == 0);
  REQUIRE(names(fs->mds(), "/shared").size() == static_cast<size_t>(kThreads * kPerThread));
  fs.reset();  // unmount
  auto again = FileSystem::mount(dir.path() + "/fs");
  REQUIRE(again.is_ok());
  Mds& m = (*again)->mds();
  REQUIRE(names(m, "/shared").size() == static_cast<size_t>(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t) REQUIRE(names(m, "/t" + std::to_string(t)).size() == static_cast<size_t>(kPerThread));
  REQUIRE(create(m, kRoot, "/shared/t0_0").code() == Code::kAlreadyExists);
}

TEST_CASE("layouts persist: directory defaults are inherited by new files and subdirectories", "[lustre][mds]") {
  stor::test::TempDir dir;
  auto fs = make_fs(dir, 8);
  Mds& m = fs->mds();
  REQUIRE(m.mkdir(kRoot, "/wide", 0755).is_ok());
  REQUIRE(setstripe(dir.path() + "/fs/wide", {{-1, 256 << 10}}).is_ok());
  REQUIRE(m.mkdir(kRoot, "/wide/sub", 0755).is_ok());
  REQUIRE(create(m, kRoot, "/wide/sub/f").is_ok());
  auto l = m.get_layout(kRoot, "/wide/sub/f");
  REQUIRE(l.is_ok());
  REQUIRE(l->first.components(0).targets_size() == 8);
  REQUIRE(l->first.components(0).stripe_size() == (256u << 10));
  // Progressive layout on a new file, and a rejected one.
  REQUIRE(setstripe(dir.path() + "/fs/pfl", {{1, 1 << 20, -1, 64 << 20}, {-1, 1 << 20}}).is_ok());
  auto s = setstripe(dir.path() + "/fs/bad", {{9, 1 << 20}});
  REQUIRE(s.code() == Code::kInvalidArgument);
  REQUIRE_THAT(s.message(), Catch::Contains("exceeds the 8 targets"));
  REQUIRE(setstripe(dir.path() + "/fs/bad", {{1, 12345}}).code() == Code::kInvalidArgument);
  fs.reset();
  auto again = FileSystem::mount(dir.path() + "/fs");
  REQUIRE(again.is_ok());
  auto pfl = (*again)->mds().get_layout(kRoot, "/pfl");
  REQUIRE(pfl.is_ok());
  REQUIRE(pfl->first.components_size() == 2);
  REQUIRE(pfl->first.components(0).targets_size() == 1);
  REQUIRE(pfl->first.components(1).targets_size() == 8);
  auto d = (*again)->mds().get_layout(kRoot, "/wide/sub");
  REQUIRE(d->second);
  REQUIRE(d->first.components(0).stripe_count() == -1);
}

TEST_CASE("WAL replay skips the zero gap of a record whose writer died, stops at a torn tail", "[lustre][wal]") {
  stor::test::TempDir dir;
  std::string path = dir / "wal.1";
  {
    WalWriter w;
    REQUIRE(w.open(path, 0).is_ok());
    for (const char* rec : {"first", "second-record-that-dies", "third"}) REQUIRE(w.append(rec).is_ok());
    REQUIRE(w.sync().is_ok());
  }
  auto replay = [&] {
    std::vector<std::string> got;
    auto end = replay_wal(path, [&](std::string_view p) {
      got.emplace_back(p);
      return Status::ok();
    });
    REQUIRE(end.is_ok());
    return std::make_pair(got, *end);
  };
  auto [all, full_end] = replay();
  REQUIRE(all == std::vector<std::string>{"first", "second-record-that-dies", "third"});
  // Zero the second frame: as if its pwrite never happened after the range was reserved.
  {
    FILE* f = std::fopen(path.c_str(), "r+b");
    REQUIRE(f);
    std::fseek(f, 8 + 5, SEEK_SET);
    std::string zeros(8 + std::strlen("second-record-that-dies"), '\0');
    std::fwrite(zeros.data(), 1, zeros.size(), f);
    std::fclose(f);
  }
  auto [gapped, gapped_end] = replay();
  REQUIRE(gapped == std::vector<std::string>{"first", "third"});
  REQUIRE(gapped_end == full_end);
  // A torn frame at the end is cut off; appending continues after the last intact record.
  {
    FILE* f = std::fopen(path.c_str(), "ab");
    std::fwrite("\x40\x00\x00\x00garbage", 1, 11, f);
    std::fclose(f);
  }
  auto [torn, torn_end] = replay();
  REQUIRE(torn == std::vector<std::string>{"first", "third"});
  REQUIRE(torn_end == full_end);
  WalWriter w;
  REQUIRE(w.open(path, torn_end).is_ok());
  REQUIRE(w.append("fourth").is_ok());
  w.close();
  REQUIRE(replay().first == std::vector<std::string>{"first", "third", "fourth"});
}
