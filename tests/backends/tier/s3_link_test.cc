// S3 link against s3rver: nvme fast tier, s3express:// bucket as the cold tier. Request counts
// come from the S3 client's own counter (every HTTP request it sends, retries included).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include "backends/s3express/s3_backend.h"
#include "s3_test_support.h"
#include "stor/store.h"
#include "stor/tiering.h"

using namespace stor;
using namespace stor::tiering;
using namespace stor::s3::test;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSecond = 1'000'000'000;

struct LinkEnv {
  explicit LinkEnv(const std::string& endpoint, const std::string& stem) {
    StoreOptions so;
    so.settings = s3rver_settings(endpoint);
    so.settings["s3.session"] = "off";  // s3rver has no CreateSession: keep the counts exact
    so.settings["s3.part_size"] = "1M";
    store = Store::create(so).value();
    nvme = store->backend(Uri::parse("nvme:///").value()).value();
    cold = store->backend(Uri::parse("s3express://b/x").value()).value();
    client = s3::s3_client_of(*cold);
    REQUIRE(client);
    uploader = make_client(endpoint, {{"s3.session", "off"}});
    REQUIRE(uploader);
    bucket = unique_bucket(stem);
    REQUIRE(uploader->create_bucket(bucket).is_ok());
    fs::create_directories(fast_dir);
  }

  TierOptions options(const std::string& prefix = "data") {
    TierOptions o;
    o.fast = nvme;
    o.fast_root = "nvme://" + fast_dir;
    o.cold = cold;
    o.cold_root = "s3express://" + bucket + "/" + prefix;
    o.state_dir = fast_dir + "/.stor-tier";
    o.clock = [this] { return now.load(); };
    o.demote_after_ns = 60 * kSecond;
    return o;
  }
  std::shared_ptr<TieredStore> open(const std::string& prefix = "data") {
    auto t = TieredStore::open(options(prefix));
    REQUIRE(t.is_ok());
    return *t;
  }
  void put(const std::string& key, const std::string& body) {
    REQUIRE(uploader->put_object(bucket, key, body.data(), body.size()).is_ok());
  }
  uint64_t requests() const { return client->stats().requests; }

  stor::test::TempDir dir;
  std::string fast_dir = dir / "fast";
  std::unique_ptr<Store> store;
  std::shared_ptr<Backend> nvme, cold;
  s3::S3Client* client = nullptr;
  std::unique_ptr<s3::S3Client> uploader;
  std::string bucket;
  std::atomic<int64_t> now{1000 * kSecond};
};

std::string body_of(int i, size_t n = 100) {
  auto p = stor::test::pattern(n, 1000 + i);
  return std::string(p.begin(), p.end());
}

std::string read_whole(TieredStore& t, const std::string& path) {
  auto f = t.open_file(path, {kOpenRead});
  REQUIRE(f.is_ok());
  const uint64_t size = (*f)->stat()->size;
  std::string out(size, '\0');
  auto n = (*f)->read(out.data(), out.size(), 0);
  REQUIRE(n.is_ok());
  out.resize(*n);
  REQUIRE((*f)->close().is_ok());
  return out;
}

void write_whole(TieredStore& t, const std::string& path, const std::string& data) {
  auto f = t.open_file(path, {kOpenWrite | kOpenCreate | kOpenTruncate});
  REQUIRE(f.is_ok());
  REQUIRE((*f)->write(data.data(), data.size(), 0).is_ok());
  REQUIRE((*f)->close().is_ok());
}

// A file shaped like parquet: data, then a footer of footer_len bytes, its length, "PAR1".
std::string fake_parquet(size_t data_len, uint32_t footer_len, uint64_t seed) {
  auto p = stor::test::pattern(data_len + footer_len, seed);
  std::string out(p.begin(), p.end());
  for (int i = 0; i < 4; ++i) out += static_cast<char>((footer_len >> (8 * i)) & 0xFF);
  return out + "PAR1";
}

}  // namespace

TEST_CASE("s3 link: 1000 objects appear as files after one listing request, no GETs") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "link1000");
  constexpr int kObjects = 1000;
  {
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        auto c = make_client(server.endpoint(), {{"s3.session", "off"}});
        for (int i = t; i < kObjects; i += 8) {
          const std::string key = "data/d" + std::to_string(i % 10) + "/obj" + std::to_string(i);
          const std::string body = body_of(i, 50 + i);
          if (!c->put_object(env.bucket, key, body.data(), body.size()).is_ok()) ++failures;
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(failures == 0);
  }
  env.put("elsewhere/not-linked", "outside the prefix");
  auto t = env.open();
  const uint64_t before = env.requests();
  auto imported = t->import_listing();
  REQUIRE(imported.is_ok());
  CHECK(*imported == kObjects);
  CHECK(env.requests() - before == 1);  // one ListObjectsV2 page, no HEAD, no GET
  auto all = t->status_all("");
  REQUIRE(all.size() == kObjects);
  for (const auto& s : all) {
    CHECK(s.residency == Residency::kUncached);
    CHECK(!s.cold_etag.empty());
  }
  CHECK(t->status("d3/obj13")->size == 63);
  auto root = t->list("");
  REQUIRE(root.is_ok());
  CHECK(root->size() == 10);
  CHECK(t->list("d7")->size() == 100);
  CHECK(t->stat("d7/obj997")->size == 50 + 997);
  CHECK(env.requests() - before == 1);  // listing and stat are served from the records
  CHECK(t->stats().fetches == 0);
}

TEST_CASE("s3 link: first read fetches with ranged GETs, the second read makes no request") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkread");
  const std::string small = body_of(1, 200'000);
  const std::string large = body_of(2, 3'500'000);  // 4 parts of s3.part_size=1M
  env.put("data/small.bin", small);
  env.put("data/large.bin", large);
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());

  uint64_t before = env.requests();
  CHECK(read_whole(*t, "small.bin") == small);
  CHECK(env.requests() - before == 1);
  before = env.requests();
  CHECK(read_whole(*t, "large.bin") == large);
  CHECK(env.requests() - before == 4);  // ranged GETs, in parallel
  before = env.requests();
  CHECK(read_whole(*t, "small.bin") == small);
  CHECK(read_whole(*t, "large.bin") == large);
  CHECK(env.requests() - before == 0);
  CHECK(t->status("large.bin")->residency == Residency::kCached);

  // A later run (new process state, same fast tier) reads from the cache too: its first open
  // revalidates the copy with one HEAD (nothing is known to be fresh after a restart), no GET.
  t.reset();
  auto again = env.open();
  before = env.requests();
  CHECK(read_whole(*again, "large.bin") == large);
  CHECK(env.requests() - before == 1);
  CHECK(read_whole(*again, "large.bin") == large);
  CHECK(env.requests() - before == 1);
}

