// Several MDTs (DNE): two stor-mds daemons and two stor-targets (child processes) serve one
// namespace; directories spread over the MDTs, clients go straight to the MDT holding a
// directory, and cross-MDT mkdir / rmdir survive a crash of either MDS at every step.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "net/auth.h"
#include "stor/store.h"
#include "target_process.h"
#include "two_targets.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;
using stor::test::TargetProcess;

namespace {

// A free port on 127.0.0.1: the superblock names every MDT's endpoint before the MDSs start.
// Below the ephemeral range (32768..), so no outgoing connection takes it meanwhile.
std::string free_endpoint() {
  for (int tries = 0; tries < 1000; ++tries) {
    const uint16_t port = static_cast<uint16_t>(20000 + (::random() ^ ::getpid()) % 12000);
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return "tcp://127.0.0.1:" + std::to_string(port);
  }
  FAIL("no free port");
  return "";
}

struct DneCluster : stor::test::TwoTargets {
  std::string root;
  std::unique_ptr<TargetProcess> mds[2];
  std::string mdt_endpoint[2];

  DneCluster() {
    root = base / "fs";
    MkfsOptions o = mkfs_options();
    mdt_endpoint[0] = free_endpoint();
    mdt_endpoint[1] = free_endpoint();
    o.mdt_endpoints = {mdt_endpoint[0], mdt_endpoint[1]};
    REQUIRE(mkfs(root, o).is_ok());
    ::setenv("STOR_LUSTRE_KEY_FILE", key.c_str(), 1);  // admin calls (df) of a cluster URI
  }
  void start(int k, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {STOR_MDS_PATH, "--root", root, "--listen", mdt_endpoint[k], "--key-file", key,
                                     "--mdt-index", std::to_string(k)};
    args.insert(args.end(), extra.begin(), extra.end());
    // Restarted on its port right after a crash: the port may still be held for a moment
    // (bind fails, the daemon exits): retry.
    for (int tries = 0;; ++tries) {
      try {
        mds[k] = std::make_unique<TargetProcess>(TargetProcess::Args{args});
        return;
      } catch (const std::exception& e) {
        if (tries >= 50) FAIL("stor-mds of MDT " << k << " does not start: " << e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  void start_all() {
    start(0);
    start(1);
  }
  bool stop_all() {
    bool ok = mds[0]->stop_cleanly();
    return mds[1]->stop_cleanly() && ok;
  }
  std::string uri(const std::string& path) const {
    return "lustre://" + mdt_endpoint[0].substr(std::strlen("tcp://")) + path;
  }
  std::vector<admin::MdtUsage> mdts() const {
    auto r = admin::df(uri("/"));
    REQUIRE(r.is_ok());
    return r->mdts;
  }
};

void write_file(Store& s, const std::string& uri, size_t n, uint64_t seed) {
  auto f = s.open(uri, kOpenWrite | kOpenCreate | kOpenExclusive);
  REQUIRE(f.is_ok());
  auto data = stor::test::pattern(n, seed);
  REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
  REQUIRE(f->close().is_ok());
}

bool same_data(Store& s, const std::string& uri, size_t n, uint64_t seed) {
  auto f = s.open(uri, kOpenRead);
  if (!f.is_ok()) return false;
  std::vector<std::byte> got(n + 1);
  auto r = f->read(got.data(), got.size(), 0);
  auto want = stor::test::pattern(n, seed);
  return r.is_ok() && *r == n && std::memcmp(got.data(), want.data(), n) == 0;
}

void check_fsck_clean(const DneCluster& c) {
  auto report = fsck(c.root);
  REQUIRE(report.is_ok());
  std::string problems;
  for (auto& p : report->problems) problems += p + "\n";
  INFO(problems);
  CHECK(report->problems.empty());
  CHECK(report->orphans == 0);
  CHECK(report->overlong == 0);
}

}  // namespace

TEST_CASE("directories spread over two MDTs", "[lustre][dne]") {
  DneCluster c;
  c.start_all();
  auto s = c.store();
  // Hash placement: 16 top-level directories land on both MDTs; each holds a file.
  for (int i = 0; i < 16; ++i) {
    const std::string d = c.uri("/d" + std::to_string(i));
    REQUIRE(s->mkdir(d, 0777).is_ok());
    write_file(*s, d + "/f", 3901, static_cast<uint64_t>(i));
  }
  auto usage = c.mdts();
  REQUIRE(usage.size() == 2);
  CHECK(usage[0].endpoint == c.mdt_endpoint[0]);
  CHECK(usage[1].inodes > 4);  // its root and /.stor-remote, plus directories and files
  CHECK(usage[0].inodes > 4);
  for (int i = 0; i < 16; ++i) {
    const std::string d = c.uri("/d" + std::to_string(i));
    CHECK(same_data(*s, d + "/f", 3901, static_cast<uint64_t>(i)));
    auto st = s->stat(d + "/f");
    REQUIRE(st.is_ok());
    CHECK(st->size == 3901);
    auto listed = s->list(d);
    REQUIRE(listed.is_ok());
    REQUIRE(listed->size() == 1);
    CHECK((*listed)[0].name == "f");
  }
  auto top = s->list(c.uri("/"));
  REQUIRE(top.is_ok());
  CHECK(top->size() == 16);  // /.stor-remote is not listed

  // `lfs mkdir -i 1`: the directory and its files' inodes live on MDT 1, and so does the work
  // on them (MDT 0 holds only the entry).
  auto on1 = c.store({{"lustre.mkdir_mdt", "1"}});
  auto on0 = c.store({{"lustre.mkdir_mdt", "0"}});
  auto before = c.mdts();
  REQUIRE(on1->mkdir(c.uri("/x"), 0777).is_ok());
  for (int k = 0; k < 10; ++k) write_file(*s, c.uri("/x/f" + std::to_string(k)), 100, 7);
  auto after = c.mdts();
  CHECK(after[1].inodes == before[1].inodes + 11);
  CHECK(after[0].inodes == before[0].inodes + 1);
  // Nested the other way: /x/y on MDT 0 again, below a directory of MDT 1.
  REQUIRE(on0->mkdir(c.uri("/x/y"), 0777).is_ok());
  REQUIRE(s->mkdir(c.uri("/x/y/z"), 0777).is_ok());
  write_file(*s, c.uri("/x/y/z/deep"), 5000, 9);
  CHECK(same_data(*c.store(), c.uri("/x/y/z/deep"), 5000, 9));  // a fresh client finds its way
  CHECK(s->stat(c.uri("/x/y")).value().type == FileType::kDirectory);
  CHECK(on1->mkdir(c.uri("/x/y"), 0777).code() == Code::kAlreadyExists);
  CHECK(s->stat(c.uri("/x/nope/f")).status().code() == Code::kNotFound);
  CHECK(on1->mkdir(c.uri("/x/y/../q"), 0777).code() == Code::kInvalidArgument);

  // rmdir of a directory on another MDT: refused while not empty, then gone from both.
  CHECK(s->remove(c.uri("/x")).code() == Code::kNotEmpty);
  CHECK(s->stat(c.uri("/x/f3")).is_ok());
  REQUIRE(on1->mkdir(c.uri("/empty"), 0777).is_ok());
  REQUIRE(s->remove(c.uri("/empty")).is_ok());
  CHECK(s->stat(c.uri("/empty")).status().code() == Code::kNotFound);
  CHECK(on1->mkdir(c.uri("/empty"), 0777).is_ok());  // the name is free again

  // Rename of a remote directory's entry within its parent's MDT: its contents follow.
  REQUIRE(s->rename(c.uri("/x"), c.uri("/x2")).is_ok());
  CHECK(s->stat(c.uri("/x/f3")).status().code() == Code::kNotFound);
  CHECK(same_data(*s, c.uri("/x2/y/z/deep"), 5000, 9));
  // Across MDTs: a file moves (and back: "A file renames across MDTs" below has the details);
  // directories do, with their contents: a remote entry (/x2/y, on MDT 0, from MDT 1 to MDT 0's
  // root) and a directory of MDT 0 (/tree) into a directory of MDT 1 (it stays on MDT 0, named
  // there by a remote entry).
  REQUIRE(s->rename(c.uri("/x2/f3"), c.uri("/x2/y/f3")).is_ok());
  CHECK(same_data(*c.store(), c.uri("/x2/y/f3"), 100, 7));
  REQUIRE(s->rename(c.uri("/x2/y/f3"), c.uri("/x2/f3")).is_ok());
  CHECK(same_data(*c.store(), c.uri("/x2/f3"), 100, 7));
  REQUIRE(s->rename(c.uri("/x2/y"), c.uri("/y-moved")).is_ok());
  CHECK(s->stat(c.uri("/x2/y")).status().code() == Code::kNotFound);
  CHECK(same_data(*c.store(), c.uri("/y-moved/z/deep"), 5000, 9));
  REQUIRE(on0->mkdir(c.uri("/tree"), 0777).is_ok());
  REQUIRE(s->mkdir(c.uri("/tree/leaf"), 0777).is_ok());
  write_file(*s, c.uri("/tree/leaf/data"), 777, 4);
  REQUIRE(s->rename(c.uri("/tree"), c.uri("/x2/tree")).is_ok());
  CHECK(s->stat(c.uri("/tree")).status().code() == Code::kNotFound);
  CHECK(same_data(*c.store(), c.uri("/x2/tree/leaf/data"), 777, 4));
  write_file(*s, c.uri("/x2/tree/leaf/more"), 10, 5);
  CHECK(s->rename(c.uri("/x2"), c.uri("/x2/tree/inside")).code() == Code::kInvalidArgument);
  CHECK(s->rename(c.uri("/d1"), c.uri("/x2/tree")).code() != Code::kOk);  // exists: not replaced

  // Root squash on MDT 1 too: uid 0 creates as 65534 there.
  auto as_root = c.store({{"lustre.uid", "0"}, {"lustre.gids", "0"}});
  write_file(*as_root, c.uri("/x2/by-root"), 10, 1);
  CHECK(s->stat(c.uri("/x2/by-root")).value().uid == 65534);

  // A wrong key is refused by MDT 1 as by MDT 0 (the client reaches it only with the key).
  {
    stor::test::TempDir other;
    const std::string bad = other / "bad.key";
    REQUIRE(transport::write_key_file(bad, transport::AuthKey::generate().value()).is_ok());
    StoreOptions so;
    so.settings["lustre.key_file"] = bad;
    auto wrong = Store::create(so).value();
    CHECK(wrong->stat(c.uri("/x2/f3")).status().code() == Code::kPermissionDenied);
  }

  // Restart both MDSs: everything is where it was; fsck finds every remote entry consistent.
  REQUIRE(c.stop_all());
  check_fsck_clean(c);
  c.start_all();
  auto s2 = c.store();
  CHECK(same_data(*s2, c.uri("/y-moved/z/deep"), 5000, 9));
  CHECK(same_data(*s2, c.uri("/x2/tree/leaf/data"), 777, 4));
  CHECK(same_data(*s2, c.uri("/d5/f"), 3901, 5));
  REQUIRE(c.stop_all());
}

TEST_CASE("A file renames across MDTs: remote file entries", "[lustre][dne]") {
  DneCluster c;
  c.start_all();
  auto s = c.store();
  auto on0 = c.store({{"lustre.mkdir_mdt", "0"}});
  auto on1 = c.store({{"lustre.mkdir_mdt", "1"}});
  REQUIRE(on0->mkdir(c.uri("/a"), 0777).is_ok());
  REQUIRE(on1->mkdir(c.uri("/b"), 0777).is_ok());
  {
    auto f = s->open(c.uri("/a/f"), kOpenWrite | kOpenCreate | kOpenExclusive, 0640);
    REQUIRE(f.is_ok());
    auto data = stor::test::pattern(300000, 11);
    REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  const FileInfo before = s->stat(c.uri("/a/f")).value();
  const auto stripes = admin::getstripe(c.uri("/a/f"));
  REQUIRE(stripes.is_ok());
  const auto usage0 = c.mdts();

  // The inode stays on MDT 0 (no data moves); MDT 1 gets a remote entry for it.
  REQUIRE(s->rename(c.uri("/a/f"), c.uri("/b/g")).is_ok());
  auto fresh = c.store();
  CHECK(fresh->stat(c.uri("/a/f")).status().code() == Code::kNotFound);
  CHECK(same_data(*fresh, c.uri("/b/g"), 300000, 11));
  const FileInfo moved = fresh->stat(c.uri("/b/g")).value();
  CHECK(moved.type == FileType::kRegular);
  CHECK(moved.size == before.size);
  CHECK(moved.mode == before.mode);
  CHECK(moved.uid == before.uid);
  CHECK(moved.gid == before.gid);
  auto stripes2 = admin::getstripe(c.uri("/b/g"));
  REQUIRE(stripes2.is_ok());
  CHECK(stripes2->layout.components.size() == stripes->layout.components.size());
  auto listed = fresh->list(c.uri("/b"));
  REQUIRE(listed.is_ok());
  REQUIRE(listed->size() == 1);
  CHECK((*listed)[0].name == "g");
  CHECK((*listed)[0].type == FileType::kRegular);
  CHECK((*listed)[0].size == 300000);  // from MDT 0, where the inode is
  CHECK(fresh->list(c.uri("/a")).value().empty());
  auto usage1 = c.mdts();
  CHECK(usage1[0].inodes == usage0[0].inodes);
  CHECK(usage1[1].inodes == usage0[1].inodes + 1);

  // Writes, truncate and create-open through the new name reach the inode on MDT 0.
  {
    auto f = fresh->open(c.uri("/b/g"), kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(f->truncate(1000).is_ok());
    REQUIRE(f->close().is_ok());
  }
  CHECK(c.store()->stat(c.uri("/b/g")).value().size == 1000);
  CHECK(same_data(*c.store(), c.uri("/b/g"), 1000, 11));
  CHECK(s->mkdir(c.uri("/b/g"), 0777).code() == Code::kAlreadyExists);

  // setstripe of an empty file through its remote entry sets the layout of the inode on MDT 0.
  {
    auto f = s->open(c.uri("/a/empty"), kOpenWrite | kOpenCreate | kOpenExclusive);
    REQUIRE(f.is_ok());
    REQUIRE(f->close().is_ok());
    REQUIRE(s->rename(c.uri("/a/empty"), c.uri("/b/empty")).is_ok());
    REQUIRE(admin::setstripe(c.uri("/b/empty"), {admin::StripeSpec{1, 128 << 10}}).is_ok());
    auto gs = admin::getstripe(c.uri("/b/empty"));
    REQUIRE(gs.is_ok());
    REQUIRE(gs->layout.components.size() == 1);
    CHECK(gs->layout.components[0].targets.size() == 1);
    CHECK(gs->layout.components[0].stripe_size == (128u << 10));
    REQUIRE(s->remove(c.uri("/b/empty")).is_ok());
  }

  // Within MDT 1 the remote entry renames like any entry; back on MDT 0 the file leaves
  // /.stor-remote for its new name (no remote entry left behind).
  REQUIRE(s->rename(c.uri("/b/g"), c.uri("/b/h")).is_ok());
  CHECK(same_data(*c.store(), c.uri("/b/h"), 1000, 11));
  REQUIRE(s->rename(c.uri("/b/h"), c.uri("/a/home")).is_ok());
  CHECK(c.store()->stat(c.uri("/b/h")).status().code() == Code::kNotFound);
  CHECK(same_data(*c.store(), c.uri("/a/home"), 1000, 11));
  auto usage2 = c.mdts();
  CHECK(usage2[1].inodes == usage0[1].inodes);
  CHECK(usage2[0].inodes == usage0[0].inodes);

  // Over an existing file of the other MDT (POSIX rename replaces it, in one step there); over
  // a directory: IsADirectory; a file does not replace a remote entry of a third place.
  write_file(*s, c.uri("/b/victim"), 5000, 12);
  REQUIRE(s->rename(c.uri("/a/home"), c.uri("/b/victim")).is_ok());
  CHECK(same_data(*c.store(), c.uri("/b/victim"), 1000, 11));
  CHECK(c.store()->stat(c.uri("/a/home")).status().code() == Code::kNotFound);
  write_file(*s, c.uri("/a/old"), 3000, 13);
  REQUIRE(s->rename(c.uri("/b/victim"), c.uri("/a/old")).is_ok());  // home again, replacing
  CHECK(same_data(*c.store(), c.uri("/a/old"), 1000, 11));
  REQUIRE(on1->mkdir(c.uri("/b/dir"), 0777).is_ok());
  CHECK(s->rename(c.uri("/a/old"), c.uri("/b/dir")).code() == Code::kIsADirectory);
  CHECK(same_data(*c.store(), c.uri("/a/old"), 1000, 11));
  // A directory replaces an empty directory of the other MDT, not a file or a non-empty one.
  REQUIRE(on0->mkdir(c.uri("/a/sd"), 0777).is_ok());
  write_file(*s, c.uri("/a/sd/in"), 600, 15);
  REQUIRE(on1->mkdir(c.uri("/b/full"), 0777).is_ok());
  write_file(*s, c.uri("/b/full/x"), 10, 16);
  CHECK(s->rename(c.uri("/a/sd"), c.uri("/b/full")).code() == Code::kNotEmpty);
  write_file(*s, c.uri("/b/plain"), 10, 17);
  CHECK(s->rename(c.uri("/a/sd"), c.uri("/b/plain")).code() == Code::kNotADirectory);
  REQUIRE(s->remove(c.uri("/b/plain")).is_ok());
  REQUIRE(s->remove(c.uri("/b/full/x")).is_ok());
  REQUIRE(s->rename(c.uri("/a/sd"), c.uri("/b/full")).is_ok());
  CHECK(same_data(*c.store(), c.uri("/b/full/in"), 600, 15));
  CHECK(c.store()->stat(c.uri("/a/sd")).status().code() == Code::kNotFound);
  REQUIRE(s->remove(c.uri("/b/full/in")).is_ok());
  REQUIRE(s->remove(c.uri("/b/full")).is_ok());

  // Unlink of a remote file entry takes the inode and its objects on the other MDT with it.
  REQUIRE(s->rename(c.uri("/a/old"), c.uri("/b/doomed")).is_ok());
  REQUIRE(s->remove(c.uri("/b/doomed")).is_ok());
  CHECK(c.store()->stat(c.uri("/b/doomed")).status().code() == Code::kNotFound);
  auto usage3 = c.mdts();
  CHECK(usage3[0].inodes == usage0[0].inodes - 1);
  CHECK(usage3[1].inodes == usage0[1].inodes + 1);  // /b/dir

  // A moved file stays where it went over a restart; fsck knows remote file entries (and the
  // objects of the unlinked and replaced files are gone: no orphans).
  write_file(*s, c.uri("/a/keep"), 4000, 14);
  REQUIRE(s->rename(c.uri("/a/keep"), c.uri("/b/kept")).is_ok());
  REQUIRE(c.stop_all());
  check_fsck_clean(c);
  c.start_all();
  CHECK(same_data(*c.store(), c.uri("/b/kept"), 4000, 14));
  REQUIRE(c.stop_all());

  // A remote file entry whose file is gone is reported (dangling).
  {
    MountOptions mo;
    mo.mdt_index = 0;
    auto mdt0 = FileSystem::mount(c.root, mo);
    REQUIRE(mdt0.is_ok());
    auto names = (*mdt0)->mds().root_names();
    REQUIRE(names.size() == 1);
    Identity root;
    REQUIRE((*mdt0)->mds().remove(root, std::string("/") + kRemoteDirName + "/" + names[0]).is_ok());
  }
  auto report = fsck(c.root);
  REQUIRE(report.is_ok());
  REQUIRE(report->problems.size() == 1);
  CHECK(report->problems[0].find("dangling") != std::string::npos);
  CHECK(report->orphans == 0);
}

namespace {

// One cross-MDT operation from the client while one MDS is set to die at `step`; the dead MDS is
// restarted on its port, the client's call rides it out (reconnect + resend), and afterwards the
// operation is wholly done: visible and usable, and fsck clean across both MDTs.
enum class Op { kMkdir, kRmdir, kRename, kFileRename, kFileUnlink, kFileRenameBack };

void crash_case(DneCluster& c, int victim, const std::vector<std::string>& crash_flags, Op what, int n) {
  const bool rmdir = what == Op::kRmdir;
  const std::string dir = c.uri("/cx" + std::to_string(n));
  auto client = c.store({{"lustre.mkdir_mdt", "1"}, {"lustre.reconnect_timeout_ms", "30000"}});
  // Rename: a directory of MDT 0 (with a file) into a directory of MDT 1, coordinated by MDT 0.
  const std::string src = c.uri("/mv" + std::to_string(n)), into = c.uri("/into" + std::to_string(n));
  if (what == Op::kRename) {
    REQUIRE(c.store({{"lustre.mkdir_mdt", "0"}})->mkdir(src, 0777).is_ok());
    write_file(*client, src + "/f", 3901, 8);
    REQUIRE(client->mkdir(into, 0777).is_ok());
  }
  if (rmdir) REQUIRE(client->mkdir(dir, 0777).is_ok());
  // Files: a file of MDT 0 (in src) to a directory of MDT 1, coordinated by MDT 0; unlink and
  // rename back home of a remote file entry on MDT 0 (/fN) whose inode lives on MDT 1.
  const std::string file_src = src + "/f", file_dst = into + "/moved-f", entry = c.uri("/f" + std::to_string(n));
  if (what == Op::kFileRename) {
    REQUIRE(c.store({{"lustre.mkdir_mdt", "0"}})->mkdir(src, 0777).is_ok());
    write_file(*client, file_src, 3901, 8);
    REQUIRE(client->mkdir(into, 0777).is_ok());
    write_file(*client, file_dst, 777, 9);  // replaced by the rename (objects reaped: fsck)
  }
  if (what == Op::kFileUnlink || what == Op::kFileRenameBack) {
    REQUIRE(client->mkdir(into, 0777).is_ok());
    write_file(*client, into + "/f", 3901, 8);
    REQUIRE(client->rename(into + "/f", entry).is_ok());
    REQUIRE(same_data(*client, entry, 3901, 8));
  }
  REQUIRE(c.mds[victim]->stop_cleanly());
  c.start(victim, crash_flags);
  Status result;
  std::thread op([&] {
    switch (what) {
      case Op::kRename: result = client->rename(src, into + "/moved"); break;
      case Op::kRmdir: result = client->remove(dir); break;
      case Op::kMkdir: result = client->mkdir(dir, 0777); break;
      case Op::kFileRename: result = client->rename(file_src, file_dst); break;
      case Op::kFileUnlink: result = client->remove(entry); break;
      case Op::kFileRenameBack: result = client->rename(entry, into + "/back"); break;
    }
  });
  bool restarted = false;
  for (int i = 0; i < 3000 && !restarted; ++i) {
    if (c.mds[victim]->exited()) {
      c.start(victim);
      restarted = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  op.join();
  INFO("victim MDT " << victim << " op " << static_cast<int>(what) << " flags " << crash_flags[0] << " " << crash_flags[1]);
  CHECK(restarted);
  CHECK(result.is_ok());
  auto fresh = c.store();
  if (what == Op::kFileRename) {
    CHECK(fresh->stat(file_src).status().code() == Code::kNotFound);
    CHECK(same_data(*fresh, file_dst, 3901, 8));
    CHECK(fresh->list(into).value().size() == 1);
    CHECK(fresh->list(src).value().empty());
  } else if (what == Op::kFileUnlink) {
    CHECK(fresh->stat(entry).status().code() == Code::kNotFound);
    CHECK(fresh->list(into).value().empty());
    write_file(*fresh, entry, 10, 1);  // the name is free again
  } else if (what == Op::kFileRenameBack) {
    CHECK(fresh->stat(entry).status().code() == Code::kNotFound);
    CHECK(same_data(*fresh, into + "/back", 3901, 8));
  } else if (what == Op::kRename) {
    CHECK(fresh->stat(src).status().code() == Code::kNotFound);
    CHECK(same_data(*fresh, into + "/moved/f", 3901, 8));
    auto listed = fresh->list(into);
    REQUIRE(listed.is_ok());
    CHECK(listed->size() == 1);
  } else if (rmdir) {
    CHECK(fresh->stat(dir).status().code() == Code::kNotFound);
    CHECK(client->mkdir(dir, 0777).is_ok());  // the name is free again
    REQUIRE(fresh->remove(dir).is_ok());
  } else {
    REQUIRE(fresh->stat(dir).is_ok());
    write_file(*fresh, dir + "/f", 3901, 3);
    CHECK(same_data(*client, dir + "/f", 3901, 3));
    REQUIRE(fresh->remove(dir + "/f").is_ok());
  }
  // Both MDSs stopped: fsck sees no unfinished intent, no dangling entry, no orphan directory.
  REQUIRE(c.stop_all());
  check_fsck_clean(c);
  c.start_all();
}

}  // namespace

TEST_CASE("cross-MDT mkdir, rmdir, rename and file rename/unlink survive a crash of either MDS at every step",
          "[lustre][dne][recovery]") {
  DneCluster c;
  c.start_all();
  int n = 0;
  for (Op what : {Op::kMkdir, Op::kRmdir, Op::kRename, Op::kFileRename, Op::kFileUnlink, Op::kFileRenameBack}) {
    // The coordinator (MDT 0, holding the parent) dies after logging the intent, after the
    // other MDT did its part, and after committing (before replying).
    for (const char* step : {"intent", "peer", "commit"}) crash_case(c, 0, {"--crash-point", step}, what, n++);
    // The other MDT dies right after applying its part, before answering the coordinator.
    crash_case(c, 1, {"--crash-after-mutations", "1"}, what, n++);
  }
  REQUIRE(c.stop_all());
}

TEST_CASE("kill -9 of either MDS during cross-MDT mkdirs and rmdirs", "[lustre][dne][recovery]") {
  DneCluster c;
  c.start_all();
  auto client = c.store({{"lustre.mkdir_mdt", "1"}, {"lustre.reconnect_timeout_ms", "30000"}});
  constexpr int kDirs = 40;
  std::atomic<int> acked{0};
  Status failed;
  std::thread work([&] {
    for (int i = 0; i < kDirs; ++i) {
      const std::string d = c.uri("/k" + std::to_string(i));
      Status s = client->mkdir(d, 0777);
      if (s.is_ok() && i % 2 == 1) s = client->remove(d);
      if (!s.is_ok()) {
        failed = s;
        return;
      }
      acked = i + 1;
    }
  });
  for (int victim : {1, 0}) {
    const int at = victim == 1 ? kDirs / 4 : kDirs / 2;
    while (acked.load() < at && failed.is_ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    c.mds[victim]->kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    c.start(victim);
  }
  work.join();
  INFO(failed.to_string());
  REQUIRE(failed.is_ok());
  REQUIRE(acked.load() == kDirs);
  auto fresh = c.store();
  for (int i = 0; i < kDirs; ++i) {
    auto st = fresh->stat(c.uri("/k" + std::to_string(i)));
    CHECK(st.status().code() == (i % 2 == 1 ? Code::kNotFound : Code::kOk));
  }
  REQUIRE(c.stop_all());
  check_fsck_clean(c);
}
