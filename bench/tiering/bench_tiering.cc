// Epoch-style read of a data set through an S3-linked namespace (run.sh starts s3rver):
//   epoch 1: cold, every file fetched from the bucket into the fast tier;
//   epoch 2: the same files again, now from the fast tier;
//   copy-first: download everything to a local directory first, then read it there.
// Every object is read once, untimed, before the measured phases (server warm-up).
// Prints times, MiB/s, S3 request counts and the ratios.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../lib/bench_util.h"
#include "stor/admin.h"
#include "stor/store.h"
#include "stor/tiering.h"

using namespace stor;
using bench::seconds_since;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string endpoint;
  std::string bucket = "tierbench";
  std::string work_dir;
  unsigned files = 2000;
  uint64_t file_size = 256 * 1024;
  unsigned threads = 8;
  bool durable_fetch = true;
};

std::string name_of(unsigned i) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "shard%02u/sample%05u.bin", i % 16, i);
  return buf;
}

// Runs work(i) for i in order (shuffled by the caller) over `threads` threads; false on any error.
bool parallel(const std::vector<unsigned>& order, unsigned threads, const std::function<Status(unsigned)>& work) {
  return bench::parallel(order, threads, work, "bench_tiering");
}

Status read_fully(BackendFile& f, uint64_t expect, std::vector<char>& buf) {
  buf.resize(expect + 1);
  STOR_ASSIGN_OR_RETURN(size_t n, f.read(buf.data(), buf.size(), 0));
  if (n != expect) return Status::IoError("read " + std::to_string(n) + " bytes, expected " + std::to_string(expect));
  return {};
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_tiering --endpoint URL [--bucket B] [--files N] [--size BYTES] [--threads T] "
               "[--work-dir DIR] [--no-durable-fetch]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (bench::ArgWalk w(argc, argv); w.next();) {
    const std::string& k = w.key();
    if (k == "--endpoint") a.endpoint = w.value();
    else if (k == "--bucket") a.bucket = w.value();
    else if (k == "--files") a.files = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--size") a.file_size = std::stoull(w.value());
    else if (k == "--threads") a.threads = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--work-dir") a.work_dir = w.value();
    else if (k == "--no-durable-fetch") a.durable_fetch = false;
    else return usage();
  }
  if (a.endpoint.empty() || a.files == 0 || a.threads == 0) return usage();
  a.work_dir = bench::fresh_work_dir(a.work_dir, "stor-tier-bench");
  const std::string fast_dir = a.work_dir + "/linked", copy_dir = a.work_dir + "/copy";
  fs::create_directories(fast_dir);
  fs::create_directories(copy_dir);

  StoreOptions so;
  so.settings = bench::s3rver_settings(a.endpoint);
  auto store = Store::create(so).value();
  auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
  const std::string bucket_uri = "s3express://" + a.bucket;
  auto cold = store->backend(Uri::parse(bucket_uri + "/x").value()).value();
  if (!bench::ensure_bucket(*store, bucket_uri, "bench_tiering")) return 1;
  // Requests the S3 client has sent so far (0 if its counters cannot be read).
  auto s3_requests = [&]() -> uint64_t {
    auto st = admin::s3_client_stats(*store, bucket_uri);
    return st.is_ok() ? st->requests : 0;
  };

  std::vector<unsigned> order(a.files);
  for (unsigned i = 0; i < a.files; ++i) order[i] = i;
  std::printf("data set: %u files x %llu KiB in s3rver (%s), %u reader threads\n", a.files,
              static_cast<unsigned long long>(a.file_size >> 10), a.endpoint.c_str(), a.threads);
  auto t0 = std::chrono::steady_clock::now();
  if (!parallel(order, a.threads, [&](unsigned i) -> Status {
        std::vector<char> body(a.file_size, static_cast<char>('a' + i % 26));
        std::memcpy(body.data(), &i, sizeof i);
        STOR_ASSIGN_OR_RETURN(auto f, store->open(bucket_uri + "/ds/" + name_of(i), kOpenWrite | kOpenCreate | kOpenTruncate));
        STOR_ASSIGN_OR_RETURN(size_t n, f.write(body.data(), body.size(), 0));
        if (n != body.size()) return Status::IoError("short S3 write");
        return f.close();
      }))
    return 1;
  std::printf("upload (setup): %.2f s\n", seconds_since(t0));
  // Untimed warm-up GET of every object, so neither method pays for s3rver's cold start (JIT,
  // its own disk cache) on behalf of the other.
  t0 = std::chrono::steady_clock::now();
  if (!parallel(order, a.threads, [&](unsigned i) -> Status {
        thread_local std::vector<char> wbuf;
        wbuf.resize(a.file_size);
        STOR_ASSIGN_OR_RETURN(auto f, store->open(bucket_uri + "/ds/" + name_of(i)));
        STOR_RETURN_IF_ERROR(f.read_exact(wbuf.data(), a.file_size, 0));
        return f.close();
      }))
    return 1;
  std::printf("server warm-up (untimed GET of each object): %.2f s\n", seconds_since(t0));

  tiering::TierOptions o;
  o.fast = nvme;
  o.fast_root = "nvme://" + fast_dir;
  o.cold = cold;
  o.cold_root = "s3express://" + a.bucket + "/ds";
  o.state_dir = fast_dir + "/.stor-tier";
  o.durable_fetch = a.durable_fetch;
  std::printf("fetched copies: %s\n", a.durable_fetch ? "fdatasync'ed before use (durable_fetch)" : "not synced");
  auto opened = tiering::TieredStore::open(o);
  if (!opened.is_ok()) return std::fprintf(stderr, "bench_tiering: %s\n", opened.status().to_string().c_str()), 1;
  auto ns = *opened;
  uint64_t req0 = s3_requests();
  t0 = std::chrono::steady_clock::now();
  auto imported = ns->import_listing();
  if (!imported.is_ok() || *imported != a.files) {
    std::fprintf(stderr, "bench_tiering: import: %s\n", imported.status().to_string().c_str());
    return 1;
  }
  const double link_s = seconds_since(t0);
  std::printf("link (import listing): %.3f s, %llu requests\n", link_s,
              static_cast<unsigned long long>(s3_requests() - req0));

  auto epoch = [&](unsigned seed, uint64_t* requests) -> double {
    std::vector<unsigned> shuffled = order;
    std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(seed));
    const uint64_t before = s3_requests();
    auto start = std::chrono::steady_clock::now();
    thread_local std::vector<char> buf;
    bool ok = parallel(shuffled, a.threads, [&](unsigned i) -> Status {
      STOR_ASSIGN_OR_RETURN(auto f, ns->open_file(name_of(i), {kOpenRead}));
      Status s = read_fully(*f, a.file_size, buf);
      Status c = f->close();
      return s.is_ok() ? c : s;
    });
    const double secs = seconds_since(start);
    *requests = s3_requests() - before;
    return ok ? secs : -1;
  };
  uint64_t req1 = 0, req2 = 0;
  const double epoch1 = epoch(1, &req1);
  const double epoch2 = epoch(2, &req2);
  if (epoch1 < 0 || epoch2 < 0) return 1;

  // Copy-first: download every object to a local directory, then read them there.
  const uint64_t before_copy = s3_requests();
  t0 = std::chrono::steady_clock::now();
  thread_local std::vector<char> cbuf;
  bool ok = parallel(order, a.threads, [&](unsigned i) -> Status {
    const std::string local = copy_dir + "/" + name_of(i);
    std::error_code ec;
    fs::create_directories(fs::path(local).parent_path(), ec);
    STOR_ASSIGN_OR_RETURN(auto src, store->open("s3express://" + a.bucket + "/ds/" + name_of(i)));
    STOR_RETURN_IF_ERROR(src.read_exact((cbuf.resize(a.file_size), cbuf.data()), a.file_size, 0));
    STOR_RETURN_IF_ERROR(src.close());
    STOR_ASSIGN_OR_RETURN(auto dst, store->open("nvme://" + local, kOpenWrite | kOpenCreate | kOpenTruncate));
    STOR_ASSIGN_OR_RETURN(size_t n, dst.write(cbuf.data(), a.file_size, 0));
    if (n != a.file_size) return Status::IoError("short local write");
    return dst.close();
  });
  const double copy_s = seconds_since(t0);
  const uint64_t copy_requests = s3_requests() - before_copy;
  t0 = std::chrono::steady_clock::now();
  ok = ok && parallel(order, a.threads, [&](unsigned i) -> Status {
    STOR_ASSIGN_OR_RETURN(auto f, store->open("nvme://" + copy_dir + "/" + name_of(i)));
    thread_local std::vector<char> rbuf;
    Status s = read_fully(*f.backend_file(), a.file_size, rbuf);
    Status c = f.close();
    return s.is_ok() ? c : s;
  });
  const double local_read_s = seconds_since(t0);
  if (!ok) return 1;
  const double copy_first = copy_s + local_read_s;

  const double mib = static_cast<double>(a.files) * static_cast<double>(a.file_size) / (1 << 20);
  std::printf("\n%-28s %9s %9s %10s\n", "phase", "seconds", "MiB/s", "S3 requests");
  std::printf("%-28s %9.3f %9.1f %10llu\n", "epoch 1 (cold, linked)", epoch1, mib / epoch1,
              static_cast<unsigned long long>(req1));
  std::printf("%-28s %9.3f %9.1f %10llu\n", "epoch 2 (cached, linked)", epoch2, mib / epoch2,
              static_cast<unsigned long long>(req2));
  std::printf("%-28s %9.3f %9.1f %10llu\n", "copy-first: download", copy_s, mib / copy_s,
              static_cast<unsigned long long>(copy_requests));
  std::printf("%-28s %9.3f %9.1f %10d\n", "copy-first: local read", local_read_s, mib / local_read_s, 0);
  std::printf("%-28s %9.3f %9.1f\n", "copy-first: total", copy_first, mib / copy_first);
  std::printf("\nepoch1/epoch2 = %.2fx (target >= 3x)   copy-first/epoch1 = %.2fx   copy-first/epoch2 = %.2fx\n",
              epoch1 / epoch2, copy_first / epoch1, copy_first / epoch2);
  std::printf("time to first sample: linked %.3f s (listing) vs copy-first %.3f s (whole download)\n", link_s, copy_s);
  ns.reset();
  fs::remove_all(a.work_dir);
  return epoch1 / epoch2 >= 3.0 ? 0 : 3;
}
