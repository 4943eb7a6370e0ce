// A query-like read of a Parquet table in s3rver (run.sh writes the files with DuckDB and starts
// the server): for every file, open it, read the footer, read 3 columns of every row group, one
// column chunk at a time as a scan asks for them; files are read by --threads threads at once.
// Three ways, one after the other on the same objects, each with fresh caches:
//   naive:        the whole object in one read (GETs of the whole object), footer and chunks
//                 cut from memory;
//   footer-only:  the footer by a tail GET (cached per ETag), then one ranged GET per column chunk,
//                 in order: no coalescing, no parallel requests, no prediction, no small-object rule;
//   parquet:      stor::parquet::Reader with its defaults (coalescing, parallel GETs, column
//                 prediction, small objects whole under parquet.small_object).
// Prints requests (counted by the S3 client), bytes fetched, wall time and the ratios to the bytes
// of the needed column chunks and to naive's time. Every returned chunk is compared with naive's
// bytes of the same object. Exit 3 when the parquet path misses its targets (bytes <= 1.3x needed,
// time <= 0.6x naive).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../lib/bench_util.h"
#include "stor/admin.h"
#include "stor/parquet.h"
#include "stor/store.h"

using namespace stor;
using bench::seconds_since;
namespace fs = std::filesystem;

namespace {

struct Args {
  std::string endpoint, dir, bucket = "pqbench";
  std::vector<std::string> columns = {"c1", "c6", "c11"};
  unsigned threads = 4;
  std::string small_object = "8M";
  std::string parallel = "8", predict = "1";
  unsigned rounds = 3;
  int latency_ms = 0;
};

bool parallel(size_t n, unsigned threads, const std::function<Status(size_t)>& work) {
  return bench::parallel(n, threads, work, "bench_parquet");
}

std::map<std::string, std::string> s3_settings(const Args& a) {
  auto s = bench::s3rver_settings(a.endpoint);
  s["s3.readahead"] = "0";
  return s;
}

struct Result1 {
  const char* name;
  uint64_t requests = 0, bytes = 0, predicted = 0, predicted_used = 0;
  double seconds = 0;
};


// --latency MS: a TCP proxy on 127.0.0.1 in front of s3rver that holds each response's first bytes
// until MS after the request's first bytes came in, as S3's time to first byte (loopback has none).
class LatencyProxy {
 public:
  LatencyProxy(const std::string& endpoint, int latency_ms) : latency_(latency_ms) {
    const size_t colon = endpoint.rfind(':');
    upstream_port_ = std::stoi(endpoint.substr(colon + 1));
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listen_fd_, 256) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      std::perror("bench_parquet: proxy");
      std::exit(1);
    }
    port_ = ntohs(a.sin_port);
    std::thread([this] { accept_loop(); }).detach();  // lives as long as the process
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  struct Pair {
    int client = -1, upstream = -1;
    std::atomic<int> alive{2};  // pumps running; the last one closes both sockets
    std::mutex mu;
    bool pending = false;
    std::chrono::steady_clock::time_point since;
  };
  void accept_loop() {
    for (;;) {
      const int c = ::accept(listen_fd_, nullptr, nullptr);
      if (c < 0) continue;
      const int u = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(upstream_port_));
      if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(c);
        ::close(u);
        continue;
      }
      const int one = 1;
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ::setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto pair = std::make_shared<Pair>();
      pair->client = c;
      pair->upstream = u;
      std::thread([=, this] { pump(c, u, pair, true); }).detach();
      std::thread([=, this] { pump(u, c, pair, false); }).detach();
    }
  }
  void pump(int from, int to, std::shared_ptr<Pair> p, bool request) {
    std::vector<char> buf(1 << 16);
    for (;;) {
      const ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n <= 0) break;
      {
        std::unique_lock<std::mutex> lock(p->mu);
        if (request && !p->pending) {
          p->pending = true;
          p->since = std::chrono::steady_clock::now();
        } else if (!request && p->pending) {
          const auto due = p->since + std::chrono::milliseconds(latency_);
          p->pending = false;
          lock.unlock();
          std::this_thread::sleep_until(due);
        }
      }
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = ::send(to, buf.data() + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) goto done;
        off += w;
      }
    }
  done:
    ::shutdown(to, SHUT_WR);  // the other side sees the end and stops its pump
    if (p->alive.fetch_sub(1) == 1) {
      ::close(p->client);
      ::close(p->upstream);
    }
  }
  int latency_;
  int upstream_port_ = 0, port_ = 0, listen_fd_ = -1;
};

