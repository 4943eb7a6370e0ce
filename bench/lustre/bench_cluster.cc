// bench_cluster: lustre:// cluster mode (a stor-mds and 2 stor-targets, as child processes) with
// 1, 2 and 4 client processes, against the same work on the host file system in the same run,
// and the embedded (one process) mount as a single-process reference. Prints rates and ratios;
// absolute numbers depend on the machine.
//
//   mdtest-style: each process creates, stats and unlinks --files empty files in its own
//   directory; IOR-style: each process writes then reads --mib MiB of one shared file (disjoint
//   1 MiB transfers at offset rank * size), closing in between.
//
//   bench_cluster [--dir /dev/shm] [--files 2000] [--mib 32] [--procs 1,2,4]
//                 [--mds PATH] [--target PATH]
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "stor/admin.h"
#include "stor/store.h"
#include "stor/target.h"
#include "target_process.h"

using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] void die(const std::string& what, const stor::Status& s) {
  std::fprintf(stderr, "bench_cluster: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

struct Times {
  double create = 0, stat = 0, unlink = 0, write = 0, read = 0;
};

// One worker process: "lustre" (a Store URI prefix) or "host" (a host directory prefix).
Times work(const std::string& kind, const std::string& base, int rank, int files, uint64_t mib) {
  Times t;
  const std::string dir = base + "/p" + std::to_string(rank);
  const uint64_t bytes = mib << 20;
  std::vector<char> buf(1 << 20, static_cast<char>('a' + rank));
  if (kind == "host") {
    std::filesystem::create_directories(dir);
    auto t0 = Clock::now();
    for (int i = 0; i < files; ++i) {
      int fd = ::open((dir + "/f" + std::to_string(i)).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 || ::close(fd) != 0) die("host create", stor::Status::from_errno(errno, dir));
    }
    t.create = since(t0);
    t0 = Clock::now();
    for (int i = 0; i < files; ++i) {
      struct stat st {};
      if (::stat((dir + "/f" + std::to_string(i)).c_str(), &st) != 0) die("host stat", stor::Status::from_errno(errno, dir));
    }
    t.stat = since(t0);
    t0 = Clock::now();
    for (int i = 0; i < files; ++i)
      if (::unlink((dir + "/f" + std::to_string(i)).c_str()) != 0) die("host unlink", stor::Status::from_errno(errno, dir));
    t.unlink = since(t0);
    const std::string shared = base + "/shared.bin";
    t0 = Clock::now();
    int fd = ::open(shared.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    for (uint64_t off = 0; off < bytes; off += buf.size())
      if (::pwrite(fd, buf.data(), buf.size(), static_cast<off_t>(rank * bytes + off)) != static_cast<ssize_t>(buf.size()))
        die("host write", stor::Status::from_errno(errno, shared));
    ::close(fd);
    t.write = since(t0);
    t0 = Clock::now();
    fd = ::open(shared.c_str(), O_RDONLY | O_CLOEXEC);
    for (uint64_t off = 0; off < bytes; off += buf.size())
      if (::pread(fd, buf.data(), buf.size(), static_cast<off_t>(rank * bytes + off)) != static_cast<ssize_t>(buf.size()))
        die("host read", stor::Status::from_errno(errno, shared));
    ::close(fd);
    t.read = since(t0);
    return t;
  }
  auto store = stor::Store::create();
  if (!store) die("store", store.status());
  stor::Store& s = **store;
  if (auto st = s.mkdir(dir, 0755); !st && st.code() != stor::Code::kAlreadyExists) die("mkdir " + dir, st);
  auto t0 = Clock::now();
  for (int i = 0; i < files; ++i) {
    auto f = s.open(dir + "/f" + std::to_string(i), stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive);
    if (!f) die("create", f.status());
    if (auto c = f->close(); !c) die("close", c);
  }
  t.create = since(t0);
  t0 = Clock::now();
  for (int i = 0; i < files; ++i)
    if (auto st = s.stat(dir + "/f" + std::to_string(i)); !st) die("stat", st.status());
  t.stat = since(t0);
  t0 = Clock::now();
  for (int i = 0; i < files; ++i)
    if (auto st = s.remove(dir + "/f" + std::to_string(i)); !st) die("unlink", st);
  t.unlink = since(t0);
  const std::string shared = base + "/shared.bin";
  t0 = Clock::now();
  {
    auto f = s.open(shared, stor::kOpenWrite | stor::kOpenCreate);
    if (!f) die("open shared", f.status());
    for (uint64_t off = 0; off < bytes; off += buf.size())
      if (auto w = f->write(buf.data(), buf.size(), rank * bytes + off); !w) die("write", w.status());
    if (auto c = f->close(); !c) die("close shared", c);
  }
  t.write = since(t0);
  t0 = Clock::now();
  {
    auto f = s.open(shared);
    if (!f) die("open shared", f.status());
    for (uint64_t off = 0; off < bytes; off += buf.size())
      if (auto r = f->read(buf.data(), buf.size(), rank * bytes + off); !r || *r != buf.size())
        die("read", r ? stor::Status::IoError("short read") : r.status());
  }
  t.read = since(t0);
  return t;
}

std::string self_exe() {
  char exe[4096];
  ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) std::exit(1);
  exe[n] = '\0';
  return exe;
}

// Runs n worker processes at once; aggregate rates use the slowest worker's time per phase.
struct Rates {
  double create = 0, stat = 0, unlink = 0, write_mbs = 0, read_mbs = 0;
};
Rates run(const std::string& kind, const std::string& base, int n, int files, uint64_t mib, const std::string& key) {
  std::vector<std::pair<pid_t, int>> kids;
  for (int r = 0; r < n; ++r) {
    int p[2];
    if (::pipe(p) != 0) std::exit(1);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(p[1], 1);
      ::close(p[0]);
      if (!key.empty()) ::setenv("STOR_LUSTRE_KEY_FILE", key.c_str(), 1);
      std::string exe = self_exe();
      ::execl(exe.c_str(), exe.c_str(), "--worker", kind.c_str(), base.c_str(), std::to_string(r).c_str(),
              std::to_string(files).c_str(), std::to_string(mib).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(p[1]);
    kids.emplace_back(pid, p[0]);
  }
  Times worst;
  for (auto [pid, fd] : kids) {
    std::string out;
    char buf[256];
    for (ssize_t k; (k = ::read(fd, buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(k));
    ::close(fd);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "bench_cluster: a %s worker failed\n", kind.c_str());
      std::exit(1);
    }
    Times t;
    std::istringstream in(out);
    in >> t.create >> t.stat >> t.unlink >> t.write >> t.read;
    worst.create = std::max(worst.create, t.create);
    worst.stat = std::max(worst.stat, t.stat);
    worst.unlink = std::max(worst.unlink, t.unlink);
    worst.write = std::max(worst.write, t.write);
    worst.read = std::max(worst.read, t.read);
  }
  const double ops = static_cast<double>(files) * n, mb = static_cast<double>(mib) * n;
  return Rates{ops / worst.create, ops / worst.stat, ops / worst.unlink, mb / worst.write, mb / worst.read};
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 7 && std::string(argv[1]) == "--worker") {
    Times t = work(argv[2], argv[3], std::atoi(argv[4]), std::atoi(argv[5]), std::strtoull(argv[6], nullptr, 10));
    std::printf("%.9f %.9f %.9f %.9f %.9f\n", t.create, t.stat, t.unlink, t.write, t.read);
    return 0;
  }
  std::string dir = "/dev/shm", mds_bin = STOR_MDS_PATH, target_bin = STOR_TARGET_PATH;
  int files = 2000;
  uint64_t mib = 32;
  std::vector<int> procs = {1, 2, 4};
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--dir") dir = v;
    else if (a == "--files") files = std::max(1, std::atoi(v.c_str()));
    else if (a == "--mib") mib = std::max<uint64_t>(1, std::strtoull(v.c_str(), nullptr, 10));
    else if (a == "--procs") procs = parse_list(v);
    else if (a == "--mds") mds_bin = v;
    else if (a == "--target") target_bin = v;
    else {
      std::fprintf(stderr, "bench_cluster: bad argument %s\n", a.c_str());
      return 2;
    }
  }
  char tmpl[4096];
  std::snprintf(tmpl, sizeof tmpl, "%s/bench-cluster-XXXXXX", dir.c_str());
  if (!::mkdtemp(tmpl)) die("mkdtemp", stor::Status::from_errno(errno, dir));
  const std::string base = tmpl;
  const std::string key = base + "/fs.key";
  if (auto s = stor::make_target_key(key); !s) die("key", s);
  ::setenv("STOR_LUSTRE_KEY_FILE", key.c_str(), 1);  // this process and the cluster workers
  std::filesystem::create_directories(base + "/ost0");
  std::filesystem::create_directories(base + "/ost1");
  int rc = 0;
  {
    stor::test::TargetProcess t0(target_bin, "tcp://127.0.0.1:0", base + "/ost0", {"--key-file", key});
    stor::test::TargetProcess t1(target_bin, "tcp://127.0.0.1:0", base + "/ost1", {"--key-file", key});
    stor::admin::MkfsOptions mo;
    mo.target_endpoints = {t0.endpoint(), t1.endpoint()};
    mo.key_file = key;
    mo.root_mode = 0777;
    if (auto s = stor::admin::mkfs(base + "/fs", mo); !s) die("mkfs", s);
    stor::admin::MkfsOptions lo;  // the embedded reference: local targets, one process
    lo.targets = 2;
    if (auto s = stor::admin::mkfs(base + "/local", lo); !s) die("mkfs", s);
    stor::test::TargetProcess mds(stor::test::TargetProcess::Args{
        {mds_bin, "--root", base + "/fs", "--listen", "tcp://127.0.0.1:0", "--key-file", key}});
    const std::string cluster = "lustre://" + mds.endpoint().substr(std::strlen("tcp://"));

    std::printf("bench_cluster: %d files/process (create, stat, unlink), %llu MiB/process of one shared file\n",
                files, static_cast<unsigned long long>(mib));
    std::printf("%-9s %5s %10s %10s %10s %10s %10s\n", "where", "procs", "create/s", "stat/s", "unlink/s",
                "write MB/s", "read MB/s");
    auto row = [](const char* where, int n, const Rates& r) {
      std::printf("%-9s %5d %10.0f %10.0f %10.0f %10.1f %10.1f\n", where, n, r.create, r.stat, r.unlink, r.write_mbs,
                  r.read_mbs);
    };
    std::map<int, Rates> cl, host;
    Rates embedded = run("lustre", "lustre://" + base + "/local", 1, files, mib, key);
    row("embedded", 1, embedded);
    for (int n : procs) {
      std::filesystem::create_directories(base + "/host" + std::to_string(n));
      host[n] = run("host", base + "/host" + std::to_string(n), n, files, mib, "");
      row("host", n, host[n]);
      if (auto s = stor::Store::create().value()->mkdir(cluster + "/run" + std::to_string(n), 0777); !s)
        die("mkdir", s);
      cl[n] = run("lustre", cluster + "/run" + std::to_string(n), n, files, mib, key);
      row("cluster", n, cl[n]);
    }
    std::printf("ratios cluster/host (create, stat, unlink, write, read):\n");
    for (int n : procs)
      std::printf("  %d procs: %.2fx %.2fx %.2fx %.2fx %.2fx\n", n, cl[n].create / host[n].create,
                  cl[n].stat / host[n].stat, cl[n].unlink / host[n].unlink, cl[n].write_mbs / host[n].write_mbs,
                  cl[n].read_mbs / host[n].read_mbs);
    if (!procs.empty()) {
      const int one = procs.front();
      std::printf("scaling vs %d proc(s) (create, stat, unlink, write, read):\n", one);
      for (int n : procs)
        std::printf("  %d procs: cluster %.2fx %.2fx %.2fx %.2fx %.2fx | host %.2fx %.2fx %.2fx %.2fx %.2fx\n", n,
                    cl[n].create / cl[one].create, cl[n].stat / cl[one].stat, cl[n].unlink / cl[one].unlink,
                    cl[n].write_mbs / cl[one].write_mbs, cl[n].read_mbs / cl[one].read_mbs,
                    host[n].create / host[one].create, host[n].stat / host[one].stat,
                    host[n].unlink / host[one].unlink, host[n].write_mbs / host[one].write_mbs,
                    host[n].read_mbs / host[one].read_mbs);
      std::printf("cluster (1 proc) / embedded: %.2fx %.2fx %.2fx %.2fx %.2fx\n", cl[one].create / embedded.create,
                  cl[one].stat / embedded.stat, cl[one].unlink / embedded.unlink,
                  cl[one].write_mbs / embedded.write_mbs, cl[one].read_mbs / embedded.read_mbs);
    }
    if (!mds.stop_cleanly()) {
      std::fprintf(stderr, "bench_cluster: stor-mds did not stop cleanly\n");
      rc = 1;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(base, ec);
  return rc;
}
