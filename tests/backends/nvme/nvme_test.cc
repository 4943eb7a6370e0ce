#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <fstream>
#include <sys/stat.h>

#include "stor/store.h"
#include "io_check.h"
#include "test_util.h"

using namespace stor;

namespace {
std::unique_ptr<Store> make_store(std::map<std::string, std::string> settings = {}) {
  StoreOptions o;
  o.settings = std::move(settings);
  auto s = Store::create(o);
  REQUIRE(s.is_ok());
  return std::move(s).value();
}
std::string nvme(const std::string& path) { return "nvme://" + path; }
}  // namespace

TEST_CASE("nvme: create, write, read, stat, truncate") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "a"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  auto data = test::pattern(3 << 20, 11);
  REQUIRE(*f->write(data.data(), data.size(), 0) == data.size());
  std::vector<char> back(data.size());
  REQUIRE(f->read_exact(back.data(), back.size(), 0).is_ok());
  CHECK(back == data);
  CHECK(*f->size() == data.size());
  REQUIRE(f->truncate(1000).is_ok());
  CHECK(*f->size() == 1000);
  REQUIRE(f->close().is_ok());
  auto st = store->stat(nvme(dir / "a"));
  REQUIRE(st.is_ok());
  CHECK(st->size == 1000);
  CHECK(st->type == FileType::kRegular);
  CHECK(st->mode == 0644);
}

TEST_CASE("nvme: bare paths resolve to nvme") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(dir / "bare", kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  REQUIRE(*f->write("x", 1, 0) == 1);
  REQUIRE(store->stat(nvme(dir / "bare")).is_ok());
}

TEST_CASE("nvme: O_DIRECT with aligned buffers, clear error when misaligned") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "d"), kOpenRead | kOpenWrite | kOpenCreate | kOpenDirect);
  REQUIRE(f.is_ok());
  if (!f->direct()) {
    WARN("skipped: the file system under TMPDIR refused O_DIRECT; the fallback test covers that path");
    return;
  }
  AlignedBuffer buf(1 << 20);
  auto data = test::pattern(buf.size(), 2);
  std::memcpy(buf.data(), data.data(), data.size());
  REQUIRE(*f->write(buf.data(), buf.size(), 0) == buf.size());
  REQUIRE(f->sync(true).is_ok());
  AlignedBuffer in(1 << 20);
  REQUIRE(*f->read(in.data(), in.size(), 0) == in.size());
  CHECK(std::memcmp(in.data(), buf.data(), in.size()) == 0);

  for (auto [ptr, len, off] : {std::tuple{in.data() + 1, size_t{4096}, uint64_t{0}},
                               std::tuple{in.data(), size_t{100}, uint64_t{0}},
                               std::tuple{in.data(), size_t{4096}, uint64_t{512 + 1}}}) {
    auto r = f->read(ptr, len, off);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == Code::kInvalidArgument);
    CHECK(r.status().message().find("O_DIRECT") != std::string::npos);
  }
  auto w = f->write(data.data() + 3, 4096, 0);
  CHECK(w.status().code() == Code::kInvalidArgument);
}

TEST_CASE("nvme: O_DIRECT falls back to buffered when the file system refuses it") {
  test::TempDir dir;
  auto store = make_store({{"nvme.refuse_direct", "1"}});
  auto f = store->open(nvme(dir / "fb"), kOpenRead | kOpenWrite | kOpenCreate | kOpenDirect);
  REQUIRE(f.is_ok());
  CHECK_FALSE(f->direct());
  // Buffered: unaligned I/O is fine.
  REQUIRE(*f->write("abc", 3, 1) == 3);
  char back[3];
  REQUIRE(f->read_exact(back, 3, 1).is_ok());
  CHECK(std::memcmp(back, "abc", 3) == 0);
}

