// bench_io500: IO500-style workloads on the multi-client lustre:// mount (stor-mds +
// stor-target daemons, started with `stctl cluster start`) against the same POSIX calls on the host file system, measured in the same run, with 1, 2 and 4 client
// processes (separate processes, each with its own Store and connections):
//
//   mdtest-style: create / stat / unlink of N empty and N 3,901-byte files per process (IO500's
//                 mdtest-hard size), in one shared directory and in one directory per process.
//   IOR-style:    easy: one file per process, 1 MiB transfers; hard: one shared file, 47,008-byte
//                 transfers interleaved between the processes (IO500's ior-hard); write then read
//                 (data checked), over all targets (stripe count -1, 1 MiB stripes).
//
// A phase is timed by the parent from releasing every process to the last one finishing (as
// mdtest/IOR report the slowest rank). Prints ops/s or MB/s and the ratio lustre/host.
//
//   bench_io500 [--dir DIR] [--files N] [--ior-size BYTES] [--procs 1,2,4] [--only mdtest|ior]
//                 [--reps N] [--uri lustre://HOST:PORT/ --key FILE] [--stctl PATH] [--osts N] [--mdts 1,2]
//   defaults: --dir /dev/shm --files 2000 --ior-size 128M --procs 1,2,4 --reps 1 --osts 4 --mdts 1,2
// With --reps N every cell is the median of N runs (lustre and host alternate).
// Without --uri it starts a cluster in DIR with `stctl cluster start` (1 MDT, --osts OSTs) and
// stops it at the end; the host reference runs in DIR too, so both use the same file system.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "stor/admin.h"
#include "stor/settings.h"
#include "stor/store.h"

namespace {

using Clock = std::chrono::steady_clock;

// Set once the bench started a cluster: die() stops it, so no daemon outlives a failed run.
std::string g_stop_command;
pid_t g_main_pid = 0;

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "bench_io500: %s\n", msg.c_str());
  if (::getpid() == g_main_pid && !g_stop_command.empty()) (void)std::system(g_stop_command.c_str());
  std::exit(1);
}

// ---- one phase = every worker process runs fn(rank) at once ----------------------------------

// A worker's view: `lustre` says which side it measures; `store` exists only there.
struct Worker {
  int rank = 0, nprocs = 1;
  bool lustre = false;
  stor::Store* store = nullptr;
};
using PhaseFn = std::function<stor::Status(Worker&)>;

struct Phase {
  std::string name;
  PhaseFn fn;
  bool timed = true;
};

// Forks nprocs workers (each makes its own Store when `lustre`), runs the phases in lockstep and
// returns each timed phase's wall time in seconds.
std::vector<double> run_phases(int nprocs, bool lustre, const std::vector<Phase>& phases) {
  int report[2];
  if (::pipe(report) != 0) die("pipe");
  std::vector<int> go(static_cast<size_t>(nprocs));
  std::vector<pid_t> pids;
  for (int r = 0; r < nprocs; ++r) {
    int g[2];
    if (::pipe(g) != 0) die("pipe");
    const pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      ::close(report[0]);
      ::close(g[1]);
      for (int k = 0; k < r; ++k) ::close(go[static_cast<size_t>(k)]);
      Worker w{r, nprocs, lustre, nullptr};
      std::unique_ptr<stor::Store> store;
      if (lustre) {
        auto s = stor::Store::create();
        if (!s.is_ok()) {
          std::fprintf(stderr, "bench_io500: rank %d: %s\n", r, s.status().to_string().c_str());
          ::_exit(1);
        }
        store = std::move(*s);
        w.store = store.get();
      }
      char c = 'R';
      if (::write(report[1], &c, 1) != 1) ::_exit(1);
      for (const auto& ph : phases) {
        if (::read(g[0], &c, 1) != 1) ::_exit(1);
        stor::Status s = ph.fn(w);
        if (!s.is_ok()) {
          std::fprintf(stderr, "bench_io500: rank %d, %s (%s): %s\n", r, ph.name.c_str(), lustre ? "lustre" : "host",
                       s.to_string().c_str());
          c = 'E';
          (void)::write(report[1], &c, 1);
          ::_exit(1);
        }
        c = 'D';
        if (::write(report[1], &c, 1) != 1) ::_exit(1);
      }
      store.reset();
      ::_exit(0);
    }
    ::close(g[0]);
    go[static_cast<size_t>(r)] = g[1];
    pids.push_back(pid);
  }
  ::close(report[1]);
  auto fail = [&](const std::string& why) {
    for (pid_t p : pids) ::kill(p, SIGKILL);
    for (pid_t p : pids) ::waitpid(p, nullptr, 0);
    die(why);
  };
  auto collect = [&](const std::string& what) {
    for (int n = 0; n < nprocs; ++n) {
      char c = 0;
      if (::read(report[0], &c, 1) != 1 || c == 'E') fail(what + " failed (see above)");
    }
  };
  collect("start");
  std::vector<double> times;
  for (const auto& ph : phases) {
    const auto t0 = Clock::now();
    for (int fd : go) {
      char c = 'G';
      if (::write(fd, &c, 1) != 1) fail("release");
    }
    collect(ph.name);
    if (ph.timed) times.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  for (int fd : go) ::close(fd);
  ::close(report[0]);
  for (pid_t p : pids) {
    int st = 0;
    ::waitpid(p, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) die("a worker exited abnormally");
  }
  return times;
}

