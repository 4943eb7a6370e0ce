// Helpers for the vectored-I/O and concurrency cases of the backend suites: segment lists of odd
// sizes over caller buffers, and a many-threads-on-one-handle workload that verifies its data.
#pragma once

#include <sys/uio.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "stor/backend.h"
#include "test_util.h"

namespace stor::test {

// Segment sizes adding up to `total`: random in [0, max_len], with zero-length ones mixed in.
inline std::vector<size_t> odd_sizes(size_t total, size_t max_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> out;
  size_t left = total;
  while (left > 0) {
    size_t n = (rng() % 5 == 0) ? 0 : 1 + rng() % max_len;
    n = std::min(n, left);
    out.push_back(n);
    left -= n;
  }
  out.push_back(0);
  return out;
}

// Separate buffers (one allocation per segment, so nothing is accidentally contiguous) and the
// iovec list over them.
struct Segments {
  std::vector<std::vector<char>> bufs;
  std::vector<struct iovec> iov;
  explicit Segments(const std::vector<size_t>& sizes, char fill = 'X') {
    bufs.reserve(sizes.size());
    for (size_t n : sizes) {
      bufs.emplace_back(n + 1, fill);  // +1: an empty segment still has an address
      iov.push_back({bufs.back().data(), n});
    }
  }
  // Scatters `data` into the segments (for writes).
  void scatter(const std::vector<char>& data) {
    size_t pos = 0;
    for (auto& v : iov) {
      std::memcpy(v.iov_base, data.data() + pos, v.iov_len);
      pos += v.iov_len;
    }
  }
  // The first n bytes held by the segments, in order (for reads).
  std::vector<char> gather(size_t n) const {
    std::vector<char> out;
    for (const auto& v : iov) {
      const size_t k = std::min(v.iov_len, n - out.size());
      out.insert(out.end(), static_cast<char*>(v.iov_base), static_cast<char*>(v.iov_base) + k);
      if (out.size() == n) break;
    }
    return out;
  }
};

// Waits for n callbacks.
class Latch {
 public:
  explicit Latch(size_t n) : left_(n) {}
  void count_down() {
    std::lock_guard lk(mu_);
    if (--left_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return left_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t left_;
};

// The concurrency contract of BackendFile, exercised: `threads` threads share one handle; each
// owns a disjoint region of `region` bytes and, `reps` times, writes it with several write_async
// calls in flight at once, reads it back with readv_async over odd segments and with read_async,
// and checks the bytes; meanwhile stat() runs too. Returns the number of failures seen.
inline int hammer_one_handle(BackendFile& f, size_t region, int threads = 4, int reps = 6) {
  std::atomic<int> failures{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const uint64_t base = static_cast<uint64_t>(t) * region;
      for (int rep = 0; rep < reps; ++rep) {
        const auto data = pattern(region, 1000 * static_cast<uint64_t>(t) + static_cast<uint64_t>(rep) + 1);
        const size_t chunk = region / 4 + 3;  // odd: chunks straddle stripe and block borders
        size_t calls = (region + chunk - 1) / chunk;
        Latch wrote(calls);
        for (size_t off = 0; off < region; off += chunk) {
          const size_t n = std::min(chunk, region - off);
          f.write_async(data.data() + off, n, base + off, [&, n](Result<size_t> r) {
            if (!r.is_ok() || *r != n) ++failures;
            wrote.count_down();
          });
        }
        wrote.wait();
        if (!f.stat().is_ok()) ++failures;
        Segments segs(odd_sizes(region, region / 7 + 1, static_cast<uint64_t>(t * 100 + rep)));
        std::vector<char> plain(region);
        Latch read(2);
        f.readv_async(segs.iov, base, [&](Result<size_t> r) {
          if (!r.is_ok() || *r != region) ++failures;
          read.count_down();
        });
        f.read_async(plain.data(), region, base, [&](Result<size_t> r) {
          if (!r.is_ok() || *r != region) ++failures;
          read.count_down();
        });
        read.wait();
        if (segs.gather(region) != data || plain != data) ++failures;
      }
    });
  }
  for (auto& th : pool) th.join();
  return failures.load();
}

// Vectored round trip on a handle whose file ends at offset + total once written: writev over
// odd segments, readv over differently cut ones, then the end of file (the leading segments are
// filled, later ones untouched), a read starting past the end, empty lists and a bad segment.
inline void check_vectored_round_trip(BackendFile& f, size_t total, uint64_t offset, size_t max_seg, uint64_t seed) {
  const auto data = pattern(total, seed);
  Segments out(odd_sizes(total, max_seg, seed));
  out.scatter(data);
  auto w = f.writev(out.iov, offset);
  REQUIRE(w.is_ok());
  CHECK(*w == total);

  Segments in(odd_sizes(total, max_seg / 2 + 1, seed + 1));
  auto r = f.readv(in.iov, offset);
  REQUIRE(r.is_ok());
  CHECK(*r == total);
  CHECK(in.gather(total) == data);

  // Past the end: 100 bytes more asked for than the file holds.
  auto sizes = odd_sizes(total + 100, max_seg, seed + 2);
  Segments eof(sizes);
  r = f.readv(eof.iov, offset);
  REQUIRE(r.is_ok());
  CHECK(*r == total);
  CHECK(eof.gather(total) == data);
  size_t pos = 0, untouched = 0;
  for (const auto& v : eof.iov) {
    for (size_t i = 0; i < v.iov_len; ++i)
      if (pos + i >= total && static_cast<char*>(v.iov_base)[i] == 'X') ++untouched;
    pos += v.iov_len;
  }
  CHECK(untouched == 100);

  Segments beyond(std::vector<size_t>{10, 0, 20});
  r = f.readv(beyond.iov, offset + total + 5);
  REQUIRE(r.is_ok());
  CHECK(*r == 0);

  Segments empty(std::vector<size_t>{0, 0});
  r = f.readv(empty.iov, offset);
  REQUIRE(r.is_ok());
  CHECK(*r == 0);
  r = f.readv({}, offset);
  REQUIRE(r.is_ok());
  CHECK(*r == 0);

  std::vector<struct iovec> bad = {{nullptr, 8}};
  CHECK(f.readv(bad, offset).status().code() == Code::kInvalidArgument);
  CHECK(f.writev(bad, offset).status().code() == Code::kInvalidArgument);
}

}  // namespace stor::test
