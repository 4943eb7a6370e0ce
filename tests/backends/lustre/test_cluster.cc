// Cluster mode: a stor-mds daemon and two stor-targets (child processes) serve one file system
// that several client processes mount at once as lustre://127.0.0.1:PORT/... Workers are this
// binary re-executed ([.mdsd-child]), so each is a fresh process with its own mount.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <utility>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/remote_mds.h"
#include "net/auth.h"
#include "net/transport.h"
#include "stor/store.h"
#include "stor/target.h"
#include "target_process.h"
#include "two_targets.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;
using stor::test::TargetProcess;

namespace {

constexpr size_t kChunk = 300 * 1024 + 77;  // per writer, not stripe aligned
constexpr int kWorkers = 4;
constexpr int kFilesPerWorker = 24;
constexpr int kMixedIterations = 40;

std::string self_exe() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  return exe;
}

struct Cluster : stor::test::TwoTargets {
  std::unique_ptr<TargetProcess> mds;
  std::string root;
  std::string authority;  // HOST:PORT of the MDS

  Cluster() {
    root = base / "fs";
    REQUIRE(mkfs(root, mkfs_options()).is_ok());
  }
  void start_mds(std::vector<std::string> extra = {}, const std::string& listen = "tcp://127.0.0.1:0",
                 const std::string& log_file = {}) {
    std::vector<std::string> args = {STOR_MDS_PATH, "--root", root, "--listen", listen, "--key-file", key};
    args.insert(args.end(), extra.begin(), extra.end());
    mds = std::make_unique<TargetProcess>(TargetProcess::Args{args}, log_file);
    authority = mds->endpoint().substr(std::strlen("tcp://"));
  }
  // The admin calls (getstripe/setstripe/df of a cluster URI) take the key from the environment.
  void export_key() const { ::setenv("STOR_LUSTRE_KEY_FILE", key.c_str(), 1); }
  std::string uri(const std::string& path) const { return "lustre://" + authority + path; }
};

// Runs `n` copies of this binary as [.mdsd-child] with role/index/uri in the environment (the
// key only through STOR_LUSTRE_KEY_FILE); returns how many exited 0.
// base_uri gets the worker index appended when per_worker_dir. on_ack(total) runs in this
// process for each acknowledged iteration of the "mixed" role.
int run_workers(const Cluster& c, const std::string& role, int n, const std::string& base_uri,
                bool per_worker_dir = false, const std::function<void(int)>& on_ack = {},
                const std::function<void()>& on_tick = {}) {
  const std::string exe = self_exe();
  std::vector<pid_t> pids;
  int ack[2];
  REQUIRE(::pipe(ack) == 0);
  for (int i = 0; i < n; ++i) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(ack[0]);
      ::setenv("STOR_MDSD_ACK_FD", std::to_string(ack[1]).c_str(), 1);
      ::setenv("STOR_MDSD_ROLE", role.c_str(), 1);
      ::setenv("STOR_MDSD_INDEX", std::to_string(i).c_str(), 1);
      ::setenv("STOR_MDSD_URI", (base_uri + (per_worker_dir ? std::to_string(i) : "")).c_str(), 1);
      ::setenv("STOR_LUSTRE_KEY_FILE", c.key.c_str(), 1);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::execl(exe.c_str(), exe.c_str(), "[.mdsd-child]", static_cast<char*>(nullptr));
      _exit(127);
    }
    pids.push_back(pid);
  }
  ::close(ack[1]);
  int acks = 0;
  char buf[256];
  for (;;) {
    pollfd p{ack[0], POLLIN, 0};
    if (::poll(&p, 1, 20) == 0) {
      if (on_tick) on_tick();
      continue;
    }
    ssize_t r = ::read(ack[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;  // every worker has exited
    for (ssize_t k = 0; k < r; ++k)
      if (on_ack) on_ack(++acks);
  }
  ::close(ack[0]);
  int ok = 0;
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ++ok;
  }
  return ok;
}

int fail(int code, const Status& s) {
  std::fprintf(stderr, "mdsd child: %s\n", s.to_string().c_str());
  return code;
}

