// bench_lustre: striped sequential throughput over 1, 2, 4, 8 targets, and metadata ops/s
// (create, stat, readdir) with 1 and 2 threads against the same operations on the host file
// system, all in one run. Prints ratios; absolute numbers depend on the machine.
//
//   bench_lustre [--dir DIR] [--size BYTES] [--files N] [--bs BYTES] [--qd N] [--reps N]
//   defaults: --dir /dev/shm (tmpfs) --size 256M --files 100000 --bs 8M --qd 4 --reps 3 (medians)
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "stor/admin.h"
#include "stor/store.h"

namespace lu = stor::admin;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

[[noreturn]] void die(const std::string& what, const stor::Status& s) {
  std::fprintf(stderr, "bench_lustre: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

// Keeps `qd` async requests in flight over [0, size) in `bs` chunks; returns MB/s.
double stream(stor::File& f, bool write, uint64_t size, size_t bs, int qd, std::vector<char>& buf) {
  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;
  stor::Status err;
  auto t0 = Clock::now();
  for (uint64_t off = 0; off < size; off += bs) {
    size_t slot = static_cast<size_t>((off / bs) % static_cast<uint64_t>(qd));
    char* p = buf.data() + slot * bs;
    size_t len = static_cast<size_t>(std::min<uint64_t>(bs, size - off));
    {
      std::unique_lock lk(mu);
      cv.wait(lk, [&] { return inflight < qd; });
      ++inflight;
    }
    auto done = [&](stor::Result<size_t> r) {
      std::lock_guard lk(mu);
      if (!r.is_ok() && err.is_ok()) err = r.status();
      --inflight;
      cv.notify_all();
    };
    if (write) f.write_async(p, len, off, done);
    else f.read_async(p, len, off, done);
  }
  std::unique_lock lk(mu);
  cv.wait(lk, [&] { return inflight == 0; });
  if (!err.is_ok()) die("stream", err);
  return static_cast<double>(size) / 1e6 / seconds_since(t0);
}

// Runs fn(thread, begin, end) over [0, n) split across `threads`; returns ops/s.
double parallel_ops(int threads, size_t n, const std::function<void(int, size_t, size_t)>& fn) {
  std::vector<std::thread> ts;
  auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] { fn(t, n * t / threads, n * (t + 1) / threads); });
  for (auto& t : ts) t.join();
  return static_cast<double>(n) / seconds_since(t0);
}

struct MetaRates {
  double create = 0, stat = 0, readdir = 0, unlink = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

MetaRates median(const std::vector<MetaRates>& runs) {
  auto pick = [&](double MetaRates::*f) {
    std::vector<double> v;
    for (auto& r : runs) v.push_back(r.*f);
    return median(v);
  };
  return {pick(&MetaRates::create), pick(&MetaRates::stat), pick(&MetaRates::readdir), pick(&MetaRates::unlink)};
}

// Straight on the lustre Backend (what Store forwards to), so Store's own per-call bookkeeping
// does not blur the metadata service's scaling.
MetaRates lustre_meta(stor::Backend& be, const std::string& base, int threads, size_t files) {
  MetaRates r;
  auto uri = [](const std::string& s) { return stor::Uri::parse(s).value(); };
  for (int t = 0; t < threads; ++t)
    if (auto s = be.mkdir(uri(base + "/t" + std::to_string(t)), 0755); !s.is_ok()) die("mkdir", s);
  auto name = [&](int t, size_t i) { return uri(base + "/t" + std::to_string(t) + "/f" + std::to_string(i)); };
  r.create = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    stor::OpenOptions oo{stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive, 0644};
    for (size_t i = b; i < e; ++i) {
      auto f = be.open(name(t, i), oo);
      if (!f.is_ok()) die("create", f.status());
      if (auto s = (*f)->close(); !s.is_ok()) die("close", s);
    }
  });
  r.stat = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      if (auto s = be.stat(name(t, i)); !s.is_ok()) die("stat", s.status());
  });
  r.readdir = parallel_ops(threads, files, [&](int t, size_t, size_t) {
    auto l = be.list(uri(base + "/t" + std::to_string(t)));
    if (!l.is_ok()) die("readdir", l.status());
  });
  r.unlink = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      if (auto s = be.remove(name(t, i)); !s.is_ok()) die("unlink", s);
  });
  return r;
}