TEST_CASE("s3 link: export round trip (single and multipart), demotion into the bucket") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkexport");
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  const std::string small = "hello bucket";
  const std::string large = body_of(3, 2'600'000);  // > part_size: multipart upload
  write_whole(*t, "out/small.txt", small);
  write_whole(*t, "out/large.bin", large);
  CHECK(t->status("out/large.bin")->residency == Residency::kDirty);
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(report->exported.size() == 2);
  CHECK(env.uploader->get_object(env.bucket, "data/out/small.txt").value() == small);
  CHECK(env.uploader->get_object(env.bucket, "data/out/large.bin").value() == large);
  CHECK(t->status("out/large.bin")->residency == Residency::kCached);

  // Policy: idle files go to the bucket; the exported ones need no upload.
  write_whole(*t, "out/dirty.bin", body_of(4, 300'000));
  env.now += 120 * kSecond;
  auto policy = t->run_policy();
  REQUIRE(policy.is_ok());
  CHECK(policy->failed.empty());
  CHECK(policy->demoted.size() == 3);
  CHECK(!fs::exists(env.fast_dir + "/out/large.bin"));
  CHECK(env.uploader->get_object(env.bucket, "data/out/dirty.bin").value() == body_of(4, 300'000));
  const uint64_t before = env.requests();
  CHECK(read_whole(*t, "out/large.bin") == large);  // promoted on read
  CHECK(env.requests() - before == 3);
  CHECK(t->status("out/large.bin")->residency == Residency::kCached);
}

TEST_CASE("s3 link: bucket-side changes, deletions and new objects are imported by sync") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkimport");
  env.put("data/a.txt", "a v1");
  env.put("data/b.txt", "b v1");
  env.put("data/c.txt", "c v1");
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "a.txt") == "a v1");
  write_whole(*t, "c.txt", "c local");
  env.put("data/a.txt", "a v2 from another client");
  REQUIRE(env.uploader->delete_object(env.bucket, "data/b.txt").is_ok());
  env.put("data/new.txt", "brand new");
  env.put("data/c.txt", "c v2 in the bucket");
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(report->imported_changed == std::vector<std::string>{"a.txt"});
  CHECK(report->deleted_locally == std::vector<std::string>{"b.txt"});
  CHECK(report->imported_new == std::vector<std::string>{"new.txt"});
  REQUIRE(report->conflicts.size() == 1);
  CHECK(report->conflicts[0].find("c.txt (changed in the bucket and locally") == 0);
  CHECK(read_whole(*t, "a.txt") == "a v2 from another client");
  CHECK(read_whole(*t, "new.txt") == "brand new");
  CHECK(read_whole(*t, "c.txt") == "c v2 in the bucket");
  CHECK(read_whole(*t, "c.txt.stor-conflict") == "c local");
  CHECK(env.uploader->get_object(env.bucket, "data/c.txt.stor-conflict").value() == "c local");
  CHECK(t->stat("b.txt").status().code() == Code::kNotFound);
}

// One version per handle: a handle opened on a cold file serves that version (size and bytes)
// or fails; it never serves the new object's bytes cut at the old size. The failed read
// revalidates the record, so the next open sees the new version.
TEST_CASE("s3 link: an object replaced under an open handle fails its reads; a new open sees the new version") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkstale");
  const std::string v1 = body_of(10, 1000), v2 = body_of(11, 5000);  // bigger, different bytes
  env.put("data/s.bin", v1);
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());

  auto f = t->open_file("s.bin", {kOpenRead}).value();
  REQUIRE(f->stat()->size == 1000);
  env.put("data/s.bin", v2);  // another client replaces the object
  const uint64_t before = env.requests();
  std::string buf(1000, '\0');
  auto n = f->read(buf.data(), buf.size(), 0);
  REQUIRE(!n.is_ok());  // s3 keeps no old version to serve: the read must fail, not mix versions
  CHECK(n.status().code() == Code::kAborted);
  CHECK(n.status().message().find("no longer holds the version this handle opened") != std::string::npos);
  CHECK(env.requests() - before == 2);  // GET refused (ETag differs), HEAD to revalidate
  CHECK(f->stat()->size == 1000);       // stable for the life of the handle
  CHECK(t->status("s.bin")->size == 5000);  // the record adopted the new version

  // A fresh open sees the new version and fetches it; the old handle still refuses to serve it
  // although the fast tier now holds it.
  CHECK(read_whole(*t, "s.bin") == v2);
  CHECK(env.requests() - before == 3);
  n = f->read(buf.data(), buf.size(), 0);
  REQUIRE(!n.is_ok());
  CHECK(n.status().code() == Code::kAborted);
  CHECK(f->stat()->size == 1000);
  REQUIRE(f->close().is_ok());
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->imported_changed.empty());  // already adopted

  // Same for a demoted file; after sync a new open reads the new version.
  const std::string d1 = body_of(12, 3000), d2 = body_of(13, 9000);
  write_whole(*t, "d.bin", d1);
  REQUIRE(t->sync().is_ok());
  REQUIRE(t->demote("d.bin").is_ok());
  REQUIRE(t->status("d.bin")->residency == Residency::kDemoted);
  auto g = t->open_file("d.bin", {kOpenRead}).value();
  CHECK(g->stat()->size == 3000);
  env.put("data/d.bin", d2);
  std::string dbuf(3000, '\0');
  auto m = g->read(dbuf.data(), dbuf.size(), 0);
  if (m.is_ok()) CHECK(dbuf.substr(0, *m) == d1);  // old bytes, or ...
  else CHECK(m.status().code() == Code::kAborted);  // ... a clear error; never d2's bytes
  CHECK(g->stat()->size == 3000);
  REQUIRE(g->close().is_ok());
  REQUIRE(t->sync().is_ok());
  CHECK(read_whole(*t, "d.bin") == d2);
  CHECK(t->stat("d.bin")->size == 9000);
}

std::vector<std::string> bucket_keys(LinkEnv& env, const std::string& prefix) {
  auto page = env.uploader->list_all(env.bucket, prefix, "");
  REQUIRE(page.is_ok());
  std::vector<std::string> keys;
  for (const auto& o : page->objects) keys.push_back(o.key);
  return keys;
}

TEST_CASE("s3 link: exporting a nested file creates only its object, no directory markers") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linknomarkers");
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  write_whole(*t, "d1/d2/f", "nested");
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(bucket_keys(env, "") == std::vector<std::string>{"data/d1/d2/f"});
  // Demotion uploads the same way.
  write_whole(*t, "e1/e2/g", "demoted");
  REQUIRE(t->demote("e1/e2/g").is_ok());
  CHECK(bucket_keys(env, "") == std::vector<std::string>{"data/d1/d2/f", "data/e1/e2/g"});
  // An empty directory has no key of its own, so nothing is exported for it (tier:// has no
  // mkdir; one made directly in the linked directory is not part of the namespace).
  fs::create_directories(env.fast_dir + "/empty/sub");
  auto empty = t->sync();
  REQUIRE(empty.is_ok());
  CHECK(empty->exported.empty());
  CHECK(empty->failed.empty());
  CHECK(bucket_keys(env, "") == std::vector<std::string>{"data/d1/d2/f", "data/e1/e2/g"});
  CHECK(t->stat("empty").status().code() == Code::kNotFound);

  // Without markers the namespace still imports and lists: a second link of the prefix, and the
  // bucket seen through s3express://.
  t.reset();
  fs::remove_all(env.fast_dir);
  fs::create_directories(env.fast_dir);
  auto again = env.open();
  CHECK(again->import_listing().value() == 2);
  auto root = again->list("");
  REQUIRE(root.is_ok());
  REQUIRE(root->size() == 2);
  CHECK(((*root)[0].name == "d1" && (*root)[0].type == FileType::kDirectory));
  auto d2 = again->list("d1/d2");
  REQUIRE(d2.is_ok());
  REQUIRE(d2->size() == 1);
  CHECK((*d2)[0].name == "f");
  CHECK(read_whole(*again, "d1/d2/f") == "nested");
  auto listed = env.cold->list(Uri::parse("s3express://" + env.bucket + "/data/d1").value());
  REQUIRE(listed.is_ok());
  REQUIRE(listed->size() == 1);
  CHECK(((*listed)[0].name == "d2" && (*listed)[0].type == FileType::kDirectory));
}

