// Block cache decorator over the nvme backend: hits, read-ahead, scan resistance, write-back and
// the consistency rule of include/stor/cache.h.
#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <thread>

#include "stor/cache.h"
#include "stor/store.h"
#include "io_check.h"
#include "test_util.h"

using namespace stor;
using stor::cache::CacheOptions;

namespace {

constexpr uint64_t kBlock = 4096;

struct Fixture {
  stor::test::TempDir dir;
  std::unique_ptr<Store> store = Store::create().value();
  std::shared_ptr<Backend> nvme = store->backend(Uri::parse("nvme:///").value()).value();

  std::shared_ptr<cache::CachingBackend> cached(CacheOptions o) {
    auto c = cache::make_caching_backend(nvme, o);
    REQUIRE(c.is_ok());
    return *c;
  }
  Uri uri(const std::string& name) { return Uri::parse("nvme://" + dir / name).value(); }
  void write_file(const std::string& name, const std::vector<char>& data) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  std::vector<char> read_file(const std::string& name) {
    std::ifstream in(dir / name, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
};

CacheOptions small(uint64_t blocks, unsigned readahead = 0) {
  CacheOptions o;
  o.block_size = kBlock;
  o.capacity_bytes = blocks * kBlock;
  o.readahead_blocks = readahead;
  o.max_dirty_bytes = blocks * kBlock / 2;
  return o;
}

std::vector<char> read_all(BackendFile& f, size_t n, uint64_t off = 0) {
  std::vector<char> out(n);
  auto r = f.read(out.data(), n, off);
  REQUIRE(r.is_ok());
  out.resize(*r);
  return out;
}

}  // namespace

TEST_CASE("cache: second read is served from memory, content intact") {
  Fixture fx;
  auto data = stor::test::pattern(10 * kBlock + 123, 7);
  fx.write_file("a", data);
  auto c = fx.cached(small(64));
  auto f = c->open(fx.uri("a"), {kOpenRead}).value();
  CHECK(read_all(*f, data.size() + 100) == data);  // short read at end of file
  const auto first = c->stats();
  CHECK(first.misses == 11);
  CHECK(first.hits == 0);
  CHECK(read_all(*f, 5000, 3000) == std::vector<char>(data.begin() + 3000, data.begin() + 8000));
  const auto second = c->stats();
  CHECK(second.misses == 11);
  CHECK(second.hits == 2);
  REQUIRE(f->close().is_ok());
}

TEST_CASE("cache: size bound and scan resistance (segmented LRU)") {
  Fixture fx;
  fx.write_file("hot", stor::test::pattern(4 * kBlock, 1));
  fx.write_file("scan", stor::test::pattern(100 * kBlock, 2));
  auto c = fx.cached(small(16));
  auto hot = c->open(fx.uri("hot"), {kOpenRead}).value();
  auto scan = c->open(fx.uri("scan"), {kOpenRead}).value();
  for (int pass = 0; pass < 2; ++pass) read_all(*hot, 4 * kBlock);  // second pass: protected
  const uint64_t misses_before_scan = c->stats().misses;
  // One pass over 100 blocks, block by block at scattered offsets (no read-ahead involved).
  for (uint64_t i = 0; i < 100; ++i) read_all(*scan, kBlock, ((i * 37) % 100) * kBlock);
  CHECK(c->stats().misses == misses_before_scan + 100);
  CHECK(c->stats().cached_bytes <= 16 * kBlock);
  CHECK(c->stats().evictions >= 100 - 16 + 4);
  const uint64_t misses_after_scan = c->stats().misses;
  read_all(*hot, 4 * kBlock);
  CHECK(c->stats().misses == misses_after_scan);  // the working set survived the scan
}

TEST_CASE("cache: sequential streams are read ahead") {
  Fixture fx;
  auto data = stor::test::pattern(64 * kBlock, 3);
  fx.write_file("seq", data);
  auto c = fx.cached(small(128, 8));
  auto f = c->open(fx.uri("seq"), {kOpenRead}).value();
  std::vector<char> back;
  for (uint64_t off = 0; off < data.size(); off += kBlock) {
    auto piece = read_all(*f, kBlock, off);
    back.insert(back.end(), piece.begin(), piece.end());
  }
  CHECK(back == data);
  REQUIRE(f->close().is_ok());  // waits for read-ahead still in flight
  const auto s = c->stats();
  INFO("misses " << s.misses << " readahead " << s.readahead_blocks << " ra hits " << s.readahead_hits);
  CHECK(s.readahead_blocks >= 50);
  CHECK(s.readahead_hits >= 50);
  CHECK(s.misses + s.readahead_blocks == 64);  // every block read from disk exactly once
  // A random reader gets no read-ahead.
  auto c2 = fx.cached(small(128, 8));
  auto g = c2->open(fx.uri("seq"), {kOpenRead}).value();
  for (uint64_t i : {5, 40, 12, 33, 60, 2}) read_all(*g, kBlock, i * kBlock);
  CHECK(c2->stats().readahead_blocks == 0);
}

TEST_CASE("cache: a write through one handle is visible through another before any flush") {
  Fixture fx;
  auto original = stor::test::pattern(8 * kBlock, 4);
  fx.write_file("shared", original);
  auto c = fx.cached(small(64));
  auto reader = c->open(fx.uri("shared"), {kOpenRead}).value();
  auto writer = c->open(fx.uri("shared"), {kOpenRead | kOpenWrite}).value();
  CHECK(read_all(*reader, original.size()) == original);  // cache it first
  const std::string msg = "written through the other handle";
  REQUIRE(writer->write(msg.data(), msg.size(), kBlock - 5).is_ok());  // straddles two blocks
  const std::string tail = "past the end";
  REQUIRE(writer->write(tail.data(), tail.size(), original.size() + 10).is_ok());
  // Not yet on disk (write-back) ...
  CHECK(fx.read_file("shared") == original);
  // ... but visible to the other handle, including the new size and the zero gap.
  auto expected = original;
  std::memcpy(expected.data() + kBlock - 5, msg.data(), msg.size());
  expected.resize(original.size() + 10, 0);
  expected.insert(expected.end(), tail.begin(), tail.end());
  CHECK(read_all(*reader, expected.size() + 50) == expected);
  CHECK(reader->stat()->size == expected.size());
  CHECK(c->stats().dirty_bytes > 0);
  // sync makes it durable in the backend.
  REQUIRE(writer->sync(true).is_ok());
  CHECK(fx.read_file("shared") == expected);
  CHECK(c->stats().dirty_bytes == 0);
  REQUIRE(writer->close().is_ok());
  REQUIRE(reader->close().is_ok());
  // Reopening sees no foreign change: the blocks stay.
  const uint64_t misses = c->stats().misses;
  auto again = c->open(fx.uri("shared"), {kOpenRead}).value();
  CHECK(read_all(*again, expected.size()) == expected);
  CHECK(c->stats().misses == misses);
  CHECK(c->stats().invalidations == 0);
}

TEST_CASE("cache: a change behind the cache's back invalidates on open") {
  Fixture fx;
  fx.write_file("f", stor::test::pattern(3 * kBlock, 5));
  auto c = fx.cached(small(64));
  {
    auto f = c->open(fx.uri("f"), {kOpenRead}).value();
    read_all(*f, 3 * kBlock);
  }
  // Another process rewrites the file (different size and mtime).
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto changed = stor::test::pattern(2 * kBlock + 9, 6);
  fx.write_file("f", changed);
  auto f = c->open(fx.uri("f"), {kOpenRead}).value();
  CHECK(read_all(*f, 4 * kBlock) == changed);
  CHECK(c->stats().invalidations == 1);
}

TEST_CASE("cache: revalidation of an open handle after the interval") {
  Fixture fx;
  fx.write_file("f", stor::test::pattern(kBlock, 8));
  auto o = small(16);
  o.revalidate_after_ns = 1;  // every read
  auto c = fx.cached(o);
  auto f = c->open(fx.uri("f"), {kOpenRead}).value();
  read_all(*f, kBlock);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto changed = stor::test::pattern(kBlock + 1, 9);
  fx.write_file("f", changed);
  CHECK(read_all(*f, 2 * kBlock) == changed);
}

TEST_CASE("cache: dirty bytes beyond max_dirty_bytes are written back, close flushes") {
  Fixture fx;
  auto c = fx.cached(small(16));  // max dirty: 8 blocks
  auto data = stor::test::pattern(12 * kBlock, 10);
  {
    auto f = c->open(fx.uri("new"), {kOpenWrite | kOpenCreate | kOpenTruncate}).value();
    for (uint64_t off = 0; off < data.size(); off += kBlock) REQUIRE(f->write(data.data() + off, kBlock, off).is_ok());
    CHECK(c->stats().writeback_bytes >= 8 * kBlock);  // flushed on the way
    CHECK(c->stats().dirty_bytes <= 8 * kBlock);
    REQUIRE(f->close().is_ok());
  }
  CHECK(fx.read_file("new") == data);
  CHECK(c->stats().dirty_bytes == 0);
}

TEST_CASE("cache: truncate, remove and error paths") {
  Fixture fx;
  fx.write_file("t", stor::test::pattern(5 * kBlock, 11));
  auto c = fx.cached(small(16));
  auto f = c->open(fx.uri("t"), {kOpenRead | kOpenWrite}).value();
  read_all(*f, 5 * kBlock);
  REQUIRE(f->truncate(kBlock + 1).is_ok());
  CHECK(read_all(*f, 5 * kBlock).size() == kBlock + 1);
  REQUIRE(f->close().is_ok());
  CHECK(fx.read_file("t").size() == kBlock + 1);

  auto ro = c->open(fx.uri("t"), {kOpenRead}).value();
  auto w = ro->write("x", 1, 0);
  CHECK(w.status().code() == Code::kPermissionDenied);
  REQUIRE(ro->close().is_ok());
  CHECK(ro->read(nullptr, 0, 0).status().code() == Code::kInvalidArgument);  // closed

  REQUIRE(c->remove(fx.uri("t")).is_ok());
  CHECK(c->open(fx.uri("t"), {kOpenRead}).status().code() == Code::kNotFound);

  CacheOptions bad;
  bad.block_size = 1 << 20;
  bad.capacity_bytes = 1000;
  CHECK(cache::make_caching_backend(fx.nvme, bad).status().code() == Code::kInvalidArgument);
  CHECK(cache::make_caching_backend(nullptr, {}).status().code() == Code::kInvalidArgument);
}

TEST_CASE("cache: concurrent readers of one file agree") {
  Fixture fx;
  auto data = stor::test::pattern(40 * kBlock, 12);
  fx.write_file("c", data);
  auto c = fx.cached(small(24, 4));
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto f = c->open(fx.uri("c"), {kOpenRead}).value();
      for (int rep = 0; rep < 20; ++rep) {
        const uint64_t off = ((rep * 7 + t * 13) % 40) * kBlock + 17;
        std::vector<char> buf(3000);
        auto n = f->read(buf.data(), buf.size(), off);
        if (!n.is_ok() || std::memcmp(buf.data(), data.data() + off, *n) != 0) ++bad;
      }
      (void)f->close();
    });
  }
  for (auto& th : threads) th.join();
  CHECK(bad == 0);
}

