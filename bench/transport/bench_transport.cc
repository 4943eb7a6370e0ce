// Throughput of 1 MiB reads served by stor-target over the TCP transport (1 and 2 targets on
// 127.0.0.1) relative to reading the same files locally through the IoEngine, at the same
// number of requests in flight. Files are read once first, so both sides read from the page
// cache and the ratio is the cost of the transport itself. The targets authenticate every
// connection (key handshake); a last line compares connect + first 4 KiB read with and without
// the handshake. Prints ratios only (median of reps).
//
//   bench_transport [--mib N] [--reps N] [--qd N]
#include <fcntl.h>
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
#include "tests/net/target_process.h"
#include "tests/test_util.h"

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

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 128;
  int reps = 9;
  unsigned qd = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--mib") mib = std::strtoul(argv[i + 1], nullptr, 10);
    else if (a == "--reps") reps = std::atoi(argv[i + 1]);
    else if (a == "--qd") qd = static_cast<unsigned>(std::atoi(argv[i + 1]));
  }
  if (mib == 0 || reps <= 0 || qd == 0) return 2;

  stor::test::TempDir d0, d1;
  std::vector<std::string> dirs = {d0.path(), d1.path()};
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
  return (p0.stop_cleanly() && p1.stop_cleanly() && open_ok) ? 0 : 1;
}