int usage() {
  std::fprintf(stderr, "usage: bench_parquet --endpoint URL --dir DIR_OF_PARQUET_FILES [--threads T] [--columns a,b,c] "
                       "[--small-object SIZE] [--parallel N] [--predict 0|1] [--rounds N] [--latency MS]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (bench::ArgWalk w(argc, argv); w.next();) {
    const std::string& k = w.key();
    if (k == "--endpoint") a.endpoint = w.value();
    else if (k == "--dir") a.dir = w.value();
    else if (k == "--threads") a.threads = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--small-object") a.small_object = w.value();
    else if (k == "--parallel") a.parallel = w.value();
    else if (k == "--predict") a.predict = w.value();
    else if (k == "--rounds") a.rounds = static_cast<unsigned>(std::stoul(w.value()));
    else if (k == "--latency") a.latency_ms = std::stoi(w.value());
    else if (k == "--columns") {
      a.columns.clear();
      std::stringstream ss(w.value());
      for (std::string c; std::getline(ss, c, ',');) a.columns.push_back(c);
    } else return usage();
  }
  if (a.endpoint.empty() || a.dir.empty() || a.threads == 0 || a.columns.empty() || a.rounds == 0) return usage();

  std::vector<std::string> names;
  uint64_t total = 0;
  for (auto& e : fs::directory_iterator(a.dir))
    if (e.path().extension() == ".parquet") {
      names.push_back(e.path().filename().string());
      total += fs::file_size(e.path());
    }
  std::sort(names.begin(), names.end());
  if (names.empty()) return usage();

  std::unique_ptr<LatencyProxy> proxy;
  if (a.latency_ms > 0) {
    proxy = std::make_unique<LatencyProxy>(a.endpoint, a.latency_ms);
    a.endpoint = proxy->endpoint();
  }
  StoreOptions so;
  so.settings = s3_settings(a);
  so.publish_stats = false;
  auto store = Store::create(so).value();
  const std::string bucket_uri = "s3://" + a.bucket;
  if (!bench::ensure_bucket(*store, bucket_uri, "bench_parquet")) return 1;
  auto uri_of = [&](size_t i) { return bucket_uri + "/table/" + names[i]; };
  auto t0 = std::chrono::steady_clock::now();
  if (!parallel(names.size(), a.threads, [&](size_t i) -> Status {
        std::ifstream in(a.dir + "/" + names[i], std::ios::binary);
        std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        STOR_ASSIGN_OR_RETURN(auto f, store->open(uri_of(i), kOpenWrite | kOpenCreate | kOpenTruncate));
        STOR_RETURN_IF_ERROR(f.write(body.data(), body.size(), 0).status());
        return f.close();
      }))
    return 1;
  std::printf("table: %zu files, %.1f MiB in s3rver (%s%s); upload (setup) %.1f s; %u reader threads; columns",
              names.size(), static_cast<double>(total) / (1 << 20), a.endpoint.c_str(),
              a.latency_ms ? (", " + std::to_string(a.latency_ms) + " ms to first byte").c_str() : "", seconds_since(t0),
              a.threads);
  for (auto& c : a.columns) std::printf(" %s", c.c_str());
  std::printf("\n");

  // Ground truth and the needed bytes: every object whole (also warms s3rver up for all modes).
  std::vector<std::string> whole(names.size());
  std::vector<parquet::FileMetaData> meta(names.size());
  std::vector<std::vector<int>> cols(names.size());
  auto naive_file = [&](Store& st, size_t i, bool keep) -> Status {
    STOR_ASSIGN_OR_RETURN(auto f, st.open(uri_of(i)));
    STOR_ASSIGN_OR_RETURN(uint64_t size, f.size());
    std::string body(size, '\0');
    STOR_RETURN_IF_ERROR(f.read_exact(body.data(), body.size(), 0));
    // The footer and the chunks, cut from memory with the same parser.
    if (size < 12) return Status::Corruption(uri_of(i) + ": not parquet");
    const auto* p = reinterpret_cast<const uint8_t*>(body.data()) + size - 8;
    const uint64_t flen = p[0] | (p[1] << 8) | (p[2] << 16) | (uint64_t(p[3]) << 24);
    if (flen + 12 > size) return Status::Corruption(uri_of(i) + ": bad footer length");
    STOR_ASSIGN_OR_RETURN(auto md, parquet::parse_metadata(body.data() + size - 8 - flen, flen));
    if (keep) {
      whole[i] = std::move(body);
      meta[i] = std::move(md);
    }
    return f.close();
  };
  StoreOptions naive_opts = so;
  naive_opts.settings["parquet.read_path"] = "off";
  auto naive_store = Store::create(naive_opts).value();
  if (!parallel(names.size(), a.threads, [&](size_t i) { return naive_file(*naive_store, i, true); })) return 1;
  uint64_t needed = 0, footers = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    for (const auto& c : a.columns) {
      auto it = std::find(meta[i].columns.begin(), meta[i].columns.end(), c);
      if (it == meta[i].columns.end()) {
        std::fprintf(stderr, "bench_parquet: %s has no column %s\n", names[i].c_str(), c.c_str());
        return 1;
      }
      cols[i].push_back(static_cast<int>(it - meta[i].columns.begin()));
    }
    for (const auto& rg : meta[i].row_groups)
      for (int c : cols[i]) needed += rg.columns[c].compressed_size;
    const auto* p = reinterpret_cast<const uint8_t*>(whole[i].data()) + whole[i].size() - 8;
    footers += (p[0] | (p[1] << 8) | (p[2] << 16) | (uint64_t(p[3]) << 24)) + 8;
  }

  auto requests = [&](Store& st) -> uint64_t {
    auto s = admin::s3_client_stats(st, bucket_uri);
    return s.is_ok() ? s->requests : 0;
  };
  std::mutex mu;
  auto naive_mode = [&]() -> std::optional<Result1> {
    auto st = Store::create(naive_opts).value();
    Result1 r{"naive (whole GETs)"};
    t0 = std::chrono::steady_clock::now();
    if (!parallel(names.size(), a.threads, [&](size_t i) { return naive_file(*st, i, false); })) return std::nullopt;
    r.seconds = seconds_since(t0);
    r.requests = requests(*st);
    r.bytes = total;
    return r;
  };
  auto reader_mode = [&](const char* name, parquet::ReaderOptions o) -> std::optional<Result1> {
    parquet::clear_caches();  // each run starts cold: no footer cached, nothing predicted
    auto st = Store::create(so).value();
    Result1 r{name};
    t0 = std::chrono::steady_clock::now();
    bool ok = parallel(names.size(), a.threads, [&](size_t i) -> Status {
      STOR_ASSIGN_OR_RETURN(auto rd, parquet::Reader::open(*st, uri_of(i), o));
      // As a scan asks for them: one column chunk at a time, row group after row group.
      for (size_t g = 0; g < meta[i].row_groups.size(); ++g)
        for (int c : cols[i]) {
          const int rg[1] = {static_cast<int>(g)}, col[1] = {c};
          STOR_ASSIGN_OR_RETURN(auto chunks, rd->read_chunks(rg, col));
          if (chunks.size() != 1) return Status::Internal("chunk count");
          if (whole[i].compare(chunks[0].offset, chunks[0].bytes.size(), chunks[0].bytes) != 0)
            return Status::Corruption(uri_of(i) + ": chunk bytes differ from the object's");
        }
      std::lock_guard<std::mutex> lock(mu);
      const auto rs = rd->stats();
      r.bytes += rs.bytes;
      r.predicted += rs.predicted_bytes;
      r.predicted_used += rs.predicted_used;
      return Status::ok();
    });
    r.seconds = seconds_since(t0);
    r.requests = requests(*st);
    if (!ok) return std::nullopt;
    return r;
  };
  parquet::ReaderOptions footer_only;
  footer_only.small_object_bytes = 0;
  footer_only.coalesce_gap = 0;
  footer_only.parallel = 1;
  footer_only.predict = false;
  auto parsed = parquet::ReaderOptions::from_settings(
      {{"parquet.small_object", a.small_object}, {"parquet.parallel", a.parallel}, {"parquet.predict", a.predict}});
  if (!parsed.is_ok()) return usage();
  const parquet::ReaderOptions full = *parsed;

  // Rounds, the order of the modes rotating, so a busy moment of the machine does not fall on one
  // mode only; each mode's best time is reported (requests and bytes are the same every round).
  std::vector<Result1> results(3);
  for (unsigned round = 0; round < a.rounds; ++round)
    for (unsigned k = 0; k < 3; ++k) {
      const unsigned m = (k + round) % 3;
      std::optional<Result1> r = m == 0 ? naive_mode()
                               : m == 1 ? reader_mode("footer-only caching", footer_only)
                                        : reader_mode("parquet path", full);
      if (!r) return 1;
      if (round == 0 || r->seconds < results[m].seconds) results[m] = *r;
    }

  std::printf("needed: %.2f MiB of column chunks (+ %.2f MiB of footers) out of %.1f MiB\n\n",
              static_cast<double>(needed) / (1 << 20), static_cast<double>(footers) / (1 << 20),
              static_cast<double>(total) / (1 << 20));
  std::printf("best of %u rounds:\n\n| mode | requests | MiB fetched | bytes / needed | wall s | time / naive |\n", a.rounds);
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (const auto& r : results)
    std::printf("| %s | %llu | %.1f | %.2f | %.2f | %.2f |\n", r.name, static_cast<unsigned long long>(r.requests),
                static_cast<double>(r.bytes) / (1 << 20), static_cast<double>(r.bytes) / static_cast<double>(needed),
                r.seconds, r.seconds / results[0].seconds);
  const Result1& p = results.back();
  std::printf("\nparquet path: %.1f MiB fetched by column prediction, %.1f MiB of it used\n",
              static_cast<double>(p.predicted) / (1 << 20), static_cast<double>(p.predicted_used) / (1 << 20));
  const double bytes_ratio = static_cast<double>(p.bytes) / static_cast<double>(needed);
  const double time_ratio = p.seconds / results[0].seconds;
  std::printf("\nparquet path: bytes %.2fx needed (target <= 1.3), time %.2fx naive (target <= 0.6)\n", bytes_ratio,
              time_ratio);
  return bytes_ratio <= 1.3 && time_ratio <= 0.6 ? 0 : 3;
}
