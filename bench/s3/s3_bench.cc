// stor's S3 client throughput: upload (parallel multipart) and download (parallel ranged GETs) of
// one object, with a given number of connections. Prints one line per run:
//   stor upload conns=4 bytes=1073741824 seconds=2.345 MiBps=436.7
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "backends/s3express/s3_client.h"  // internal: see CMakeLists.txt

using namespace stor::s3;

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: s3_bench --endpoint URL --bucket B --key K --op upload|download --connections N\n"
               "                [--size BYTES] [--part-size BYTES] [--create-bucket]\n"
               "credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> settings;
  std::string bucket, key, op;
  uint64_t size = 1ull << 30;
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
    else return usage();
  }
  if (bucket.empty() || key.empty() || (op != "upload" && op != "download")) return usage();
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
