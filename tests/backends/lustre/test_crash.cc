// Crash consistency: a child process runs a metadata + data workload and reports every
// acknowledged operation over a pipe; the parent SIGKILLs it mid-workload, remounts, and checks
// that every acknowledged operation is present and nothing is corrupt. Three rounds on the same
// file system, so recovery also runs on top of recovered state. Small checkpoint thresholds make
// the child checkpoint repeatedly, so kills land between checkpoints and WAL appends alike.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "backends/lustre/lustre_admin.h"
#include "stor/store.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace {

constexpr int kThreads = 2;
// Two more ack streams exercise log order across threads: the leader makes shared/dJ, the
// follower waits until it sees shared/dJ and creates shared/dJ/x in it. If a dependent record
// could land in the log before the one it depends on, replay would fail or lose the directory.
constexpr int kLeader = 2, kFollower = 3;
constexpr size_t kFileBytes = 200000;  // spans all 4 stripes of 64 KiB

struct Op {
  char kind;  // 'C' create+write, 'R' rename f->r, 'U' unlink, 'M' mkdir
  int item;
};

// The deterministic per-thread operation sequence both sides agree on.
std::vector<Op> op_sequence(size_t n) {
  std::vector<Op> ops;
  for (int i = 0; ops.size() < n; ++i) {
    ops.push_back({'C', i});
    if (i % 3 == 0) ops.push_back({'R', i});
    if (i >= 5 && (i - 5) % 2 == 0) ops.push_back({'U', i - 5});
    if (i % 7 == 0) ops.push_back({'M', i});
  }
  return ops;
}

std::string file_name(int item, bool renamed) { return (renamed ? "r" : "f") + std::to_string(item); }
uint64_t seed_of(int round, int t, int item) { return static_cast<uint64_t>(round) * 1000000007ull + t * 1000003ull + item; }

Status run_op(Store& s, const std::string& dir, int round, int t, const Op& op) {
  switch (op.kind) {
    case 'C': {
      STOR_ASSIGN_OR_RETURN(File f, s.open(dir + "/" + file_name(op.item, false), kOpenWrite | kOpenCreate | kOpenExclusive));
      auto data = stor::test::pattern(kFileBytes, seed_of(round, t, op.item));
      auto w = f.write(data.data(), data.size(), 0);
      if (!w) return w.status();
      return f.close();
    }
    case 'R':
      return s.rename(dir + "/" + file_name(op.item, false), dir + "/" + file_name(op.item, true));
    case 'U':
      return s.remove(dir + "/" + file_name(op.item, op.item % 3 == 0));
    default:
      return s.mkdir(dir + "/d" + std::to_string(op.item), 0755);
  }
}

}  // namespace