TEST_CASE("s3 link: with dir_markers on, exports also write DIR/ marker objects; import ignores them") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkmarkers");
  {
    // Through tier:// with the setting (TierOptions::cold_dir_markers underneath).
    StoreOptions so;
    so.settings = s3rver_settings(server.endpoint());
    so.settings["s3.session"] = "off";
    so.settings["tier.dir_markers"] = "1";
    auto store = Store::create(so).value();
    auto tier = store->backend(Uri::parse("tier:///").value()).value();
    auto link = create_link(*tier, env.fast_dir, "s3express://" + env.bucket + "/data");
    REQUIRE(link.is_ok());
    write_whole(*link->store, "d1/d2/f", "nested");
    REQUIRE(link->store->sync().is_ok());
  }
  CHECK(bucket_keys(env, "") == std::vector<std::string>{"data/d1/", "data/d1/d2/", "data/d1/d2/f"});
  fs::remove_all(env.fast_dir);
  fs::create_directories(env.fast_dir);
  auto again = env.open();
  CHECK(again->import_listing().value() == 1);
  CHECK(again->status_all("").size() == 1);
}

TEST_CASE("s3 link: parquet footers are prefetched with one ranged GET and cached") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkparquet");
  const std::string small_footer = fake_parquet(500'000, 3'000, 5);
  const std::string big_footer = fake_parquet(300'000, 150'000, 6);  // footer beyond the 64 KiB tail
  env.put("data/t/small.parquet", small_footer);
  env.put("data/t/big.parquet", big_footer);
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());

  uint64_t before = env.requests();
  auto f = t->open_file("t/small.parquet", {kOpenRead});
  REQUIRE(f.is_ok());
  CHECK(env.requests() - before == 1);
  // A reader's footer access: length, then the footer itself.
  char tail[8];
  REQUIRE((*f)->read(tail, 8, small_footer.size() - 8).value() == 8);
  CHECK(std::memcmp(tail + 4, "PAR1", 4) == 0);
  std::string footer(3'000, '\0');
  REQUIRE((*f)->read(footer.data(), footer.size(), small_footer.size() - 8 - 3'000).value() == 3'000);
  CHECK(footer == small_footer.substr(small_footer.size() - 8 - 3'000, 3'000));
  CHECK(env.requests() - before == 1);
  REQUIRE((*f)->close().is_ok());
  // Repeated opens: no request at all.
  for (int i = 0; i < 3; ++i) {
    auto g = t->open_file("t/small.parquet", {kOpenRead});
    REQUIRE(g.is_ok());
    REQUIRE((*g)->read(tail, 8, small_footer.size() - 8).is_ok());
    REQUIRE((*g)->close().is_ok());
  }
  CHECK(env.requests() - before == 1);
  CHECK(t->stats().footer_prefetches == 1);

  before = env.requests();
  auto big = t->open_file("t/big.parquet", {kOpenRead});
  REQUIRE(big.is_ok());
  CHECK(env.requests() - before == 2);  // the tail, then the rest of the long footer
  std::string big_footer_bytes(150'000, '\0');
  REQUIRE((*big)->read(big_footer_bytes.data(), big_footer_bytes.size(), 300'000).value() == 150'000);
  CHECK(big_footer_bytes == big_footer.substr(300'000, 150'000));
  CHECK(env.requests() - before == 2);
  // Reading the data pages fetches the file; from then on it is local.
  std::string head(1000, '\0');
  REQUIRE((*big)->read(head.data(), head.size(), 0).value() == 1000);
  CHECK(head == big_footer.substr(0, 1000));
  CHECK(env.requests() - before == 3);
  REQUIRE((*big)->close().is_ok());
  CHECK(t->status("t/big.parquet")->residency == Residency::kCached);
}

TEST_CASE("s3 link: a parquet file replaced after the listing opens in its new version") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkparquetstale");
  env.put("data/p.parquet", fake_parquet(100'000, 2'000, 7));
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  const std::string old_etag = t->status("p.parquet")->cold_etag;
  const std::string v2 = fake_parquet(200'000, 4'000, 8);
  env.put("data/p.parquet", v2);
  // A ranged GET for the old version is refused even by a server that ignores If-Match (s3rver
  // does): the response's ETag names the version served.
  char probe[16];
  auto stale = env.client->get_range(env.bucket, "data/p.parquet", 1000, sizeof probe, probe, old_etag);
  CHECK(stale.status().code() == Code::kAborted);
  // The footer GET at open is refused (If-Match); nothing is pinned yet, so the open adopts the
  // new version and its footer, size and data agree.
  auto f = t->open_file("p.parquet", {kOpenRead});
  REQUIRE(f.is_ok());
  CHECK((*f)->stat()->size == v2.size());
  std::string footer(4'008, '\0');
  REQUIRE((*f)->read(footer.data(), footer.size(), v2.size() - 4'008).value() == 4'008);
  CHECK(footer == v2.substr(v2.size() - 4'008));
  std::string head(1000, '\0');
  REQUIRE((*f)->read(head.data(), head.size(), 0).value() == 1000);
  CHECK(head == v2.substr(0, 1000));
  REQUIRE((*f)->close().is_ok());
}

TEST_CASE("s3 link: linking to a missing bucket fails and leaves no link; the existing bucket then links") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "link-missing");
  env.put("data/a.bin", body_of(1));
  auto tier = env.store->backend(Uri::parse("tier:///").value());
  REQUIRE(tier.is_ok());
  auto bad = create_link(**tier, env.fast_dir, "s3express://" + env.bucket + "-nope/data");
  CHECK(bad.status().code() == Code::kNotFound);
  CHECK(!fs::exists(env.fast_dir + "/.stor-tier"));
  auto good = create_link(**tier, env.fast_dir, "s3express://" + env.bucket + "/data");
  REQUIRE(good.is_ok());
  CHECK(good->imported == 1);
}

namespace {

// A store of its own (what a separate process would build) with the link's settings.
std::unique_ptr<Store> link_store(const std::string& endpoint) {
  StoreOptions so;
  so.settings = s3rver_settings(endpoint);
  so.settings["s3.session"] = "off";
  so.settings["s3.part_size"] = "1M";
  return Store::create(so).value();
}

TierOptions link_options(Store& store, const std::string& fast_dir, const std::string& cold_root) {
  TierOptions o;
  o.fast = store.backend(Uri::parse("nvme:///").value()).value();
  o.fast_root = "nvme://" + fast_dir;
  o.cold = store.backend(Uri::parse("s3express://b/x").value()).value();
  o.cold_root = cold_root;
  o.state_dir = fast_dir + "/.stor-tier";
  return o;
}

// Sizes of the crash test's files: small ones and one multipart upload (1 MiB parts).
const std::vector<size_t> kCrashSizes = {100, 7'000, 1'500'000, 1, 40'000};

// In a forked child (no Store alive in the parent while forking): writes the files and exports
// them with sync(), SIGKILLing itself when `step` happens for the (nth+1)-th time.
void export_and_die(const std::string& endpoint, const std::string& fast_dir, const std::string& cold_root,
                    const std::string& step, int nth) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto store = link_store(endpoint);
    auto o = link_options(*store, fast_dir, cold_root);
    int seen = 0;
    o.step_hook = [&](const std::string&, const char* s) {
      if (step == s && seen++ == nth) ::kill(::getpid(), SIGKILL);
    };
    auto t = TieredStore::open(o);
    if (!t.is_ok()) ::_exit(2);
    for (size_t i = 0; i < kCrashSizes.size(); ++i) {
      const std::string body = body_of(static_cast<int>(i), kCrashSizes[i]);
      auto f = (*t)->open_file("f" + std::to_string(i), {kOpenWrite | kOpenCreate | kOpenTruncate});
      if (!f.is_ok() || !(*f)->write(body.data(), body.size(), 0).is_ok() || !(*f)->close().is_ok()) ::_exit(3);
    }
    (void)(*t)->sync();
    ::_exit(0);  // the step never came: no destructors in a forked child
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  INFO("child status " << status);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

}  // namespace

// Issue 15 item 3: kill -9 during a multi-file export, then sync again. An upload that reached
// the bucket before the record took its ETag used to come back as a conflict (X.stor-conflict
// beside X, one object too many); the export intent lets the next sync recognise it by checksum.
TEST_CASE("s3 link: SIGKILL at any step of a multi-file export; the next sync neither duplicates nor conflicts") {
  REQUIRE_S3RVER();
  auto uploader = make_client(server.endpoint(), {{"s3.session", "off"}});
  REQUIRE(uploader);
  const std::string bucket = unique_bucket("linkcrash");
  REQUIRE(uploader->create_bucket(bucket).is_ok());
  int round = 0;
  for (const char* step : {"export-intent", "uploaded", "exported"}) {
    for (int nth : {0, 2, 4}) {
      INFO("killed at " << step << " of file " << nth);
      stor::test::TempDir dir;
      const std::string fast_dir = dir / "fast";
      const std::string prefix = "r" + std::to_string(round++);
      const std::string cold_root = "s3express://" + bucket + "/" + prefix;
      fs::create_directories(fast_dir);
      export_and_die(server.endpoint(), fast_dir, cold_root, step, nth);
      auto listed = uploader->list_all(bucket, prefix + "/", "");
      REQUIRE(listed.is_ok());
      // The kill came where it was meant to: uploads of the earlier files (and at "uploaded" or
      // later, this one's) are in the bucket; the rest are not.
      CHECK(listed->objects.size() == static_cast<size_t>(nth) + (std::string(step) == "export-intent" ? 0 : 1));

      auto store = link_store(server.endpoint());
      auto t = TieredStore::open(link_options(*store, fast_dir, cold_root)).value();
      auto report = t->sync();
      REQUIRE(report.is_ok());
      CHECK(report->conflicts.empty());
      CHECK(report->failed.empty());
      CHECK(report->imported_new.empty());
      CHECK(report->imported_changed.empty());
      listed = uploader->list_all(bucket, prefix + "/", "");
      REQUIRE(listed.is_ok());
      CHECK(listed->objects.size() == kCrashSizes.size());  // one object per file, no .stor-conflict
      for (size_t i = 0; i < kCrashSizes.size(); ++i) {
        const std::string name = "f" + std::to_string(i), body = body_of(static_cast<int>(i), kCrashSizes[i]);
        CHECK(uploader->get_object(bucket, prefix + "/" + name).value() == body);
        CHECK(t->status(name)->residency == Residency::kCached);
        CHECK(read_whole(*t, name) == body);
      }
      auto again = t->sync();
      REQUIRE(again.is_ok());
      CHECK(again->exported.empty());
      CHECK(again->conflicts.empty());
    }
  }
}

// The intent is checked by content, not taken on trust: after a kill before the upload, an object
// written by another client at that path is still a conflict; after a kill once our upload is in
// the bucket, a local change made before the next sync is exported over it without a conflict.
TEST_CASE("s3 link: an export intent recognises only its own bytes") {
  REQUIRE_S3RVER();
  auto uploader = make_client(server.endpoint(), {{"s3.session", "off"}});
  REQUIRE(uploader);
  const std::string bucket = unique_bucket("linkintent");
  REQUIRE(uploader->create_bucket(bucket).is_ok());
  SECTION("another client's object of the same size is a conflict") {
    stor::test::TempDir dir;
    const std::string fast_dir = dir / "fast", cold_root = "s3express://" + bucket + "/a";
    fs::create_directories(fast_dir);
    export_and_die(server.endpoint(), fast_dir, cold_root, "export-intent", 0);
    const std::string other = body_of(99, kCrashSizes[0]);  // same size, other bytes
    REQUIRE(uploader->put_object(bucket, "a/f0", other.data(), other.size()).is_ok());
    auto store = link_store(server.endpoint());
    auto t = TieredStore::open(link_options(*store, fast_dir, cold_root)).value();
    auto report = t->sync();
    REQUIRE(report.is_ok());
    REQUIRE(report->conflicts.size() == 1);
    CHECK(report->conflicts[0].find("f0 (changed in the bucket and locally") == 0);
    CHECK(read_whole(*t, "f0") == other);
    CHECK(read_whole(*t, "f0.stor-conflict") == body_of(0, kCrashSizes[0]));
  }
  SECTION("our completed upload, then a local change: exported, no conflict") {
    stor::test::TempDir dir;
    const std::string fast_dir = dir / "fast", cold_root = "s3express://" + bucket + "/b";
    fs::create_directories(fast_dir);
    export_and_die(server.endpoint(), fast_dir, cold_root, "uploaded", 1);
    CHECK(uploader->get_object(bucket, "b/f1").value() == body_of(1, kCrashSizes[1]));
    auto store = link_store(server.endpoint());
    auto t = TieredStore::open(link_options(*store, fast_dir, cold_root)).value();
    write_whole(*t, "f1", "changed after the crash");
    auto report = t->sync();
    REQUIRE(report.is_ok());
    CHECK(report->conflicts.empty());
    CHECK(report->failed.empty());
    CHECK(uploader->get_object(bucket, "b/f1").value() == "changed after the crash");
    CHECK(t->status("f1")->residency == Residency::kCached);
    CHECK(uploader->list_all(bucket, "b/", "")->objects.size() == kCrashSizes.size());
  }
}

// Issue 15 item 1: a cached file is revalidated on open once its version was last confirmed
// longer ago than revalidate_after (one HEAD), so another client's overwrite (same size too) or
// delete reaches the next open without a sync.
TEST_CASE("s3 link: revalidation on open sees bucket overwrites and deletes after the staleness bound") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkreval");
  const std::string v1 = body_of(20, 5000), v2 = body_of(21, 5000);  // same size, other bytes
  env.put("data/same.bin", v1);
  env.put("data/gone.bin", "to be deleted");
  auto o = env.options();
  o.revalidate_after_ns = 30 * kSecond;
  auto t = TieredStore::open(o).value();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "same.bin") == v1);
  CHECK(read_whole(*t, "gone.bin") == "to be deleted");
  env.put("data/same.bin", v2);
  REQUIRE(env.uploader->delete_object(env.bucket, "data/gone.bin").is_ok());

  // Within the bound: the cached copies are served without a request (the documented staleness).
  uint64_t before = env.requests();
  CHECK(read_whole(*t, "same.bin") == v1);
  CHECK(read_whole(*t, "gone.bin") == "to be deleted");
  CHECK(env.requests() - before == 0);

  env.now += 31 * kSecond;
  before = env.requests();
  CHECK(read_whole(*t, "same.bin") == v2);  // HEAD: new ETag, then the GET of the new version
  CHECK(env.requests() - before == 2);
  CHECK(t->status("same.bin")->residency == Residency::kCached);
  auto gone = t->open_file("gone.bin", {kOpenRead});
  REQUIRE(!gone.is_ok());
  CHECK(gone.status().code() == Code::kNotFound);
  CHECK(t->status("gone.bin").status().code() == Code::kNotFound);  // the record went
  CHECK(!fs::exists(env.fast_dir + "/gone.bin"));
  CHECK(env.requests() - before == 3);
  // Just confirmed: the next open inside the bound makes no request.
  before = env.requests();
  CHECK(read_whole(*t, "same.bin") == v2);
  CHECK(env.requests() - before == 0);
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->imported_changed.empty());
  CHECK(report->deleted_locally.empty());
}