int child_main() {
  const char* role = std::getenv("STOR_MDSD_ROLE");
  const char* index_text = std::getenv("STOR_MDSD_INDEX");
  const char* base = std::getenv("STOR_MDSD_URI");
  if (!role || !index_text || !base) return 0;
  const int i = std::atoi(index_text);
  auto store = Store::create();  // the key comes from STOR_LUSTRE_KEY_FILE
  if (!store) return fail(2, store.status());
  Store& s = **store;
  const std::string dir = base;
  if (std::string(role) == "writer") {
    // Disjoint ranges of one shared file; no MDS call per write.
    auto f = s.open(dir + "/shared.bin", kOpenWrite | kOpenCreate);
    if (!f) return fail(3, f.status());
    auto data = stor::test::pattern(kChunk * kWorkers, 42);
    for (size_t at = 0; at < kChunk;) {
      size_t n = std::min<size_t>(kChunk - at, 50 * 1024 + 3);
      auto w = f->write(data.data() + i * kChunk + at, n, i * kChunk + at);
      if (!w) return fail(4, w.status());
      at += n;
    }
    if (Status c = f->close(); !c) return fail(5, c);
    return 0;
  }
  if (std::string(role) == "namespace") {
    for (int k = 0; k < kFilesPerWorker; ++k) {
      std::string name = dir + "/c" + std::to_string(i) + "-" + std::to_string(k);
      auto f = s.open(name, kOpenWrite | kOpenCreate | kOpenExclusive);
      if (!f) return fail(6, f.status());
      auto data = stor::test::pattern(1000 + k, i * 100 + k);
      if (auto w = f->write(data.data(), data.size(), 0); !w) return fail(7, w.status());
      if (Status c = f->close(); !c) return fail(8, c);
      auto listed = s.list(dir);
      if (!listed) return fail(9, listed.status());
      bool seen = false;
      for (auto& e : *listed) seen = seen || e.name == "c" + std::to_string(i) + "-" + std::to_string(k);
      if (!seen) return fail(10, Status::NotFound("own file missing from the listing"));
    }
    for (int k = 0; k < kFilesPerWorker; k += 2) {
      if (Status r = s.remove(dir + "/c" + std::to_string(i) + "-" + std::to_string(k)); !r) return fail(11, r);
    }
    return 0;
  }
  if (std::string(role) == "locker") {
    StoreOptions so;
    so.settings["lustre.reconnect_timeout_ms"] = "300";  // the MDS's grace after our connections close
    auto ls = Store::create(so);
    if (!ls) return fail(30, ls.status());
    auto f = (*ls)->open(dir + "/locked.bin", kOpenRead | kOpenWrite | kOpenCreate);
    if (!f) return fail(31, f.status());
    auto l = f->lock_range(0, 4096, RangeLockMode::kExclusive, std::chrono::seconds(10));
    if (!l) return fail(32, l.status());
    const char* fd_text = std::getenv("STOR_MDSD_ACK_FD");
    if (!fd_text || ::write(std::atoi(fd_text), "l", 1) != 1) return 33;
    for (;;) ::pause();  // until kill -9
  }
  if (std::string(role) == "queued" || std::string(role) == "contender") {
    // queued: opens DIR/locked.bin (says 'o'), then asks for an exclusive lock of [0, 200) and
    // waits for it (says 'l' if ever granted) until kill -9; a long grace, so only the MDS
    // noticing the closed connection can drop its request in time.
    // contender: asks for [100, 101) exclusively (20 s), says 'g' once granted, closes, exits.
    const bool queued = std::string(role) == "queued";
    StoreOptions so;
    so.settings["lustre.reconnect_timeout_ms"] = queued ? "30000" : "20000";
    auto ls = Store::create(so);
    if (!ls) return fail(40, ls.status());
    auto f = (*ls)->open(dir + "/locked.bin", kOpenRead | kOpenWrite | kOpenCreate);
    if (!f) return fail(41, f.status());
    const char* fd_text = std::getenv("STOR_MDSD_ACK_FD");
    const int ack_fd = fd_text ? std::atoi(fd_text) : -1;
    if (queued && ::write(ack_fd, "o", 1) != 1) return 42;
    auto l = queued ? f->lock_range(0, 200, RangeLockMode::kExclusive, std::chrono::seconds(60))
                    : f->lock_range(100, 1, RangeLockMode::kExclusive, std::chrono::seconds(20));
    if (!l) return fail(43, l.status());
    if (::write(ack_fd, queued ? "l" : "g", 1) != 1) return 44;
    if (queued)
      for (;;) ::pause();
    if (Status u = f->unlock_range(*l); !u) return fail(45, u);
    if (Status cl = f->close(); !cl) return fail(46, cl);
    return 0;
  }
  if (std::string(role) == "holder") {
    // Locks [0, 100) of DIR/locked.bin, says 'l', stops itself; once continued, unlocks and exits
    // 0 if the unlock reported the lock lost in an MDS restart.
    auto f = s.open(dir + "/locked.bin", kOpenRead | kOpenWrite | kOpenCreate);
    if (!f) return fail(50, f.status());
    auto l = f->lock_range(0, 100, RangeLockMode::kExclusive, std::chrono::seconds(10));
    if (!l) return fail(51, l.status());
    const char* fd_text = std::getenv("STOR_MDSD_ACK_FD");
    if (!fd_text || ::write(std::atoi(fd_text), "l", 1) != 1) return 52;
    ::raise(SIGSTOP);
    Status u = f->unlock_range(*l);
    if (u.code() != Code::kAborted || u.message().find("was lost when MDS") == std::string::npos) return fail(53, u);
    if (Status again = f->unlock_range(*l); !again) return fail(54, again);  // reported once
    if (Status cl = f->close(); !cl) return fail(55, cl);
    return 0;
  }
  if (std::string(role) == "mixed") {
    // Iteration j: create f{j} exclusively with data, rename it to g{j}, mkdir d{j}, and on odd
    // j remove g{j-1}. Each finished iteration is acknowledged with one byte on STOR_MDSD_ACK_FD.
    // Any failure (a resent create saying AlreadyExists, a resent rename saying NotFound) fails
    // the worker.
    const char* fd_text = std::getenv("STOR_MDSD_ACK_FD");
    const int ack_fd = fd_text ? std::atoi(fd_text) : -1;
    for (int j = 0; j < kMixedIterations; ++j) {
      const std::string f = dir + "/f" + std::to_string(j), g = dir + "/g" + std::to_string(j);
      auto file = s.open(f, kOpenWrite | kOpenCreate | kOpenExclusive);
      if (!file) return fail(20, file.status());
      auto data = stor::test::pattern(3000 + j * 97, i * 1000 + j);
      if (auto w = file->write(data.data(), data.size(), 0); !w) return fail(21, w.status());
      if (Status c = file->close(); !c) return fail(22, c);
      if (Status r = s.rename(f, g); !r) return fail(23, r);
      if (Status m = s.mkdir(dir + "/d" + std::to_string(j), 0755); !m) return fail(24, m);
      if (j % 2 == 1)
        if (Status r = s.remove(dir + "/g" + std::to_string(j - 1)); !r) return fail(25, r);
      if (ack_fd >= 0 && ::write(ack_fd, "a", 1) != 1) return 26;
    }
    return 0;
  }
  return 1;
}

// The namespace the "mixed" workers leave in their directory.
void check_mixed(Store& s, const Cluster& c, const std::string& dir, int i) {
  std::set<std::string> want, got;
  for (int j = 0; j < kMixedIterations; ++j) {
    want.insert("d" + std::to_string(j));
    if (j % 2 == 1 || j == kMixedIterations - 1) want.insert("g" + std::to_string(j));
  }
  auto listed = s.list(c.uri(dir));
  REQUIRE(listed.is_ok());
  for (auto& e : *listed) got.insert(e.name);
  CHECK(got == want);
  for (int j = 1; j < kMixedIterations; j += 2) {
    auto f = s.open(c.uri(dir + "/g" + std::to_string(j)));
    REQUIRE(f.is_ok());
    auto want_data = stor::test::pattern(3000 + j * 97, i * 1000 + j);
    std::vector<char> data(want_data.size());
    REQUIRE(f->read(data.data(), data.size(), 0).value() == data.size());
    CHECK(f->stat().value().size == data.size());
    CHECK(data == want_data);
  }
}

// One request to an in-process MdsService, as `client` over `connection` (grace_ms: the session
// grace it announces; 0: the MDS's default).
Result<pb::MdsReply> call_service(MdsService& svc, std::vector<std::byte>& buf, uint64_t& xid, uint64_t client,
                                  uint64_t connection, pb::MdsRequest r, uint32_t grace_ms = 0) {
  r.set_client_id(client);
  r.set_xid(++xid);
  r.set_session_grace_ms(grace_ms);
  const std::string control = r.SerializeAsString();
  transport::ServerCall c;
  c.opcode = kMdsOpcode;
  c.control = control;
  c.reply_buffer = buf;
  c.connection = connection;
  auto res = svc.handle(c);
  if (!res.status) return res.status;
  pb::MdsReply rep;
  REQUIRE(rep.ParseFromArray(buf.data(), static_cast<int>(res.payload_len)));
  return rep;
}

}  // namespace

TEST_CASE("mdsd child workload", "[.mdsd-child]") {
  int code = child_main();
  std::fflush(stderr);
  _exit(code);
}

