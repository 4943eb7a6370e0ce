// Tiered store over two nvme directories (fast, cold): fetch on first read, export, import of
// cold-side changes, conflicts, policy with a fake clock, watermarks, crash safety, tier://.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "stor/store.h"
#include "stor/tiering.h"
#include "io_check.h"
#include "test_util.h"

using namespace stor;
using namespace stor::tiering;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSecond = 1'000'000'000;

std::vector<char> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void put(const std::string& path, const std::vector<char>& data) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::vector<char> as_vec(const std::string& s) { return {s.begin(), s.end()}; }

struct Env {
  stor::test::TempDir dir;
  std::string fast_dir = dir / "fast";
  std::string cold_dir = dir / "cold";
  std::unique_ptr<Store> store;
  std::shared_ptr<Backend> nvme;
  std::atomic<int64_t> now{1'000 * kSecond};

  Env() {
    fs::create_directories(fast_dir);
    fs::create_directories(cold_dir);
    store = Store::create().value();
    nvme = store->backend(Uri::parse("nvme:///").value()).value();
  }

  TierOptions options() {
    TierOptions o;
    o.fast = nvme;
    o.fast_root = "nvme://" + fast_dir;
    o.cold = nvme;
    o.cold_root = "nvme://" + cold_dir;
    o.state_dir = fast_dir + "/.stor-tier";
    o.clock = [this] { return now.load(); };
    o.demote_after_ns = 10 * kSecond;
    o.access_persist_interval_ns = 0;
    return o;
  }

  std::shared_ptr<TieredStore> open(TierOptions o) {
    auto t = TieredStore::open(std::move(o));
    REQUIRE(t.is_ok());
    return *t;
  }
  std::shared_ptr<TieredStore> open() { return open(options()); }
};

std::vector<char> read_whole(TieredStore& t, const std::string& path) {
  auto f = t.open_file(path, {kOpenRead});
  REQUIRE(f.is_ok());
  auto info = (*f)->stat();
  REQUIRE(info.is_ok());
  std::vector<char> out(info->size + 16);
  auto n = (*f)->read(out.data(), out.size(), 0);
  REQUIRE(n.is_ok());
  out.resize(*n);
  REQUIRE((*f)->close().is_ok());
  return out;
}

void write_whole(TieredStore& t, const std::string& path, const std::vector<char>& data) {
  auto f = t.open_file(path, {kOpenWrite | kOpenCreate | kOpenTruncate});
  REQUIRE(f.is_ok());
  REQUIRE((*f)->write(data.data(), data.size(), 0).is_ok());
  REQUIRE((*f)->close().is_ok());
}

Residency residency(TieredStore& t, const std::string& path) {
  auto s = t.status(path);
  REQUIRE(s.is_ok());
  return s->residency;
}

}  // namespace

