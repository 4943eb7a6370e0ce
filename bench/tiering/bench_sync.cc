// How fast the S3 link keeps itself in sync (run by bench/tiering/sync.sh):
//   propagation: another client overwrites an object; time until a reader of the namespace sees
//     the new version, with the background sync (tier.sync_interval) and with bucket
//     notifications (tier.notify_listen; needs a server with topics: Ceph RGW);
//   export burst: N small files written into the namespace and exported by one sync(), against
//     the same N PUTs sent directly through s3express:// in the same run (1 and T threads).
// Prints the times and the ratios; no absolute-time verdicts.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../lib/bench_util.h"
#include "stor/admin.h"
#include "stor/object_store.h"
#include "stor/store.h"
#include "stor/tiering.h"

using namespace stor;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string endpoint, access_key = "S3RVER", secret_key = "S3RVER", bucket = "tiersyncbench", work_dir;
  unsigned files = 1000, threads = 8, rounds = 5;
  uint64_t size = 4096;
  int64_t interval_ms = 1000;
  bool notify = false;
};

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

Status put_object(Store& store, const std::string& uri, const std::string& body) {
  STOR_ASSIGN_OR_RETURN(File f, store.open(uri, kOpenWrite | kOpenCreate | kOpenTruncate));
  STOR_ASSIGN_OR_RETURN(size_t n, f.write(body.data(), body.size(), 0));
  if (n != body.size()) return Status::IoError("short write to " + uri);
  return f.close();
}

