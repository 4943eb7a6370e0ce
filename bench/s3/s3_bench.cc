// stor's S3 client throughput: upload (parallel multipart) and download (parallel ranged GETs) of
// one object, with a given number of connections. Prints one line per run:
//   stor upload conns=4 bytes=1073741824 seconds=2.345 MiBps=436.7
// Small objects go through the public Store API, as an application would:
//   small-put    COUNT objects of SIZE bytes, PREFIX0..PREFIX{COUNT-1} (set-up)
//   small-get    read them all, INFLIGHT at once: threads each opening, reading and closing a file
//                (--api files), or Store::read_many (--api batch)
//   latency      open + read + close of KEY, one at a time, COUNT times: p50 / p99
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/s3express/s3_client.h"  // internal: see CMakeLists.txt
#include "stor/store.h"

using namespace stor::s3;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: s3_bench --endpoint URL --bucket B --key K --op upload|download --connections N\n"
               "                [--size BYTES] [--part-size BYTES] [--create-bucket]\n"
               "       s3_bench --endpoint URL --bucket B --op small-put|small-get [--prefix P] [--count N]\n"
               "                [--size BYTES] [--inflight N] [--api files|batch] [--set KEY=VALUE]...\n"
               "       s3_bench --endpoint URL --bucket B --key K --op latency [--count N]\n"
               "       s3_bench --endpoint URL --bucket B --key K --op delete\n"
               "credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n");
  return 2;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int fail(const std::string& what, const stor::Status& s) {
  std::fprintf(stderr, "s3_bench: %s: %s\n", what.c_str(), s.to_string().c_str());
  return 1;
}