TEST_CASE("nvme: errors for missing files, bad flags, directories, out-of-range reads") {
  test::TempDir dir;
  auto store = make_store();
  auto missing = store->open(nvme(dir / "missing"));
  REQUIRE_FALSE(missing.is_ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message().find(dir / "missing") != std::string::npos);

  CHECK(store->open(nvme(dir / "x"), kOpenCreate).status().code() == Code::kInvalidArgument);
  CHECK(store->open("nvme://host/x").status().code() == Code::kInvalidArgument);
  CHECK(store->open(nvme(dir.path())).status().code() == Code::kIsADirectory);

  auto f = store->open(nvme(dir / "short"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  REQUIRE(*f->write("0123456789", 10, 0) == 10);
  char buf[32];
  auto r = f->read(buf, sizeof buf, 5);
  REQUIRE(r.is_ok());
  CHECK(*r == 5);
  auto exact = f->read_exact(buf, sizeof buf, 5);
  CHECK(exact.code() == Code::kOutOfRange);
  CHECK(f->read_exact(buf, 1, 100).code() == Code::kOutOfRange);

  auto ro = store->open(nvme(dir / "short"), kOpenRead);
  REQUIRE(ro.is_ok());
  auto w = ro->write("x", 1, 0);
  CHECK_FALSE(w.is_ok());
  CHECK(w.status().code() == Code::kInvalidArgument);  // EBADF: not open for writing

  REQUIRE(f->close().is_ok());
  CHECK(f->read(buf, 1, 0).status().code() == Code::kInvalidArgument);
  CHECK(store->open(nvme(dir / "short"), kOpenWrite | kOpenCreate | kOpenExclusive).status().code() ==
        Code::kAlreadyExists);
}

TEST_CASE("nvme: permission denied for an unprivileged caller") {
  test::TempDir dir;
  std::string secret = dir / "secret";
  { std::ofstream(secret) << "top secret"; }
  REQUIRE(::chmod(secret.c_str(), 0600) == 0);
  REQUIRE(::chmod(dir.path().c_str(), 0755) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    // Root bypasses permission bits, so drop to nobody first when running as root.
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(3);
    auto store = Store::create({});
    if (!store.is_ok()) ::_exit(4);
    auto f = (*store)->open("nvme://" + secret);
    ::_exit(!f.is_ok() && f.status().code() == Code::kPermissionDenied ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("nvme: sync and datasync make data readable by a fresh open") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "s"), kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  auto data = test::pattern(65536, 4);
  REQUIRE(*f->write(data.data(), data.size(), 0) == data.size());
  REQUIRE(f->sync(true).is_ok());
  REQUIRE(*f->write(data.data(), data.size(), data.size()) == data.size());
  REQUIRE(f->sync(false).is_ok());
  std::ifstream in(dir / "s", std::ios::binary);
  std::vector<char> back(2 * data.size());
  in.read(back.data(), static_cast<std::streamsize>(back.size()));
  CHECK(in.gcount() == static_cast<std::streamsize>(back.size()));
  CHECK(std::equal(data.begin(), data.end(), back.begin()));
  CHECK(std::equal(data.begin(), data.end(), back.begin() + static_cast<long>(data.size())));
  REQUIRE(f->close().is_ok());
  CHECK(f->sync(false).code() == Code::kInvalidArgument);
}

TEST_CASE("nvme: directories, listing, rename, remove") {
  test::TempDir dir;
  auto store = make_store();
  REQUIRE(store->mkdir(nvme(dir / "sub")).is_ok());
  CHECK(store->mkdir(nvme(dir / "sub")).code() == Code::kAlreadyExists);
  for (const char* name : {"b", "a", "c"}) {
    auto f = store->open(nvme(dir / "sub/" + name), kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(*f->write(name, 1, 0) == 1);
  }
  auto ls = store->list(nvme(dir / "sub"));
  REQUIRE(ls.is_ok());
  REQUIRE(ls->size() == 3);
  CHECK((*ls)[0].name == "a");
  CHECK((*ls)[2].name == "c");
  CHECK((*ls)[1].size == 1);
  CHECK(store->remove(nvme(dir / "sub")).code() == Code::kNotEmpty);
  REQUIRE(store->rename(nvme(dir / "sub/a"), nvme(dir / "sub/z")).is_ok());
  CHECK(store->stat(nvme(dir / "sub/a")).status().code() == Code::kNotFound);
  CHECK(store->rename(nvme(dir / "sub/z"), "mem://x/z").code() == Code::kInvalidArgument);
  for (const char* name : {"b", "c", "z"}) REQUIRE(store->remove(nvme(dir / "sub/" + name)).is_ok());
  REQUIRE(store->remove(nvme(dir / "sub")).is_ok());
  CHECK(store->list(nvme(dir / "sub")).status().code() == Code::kNotFound);
  CHECK(store->remove(nvme(dir / "sub")).code() == Code::kNotFound);
}

TEST_CASE("nvme: many async writes in flight land where they should") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "q"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  constexpr int kBlocks = 256;
  auto data = test::pattern(kBlocks * 4096, 8);
  std::atomic<int> left{kBlocks}, errors{0};
  std::promise<void> all;
  for (int i = kBlocks - 1; i >= 0; --i) {
    f->write_async(data.data() + i * 4096, 4096, static_cast<uint64_t>(i) * 4096, [&](Result<size_t> r) {
      if (!r.is_ok() || *r != 4096) ++errors;
      if (--left == 0) all.set_value();
    });
  }
  all.get_future().wait();
  CHECK(errors == 0);
  std::vector<char> back(data.size());
  REQUIRE(f->read_exact(back.data(), back.size(), 0).is_ok());
  CHECK(back == data);
  CHECK(store->describe(nvme(dir / "q")).at("backend") == "nvme");
}

TEST_CASE("nvme: vectored read/write round trips over odd segments, also past IOV_MAX", "[vectored]") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "v"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  test::check_vectored_round_trip(*f->backend_file(), 300000, 777, 5000, 1);
  // 3000 segments: more than one preadv/IORING_OP_READV may carry, so the engine continues.
  auto g = store->open(nvme(dir / "w"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(g.is_ok());
  test::check_vectored_round_trip(*g->backend_file(), 3000 * 7, 0, 13, 2);
}

TEST_CASE("nvme: a vectored request is one engine request, per-segment calls are one each", "[vectored]") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "n"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  const auto data = test::pattern(64 * 1000, 3);
  test::Segments out(std::vector<size_t>(64, 1000));
  out.scatter(data);
  uint64_t before = store->engine().stats().submitted;
  REQUIRE(f->writev(out.iov, 0).value() == data.size());
  CHECK(store->engine().stats().submitted - before == 1);
  test::Segments in(std::vector<size_t>(64, 1000));
  before = store->engine().stats().submitted;
  REQUIRE(f->readv(in.iov, 0).value() == data.size());
  CHECK(store->engine().stats().submitted - before == 1);
  CHECK(in.gather(data.size()) == data);
  // The default implementation (what a backend without a vectored path gets): one per segment.
  test::Segments again(std::vector<size_t>(64, 1000));
  before = store->engine().stats().submitted;
  std::promise<Result<size_t>> done;
  f->backend_file()->BackendFile::readv_async(again.iov, 0, [&](Result<size_t> r) { done.set_value(r); });
  CHECK(done.get_future().get().value() == data.size());
  CHECK(store->engine().stats().submitted - before == 64);
  CHECK(again.gather(data.size()) == data);
}

TEST_CASE("nvme: O_DIRECT vectored I/O takes aligned segments and refuses misaligned ones", "[vectored]") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "d"), kOpenRead | kOpenWrite | kOpenCreate | kOpenDirect);
  REQUIRE(f.is_ok());
  AlignedBuffer a(8192), b(4096), c(12288);
  auto data = test::pattern(a.size() + b.size() + c.size(), 4);
  std::memcpy(a.data(), data.data(), a.size());
  std::memcpy(b.data(), data.data() + a.size(), b.size());
  std::memcpy(c.data(), data.data() + a.size() + b.size(), c.size());
  std::vector<struct iovec> iov = {{a.data(), a.size()}, {nullptr, 0}, {b.data(), b.size()}, {c.data(), c.size()}};
  REQUIRE(f->writev(iov, 4096).value() == data.size());
  AlignedBuffer back(data.size());
  std::vector<struct iovec> one = {{back.data(), back.size()}};
  REQUIRE(f->readv(one, 4096).value() == data.size());
  CHECK(std::memcmp(back.data(), data.data(), data.size()) == 0);
  if (f->direct()) {
    std::vector<struct iovec> odd = {{a.data(), 4096}, {b.data() + 1, 4095}};
    CHECK(f->readv(odd, 0).status().code() == Code::kInvalidArgument);
    CHECK(f->writev(odd, 0).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("nvme: many threads read and write one handle at once", "[concurrency]") {
  test::TempDir dir;
  auto store = make_store();
  auto f = store->open(nvme(dir / "c"), kOpenRead | kOpenWrite | kOpenCreate);
  REQUIRE(f.is_ok());
  CHECK(test::hammer_one_handle(*f->backend_file(), 200000, 4, 8) == 0);
}

TEST_CASE("nvme: kOpenAppend writes at the end whatever the offset (O_APPEND)") {
  test::TempDir dir;
  auto store = make_store();
  {
    auto f = store->open(nvme(dir / "log"), kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write("head|", 5, 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  auto a = store->open(nvme(dir / "log"), kOpenRead | kOpenWrite | kOpenAppend);
  auto b = store->open(nvme(dir / "log"), kOpenWrite | kOpenAppend);
  REQUIRE(a.is_ok());
  REQUIRE(b.is_ok());
  REQUIRE(a->write("aa|", 3, 0).is_ok());
  REQUIRE(b->write("bb|", 3, 1).is_ok());  // a second handle appends after the first one's bytes
  REQUIRE(a->write("cc|", 3, 100).is_ok());
  CHECK(*a->size() == 14);
  std::string back(14, '\0');
  REQUIRE(a->read_exact(back.data(), back.size(), 0).is_ok());
  CHECK(back == "head|aa|bb|cc|");
  REQUIRE(a->close().is_ok());
  REQUIRE(b->close().is_ok());
  // Appending needs a writable open.
  CHECK(store->open(nvme(dir / "log"), kOpenRead | kOpenAppend).status().code() == Code::kInvalidArgument);
}

TEST_CASE("nvme: byte-range locks (OFD) between handles and processes") {
  using namespace std::chrono_literals;
  stor::test::TempDir dir;
  auto store = make_store();
  const std::string uri = nvme(dir / "locked.bin");
  auto a = store->open(uri, kOpenRead | kOpenWrite | kOpenCreate).value();
  auto b = store->open(uri, kOpenRead | kOpenWrite).value();
  auto r = store->open(uri, kOpenRead).value();

  const uint64_t la = a.lock_range(0, 100, RangeLockMode::kShared, 1s).value();
  auto lb = b.lock_range(50, 10, RangeLockMode::kShared, 0ms);
  REQUIRE(lb.is_ok());
  REQUIRE(b.unlock_range(*lb).is_ok());
  auto x = b.lock_range(50, 10, RangeLockMode::kExclusive, 30ms);
  CHECK(x.status().code() == Code::kTimeout);
  CHECK(x.status().message().find("[50, 60)") != std::string::npos);
  // Every lock is its own owner (its own open file description): one handle conflicts with itself.
  CHECK(a.lock_range(0, 1, RangeLockMode::kExclusive, 0ms).status().code() == Code::kTimeout);
  auto adjacent = b.lock_range(100, 10, RangeLockMode::kExclusive, 0ms);
  REQUIRE(adjacent.is_ok());
  CHECK(r.lock_range(0, 1, RangeLockMode::kExclusive, 0ms).status().code() == Code::kPermissionDenied);
  CHECK(r.lock_range(0, 0, RangeLockMode::kShared, 0ms).status().code() == Code::kInvalidArgument);
  {  // a write-only handle takes shared locks too (its lock descriptor is opened for reading)
    auto wo = store->open(uri, kOpenWrite).value();
    auto s = wo.lock_range(500, 1, RangeLockMode::kShared, 0ms);
    REQUIRE(s.is_ok());
    REQUIRE(wo.unlock_range(*s).is_ok());
  }

  // Another process sees them (OFD locks are the kernel's), and gets them once released.
  auto try_in_child = [&](uint64_t off) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      auto s = Store::create();
      if (!s) _exit(3);
      auto f = (*s)->open(uri, kOpenRead | kOpenWrite);
      if (!f) _exit(4);
      auto l = f->lock_range(off, 1, RangeLockMode::kExclusive, 0ms);
      _exit(l.is_ok() ? 0 : l.status().code() == Code::kTimeout ? 1 : 2);
    }
    int st = 0;
    REQUIRE(::waitpid(pid, &st, 0) == pid);
    REQUIRE(WIFEXITED(st));
    return WEXITSTATUS(st);
  };
  CHECK(try_in_child(10) == 1);
  REQUIRE(a.unlock_range(la).is_ok());
  REQUIRE(a.unlock_range(la).is_ok());  // releasing again is not an error
  CHECK(try_in_child(10) == 0);
  CHECK(try_in_child(105) == 1);
  REQUIRE(b.close().is_ok());  // closing releases the handle's locks
  CHECK(try_in_child(105) == 0);

  // A waiter with no bound (the kernel's queue) is granted when the holder lets go.
  const uint64_t held = a.lock_range(0, 10, RangeLockMode::kExclusive, 0ms).value();
  std::atomic<bool> granted{false};
  std::thread waiter([&] { granted = r.lock_range(5, 1, RangeLockMode::kShared, std::chrono::milliseconds::max()).is_ok(); });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(granted.load());
  REQUIRE(a.unlock_range(held).is_ok());
  waiter.join();
  CHECK(granted.load());
}