// ---- the two sides: the stor API on lustre://, POSIX on the host ------------------------------

struct Side {
  std::string base;  // lustre://HOST:PORT/bench or DIR/host
  bool lustre;
};

stor::Status host_errno(const std::string& what) { return stor::Status::from_errno(errno, what); }

stor::Status make_dir(Worker& w, const std::string& path) {
  if (w.lustre) {
    stor::Status s = w.store->mkdir(path);
    return s.code() == stor::Code::kAlreadyExists ? stor::Status::ok() : s;
  }
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return host_errno("mkdir " + path);
  return {};
}

stor::Status create_file(Worker& w, const std::string& path, const std::vector<char>& data) {
  if (w.lustre) {
    STOR_ASSIGN_OR_RETURN(stor::File f, w.store->open(path, stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive));
    if (!data.empty()) {
      STOR_ASSIGN_OR_RETURN(size_t n, f.write(data.data(), data.size(), 0));
      if (n != data.size()) return stor::Status::IoError("short write " + path);
    }
    return f.close();
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return host_errno("create " + path);
  if (!data.empty() && ::pwrite(fd, data.data(), data.size(), 0) != static_cast<ssize_t>(data.size())) {
    ::close(fd);
    return host_errno("write " + path);
  }
  return ::close(fd) == 0 ? stor::Status::ok() : host_errno("close " + path);
}

stor::Status stat_file(Worker& w, const std::string& path, uint64_t want) {
  uint64_t size = 0;
  if (w.lustre) {
    STOR_ASSIGN_OR_RETURN(stor::FileInfo st, w.store->stat(path));
    size = st.size;
  } else {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return host_errno("stat " + path);
    size = static_cast<uint64_t>(st.st_size);
  }
  if (size != want) return stor::Status::Corruption(path + " has " + std::to_string(size) + " bytes, want " + std::to_string(want));
  return {};
}

stor::Status remove_file(Worker& w, const std::string& path) {
  if (w.lustre) return w.store->remove(path);
  return ::unlink(path.c_str()) == 0 ? stor::Status::ok() : host_errno("unlink " + path);
}

// ---- mdtest ---------------------------------------------------------------------------------

struct MdResult {
  double create = 0, stat = 0, unlink = 0;  // ops/s
};

MdResult mdtest(const Side& side, const std::string& run, int nprocs, bool shared, size_t files, size_t bytes) {
  const std::string dir = side.base + "/" + run;
  auto own_dir = [=](const Worker& w) { return shared ? dir + "/shared" : dir + "/p" + std::to_string(w.rank); };
  auto name = [=](const Worker& w, size_t i) {
    return own_dir(w) + "/f." + std::to_string(w.rank) + "." + std::to_string(i);
  };
  const std::vector<char> data(bytes, 'm');
  std::vector<Phase> phases;
  phases.push_back({"mkdir", [=](Worker& w) -> stor::Status {
                      if (w.rank == 0) STOR_RETURN_IF_ERROR(make_dir(w, dir));
                      return stor::Status::ok();
                    }, false});
  phases.push_back({"mkdir own", [=](Worker& w) { return make_dir(w, own_dir(w)); }, false});
  phases.push_back({"create", [=](Worker& w) -> stor::Status {
                      for (size_t i = 0; i < files; ++i) STOR_RETURN_IF_ERROR(create_file(w, name(w, i), data));
                      return stor::Status::ok();
                    }});
  phases.push_back({"stat", [=](Worker& w) -> stor::Status {
                      for (size_t i = 0; i < files; ++i) STOR_RETURN_IF_ERROR(stat_file(w, name(w, i), bytes));
                      return stor::Status::ok();
                    }});
  phases.push_back({"unlink", [=](Worker& w) -> stor::Status {
                      for (size_t i = 0; i < files; ++i) STOR_RETURN_IF_ERROR(remove_file(w, name(w, i)));
                      return stor::Status::ok();
                    }});
  auto t = run_phases(nprocs, side.lustre, phases);
  const double ops = static_cast<double>(files) * nprocs;
  return {ops / t[0], ops / t[1], ops / t[2]};
}

// ---- IOR ------------------------------------------------------------------------------------

// Each transfer starts with its file offset (then the writer's rank), so reads check where
// their bytes came from.
void stamp(std::vector<char>& buf, uint64_t off, int rank) {
  std::memcpy(buf.data(), &off, sizeof off);
  std::memcpy(buf.data() + sizeof off, &rank, sizeof rank);
}
stor::Status check_stamp(const std::vector<char>& buf, uint64_t off, int rank, const std::string& path) {
  uint64_t got = 0;
  int who = -1;
  std::memcpy(&got, buf.data(), sizeof got);
  std::memcpy(&who, buf.data() + sizeof got, sizeof who);
  if (got != off || who != rank)
    return stor::Status::Corruption(path + " at " + std::to_string(off) + ": holds offset " + std::to_string(got) +
                                    " from rank " + std::to_string(who));
  return {};
}

struct IoFile {
  stor::File file;
  int fd = -1;
};

stor::Result<IoFile> io_open(Worker& w, const std::string& path, bool write) {
  IoFile f;
  if (w.lustre) {
    STOR_ASSIGN_OR_RETURN(f.file, w.store->open(path, write ? stor::kOpenWrite | stor::kOpenCreate : stor::kOpenRead));
    return f;
  }
  f.fd = ::open(path.c_str(), (write ? O_WRONLY | O_CREAT : O_RDONLY) | O_CLOEXEC, 0644);
  if (f.fd < 0) return host_errno("open " + path);
  return f;
}

stor::Status io_at(Worker& w, IoFile& f, bool write, std::vector<char>& buf, uint64_t off, const std::string& path) {
  size_t n = 0;
  if (w.lustre) {
    auto r = write ? f.file.write(buf.data(), buf.size(), off) : f.file.read(buf.data(), buf.size(), off);
    if (!r.is_ok()) return r.status();
    n = *r;
  } else {
    const ssize_t r = write ? ::pwrite(f.fd, buf.data(), buf.size(), static_cast<off_t>(off))
                            : ::pread(f.fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (r < 0) return host_errno((write ? "write " : "read ") + path);
    n = static_cast<size_t>(r);
  }
  if (n != buf.size()) return stor::Status::IoError("short transfer on " + path);
  return {};
}

stor::Status io_close(Worker& w, IoFile& f, const std::string& path) {
  if (w.lustre) return f.file.close();
  return ::close(f.fd) == 0 ? stor::Status::ok() : host_errno("close " + path);
}

struct IorResult {
  double write = 0, read = 0;  // MB/s
};

// easy: file per process, `xfer` = 1 MiB; hard: one shared file, block i of rank r at
// (i * nprocs + r) * xfer.
IorResult ior(const Side& side, const std::string& run, int nprocs, bool hard, uint64_t per_proc, size_t xfer) {
  const std::string dir = side.base + "/" + run;
  const uint64_t blocks = std::max<uint64_t>(1, per_proc / xfer);
  auto path_of = [=](const Worker& w) { return hard ? dir + "/shared" : dir + "/file." + std::to_string(w.rank); };
  auto offset_of = [=](const Worker& w, uint64_t i) {
    return hard ? (i * static_cast<uint64_t>(w.nprocs) + static_cast<uint64_t>(w.rank)) * xfer : i * xfer;
  };
  auto pass = [=](Worker& w, bool write) -> stor::Status {
    const std::string path = path_of(w);
    std::vector<char> buf(xfer, 'i');
    STOR_ASSIGN_OR_RETURN(IoFile f, io_open(w, path, write));
    stor::Status s;
    for (uint64_t i = 0; i < blocks && s.is_ok(); ++i) {
      const uint64_t off = offset_of(w, i);
      if (write) stamp(buf, off, w.rank);
      s = io_at(w, f, write, buf, off, path);
      if (s.is_ok() && !write) s = check_stamp(buf, off, w.rank, path);
    }
    stor::Status c = io_close(w, f, path);
    return s.is_ok() ? c : s;
  };
  std::vector<Phase> phases;
  phases.push_back({"mkdir", [=](Worker& w) -> stor::Status {
                      if (w.rank != 0) return stor::Status::ok();
                      STOR_RETURN_IF_ERROR(make_dir(w, dir));
                      // The shared file exists before anyone opens it (IOR's rank 0 creates it too).
                      if (!hard) return stor::Status::ok();
                      STOR_ASSIGN_OR_RETURN(IoFile f, io_open(w, path_of(w), true));
                      return io_close(w, f, path_of(w));
                    }, false});
  phases.push_back({"write", [=](Worker& w) { return pass(w, true); }});
  phases.push_back({"read", [=](Worker& w) { return pass(w, false); }});
  phases.push_back({"remove", [=](Worker& w) -> stor::Status {
                      if (hard && w.rank != 0) return stor::Status::ok();
                      return remove_file(w, path_of(w));
                    }, false});
  auto t = run_phases(nprocs, side.lustre, phases);
  const double mb = static_cast<double>(blocks * xfer) * nprocs / 1e6;
  return {mb / t[0], mb / t[1]};
}

// ---- setup ----------------------------------------------------------------------------------

std::string self_dir() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? "." : p.parent_path().string();
}

struct Cluster {
  std::string dir, uri, key, stctl;
  bool ours = false;
};

// `stctl cluster start` (no threads in this process yet: the workers fork from it).
void start_cluster(Cluster& c, unsigned osts, unsigned mdts) {
  const std::string cmd = "'" + c.stctl + "' cluster start '" + c.dir + "' --osts " + std::to_string(osts) +
                          " --mdts " + std::to_string(mdts) + " --no-root-squash 2>&1";  // the bench may run as root
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) die("popen " + cmd);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int rc = ::pclose(p);
  if (rc != 0) die("stctl cluster start failed:\n" + out);
  size_t at = 0;
  while (at < out.size()) {
    size_t nl = out.find('\n', at);
    if (nl == std::string::npos) nl = out.size();
    const std::string line = out.substr(at, nl - at);
    if (line.rfind("lustre://", 0) == 0) c.uri = line;
    if (line.rfind("export STOR_LUSTRE_KEY_FILE=", 0) == 0) c.key = line.substr(std::strlen("export STOR_LUSTRE_KEY_FILE="));
    at = nl + 1;
  }
  c.ours = true;
  g_stop_command += (g_stop_command.empty() ? "" : "; ") + ("'" + c.stctl + "' cluster stop '" + c.dir + "' >/dev/null");
  if (c.uri.empty() || c.key.empty()) die("stctl cluster start printed no URI/key:\n" + out);
}