TEST_CASE("a stor-mds serves one namespace to many client processes", "[lustre][cluster]") {
  Cluster c;
  c.start_mds();
  {
    // The MDS holds the file system: an embedded mount of ROOT elsewhere gets Busy.
    auto embedded = c.store();
    auto st = embedded->stat("lustre://" + c.root + "/");
    REQUIRE_FALSE(st.is_ok());
    CHECK(st.status().code() == Code::kBusy);
  }
  auto store = c.store();
  REQUIRE(store->mkdir(c.uri("/shared"), 0777).is_ok());
  REQUIRE(store->mkdir(c.uri("/ns"), 0777).is_ok());
  auto info = store->describe(c.uri("/shared"));
  CHECK(info["lustre.mode"] == "cluster");
  CHECK(info["lustre.target_endpoints"] == c.t0->endpoint() + "," + c.t1->endpoint());

  SECTION("4 writers of disjoint ranges of one file, then a reader") {
    REQUIRE(run_workers(c, "writer", kWorkers, c.uri("/shared")) == kWorkers);
    // Close merged every writer's size at the MDS (max): the reader sees all of it.
    auto st = store->stat(c.uri("/shared/shared.bin"));
    REQUIRE(st.is_ok());
    CHECK(st->size == kChunk * kWorkers);
    auto f = store->open(c.uri("/shared/shared.bin")).value();
    std::vector<char> got(kChunk * kWorkers);
    REQUIRE(f.read(got.data(), got.size(), 0).value() == got.size());
    CHECK(got == stor::test::pattern(kChunk * kWorkers, 42));
    // The bytes are on the targets only.
    c.export_key();
    auto gs = getstripe(c.uri("/shared/shared.bin"));
    REQUIRE(gs.is_ok());
    uint64_t sum = 0;
    for (auto& o : gs->objects) sum += o.size;
    CHECK(sum == kChunk * kWorkers);
  }

  SECTION("writes and reads make no MDS call; sync and close merge the size") {
    ClusterOptions co;
    co.key_file = c.key;  // the same mount the store uses
    auto fs = FileSystem::connect(c.authority, co).value();
    auto f = store->open(c.uri("/shared/quiet.bin"), kOpenRead | kOpenWrite | kOpenCreate).value();
    const uint64_t before = fs->meta().statfs().value().requests;
    auto data = stor::test::pattern(64 * 1024, 8);
    for (int i = 0; i < 100; ++i) REQUIRE(f.write(data.data(), data.size(), i * data.size()).value() == data.size());
    std::vector<char> back(data.size());
    for (int i = 0; i < 100; ++i) REQUIRE(f.read(back.data(), back.size(), i * data.size()).value() == back.size());
    CHECK(f.stat().value().size == 100 * data.size());  // the handle knows its own writes
    const uint64_t after_io = fs->meta().statfs().value().requests;
    CHECK(after_io - before == 1);  // the statfs itself: 200 calls, no metadata round trip
    // Not synced yet: close-to-open, the MDS still has the size of the last sync/close.
    CHECK(store->stat(c.uri("/shared/quiet.bin")).value().size == 0);
    REQUIRE(f.sync().is_ok());
    CHECK(store->stat(c.uri("/shared/quiet.bin")).value().size == 100 * data.size());
    REQUIRE(f.close().is_ok());
  }

  SECTION("4 processes create, list and remove in one directory") {
    REQUIRE(run_workers(c, "namespace", kWorkers, c.uri("/ns")) == kWorkers);
    auto listed = store->list(c.uri("/ns")).value();
    std::set<std::string> names;
    for (auto& e : listed) names.insert(e.name);
    CHECK(names.size() == static_cast<size_t>(kWorkers * kFilesPerWorker / 2));
    for (int i = 0; i < kWorkers; ++i)
      for (int k = 1; k < kFilesPerWorker; k += 2) {
        std::string p = "/ns/c" + std::to_string(i) + "-" + std::to_string(k);
        CHECK(names.count(p.substr(4)) == 1);
        auto f = store->open(c.uri(p)).value();
        std::vector<char> got(1000 + k);
        REQUIRE(f.read(got.data(), got.size(), 0).value() == got.size());
        CHECK(got == stor::test::pattern(1000 + k, i * 100 + k));
      }
  }

  SECTION("namespace calls, errors and layouts through the MDS") {
    CHECK(store->open(c.uri("/nope/x")).status().code() == Code::kNotFound);
    REQUIRE(store->open(c.uri("/a"), kOpenWrite | kOpenCreate | kOpenExclusive).value().close().is_ok());
    CHECK(store->open(c.uri("/a"), kOpenWrite | kOpenCreate | kOpenExclusive).status().code() ==
          Code::kAlreadyExists);
    REQUIRE(store->rename(c.uri("/a"), c.uri("/shared/b")).is_ok());
    CHECK(store->stat(c.uri("/a")).status().code() == Code::kNotFound);
    CHECK(store->remove(c.uri("/shared")).code() == Code::kNotEmpty);
    {  // truncate sets the size at the MDS at once
      auto f = store->open(c.uri("/shared/b"), kOpenRead | kOpenWrite).value();
      auto data = stor::test::pattern(200000, 3);
      REQUIRE(f.write(data.data(), data.size(), 0).value() == data.size());
      REQUIRE(f.sync().is_ok());
      CHECK(store->stat(c.uri("/shared/b")).value().size == 200000);
      REQUIRE(f.truncate(1000).is_ok());
      CHECK(store->stat(c.uri("/shared/b")).value().size == 1000);
      REQUIRE(f.close().is_ok());
      CHECK(store->stat(c.uri("/shared/b")).value().size == 1000);
    }
    c.export_key();
    REQUIRE(setstripe(c.uri("/wide1"), {StripeSpec{1, 128 << 10}}).is_ok());
    auto gs = getstripe(c.uri("/wide1")).value();
    CHECK(gs.layout.components(0).targets_size() == 1);
    auto df_report = df(c.uri("/"));
    REQUIRE(df_report.is_ok());
    CHECK(df_report->inodes >= 5);
    CHECK(df_report->targets.size() == 2);
    REQUIRE(store->remove(c.uri("/shared/b")).is_ok());
  }

  // A clean stop checkpoints: the file system then mounts embedded (no replay) and fscks clean.
  REQUIRE(c.mds->stop_cleanly());
  auto report = fsck(c.root);
  REQUIRE(report.is_ok());
  CHECK(report->orphans == 0);
  CHECK(report->overlong == 0);
}

