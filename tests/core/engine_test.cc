#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>

#include "stor/engine.h"
#include "test_util.h"

using namespace stor;

namespace {

// The engine under test follows STOR_ENGINE, as ctest sets it: every case runs on both.
std::unique_ptr<IoEngine> make_engine(unsigned qd = 64) {
  EngineOptions o;
  o.queue_depth = qd;
  auto e = IoEngine::create(o);
  REQUIRE(e.is_ok());
  return std::move(e).value();
}

int open_file(const std::string& path, int extra = 0) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | extra, 0644);
  REQUIRE(fd >= 0);
  return fd;
}

}  // namespace

TEST_CASE("engine kind follows STOR_ENGINE") {
  auto e = make_engine();
  const char* env = std::getenv("STOR_ENGINE");
  if (env && std::string_view(env) == "threadpool") CHECK(e->kind() == EngineKind::kThreadPool);
  if (env && std::string_view(env) == "io_uring") CHECK(e->kind() == EngineKind::kIoUring);
}

TEST_CASE("engine writes then reads back through futures") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "f");
  auto data = test::pattern(1 << 20, 7);
  auto w = e->write(fd, data.data(), data.size(), 4096).get();
  REQUIRE(w.is_ok());
  CHECK(*w == data.size());
  REQUIRE(e->fsync(fd, true).get().is_ok());
  REQUIRE(e->fsync(fd, false).get().is_ok());
  std::vector<char> back(data.size());
  auto r = e->read(fd, back.data(), back.size(), 4096).get();
  REQUIRE(r.is_ok());
  CHECK(*r == data.size());
  CHECK(back == data);
  // The hole before the data reads as zeros.
  std::vector<char> hole(4096, 'x');
  REQUIRE(*e->read(fd, hole.data(), hole.size(), 0).get() == 4096);
  CHECK(std::all_of(hole.begin(), hole.end(), [](char c) { return c == 0; }));
  auto st = e->stats();
  CHECK(st.bytes_written >= data.size());
  CHECK(st.bytes_read >= data.size());
  ::close(fd);
}

TEST_CASE("a read past end of file is short, not an error") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "f");
  auto data = test::pattern(10000);
  REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == 10000);
  std::vector<char> buf(16384);
  auto r = e->read(fd, buf.data(), buf.size(), 8192).get();
  REQUIRE(r.is_ok());
  CHECK(*r == 10000 - 8192);
  auto eof = e->read(fd, buf.data(), buf.size(), 20000).get();
  REQUIRE(eof.is_ok());
  CHECK(*eof == 0);
  ::close(fd);
}

TEST_CASE("a batch larger than the queue depth completes every request exactly once") {
  test::TempDir dir;
  auto e = make_engine(4);
  int fd = open_file(dir / "f");
  constexpr int kN = 200;
  auto data = test::pattern(kN * 512, 3);
  std::vector<IoRequest> batch;
  std::atomic<int> done{0}, bad{0};
  for (int i = 0; i < kN; ++i) {
    IoRequest r;
    r.op = IoOp::kWrite;
    r.fd = fd;
    r.buf = data.data() + i * 512;
    r.len = 512;
    r.offset = static_cast<uint64_t>(i) * 512;
    r.done = [&](Result<size_t> res) {
      if (!res.is_ok() || *res != 512) ++bad;
      ++done;
    };
    batch.push_back(std::move(r));
  }
  e->submit(batch);
  e->drain();
  CHECK(done == kN);
  CHECK(bad == 0);
  std::vector<char> back(data.size());
  REQUIRE(::pread(fd, back.data(), back.size(), 0) == static_cast<ssize_t>(back.size()));
  CHECK(back == data);
  ::close(fd);
}

TEST_CASE("callbacks may submit more requests without deadlocking at full queue depth") {
  test::TempDir dir;
  auto e = make_engine(2);
  int fd = open_file(dir / "f");
  std::vector<char> block(4096, 'a');
  REQUIRE(::pwrite(fd, block.data(), block.size(), 0) == 4096);
  std::mutex mu;
  std::condition_variable cv;
  int remaining = 500;
  int chains = 2;
  std::vector<std::vector<char>> bufs(chains, std::vector<char>(4096));
  std::function<void(int)> step = [&](int chain) {
    e->submit(IoRequest{IoOp::kRead, fd, bufs[chain].data(), 4096, 0, -1, [&, chain](Result<size_t> r) {
                          REQUIRE(r.is_ok());
                          bool more;
                          {
                            std::lock_guard lk(mu);
                            more = --remaining > 0;
                            if (!more) --chains;
                          }
                          if (more) step(chain);
                          else cv.notify_all();
                        }});
  };
  step(0);
  step(1);
  std::unique_lock lk(mu);
  REQUIRE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return chains <= 0; }));
  lk.unlock();
  e->drain();
  ::close(fd);
}