TEST_CASE("tiering: import lists cold files without reading them; first read fetches, second does not") {
  Env env;
  auto a = stor::test::pattern(300'000, 1);
  auto b = stor::test::pattern(10, 2);
  put(env.cold_dir + "/a.bin", a);
  put(env.cold_dir + "/sub/dir/b.bin", b);
  auto t = env.open();
  auto imported = t->import_listing();
  REQUIRE(imported.is_ok());
  CHECK(*imported == 2);
  CHECK(t->stats().fetches == 0);
  CHECK(!fs::exists(env.fast_dir + "/a.bin"));
  CHECK(residency(*t, "a.bin") == Residency::kUncached);
  CHECK(t->stat("a.bin")->size == a.size());
  CHECK(!t->stat("a.bin")->etag.empty());
  auto root = t->list("");
  REQUIRE(root.is_ok());
  REQUIRE(root->size() == 2);
  CHECK((*root)[0].name == "a.bin");
  CHECK((*root)[0].size == a.size());
  CHECK((*root)[1].name == "sub");
  CHECK((*root)[1].type == FileType::kDirectory);
  CHECK(t->list("sub/dir")->at(0).name == "b.bin");
  CHECK(t->stat("sub")->type == FileType::kDirectory);

  // Opening is free; the first read fetches the whole file to the fast tier.
  auto f = t->open_file("a.bin", {kOpenRead}).value();
  CHECK(t->stats().fetches == 0);
  std::vector<char> buf(1000);
  REQUIRE(f->read(buf.data(), buf.size(), 5000).is_ok());
  CHECK(std::equal(buf.begin(), buf.end(), a.begin() + 5000));
  CHECK(t->stats().fetches == 1);
  REQUIRE(f->close().is_ok());
  CHECK(residency(*t, "a.bin") == Residency::kCached);
  CHECK(slurp(env.fast_dir + "/a.bin") == a);
  CHECK(read_whole(*t, "a.bin") == a);
  CHECK(t->stats().fetches == 1);  // later reads come from the fast tier
  CHECK(read_whole(*t, "sub/dir/b.bin") == b);

  // State survives a reopen.
  t.reset();
  auto t2 = env.open();
  CHECK(residency(*t2, "a.bin") == Residency::kCached);
  CHECK(read_whole(*t2, "a.bin") == a);
  CHECK(t2->stats().fetches == 0);
}

TEST_CASE("tiering: new and changed files are exported by sync; cold-side changes are imported") {
  Env env;
  put(env.cold_dir + "/keep.txt", as_vec("keep v1"));
  put(env.cold_dir + "/gone.txt", as_vec("will be deleted in the bucket"));
  put(env.cold_dir + "/edit.txt", as_vec("edit v1"));
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "edit.txt") == as_vec("edit v1"));

  write_whole(*t, "new/local.txt", as_vec("made locally"));
  CHECK(residency(*t, "new/local.txt") == Residency::kDirty);
  write_whole(*t, "edit.txt", as_vec("edit v2 (local)"));
  CHECK(residency(*t, "edit.txt") == Residency::kDirty);

  // Bucket side: one object changes, one disappears, one appears.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  put(env.cold_dir + "/keep.txt", as_vec("keep v2 from the bucket"));
  fs::remove(env.cold_dir + "/gone.txt");
  put(env.cold_dir + "/arrived.txt", as_vec("new in the bucket"));

  auto report = t->sync();
  REQUIRE(report.is_ok());
  INFO("failed: " << (report->failed.empty() ? "" : report->failed[0]));
  CHECK(report->failed.empty());
  CHECK(report->conflicts.empty());
  CHECK(report->exported == std::vector<std::string>{"edit.txt", "new/local.txt"});
  CHECK(report->imported_changed == std::vector<std::string>{"keep.txt"});
  CHECK(report->deleted_locally == std::vector<std::string>{"gone.txt"});
  CHECK(report->imported_new == std::vector<std::string>{"arrived.txt"});

  CHECK(slurp(env.cold_dir + "/new/local.txt") == as_vec("made locally"));
  CHECK(slurp(env.cold_dir + "/edit.txt") == as_vec("edit v2 (local)"));
  CHECK(residency(*t, "edit.txt") == Residency::kCached);
  CHECK(read_whole(*t, "keep.txt") == as_vec("keep v2 from the bucket"));
  CHECK(read_whole(*t, "arrived.txt") == as_vec("new in the bucket"));
  CHECK(t->status("gone.txt").status().code() == Code::kNotFound);

  // Nothing changed: a second sync does nothing.
  auto again = t->sync();
  REQUIRE(again.is_ok());
  CHECK(again->exported.empty());
  CHECK(again->imported_changed.empty());
  CHECK(again->imported_new.empty());

  // A local delete removes the cold copy too.
  REQUIRE(t->remove("arrived.txt").is_ok());
  CHECK(!fs::exists(env.cold_dir + "/arrived.txt"));
}