TEST_CASE("stor-mds squashes root and refuses unauthenticated clients", "[lustre][cluster]") {
  Cluster c;
  c.start_mds();
  {
    auto as_root = c.store({{"lustre.uid", "0"}, {"lustre.gids", "0"}});
    REQUIRE(as_root->open(c.uri("/by-root"), kOpenWrite | kOpenCreate).value().close().is_ok());
    auto st = as_root->stat(c.uri("/by-root")).value();
    CHECK(st.uid == 65534);  // root squash: the client cannot simply claim uid 0
    CHECK(st.gid == 65534);
    auto as_user = c.store({{"lustre.uid", "1234"}, {"lustre.gids", "1234"}});
    REQUIRE(as_user->open(c.uri("/by-user"), kOpenWrite | kOpenCreate, 0600).value().close().is_ok());
    CHECK(as_user->stat(c.uri("/by-user")).value().uid == 1234);
    auto other = c.store({{"lustre.uid", "999"}, {"lustre.gids", "999"}});
    CHECK(other->open(c.uri("/by-user")).status().code() == Code::kPermissionDenied);
  }
  {  // a wrong key, and no key at all, are refused before any request is served
    stor::test::TempDir keys;
    std::string wrong = keys / "wrong.key";
    REQUIRE(transport::write_key_file(wrong, transport::AuthKey::generate().value()).is_ok());
    auto s = c.store({{"lustre.key_file", wrong}, {"lustre.reconnect_timeout_ms", "2000"}});
    CHECK(s->stat(c.uri("/")).status().code() == Code::kPermissionDenied);
    auto t = transport::Transport::create("tcp").value();
    auto ch = t->connect(c.mds->endpoint());
    REQUIRE(ch.is_ok());  // TCP connects; the first call must not be answered
    pb::MdsRequest req;
    req.set_op(pb::MdsRequest::GET_CONFIG);
    std::vector<std::byte> buf(1 << 16);
    auto r = (*ch)->call(kMdsOpcode, req.SerializeAsString(), {}, buf);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kPermissionDenied);
  }
  REQUIRE(c.mds->stop_cleanly());
  c.start_mds({"--no-root-squash"});
  auto as_root = c.store({{"lustre.uid", "0"}, {"lustre.gids", "0"}});
  REQUIRE(as_root->open(c.uri("/root-owned"), kOpenWrite | kOpenCreate).value().close().is_ok());
  CHECK(as_root->stat(c.uri("/root-owned")).value().uid == 0);
  CHECK(as_root->stat(c.uri("/by-root")).value().uid == 65534);  // survived the restart
}

TEST_CASE("the daemons refuse to start without exactly one of a key and --insecure-no-auth", "[lustre][cluster]") {
  stor::test::TempDir d;
  const std::string key = d / "k";
  REQUIRE(transport::write_key_file(key, transport::AuthKey::generate().value()).is_ok());
  const std::string mds = std::string(STOR_MDS_PATH) + " --root " + d.path() + " --listen tcp://127.0.0.1:0 ";
  const std::string target = std::string(STOR_TARGET_PATH) + " --dir " + d.path() + " --listen tcp://127.0.0.1:0 ";
  struct Case {
    std::string command, says;
  } cases[] = {
      {mds, "stor-mds: no --key-file: refusing to serve metadata to unauthenticated clients (use ROOT/mdt/target.key, "
            "or pass --insecure-no-auth on a trusted network)"},
      {mds + "--key-file " + key + " --insecure-no-auth", "stor-mds: --key-file and --insecure-no-auth contradict"},
      {mds + "--insecure-no-auth --squash-uid 4294967296", "stor-mds: bad argument '--squash-uid'"},
      {target, "stor-target: no --key-file: refusing to serve objects to unauthenticated clients (make a key with "
               "--make-key FILE, or pass --insecure-no-auth on a trusted network)"},
      {target + "--insecure-no-auth --key-file " + key, "stor-target: --key-file and --insecure-no-auth contradict"},
      {target + "--insecure-no-auth --max-connections 4294967296", "stor-target: bad argument '--max-connections'"},
      {target + "--insecure-no-auth --timeout-ms -1", "stor-target: bad argument '--timeout-ms'"},
  };
  for (const auto& c : cases) {
    INFO(c.command);
    auto r = stor::test::run_command(c.command + " 2>&1 </dev/null");
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.out, Catch::Contains(c.says));
  }
}

TEST_CASE("the MDS validates every request it reads", "[lustre][cluster]") {
  stor::test::TempDir dir;
  MkfsOptions o;
  o.targets = 2;
  REQUIRE(mkfs(dir / "fs", o).is_ok());
  auto fs = FileSystem::mount(dir / "fs").value();
  MdsService svc(fs, {});
  std::vector<std::byte> buf(1 << 16);
  auto call = [&](uint16_t opcode, const std::string& control) {
    transport::ServerCall c;
    c.opcode = opcode;
    c.control = control;
    c.reply_buffer = buf;
    return svc.handle(c).status;
  };
  pb::MdsRequest ok;
  ok.set_op(pb::MdsRequest::STAT);
  ok.set_path("/");
  CHECK(call(kMdsOpcode, ok.SerializeAsString()).is_ok());
  CHECK(call(7, ok.SerializeAsString()).code() == Code::kInvalidArgument);
  CHECK(call(kMdsOpcode, "\xff\xff\xff garbage").code() == Code::kInvalidArgument);
  auto bad = [&](auto mutate) {
    pb::MdsRequest r = ok;
    mutate(r);
    return call(kMdsOpcode, r.SerializeAsString()).code();
  };
  CHECK(bad([](pb::MdsRequest& r) { r.set_op(static_cast<pb::MdsRequest::Op>(99)); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { r.set_path(std::string(5000, 'a')); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { r.set_path(std::string("/a\0b", 4)); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { for (int i = 0; i < 100; ++i) r.add_gids(i); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { r.set_mode(0170000); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { r.set_path(""); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) { r.set_path("/../x"); }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::SET_LAYOUT);
          r.mutable_layout()->add_components()->set_stripe_size(1000);
        }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::SET_SIZE);
          r.set_handle(12345);
          r.set_ino(999);
        }) == Code::kNotFound);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::LOCK);  // empty range
          r.set_handle(12345);
          r.set_ino(999);
          r.set_lock_start(10);
          r.set_lock_end(10);
        }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::LOCK);  // past 2^63 - 1
          r.set_handle(12345);
          r.set_ino(999);
          r.set_lock_end(UINT64_MAX);
        }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::LOCK);  // no handle
          r.set_lock_end(1);
        }) == Code::kInvalidArgument);
  CHECK(bad([](pb::MdsRequest& r) {
          r.set_op(pb::MdsRequest::LOCK);  // a handle this MDS did not open
          r.set_handle(12345);
          r.set_ino(999);
          r.set_lock_end(1);
        }) == Code::kNotFound);
  CHECK(svc.open_handles() == 0);
}

