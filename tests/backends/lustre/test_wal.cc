// WAL acknowledgement rule: a sync acknowledges a record only once every byte reserved before it
// is written, and after a failed append nothing later is acknowledged until the log is reopened.
// A test-only hook between an append's reservation and its pwrite makes the interleaving
// deterministic.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/mds.h"
#include "backends/lustre/wal.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace stor::lustre {
struct WalWriterTestPeer {
  static void set_before_write(WalWriter& w, std::function<int(uint64_t, size_t)> f) { w.before_write_ = std::move(f); }
};
struct MdsTestPeer {
  static WalWriter& wal(Mds& m) { return m.wal_; }
};
}  // namespace stor::lustre

namespace {

// What replay (as after a crash or restart right now) finds in the log.
std::vector<std::string> replayed(const std::string& path) {
  std::vector<std::string> out;
  auto r = replay_wal(path, [&](std::string_view p) {
    out.emplace_back(p);
    return Status::ok();
  });
  REQUIRE(r.is_ok());
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Writes the first 8 bytes (the header) of the frame of `payload` at `off`, as an in-flight or
// short pwrite of that frame leaves them.
void write_torn_header(const std::string& path, uint64_t off, const std::string& payload) {
  char hdr[8];
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = crc32c(payload.data(), payload.size());
  std::memcpy(hdr, &len, 4);
  std::memcpy(hdr + 4, &crc, 4);
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, hdr, sizeof hdr, static_cast<off_t>(off)) == 8);
  ::close(fd);
}

// Blocks the first append in its hook until released.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, released = false;
  void enter() {
    std::unique_lock lk(mu);
    entered = true;
    cv.notify_all();
    cv.wait(lk, [&] { return released; });
  }
  void wait_entered() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return entered; });
  }
  void release() {
    std::lock_guard lk(mu);
    released = true;
    cv.notify_all();
  }
};

}  // namespace

