// Extent locks of the lustre:// backend: the per-inode lock queue (ExtentLockQueue) and the
// embedded mount's handles. The stor-mds lock service between client processes is tested in
// test_cluster.cc ("[locks]").
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "backends/lustre/extent_locks.h"
#include "backends/lustre/lustre_admin.h"
#include "stor/store.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;
using namespace std::chrono_literals;

namespace {
auto in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }
constexpr auto S = RangeLockMode::kShared;
constexpr auto X = RangeLockMode::kExclusive;
}  // namespace

TEST_CASE("extent lock queue: compatibility matrix", "[lustre][locks]") {
  ExtentLockQueue q;
  struct Case {
    RangeLockMode held, asked;
    uint64_t start, end;
    bool granted;
  };
  // Held: [100, 200).
  const Case cases[] = {
      {S, S, 150, 160, true},  {S, X, 150, 160, false}, {X, S, 150, 160, false}, {X, X, 150, 160, false},
      {X, X, 200, 300, true},  {X, X, 0, 100, true},     {X, S, 199, 200, false}, {S, X, 0, 101, false},
      {X, X, 0, 1000, false},
  };
  for (const auto& c : cases) {
    const uint64_t h = q.lock({0, 1}, 0, c.held, 100, 200, in(1s)).value();
    auto r = q.lock({0, 2}, 0, c.asked, c.start, c.end, in(0ms));
    INFO("held " << (c.held == X ? "X" : "S") << " asked " << (c.asked == X ? "X" : "S") << " [" << c.start << ", "
                 << c.end << ")");
    CHECK(r.is_ok() == c.granted);
    if (r) CHECK(q.unlock(0, *r));
    else CHECK(r.status().code() == Code::kTimeout);
    CHECK(q.unlock(0, h));
    CHECK(q.granted() == 0);
    CHECK(q.waiting() == 0);
  }
  CHECK(q.lock({0, 1}, 0, X, 5, 5, in(0ms)).status().code() == Code::kInvalidArgument);
  CHECK_FALSE(q.unlock(0, 12345));
}

TEST_CASE("extent lock queue: FIFO, resends, release", "[lustre][locks]") {
  ExtentLockQueue q;
  SECTION("a writer is not starved by readers arriving after it") {
    const uint64_t r1 = q.lock({1, 1}, 0, S, 0, 100, in(1s)).value();
    std::mutex mu;
    std::string order;
    std::thread w([&] {
      auto id = q.lock({2, 1}, 0, X, 0, 100, in(10s));
      std::lock_guard lk(mu);
      order += id ? "W" : "w-failed";
      if (id) q.unlock(2, *id);
    });
    while (q.waiting() == 0) std::this_thread::sleep_for(1ms);
    // Compatible with r1 but behind the waiting writer: waits.
    CHECK(q.lock({3, 1}, 0, S, 50, 60, in(20ms)).status().code() == Code::kTimeout);
    // A range the writer does not want passes.
    auto other = q.lock({3, 1}, 0, S, 100, 200, in(0ms));
    REQUIRE(other.is_ok());
    q.unlock(3, *other);
    std::thread r2([&] {
      auto id = q.lock({3, 1}, 0, S, 50, 60, in(10s));
      std::lock_guard lk(mu);
      order += id ? "R" : "r-failed";
      if (id) q.unlock(3, *id);
    });
    while (q.waiting() < 2) std::this_thread::sleep_for(1ms);
    CHECK(q.unlock(1, r1));
    w.join();
    r2.join();
    CHECK(order == "WR");
  }
  SECTION("a resent request joins the original and gets the same lock") {
    const uint64_t held = q.lock({1, 1}, 0, X, 0, 10, in(1s)).value();
    std::atomic<uint64_t> first{0};
    std::atomic<uint64_t> second{0};
    std::thread original([&] {
      auto id = q.lock({2, 7}, 42, X, 0, 10, in(10s));
      if (id) first = *id;
    });
    while (q.waiting() == 0) std::this_thread::sleep_for(1ms);
    std::thread resend([&] {
      auto id = q.lock({2, 7}, 42, X, 0, 10, in(10s));
      if (id) second = *id;
    });
    std::this_thread::sleep_for(20ms);
    CHECK(q.waiting() == 1);  // one queued request, not two
    q.unlock(1, held);
    original.join();
    resend.join();
    CHECK(first.load() != 0);
    CHECK(second.load() == first.load());
    CHECK(q.granted() == 1);
    // Granted already: a late resend gets the lock it has.
    CHECK(q.lock({2, 7}, 42, X, 0, 10, in(0ms)).value() == first.load());
    CHECK_FALSE(q.unlock(3, first.load()));  // another client cannot release it
    CHECK(q.unlock(2, first.load()));
  }
  SECTION("releasing an owner frees its locks and cancels its waiters") {
    (void)q.lock({1, 1}, 0, X, 0, 10, in(1s)).value();
    (void)q.lock({1, 1}, 0, X, 20, 30, in(1s)).value();
    (void)q.lock({1, 2}, 0, X, 40, 50, in(1s)).value();
    std::atomic<int> code{-1};
    std::thread waiter([&] { code = static_cast<int>(q.lock({1, 1}, 0, X, 5, 6, in(10s)).status().code()); });
    while (q.waiting() == 0) std::this_thread::sleep_for(1ms);
    CHECK(q.release({1, 1}) == 3);
    waiter.join();
    CHECK(code.load() == static_cast<int>(Code::kAborted));
    CHECK(q.granted() == 1);  // the other handle's
    CHECK(q.lock({2, 1}, 0, X, 0, 30, in(0ms)).is_ok());
  }
}

