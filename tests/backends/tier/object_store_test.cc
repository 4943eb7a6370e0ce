// The cold tier reaches object stores only through the public ObjectStore capability
// (stor/object_store.h): an in-memory object backend defined here, registered under a test
// scheme, is linked with tier:// and must be listed with its own ETags (one list_objects, no
// directory walk, no stat per file), fetched with version-pinned reads, and written without
// directory markers, exactly as s3express:// is.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "stor/object_store.h"
#include "stor/store.h"
#include "stor/tiering.h"
#include "test_util.h"

using namespace stor;
using namespace stor::tiering;
namespace fs = std::filesystem;

namespace {

constexpr const char* kScheme = "tiertestobj";

// Objects by key ("prefix/name"; the URI's authority, the bucket, is ignored). Each write makes
// a new version with ETag "v<N>". Backend::stat reports no ETag, so only the capability can
// give the cold tier the object store's own validators.
class FakeObjectBackend final : public Backend, public ObjectStore {
 public:
  struct Object {
    std::string data;
    std::string etag;
    int64_t mtime_ns = 0;
  };

  std::atomic<int> list_objects_calls{0}, head_calls{0}, read_version_calls{0}, bulk_calls{0};
  std::atomic<int> list_calls{0}, stat_calls{0}, mkdir_calls{0}, read_opens{0};

  void put(const std::string& key, std::string data) {
    std::lock_guard lk(mu_);
    Object& o = objects_[key];
    o.data = std::move(data);
    o.etag = "v" + std::to_string(++version_);
    o.mtime_ns = version_ * 1'000'000'000;
  }
  std::optional<Object> get(const std::string& key) {
    std::lock_guard lk(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  bool has(const std::string& key) { return get(key).has_value(); }

  std::string_view scheme() const override { return kScheme; }
  uint32_t capabilities() const override { return kCapRead | kCapWrite | kCapDirectories; }
  ObjectStore* object_store() override { return this; }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) override;

  Result<FileInfo> stat(const Uri& uri) override {
    ++stat_calls;
    const std::string k = key(uri);
    std::lock_guard lk(mu_);
    if (auto it = objects_.find(k); it != objects_.end()) {
      FileInfo fi;
      fi.path = k;
      fi.size = it->second.data.size();
      fi.mtime_ns = it->second.mtime_ns;
      return fi;
    }
    auto it = objects_.lower_bound(k + "/");
    if (k.empty() || (it != objects_.end() && it->first.compare(0, k.size() + 1, k + "/") == 0)) {
      FileInfo fi;
      fi.path = k;
      fi.type = FileType::kDirectory;
      return fi;
    }
    return Status::NotFound(k);
  }

  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    ++list_calls;
    std::vector<DirEntry> out;
    for (const auto& [rest, o] : under(uri)) {
      const size_t slash = rest.find('/');
      if (slash == std::string::npos) {
        out.push_back({rest, FileType::kRegular, o.data.size()});
      } else if (out.empty() || out.back().name != rest.substr(0, slash)) {
        out.push_back({rest.substr(0, slash), FileType::kDirectory, 0});
      }
    }
    if (out.empty()) return Status::NotFound(key(uri));
    return out;
  }

  Status remove(const Uri& uri) override {
    std::lock_guard lk(mu_);
    return objects_.erase(key(uri)) ? Status::ok() : Status::NotFound(key(uri));
  }

  Status mkdir(const Uri& uri, uint32_t) override {
    ++mkdir_calls;
    put(key(uri) + "/", "");
    return {};
  }

  // ---- ObjectStore ----

  Result<std::vector<ObjectVersion>> list_objects(const Uri& dir) override {
    ++list_objects_calls;
    std::vector<ObjectVersion> out;
    for (const auto& [name, o] : under(dir)) out.push_back({name, o.data.size(), o.mtime_ns, o.etag});
    return out;
  }

  Result<ObjectVersion> head_object(const Uri& uri) override {
    ++head_calls;
    const std::string k = key(uri);
    auto o = get(k);
    if (!o) return Status::NotFound(k);
    return ObjectVersion{k, o->data.size(), o->mtime_ns, o->etag};
  }