// Runs only when the crash test below executes this binary as its child.
TEST_CASE("lustre crash child workload", "[.lustre-crash-child]") {
  const char* root = std::getenv("STOR_LUSTRE_CRASH_ROOT");
  const char* fd_text = std::getenv("STOR_LUSTRE_CRASH_FD");
  const char* round_text = std::getenv("STOR_LUSTRE_CRASH_ROUND");
  if (!root || !fd_text || !round_text) return;
  int ack_fd = std::atoi(fd_text);
  int round = std::atoi(round_text);
  StoreOptions so;
  so.settings["lustre.checkpoint_bytes"] = "48K";
  auto store = Store::create(so);
  REQUIRE(store.is_ok());
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::string dir = "lustre://" + std::string(root) + "/r" + std::to_string(round) + "w" + std::to_string(t);
      if (Status ms = (*store)->mkdir(dir, 0755); !ms) {
        std::fprintf(stderr, "crash child: mkdir %s: %s\n", dir.c_str(), ms.to_string().c_str());
        _exit(3);
      }
      auto ops = op_sequence(1000000);
      for (size_t idx = 0; idx < ops.size(); ++idx) {
        Status s = run_op(**store, dir, round, t, ops[idx]);
        if (!s) {
          std::fprintf(stderr, "crash child: op %zu failed: %s\n", idx, s.to_string().c_str());
          _exit(4);
        }
        std::string ack = std::to_string(t) + " " + std::to_string(idx) + "\n";
        if (::write(ack_fd, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) _exit(5);
      }
    });
  }
  std::string shared = "lustre://" + std::string(root) + "/r" + std::to_string(round) + "shared";
  if (!(*store)->mkdir(shared, 0755)) _exit(6);
  auto ack = [&](int t, long idx) {
    std::string a = std::to_string(t) + " " + std::to_string(idx) + "\n";
    if (::write(ack_fd, a.data(), a.size()) != static_cast<ssize_t>(a.size())) _exit(5);
  };
  std::atomic<long> followed{-1};
  ts.emplace_back([&] {
    for (long j = 0;; ++j) {
      // Lockstep with the follower, so these two streams do not crowd out the workload threads.
      while (followed.load() < j - 1) std::this_thread::yield();
      if (!(*store)->mkdir(shared + "/d" + std::to_string(j), 0755)) _exit(7);
      ack(kLeader, j);
    }
  });
  ts.emplace_back([&] {
    for (long j = 0;; ++j) {
      std::string d = shared + "/d" + std::to_string(j);
      while (!(*store)->stat(d).is_ok()) std::this_thread::yield();
      auto f = (*store)->open(d + "/x", kOpenWrite | kOpenCreate | kOpenExclusive);
      if (!f.is_ok() || !f->close().is_ok()) _exit(8);
      ack(kFollower, j);
      followed = j;
    }
  });
  for (auto& t : ts) t.join();
}