TEST_CASE("s3 link: revalidate_after 0 checks every open; tier.revalidate_after sets it for tier://") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkreval0");
  env.put("data/f.bin", "version one");
  StoreOptions so;
  so.settings = s3rver_settings(server.endpoint());
  so.settings["s3.session"] = "off";
  so.settings["tier.revalidate_after"] = "0";
  auto store = Store::create(so).value();
  auto tier = store->backend(Uri::parse("tier:///").value()).value();
  auto link = create_link(*tier, env.fast_dir, "s3express://" + env.bucket + "/data");
  REQUIRE(link.is_ok());
  auto& t = *link->store;
  CHECK(read_whole(t, "f.bin") == "version one");
  CHECK(read_whole(t, "f.bin") == "version one");
  env.put("data/f.bin", "version two");  // the very next open sees it
  CHECK(read_whole(t, "f.bin") == "version two");
  env.put("data/f.bin", "version 3!!");  // same size
  CHECK(read_whole(t, "f.bin") == "version 3!!");
  REQUIRE(env.uploader->delete_object(env.bucket, "data/f.bin").is_ok());
  CHECK(t.open_file("f.bin", {kOpenRead}).status().code() == Code::kNotFound);
  // A handle open on the cached copy keeps reading it; nothing is swapped under it.
  env.put("data/h.bin", "held v1");
  REQUIRE(t.sync().is_ok());
  CHECK(read_whole(t, "h.bin") == "held v1");
  auto held = t.open_file("h.bin", {kOpenRead}).value();
  env.put("data/h.bin", "held v2");
  std::string buf(7, '\0');
  CHECK(held->read(buf.data(), buf.size(), 0).value() == 7);
  CHECK(buf == "held v1");
  REQUIRE(held->close().is_ok());
  CHECK(read_whole(t, "h.bin") == "held v2");
}