TEST_CASE("O_DIRECT requests with aligned buffers work") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = ::open((dir / "d").c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) {
    WARN("skipped: file system under TMPDIR refuses O_DIRECT"); return;
  }
  AlignedBuffer out(64 << 10), in(64 << 10);
  auto data = test::pattern(out.size(), 5);
  std::memcpy(out.data(), data.data(), data.size());
  REQUIRE(*e->write(fd, out.data(), out.size(), 0).get() == out.size());
  REQUIRE(*e->read(fd, in.data(), in.size(), 0).get() == in.size());
  CHECK(std::memcmp(in.data(), out.data(), in.size()) == 0);
  // The kernel rejects a misaligned direct read: the error surfaces as a Status, not a crash.
  auto bad = e->read(fd, in.data() + 1, 4096, 0).get();
  CHECK_FALSE(bad.is_ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  ::close(fd);
}

TEST_CASE("registered buffers serve fixed-buffer I/O") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "f");
  AlignedBuffer reg(1 << 20);
  struct iovec iov { reg.data(), reg.size() };
  REQUIRE(e->register_buffers({&iov, 1}).is_ok());
  auto data = test::pattern(8192, 9);
  std::memcpy(reg.data(), data.data(), data.size());
  std::promise<Result<size_t>> wrote;
  e->submit(IoRequest{IoOp::kWrite, fd, reg.data(), 8192, 0, 0, [&](Result<size_t> r) { wrote.set_value(r); }});
  REQUIRE(*wrote.get_future().get() == 8192);
  std::promise<Result<size_t>> read;
  e->submit(IoRequest{IoOp::kRead, fd, reg.data() + 65536, 8192, 0, 0, [&](Result<size_t> r) { read.set_value(r); }});
  REQUIRE(*read.get_future().get() == 8192);
  CHECK(std::memcmp(reg.data() + 65536, data.data(), 8192) == 0);
  if (e->kind() == EngineKind::kIoUring) {
    // A buffer outside the registered region is refused before it reaches the kernel.
    std::vector<char> outside(4096);
    std::promise<Result<size_t>> p;
    e->submit(IoRequest{IoOp::kRead, fd, outside.data(), 4096, 0, 0, [&](Result<size_t> r) { p.set_value(r); }});
    auto r = p.get_future().get();
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  REQUIRE(e->register_buffers({}).is_ok());
  ::close(fd);
}

TEST_CASE("invalid requests fail through the callback") {
  auto e = make_engine();
  char buf[16];
  auto r = e->read(-1, buf, sizeof buf, 0).get();
  CHECK(r.status().code() == Code::kInvalidArgument);
  // A descriptor that is not open: the error comes back from the kernel/pread.
  auto r2 = e->read(1000000, buf, sizeof buf, 0).get();
  CHECK_FALSE(r2.is_ok());
  CHECK(e->stats().errors >= 2);
}

TEST_CASE("engine options are validated") {
  EngineOptions o;
  o.queue_depth = 0;
  auto e = IoEngine::create(o);
  REQUIRE_FALSE(e.is_ok());
  CHECK(e.status().code() == Code::kInvalidArgument);
}

TEST_CASE("explicitly chosen engines both work") {
  test::TempDir dir;
  for (EngineKind k : {EngineKind::kThreadPool, EngineKind::kIoUring}) {
    if (k == EngineKind::kIoUring && !io_uring_available()) continue;
    EngineOptions o;
    o.kind = k;
    auto e = IoEngine::create(o);
    REQUIRE(e.is_ok());
    CHECK((*e)->kind() == k);
    int fd = open_file(dir / "k");
    char msg[] = "hello";
    REQUIRE(*(*e)->write(fd, msg, 5, 0).get() == 5);
    ::close(fd);
  }
}

TEST_CASE("SQPOLL is optional and works when granted") {
  if (!io_uring_available()) { WARN("skipped: io_uring unavailable"); return; }
  test::TempDir dir;
  EngineOptions o;
  o.kind = EngineKind::kIoUring;
  o.sqpoll = true;
  auto e = IoEngine::create(o);
  REQUIRE(e.is_ok());
  int fd = open_file(dir / "s");
  auto data = test::pattern(4096);
  REQUIRE(*(*e)->write(fd, data.data(), data.size(), 0).get() == 4096);
  std::vector<char> back(4096);
  REQUIRE(*(*e)->read(fd, back.data(), back.size(), 0).get() == 4096);
  CHECK(back == data);
  ::close(fd);
}