TEST_CASE("acknowledged operations survive SIGKILL mid-workload", "[lustre][crash]") {
  stor::test::TempDir dir;
  std::string root = dir.path() + "/fs";
  MkfsOptions mo;
  mo.targets = 4;
  mo.default_layout = {{-1, 64 << 10}};
  REQUIRE(mkfs(root, mo).is_ok());
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';

  const size_t kill_after[] = {900, 1800, 2700};  // acknowledged ops (all threads) before SIGKILL
  for (int round = 0; round < 3; ++round) {
    int pipefd[2];
    REQUIRE(::pipe(pipefd) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(pipefd[0]);
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 1);
      ::setenv("STOR_LUSTRE_CRASH_ROOT", root.c_str(), 1);
      ::setenv("STOR_LUSTRE_CRASH_FD", std::to_string(pipefd[1]).c_str(), 1);
      ::setenv("STOR_LUSTRE_CRASH_ROUND", std::to_string(round).c_str(), 1);
      ::execl(exe, exe, "[.lustre-crash-child]", static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(pipefd[1]);
    std::map<int, long> last_ack;  // thread -> highest acknowledged op index
    size_t acks = 0;
    bool killed = false;
    std::string pending;
    char buf[4096];
    for (;;) {
      ssize_t r = ::read(pipefd[0], buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;  // EOF: the child is gone (killed, or failed on its own)
      pending.append(buf, static_cast<size_t>(r));
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        std::istringstream line(pending.substr(0, nl));
        pending.erase(0, nl + 1);
        int t;
        long idx;
        line >> t >> idx;
        REQUIRE(idx == last_ack.emplace(t, -1).first->second + 1);  // in order per thread
        last_ack[t] = idx;
        ++acks;
      }
      if (!killed && acks >= kill_after[round]) {
        ::kill(pid, SIGKILL);  // keep reading: acks already in the pipe were acknowledged
        killed = true;
      }
    }
    ::close(pipefd[0]);
    int wstatus = 0;
    REQUIRE(::waitpid(pid, &wstatus, 0) == pid);
    INFO("round " << round << ": child exit status " << wstatus << " after " << acks << " acks");
    REQUIRE(killed);
    REQUIRE(WIFSIGNALED(wstatus));
    REQUIRE(WTERMSIG(wstatus) == SIGKILL);

    auto store = Store::create();
    REQUIRE(store.is_ok());
    for (int t = 0; t < kThreads; ++t) {
      std::string d = "lustre://" + root + "/r" + std::to_string(round) + "w" + std::to_string(t);
      long last = last_ack.count(t) ? last_ack[t] : -1;
      auto ops = op_sequence(static_cast<size_t>(last + 2));
      // Model of the acknowledged prefix; the one op in flight may or may not have happened.
      std::map<std::string, int> files;  // name -> item
      std::set<std::string> dirs;
      std::set<std::string> uncertain;
      for (long i = 0; i <= last + 1; ++i) {
        const Op& op = ops[static_cast<size_t>(i)];
        bool acked = i <= last;
        std::vector<std::string> touched;
        if (op.kind == 'C') touched = {file_name(op.item, false)};
        if (op.kind == 'R') touched = {file_name(op.item, false), file_name(op.item, true)};
        if (op.kind == 'U') touched = {file_name(op.item, op.item % 3 == 0)};
        if (op.kind == 'M') touched = {"d" + std::to_string(op.item)};
        if (!acked) {
          uncertain.insert(touched.begin(), touched.end());
          continue;
        }
        if (op.kind == 'C') files[touched[0]] = op.item;
        if (op.kind == 'R') files.erase(touched[0]), files[touched[1]] = op.item;
        if (op.kind == 'U') files.erase(touched[0]);
        if (op.kind == 'M') dirs.insert(touched[0]);
      }
      auto listing = (*store)->list(d);
      if (last < 0 && !listing) continue;  // killed before this thread's mkdir was acknowledged
      REQUIRE(listing.is_ok());
      std::set<std::string> seen;
      for (auto& e : *listing) {
        seen.insert(e.name);
        if (uncertain.count(e.name)) continue;
        INFO("thread " << t << " entry " << e.name << " (last ack " << last << ")");
        bool expected = files.count(e.name) || dirs.count(e.name);
        REQUIRE(expected);
      }
      for (auto& [name, item] : files) {
        if (uncertain.count(name)) continue;
        INFO("thread " << t << " acknowledged file " << name << " (last ack " << last << ")");
        REQUIRE(seen.count(name));
        auto f = (*store)->open(d + "/" + name, kOpenRead);
        REQUIRE(f.is_ok());
        REQUIRE(*f->size() == kFileBytes);
        std::vector<char> got(kFileBytes);
        REQUIRE(f->read_exact(got.data(), got.size(), 0).is_ok());
        REQUIRE(got == stor::test::pattern(kFileBytes, seed_of(round, t, item)));
      }
      for (auto& name : dirs) {
        if (uncertain.count(name)) continue;
        REQUIRE(seen.count(name));
      }
    }
    // Cross-thread dependencies: every acknowledged directory and file in it is there.
    std::string shared = "lustre://" + root + "/r" + std::to_string(round) + "shared";
    long leader = last_ack.count(kLeader) ? last_ack[kLeader] : -1;
    long follower = last_ack.count(kFollower) ? last_ack[kFollower] : -1;
    INFO("leader acked " << leader << ", follower acked " << follower);
    REQUIRE(follower <= leader + 1);  // the follower never gets ahead of what it could see
    for (long j = 0; j <= leader; ++j) REQUIRE((*store)->stat(shared + "/d" + std::to_string(j)).is_ok());
    for (long j = 0; j <= follower; ++j) REQUIRE((*store)->stat(shared + "/d" + std::to_string(j) + "/x").is_ok());
    // Recovery left no object that no file owns.
    auto check = fsck(root);
    REQUIRE(check.is_ok());
    REQUIRE(check->orphans == 0);
    REQUIRE(check->overlong == 0);
    // The recovered file system keeps working.
    auto probe = (*store)->open("lustre://" + root + "/probe" + std::to_string(round), kOpenWrite | kOpenCreate | kOpenExclusive);
    REQUIRE(probe.is_ok());
    REQUIRE(probe->close().is_ok());
  }
}