  Result<size_t> read_version(const Uri& uri, const std::string& etag, uint64_t offset, size_t len,
                              char* dst) override {
    ++read_version_calls;
    return read_pinned(key(uri), etag, offset, len, dst);
  }

  Result<size_t> read_version_bulk(const Uri& uri, const ObjectVersion& version, uint64_t offset, size_t len,
                                   char* dst) override {
    ++bulk_calls;
    return read_pinned(key(uri), version.etag, offset, len, dst);
  }

 private:
  // The objects under the prefix `dir` by key, named relative to it (the prefix's own marker left out).
  std::vector<std::pair<std::string, Object>> under(const Uri& dir) {
    const std::string k = key(dir);
    const std::string prefix = k.empty() ? "" : k + "/";
    std::lock_guard lk(mu_);
    std::vector<std::pair<std::string, Object>> out;
    for (auto it = objects_.lower_bound(prefix);
         it != objects_.end() && it->first.compare(0, prefix.size(), prefix) == 0; ++it) {
      if (it->first.size() > prefix.size()) out.emplace_back(it->first.substr(prefix.size()), it->second);
    }
    return out;
  }

  static std::string key(const Uri& uri) {
    std::string k = uri.path;
    while (!k.empty() && k.front() == '/') k.erase(k.begin());
    while (!k.empty() && k.back() == '/') k.pop_back();
    return k;
  }

  Result<size_t> read_pinned(const std::string& k, const std::string& etag, uint64_t offset, size_t len, char* dst) {
    auto o = get(k);
    if (!o) return Status::NotFound(k);
    if (o->etag != etag) return Status::Aborted(k + " is now " + o->etag + ", not " + etag);
    if (offset >= o->data.size()) return size_t{0};
    const size_t n = std::min<size_t>(len, o->data.size() - offset);
    std::memcpy(dst, o->data.data() + offset, n);
    return n;
  }

  std::mutex mu_;
  std::map<std::string, Object> objects_;
  int64_t version_ = 0;
};

// Reads see the object as it was at open; writes are published as a new version at close.
class FakeObjectFile final : public BackendFile {
 public:
  FakeObjectFile(FakeObjectBackend* owner, std::string key, std::string data, bool writable)
      : owner_(owner), key_(std::move(key)), data_(std::move(data)), writable_(writable) {}

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    const size_t n = offset >= data_.size() ? 0 : std::min<size_t>(len, data_.size() - offset);
    if (n) std::memcpy(buf, data_.data() + offset, n);
    done(n);
  }
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (!writable_) return done(Status::PermissionDenied(key_));
    if (data_.size() < offset + len) data_.resize(offset + len);
    std::memcpy(data_.data() + offset, buf, len);
    done(len);
  }
  Status sync(bool) override { return {}; }
  Status truncate(uint64_t size) override {
    data_.resize(size);
    return {};
  }
  Result<FileInfo> stat() override {
    FileInfo fi;
    fi.path = key_;
    fi.size = data_.size();
    return fi;
  }
  Status close() override {
    if (writable_ && !closed_) owner_->put(key_, data_);
    closed_ = true;
    return {};
  }

 private:
  FakeObjectBackend* owner_;
  std::string key_, data_;
  bool writable_, closed_ = false;
};

Result<std::unique_ptr<BackendFile>> FakeObjectBackend::open(const Uri& uri, const OpenOptions& opts) {
  const std::string k = key(uri);
  auto o = get(k);
  const bool writable = opts.flags & kOpenWrite;
  if (!writable) ++read_opens;
  if (!o && !(writable && (opts.flags & kOpenCreate))) return Status::NotFound(k);
  std::string data = o && !(opts.flags & kOpenTruncate) ? o->data : std::string();
  return std::unique_ptr<BackendFile>(std::make_unique<FakeObjectFile>(this, k, std::move(data), writable));
}

// The instance the registered factory hands out (the tier:// backend asks the registry).
std::shared_ptr<FakeObjectBackend> g_fake;

