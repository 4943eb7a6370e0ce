// Throughput of 1 MiB reads served by stor-target over the TCP transport (1 and 2 targets on
// 127.0.0.1) relative to reading the same files locally through the IoEngine, at the same
// number of requests in flight. Files are read once first, so both sides read from the page
// cache and the ratio is the cost of the transport itself. The targets authenticate every
// connection (key handshake); a last line compares connect + first 4 KiB read with and without
// the handshake. Prints ratios only (median of reps).
//
// A single-stream line compares one channel's sequential reads with iperf3 on 127.0.0.1 in the
// same run (skipped when iperf3 is not installed).
//
//   bench_transport [--mib N] [--reps N] [--qd N] [--stream-secs N] [--stream-read-mib N] [--frame-mib N]
//                   [--pipeline N] [--stream-only]
// --stream-read-mib: size of each single-stream read call (default 16); --frame-mib: the
// channel's max_payload for it (default: the transport's default frame); --pipeline: frames
// requested ahead on it (RemoteTargetOptions::pipeline, default its default); --stream-only: just the
// iperf3 line, one target (for profiling a long sequential read: --mib 1024 --stream-only).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "backends/lustre/lustre_admin.h"
#include "net/auth.h"
#include "net/remote_object.h"
#include "stor/engine.h"
#include "stor/store.h"
#include "target_process.h"
#include "test_util.h"

using namespace stor;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kChunk = 1 << 20;

// Keeps up to qd reads in flight; issue(i, buf, done) starts chunk i of `chunks`.
double run_reads(size_t chunks, unsigned qd, const std::function<void(size_t, char*, IoCallback)>& issue) {
  std::vector<std::vector<char>> bufs(qd, std::vector<char>(kChunk));
  std::vector<size_t> free_bufs;
  for (size_t i = 0; i < qd; ++i) free_bufs.push_back(i);
  std::mutex mu;
  std::condition_variable cv;
  bool failed = false;
  auto start = Clock::now();
  for (size_t i = 0; i < chunks; ++i) {
    size_t b;
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return !free_bufs.empty(); });
      b = free_bufs.back();
      free_bufs.pop_back();
    }
    issue(i, bufs[b].data(), [&, b](Result<size_t> r) {
      std::lock_guard lk(mu);
      if (!r || *r != kChunk) failed = true;
      free_bufs.push_back(b);
      cv.notify_all();
    });
  }
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return free_bufs.size() == qd; });
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (failed) {
    std::fprintf(stderr, "bench_transport: a read failed\n");
    std::exit(1);
  }
  return static_cast<double>(chunks * kChunk) / secs;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --- Single stream vs iperf3 -------------------------------------------------------------------
// iperf3 (one TCP stream on 127.0.0.1) against one channel reading `obj` from one stor-target in
// large sequential reads for the same time, alternating, so both see the same machine load.

// iperf3's path, or empty when it is not installed.
std::string find_in_path(const char* prog) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/bin:/bin";
  for (size_t i = 0; i <= dirs.size();) {
    size_t j = std::min(dirs.find(':', i), dirs.size());
    std::string cand = dirs.substr(i, j - i) + "/" + prog;
    if (j > i && ::access(cand.c_str(), X_OK) == 0) return cand;
    i = j + 1;
  }
  return {};
}

// A port nothing listens on right now (the kernel's pick for an ephemeral bind).
int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t l = sizeof a;
  int port = -1;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l) == 0)
    port = ntohs(a.sin_port);
  if (fd >= 0) ::close(fd);
  return port;
}

// The number after `"key":` following `section` in iperf3's JSON, or a negative value.
double json_number_after(const std::string& json, const std::string& section, const std::string& key) {
  size_t at = json.find("\"" + section + "\"");
  if (at == std::string::npos) return -1;
  at = json.find("\"" + key + "\"", at);
  if (at == std::string::npos) return -1;
  at = json.find(':', at);
  if (at == std::string::npos) return -1;
  return std::strtod(json.c_str() + at + 1, nullptr);
}