MetaRates host_meta(const std::string& base, int threads, size_t files) {
  MetaRates r;
  for (int t = 0; t < threads; ++t) std::filesystem::create_directories(base + "/t" + std::to_string(t));
  auto name = [&](int t, size_t i) { return base + "/t" + std::to_string(t) + "/f" + std::to_string(i); };
  r.create = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      int fd = ::open(name(t, i).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) die("host create", stor::Status::from_errno(errno, name(t, i)));
      ::close(fd);
    }
  });
  r.stat = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    struct stat st;
    for (size_t i = b; i < e; ++i)
      if (::stat(name(t, i).c_str(), &st) != 0) die("host stat", stor::Status::from_errno(errno, name(t, i)));
  });
  r.readdir = parallel_ops(threads, files, [&](int t, size_t, size_t) {
    DIR* d = ::opendir((base + "/t" + std::to_string(t)).c_str());
    if (!d) die("host opendir", stor::Status::from_errno(errno, base));
    std::vector<std::string> names;
    while (auto* e = ::readdir(d)) names.emplace_back(e->d_name);
    ::closedir(d);
  });
  r.unlink = parallel_ops(threads, files, [&](int t, size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      if (::unlink(name(t, i).c_str()) != 0) die("host unlink", stor::Status::from_errno(errno, name(t, i)));
  });
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
  uint64_t size = 256ull << 20;
  size_t files = 100000, bs = 8u << 20;
  int qd = 4, reps = 3;
  auto size_arg = [](const std::string& v) {
    auto r = lu::parse_size(v);
    if (!r.is_ok()) die("bad size '" + v + "'", r.status());
    if (*r == 0) die("bad size '" + v + "'", {stor::Code::kInvalidArgument, "must be greater than 0"});
    return *r;
  };
  auto count_arg = [&](const std::string& v) { return static_cast<size_t>(size_arg(v)); };
  if (argc % 2 == 0) {
    std::fprintf(stderr, "usage: bench_lustre [--dir DIR] [--size BYTES] [--files N] [--bs BYTES] [--qd N] [--reps N]\n");
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i], v = argv[i + 1];
    if (a == "--dir") dir = v;
    else if (a == "--size") size = size_arg(v);
    else if (a == "--files") files = count_arg(v);
    else if (a == "--bs") bs = static_cast<size_t>(size_arg(v));
    else if (a == "--qd") qd = static_cast<int>(std::max<size_t>(1, count_arg(v)));
    else if (a == "--reps") reps = static_cast<int>(std::max<size_t>(1, count_arg(v)));
    else {
      std::fprintf(stderr, "usage: bench_lustre [--dir DIR] [--size BYTES] [--files N] [--bs BYTES] [--qd N] [--reps N]\n");
      return 2;
    }
  }
  std::string work = dir + "/bench_lustre." + std::to_string(::getpid());
  std::string root = work + "/fs";
  lu::MkfsOptions mo;
  mo.targets = 8;
  if (auto s = lu::mkfs(root, mo); !s.is_ok()) die("mkfs", s);
  auto store_r = stor::Store::create();
  if (!store_r.is_ok()) die("store", store_r.status());
  auto& store = **store_r;
  std::printf("bench_lustre: dir %s, engine %s, %u CPUs, file %s, request %s x qd %d, median of %d runs\n", dir.c_str(),
              store.engine().name(), std::thread::hardware_concurrency(), lu::format_size(size).c_str(),
              lu::format_size(bs).c_str(), qd, reps);

  std::printf("\nStriped sequential throughput (stripe size 1M; each request spans all stripes)\n");
  std::printf("%-8s %12s %12s %12s %12s\n", "targets", "write MB/s", "read MB/s", "write x1", "read x1");
  std::vector<char> buf(bs * static_cast<size_t>(qd));
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 131 + 7);
  double w1 = 0, r1 = 0;
  for (int n : {1, 2, 4, 8}) {
    std::string path = root + "/seq" + std::to_string(n);
    if (auto s = lu::setstripe(path, {{n, 1u << 20}}); !s.is_ok()) die("setstripe", s);
    auto f = store.open("lustre://" + path, stor::kOpenRead | stor::kOpenWrite);
    if (!f.is_ok()) die("open", f.status());
    std::vector<double> ws, rs;
    for (int rep = 0; rep < reps; ++rep) {
      if (auto s = f->truncate(0); !s.is_ok()) die("truncate", s);  // every write pass allocates afresh
      ws.push_back(stream(*f, true, size, bs, qd, buf));
      if (auto s = f->sync(); !s.is_ok()) die("sync", s);
      rs.push_back(stream(*f, false, size, bs, qd, buf));
    }
    double w = median(ws), r = median(rs);
    (void)f->close();
    (void)store.remove("lustre://" + path);  // keep tmpfs usage bounded
    if (n == 1) w1 = w, r1 = r;
    std::printf("%-8d %12.0f %12.0f %11.2fx %11.2fx\n", n, w, r, w / w1, r / r1);
  }

  std::printf("\nMetadata ops/s, %zu files (each thread in its own directory), lustre MDS vs host fs in %s\n", files, dir.c_str());
  std::printf("%-8s %-8s %12s %12s %12s %12s\n", "threads", "where", "create/s", "stat/s", "readdir/s", "unlink/s");
  MetaRates l[2], h[2];
  for (int threads : {1, 2}) {
    std::vector<MetaRates> lr, hr;
    for (int rep = 0; rep < reps; ++rep) {  // alternate, so background load hits both alike
      std::string tag = std::to_string(threads) + "_" + std::to_string(rep);
      std::string lbase = "lustre://" + root + "/meta" + tag;
      if (auto s = store.mkdir(lbase); !s.is_ok()) die("mkdir", s);
      auto be = store.backend(stor::Uri::parse(lbase).value());
      if (!be.is_ok()) die("backend", be.status());
      lr.push_back(lustre_meta(**be, lbase, threads, files));
      hr.push_back(host_meta(work + "/host" + tag, threads, files));
    }
    l[threads - 1] = median(lr);
    h[threads - 1] = median(hr);
    for (auto [where, m] : {std::pair{"lustre", l[threads - 1]}, std::pair{"host", h[threads - 1]}})
      std::printf("%-8d %-8s %12.0f %12.0f %12.0f %12.0f\n", threads, where, m.create, m.stat, m.readdir, m.unlink);
  }
  std::printf("\nScaling 2 threads / 1 thread:   lustre create %.2fx stat %.2fx readdir %.2fx unlink %.2fx\n",
              l[1].create / l[0].create, l[1].stat / l[0].stat, l[1].readdir / l[0].readdir, l[1].unlink / l[0].unlink);
  std::printf("                                host   create %.2fx stat %.2fx readdir %.2fx unlink %.2fx\n",
              h[1].create / h[0].create, h[1].stat / h[0].stat, h[1].readdir / h[0].readdir, h[1].unlink / h[0].unlink);
  for (int t = 0; t < 2; ++t)
    std::printf("lustre / host, %d thread(s):    create %.2fx stat %.2fx readdir %.2fx unlink %.2fx\n", t + 1,
                l[t].create / h[t].create, l[t].stat / h[t].stat, l[t].readdir / h[t].readdir, l[t].unlink / h[t].unlink);
  store_r->reset();
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  return 0;
}