void register_fake() {
  static const bool once = [] {
    REQUIRE(BackendRegistry::global()
                .add(kScheme, [](const BackendContext&) -> Result<std::shared_ptr<Backend>> {
                  return std::shared_ptr<Backend>(g_fake);
                })
                .is_ok());
    return true;
  }();
  (void)once;
}

std::string read_all(TieredStore& t, const std::string& path) {
  auto f = t.open_file(path, {kOpenRead});
  REQUIRE(f.is_ok());
  std::string out(64, '\0');
  auto n = (*f)->read(out.data(), out.size(), 0);
  REQUIRE(n.is_ok());
  out.resize(*n);
  REQUIRE((*f)->close().is_ok());
  return out;
}

}  // namespace

TEST_CASE("tiering: a non-S3 backend with the ObjectStore capability is linked, read and written through it") {
  g_fake = std::make_shared<FakeObjectBackend>();
  register_fake();
  FakeObjectBackend& fake = *g_fake;
  fake.put("ns/a.bin", "hello object");
  fake.put("ns/d/", "");  // a directory marker: not a file
  fake.put("ns/d/b.bin", "first");
  fake.put("elsewhere/c.bin", "outside the root");

  stor::test::TempDir dir;
  const std::string fast = dir / "fast";
  fs::create_directories(fast);
  auto store = Store::create().value();
  auto tier = store->backend(Uri::parse("tier:///").value());
  REQUIRE(tier.is_ok());
  auto linked = create_link(**tier, fast, std::string(kScheme) + "://bucket/ns");
  REQUIRE(linked.is_ok());
  TieredStore& ns = *linked->store;

  // One listing through the capability, with the store's own ETags; no walk, no stat per file.
  CHECK(linked->imported == 2);
  CHECK(fake.list_objects_calls == 1);
  CHECK(fake.list_calls == 0);
  CHECK(fake.stat_calls == 0);
  CHECK(ns.status("a.bin")->cold_etag == fake.get("ns/a.bin")->etag);
  CHECK(ns.status("d/b.bin")->cold_etag == fake.get("ns/d/b.bin")->etag);
  CHECK(ns.status("elsewhere/c.bin").status().code() == Code::kNotFound);

  // The first read fetches with version-pinned reads, never through a file opened on the backend.
  CHECK(read_all(ns, "a.bin") == "hello object");
  CHECK(fake.bulk_calls >= 1);
  CHECK(fake.read_opens == 0);
  CHECK(ns.status("a.bin")->residency == Residency::kCached);

  // Replaced after the listing: the pinned read is refused, one HEAD adopts the new version and
  // the next open reads it.
  fake.put("ns/d/b.bin", "second version");
  auto f = ns.open_file("d/b.bin", {kOpenRead});
  REQUIRE(f.is_ok());
  char buf[32];
  CHECK((*f)->read(buf, sizeof buf, 0).status().code() == Code::kAborted);
  REQUIRE((*f)->close().is_ok());
  CHECK(fake.head_calls >= 1);
  CHECK(ns.status("d/b.bin")->cold_etag == fake.get("ns/d/b.bin")->etag);
  CHECK(read_all(ns, "d/b.bin") == "second version");

  // Export goes through the backend's files: no "n/" marker (dir_markers is off), and the record
  // takes the new object's ETag from a HEAD through the capability.
  auto w = ns.open_file("n/new.bin", {kOpenWrite | kOpenCreate});
  REQUIRE(w.is_ok());
  REQUIRE((*w)->write("fresh", 5, 0).is_ok());
  REQUIRE((*w)->close().is_ok());
  auto report = ns.sync();
  REQUIRE(report.is_ok());
  CHECK(report->exported == std::vector<std::string>{"n/new.bin"});
  CHECK(fake.get("ns/n/new.bin")->data == "fresh");
  CHECK(fake.mkdir_calls == 0);
  CHECK(!fake.has("ns/n/"));
  CHECK(ns.status("n/new.bin")->cold_etag == fake.get("ns/n/new.bin")->etag);
  CHECK(fake.list_calls == 0);
  CHECK(fake.stat_calls == 0);
}
