#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <string>

#include "stor/stor.h"
#include "test_util.h"

TEST_CASE("C API round trip on the nvme backend") {
  stor::test::TempDir dir;
  stor_store_t* s = nullptr;
  REQUIRE(stor_store_open(nullptr, &s) == STOR_OK);
  std::string uri = "nvme://" + (dir / "c.bin");
  stor_file_t* f = nullptr;
  REQUIRE(stor_file_open(s, uri.c_str(), STOR_O_READ | STOR_O_WRITE | STOR_O_CREATE, 0644, &f) == STOR_OK);
  const char msg[] = "storage must keep up with compute";
  size_t n = 0;
  REQUIRE(stor_file_write(f, msg, sizeof msg, 100, &n) == STOR_OK);
  CHECK(n == sizeof msg);
  REQUIRE(stor_file_sync(f, 1) == STOR_OK);
  uint64_t size = 0;
  REQUIRE(stor_file_size(f, &size) == STOR_OK);
  CHECK(size == 100 + sizeof msg);
  char back[sizeof msg] = {};
  REQUIRE(stor_file_read(f, back, sizeof back, 100, &n) == STOR_OK);
  CHECK(std::memcmp(back, msg, sizeof msg) == 0);

  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    stor_code_t code = STOR_EINTERNAL;
    size_t bytes = 0;
  } w;
  char async_buf[sizeof msg] = {};
  REQUIRE(stor_file_read_async(f, async_buf, sizeof async_buf, 100,
                               [](void* ctx, stor_code_t code, size_t bytes) {
                                 auto* w = static_cast<Waiter*>(ctx);
                                 std::lock_guard lk(w->mu);
                                 w->code = code;
                                 w->bytes = bytes;
                                 w->done = true;
                                 w->cv.notify_all();
                               },
                               &w) == STOR_OK);
  {
    std::unique_lock lk(w.mu);
    w.cv.wait(lk, [&] { return w.done; });
  }
  CHECK(w.code == STOR_OK);
  CHECK(w.bytes == sizeof msg);
  CHECK(std::memcmp(async_buf, msg, sizeof msg) == 0);

  REQUIRE(stor_file_truncate(f, 10) == STOR_OK);
  REQUIRE(stor_file_close(f) == STOR_OK);
  REQUIRE(stor_stat_size(s, uri.c_str(), &size) == STOR_OK);
  CHECK(size == 10);
  // A local file is written in place: abort keeps what was written and frees the handle.
  REQUIRE(stor_file_open(s, uri.c_str(), STOR_O_WRITE, 0, &f) == STOR_OK);
  REQUIRE(stor_file_write(f, msg, sizeof msg, 10, &n) == STOR_OK);
  REQUIRE(stor_file_abort(f) == STOR_OK);
  REQUIRE(stor_stat_size(s, uri.c_str(), &size) == STOR_OK);
  CHECK(size == 10 + sizeof msg);
  REQUIRE(stor_remove(s, uri.c_str()) == STOR_OK);
  CHECK(stor_stat_size(s, uri.c_str(), &size) == STOR_ENOTFOUND);
  stor_store_close(s);
}

