// What the S3 benches share (bench_tiering, bench_tiering_sync, bench_parquet): timing, a
// thread-pool loop, s3rver's settings and bucket, the command-line walk and the work directory.
// Public headers only (bench/ layer).
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "stor/admin.h"
#include "stor/store.h"

namespace stor::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Runs work(k) for k in [0, n) on `threads` threads. The first error is printed ("who: error"),
// stops the loop, and makes it return false.
inline bool parallel(size_t n, unsigned threads, const std::function<Status(size_t)>& work, const char* who) {
  std::atomic<size_t> next{0};
  std::atomic<bool> ok{true};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t k; ok && (k = next.fetch_add(1)) < n;) {
        Status s = work(k);
        if (!s.is_ok()) {
          std::fprintf(stderr, "%s: %s\n", who, s.to_string().c_str());
          ok = false;
        }
      }
    });
  for (auto& t : pool) t.join();
  return ok;
}

// The same over the items of `order` (a shuffled index list, say).
inline bool parallel(const std::vector<unsigned>& order, unsigned threads, const std::function<Status(unsigned)>& work,
                     const char* who) {
  return parallel(order.size(), threads, [&](size_t k) { return work(order[k]); }, who);
}

// Settings for the s3rver the run.sh scripts start: its fixed credentials, path-style, no S3
// Express session.
inline std::map<std::string, std::string> s3rver_settings(const std::string& endpoint,
                                                          const std::string& access_key = "S3RVER",
                                                          const std::string& secret_key = "S3RVER") {
  return {{"s3.endpoint", endpoint}, {"s3.access_key", access_key}, {"s3.secret_key", secret_key},
          {"s3.region", "us-east-1"}, {"s3.session", "off"}};
}

// Creates the bucket unless it exists already; false (printed as "who: create bucket: ...") on
// any other failure.
inline bool ensure_bucket(Store& store, const std::string& bucket_uri, const char* who) {
  auto made = admin::s3_create_bucket(store, bucket_uri);
  if (made.is_ok() || made.status().code() == Code::kAlreadyExists) return true;
  std::fprintf(stderr, "%s: create bucket: %s\n", who, made.status().to_string().c_str());
  return false;
}

// `--key value` command lines, walked in order:
//   for (ArgWalk w(argc, argv); w.next();) { if (w.key() == "--files") files = std::stoul(w.value()); ... }
class ArgWalk {
 public:
  ArgWalk(int argc, char** argv) : argc_(argc), argv_(argv) {}
  bool next() {
    if (++i_ >= argc_) return false;
    key_ = argv_[i_];
    return true;
  }
  const std::string& key() const { return key_; }
  // The argument after the key ("" when there is none).
  std::string value() { return i_ + 1 < argc_ ? argv_[++i_] : ""; }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string key_;
};

// The bench's scratch directory: `dir` when given, else TMPDIR/PREFIX-PID; emptied.
inline std::string fresh_work_dir(std::string dir, const std::string& prefix) {
  if (dir.empty()) dir = std::filesystem::temp_directory_path() / (prefix + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

}  // namespace stor::bench