TEST_CASE("embedded lustre:// mount: byte-range locks between handles", "[lustre][locks]") {
  stor::test::TempDir dir;
  MkfsOptions mo;
  mo.targets = 2;
  REQUIRE(mkfs(dir.path(), mo).is_ok());
  auto store = Store::create().value();
  const std::string uri = "lustre://" + dir.path() + "/f.bin";
  auto a = store->open(uri, kOpenRead | kOpenWrite | kOpenCreate).value();
  auto b = store->open(uri, kOpenRead | kOpenWrite).value();
  auto r = store->open(uri, kOpenRead).value();
  const uint64_t la = a.lock_range(0, 100, S, 1s).value();
  CHECK(b.lock_range(10, 1, S, 0ms).is_ok());
  CHECK(b.lock_range(10, 1, X, 0ms).status().code() == Code::kTimeout);
  CHECK(r.lock_range(200, 1, X, 0ms).status().code() == Code::kPermissionDenied);
  REQUIRE(a.unlock_range(la).is_ok());
  // b still holds its shared lock of byte 10 (not released above): an exclusive one waits.
  std::atomic<bool> granted{false};
  std::thread waiter([&] { granted = a.lock_range(0, 20, X, 10s).is_ok(); });
  std::this_thread::sleep_for(50ms);
  CHECK_FALSE(granted.load());
  REQUIRE(b.close().is_ok());  // releases it
  waiter.join();
  CHECK(granted.load());
}

TEST_CASE("extent lock queue: a waiter whose client hung up leaves the queue at once", "[lustre][locks]") {
  ExtentLockQueue q;
  const uint64_t held = q.lock({1, 1}, 0, X, 0, 100, in(1s)).value();
  std::atomic<bool> hung_up{false};
  std::atomic<int> dead_code{-1}, behind_ok{-1};
  // A dead client's request for [0, 200) waits behind the held lock; a live one for [150, 160)
  // waits behind it (first come, first served), though nothing granted covers its bytes.
  std::thread dead([&] {
    auto r = q.lock({2, 2}, 7, X, 0, 200, in(20s), [&] { return hung_up.load(); });
    dead_code = static_cast<int>(r.status().code());
  });
  std::this_thread::sleep_for(100ms);
  std::thread behind([&] { behind_ok = q.lock({3, 3}, 0, X, 150, 160, in(20s)).is_ok(); });
  std::this_thread::sleep_for(100ms);
  CHECK(behind_ok.load() == -1);
  const auto t0 = std::chrono::steady_clock::now();
  hung_up = true;
  behind.join();
  dead.join();
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);  // polled every kGonePoll, not at the 20 s deadline
  CHECK(behind_ok.load() == 1);
  CHECK(dead_code.load() == static_cast<int>(Code::kAborted));
  CHECK(q.granted() == 2);  // the held lock and the live client's
  CHECK(q.waiting() == 0);
  CHECK(q.unlock(1, held));
}

TEST_CASE("extent lock queue: replayed locks keep their ids and never overlap", "[lustre][locks]") {
  ExtentLockQueue q;
  REQUIRE(q.replay({1, 10}, 500, X, 0, 100).is_ok());
  CHECK(q.replay({1, 10}, 500, X, 0, 100).is_ok());  // the same replay again: no second lock
  CHECK(q.granted() == 1);
  REQUIRE(q.replay({2, 20}, 501, S, 100, 200).is_ok());
  REQUIRE(q.replay({3, 30}, 502, S, 150, 250).is_ok());  // shared + shared
  // Two exclusive locks of one range cannot both have been granted: refused, never granted twice.
  auto clash = q.replay({4, 40}, 503, X, 50, 60);
  CHECK(clash.code() == Code::kCorruption);
  CHECK(clash.message().find("conflicts with lock 500") != std::string::npos);
  CHECK(q.replay({4, 40}, 501, X, 300, 400).code() == Code::kCorruption);  // another lock's id
  CHECK(q.granted() == 3);
  // New requests queue behind replayed locks as behind any granted one.
  CHECK(q.lock({5, 50}, 0, X, 90, 91, in(0ms)).status().code() == Code::kTimeout);
  CHECK(q.unlock(1, 500));
  CHECK(q.lock({5, 50}, 0, X, 90, 91, in(0ms)).is_ok());
}