void stop_cluster(const Cluster& c) {
  if (!c.ours) return;
  const std::string cmd = "'" + c.stctl + "' cluster stop '" + c.dir + "' >/dev/null";
  if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "bench_io500: %s failed\n", cmd.c_str());
}

std::vector<int> parse_procs(const std::string& v) {
  std::vector<int> out;
  size_t at = 0;
  while (at <= v.size()) {
    size_t comma = v.find(',', at);
    if (comma == std::string::npos) comma = v.size();
    auto n = stor::parse_uint(v.substr(at, comma - at));
    if (!n.is_ok() || *n == 0 || *n > 64) die("--procs wants a list like 1,2,4");
    out.push_back(static_cast<int>(*n));
    at = comma + 1;
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

std::string fmt(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f" : v >= 1 ? "%.1f" : "%.2g", v);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  g_main_pid = ::getpid();
  std::string dir = "/dev/shm", only;
  size_t files = 2000;
  uint64_t ior_size = 128ull << 20;
  unsigned osts = 4;
  int reps = 1;
  std::vector<int> procs{1, 2, 4};
  std::vector<unsigned> mdts{1, 2};
  Cluster cluster;
  cluster.stctl = self_dir() + "/../../tools/stctl/stctl";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("usage: see the comment at the top of bench/lustre/bench_io500.cc");
    const std::string v = argv[++i];
    auto num = [&]() {
      auto n = stor::parse_size(v);
      if (!n.is_ok() || *n == 0) die(a + " wants a positive number, got '" + v + "'");
      return *n;
    };
    if (a == "--dir") dir = v;
    else if (a == "--files") files = num();
    else if (a == "--ior-size") ior_size = num();
    else if (a == "--procs") procs = parse_procs(v);
    else if (a == "--only") only = v;
    else if (a == "--reps") reps = static_cast<int>(std::min<uint64_t>(num(), 99));
    else if (a == "--uri") cluster.uri = v;
    else if (a == "--key") cluster.key = v;
    else if (a == "--stctl") cluster.stctl = v;
    else if (a == "--osts") osts = static_cast<unsigned>(num());
    else if (a == "--mdts") {
      mdts.clear();
      for (int m : parse_procs(v)) mdts.push_back(static_cast<unsigned>(m));
    }
    else die("unknown option " + a);
  }
  std::string tmpl = dir + "/bench_io500-XXXXXX";
  std::vector<char> tbuf(tmpl.begin(), tmpl.end());
  tbuf.push_back('\0');
  if (!::mkdtemp(tbuf.data())) die("mkdtemp under " + dir + ": " + std::strerror(errno));
  const std::string work = tbuf.data();
  // One cluster per MDT count (the first one also runs IOR); all share one key, as the
  // workers take it from STOR_LUSTRE_KEY_FILE.
  std::vector<Cluster> more;  // clusters of mdts[1..]
  if (cluster.uri.empty()) {
    cluster.dir = work + "/cluster";
    start_cluster(cluster, osts, mdts[0]);
    for (size_t i = 1; i < mdts.size(); ++i) {
      Cluster c;
      c.stctl = cluster.stctl;
      c.dir = work + "/cluster-" + std::to_string(mdts[i]) + "mdt";
      std::filesystem::create_directories(c.dir);
      std::filesystem::copy_file(cluster.key, c.dir + "/cluster.key");
      start_cluster(c, osts, mdts[i]);
      while (!c.uri.empty() && c.uri.back() == '/') c.uri.pop_back();
      more.push_back(c);
    }
  } else if (cluster.key.empty()) {
    die("--uri needs --key");
  } else {
    mdts.resize(1);  // a given cluster: its own MDT count
  }
  ::setenv("STOR_LUSTRE_KEY_FILE", cluster.key.c_str(), 1);
  while (!cluster.uri.empty() && cluster.uri.back() == '/') cluster.uri.pop_back();
  const Side lustre{cluster.uri + "/bench-" + std::to_string(::getpid()), true};
  const Side host{work + "/host", false};
  std::vector<Side> sides{lustre};  // by MDT count, as in mdts
  for (const auto& c : more) sides.push_back({c.uri + "/bench-" + std::to_string(::getpid()), true});

  // The bench directory stripes over every target (1 MiB stripes), set up in a child process
  // so this one stays free of threads for the forks to come.
  for (const auto& side : sides)
    run_phases(1, true, {{"setup", [&](Worker& w) -> stor::Status {
                            STOR_RETURN_IF_ERROR(make_dir(w, side.base));
                            stor::admin::StripeSpec all;
                            all.stripe_count = -1;
                            return stor::admin::setstripe(side.base, {all});
                          }, false}});
  if (::mkdir(host.base.c_str(), 0755) != 0) die("mkdir " + host.base);
  std::printf("bench_io500: %s (%u MDT(s), %u OSTs, each a daemon on this host) vs host file system %s; "
              "%u CPUs, load %s\n", cluster.uri.c_str(), mdts[0], osts, host.base.c_str(),
              static_cast<unsigned>(::sysconf(_SC_NPROCESSORS_ONLN)), [] {
                double l[3] = {0, 0, 0};
                ::getloadavg(l, 3);
                static char b[32];
                std::snprintf(b, sizeof b, "%.1f", l[0]);
                return b;
              }());
  int run = 0;
  if (only.empty() || only == "mdtest") {
    std::printf("\nmdtest-style, %zu files per process, ops/s (lustre / host = ratio), median of %d\n", files, reps);
    std::printf("%-7s %-8s %5s %4s  %-26s %-26s %-26s\n", "size", "dir", "procs", "mdts", "create", "stat", "unlink");
    for (size_t bytes : {size_t{0}, size_t{3901}})
      for (bool shared : {true, false}) {
        std::map<int, std::pair<MdResult, MdResult>> rows;
        for (int n : procs) {
          // Per MDT count, and the host once, interleaved per repetition.
          std::vector<std::vector<double>> lc(sides.size()), ls(sides.size()), lu(sides.size());
          std::vector<double> hc, hs, hu;
          for (int k = 0; k < reps; ++k) {
            const std::string r = "md" + std::to_string(run++);
            for (size_t m = 0; m < sides.size(); ++m) {
              const MdResult a = mdtest(sides[m], r, n, shared, files, bytes);
              lc[m].push_back(a.create), ls[m].push_back(a.stat), lu[m].push_back(a.unlink);
            }
            const MdResult b = mdtest(host, r, n, shared, files, bytes);
            hc.push_back(b.create), hs.push_back(b.stat), hu.push_back(b.unlink);
          }
          const MdResult h{median(hc), median(hs), median(hu)};
          auto cell = [](double a, double b) { return fmt(a) + " / " + fmt(b) + " = " + fmt(a / b) + "x"; };
          std::vector<MdResult> ls_by_mdt;
          for (size_t m = 0; m < sides.size(); ++m) {
            const MdResult l{median(lc[m]), median(ls[m]), median(lu[m])};
            ls_by_mdt.push_back(l);
            std::printf("%-7s %-8s %5d %4u  %-26s %-26s %-26s\n", bytes ? "3901" : "empty", shared ? "shared" : "per-proc",
                        n, mdts[m], cell(l.create, h.create).c_str(), cell(l.stat, h.stat).c_str(),
                        cell(l.unlink, h.unlink).c_str());
          }
          if (sides.size() > 1)
            std::printf("%-7s %-8s %5d %4s  %u MDTs / 1: create %.2fx stat %.2fx unlink %.2fx\n", "", "", n, "",
                        mdts.back(), ls_by_mdt.back().create / ls_by_mdt[0].create,
                        ls_by_mdt.back().stat / ls_by_mdt[0].stat, ls_by_mdt.back().unlink / ls_by_mdt[0].unlink);
          std::fflush(stdout);
          const MdResult l = ls_by_mdt[0];
          rows[n] = {l, h};
        }
        if (rows.size() > 1) {
          const auto& [l1, h1] = rows.begin()->second;
          const auto& [ln, hn] = rows.rbegin()->second;
          std::printf("%-7s %-8s %2d/%-2d  scaling lustre %.2fx %.2fx %.2fx, host %.2fx %.2fx %.2fx (create stat unlink)\n", "",
                      "", rows.rbegin()->first, rows.begin()->first, ln.create / l1.create, ln.stat / l1.stat,
                      ln.unlink / l1.unlink, hn.create / h1.create, hn.stat / h1.stat, hn.unlink / h1.unlink);
        }
      }
  }
  if (only.empty() || only == "ior") {
    std::printf("\nIOR-style, %s per process, MB/s (lustre / host = ratio), median of %d\n",
                stor::admin::format_size(ior_size).c_str(), reps);
    std::printf("%-26s %5s  %-28s %-28s\n", "pattern", "procs", "write", "read");
    for (bool hard : {false, true})
      for (int n : procs) {
        const size_t xfer = hard ? 47008 : (1u << 20);
        std::vector<double> lw, lr, hw, hr;
        for (int k = 0; k < reps; ++k) {
          const std::string r = "ior" + std::to_string(run++);
          const IorResult a = ior(lustre, r, n, hard, ior_size, xfer);
          const IorResult b = ior(host, r, n, hard, ior_size, xfer);
          lw.push_back(a.write), lr.push_back(a.read), hw.push_back(b.write), hr.push_back(b.read);
        }
        const IorResult l{median(lw), median(lr)}, h{median(hw), median(hr)};
        auto cell = [](double a, double b) { return fmt(a) + " / " + fmt(b) + " = " + fmt(a / b) + "x"; };
        std::printf("%-26s %5d  %-28s %-28s\n", hard ? "hard: shared, 47008 B" : "easy: file/proc, 1 MiB", n,
                    cell(l.write, h.write).c_str(), cell(l.read, h.read).c_str());
        std::fflush(stdout);
      }
  }
  stop_cluster(cluster);
  for (const auto& c : more) stop_cluster(c);
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  return 0;
}
