// stctl cluster start|stop|status: a local cluster (1 stor-mds, 4 stor-targets) used by 4 client
// processes at once, and the failure paths of starting and stopping one (a daemon missing or
// dying at start, a second start, stale pid files, a dead server in status, --mdts 2).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "stor/store.h"
#include "test_util.h"

namespace {

namespace fs = std::filesystem;
using Run = stor::test::CommandRun;

Run stctl(const std::string& args, const std::string& env = "") {
  Run r = stor::test::run_command((env.empty() ? std::string() : "env " + env + " ") + std::string(STOR_TEST_STCTL) + " " + args + " 2>&1");
  REQUIRE(r.exit_code != -2);
  return r;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// Pids of live processes (not zombies) with an argument inside `dir`: daemons of that cluster.
std::set<pid_t> processes_under(const std::string& dir) {
  std::set<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end || pid <= 0) continue;
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string st;
    if (!std::getline(stat, st)) continue;
    const size_t paren = st.rfind(')');
    if (paren == std::string::npos || paren + 2 >= st.size() || st[paren + 2] == 'Z') continue;
    std::ifstream cmd("/proc/" + std::string(e->d_name) + "/cmdline", std::ios::binary);
    std::string all((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
    if (contains(all, dir + "/") && !contains(all, "stctl")) out.insert(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

// Waits up to 5 s for the daemons of `dir` to be gone (a SIGKILLed process is reaped by init).
bool none_left(const std::string& dir) {
  for (int i = 0; i < 250; ++i) {
    if (processes_under(dir).empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// A bin directory with the real stor-target and `stor-mds` replaced by a script.
std::string fake_bin(const stor::test::TempDir& tmp, const std::string& name, const std::string& mds_script) {
  const std::string bin = tmp.path() + "/" + name;
  fs::create_directories(bin);
  fs::create_symlink(fs::path(STOR_TEST_STCTL).parent_path().parent_path() / "stor-target" / "stor-target",
                     bin + "/stor-target");
  std::ofstream(bin + "/stor-mds") << "#!/bin/sh\n" << mds_script << "\n";
  fs::permissions(bin + "/stor-mds", fs::perms::owner_all);
  return bin;
}

}  // namespace

TEST_CASE("stctl cluster: a daemon dying at start is reported and nothing is left running", "[cluster]") {
  stor::test::TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  const std::string bin = fake_bin(tmp, "bin1", "echo 'stor-mds: cannot serve: test failure' >&2\nexit 3");
  Run r = stctl("cluster start " + dir, "STOR_BIN_DIR=" + bin);
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "mdt0"));
  CHECK(contains(r.out, "exited with status 3 at start"));
  CHECK(contains(r.out, "cannot serve: test failure"));  // the daemon's own last log line
  CHECK(none_left(dir));  // the four targets started before it were stopped
  CHECK_FALSE(fs::exists(dir + "/cluster.pids"));
  CHECK_FALSE(fs::exists(dir + "/fs"));  // the next start is a first start again
  CHECK_FALSE(fs::exists(dir + "/cluster.conf"));

  // One that never prints its endpoint is killed after --timeout.
  const std::string bin2 = fake_bin(tmp, "bin2", "exec sleep 60");
  r = stctl("cluster start " + dir + " --timeout 1", "STOR_BIN_DIR=" + bin2);
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "printed no endpoint"));
  CHECK(none_left(dir));

  // Stopping or asking about a directory without a running cluster.
  r = stctl("cluster stop " + dir);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "no cluster running"));
  r = stctl("cluster status " + dir);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "no cluster in"));
}