namespace {

// Polls `done` every 20 ms for up to 10 s.
bool eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace

// Issue 15 items "automatic export" and "interval importer": with sync_interval set, a background
// sync exports closed local writes and imports new, changed and deleted objects; nobody calls sync().
TEST_CASE("s3 link: sync_interval exports and imports in the background") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkinterval");
  env.put("data/changed.bin", "bucket v1");
  env.put("data/deleted.bin", "to be deleted");
  auto o = env.options();
  o.sync_interval_ns = kSecond / 5;
  o.revalidate_after_ns = 3600 * kSecond;  // what is seen here is the importer's doing, not revalidation
  auto t = TieredStore::open(o).value();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "changed.bin") == "bucket v1");

  write_whole(*t, "local.bin", "written here");
  env.put("data/new.bin", "new in the bucket");
  env.put("data/changed.bin", "bucket v2");
  REQUIRE(env.uploader->delete_object(env.bucket, "data/deleted.bin").is_ok());
  CHECK(eventually([&] {
    auto got = env.uploader->get_object(env.bucket, "data/local.bin");
    return got.is_ok() && *got == "written here";
  }));
  CHECK(eventually([&] { return t->stat("new.bin").is_ok(); }));
  CHECK(eventually([&] { return t->stat("deleted.bin").status().code() == Code::kNotFound; }));
  CHECK(eventually([&] { return t->status("changed.bin")->residency == Residency::kUncached; }));
  CHECK(read_whole(*t, "changed.bin") == "bucket v2");
  CHECK(read_whole(*t, "new.bin") == "new in the bucket");
  CHECK(eventually([&] { return t->status("local.bin")->residency == Residency::kCached; }));
}

