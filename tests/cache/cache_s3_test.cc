// The block cache over the S3 backend (s3rver): repeated reads make no request; an object
// rewritten by another client (new ETag) is invalidated on the next open.
#include <catch2/catch.hpp>

#include "backends/s3express/s3_backend.h"
#include "s3_test_support.h"
#include "stor/cache.h"
#include "stor/store.h"

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