double median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Overwrites data/prop.bin `rounds` times (at a random moment relative to the namespace's own
// timers) and measures how long until t reports the new ETag; -1 for a round not seen in 30 s.
std::vector<double> propagation(Store& other, tiering::TieredStore& t, const Args& a, const std::string& uri) {
  std::vector<double> out;
  std::mt19937 rng(42);
  for (unsigned r = 0; r < a.rounds; ++r) {
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % std::max<int64_t>(a.interval_ms, 1)));
    const std::string before = t.stat("prop.bin").is_ok() ? t.stat("prop.bin")->etag : "";
    if (Status s = put_object(other, uri, "round " + std::to_string(r) + " of the propagation bench"); !s.is_ok()) {
      std::fprintf(stderr, "bench_sync: overwrite: %s\n", s.to_string().c_str());
      return {};
    }
    const auto t0 = Clock::now();
    double seen = -1;
    while (ms_since(t0) < 30'000) {
      auto st = t.stat("prop.bin");
      if (st.is_ok() && st->etag != before) {
        seen = ms_since(t0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    out.push_back(seen);
  }
  return out;
}

int usage() {
  std::fprintf(stderr,
               "usage: bench_sync --endpoint URL [--access-key K --secret-key S] [--bucket B] [--files N] [--size BYTES]\n"
               "                  [--threads T] [--rounds R] [--interval-ms MS] [--notify] [--work-dir DIR]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (bench::ArgWalk w(argc, argv); w.next();) {
    const std::string& k = w.key();
    if (k == "--endpoint") a.endpoint = w.value();
    else if (k == "--access-key") a.access_key = w.value();
    else if (k == "--secret-key") a.secret_key = w.value();
    else if (k == "--bucket") a.bucket = w.value();
    else if (k == "--files") a.files = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--size") a.size = std::stoull(w.value());
    else if (k == "--threads") a.threads = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--rounds") a.rounds = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--interval-ms") a.interval_ms = std::stoll(w.value());
    else if (k == "--notify") a.notify = true;
    else if (k == "--work-dir") a.work_dir = w.value();
    else return usage();
  }
  if (a.endpoint.empty() || a.files == 0 || a.threads == 0 || a.rounds == 0 || a.interval_ms <= 0) return usage();
  a.work_dir = bench::fresh_work_dir(a.work_dir, "stor-tiersync-bench");

  StoreOptions so;
  so.settings = bench::s3rver_settings(a.endpoint, a.access_key, a.secret_key);
  auto store = Store::create(so).value();
  auto other = Store::create(so).value();  // "another client": its own S3 client and connections
  auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
  const std::string bucket_uri = "s3express://" + a.bucket;
  auto cold = store->backend(Uri::parse(bucket_uri + "/x").value()).value();
  if (!bench::ensure_bucket(*store, bucket_uri, "bench_sync")) return 1;
  auto link = [&](const std::string& name, const std::string& prefix, auto&& tweak) {
    const std::string dir = a.work_dir + "/" + name;
    fs::create_directories(dir);
    tiering::TierOptions o;
    o.fast = nvme;
    o.fast_root = "nvme://" + dir;
    o.cold = cold;
    o.cold_root = bucket_uri + "/" + prefix;
    o.state_dir = dir + "/.stor-tier";
    o.revalidate_after_ns = INT64_MAX;  // only the mechanism measured brings changes in
    tweak(o);
    auto t = tiering::TieredStore::open(o);
    if (!t.is_ok()) {
      std::fprintf(stderr, "bench_sync: open %s: %s\n", name.c_str(), t.status().to_string().c_str());
      std::exit(1);
    }
    if (auto n = (*t)->import_listing(); !n.is_ok()) {
      std::fprintf(stderr, "bench_sync: import: %s\n", n.status().to_string().c_str());
      std::exit(1);
    }
    return *t;
  };
  const std::string prop_uri = bucket_uri + "/prop/prop.bin";
  if (Status s = put_object(*other, prop_uri, "initial"); !s.is_ok()) {
    std::fprintf(stderr, "bench_sync: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("server %s; %u rounds per method\n", a.endpoint.c_str(), a.rounds);

  // ---- propagation: background sync ----
  std::vector<double> by_sync;
  {
    auto t = link("by-sync", "prop", [&](tiering::TierOptions& o) { o.sync_interval_ns = a.interval_ms * 1'000'000; });
    by_sync = propagation(*other, *t, a, prop_uri);
  }
  std::printf("propagation, sync interval %lld ms: median %.1f ms, max %.1f ms\n",
              static_cast<long long>(a.interval_ms), median(by_sync),
              by_sync.empty() ? -1 : *std::max_element(by_sync.begin(), by_sync.end()));
  // ---- propagation: notifications ----
  std::vector<double> by_notify;
  if (a.notify) {
    auto t = link("by-notify", "prop", [&](tiering::TierOptions& o) { o.notify_listen = "127.0.0.1:0"; });
    auto arn = admin::s3_notify(*store, bucket_uri + "/prop", "stor-tiersync-bench", t->notify_endpoint());
    if (!arn.is_ok()) {
      std::printf("propagation, notifications: unavailable (%s)\n", arn.status().to_string().c_str());
    } else {
      by_notify = propagation(*other, *t, a, prop_uri);
      std::printf("propagation, notifications: median %.1f ms, max %.1f ms\n", median(by_notify),
                  by_notify.empty() ? -1 : *std::max_element(by_notify.begin(), by_notify.end()));
    }
  }

  // ---- export burst ----
  std::vector<std::string> bodies(a.files);
  for (unsigned i = 0; i < a.files; ++i) {
    bodies[i].assign(a.size, static_cast<char>('a' + i % 26));
    std::snprintf(bodies[i].data(), bodies[i].size(), "file %u", i);
  }
  auto name_of = [](unsigned i) { return "d" + std::to_string(i % 10) + "/f" + std::to_string(i); };
  double export_ms = 0, consistent_ms = 0;
  size_t exported = 0;
  {
    auto t = link("burst", "burst", [](tiering::TierOptions&) {});
    for (unsigned i = 0; i < a.files; ++i) {
      auto f = t->open_file(name_of(i), {kOpenWrite | kOpenCreate | kOpenTruncate});
      if (!f.is_ok() || !(*f)->write(bodies[i].data(), bodies[i].size(), 0).is_ok() || !(*f)->close().is_ok()) {
        std::fprintf(stderr, "bench_sync: local write failed\n");
        return 1;
      }
    }
    const auto t0 = Clock::now();
    auto report = t->sync();
    export_ms = ms_since(t0);
    if (!report.is_ok() || !report->failed.empty()) {
      std::fprintf(stderr, "bench_sync: sync: %s\n",
                   report.is_ok() ? report->failed[0].c_str() : report.status().to_string().c_str());
      return 1;
    }
    exported = report->exported.size();
    // Consistent: another client's listing shows every file.
    auto listed = cold->object_store()->list_objects(Uri::parse(bucket_uri + "/burst").value());
    consistent_ms = ms_since(t0);
    if (!listed.is_ok() || listed->size() != a.files) {
      std::fprintf(stderr, "bench_sync: the bucket lists %zu of %u files after sync\n",
                   listed.is_ok() ? listed->size() : 0, a.files);
      return 1;
    }
  }
  auto direct = [&](const std::string& prefix, unsigned threads) {
    std::atomic<unsigned> next{0};
    std::atomic<bool> ok{true};
    const auto t0 = Clock::now();
    std::vector<std::thread> pool;
    for (unsigned k = 0; k < threads; ++k)
      pool.emplace_back([&] {
        for (unsigned i; (i = next.fetch_add(1)) < a.files;)
          if (!put_object(*store, bucket_uri + "/" + prefix + "/" + name_of(i), bodies[i]).is_ok()) ok = false;
      });
    for (auto& th : pool) th.join();
    if (!ok) std::fprintf(stderr, "bench_sync: direct PUTs failed\n");
    return ms_since(t0);
  };
  const double ref1_ms = direct("ref1", 1);
  const double refn_ms = direct("refn", a.threads);
  std::printf("export burst: %u files x %llu B: sync %.0f ms (%zu exported, %.0f files/s), bucket lists all at %.0f ms\n",
              a.files, static_cast<unsigned long long>(a.size), export_ms, exported, a.files / (export_ms / 1000),
              consistent_ms);
  std::printf("reference PUTs through s3express://: 1 thread %.0f ms (%.0f files/s), %u threads %.0f ms (%.0f files/s)\n",
              ref1_ms, a.files / (ref1_ms / 1000), a.threads, refn_ms, a.files / (refn_ms / 1000));
  std::printf("\nratios\n");
  std::printf("  propagation median / sync interval:           %.2f\n", median(by_sync) / a.interval_ms);
  if (!by_notify.empty())
    std::printf("  propagation sync interval / notifications:    %.1fx\n", median(by_sync) / median(by_notify));
  std::printf("  export burst sync / direct PUTs, 1 thread:    %.2f\n", export_ms / ref1_ms);
  std::printf("  export burst sync / direct PUTs, %u threads:   %.2f\n", a.threads, export_ms / refn_ms);
  fs::remove_all(a.work_dir);
  return 0;
}