TEST_CASE("C API vectored read and write, blocking and async", "[vectored]") {
  stor::test::TempDir dir;
  stor_store_t* s = nullptr;
  REQUIRE(stor_store_open(nullptr, &s) == STOR_OK);
  std::string uri = "nvme://" + (dir / "v.bin");
  stor_file_t* f = nullptr;
  REQUIRE(stor_file_open(s, uri.c_str(), STOR_O_READ | STOR_O_WRITE | STOR_O_CREATE, 0644, &f) == STOR_OK);
  char a[] = "scatter", b[] = "-", c[] = "gather";
  struct iovec out[] = {{a, 7}, {b, 0}, {b, 1}, {c, 6}};
  size_t n = 0;
  REQUIRE(stor_file_writev(f, out, 4, 10, &n) == STOR_OK);
  CHECK(n == 14);
  char x[5] = {}, y[20] = {};
  struct iovec in[] = {{x, 5}, {y, sizeof y}};
  REQUIRE(stor_file_readv(f, in, 2, 10, &n) == STOR_OK);
  CHECK(n == 14);  // short at end of file
  CHECK(std::string(x, 5) + std::string(y, 9) == "scatter-gather");

  struct Waiter {
    std::mutex mu;
    std::condition_variable cv;
    int done = 0;
    size_t bytes = 0;
    stor_code_t code = STOR_OK;
  } w;
  auto cb = [](void* ctx, stor_code_t code, size_t bytes) {
    auto* w = static_cast<Waiter*>(ctx);
    std::lock_guard lk(w->mu);
    if (code != STOR_OK) w->code = code;
    w->bytes += bytes;
    ++w->done;
    w->cv.notify_all();
  };
  struct iovec again[] = {{c, 6}, {a, 7}};
  REQUIRE(stor_file_writev_async(f, again, 2, 0, cb, &w) == STOR_OK);
  {
    std::unique_lock lk(w.mu);
    w.cv.wait(lk, [&] { return w.done == 1; });
  }
  char z[13] = {};
  struct iovec one[] = {{z, sizeof z}};
  REQUIRE(stor_file_readv_async(f, one, 1, 0, cb, &w) == STOR_OK);
  {
    std::unique_lock lk(w.mu);
    w.cv.wait(lk, [&] { return w.done == 2; });
  }
  CHECK(w.code == STOR_OK);
  CHECK(w.bytes == 26);
  CHECK(std::string(z, 13) == "gatherscatter");

  CHECK(stor_file_readv(f, nullptr, 1, 0, &n) == STOR_EINVAL);
  CHECK(stor_file_readv(f, in, -1, 0, &n) == STOR_EINVAL);
  CHECK(std::string(stor_last_error()).find("iovcnt") != std::string::npos);
  CHECK(stor_file_writev(nullptr, out, 1, 0, &n) == STOR_EINVAL);
  struct iovec bad[] = {{nullptr, 3}};
  CHECK(stor_file_writev(f, bad, 1, 0, &n) == STOR_EINVAL);
  CHECK(stor_file_readv_async(f, in, 2, 0, nullptr, nullptr) == STOR_EINVAL);
  REQUIRE(stor_file_readv(f, nullptr, 0, 0, &n) == STOR_OK);
  CHECK(n == 0);
  REQUIRE(stor_file_close(f) == STOR_OK);
  stor_store_close(s);
}

TEST_CASE("C API reports bad input with codes and messages") {
  stor::test::TempDir dir;
  stor_store_t* s = nullptr;
  REQUIRE(stor_store_open(nullptr, &s) == STOR_OK);
  stor_file_t* f = nullptr;

  CHECK(stor_file_open(s, "nope://x/y", STOR_O_READ, 0, &f) == STOR_ENOTFOUND);
  CHECK(std::string(stor_last_error()).find("unknown URI scheme 'nope'") != std::string::npos);
  CHECK(f == nullptr);

  CHECK(stor_file_open(s, "nvme:/missing-slashes", STOR_O_READ, 0, &f) == STOR_EINVAL);
  CHECK(std::string(stor_last_error()).find("//") != std::string::npos);

  std::string missing = "nvme://" + (dir / "missing");
  CHECK(stor_file_open(s, missing.c_str(), STOR_O_READ, 0, &f) == STOR_ENOTFOUND);
  CHECK(std::string(stor_last_error()).find("No such file") != std::string::npos);

  CHECK(stor_file_open(s, nullptr, STOR_O_READ, 0, &f) == STOR_EINVAL);
  CHECK(stor_file_open(nullptr, "x", STOR_O_READ, 0, &f) == STOR_EINVAL);
  CHECK(stor_file_read(nullptr, nullptr, 0, 0, nullptr) == STOR_EINVAL);
  CHECK(stor_file_close(nullptr) == STOR_EINVAL);
  CHECK(stor_file_abort(nullptr) == STOR_EINVAL);

  stor_options_t bad{"warp-drive", 0, nullptr};
  stor_store_t* s2 = nullptr;
  CHECK(stor_store_open(&bad, &s2) == STOR_EINVAL);
  CHECK(s2 == nullptr);

  CHECK(std::string(stor_code_name(STOR_ENOTFOUND)) == "NotFound");
  CHECK(std::string(stor_code_name(static_cast<stor_code_t>(99))) == "Unknown");
  CHECK(std::string(stor_version()).size() >= 5);
  stor_store_close(s);
}