// Issue 15 item 5: rename on tier://. An exported file moves in the bucket (server-side copy +
// delete), a dirty one locally (its stale object is deleted, the new name exported by sync).
TEST_CASE("s3 link: rename of exported, cached, uncached and dirty files; directories are Unsupported") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkrename");
  env.put("data/cold.bin", "only in the bucket");
  env.put("data/d/x", "in a directory");
  auto t = env.open();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "d/x") == "in a directory");  // cached
  write_whole(*t, "exp.txt", "exported then changed");
  REQUIRE(t->sync().is_ok());
  write_whole(*t, "new.txt", "never exported");
  write_whole(*t, "exp.txt", "exported, changed locally");  // dirty with an older object

  REQUIRE(t->rename("cold.bin", "moved/cold.bin").is_ok());
  REQUIRE(t->rename("d/x", "y").is_ok());
  REQUIRE(t->rename("new.txt", "sub/new.txt").is_ok());
  REQUIRE(t->rename("exp.txt", "exp2.txt").is_ok());
  CHECK(t->stat("cold.bin").status().code() == Code::kNotFound);
  CHECK(t->stat("d").status().code() == Code::kNotFound);
  CHECK(t->status("moved/cold.bin")->residency == Residency::kUncached);
  CHECK(t->status("y")->residency == Residency::kCached);
  CHECK(read_whole(*t, "moved/cold.bin") == "only in the bucket");
  CHECK(read_whole(*t, "y") == "in a directory");
  CHECK(read_whole(*t, "sub/new.txt") == "never exported");
  CHECK(read_whole(*t, "exp2.txt") == "exported, changed locally");
  CHECK(bucket_keys(env, "") == std::vector<std::string>{"data/moved/cold.bin", "data/y"});
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->conflicts.empty());
  CHECK(report->failed.empty());
  CHECK(report->imported_new.empty());
  CHECK(report->deleted_locally.empty());
  CHECK(bucket_keys(env, "") ==
        std::vector<std::string>{"data/exp2.txt", "data/moved/cold.bin", "data/sub/new.txt", "data/y"});
  CHECK(env.uploader->get_object(env.bucket, "data/exp2.txt").value() == "exported, changed locally");

  write_whole(*t, "dir/a", "a");
  CHECK(t->rename("dir", "dir2").code() == Code::kUnsupported);
  CHECK(t->rename("y", "dir/a").code() == Code::kAlreadyExists);
  CHECK(t->rename("nope", "z").code() == Code::kNotFound);
  auto held = t->open_file("y", {kOpenRead}).value();
  CHECK(t->rename("y", "z").code() == Code::kBusy);
  REQUIRE(held->close().is_ok());

  // Through the tier:// backend (was Unsupported).
  t.reset();
  auto store = link_store(server.endpoint());
  auto tier = store->backend(Uri::parse("tier:///").value()).value();
  auto link = create_link(*tier, env.fast_dir, "s3express://" + env.bucket + "/data");
  REQUIRE(link.is_ok());
  REQUIRE(tier->rename(Uri::parse("tier://" + env.fast_dir + "/y").value(), Uri::parse("tier://" + env.fast_dir + "/z").value()).is_ok());
  CHECK(read_whole(*link->store, "z") == "in a directory");
  CHECK(env.uploader->get_object(env.bucket, "data/z").value() == "in a directory");
}

TEST_CASE("s3 link: SIGKILL at every step of a rename; the next open finishes it") {
  REQUIRE_S3RVER();
  auto uploader = make_client(server.endpoint(), {{"s3.session", "off"}});
  REQUIRE(uploader);
  const std::string bucket = unique_bucket("linkrenamecrash");
  REQUIRE(uploader->create_bucket(bucket).is_ok());
  int round = 0;
  for (const char* step : {"rename-intent", "rename-cold", "rename-fast"}) {
    for (bool dirty : {false, true}) {
      INFO("killed at " << step << (dirty ? " (dirty)" : " (cached)"));
      stor::test::TempDir dir;
      const std::string fast_dir = dir / "fast", prefix = "r" + std::to_string(round++);
      const std::string cold_root = "s3express://" + bucket + "/" + prefix;
      fs::create_directories(fast_dir);
      const std::string body = body_of(round, 20'000), local = body_of(round + 100, 9'000);
      pid_t pid = ::fork();
      REQUIRE(pid >= 0);
      if (pid == 0) {
        auto store = link_store(server.endpoint());
        auto o = link_options(*store, fast_dir, cold_root);
        o.step_hook = [&](const std::string&, const char* s) {
          if (std::string(s) == step) ::kill(::getpid(), SIGKILL);
        };
        auto t = TieredStore::open(o).value();
        auto f = t->open_file("a/f", {kOpenWrite | kOpenCreate}).value();
        (void)f->write(body.data(), body.size(), 0);
        (void)f->close();
        (void)t->sync();
        if (dirty) {
          auto g = t->open_file("a/f", {kOpenWrite | kOpenTruncate}).value();
          (void)g->write(local.data(), local.size(), 0);
          (void)g->close();
        }
        (void)t->rename("a/f", "b/g");
        ::_exit(0);
      }
      int status = 0;
      REQUIRE(::waitpid(pid, &status, 0) == pid);
      REQUIRE(WIFSIGNALED(status));
      auto store = link_store(server.endpoint());
      auto t = TieredStore::open(link_options(*store, fast_dir, cold_root)).value();
      CHECK(t->stat("a/f").status().code() == Code::kNotFound);
      CHECK(read_whole(*t, "b/g") == (dirty ? local : body));
      auto report = t->sync();
      REQUIRE(report.is_ok());
      CHECK(report->conflicts.empty());
      CHECK(report->failed.empty());
      auto listed = uploader->list_all(bucket, prefix + "/", "");
      REQUIRE(listed.is_ok());
      REQUIRE(listed->objects.size() == 1);
      CHECK(listed->objects[0].key == prefix + "/b/g");
      CHECK(uploader->get_object(bucket, prefix + "/b/g").value() == (dirty ? local : body));
      CHECK(!fs::exists(fast_dir + "/a/f"));
    }
  }
}

TEST_CASE("s3 link: an export never overwrites an object another client changed after the listing") {
  REQUIRE_S3RVER();
  LinkEnv env(server.endpoint(), "linkcond");
  env.put("data/a.txt", "base");
  auto o = env.options();
  // Another client writes the object between sync's listing and the upload (after the intent).
  std::map<std::string, std::string> competing;
  o.step_hook = [&](const std::string& path, const char* step) {
    auto it = competing.find(path);
    if (std::string(step) != "export-intent" || it == competing.end()) return;
    env.put("data/" + path, it->second);
    competing.erase(it);
  };
  auto t = TieredStore::open(o).value();
  REQUIRE(t->import_listing().is_ok());
  write_whole(*t, "a.txt", "local edit of a");  // replaces the version "base" (If-Match its ETag)
  write_whole(*t, "b.txt", "new local b");       // a new object (If-None-Match: *)
  competing = {{"a.txt", "their a"}, {"b.txt", "their b"}};
  auto report = t->sync();
  REQUIRE(report.is_ok());
  CHECK(report->failed.empty());
  CHECK(competing.empty());
  INFO("conflicts: " << report->conflicts.size());
  if (on_rgw()) {
    // RGW checks both conditions on PutObject: the uploads are refused and become conflicts in
    // the same sync; the other client's bytes keep the paths, ours sit beside them.
    REQUIRE(report->conflicts.size() == 2);
    CHECK(env.uploader->get_object(env.bucket, "data/a.txt").value() == "their a");
    CHECK(env.uploader->get_object(env.bucket, "data/b.txt").value() == "their b");
    CHECK(env.uploader->get_object(env.bucket, "data/a.txt.stor-conflict").value() == "local edit of a");
    CHECK(env.uploader->get_object(env.bucket, "data/b.txt.stor-conflict").value() == "new local b");
    CHECK(read_whole(*t, "a.txt") == "their a");
    CHECK(read_whole(*t, "b.txt.stor-conflict") == "new local b");
    CHECK(t->status("a.txt.stor-conflict")->residency == Residency::kCached);
    // Settled: the next sync has nothing to do.
    auto again = t->sync();
    REQUIRE(again.is_ok());
    CHECK(again->exported.empty());
    CHECK(again->conflicts.empty());
    // The same through an export outside sync (auto-export at close): refused, reported, kept.
    write_whole(*t, "a.txt", "second local edit");
    env.put("data/a.txt", "their second a");
    auto o2 = env.options();
    t.reset();
    o2.auto_export = true;
    auto t2 = TieredStore::open(o2).value();
    auto f = t2->open_file("a.txt", {kOpenWrite}).value();
    REQUIRE(f->write("third local edit!", 17, 0).is_ok());
    Status closed = f->close();
    CHECK(closed.code() == Code::kAborted);
    CHECK(closed.message().find("Run sync") != std::string::npos);
    CHECK(env.uploader->get_object(env.bucket, "data/a.txt").value() == "their second a");
    report = t2->sync();
    REQUIRE(report.is_ok());
    CHECK(report->conflicts.size() == 1);
    CHECK(env.uploader->get_object(env.bucket, "data/a.txt.stor-conflict-2").value() == "third local edit!");
  } else {
    // s3rver ignores conditional headers on writes (tests/backends/s3express: "conditional
    // PutObject"): the uploads replace the other client's objects. Said here so a server that
    // starts to check them shows up.
    CHECK(report->conflicts.empty());
    CHECK(env.uploader->get_object(env.bucket, "data/a.txt").value() == "local edit of a");
    WARN("s3rver ignores If-Match / If-None-Match on PutObject: the conditional export is tested on RGW");
  }
}