TEST_CASE("tiering: conflict rule: bucket keeps the path, local version exported aside") {
  Env env;
  put(env.cold_dir + "/c.txt", as_vec("base"));
  put(env.cold_dir + "/d.txt", as_vec("base d"));
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  write_whole(*t, "c.txt", as_vec("local edit"));
  write_whole(*t, "d.txt", as_vec("local edit d"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  put(env.cold_dir + "/c.txt", as_vec("bucket edit, longer"));
  fs::remove(env.cold_dir + "/d.txt");
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  REQUIRE(report->conflicts.size() == 2);
  CHECK(report->conflicts[0].find("c.txt") == 0);
  CHECK(report->conflicts[1].find("d.txt") == 0);
  CHECK(read_whole(*t, "c.txt") == as_vec("bucket edit, longer"));
  CHECK(read_whole(*t, "c.txt.stor-conflict") == as_vec("local edit"));
  CHECK(slurp(env.cold_dir + "/c.txt.stor-conflict") == as_vec("local edit"));
  CHECK(slurp(env.cold_dir + "/c.txt") == as_vec("bucket edit, longer"));
  CHECK(slurp(env.cold_dir + "/d.txt") == as_vec("local edit d"));  // modification beats deletion
}

TEST_CASE("tiering: an export never overwrites a cold file another client changed after the listing") {
  Env env;
  put(env.cold_dir + "/a.txt", as_vec("base"));
  auto o = env.options();
  std::map<std::string, std::string> competing;
  o.step_hook = [&](const std::string& path, const char* step) {
    auto it = competing.find(path);
    if (std::string(step) != "export-intent" || it == competing.end()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a new mtime: the validator here
    put(env.cold_dir + "/" + path, as_vec(it->second));
    competing.erase(it);
  };
  auto t = env.open(o);
  REQUIRE(t->import_listing().is_ok());
  write_whole(*t, "a.txt", as_vec("local a"));
  write_whole(*t, "b.txt", as_vec("local b"));
  competing = {{"a.txt", "their a, longer"}, {"b.txt", "their b"}};
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  REQUIRE(report->conflicts.size() == 2);
  CHECK(slurp(env.cold_dir + "/a.txt") == as_vec("their a, longer"));
  CHECK(slurp(env.cold_dir + "/b.txt") == as_vec("their b"));
  CHECK(slurp(env.cold_dir + "/a.txt.stor-conflict") == as_vec("local a"));
  CHECK(slurp(env.cold_dir + "/b.txt.stor-conflict") == as_vec("local b"));
  CHECK(read_whole(*t, "a.txt") == as_vec("their a, longer"));
  // Demotion of a dirty file meets the same check.
  write_whole(*t, "c.txt", as_vec("local c"));
  competing = {{"c.txt", "their c"}};
  CHECK(t->demote("c.txt").code() == Code::kAborted);
  CHECK(slurp(env.cold_dir + "/c.txt") == as_vec("their c"));
  CHECK(residency(*t, "c.txt") == Residency::kDirty);
}

TEST_CASE("tiering: policy demotes files not read for demote_after, a read promotes them") {
  Env env;
  auto t = env.open();
  auto hot = stor::test::pattern(50'000, 3), cold = stor::test::pattern(70'000, 4);
  write_whole(*t, "hot.bin", hot);
  write_whole(*t, "cold.bin", cold);
  env.now += 6 * kSecond;
  CHECK(read_whole(*t, "hot.bin") == hot);  // hot read at +6 s
  env.now += 5 * kSecond;                   // +11 s: cold.bin idle 11 s, hot.bin 5 s
  auto report = t->run_policy();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(report->demoted == std::vector<std::string>{"cold.bin"});
  CHECK(residency(*t, "cold.bin") == Residency::kDemoted);
  CHECK(residency(*t, "hot.bin") == Residency::kDirty);
  CHECK(!fs::exists(env.fast_dir + "/cold.bin"));  // fast-tier blocks released
  CHECK(slurp(env.cold_dir + "/cold.bin") == cold);
  CHECK(t->stats().fast_bytes == hot.size());

  // A read brings it back.
  CHECK(read_whole(*t, "cold.bin") == cold);
  CHECK(residency(*t, "cold.bin") == Residency::kCached);
  CHECK(fs::exists(env.fast_dir + "/cold.bin"));
  // Cached files are demoted without another copy (the cold copy is still valid).
  env.now += 20 * kSecond;
  auto second = t->run_policy();
  REQUIRE(second.is_ok());
  CHECK(second->demoted.size() == 2);
  CHECK(residency(*t, "cold.bin") == Residency::kDemoted);
  CHECK(residency(*t, "hot.bin") == Residency::kDemoted);
  CHECK(t->stats().fast_bytes == 0);
  // Open files are never moved.
  REQUIRE(t->promote("hot.bin").is_ok());
  env.now += 20 * kSecond;
  auto f = t->open_file("hot.bin", {kOpenRead}).value();
  env.now += 20 * kSecond;
  auto busy = t->run_policy();
  REQUIRE(busy.is_ok());
  CHECK(busy->demoted.empty());
  REQUIRE(f->close().is_ok());
  CHECK(read_whole(*t, "hot.bin") == hot);
}

TEST_CASE("tiering: capacity watermark demotes least recently read files") {
  Env env;
  auto o = env.options();
  o.demote_after_ns = 1000 * kSecond;
  o.high_watermark_bytes = 35'000;
  o.low_watermark_bytes = 20'000;
  auto t = env.open(o);
  for (int i = 0; i < 4; ++i) {
    write_whole(*t, "f" + std::to_string(i), stor::test::pattern(10'000, 10 + i));
    env.now += kSecond;
  }
  read_whole(*t, "f0");  // f0 becomes the most recently used
  auto report = t->run_policy();
  REQUIRE(report.is_ok());
  CHECK(report->demoted == std::vector<std::string>{"f1", "f2"});
  CHECK(t->stats().fast_bytes == 20'000);
  CHECK(read_whole(*t, "f1") == stor::test::pattern(10'000, 11));
}

TEST_CASE("tiering: a demotion that fails verification or meets a changed cold copy keeps the fast copy") {
  Env env;
  put(env.cold_dir + "/x.bin", as_vec("bucket v1"));
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  write_whole(*t, "x.bin", as_vec("local v2"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  put(env.cold_dir + "/x.bin", as_vec("bucket v3 changed meanwhile"));
  Status s = t->demote("x.bin");
  CHECK(s.code() == Code::kAborted);
  CHECK(residency(*t, "x.bin") == Residency::kDirty);
  CHECK(read_whole(*t, "x.bin") == as_vec("local v2"));
  CHECK(slurp(env.cold_dir + "/x.bin") == as_vec("bucket v3 changed meanwhile"));
  CHECK(t->status("nope").status().code() == Code::kNotFound);
  CHECK(t->open_file("../etc/passwd", {kOpenRead}).status().code() == Code::kInvalidArgument);
  CHECK(t->open_file(".stor-tier/journal", {kOpenRead}).status().code() == Code::kInvalidArgument);
}

namespace {

// Runs `child` in a forked process that is SIGKILLed (by itself, via the demote hook, or by the
// parent after `kill_after`). No Store may be alive in the parent while forking.
void run_and_kill(const std::function<void()>& child, std::chrono::milliseconds kill_after) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    child();
    ::_exit(0);
  }
  if (kill_after.count() > 0) {
    std::this_thread::sleep_for(kill_after);
    ::kill(pid, SIGKILL);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
}

}  // namespace

TEST_CASE("tiering: SIGKILL at every step of a demotion loses nothing") {
  for (const char* step : {"copied", "verified", "switched", "released"}) {
    DYNAMIC_SECTION("killed after " << step) {
      stor::test::TempDir dir;
      const std::string fast = dir / "fast", cold = dir / "cold";
      fs::create_directories(fast);
      fs::create_directories(cold);
      const auto data = stor::test::pattern(200'000, 42);
      auto options = [&](std::shared_ptr<Backend> nvme) {
        TierOptions o;
        o.fast = nvme;
        o.fast_root = "nvme://" + fast;
        o.cold = nvme;
        o.cold_root = "nvme://" + cold;
        o.state_dir = fast + "/.stor-tier";
        return o;
      };
      run_and_kill(
          [&] {
            auto store = Store::create().value();
            auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
            auto o = options(nvme);
            o.step_hook = [&](const std::string&, const char* s) {
              if (std::string(s) == step) ::kill(::getpid(), SIGKILL);
            };
            auto t = TieredStore::open(o).value();
            auto f = t->open_file("d/x.bin", {kOpenWrite | kOpenCreate}).value();
            (void)f->write(data.data(), data.size(), 0);
            (void)f->sync(false);
            (void)f->close();
            (void)t->demote("d/x.bin");
          },
          std::chrono::milliseconds(0));
      auto store = Store::create().value();
      auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
      auto t = TieredStore::open(options(nvme));
      REQUIRE(t.is_ok());
      const auto st = (*t)->status("d/x.bin");
      REQUIRE(st.is_ok());
      const bool switched = std::string(step) == "switched" || std::string(step) == "released";
      CHECK(st->residency == (switched ? Residency::kDemoted : Residency::kDirty));
      if (switched) CHECK(!fs::exists(fast + "/d/x.bin"));  // recovery finished the release
      CHECK(read_whole(**t, "d/x.bin") == data);
      // And the move can be completed afterwards.
      REQUIRE((*t)->demote("d/x.bin").is_ok());
      CHECK(read_whole(**t, "d/x.bin") == data);
    }
  }
}

TEST_CASE("tiering: SIGKILL at a random moment during a run of demotions loses nothing") {
  stor::test::TempDir dir;
  const std::string fast = dir / "fast", cold = dir / "cold";
  fs::create_directories(fast);
  fs::create_directories(cold);
  constexpr int kFiles = 40;
  auto content = [](int i) { return stor::test::pattern(64'000 + i * 1000, 100 + i); };
  auto options = [&](std::shared_ptr<Backend> nvme) {
    TierOptions o;
    o.fast = nvme;
    o.fast_root = "nvme://" + fast;
    o.cold = nvme;
    o.cold_root = "nvme://" + cold;
    o.state_dir = fast + "/.stor-tier";
    o.demote_after_ns = 0;
    return o;
  };
  {
    auto store = Store::create().value();
    auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
    auto t = TieredStore::open(options(nvme)).value();
    for (int i = 0; i < kFiles; ++i) write_whole(*t, "f" + std::to_string(i), content(i));
  }
  for (int round = 0; round < 3; ++round) {
    run_and_kill(
        [&] {
          auto store = Store::create().value();
          auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
          auto t = TieredStore::open(options(nvme)).value();
          for (;;) {  // demote everything, promote everything, forever: the kill lands anywhere
            (void)t->run_policy();
            for (int i = 0; i < kFiles; ++i) (void)t->promote("f" + std::to_string(i));
          }
        },
        std::chrono::milliseconds(40 + 35 * round));
    auto store = Store::create().value();
    auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
    auto t = TieredStore::open(options(nvme));
    REQUIRE(t.is_ok());
    for (int i = 0; i < kFiles; ++i) {
      INFO("round " << round << " file f" << i);
      CHECK(read_whole(**t, "f" + std::to_string(i)) == content(i));
    }
  }
}

TEST_CASE("tiering: tier:// URIs through a Store after create_link") {
  stor::test::TempDir dir;
  const std::string fast = dir / "ns", cold = dir / "bucket";
  fs::create_directories(fast);
  put(cold + "/data/one.txt", as_vec("one"));
  put(cold + "/two.txt", as_vec("two!"));
  auto store = Store::create().value();
  auto tier = store->backend(Uri::parse("tier:///").value());
  REQUIRE(tier.is_ok());
  auto linked = create_link(**tier, fast, "nvme://" + cold);
  REQUIRE(linked.is_ok());
  CHECK(linked->imported == 2);
  auto f = store->open("tier://" + fast + "/data/one.txt");
  REQUIRE(f.is_ok());
  char buf[16] = {};
  CHECK(f->read(buf, sizeof buf, 0).value() == 3);
  CHECK(std::string(buf, 3) == "one");
  REQUIRE(f->close().is_ok());
  auto w = store->open("tier://" + fast + "/data/three.txt", kOpenWrite | kOpenCreate);
  REQUIRE(w.is_ok());
  REQUIRE(w->write("three", 5, 0).is_ok());
  REQUIRE(w->close().is_ok());
  auto entries = store->list("tier://" + fast + "/data");
  REQUIRE(entries.is_ok());
  CHECK(entries->size() == 2);
  std::string rel;
  auto ns = namespace_of(**tier, fast + "/data/three.txt", &rel);
  REQUIRE(ns.is_ok());
  CHECK(rel == "data/three.txt");
  CHECK((*ns)->status(rel)->residency == Residency::kDirty);
  REQUIRE((*ns)->sync().is_ok());
  CHECK(slurp(cold + "/data/three.txt") == as_vec("three"));
  // Linking again to the same root only re-imports; to another root is refused.
  CHECK(create_link(**tier, fast, "nvme://" + cold)->imported == 0);
  CHECK(create_link(**tier, fast, "nvme:///elsewhere").status().code() == Code::kAlreadyExists);
  CHECK(store->open("tier://" + dir.path() + "/unlinked/x").status().code() == Code::kNotFound);
  CHECK(store->mkdir("tier://" + fast + "/newdir").code() == Code::kUnsupported);
  // Appends would bypass the journal's written ranges: refused, the file untouched.
  CHECK(store->open("tier://" + fast + "/data/three.txt", kOpenWrite | kOpenAppend).status().code() ==
        Code::kUnsupported);
  CHECK(slurp(cold + "/data/three.txt") == as_vec("three"));
}

TEST_CASE("tiering: create_link that fails leaves no link, and a retry in the same process succeeds") {
  stor::test::TempDir dir;
  const std::string fast = dir / "ns", cold = dir / "bucket";
  fs::create_directories(fast);
  put(cold + "/one.txt", as_vec("one"));
  put(dir / "file", as_vec("x"));
  auto store = Store::create().value();
  auto tier = store->backend(Uri::parse("tier:///").value());
  REQUIRE(tier.is_ok());
  CHECK(create_link(**tier, fast, "bogus://x").status().code() == Code::kNotFound);
  CHECK(!create_link(**tier, fast, "nvme://" + cold, "bogus://y").is_ok());
  CHECK(!create_link(**tier, fast, "nvme://" + dir / "file").is_ok());  // cold root cannot be listed
  CHECK(!fs::exists(fast + "/.stor-tier"));
  CHECK(store->open("tier://" + fast + "/one.txt").status().code() == Code::kNotFound);
  // The failed attempts released the state (no Busy) and left nothing cached in the backend.
  auto linked = create_link(**tier, fast, "nvme://" + cold);
  REQUIRE(linked.is_ok());
  CHECK(linked->imported == 1);
  auto f = store->open("tier://" + fast + "/one.txt");
  REQUIRE(f.is_ok());
  char buf[4] = {};
  CHECK(f->read(buf, sizeof buf, 0).value() == 3);
  REQUIRE(f->close().is_ok());
}

TEST_CASE("tiering: auto_export uploads a file when its last writer closes") {
  Env env;
  auto o = env.options();
  o.auto_export = true;
  auto t = env.open(o);
  auto f = t->open_file("auto.txt", {kOpenWrite | kOpenCreate}).value();
  auto g = t->open_file("auto.txt", {kOpenWrite}).value();
  REQUIRE(f->write("first", 5, 0).is_ok());
  REQUIRE(f->close().is_ok());
  CHECK(!fs::exists(env.cold_dir + "/auto.txt"));  // another writer still has it open
  REQUIRE(g->write("FIRST", 5, 0).is_ok());
  REQUIRE(g->close().is_ok());
  CHECK(slurp(env.cold_dir + "/auto.txt") == as_vec("FIRST"));
  CHECK(residency(*t, "auto.txt") == Residency::kCached);
}

TEST_CASE("tiering: journal replay after many updates, torn tail ignored") {
  Env env;
  {
    auto t = env.open();
    for (int i = 0; i < 50; ++i) write_whole(*t, "j/" + std::to_string(i), as_vec(std::to_string(i)));
    for (int i = 0; i < 50; i += 2) REQUIRE(t->remove("j/" + std::to_string(i)).is_ok());
  }
  {
    // A crash in the middle of an append leaves a partial line.
    std::ofstream j(env.fast_dir + "/.stor-tier/journal", std::ios::app);
    j << "deadbeef P\tj/half";
  }
  auto t = env.open();
  CHECK(t->status_all("j").size() == 25);
  CHECK(read_whole(*t, "j/7") == as_vec("7"));
  CHECK(t->status("j/8").status().code() == Code::kNotFound);
  // A damaged checkpoint is reported, not silently dropped.
  t.reset();
  {
    std::ofstream c(env.fast_dir + "/.stor-tier/checkpoint", std::ios::app);
    c << "garbage line\nmore\n";
  }
  CHECK(TieredStore::open(env.options()).status().code() == Code::kCorruption);
}

TEST_CASE("tiering: two instances share one namespace's state") {
  Env env;
  put(env.cold_dir + "/old.bin", stor::test::pattern(5000, 3));
  auto a = env.open();
  REQUIRE(a->import_listing().is_ok());
  auto b_open = TieredStore::open(env.options());  // was Busy: one owner at a time
  REQUIRE(b_open.is_ok());
  auto b = *b_open;
  // What one instance does, the other sees without reopening (it re-reads the journal).
  write_whole(*a, "new.txt", as_vec("from a"));
  CHECK(residency(*b, "new.txt") == Residency::kDirty);
  CHECK(read_whole(*b, "new.txt") == as_vec("from a"));
  CHECK(read_whole(*b, "old.bin") == stor::test::pattern(5000, 3));  // b fetched it
  CHECK(residency(*a, "old.bin") == Residency::kCached);
  CHECK(a->stats().fetches == 0);
  CHECK(read_whole(*a, "old.bin") == stor::test::pattern(5000, 3));
  CHECK(a->stats().fetches == 0);  // not fetched twice
  // A handle open in one instance holds off the other's demotion, export, removal and rename.
  auto held = b->open_file("new.txt", {kOpenRead});
  REQUIRE(held.is_ok());
  CHECK(a->demote("new.txt").code() == Code::kBusy);
  CHECK(a->remove("new.txt").code() == Code::kBusy);
  CHECK(a->rename("new.txt", "moved.txt").code() == Code::kBusy);
  auto report = a->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.size() == 1);  // new.txt: open elsewhere, left for a later sync
  CHECK(!fs::exists(env.cold_dir + "/new.txt"));
  REQUIRE((*held)->close().is_ok());
  report = a->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(slurp(env.cold_dir + "/new.txt") == as_vec("from a"));
  CHECK(residency(*b, "new.txt") == Residency::kCached);
  // A demotion by one is a demotion for the other; its next read fetches once.
  REQUIRE(a->demote("old.bin").is_ok());
  CHECK(residency(*b, "old.bin") == Residency::kDemoted);
  CHECK(read_whole(*b, "old.bin") == stor::test::pattern(5000, 3));
  CHECK(residency(*a, "old.bin") == Residency::kCached);
  // Removal and rename, both ways.
  REQUIRE(b->rename("new.txt", "moved.txt").is_ok());
  CHECK(a->status("new.txt").status().code() == Code::kNotFound);
  CHECK(read_whole(*a, "moved.txt") == as_vec("from a"));
  REQUIRE(a->remove("moved.txt").is_ok());
  CHECK(b->stat("moved.txt").status().code() == Code::kNotFound);
  // Compaction by one (sync ends with one) makes the other reload, not lose or replay wrongly.
  write_whole(*b, "after.txt", as_vec("after compaction"));
  REQUIRE(a->sync().is_ok());
  CHECK(residency(*b, "after.txt") == Residency::kCached);
  CHECK(b->status_all("").size() == 2);
  // A torn line left by a process that died mid-append is cut by the next append, not kept
  // in front of it as damage.
  {
    std::ofstream j(env.fast_dir + "/.stor-tier/journal", std::ios::app | std::ios::binary);
    j << "0badf00d P\tto";
  }
  write_whole(*a, "after2.txt", as_vec("x"));
  CHECK(read_whole(*b, "after2.txt") == as_vec("x"));
  a.reset();
  b.reset();
  auto c = env.open();
  CHECK(c->status_all("").size() == 3);
}

TEST_CASE("tiering: forked processes read, write, demote and export one namespace at once") {
  stor::test::TempDir dir;
  const std::string fast = dir / "fast", cold = dir / "cold";
  fs::create_directories(fast);
  fs::create_directories(cold);
  constexpr int kShared = 12, kWriters = 2, kOwn = 3, kVersions = 15;
  auto shared_content = [](int i) { return stor::test::pattern(40'000 + i * 777, 500 + i); };
  auto own_content = [](int w, int k, int v) { return stor::test::pattern(9'000 + k * 100 + v, 10'000 + w * 1000 + k * 100 + v); };
  auto own_name = [](int w, int k) { return "w" + std::to_string(w) + "/f" + std::to_string(k); };
  auto options = [&](std::shared_ptr<Backend> nvme) {
    TierOptions o;
    o.fast = nvme;
    o.fast_root = "nvme://" + fast;
    o.cold = nvme;
    o.cold_root = "nvme://" + cold;
    o.state_dir = fast + "/.stor-tier";
    o.demote_after_ns = 0;
    o.revalidate_after_ns = INT64_MAX;
    return o;
  };
  {
    auto store = Store::create().value();
    auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
    auto t = TieredStore::open(options(nvme)).value();
    for (int i = 0; i < kShared; ++i) write_whole(*t, "s" + std::to_string(i), shared_content(i));
    REQUIRE(t->sync().is_ok());
  }
  // Children: 2 writers (own files, rewritten kVersions times), 2 readers of the shared files
  // (each read checks every byte), 1 demoter/promoter of the shared files, 1 syncer. A child
  // exits 1 on a wrong byte or an unexpected error, 2 when the state could not be opened.
  enum Role { kWriter, kReader, kDemoter, kSyncer };
  std::vector<std::pair<Role, int>> roles = {{kWriter, 0}, {kWriter, 1}, {kReader, 0}, {kReader, 1}, {kDemoter, 0}, {kSyncer, 0}};
  std::vector<pid_t> pids;
  for (auto [role, id] : roles) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int rc = 0;
      {
        auto store = Store::create().value();
        auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
        auto opened = TieredStore::open(options(nvme));
        if (!opened.is_ok()) ::_exit(2);
        auto t = *opened;
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
        uint64_t rng = 0x9e3779b97f4a7c15ull * (role * 10 + id + 1);
        auto next = [&] { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; };
        if (role == kWriter) {
          for (int v = 0; v < kVersions && rc == 0; ++v)
            for (int k = 0; k < kOwn && rc == 0; ++k) {
              auto f = t->open_file(own_name(id, k), {kOpenWrite | kOpenCreate | kOpenTruncate});
              if (!f.is_ok()) { rc = 1; break; }
              auto data = own_content(id, k, v);
              // In two halves with a pause: a syncer that exported the file now (it is open)
              // would leave half of it as the bucket's copy.
              const size_t half = data.size() / 2;
              if (!(*f)->write(data.data(), half, 0).is_ok()) rc = 1;
              std::this_thread::sleep_for(std::chrono::milliseconds(3));
              if (!(*f)->write(data.data() + half, data.size() - half, half).is_ok()) rc = 1;
              if (!(*f)->close().is_ok()) rc = 1;
            }
        } else {
          while (std::chrono::steady_clock::now() < until && rc == 0) {
            const int i = static_cast<int>(next() % kShared);
            const std::string name = "s" + std::to_string(i);
            if (role == kReader) {
              auto f = t->open_file(name, {kOpenRead});
              if (!f.is_ok()) { rc = 1; break; }
              auto want = shared_content(i);
              std::vector<char> got(want.size() + 1);
              auto n = (*f)->read(got.data(), got.size(), 0);
              got.resize(n.is_ok() ? *n : 0);
              if (!n.is_ok() || got != want) rc = 1;
              if (!(*f)->close().is_ok()) rc = 1;
            } else if (role == kDemoter) {
              Status s = (next() & 1) ? t->demote(name) : t->promote(name);
              if (!s.is_ok() && s.code() != Code::kBusy) rc = 1;
            } else {
              auto r = t->sync();
              if (!r.is_ok() || !r->conflicts.empty()) rc = 1;
            }
          }
        }
      }
      ::_exit(rc);
    }
    pids.push_back(pid);
  }
  for (size_t c = 0; c < pids.size(); ++c) {
    int status = 0;
    REQUIRE(::waitpid(pids[c], &status, 0) == pids[c]);
    INFO("child " << c << " (role " << roles[c].first << ")");
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  auto store = Store::create().value();
  auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
  auto t = TieredStore::open(options(nvme)).value();
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->conflicts.empty());
  CHECK(report->failed.empty());
  CHECK(t->status_all("").size() == kShared + kWriters * kOwn);
  for (int i = 0; i < kShared; ++i) CHECK(read_whole(*t, "s" + std::to_string(i)) == shared_content(i));
  for (int w = 0; w < kWriters; ++w)
    for (int k = 0; k < kOwn; ++k) {
      INFO(own_name(w, k));
      CHECK(read_whole(*t, own_name(w, k)) == own_content(w, k, kVersions - 1));
      // The syncer never exported a file while it was being written: the bucket has the last version.
      CHECK(slurp(cold + "/" + own_name(w, k)) == own_content(w, k, kVersions - 1));
    }
  std::error_code ec;
  CHECK(!fs::exists(cold + "/s0.stor-conflict", ec));
}

TEST_CASE("tiering: the background policy demotes idle files and drains an over-full fast tier") {
  Env env;
  auto o = env.options();
  o.policy_interval_ns = 20'000'000;  // 20 ms
  o.high_watermark_bytes = 25'000;
  o.low_watermark_bytes = 10'000;
  auto t = env.open(o);
  auto wait_for = [](const std::function<bool()>& cond) {
    for (int i = 0; i < 300 && !cond(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return cond();
  };
  write_whole(*t, "a", stor::test::pattern(10'000, 1));
  env.now += kSecond;
  write_whole(*t, "b", stor::test::pattern(10'000, 2));
  CHECK(residency(*t, "a") == Residency::kDirty);  // under the watermark, not idle yet
  env.now += kSecond;
  write_whole(*t, "c", stor::test::pattern(10'000, 3));  // 30,000 > 25,000: drain to 10,000
  CHECK(wait_for([&] { return t->stats().fast_bytes <= 10'000; }));
  CHECK(residency(*t, "a") == Residency::kDemoted);
  CHECK(residency(*t, "b") == Residency::kDemoted);
  CHECK(residency(*t, "c") == Residency::kDirty);
  env.now += 60 * kSecond;  // c is now idle past demote_after
  CHECK(wait_for([&] { return t->stats().fast_bytes == 0; }));
  CHECK(read_whole(*t, "b") == stor::test::pattern(10'000, 2));
}

TEST_CASE("tiering: a cached copy cut short by a crash is fetched again") {
  Env env;
  const auto data = stor::test::pattern(100'000, 77);
  put(env.cold_dir + "/c.bin", data);
  {
    auto o = env.options();
    o.durable_fetch = false;
    auto t = env.open(o);
    REQUIRE(t->import_listing().is_ok());
    CHECK(read_whole(*t, "c.bin") == data);
    CHECK(residency(*t, "c.bin") == Residency::kCached);
  }
  fs::resize_file(env.fast_dir + "/c.bin", 4096);  // what delayed allocation can leave after a power cut
  auto t = env.open();
  CHECK(residency(*t, "c.bin") == Residency::kUncached);
  CHECK(read_whole(*t, "c.bin") == data);
  CHECK(t->stats().fetches == 1);
}

TEST_CASE("tiering: an object replaced after the listing is read in its new version by the next open") {
  Env env;
  put(env.cold_dir + "/r.txt", as_vec("version one"));
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  auto old = t->open_file("r.txt", {kOpenRead}).value();
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  put(env.cold_dir + "/r.txt", as_vec("version two, longer"));
  // One version per handle: the handle opened on version one never serves version two.
  std::vector<char> buf(11);
  auto n = old->read(buf.data(), buf.size(), 0);
  REQUIRE(!n.is_ok());
  CHECK(n.status().code() == Code::kAborted);
  CHECK(old->stat()->size == 11);
  REQUIRE(old->close().is_ok());
  CHECK(read_whole(*t, "r.txt") == as_vec("version two, longer"));
  CHECK(t->status("r.txt")->size == 19);
  put(env.cold_dir + "/gone.txt", as_vec("x"));
  REQUIRE(t->import_listing().is_ok());
  fs::remove(env.cold_dir + "/gone.txt");
  auto f = t->open_file("gone.txt", {kOpenRead}).value();
  char c;
  auto r = f->read(&c, 1, 0);
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message().find("run sync") != std::string::npos);
}

TEST_CASE("tiering: many threads read and write one tier handle at once", "[concurrency]") {
  Env env;
  auto t = env.open();
  auto f = t->open_file("shared.bin", {kOpenRead | kOpenWrite | kOpenCreate});
  REQUIRE(f.is_ok());
  CHECK(stor::test::hammer_one_handle(**f, 100000, 4, 4) == 0);
  REQUIRE((*f)->close().is_ok());
}