TEST_CASE("the MDS releases a client's handles and locks after its connections are gone", "[lustre][cluster][locks]") {
  stor::test::TempDir dir;
  MkfsOptions o;
  o.targets = 2;
  o.root_mode = 0777;  // the requests' uid 0 is squashed
  REQUIRE(mkfs(dir / "fs", o).is_ok());
  auto fs = FileSystem::mount(dir / "fs").value();
  MdsService svc(fs, {});
  std::vector<std::byte> buf(1 << 16);
  uint64_t xid = 0;
  // One request of `client` over `connection`; the client asks for a 100 ms grace.
  auto call = [&](uint64_t client, uint64_t connection, pb::MdsRequest r) {
    return call_service(svc, buf, xid, client, connection, std::move(r), 100);
  };
  auto open_and_lock = [&](uint64_t client, uint64_t connection, const std::string& path) {
    pb::MdsRequest r;
    r.set_op(pb::MdsRequest::OPEN);
    r.set_path(path);
    r.set_flags(kOpenRead | kOpenWrite | kOpenCreate);
    r.set_mode(0644);
    auto opened = call(client, connection, r).value();
    pb::MdsRequest l;
    l.set_op(pb::MdsRequest::LOCK);
    l.set_handle(opened.handle());
    l.set_ino(opened.attrs().ino());
    l.set_lock_end(4096);
    l.set_lock_exclusive(true);
    CHECK(call(client, connection, l).value().lock_id() != 0);
    return opened;
  };
  auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(400)); };  // > the 100 ms grace

  SECTION("a client whose last connection closed is released after its grace") {
    open_and_lock(1, 11, "/a");
    open_and_lock(1, 12, "/b");  // a second connection of the same client
    CHECK(svc.open_handles() == 2);
    CHECK(svc.granted_locks() == 2);
    svc.connection_closed(11);
    settle();
    CHECK(svc.open_handles() == 2);  // connection 12 is still open: the client lives
    svc.connection_closed(12);
    settle();
    CHECK(svc.open_handles() == 0);
    CHECK(svc.granted_locks() == 0);
    CHECK(svc.sessions() == 0);
  }
  SECTION("a client that reconnects within its grace keeps them") {
    auto opened = open_and_lock(2, 21, "/c");
    svc.connection_closed(21);
    pb::MdsRequest st;
    st.set_op(pb::MdsRequest::STAT);
    st.set_path("/");
    REQUIRE(call(2, 22, st).is_ok());  // back on a new connection before the grace ended
    settle();
    CHECK(svc.open_handles() == 1);
    CHECK(svc.granted_locks() == 1);
    // Another client's conflicting lock waits for it (and times out).
    pb::MdsRequest o;
    o.set_op(pb::MdsRequest::OPEN);
    o.set_path("/c");
    o.set_flags(kOpenRead | kOpenWrite);
    auto other = call(3, 31, o).value();
    pb::MdsRequest l;
    l.set_op(pb::MdsRequest::LOCK);
    l.set_handle(other.handle());
    l.set_ino(other.attrs().ino());
    l.set_lock_start(100);
    l.set_lock_end(101);
    l.set_lock_exclusive(true);
    l.set_lock_wait_ms(50);
    CHECK(call(3, 31, l).status().code() == Code::kTimeout);
    svc.connection_closed(22);
    settle();
    CHECK(svc.open_handles() == 1);  // client 3's
    l.set_lock_wait_ms(5000);
    CHECK(call(3, 31, l).is_ok());
  }
}

TEST_CASE("the MDS reply cache answers a resent mutation, also after a restart", "[lustre][cluster][recovery]") {
  stor::test::TempDir dir;
  MkfsOptions o;
  o.targets = 2;
  REQUIRE(mkfs(dir / "fs", o).is_ok());
  std::vector<std::byte> buf(1 << 16);
  auto send = [&](MdsService& svc, pb::MdsRequest::Op op, uint64_t xid, const std::string& path,
                  const std::string& to = {}, uint32_t flags = 0) {
    pb::MdsRequest r;
    r.set_op(op);
    r.set_client_id(77);
    r.set_xid(xid);
    r.set_min_inflight_xid(1);
    r.set_uid(1000);
    r.add_gids(1000);
    r.set_path(path);
    r.set_new_path(to);
    r.set_flags(flags);
    r.set_mode(0755);
    transport::ServerCall c;
    c.opcode = kMdsOpcode;
    std::string control = r.SerializeAsString();
    c.control = control;
    c.reply_buffer = buf;
    return svc.handle(c).status;
  };
  using Op = pb::MdsRequest;
  {
    auto fs = FileSystem::mount(dir / "fs").value();
    REQUIRE(fs->mds().chmod(Identity{0, {0}}, "/", 0777).is_ok());
    MdsService svc(fs, {});
    REQUIRE(send(svc, Op::MKDIR, 1, "/d").is_ok());
    CHECK(send(svc, Op::MKDIR, 1, "/d").is_ok());                          // resent: the recorded result
    CHECK(send(svc, Op::MKDIR, 2, "/d").code() == Code::kAlreadyExists);  // a new request runs
    REQUIRE(send(svc, Op::OPEN, 3, "/f", {}, kOpenWrite | kOpenCreate | kOpenExclusive).is_ok());
    CHECK(send(svc, Op::OPEN, 3, "/f", {}, kOpenWrite | kOpenCreate | kOpenExclusive).is_ok());
    REQUIRE(send(svc, Op::RENAME, 4, "/f", "/g").is_ok());
    CHECK(send(svc, Op::RENAME, 4, "/f", "/g").is_ok());
    CHECK(svc.resends_answered() == 3);
    // A copy of the file system as a crash would leave it (log not checkpointed yet).
    std::filesystem::copy(dir / "fs", dir / "crashed", std::filesystem::copy_options::recursive);
    REQUIRE(send(svc, Op::REMOVE, 5, "/g").is_ok());
    CHECK(send(svc, Op::REMOVE, 5, "/g").is_ok());
  }
  for (const char* root : {"crashed", "fs"}) {  // rebuilt from the log; kept by a checkpoint
    INFO(root);
    auto fs = FileSystem::mount(dir / root).value();
    MdsService svc(fs, {});
    CHECK(send(svc, Op::MKDIR, 1, "/d").is_ok());
    CHECK(send(svc, Op::OPEN, 3, "/f2", {}, kOpenWrite | kOpenCreate | kOpenExclusive).code() == Code::kNotFound);
    CHECK(send(svc, Op::RENAME, 4, "/f", "/g").is_ok());
    if (std::string(root) == "fs") CHECK(send(svc, Op::REMOVE, 5, "/g").is_ok());
    CHECK(svc.resends_answered() >= 2);
    CHECK(send(svc, Op::MKDIR, 6, "/d").code() == Code::kAlreadyExists);
  }
}