namespace {

// Polls `done` every 5 ms for up to 10 s; the time it took in ms, or -1.
double wait_ms(const std::function<bool()>& done) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    if (done()) return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1;
}

}  // namespace

TEST_CASE("s3 link: bucket notifications (RGW topics) bring new, changed and deleted objects in at once") {
  REQUIRE_S3RVER();
  if (!on_rgw()) {
    WARN("s3rver has no bucket notifications: this case runs against RGW (tiering_s3_link_test.rgw)");
    return;
  }
  LinkEnv env(server.endpoint(), "linknotify");
  env.put("data/old.txt", "version one");
  auto o = env.options();
  o.notify_listen = "127.0.0.1:0";
  o.revalidate_after_ns = INT64_MAX;  // opens never check: only the notifications bring changes
  auto t = TieredStore::open(o).value();
  REQUIRE(t->import_listing().is_ok());
  CHECK(read_whole(*t, "old.txt") == "version one");
  REQUIRE(t->notify_endpoint().rfind("http://127.0.0.1:", 0) == 0);
  auto arn = env.uploader->create_topic("stor-" + env.bucket, t->notify_endpoint());
  REQUIRE(arn.is_ok());
  REQUIRE(env.uploader->put_bucket_notification(env.bucket, "stor-link", *arn, "data/").is_ok());

  env.put("data/new.txt", "a new object");
  const double created = wait_ms([&] { return t->status("new.txt").is_ok(); });
  CHECK(created >= 0);
  CHECK(read_whole(*t, "new.txt") == "a new object");
  const std::string old_etag = t->stat("old.txt")->etag;
  env.put("data/old.txt", "version two");  // same size
  const double changed = wait_ms([&] { return t->stat("old.txt")->etag != old_etag; });
  CHECK(changed >= 0);
  CHECK(read_whole(*t, "old.txt") == "version two");
  REQUIRE(env.uploader->delete_object(env.bucket, "data/new.txt").is_ok());
  const double deleted = wait_ms([&] { return t->status("new.txt").status().code() == Code::kNotFound; });
  CHECK(deleted >= 0);
  // Our own export's event names the version the record already has: nothing changes.
  write_whole(*t, "mine.txt", "written here");
  auto report = t->sync();
  REQUIRE(report.is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(t->status("mine.txt")->residency == Residency::kCached);
  // Keys outside the linked prefix are not imported.
  env.put("elsewhere/x.txt", "not ours");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(t->status_all("").size() == 2);
  WARN("notification delays on RGW: created " << created << " ms, overwritten " << changed << " ms, deleted "
                                               << deleted << " ms (no sync, no revalidation)");
}

namespace {

// The AWS CLI as the "other S3 client" of the consistency table (docs/tiering.md). Debian's
// /usr/bin/aws by absolute path (a pyenv `aws` on PATH may shadow it); credentials only through the
// environment, the user's config and credential files hidden so nothing local leaks in.
struct AwsCli {
  static constexpr const char* kPath = "/usr/bin/aws";
  AwsCli(const std::string& endpoint, const std::string& bucket) : bucket(bucket) {
    auto s = s3rver_settings(endpoint);
    prefix = "env AWS_ACCESS_KEY_ID=" + s["s3.access_key"] + " AWS_SECRET_ACCESS_KEY=" + s["s3.secret_key"] +
             " AWS_DEFAULT_REGION=" + s["s3.region"] +
             " AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true"
             " AWS_PAGER= " + kPath + " --endpoint-url " + endpoint + " ";
  }
  // Uploads `body` (from stdin) to key; true when the CLI exits 0.
  bool put(const std::string& key, const std::string& body) const {
    FILE* p = ::popen((prefix + "s3 cp --only-show-errors - s3://" + bucket + "/" + key).c_str(), "w");
    if (p == nullptr) return false;
    std::fwrite(body.data(), 1, body.size(), p);
    return ::pclose(p) == 0;
  }
  bool rm(const std::string& key) const { return run("s3 rm --only-show-errors s3://" + bucket + "/" + key).first; }
  // The object's bytes, or nullopt when the CLI fails (no such key).
  std::optional<std::string> get(const std::string& key) const {
    auto [ok, out] = run("s3 cp --only-show-errors s3://" + bucket + "/" + key + " - 2>/dev/null");
    if (!ok) return std::nullopt;
    return out;
  }
  // The keys under `under`, in listing order.
  std::vector<std::string> keys(const std::string& under) const {
    auto [ok, out] = run("s3api list-objects-v2 --bucket " + bucket + " --prefix " + under +
                         " --query 'Contents[].Key' --output text");
    REQUIRE(ok);
    std::vector<std::string> found;
    std::istringstream in(out);
    for (std::string k; in >> k;)
      if (k != "None") found.push_back(k);
    return found;
  }
  std::pair<bool, std::string> run(const std::string& args) const {
    FILE* p = ::popen((prefix + args).c_str(), "r");
    if (p == nullptr) return {false, ""};
    std::string out;
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
    return {::pclose(p) == 0, out};
  }
  std::string bucket, prefix;
};

}  // namespace

// Issue 15 "Consistency rule": every row of the S3 link's table in docs/tiering.md, with the AWS
// CLI making the bucket-side change and reading back the link-side one.
TEST_CASE("s3 link: the consistency table, row by row, with the AWS CLI as the other client") {
  REQUIRE_S3RVER();
  if (::access(AwsCli::kPath, X_OK) != 0) {
    WARN("skipping: " << AwsCli::kPath << " is missing (Debian package awscli, scripts/extra-packages.txt)");
    return;
  }
  LinkEnv env(server.endpoint(), "linkaws");
  const AwsCli aws(server.endpoint(), env.bucket);
  for (const char* k : {"over.bin", "del.bin", "cold.bin", "s.bin"}) env.put(std::string("data/") + k, "v1 " + std::string(k));
  env.put("zero/z.bin", "zero v1");
  env.put("zero/held.bin", "held v1");

  // `t`: R = 30 s, no auto-export. `t0`: R = 0 with auto-export, its own prefix and fast tier.
  auto o = env.options();
  o.revalidate_after_ns = 30 * kSecond;
  auto t = TieredStore::open(o).value();
  REQUIRE(t->import_listing().is_ok());
  auto o0 = env.options("zero");
  o0.fast_root = "nvme://" + env.fast_dir + "0";
  o0.state_dir = env.fast_dir + "0/.stor-tier";
  o0.revalidate_after_ns = 0;
  o0.auto_export = true;
  fs::create_directories(env.fast_dir + "0");
  auto t0 = TieredStore::open(o0).value();
  REQUIRE(t0->import_listing().is_ok());

  SECTION("rows 1-2: overwritten (same size) / deleted, cached, no handle open: seen after R, R=0 at once") {
    CHECK(read_whole(*t, "over.bin") == "v1 over.bin");
    CHECK(read_whole(*t, "del.bin") == "v1 del.bin");
    REQUIRE(aws.put("data/over.bin", "v2 over.bin"));  // same size
    REQUIRE(aws.rm("data/del.bin"));
    CHECK(read_whole(*t, "over.bin") == "v1 over.bin");  // within R: the cached copy
    CHECK(read_whole(*t, "del.bin") == "v1 del.bin");
    env.now += 31 * kSecond;
    CHECK(read_whole(*t, "over.bin") == "v2 over.bin");
    CHECK(t->open_file("del.bin", {kOpenRead}).status().code() == Code::kNotFound);
    CHECK(t->status("del.bin").status().code() == Code::kNotFound);  // the record went

    CHECK(read_whole(*t0, "z.bin") == "zero v1");
    REQUIRE(aws.put("zero/z.bin", "zero v2"));
    CHECK(read_whole(*t0, "z.bin") == "zero v2");  // R = 0: the next open
  }

  SECTION("row 1 via sync, row 5 new object: at once after sync, not before") {
    CHECK(read_whole(*t, "s.bin") == "v1 s.bin");
    REQUIRE(aws.put("data/s.bin", "v2 s.bin"));
    REQUIRE(aws.put("data/new.bin", "new from aws"));
    CHECK(t->stat("new.bin").status().code() == Code::kNotFound);
    CHECK(read_whole(*t, "s.bin") == "v1 s.bin");
    auto report = t->sync();
    REQUIRE(report.is_ok());
    CHECK(report->imported_changed == std::vector<std::string>{"s.bin"});
    CHECK(report->imported_new == std::vector<std::string>{"new.bin"});
    CHECK(read_whole(*t, "s.bin") == "v2 s.bin");  // within R, yet the new version
    CHECK(read_whole(*t, "new.bin") == "new from aws");
  }

  SECTION("row 3: overwritten under a handle open on an uncached file: its read fails Aborted, next open new") {
    REQUIRE(t->status("cold.bin")->residency == Residency::kUncached);
    auto f = t->open_file("cold.bin", {kOpenRead}).value();
    REQUIRE(aws.put("data/cold.bin", "v2 of cold.bin, longer"));
    std::string buf(11, '\0');
    auto n = f->read(buf.data(), buf.size(), 0);
    REQUIRE(!n.is_ok());
    CHECK(n.status().code() == Code::kAborted);
    REQUIRE(f->close().is_ok());
    CHECK(read_whole(*t, "cold.bin") == "v2 of cold.bin, longer");
  }

  SECTION("row 4: overwritten under a handle open on the cached copy: the handle keeps its bytes") {
    CHECK(read_whole(*t0, "held.bin") == "held v1");
    auto f = t0->open_file("held.bin", {kOpenRead}).value();
    REQUIRE(aws.put("zero/held.bin", "held v2"));
    std::string buf(7, '\0');
    CHECK(f->read(buf.data(), buf.size(), 0).value() == 7);
    CHECK(buf == "held v1");
    REQUIRE(f->close().is_ok());
    CHECK(read_whole(*t0, "held.bin") == "held v2");  // R = 0: the next open after the close
  }

  SECTION("rows 5-7 within I: background sync brings new, changed, deleted objects in and exports closed writes") {
    env.put("bg/changed.bin", "bg v1");
    env.put("bg/gone.bin", "bg gone");
    auto ob = env.options("bg");
    ob.fast_root = "nvme://" + env.fast_dir + "bg";
    ob.state_dir = env.fast_dir + "bg/.stor-tier";
    ob.sync_interval_ns = kSecond / 5;
    ob.revalidate_after_ns = 3600 * kSecond;  // what is seen is the background sync's doing
    fs::create_directories(env.fast_dir + "bg");
    auto tb = TieredStore::open(ob).value();
    REQUIRE(tb->import_listing().is_ok());
    CHECK(read_whole(*tb, "changed.bin") == "bg v1");
    REQUIRE(aws.put("bg/changed.bin", "bg v2"));
    REQUIRE(aws.rm("bg/gone.bin"));
    REQUIRE(aws.put("bg/new.bin", "bg new"));
    write_whole(*tb, "local.bin", "bg local");
    CHECK(eventually([&] { return tb->stat("new.bin").is_ok(); }));
    CHECK(eventually([&] { return tb->stat("gone.bin").status().code() == Code::kNotFound; }));
    CHECK(eventually([&] { return tb->status("changed.bin")->residency == Residency::kUncached; }));
    CHECK(read_whole(*tb, "changed.bin") == "bg v2");
    CHECK(read_whole(*tb, "new.bin") == "bg new");
    CHECK(eventually([&] { return tb->status("local.bin")->residency == Residency::kCached; }));
    CHECK(aws.get("bg/local.bin") == std::optional<std::string>("bg local"));
  }

  SECTION("rows 7-9: written and closed (sync / auto-export), renamed, removed: what the AWS CLI reads") {
    write_whole(*t, "w.txt", "written through the link");
    CHECK(!aws.get("data/w.txt").has_value());  // not before sync
    REQUIRE(t->sync().is_ok());
    CHECK(aws.get("data/w.txt") == std::optional<std::string>("written through the link"));
    write_whole(*t0, "a.txt", "auto-exported at close");
    CHECK(aws.get("zero/a.txt") == std::optional<std::string>("auto-exported at close"));

    REQUIRE(t->rename("w.txt", "w2.txt").is_ok());  // exported: moved in the bucket at once
    CHECK(aws.get("data/w2.txt") == std::optional<std::string>("written through the link"));
    write_whole(*t, "d.txt", "dirty, then renamed");  // never exported: its new name after sync
    REQUIRE(t->rename("d.txt", "d2.txt").is_ok());
    CHECK(!aws.get("data/d2.txt").has_value());
    REQUIRE(t->sync().is_ok());
    CHECK(aws.get("data/d2.txt") == std::optional<std::string>("dirty, then renamed"));
    REQUIRE(t->remove("w2.txt").is_ok());  // deleted in the bucket at once
    auto keys = aws.keys("data/");
    CHECK(std::find(keys.begin(), keys.end(), "data/w.txt") == keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "data/w2.txt") == keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "data/d.txt") == keys.end());
    CHECK(std::find(keys.begin(), keys.end(), "data/over.bin") != keys.end());  // the listing works
  }
}