TEST_CASE("WAL: a sync waits for every earlier reserved record before it acknowledges", "[lustre][wal]") {
  stor::test::TempDir dir;
  const std::string path = dir / "wal.1";
  WalWriter w;
  REQUIRE(w.open(path, 0).is_ok());
  const std::string a = "record A (reserved first, written last)", b = "record B";

  Gate gate;
  std::atomic<int> calls{0};
  WalWriterTestPeer::set_before_write(w, [&](uint64_t off, size_t) {
    if (calls++ == 0) {
      // A's pwrite has copied its header into the page cache when B's sync runs.
      write_torn_header(path, off, a);
      gate.enter();
    }
    return 0;
  });
  auto ta = std::async(std::launch::async, [&] { return w.append(a); });
  gate.wait_entered();
  REQUIRE(w.append(b).is_ok());
  auto tb = std::async(std::launch::async, [&] { return w.sync(); });

  // Fixed: B's sync cannot return while A is unwritten. The window only bounds how long we give
  // an (unfixed) early acknowledgement to show up.
  bool acked_early = tb.wait_for(std::chrono::milliseconds(300)) == std::future_status::ready;
  if (acked_early) {
    // A crash now: the acknowledged B must be replayed.
    CHECK(contains(replayed(path), b));
  }
  CHECK_FALSE(acked_early);

  gate.release();
  REQUIRE(ta.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  REQUIRE(ta.get().is_ok());
  REQUIRE(tb.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  REQUIRE(tb.get().is_ok());
  auto recs = replayed(path);
  REQUIRE(recs.size() == 2);
  CHECK(recs[0] == a);
  CHECK(recs[1] == b);
}

TEST_CASE("WAL: after a failed append nothing later is acknowledged until the log is reopened", "[lustre][wal]") {
  stor::test::TempDir dir;
  const std::string path = dir / "wal.1";
  WalWriter w;
  REQUIRE(w.open(path, 0).is_ok());
  REQUIRE(w.append("before").is_ok());
  REQUIRE(w.sync().is_ok());

  const bool torn = GENERATE(true, false);
  INFO((torn ? "short write then ENOSPC" : "EIO, nothing written"));
  const std::string a = "record A (its write fails)", b = "record B", c = "record C";
  bool fail_next = true;
  WalWriterTestPeer::set_before_write(w, [&](uint64_t off, size_t) {
    if (!fail_next) return 0;
    fail_next = false;
    if (torn) write_torn_header(path, off, a);
    return torn ? ENOSPC : EIO;
  });
  CHECK_FALSE(w.append(a).is_ok());

  Status sb = w.append(b);
  Status ss = w.sync();
  bool acked = sb.is_ok() && ss.is_ok();
  if (acked) {
    // A restart now: the acknowledged B must be replayed.
    CHECK(contains(replayed(path), b));
  }
  CHECK_FALSE(acked);
  CHECK_FALSE(ss.is_ok());
  CHECK(ss.message().find("broken") != std::string::npos);
  CHECK_FALSE(w.sync().is_ok());  // stays broken

  // Recovery reopens the log at its intact prefix; appends and syncs work again.
  w.close();
  auto valid = replay_wal(path, [](std::string_view) { return Status::ok(); });
  REQUIRE(valid.is_ok());
  REQUIRE(w.open(path, *valid).is_ok());
  REQUIRE(w.append(c).is_ok());
  REQUIRE(w.sync().is_ok());
  auto recs = replayed(path);
  CHECK(contains(recs, "before"));
  CHECK(contains(recs, c));
  CHECK_FALSE(contains(recs, a));
}

TEST_CASE("MDS: after a failed WAL write, operations fail until a checkpoint starts a fresh log", "[lustre][wal]") {
  stor::test::TempDir dir;
  MkfsOptions o;
  o.targets = 2;
  o.root_mode = 0755;
  REQUIRE(mkfs(dir.path() + "/fs", o).is_ok());
  MountOptions mo;
  mo.mds.sync_each_op = GENERATE(false, true);
  INFO("sync_each_op " << mo.mds.sync_each_op);
  auto fs = FileSystem::mount(dir.path() + "/fs", mo);
  REQUIRE(fs.is_ok());
  Mds& m = (*fs)->mds();
  const Identity root{0, {0}};
  REQUIRE(m.mkdir(root, "/a", 0755).is_ok());

  bool fail_next = true;
  WalWriterTestPeer::set_before_write(MdsTestPeer::wal(m), [&](uint64_t, size_t) {
    if (!fail_next) return 0;
    fail_next = false;
    return EIO;
  });
  CHECK_FALSE(m.mkdir(root, "/b", 0755).is_ok());
  CHECK_FALSE(m.mkdir(root, "/c", 0755).is_ok());  // behind the gap: not acknowledged
  CHECK_FALSE(m.stat(root, "/b").is_ok());
  CHECK_FALSE(m.stat(root, "/c").is_ok());

  // sync checkpoints what memory holds (every acknowledged operation) and rotates the log.
  REQUIRE(m.sync().is_ok());
  REQUIRE(m.mkdir(root, "/d", 0755).is_ok());
  REQUIRE(m.sync().is_ok());
  CHECK(m.stat(root, "/a").is_ok());
  CHECK(m.stat(root, "/d").is_ok());

  // What a restart loads: checkpoint + the fresh log.
  fs->reset();
  auto again = FileSystem::mount(dir.path() + "/fs", mo);
  REQUIRE(again.is_ok());
  CHECK((*again)->mds().stat(root, "/a").is_ok());
  CHECK((*again)->mds().stat(root, "/d").is_ok());
  CHECK_FALSE((*again)->mds().stat(root, "/b").is_ok());
  CHECK_FALSE((*again)->mds().stat(root, "/c").is_ok());
}

TEST_CASE("WAL: concurrent appends and group-committed syncs acknowledge only replayable records", "[lustre][wal]") {
  stor::test::TempDir dir;
  const std::string path = dir / "wal.1";
  WalWriter w;
  REQUIRE(w.open(path, 0).is_ok());
  constexpr int kThreads = 4, kEach = 200;
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        std::string rec = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!w.append(rec).is_ok() || !w.sync().is_ok()) ++failures;
      }
    });
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  auto recs = replayed(path);
  CHECK(recs.size() == size_t{kThreads} * kEach);
  CHECK(w.size() == std::filesystem::file_size(path));
}