TEST_CASE("cache: vectored reads and writes across block boundaries, eviction and write-back", "[vectored]") {
  Fixture fx;
  auto c = fx.cached(small(16));  // 73 blocks of traffic through 16: windows, evictions, flushes
  {
    auto f = c->open(fx.uri("v"), {kOpenRead | kOpenWrite | kOpenCreate}).value();
    stor::test::check_vectored_round_trip(*f, 300000, 1234, 10000, 5);
    REQUIRE(f->close().is_ok());
  }
  auto expect = stor::test::pattern(300000, 5);
  auto on_disk = fx.read_file("v");
  REQUIRE(on_disk.size() == 1234 + expect.size());
  CHECK(std::equal(expect.begin(), expect.end(), on_disk.begin() + 1234));
  // Through a fresh cache: every byte comes from the backend into blocks, then into the segments.
  auto c2 = fx.cached(small(16));
  auto g = c2->open(fx.uri("v"), {kOpenRead}).value();
  stor::test::Segments segs(stor::test::odd_sizes(expect.size(), 7000, 6));
  REQUIRE(g->readv(segs.iov, 1234).value() == expect.size());
  CHECK(segs.gather(expect.size()) == expect);
}

TEST_CASE("cache: a multi-block miss is one backend read, a dirty run one write-back", "[vectored]") {
  Fixture fx;
  auto data = stor::test::pattern(8 * kBlock, 21);
  fx.write_file("m", data);
  auto c = fx.cached(small(64));
  auto f = c->open(fx.uri("m"), {kOpenRead | kOpenWrite}).value();
  auto& engine = fx.store->engine();
  uint64_t before = engine.stats().submitted;
  CHECK(read_all(*f, data.size()) == data);
  CHECK(engine.stats().submitted - before == 1);  // 8 blocks, one vectored backend read
  CHECK(c->stats().misses == 8);
  // Six blocks rewritten (dirty), then sync: one vectored write plus the fsync.
  auto fresh = stor::test::pattern(6 * kBlock, 22);
  REQUIRE(f->write(fresh.data(), fresh.size(), kBlock).value() == fresh.size());
  before = engine.stats().submitted;
  REQUIRE(f->sync(true).is_ok());
  CHECK(engine.stats().submitted - before == 2);
  REQUIRE(f->close().is_ok());
  std::copy(fresh.begin(), fresh.end(), data.begin() + kBlock);
  CHECK(fx.read_file("m") == data);
}

TEST_CASE("cache: many threads read and write one cached handle at once", "[concurrency]") {
  Fixture fx;
  auto c = fx.cached(small(64, 4));
  auto f = c->open(fx.uri("h"), {kOpenRead | kOpenWrite | kOpenCreate}).value();
  // Regions are not block multiples: neighbouring threads share blocks.
  CHECK(stor::test::hammer_one_handle(*f, 50001, 4, 6) == 0);
  REQUIRE(f->close().is_ok());
}

TEST_CASE("cache: appending opens are refused (cached blocks are keyed by offset)") {
  Fixture fx;
  fx.write_file("log", {'a', 'b'});
  auto c = fx.cached(small(8));
  auto f = c->open(fx.uri("log"), OpenOptions{kOpenWrite | kOpenAppend});
  CHECK(f.status().code() == Code::kUnsupported);
  CHECK(fx.read_file("log") == std::vector<char>{'a', 'b'});
}