TEST_CASE("fixed files: requests through a registered slot") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "fixed");
  auto data = test::pattern(16384, 12);
  REQUIRE(::pwrite(fd, data.data(), data.size(), 0) == 16384);
  auto slot = e->register_file(fd);
  if (e->kind() == EngineKind::kThreadPool) {
    CHECK(slot.status().code() == Code::kUnsupported);
    ::close(fd);
    return;
  }
  REQUIRE(slot.is_ok());
  std::vector<char> back(16384);
  std::promise<Result<size_t>> p;
  IoRequest r{IoOp::kRead, fd, back.data(), back.size(), 0, -1, [&](Result<size_t> res) { p.set_value(res); }, *slot};
  e->submit(std::move(r));
  REQUIRE(*p.get_future().get() == 16384);
  CHECK(back == data);
  e->unregister_file(*slot);
  // The slot is free again and can take another file.
  auto again = e->register_file(fd);
  REQUIRE(again.is_ok());
  e->unregister_file(*again);
  ::close(fd);
}

TEST_CASE("vectored requests: segments in order, the array copied at submit, IOV_MAX exceeded", "[vectored]") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "v");
  // 2500 segments of 1..9 bytes, one buffer each: more than one preadv/READV carries.
  std::vector<std::vector<char>> bufs;
  size_t total = 0;
  for (int i = 0; i < 2500; ++i) {
    bufs.emplace_back(static_cast<size_t>(1 + i % 9));
    total += bufs.back().size();
  }
  auto data = test::pattern(total, 31);
  size_t pos = 0;
  for (auto& b : bufs) {
    std::memcpy(b.data(), data.data() + pos, b.size());
    pos += b.size();
  }
  auto run = [&](IoOp op, size_t len, uint64_t off) {
    std::promise<Result<size_t>> p;
    {
      std::vector<struct iovec> iov;  // gone once submit() returns
      for (auto& b : bufs) iov.push_back({b.data(), b.size()});
      IoRequest r{op, fd, nullptr, len, off, -1, [&](Result<size_t> res) { p.set_value(res); }};
      r.iov = iov.data();
      r.iov_count = iov.size();
      e->submit(std::move(r));
      std::fill(iov.begin(), iov.end(), iovec{nullptr, 0});
    }
    return p.get_future().get();
  };
  REQUIRE(run(IoOp::kWrite, total, 100).value() == total);
  std::vector<char> flat(total);
  REQUIRE(e->read(fd, flat.data(), total, 100).get().value() == total);
  CHECK(flat == data);
  for (auto& b : bufs) std::fill(b.begin(), b.end(), 0);
  REQUIRE(run(IoOp::kRead, total, 100).value() == total);
  std::vector<char> gathered;
  for (auto& b : bufs) gathered.insert(gathered.end(), b.begin(), b.end());
  CHECK(gathered == data);
  // From 1000 bytes before the end: short, and only the leading segments are filled.
  REQUIRE(::ftruncate(fd, static_cast<off_t>(100 + total)) == 0);
  for (auto& b : bufs) std::fill(b.begin(), b.end(), 'X');
  REQUIRE(run(IoOp::kRead, total, 100 + total - 1000).value() == 1000);
  ::close(fd);
}

TEST_CASE("malformed vectored requests fail through the callback", "[vectored]") {
  test::TempDir dir;
  auto e = make_engine();
  int fd = open_file(dir / "m");
  char a[8], b[8];
  struct iovec iov[] = {{a, 8}, {b, 8}};
  auto status_of = [&](IoRequest r) {
    std::promise<Result<size_t>> p;
    r.done = [&](Result<size_t> res) { p.set_value(res); };
    e->submit(std::move(r));
    return p.get_future().get().status().code();
  };
  IoRequest len_mismatch{IoOp::kRead, fd, nullptr, 15, 0, -1, {}};
  len_mismatch.iov = iov;
  len_mismatch.iov_count = 2;
  CHECK(status_of(std::move(len_mismatch)) == Code::kInvalidArgument);
  IoRequest with_buf{IoOp::kRead, fd, a, 16, 0, -1, {}};
  with_buf.iov = iov;
  with_buf.iov_count = 2;
  CHECK(status_of(std::move(with_buf)) == Code::kInvalidArgument);
  IoRequest fsync{IoOp::kFsync, fd, nullptr, 16, 0, -1, {}};
  fsync.iov = iov;
  fsync.iov_count = 2;
  CHECK(status_of(std::move(fsync)) == Code::kInvalidArgument);
  struct iovec holes[] = {{nullptr, 4}};
  IoRequest null_seg{IoOp::kWrite, fd, nullptr, 4, 0, -1, {}};
  null_seg.iov = holes;
  null_seg.iov_count = 1;
  CHECK(status_of(std::move(null_seg)) == Code::kInvalidArgument);
  ::close(fd);
}