TEST_CASE("clients ride out kill -9 of the MDS and of a target", "[lustre][cluster][recovery]") {
  Cluster c;
  c.start_mds();
  const std::string mds_endpoint = c.mds->endpoint();
  {
    auto store = c.store();
    for (int i = 0; i < kWorkers; ++i) {
      REQUIRE(store->mkdir(c.uri("/m" + std::to_string(i)), 0777).is_ok());
      REQUIRE(store->mkdir(c.uri("/t" + std::to_string(i)), 0777).is_ok());
      REQUIRE(store->mkdir(c.uri("/c" + std::to_string(i)), 0777).is_ok());
    }
  }
  // Phase 1: the MDS dies right after applying its 60th mutation, before replying; restarted on
  // the same port, it must answer the client's resend of that request from the reply cache.
  REQUIRE(c.mds->stop_cleanly());
  c.start_mds({"--crash-after-mutations", "60"}, mds_endpoint);
  bool restarted = false;
  const std::string log = c.base / "mds.log";
  int ok = run_workers(c, "mixed", kWorkers, c.uri("/c"), true, {}, [&] {
    if (restarted || !c.mds->exited()) return;
    restarted = true;
    c.start_mds({}, mds_endpoint, log);
  });
  CHECK(restarted);
  CHECK(ok == kWorkers);
  REQUIRE(c.mds->stop_cleanly());
  {
    std::ifstream in(log);
    std::string text((std::istreambuf_iterator<char>(in)), {});
    INFO(text);
    CHECK(text.find("stopped; 0 resent") == std::string::npos);
    CHECK(text.find("resent request(s) were answered from the reply cache") != std::string::npos);
  }
  c.start_mds({}, mds_endpoint);
  // Phase 2: SIGKILL the MDS at a random point after a quarter of the work, restart it.
  bool killed = false;
  ok = run_workers(c, "mixed", kWorkers, c.uri("/m"), true, [&](int acks) {
    if (killed || acks < kWorkers * kMixedIterations / 4) return;
    killed = true;
    c.mds->kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // clients see refused connections
    c.start_mds({}, mds_endpoint);
  });
  CHECK(killed);
  CHECK(ok == kWorkers);
  // Phase 3: the same with stor-target 0 (the data clients reconnect and resend).
  killed = false;
  const std::string t0_endpoint = c.t0->endpoint();
  ok = run_workers(c, "mixed", kWorkers, c.uri("/t"), true, [&](int acks) {
    if (killed || acks < kWorkers * kMixedIterations / 4) return;
    killed = true;
    c.t0->kill(SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    c.t0 = std::make_unique<TargetProcess>(STOR_TARGET_PATH, t0_endpoint, c.ost0.path(),
                                           std::vector<std::string>{"--key-file", c.key});
  });
  CHECK(killed);
  CHECK(ok == kWorkers);
  {
    auto store = c.store();
    for (int i = 0; i < kWorkers; ++i) {
      check_mixed(*store, c, "/m" + std::to_string(i), i);
      check_mixed(*store, c, "/t" + std::to_string(i), i);
      check_mixed(*store, c, "/c" + std::to_string(i), i);
    }
  }
  REQUIRE(c.mds->stop_cleanly());
  auto report = fsck(c.root);
  REQUIRE(report.is_ok());
  CHECK(report->orphans == 0);
  CHECK(report->overlong == 0);
  CHECK(report->problems.empty());
}

namespace {

// A client process (this binary, [.mdsd-child] role "locker") that opens DIR/locked.bin, takes an
// exclusive lock of bytes [0, 4096), says so with one byte on a pipe and waits to be killed.
// Its reconnect grace is 300 ms (lustre.reconnect_timeout_ms), so the MDS releases its handle
// and lock that long after its connections closed.
// A client process of `role` ([.mdsd-child]) working in DIR; its acknowledgement bytes come on
// ack_fd.
struct Child {
  pid_t pid = -1;
  int ack_fd = -1;
  ~Child() {
    if (ack_fd >= 0) ::close(ack_fd);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // The next acknowledgement byte, or 0 when none came within `wait`.
  char ack(std::chrono::milliseconds wait) const {
    pollfd p{ack_fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return 0;
    char b = 0;
    return ::read(ack_fd, &b, 1) == 1 ? b : 0;
  }
  int wait_exit() {
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

std::unique_ptr<Child> spawn_child(const Cluster& c, const std::string& role, const std::string& dir) {
  const std::string exe = self_exe();
  int ack[2];
  REQUIRE(::pipe(ack) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(ack[0]);
    ::setenv("STOR_MDSD_ACK_FD", std::to_string(ack[1]).c_str(), 1);
    ::setenv("STOR_MDSD_ROLE", role.c_str(), 1);
    ::setenv("STOR_MDSD_INDEX", "0", 1);
    ::setenv("STOR_MDSD_URI", dir.c_str(), 1);
    ::setenv("STOR_LUSTRE_KEY_FILE", c.key.c_str(), 1);
    ::execl(exe.c_str(), exe.c_str(), "[.mdsd-child]", static_cast<char*>(nullptr));
    _exit(127);
  }
  ::close(ack[1]);
  auto child = std::make_unique<Child>();
  child->pid = pid;
  child->ack_fd = ack[0];
  return child;
}

pid_t spawn_locker(const Cluster& c, const std::string& dir) {
  auto child = spawn_child(c, "locker", dir);
  REQUIRE(child->ack(std::chrono::seconds(20)) == 'l');  // the lock is held
  ::close(child->ack_fd);
  child->ack_fd = -1;
  return std::exchange(child->pid, -1);
}

uint64_t mds_counter(const Cluster& c, const char* name) {
  ServerQueryOptions q;
  q.key_file = c.key;
  return query_server_stats(c.mds->endpoint(), q).value().get(name, UINT64_MAX);
}

using namespace std::chrono_literals;

}  // namespace

TEST_CASE("stor-mds grants extent locks between clients", "[lustre][cluster][locks]") {
  Cluster c;
  c.start_mds();
  auto store = c.store();
  const std::string uri = c.uri("/locked.bin");
  auto a = store->open(uri, kOpenRead | kOpenWrite | kOpenCreate).value();
  auto b = store->open(uri, kOpenRead | kOpenWrite).value();
  auto r = store->open(uri, kOpenRead).value();

  SECTION("compatibility: shared with shared only, on overlapping bytes") {
    const uint64_t la = a.lock_range(0, 100, RangeLockMode::kShared, 5s).value();
    auto lb = b.lock_range(50, 10, RangeLockMode::kShared, 0ms);
    REQUIRE(lb.is_ok());
    REQUIRE(b.unlock_range(*lb).is_ok());
    auto x = b.lock_range(50, 10, RangeLockMode::kExclusive, 0ms);
    REQUIRE_FALSE(x.is_ok());
    CHECK(x.status().code() == Code::kTimeout);
    CHECK(x.status().message().find("[50, 60)") != std::string::npos);
    auto adjacent = b.lock_range(100, 10, RangeLockMode::kExclusive, 0ms);  // [100, 110) touches, no overlap
    REQUIRE(adjacent.is_ok());
    // Every lock is its own owner: the same handle conflicts with itself too.
    CHECK(a.lock_range(0, 1, RangeLockMode::kExclusive, 0ms).status().code() == Code::kTimeout);
    CHECK(a.lock_range(105, 1, RangeLockMode::kShared, 0ms).status().code() == Code::kTimeout);
    CHECK(r.lock_range(0, 1, RangeLockMode::kExclusive, 0ms).status().code() == Code::kPermissionDenied);
    CHECK(r.lock_range(0, 0, RangeLockMode::kShared, 0ms).status().code() == Code::kInvalidArgument);
    REQUIRE(a.unlock_range(la).is_ok());
    REQUIRE(a.unlock_range(la).is_ok());  // releasing again is not an error
    auto now_free = b.lock_range(0, 100, RangeLockMode::kExclusive, 0ms);
    REQUIRE(now_free.is_ok());
    CHECK(mds_counter(c, "extent_locks") == 2);
    REQUIRE(b.unlock_range(*now_free).is_ok());
    REQUIRE(b.unlock_range(*adjacent).is_ok());
    CHECK(mds_counter(c, "extent_locks") == 0);
  }

  SECTION("first come, first served: a reader queued behind a waiting writer waits") {
    const uint64_t held = a.lock_range(0, 100, RangeLockMode::kShared, 5s).value();
    std::mutex mu;
    std::string order;
    // Catch2's assertions are not thread-safe: the threads record, the test checks after join.
    std::thread writer([&] {
      auto w = b.lock_range(0, 100, RangeLockMode::kExclusive, 20s);
      if (!w) return;
      { std::lock_guard lk(mu); order += "W"; }
      std::this_thread::sleep_for(200ms);
      { std::lock_guard lk(mu); order += "w"; }
      (void)b.unlock_range(*w);
    });
    std::this_thread::sleep_for(300ms);  // the writer is queued at the MDS
    std::thread reader([&] {
      // Compatible with the granted shared lock, but the writer came first.
      auto rl = r.lock_range(10, 10, RangeLockMode::kShared, 20s);
      if (!rl) return;
      { std::lock_guard lk(mu); order += "R"; }
      (void)r.unlock_range(*rl);
    });
    std::this_thread::sleep_for(300ms);
    {
      std::lock_guard lk(mu);
      CHECK(order.empty());  // neither passed the shared lock's holder / the waiting writer
    }
    REQUIRE(a.unlock_range(held).is_ok());
    writer.join();
    reader.join();
    CHECK(order == "WwR");
  }

  SECTION("closing a handle releases its locks and wakes the waiters") {
    (void)a.lock_range(0, 4096, RangeLockMode::kExclusive, 5s).value();
    std::atomic<bool> granted{false};
    std::thread waiter([&] {
      auto w = b.lock_range(0, 1, RangeLockMode::kExclusive, 20s);
      granted = w.is_ok();
    });
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(granted.load());
    const auto t0 = std::chrono::steady_clock::now();
    REQUIRE(a.close().is_ok());
    waiter.join();
    CHECK(granted.load());
    CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  }

  SECTION("a client killed with kill -9 loses its locks and handles") {
    const uint64_t handles_before = mds_counter(c, "open_handles");
    const pid_t pid = spawn_locker(c, c.uri(""));
    CHECK(mds_counter(c, "open_handles") == handles_before + 1);
    auto held = b.lock_range(100, 1, RangeLockMode::kExclusive, 200ms);
    CHECK(held.status().code() == Code::kTimeout);  // the child holds [0, 4096)
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    const auto t0 = std::chrono::steady_clock::now();
    auto got = b.lock_range(100, 1, RangeLockMode::kExclusive, 20s);
    REQUIRE(got.is_ok());
    // Granted after the child's 300 ms grace, not after the 20 s wait or an MDS restart.
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(mds_counter(c, "open_handles") == handles_before);
    REQUIRE(b.unlock_range(*got).is_ok());
  }
}

TEST_CASE("a queued lock request of a client that died leaves the queue at once", "[lustre][cluster][locks]") {
  Cluster c;
  c.start_mds();
  auto store = c.store();
  auto a = store->open(c.uri("/locked.bin"), kOpenRead | kOpenWrite | kOpenCreate).value();
  auto b = store->open(c.uri("/locked.bin"), kOpenRead | kOpenWrite).value();
  const uint64_t held = a.lock_range(0, 100, RangeLockMode::kExclusive, 5s).value();
  // The child asks for [0, 200) and waits behind `held`; b's [150, 160) waits behind the child's
  // request (first come, first served), though no granted lock covers those bytes.
  auto child = spawn_child(c, "queued", c.uri(""));
  REQUIRE(child->ack(20s) == 'o');
  std::this_thread::sleep_for(300ms);  // its LOCK is queued at the MDS
  std::atomic<int> granted{-1};
  std::chrono::steady_clock::time_point granted_at;
  std::thread behind([&] {
    auto r = b.lock_range(150, 10, RangeLockMode::kExclusive, 20s);
    granted_at = std::chrono::steady_clock::now();
    granted = r.is_ok();
    if (r) (void)b.unlock_range(*r);
  });
  std::this_thread::sleep_for(300ms);
  CHECK(granted.load() == -1);
  const auto killed_at = std::chrono::steady_clock::now();
  REQUIRE(::kill(child->pid, SIGKILL) == 0);
  child->wait_exit();
  behind.join();
  CHECK(granted.load() == 1);
  // Its connection closed: the dead request went at once, not when `held` is released (never,
  // here) nor after the child's 30 s grace.
  CHECK(granted_at - killed_at < 3s);
  REQUIRE(a.unlock_range(held).is_ok());
}

TEST_CASE("extent locks and open handles are replayed to a restarted MDS", "[lustre][cluster][locks][recovery]") {
  Cluster c;
  const std::vector<std::string> window = {"--recovery-window-ms", "1500"};
  c.start_mds(window);
  const std::string endpoint = c.mds->endpoint();
  auto store = c.store();
  auto a = store->open(c.uri("/locked.bin"), kOpenRead | kOpenWrite | kOpenCreate).value();
  auto data = stor::test::pattern(5000, 9);
  REQUIRE(a.write(data.data(), data.size(), 0).value() == data.size());  // not merged: no sync
  const uint64_t held = a.lock_range(0, 4096, RangeLockMode::kExclusive, 5s).value();
  c.mds->kill(SIGKILL);
  std::this_thread::sleep_for(200ms);
  c.start_mds(window, endpoint, c.base / "mds.log");
  // A makes no call: its connection watcher replays the handle and the lock. B (another client
  // process) asks for bytes A holds: not before A lets them go, not at the window's end.
  auto contender = spawn_child(c, "contender", c.uri(""));
  CHECK(contender->ack(3s) == 0);  // > the 1.5 s window
  CHECK(mds_counter(c, "replayed_locks") == 1);
  CHECK(mds_counter(c, "refused_replays") == 0);
  CHECK(mds_counter(c, "recovering") == 0);
  // The size A's writes reached came with the replayed handle (A never synced).
  CHECK(store->stat(c.uri("/locked.bin")).value().size == data.size());
  REQUIRE(a.unlock_range(held).is_ok());  // the same lock id, held all along
  CHECK(contender->ack(10s) == 'g');
  CHECK(contender->wait_exit() == 0);
  // The handle still works after the restart: lock, unlock, close.
  const uint64_t again = a.lock_range(0, 4096, RangeLockMode::kExclusive, 5s).value();
  REQUIRE(a.unlock_range(again).is_ok());
  REQUIRE(a.close().is_ok());
  CHECK(mds_counter(c, "open_handles") == 0);
  REQUIRE(c.mds->stop_cleanly());
  std::ifstream in(c.base / "mds.log");
  std::string text((std::istreambuf_iterator<char>(in)), {});
  INFO(text);
  CHECK(text.find("recovery window closed: 1 open handle(s) and 1 extent lock(s) replayed, 0 replay(s) refused") !=
        std::string::npos);
}

TEST_CASE("a lock replayed after the recovery window is lost, and its unlock says so", "[lustre][cluster][locks][recovery]") {
  Cluster c;
  c.start_mds();
  const std::string endpoint = c.mds->endpoint();
  auto store = c.store();
  auto b = store->open(c.uri("/locked.bin"), kOpenRead | kOpenWrite | kOpenCreate).value();
  // The holder locks [0, 100), then stops itself (SIGSTOP) until the restarted MDS's window is
  // long over, so its replay is late for sure.
  auto holder = spawn_child(c, "holder", c.uri(""));
  REQUIRE(holder->ack(20s) == 'l');
  int st = 0;
  REQUIRE(::waitpid(holder->pid, &st, WUNTRACED) == holder->pid);
  REQUIRE(WIFSTOPPED(st));
  c.mds->kill(SIGKILL);
  std::this_thread::sleep_for(200ms);
  c.start_mds({"--recovery-window-ms", "100"}, endpoint);
  // Nobody replayed [0, 100) in time: another client gets it once the window closed.
  auto other = b.lock_range(50, 10, RangeLockMode::kExclusive, 5s);
  REQUIRE(other.is_ok());
  REQUIRE(::kill(holder->pid, SIGCONT) == 0);
  // Its unlock reports the loss (exit 0: Aborted, "was lost when MDS"); its handle came back.
  CHECK(holder->wait_exit() == 0);
  CHECK(mds_counter(c, "refused_replays") == 1);
  REQUIRE(b.unlock_range(*other).is_ok());
  REQUIRE(b.close().is_ok());
}

TEST_CASE("the MDS grants replayed locks during its recovery window only, never two that conflict",
          "[lustre][cluster][locks][recovery]") {
  stor::test::TempDir dir;
  MkfsOptions o;
  o.targets = 2;
  o.root_mode = 0777;
  REQUIRE(mkfs(dir / "fs", o).is_ok());
  std::vector<std::byte> buf(1 << 16);
  uint64_t xid = 0;
  auto call = [&](MdsService& svc, uint64_t client, pb::MdsRequest r) {
    return call_service(svc, buf, xid, client, client, std::move(r));
  };
  auto replay_open = [](uint64_t handle, uint64_t ino) {
    pb::MdsRequest r;
    r.set_op(pb::MdsRequest::REPLAY_OPEN);
    r.set_handle(handle);
    r.set_ino(ino);
    r.set_flags(kOpenWrite);
    return r;
  };
  auto replay_lock = [](uint64_t handle, uint64_t ino, uint64_t id, uint64_t start, uint64_t end) {
    pb::MdsRequest r;
    r.set_op(pb::MdsRequest::REPLAY_LOCK);
    r.set_handle(handle);
    r.set_ino(ino);
    r.set_lock_id(id);
    r.set_lock_start(start);
    r.set_lock_end(end);
    r.set_lock_exclusive(true);
    return r;
  };
  uint64_t ino = 0;
  {
    auto fs = FileSystem::mount(dir / "fs").value();
    MdsService svc(fs, {});
    CHECK_FALSE(svc.recovering());  // a fresh file system: nobody can hold anything
    pb::MdsRequest open;
    open.set_op(pb::MdsRequest::OPEN);
    open.set_path("/f");
    open.set_flags(kOpenRead | kOpenWrite | kOpenCreate);
    open.set_mode(0666);
    ino = call(svc, 1, open).value().attrs().ino();
    pb::MdsRequest hello;
    hello.set_op(pb::MdsRequest::CONNECT);
    CHECK(call(svc, 1, hello).value().server_instance() == svc.instance());
    // Stopped with a handle open: clients may replay after the next start.
  }
  auto fs = FileSystem::mount(dir / "fs").value();
  std::vector<std::string> log;
  std::mutex log_mu;
  MdsServiceOptions so;
  so.recovery_window = std::chrono::milliseconds(600);
  so.log = [&](const std::string& m) {
    std::lock_guard lk(log_mu);
    log.push_back(m);
  };
  MdsService svc(fs, so);
  REQUIRE(svc.recovering());
  REQUIRE(call(svc, 1, replay_open(0x1000, ino)).is_ok());
  REQUIRE(call(svc, 1, replay_open(0x1000, ino)).is_ok());  // again: idempotent
  CHECK(call(svc, 2, replay_open(0x1000, ino)).status().code() == Code::kPermissionDenied);  // not client 2's
  REQUIRE(call(svc, 2, replay_open(0x2000, ino)).is_ok());
  CHECK(svc.open_handles() == 2);
  REQUIRE(call(svc, 1, replay_lock(0x1000, ino, 77, 0, 100)).is_ok());
  // Client 2 claims bytes client 1 replayed: both cannot have been granted.
  CHECK(call(svc, 2, replay_lock(0x2000, ino, 78, 50, 150)).status().code() == Code::kCorruption);
  CHECK(svc.refused_replays() == 1);
  // A new request waits for the window's end, then queues behind the replayed lock.
  pb::MdsRequest lock;
  lock.set_op(pb::MdsRequest::LOCK);
  lock.set_handle(0x2000);
  lock.set_ino(ino);
  lock.set_lock_start(200);
  lock.set_lock_end(300);
  lock.set_lock_exclusive(true);
  lock.set_lock_wait_ms(100);
  auto early = call(svc, 2, lock);
  CHECK(early.status().code() == Code::kTimeout);
  CHECK(early.status().message().find("recovery window") != std::string::npos);
  lock.set_lock_wait_ms(5000);
  CHECK(call(svc, 2, lock).is_ok());  // [200, 300): free once the window closed
  CHECK_FALSE(svc.recovering());
  CHECK(call(svc, 1, replay_lock(0x1000, ino, 79, 400, 500)).status().code() == Code::kAborted);  // too late
  CHECK(svc.replayed_locks() == 1);
  std::lock_guard lk(log_mu);
  std::string all;
  for (auto& m : log) all += m + "\n";
  INFO(all);
  CHECK(all.find("recovery: refused replay of extent lock 78") != std::string::npos);
  CHECK(all.find("recovery window closed: 2 open handle(s) and 1 extent lock(s) replayed, 1 replay(s) refused") !=
        std::string::npos);
}