int small_objects(const std::map<std::string, std::string>& settings, const std::string& op, const std::string& bucket,
                  const std::string& key, const std::string& prefix, unsigned count, uint64_t size, unsigned inflight,
                  const std::string& api) {
  stor::StoreOptions so;
  so.settings = settings;
  // The batch keeps s3.max_connections GETs in flight: as many as the other clients' INFLIGHT.
  if (api == "batch" && !so.settings.count("s3.max_connections"))
    so.settings["s3.max_connections"] = std::to_string(inflight);
  so.publish_stats = false;
  auto store = stor::Store::create(so);
  if (!store.is_ok()) return fail("store", store.status());
  stor::Store& st = *store.value();
  const std::string base = "s3://" + bucket + "/";
  if (op == "small-put") {
    std::vector<char> buf(size);
    for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 7 + 3);
    for (unsigned i = 0; i < count; ++i) {
      auto f = st.open(base + prefix + std::to_string(i), stor::kOpenWrite | stor::kOpenCreate | stor::kOpenTruncate);
      if (!f.is_ok()) return fail("open", f.status());
      if (auto w = f->write(buf.data(), buf.size(), 0); !w.is_ok()) return fail("write", w.status());
      if (auto c = f->close(); !c.is_ok()) return fail("close", c);
    }
    std::printf("stor small-put count=%u size=%llu\n", count, static_cast<unsigned long long>(size));
    return 0;
  }
  // Reads each object whole into its own buffer (size: an upper bound of the object size).
  auto read_one = [&](const std::string& uri, char* dst) -> stor::Result<size_t> {
    STOR_ASSIGN_OR_RETURN(stor::File f, st.open(uri));
    STOR_ASSIGN_OR_RETURN(size_t n, f.read(dst, size, 0));
    STOR_RETURN_IF_ERROR(f.close());
    return n;
  };
  if (op == "latency") {
    std::vector<char> dst(size);
    std::vector<double> ms;
    for (unsigned i = 0; i < count; ++i) {
      const double t0 = now_s();
      auto n = read_one(base + key, dst.data());
      if (!n.is_ok()) return fail("latency", n.status());
      ms.push_back((now_s() - t0) * 1000);
    }
    std::sort(ms.begin(), ms.end());
    std::printf("stor latency count=%u p50_ms=%.2f p99_ms=%.2f\n", count, ms[ms.size() / 2],
                ms[std::min<size_t>(ms.size() - 1, ms.size() * 99 / 100)]);
    return 0;
  }
  std::vector<char> dst(static_cast<size_t>(size) * count);
  std::atomic<uint64_t> bytes{0};
  stor::Status first_error;
  const double t0 = now_s();
  if (api == "files") {
    std::atomic<unsigned> next{0};
    std::mutex mu;
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < inflight; ++t)
      threads.emplace_back([&] {
        for (unsigned i; (i = next.fetch_add(1)) < count;) {
          auto n = read_one(base + prefix + std::to_string(i), dst.data() + size * i);
          if (n.is_ok()) bytes += *n;
          else {
            std::lock_guard<std::mutex> lock(mu);
            first_error = n.status();
          }
        }
      });
    for (auto& t : threads) t.join();
  } else if (api == "batch") {
    // One thread: the whole batch in one call, up to s3.max_connections GETs in flight.
    std::vector<stor::Store::ReadItem> items;
    for (unsigned i = 0; i < count; ++i)
      items.push_back({base + prefix + std::to_string(i), dst.data() + size * i, static_cast<size_t>(size), 0});
    for (auto& r : st.read_many(items)) {
      if (r.is_ok()) bytes += *r;
      else first_error = r.status();
    }
  } else {
    return usage();
  }
  const double secs = now_s() - t0;
  if (!first_error.is_ok()) return fail("small-get", first_error);
  std::printf("stor small-get count=%u bytes=%llu seconds=%.3f objps=%.1f\n", count,
              static_cast<unsigned long long>(bytes.load()), secs, count / secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> settings;
  std::string bucket, key, op, prefix = "small/", api = "files";
  uint64_t size = 1ull << 30;
  unsigned count = 500, inflight = 16;
  bool create_bucket = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--endpoint") settings["s3.endpoint"] = next();
    else if (a == "--bucket") bucket = next();
    else if (a == "--key") key = next();
    else if (a == "--op") op = next();
    else if (a == "--connections") settings["s3.max_connections"] = next();
    else if (a == "--part-size") settings["s3.part_size"] = next();
    else if (a == "--size") size = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--create-bucket") create_bucket = true;
    else if (a == "--prefix") prefix = next();
    else if (a == "--count") count = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--inflight") inflight = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
    else if (a == "--api") api = next();
    else if (a == "--set") {
      std::string kv = next();
      size_t eq = kv.find('=');
      if (eq == std::string::npos) return usage();
      settings[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else return usage();
  }
  if (op == "small-put" || op == "small-get" || op == "latency") {
    if (bucket.empty() || (op == "latency" && key.empty()) || count == 0 || inflight == 0) return usage();
    return small_objects(settings, op, bucket, key, prefix, count, size, inflight, api);
  }
  if (bucket.empty() || key.empty() || (op != "upload" && op != "download" && op != "delete")) return usage();
  auto config = S3Config::from_settings(settings, /*express=*/false);
  if (!config.is_ok()) {
    std::fprintf(stderr, "s3_bench: %s\n", config.status().to_string().c_str());
    return 1;
  }
  auto created = S3Client::create(config.value());
  if (!created.is_ok()) {
    std::fprintf(stderr, "s3_bench: %s\n", created.status().to_string().c_str());
    return 1;
  }
  auto& client = *created.value();
  if (create_bucket) {
    stor::Status s = client.create_bucket(bucket);
    if (!s.is_ok() && s.code() != stor::Code::kAlreadyExists) {
      std::fprintf(stderr, "s3_bench: %s\n", s.to_string().c_str());
      return 1;
    }
  }

  if (op == "delete") {
    stor::Status s = client.delete_object(bucket, key);
    return s.is_ok() ? 0 : fail("delete", s);
  }
  std::vector<char> buf;
  double seconds = 0;
  uint64_t bytes = 0;
  if (op == "upload") {
    buf.resize(size);
    for (size_t i = 0; i < buf.size(); i += 4096) buf[i] = static_cast<char>(i / 4096 * 31 + 7);
    auto t0 = std::chrono::steady_clock::now();
    auto r = client.put_object(bucket, key, buf.data(), buf.size());
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.is_ok()) {
      std::fprintf(stderr, "s3_bench: upload: %s\n", r.status().to_string().c_str());
      return 1;
    }
    bytes = size;
  } else {
    auto t0 = std::chrono::steady_clock::now();
    auto info = client.head_object(bucket, key);
    if (!info.is_ok()) {
      std::fprintf(stderr, "s3_bench: download: %s\n", info.status().to_string().c_str());
      return 1;
    }
    // Uninitialised, like the SDK side's Buffer.allocUnsafe: no zero-fill inside the timing.
    std::unique_ptr<char[]> dst(new char[info->size]);
    auto r = client.read_object(bucket, key, info.value(), 0, info->size, dst.get());
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.is_ok()) {
      std::fprintf(stderr, "s3_bench: download: %s\n", r.status().to_string().c_str());
      return 1;
    }
    bytes = r.value();
  }
  std::printf("stor %s conns=%s bytes=%llu seconds=%.3f MiBps=%.1f\n", op.c_str(),
              settings.count("s3.max_connections") ? settings["s3.max_connections"].c_str() : "16",
              static_cast<unsigned long long>(bytes), seconds, static_cast<double>(bytes) / (1 << 20) / seconds);
  return 0;
}