TEST_CASE("stctl cluster: bad arguments", "[cluster]") {
  stor::test::TempDir tmp;
  Run r;
  CHECK(stctl("cluster start " + tmp.path() + "/c --mdts 0").exit_code == 2);
  CHECK(stctl("cluster start " + tmp.path() + "/c --osts 0").exit_code == 2);
  CHECK(stctl("cluster start " + tmp.path() + "/c --osts -1").exit_code == 2);
  CHECK(stctl("cluster start " + tmp.path() + "/c --host a/b").exit_code == 2);
  CHECK(stctl("cluster frobnicate " + tmp.path()).exit_code == 2);
  CHECK(stctl("cluster start").exit_code == 2);
  r = stctl("cluster start " + tmp.path() + "/c", "STOR_BIN_DIR=" + tmp.path() + "/nothing-here");
  // The daemons are found next to stctl in the build tree even when STOR_BIN_DIR lacks them,
  // unless stor-mds is not built: then the message says where it looked.
  if (r.exit_code != 0) CHECK(contains(r.out, "not found"));
  else CHECK(stctl("cluster stop " + tmp.path() + "/c").exit_code == 0);
}

#ifdef STOR_TEST_HAVE_MDS

TEST_CASE("stctl cluster start --mdts 2: two MDSs, directories on both, fsck and df over both", "[cluster][dne]") {
  stor::test::TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  Run r = stctl("cluster start " + dir + " --mdts 2 --osts 2 --no-root-squash");
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "2 MDTs, 2 OSTs"));
  CHECK(contains(r.out, "mdt1"));
  std::string uri;
  for (size_t at = r.out.find("lustre://"); at != std::string::npos; at = std::string::npos)
    uri = r.out.substr(at, r.out.find('\n', at) - at);
  REQUIRE(!uri.empty());
  while (!uri.empty() && uri.back() == '/') uri.pop_back();
  const std::string env = "STOR_LUSTRE_KEY_FILE=" + dir + "/cluster.key";
  CHECK(stctl("mkdir -i 1 " + uri + "/on1", env).exit_code == 0);
  CHECK(stctl("mkdir -i 0 " + uri + "/on1/on0", env).exit_code == 0);
  CHECK(stctl("mkdir -i 7 " + uri + "/nope", env).exit_code != 0);
  {
    std::ofstream f(tmp.path() + "/small");
    f << "dne";
  }
  CHECK(stctl("cp " + tmp.path() + "/small " + uri + "/on1/on0/f", env).exit_code == 0);
  r = stctl("cat " + uri + "/on1/on0/f", env);
  CHECK(r.out == "dne");
  r = stctl("ls " + uri + "/", env);
  CHECK(contains(r.out, "on1"));
  CHECK_FALSE(contains(r.out, ".stor-remote"));
  r = stctl("df " + uri + "/", env);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "stor-MDT0"));
  CHECK(contains(r.out, "stor-MDT1"));
  r = stctl("cluster status " + dir);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "mdt1"));
  r = stctl("cluster fsck " + dir);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  r = stctl("cat " + uri + "/on1/on0/f", env);  // both MDSs back after fsck
  CHECK(r.out == "dne");
  CHECK(stctl("cluster stop " + dir).exit_code == 0);
  CHECK(none_left(dir));
}

