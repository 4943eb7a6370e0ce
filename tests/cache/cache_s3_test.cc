// The block cache over the S3 backend (s3rver): repeated reads make no request; an object
// rewritten by another client (new ETag) is invalidated on the next open.
#include <catch2/catch.hpp>

#include "backends/s3express/s3_backend.h"
#include "s3_test_support.h"
#include "stor/cache.h"
#include "stor/object_store.h"
#include "stor/store.h"
#include "stor/tiering.h"
#include "test_util.h"

using namespace stor;
using namespace stor::s3::test;

TEST_CASE("cache over s3: hits cost no request, a new ETag invalidates") {
  REQUIRE_S3RVER();
  StoreOptions so;
  so.settings = s3rver_settings(server.endpoint());
  so.settings["s3.session"] = "off";
  so.settings["s3.readahead"] = "0";  // count only the cache's own requests
  auto store = Store::create(so).value();
  auto s3 = store->backend(Uri::parse("s3express://b/k").value()).value();
  s3::S3Client* client = s3::s3_client_of(*s3);
  REQUIRE(client);
  auto other = make_client(server.endpoint(), {{"s3.session", "off"}});
  const std::string bucket = unique_bucket("cache");
  REQUIRE(other->create_bucket(bucket).is_ok());
  const auto v1 = stor::test::pattern(300'000, 1);
  REQUIRE(other->put_object(bucket, "obj", v1.data(), v1.size()).is_ok());

  cache::CacheOptions o;
  o.block_size = 64 * 1024;
  o.capacity_bytes = 4 << 20;
  o.readahead_blocks = 0;
  auto cached = cache::make_caching_backend(s3, o).value();
  const Uri uri = Uri::parse("s3express://" + bucket + "/obj").value();
  auto read_all = [&](std::vector<char>* out) {
    auto f = cached->open(uri, {kOpenRead});
    REQUIRE(f.is_ok());
    out->assign(400'000, 0);
    auto n = (*f)->read(out->data(), out->size(), 0);
    REQUIRE(n.is_ok());
    out->resize(*n);
    REQUIRE((*f)->close().is_ok());
  };
  std::vector<char> got;
  read_all(&got);
  CHECK(got == v1);
  const uint64_t after_first = client->stats().requests;
  const auto misses = cached->stats().misses;
  read_all(&got);
  CHECK(got == v1);
  // The open still validates (one HEAD); no data request.
  CHECK(client->stats().requests - after_first == 1);
  CHECK(cached->stats().misses == misses);

  const auto v2 = stor::test::pattern(200'000, 2);
  REQUIRE(other->put_object(bucket, "obj", v2.data(), v2.size()).is_ok());
  read_all(&got);
  CHECK(got == v2);
  CHECK(cached->stats().invalidations == 1);
}

TEST_CASE("cache over s3: object_store() reaches the S3 backend beneath; a tier link lists it as objects") {
  REQUIRE_S3RVER();
  StoreOptions so;
  so.settings = s3rver_settings(server.endpoint());
  so.settings["s3.session"] = "off";
  auto store = Store::create(so).value();
  auto s3 = store->backend(Uri::parse("s3express://b/k").value()).value();
  s3::S3Client* client = s3::s3_client_of(*s3);
  REQUIRE(client);
  auto other = make_client(server.endpoint(), {{"s3.session", "off"}});
  const std::string bucket = unique_bucket("cacheos");
  REQUIRE(other->create_bucket(bucket).is_ok());
  for (int i = 0; i < 3; ++i) {
    const std::string body = "object " + std::to_string(i);
    REQUIRE(other->put_object(bucket, "p/d/o" + std::to_string(i), body.data(), body.size()).is_ok());
  }
  auto cached = cache::make_caching_backend(s3, {}).value();
  ObjectStore* os = cached->object_store();  // was nullptr: the decorator hid the capability
  REQUIRE(os != nullptr);
  auto listed = os->list_objects(Uri::parse("s3express://" + bucket + "/p").value());
  REQUIRE(listed.is_ok());
  REQUIRE(listed->size() == 3);
  CHECK((*listed)[0].name == "d/o0");
  CHECK(!(*listed)[0].etag.empty());
  const Uri o1 = Uri::parse("s3express://" + bucket + "/p/d/o1").value();
  auto head = os->head_object(o1);
  REQUIRE(head.is_ok());
  CHECK(head->etag == (*listed)[1].etag);
  std::string buf(8, '\0');
  CHECK(os->read_version(o1, head->etag, 0, buf.size(), buf.data()).value() == 8);
  CHECK(buf == "object 1");
  CHECK(!os->read_version(o1, "0123456789abcdef0123456789abcdef", 0, 8, buf.data()).is_ok());

  // A conditional write through it drops the cached blocks: the next cached read has the new bytes.
  auto read_cached = [&] {
    auto f = cached->open(o1, {kOpenRead}).value();
    std::string out(64, '\0');
    out.resize(f->read(out.data(), out.size(), 0).value());
    REQUIRE(f->close().is_ok());
    return out;
  };
  CHECK(read_cached() == "object 1");
  ObjectWriteCondition cond;
  cond.if_match = head->etag;
  auto w = os->open_for_write_if(o1, cond);
  REQUIRE(w.is_ok());
  REQUIRE((*w)->write("rewritten", 9, 0).is_ok());
  REQUIRE((*w)->close().is_ok());
  CHECK(read_cached() == "rewritten");
  // Refused while the cache holds unflushed writes of the object.
  auto dirty = cached->open(o1, {kOpenWrite}).value();
  REQUIRE(dirty->write("X", 1, 0).is_ok());
  CHECK(os->open_for_write_if(o1, {}).status().code() == Code::kBusy);
  REQUIRE(dirty->close().is_ok());

  // A tiered namespace over the cached backend takes the object path: one ListObjectsV2, no HEADs.
  stor::test::TempDir dir;
  auto nvme = store->backend(Uri::parse("nvme:///").value()).value();
  tiering::TierOptions to;
  to.fast = nvme;
  to.fast_root = "nvme://" + dir.path();
  to.cold = cached;
  to.cold_root = "s3express://" + bucket + "/p";
  to.state_dir = dir / ".stor-tier";
  auto t = tiering::TieredStore::open(to).value();
  const uint64_t before = client->stats().requests;
  CHECK(t->import_listing().value() == 3);
  CHECK(client->stats().requests - before == 1);

  // Over a backend that is not an object store there is none.
  CHECK(cache::make_caching_backend(nvme, {}).value()->object_store() == nullptr);
}