// CPU seconds (user + system) so far: of the calling thread, of waited-for children, of a
// running process (its /proc stat; clock-tick resolution).
double cpu_secs(const rusage& ru) {
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}
double thread_cpu_secs() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return cpu_secs(ru);
}
double children_cpu_secs() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  return cpu_secs(ru);
}
// Voluntary context switches (a thread going to sleep: each is a hand-off that costs a
// scheduling delay on a loaded machine): of the calling thread, of waited-for children, of
// every thread of a running process.
long thread_sleeps() {
  rusage ru{};
  ::getrusage(RUSAGE_THREAD, &ru);
  return ru.ru_nvcsw;
}
long children_sleeps() {
  rusage ru{};
  ::getrusage(RUSAGE_CHILDREN, &ru);
  return ru.ru_nvcsw;
}
long process_sleeps(pid_t pid) {
  long total = 0;
  std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    FILE* f = std::fopen((dir + "/" + e->d_name + "/status").c_str(), "r");
    if (!f) continue;
    char line[256];
    long n = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) total += n;
    std::fclose(f);
  }
  ::closedir(d);
  return total;
}
double process_cpu_secs(pid_t pid) {
  FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
  if (!f) return 0;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  const char* p = std::strrchr(buf, ')');
  unsigned long ut = 0, st = 0;
  if (!p || std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return 0;
  return static_cast<double>(ut + st) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// One single-stream iperf3 run of `secs` seconds on 127.0.0.1: bytes/s received, or < 0.
double iperf3_once(const std::string& iperf3, int secs) {
  int port = free_tcp_port();
  if (port < 0) return -1;
  std::string p = std::to_string(port);
  pid_t server = ::fork();
  if (server < 0) return -1;
  if (server == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, STDOUT_FILENO);
    ::dup2(null, STDERR_FILENO);
    ::execl(iperf3.c_str(), "iperf3", "-s", "-1", "-B", "127.0.0.1", "-p", p.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  double bps = -1;
  // The server needs a moment to listen: retry the client until it connects.
  for (int attempt = 0; attempt < 100 && bps < 0; ++attempt) {
    std::string cmd = iperf3 + " -c 127.0.0.1 -p " + p + " -t " + std::to_string(secs) + " -J 2>/dev/null";
    FILE* f = ::popen(cmd.c_str(), "r");
    if (!f) break;
    std::string json;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) json.append(buf, n);
    int rc = ::pclose(f);
    if (rc == 0 && json.find("\"error\"") == std::string::npos)
      bps = json_number_after(json, "sum_received", "bits_per_second") / 8;
    else
      ::usleep(50 * 1000);
  }
  if (bps < 0) ::kill(server, SIGKILL);
  int st = 0;
  ::waitpid(server, &st, 0);
  return bps;
}

// Sequential reads of `read_len` bytes of `object` (object_len bytes, wrapping around) on one
// channel for `secs` seconds: bytes/s, or < 0 on a failed read.
double stream_reads(transport::RemoteObjectTarget& t, const std::string& object, uint64_t object_len, size_t read_len,
                    int secs) {
  std::vector<char> buf(read_len);
  uint64_t off = 0, bytes = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::seconds(secs);
  while (Clock::now() < end) {
    auto r = t.read(object, buf.data(), read_len, off);
    if (!r || *r != read_len) {
      std::fprintf(stderr, "bench_transport: stream read: %s\n", r ? "short" : r.status().to_string().c_str());
      return -1;
    }
    bytes += read_len;
    off = off + read_len + read_len > object_len ? 0 : off + read_len;
  }
  return static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - start).count();
}

// Prints "single tcp stream, stor-target read / iperf3: R" (median over reps of same-run pairs);
// false when a stor read failed. Skips (true) when iperf3 is not installed.
bool compare_with_iperf3(const std::string& endpoint, pid_t target_pid, const std::shared_ptr<const transport::AuthKey>& key, uint64_t object_len, int reps,
                         int secs, size_t read_mib, size_t frame_mib, unsigned pipeline) {
  std::string iperf3 = find_in_path("iperf3");
  if (iperf3.empty()) {
    std::printf("single tcp stream vs iperf3: skipped (iperf3 is not installed; apt-get install iperf3)\n");
    return true;
  }
  transport::RemoteTargetOptions ro;
  ro.connections = 1;
  ro.transport.auth_key = key;  // max_payload: the default frame size, as a lustre:// client uses
  if (frame_mib) ro.transport.max_payload = frame_mib << 20;
  if (pipeline) ro.pipeline = pipeline;
  auto t = transport::RemoteObjectTarget::connect(endpoint, ro);
  if (!t) {
    std::fprintf(stderr, "bench_transport: %s\n", t.status().to_string().c_str());
    return false;
  }
  const size_t read_len = static_cast<size_t>(std::min<uint64_t>(object_len, read_mib << 20));
  if (stream_reads(**t, "obj", object_len, read_len, 1) < 0) return false;  // warm up
  std::vector<double> ratios, stor_bps, iperf_bps;
  for (int r = 0; r < reps; ++r) {
    double c0 = children_cpu_secs();
    long cs0 = children_sleeps();
    double ip = iperf3_once(iperf3, secs);
    double ip_cpu = children_cpu_secs() - c0;  // iperf3 client and server (and popen's shell)
    long ip_sleeps = children_sleeps() - cs0;
    double t0 = thread_cpu_secs(), p0 = process_cpu_secs(target_pid);
    long ts0 = thread_sleeps(), ps0 = process_sleeps(target_pid);
    double st = stream_reads(**t, "obj", object_len, read_len, secs);
    double cl_cpu = thread_cpu_secs() - t0, tg_cpu = process_cpu_secs(target_pid) - p0;
    long st_sleeps = thread_sleeps() - ts0 + process_sleeps(target_pid) - ps0;
    if (st < 0) return false;
    if (ip <= 0) {
      std::printf("single tcp stream vs iperf3: skipped (iperf3 did not run)\n");
      return true;
    }
    // CPU time per GiB moved tells the cost apart from the share of the machine each got.
    if (std::getenv("STOR_BENCH_VERBOSE"))
      std::fprintf(stderr,
                   "  single stream: stor-target read %.0f MiB/s (cpu ms/GiB: client %.0f + target %.0f, sleeps/GiB "
                   "%.0f), iperf3 %.0f MiB/s (cpu ms/GiB %.0f, sleeps/GiB %.0f)\n",
                   st / (1 << 20), cl_cpu * 1e3 / (st * secs / (1 << 30)), tg_cpu * 1e3 / (st * secs / (1 << 30)),
                   static_cast<double>(st_sleeps) / (st * secs / (1 << 30)), ip / (1 << 20),
                   ip_cpu * 1e3 / (ip * secs / (1 << 30)), static_cast<double>(ip_sleeps) / (ip * secs / (1 << 30)));
    ratios.push_back(st / ip);
    stor_bps.push_back(st);
    iperf_bps.push_back(ip);
  }
  std::printf("single tcp stream, stor-target %zu MiB reads / iperf3 (%d s each, %.0f vs %.0f MiB/s): %.2f\n",
              read_len >> 20, secs, median(stor_bps) / (1 << 20), median(iperf_bps) / (1 << 20), median(ratios));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 128;
  int reps = 9;
  unsigned qd = 4;
  int stream_secs = 2;
  size_t stream_read_mib = 16, frame_mib = 0;
  unsigned pipeline = 0;
  bool stream_only = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--stream-only") {
      stream_only = true;
      continue;
    }
    if (i + 1 >= argc) return 2;
    if (a == "--mib") mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else if (a == "--qd") qd = static_cast<unsigned>(std::atoi(argv[i + 1]));
    else if (a == "--stream-secs") stream_secs = std::atoi(argv[i + 1]);
    else if (a == "--stream-read-mib") stream_read_mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--frame-mib") frame_mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--pipeline") pipeline = static_cast<unsigned>(std::atoi(argv[i + 1]));
    else return 2;
    ++i;
  }
  if (mib == 0 || reps <= 0 || qd == 0 || stream_secs <= 0 || stream_read_mib == 0 || frame_mib > 64) return 2;

  stor::test::TempDir d0, d1;
  std::vector<std::string> dirs = {d0.path(), d1.path()};
  if (stream_only) dirs.pop_back();
  std::vector<int> fds;
  auto data = stor::test::pattern(kChunk, 9);
  for (auto& d : dirs) {
    int fd = ::open((d + "/obj").c_str(), O_RDWR | O_CREAT, 0600);
    for (size_t i = 0; i < mib; ++i)
      if (::pwrite(fd, data.data(), kChunk, static_cast<off_t>(i * kChunk)) != static_cast<ssize_t>(kChunk)) return 1;
    fds.push_back(fd);
  }

  auto engine = IoEngine::create().value();
  stor::test::TempDir keydir;
  const std::string key_file = keydir.path() + "/fs.key";
  if (!transport::write_key_file(key_file, transport::AuthKey::generate().value()).is_ok()) return 1;
  auto key = transport::load_key_file(key_file).value();
  stor::test::TargetProcess p0(STOR_TARGET_PATH, "tcp://127.0.0.1:0", d0.path(), {"--key-file", key_file});
  if (stream_only) {
    // Read the file once so it is in the page cache, then only the single-stream line.
    std::vector<char> buf(kChunk);
    for (size_t i = 0; i < mib; ++i)
      if (::pread(fds[0], buf.data(), kChunk, static_cast<off_t>(i * kChunk)) != static_cast<ssize_t>(kChunk)) return 1;
    bool ok = compare_with_iperf3(p0.endpoint(), p0.pid(), key, mib * kChunk, reps, stream_secs, stream_read_mib, frame_mib, pipeline);
    ::close(fds[0]);
    return ok && p0.stop_cleanly() ? 0 : 1;
  }
  stor::test::TargetProcess p1(STOR_TARGET_PATH, "tcp://127.0.0.1:0", d1.path(), {"--key-file", key_file});
  transport::RemoteTargetOptions ro;
  ro.connections = qd;
  ro.transport.max_payload = kChunk;
  ro.transport.auth_key = key;
  std::vector<std::shared_ptr<transport::RemoteObjectTarget>> targets = {
      transport::RemoteObjectTarget::connect(p0.endpoint(), ro).value(),
      transport::RemoteObjectTarget::connect(p1.endpoint(), ro).value()};

  auto local = [&](unsigned ntargets) {
    return run_reads(mib * ntargets, qd * ntargets, [&](size_t i, char* buf, IoCallback done) {
      engine->submit(IoRequest{IoOp::kRead, fds[i % ntargets], buf, kChunk, (i / ntargets) * kChunk, -1, std::move(done)});
    });
  };
  auto remote = [&](unsigned ntargets) {
    return run_reads(mib * ntargets, qd * ntargets, [&](size_t i, char* buf, IoCallback done) {
      targets[i % ntargets]->read_async("obj", buf, kChunk, (i / ntargets) * kChunk, std::move(done));
    });
  };
  local(2);  // warm the page cache
  remote(2);  // and the connections

  std::printf("bench_transport: %zu MiB per target, 1 MiB reads, %u in flight per target, median of %d\n", mib, qd, reps);
  for (unsigned n : {1u, 2u}) {
    std::vector<double> ratios;
    for (int r = 0; r < reps; ++r) {
      double rem = remote(n), loc = local(n);
      if (std::getenv("STOR_BENCH_VERBOSE"))
        std::fprintf(stderr, "  %u target(s): remote %.0f MiB/s, local %.0f MiB/s\n", n, rem / (1 << 20), loc / (1 << 20));
      ratios.push_back(rem / loc);
    }
    std::printf("tcp transport, %u target%s / local read: %.2f\n", n, n == 1 ? " " : "s", median(ratios));
  }
  bool stream_ok = compare_with_iperf3(p0.endpoint(), p0.pid(), key, mib * kChunk, std::max(1, reps / 3), stream_secs,
                                       stream_read_mib, frame_mib, pipeline);
  // The handshake's cost where it shows most: a new connection and one small read. The same
  // directory served by a target with the key (p0) and one without (--insecure-no-auth),
  // alternating, so both see the same load. Before the lustre:// part, whose orphan sweep
  // removes `obj` from the targets.
  bool open_ok = true;
  {
    stor::test::TargetProcess open_target(STOR_TARGET_PATH, "tcp://127.0.0.1:0", d0.path(), {"--insecure-no-auth"});
    transport::TransportOptions with, without;
    with.auth_key = key;
    auto tw = transport::Transport::create("tcp", with).value();
    auto tn = transport::Transport::create("tcp", without).value();
    std::string control = transport::encode_object_call({"obj", 0, 4096, 0});
    std::vector<std::byte> small(4096);
    auto once = [&](transport::Transport& t, const std::string& ep) {
      auto start = Clock::now();
      auto ch = t.connect(ep);
      auto r = ch ? (*ch)->call(static_cast<uint16_t>(transport::ObjectOp::kRead), control, {}, small)
                  : Result<transport::Reply>(ch.status());
      if (!r || r->payload_len != small.size()) {
        std::fprintf(stderr, "bench_transport: connect + 4 KiB read from %s: %s\n", ep.c_str(),
                     r ? "short" : r.status().to_string().c_str());
        open_ok = false;
      }
      return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
    };
    const int n = 50 + 20 * reps;
    std::vector<double> auth_us, open_us, ratios;
    for (int rep = 0; rep < reps; ++rep) {
      std::vector<double> a, o;
      for (int i = 0; i < n / reps && open_ok; ++i) {
        a.push_back(once(*tw, p0.endpoint()));
        o.push_back(once(*tn, open_target.endpoint()));
      }
      if (!open_ok) break;
      ratios.push_back(median(a) / median(o));
      auth_us.push_back(median(a));
      open_us.push_back(median(o));
    }
    if (open_ok && std::getenv("STOR_BENCH_VERBOSE"))
      std::fprintf(stderr, "  connect + 4 KiB read: with key handshake %.1f us, without %.1f us (medians)\n",
                   median(auth_us), median(open_us));
    if (open_ok) std::printf("connect + first 4 KiB read, key handshake / no authentication: %.2f\n", median(ratios));
    open_ok = open_target.stop_cleanly() && open_ok;
  }
  // lustre:// end to end: a file striped 1 MiB over two targets, remote vs local file system.
  {
    stor::test::TempDir fsdir;
    namespace lu = stor::lustre;
    lu::MkfsOptions local_opts;
    local_opts.targets = 2;
    local_opts.default_layout = {lu::StripeSpec{-1, kChunk}};
    lu::MkfsOptions remote_opts = local_opts;
    remote_opts.target_endpoints = {p0.endpoint(), p1.endpoint()};
    remote_opts.key_file = key_file;
    if (!lu::mkfs(fsdir.path() + "/local", local_opts).is_ok() || !lu::mkfs(fsdir.path() + "/remote", remote_opts).is_ok())
      return 1;
    auto store = Store::create().value();
    std::vector<File> files;
    for (const char* which : {"local", "remote"}) {
      auto f = store->open("lustre://" + fsdir.path() + "/" + which + "/big.bin", kOpenRead | kOpenWrite | kOpenCreate).value();
      for (size_t i = 0; i < 2 * mib; ++i)
        if (!f.write(data.data(), kChunk, i * kChunk).is_ok()) return 1;
      files.push_back(std::move(f));
    }
    auto read_file = [&](File& f) {
      return run_reads(2 * mib, 2 * qd, [&](size_t i, char* buf, IoCallback done) {
        f.read_async(buf, kChunk, i * kChunk, std::move(done));
      });
    };
    read_file(files[0]);
    read_file(files[1]);
    std::vector<double> ratios;
    for (int r = 0; r < reps; ++r) {
      double rem = read_file(files[1]), loc = read_file(files[0]);
      if (std::getenv("STOR_BENCH_VERBOSE"))
        std::fprintf(stderr, "  lustre: remote targets %.0f MiB/s, local targets %.0f MiB/s\n", rem / (1 << 20), loc / (1 << 20));
      ratios.push_back(rem / loc);
    }
    std::printf("lustre:// over 2 remote targets / lustre:// local targets: %.2f\n", median(ratios));
    for (auto& f : files) (void)f.close();
  }
  for (int fd : fds) ::close(fd);
  return (p0.stop_cleanly() && p1.stop_cleanly() && open_ok && stream_ok) ? 0 : 1;
}