// One client process of the namespace test (this binary, re-executed): rank R makes its own
// directory with files, adds files to the shared directory, renames one, and reads what the
// other ranks wrote into the shared directory once they are all there.
TEST_CASE("cluster child", "[.cluster-child]") {
  const char* uri_env = std::getenv("STOR_CLUSTER_CHILD_URI");
  const char* rank_env = std::getenv("STOR_CLUSTER_CHILD_RANK");
  REQUIRE(uri_env);
  REQUIRE(rank_env);
  const std::string uri = uri_env;
  const int rank = std::atoi(rank_env);
  auto store = stor::Store::create();
  REQUIRE(store.is_ok());
  auto& st = **store;
  const std::string own = uri + "p" + std::to_string(rank);
  REQUIRE(st.mkdir(own).is_ok());
  for (int i = 0; i < 20; ++i) {
    const std::string body = "rank " + std::to_string(rank) + " file " + std::to_string(i);
    for (const std::string& path : {own + "/f" + std::to_string(i), uri + "shared/r" + std::to_string(rank) + "." + std::to_string(i)}) {
      auto f = st.open(path, stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive);
      REQUIRE(f.is_ok());
      REQUIRE(f->write(body.data(), body.size(), 0).is_ok());
      REQUIRE(f->close().is_ok());
    }
  }
  REQUIRE(st.rename(own + "/f0", own + "/renamed").is_ok());
  REQUIRE(st.remove(own + "/f1").is_ok());
  // Wait for everyone's shared files, then read them all (another process's data after close).
  for (int tries = 0;; ++tries) {
    auto l = st.list(uri + "shared");
    REQUIRE(l.is_ok());
    if (l->size() == 80) break;
    REQUIRE(tries < 1000);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (int r = 0; r < 4; ++r)
    for (int i = 0; i < 20; ++i) {
      const std::string want = "rank " + std::to_string(r) + " file " + std::to_string(i);
      auto f = st.open(uri + "shared/r" + std::to_string(r) + "." + std::to_string(i), stor::kOpenRead);
      REQUIRE(f.is_ok());
      std::string got(want.size() + 8, '\0');
      auto n = f->read(got.data(), got.size(), 0);
      REQUIRE(n.is_ok());
      got.resize(*n);
      CHECK(got == want);
      REQUIRE(f->close().is_ok());
    }
}

TEST_CASE("stctl cluster: 1 MDT and 4 OSTs, 4 client processes in one namespace, status, stop, restart", "[cluster]") {
  stor::test::TempDir tmp;
  const std::string dir = tmp.path() + "/c";
  // Whatever fails below, no daemon outlives the test.
  struct StopAtExit {
    std::string dir;
    ~StopAtExit() { (void)stor::test::run_command(std::string(STOR_TEST_STCTL) + " cluster stop " + dir + " >/dev/null 2>&1"); }
  } stop_at_exit{dir};
  // Tests run as root in CI: without root squash the MDS lets uid 0 in.
  Run r = stctl("cluster start " + dir + " --osts 4 --no-root-squash");
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  std::string uri, key;
  {
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("lustre://", 0) == 0) uri = line;
      if (line.rfind("export STOR_LUSTRE_KEY_FILE=", 0) == 0) key = line.substr(28);
    }
  }
  REQUIRE(uri.rfind("lustre://127.0.0.1:", 0) == 0);
  REQUIRE(key == fs::weakly_canonical(dir).string() + "/cluster.key");
  CHECK((fs::status(key).permissions() & (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);
  CHECK(processes_under(fs::weakly_canonical(dir).string()).size() == 5);
  ::setenv("STOR_LUSTRE_KEY_FILE", key.c_str(), 1);

  r = stctl("cluster status " + dir);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "healthy"));
  for (const char* s : {"mdt0", "ost0", "ost1", "ost2", "ost3"}) CHECK(contains(r.out, s));
  r = stctl("cluster start " + dir);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "already running"));

  // 4 client processes at once.
  REQUIRE(stctl("--set lustre.key_file=" + key + " ls " + uri).exit_code == 0);
  {
    auto store = stor::Store::create();
    REQUIRE(store.is_ok());
    REQUIRE((*store)->mkdir(uri + "shared").is_ok());
  }
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  std::vector<pid_t> kids;
  for (int rank = 0; rank < 4; ++rank) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setenv("STOR_CLUSTER_CHILD_URI", uri.c_str(), 1);
      ::setenv("STOR_CLUSTER_CHILD_RANK", std::to_string(rank).c_str(), 1);
      ::execl(exe, exe, "[.cluster-child]", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = 0;
    REQUIRE(::waitpid(k, &st, 0) == k);
    CHECK(WIFEXITED(st));
    CHECK(WEXITSTATUS(st) == 0);
  }
  {
    auto store = stor::Store::create();
    REQUIRE(store.is_ok());
    auto shared = (*store)->list(uri + "shared");
    REQUIRE(shared.is_ok());
    CHECK(shared->size() == 80);
    for (int rank = 0; rank < 4; ++rank) {
      auto own = (*store)->list(uri + "p" + std::to_string(rank));
      REQUIRE(own.is_ok());
      CHECK(own->size() == 19);  // 20 files, one renamed, one removed
      CHECK((*store)->stat(uri + "p" + std::to_string(rank) + "/renamed").is_ok());
    }
  }
  // The stctl commands against the cluster URI.
  r = stctl("ls -l " + uri + "p0");
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "renamed"));
  r = stctl("stat " + uri + "p0/renamed");
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "size"));
  r = stctl("df " + uri);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "OST3"));

  r = stctl("setstripe -c -1 -S 64K " + uri + "wide");
  INFO(r.out);
  CHECK(r.exit_code == 0);
  r = stctl("getstripe " + uri + "wide");
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "stripe_count 4 "));
  CHECK(contains(r.out, "stripe_size 64K "));
  // top with the cluster URI: the MDS and the four targets answer their stats calls.
  r = stctl("top --count 1 --interval 0.2 " + uri);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "mdt"));
  CHECK(contains(r.out, "ost"));
  CHECK_FALSE(contains(r.out, "unreachable"));
  CHECK_FALSE(contains(r.out, "key refused"));

  // fsck: refused on the URI (the MDS holds the metadata), done offline by `cluster fsck`,
  // which restarts the MDS on its port.
  r = stctl("fsck " + uri);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "Unsupported"));
  CHECK(contains(r.out, "cluster fsck"));
  r = stctl("cluster fsck " + dir);
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "0 orphan(s)"));
  CHECK(stctl("cluster status " + dir).exit_code == 0);
  CHECK(stctl("ls " + uri + "shared").exit_code == 0);

  // A target killed: status says so and fails; stop still stops the rest.
  std::string ost2_pid;
  {
    std::ifstream pids(dir + "/cluster.pids");
    for (std::string line; std::getline(pids, line);) {
      std::istringstream l(line);
      std::string role, idx, pid;
      if (l >> role >> idx >> pid && role == "ost" && idx == "2") ost2_pid = pid;
    }
  }
  REQUIRE_FALSE(ost2_pid.empty());
  ::kill(std::stoi(ost2_pid), SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  r = stctl("cluster status " + dir + " --interval 0.1");
  INFO(r.out);
  CHECK(r.exit_code == 1);
  CHECK(contains(r.out, "DEGRADED"));
  CHECK(contains(r.out, "UNREACHABLE"));
  r = stctl("cluster stop " + dir);
  CHECK(r.exit_code == 0);
  CHECK(contains(r.out, "already exited"));
  CHECK(none_left(fs::weakly_canonical(dir).string()));
  CHECK(stctl("cluster stop " + dir).exit_code == 0);  // idempotent

  // Restart: same ports, same data.
  r = stctl("cluster start " + dir);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "restarted"));
  CHECK(contains(r.out, uri));
  {
    auto store = stor::Store::create();
    REQUIRE(store.is_ok());
    auto shared = (*store)->list(uri + "shared");
    REQUIRE(shared.is_ok());
    CHECK(shared->size() == 80);
  }
  // Every daemon killed (a crashed cluster): the stale pid file is noticed and replaced.
  for (pid_t p : processes_under(fs::weakly_canonical(dir).string())) ::kill(p, SIGKILL);
  REQUIRE(none_left(fs::weakly_canonical(dir).string()));
  r = stctl("cluster start " + dir);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "stale"));
  CHECK(stctl("cluster status " + dir).exit_code == 0);
  CHECK(stctl("cluster stop " + dir).exit_code == 0);
  CHECK(none_left(fs::weakly_canonical(dir).string()));
  ::unsetenv("STOR_LUSTRE_KEY_FILE");
}

#endif
