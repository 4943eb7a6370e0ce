// S3 Express calls neither s3rver nor RGW implements, against ExpressFake (s3_test_support.h): a
// protocol-level fake of one directory bucket that recomputes every SigV4 signature itself and
// checks the requests as the AWS documentation specifies. Conditional writes, appends,
// RenameObject, unordered listings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "s3_test_support.h"
#include "stor/store.h"

using namespace stor;
using namespace stor::s3;
using namespace stor::s3::test;

namespace {

constexpr const char* kBucket = "stor-fake--use1-az4--x-s3";

std::unique_ptr<S3Client> fake_client(const ExpressFake& fake, std::map<std::string, std::string> extra = {}) {
  auto settings = fake.settings();
  for (auto& [k, v] : extra) settings[k] = v;
  auto config = S3Config::from_settings(settings, true);
  REQUIRE(config.is_ok());
  auto client = S3Client::create(config.value());
  REQUIRE(client.is_ok());
  return std::move(client).value();
}

std::unique_ptr<Store> fake_store(const ExpressFake& fake) {
  StoreOptions opts;
  opts.settings = fake.settings();
  auto store = Store::create(opts);
  REQUIRE(store.is_ok());
  return std::move(store).value();
}

// The last request whose target starts with `prefix` (method included: "PUT /bucket/key").
ExpressFake::Seen last_request(const ExpressFake& fake, const std::string& method, const std::string& prefix) {
  auto seen = fake.requests();
  for (auto it = seen.rbegin(); it != seen.rend(); ++it)
    if (it->method == method && it->target.rfind(prefix, 0) == 0) return *it;
  FAIL("no " << method << " " << prefix << " request");
  return {};
}

Status write_file(Store& store, const std::string& uri, const std::string& data, uint32_t flags) {
  auto f = store.open(uri, flags);
  if (!f.is_ok()) return f.status();
  auto w = f->write(data.data(), data.size(), 0);
  if (!w.is_ok()) return w.status();
  return f->close();
}

}  // namespace

TEST_CASE("express fake: signatures are checked (a wrong secret is refused)") {
  ExpressFake fake(kBucket);
  auto good = fake_client(fake);
  Result<std::string> ok = good->put_object_single(kBucket, "a", "x", 1);
  INFO(ok.status().message());
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(ok.is_ok());
  CHECK(fake.violations().empty());
  auto bad = fake_client(fake, {{"s3.secret_key", "wrong"}});
  Result<std::string> r = bad->put_object_single(kBucket, "b", "y", 1);
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK(fake.violations().size() == 1);
  CHECK(fake.objects().count("b") == 0);
}

TEST_CASE("express fake: If-None-Match: * makes PutObject an exclusive create") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake);
  WriteCondition create_only;
  create_only.if_none_match = true;
  REQUIRE(client->put_object_single(kBucket, "k", "first", 5, {}, create_only).is_ok());
  auto put = last_request(fake, "PUT", std::string("/") + kBucket + "/k");
  CHECK(put.headers["if-none-match"] == "*");
  Result<std::string> again = client->put_object_single(kBucket, "k", "second", 6, {}, create_only);
  REQUIRE(again.status().code() == Code::kAlreadyExists);
  CHECK(again.status().message().find("If-None-Match") != std::string::npos);
  CHECK(fake.objects().at("k") == "first");
  CHECK(fake.violations().empty());
}

TEST_CASE("express fake: If-Match is a compare-and-swap on overwrite") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake);
  auto v1 = client->put_object_single(kBucket, "k", "one", 3);
  REQUIRE(v1.is_ok());
  WriteCondition cas;
  cas.if_match = *v1;
  auto v2 = client->put_object_single(kBucket, "k", "two", 3, {}, cas);
  REQUIRE(v2.is_ok());
  CHECK(last_request(fake, "PUT", std::string("/") + kBucket + "/k").headers["if-match"] == "\"" + *v1 + "\"");
  // v1 is stale now: the swap is refused and the newer object stays.
  Result<std::string> stale = client->put_object_single(kBucket, "k", "three", 5, {}, cas);
  REQUIRE(stale.status().code() == Code::kAborted);
  CHECK(stale.status().message().find("changed since ETag " + *v1) != std::string::npos);
  CHECK(fake.objects().at("k") == "two");
}

TEST_CASE("express fake: exclusive opens race; the server decides, one creator wins") {
  ExpressFake fake(kBucket);
  auto store = fake_store(fake);
  const std::string uri = std::string("s3express://") + kBucket + "/race";
  const uint32_t flags = kOpenWrite | kOpenCreate | kOpenExclusive;
  // Both opens see no object (the HEAD at open cannot decide a race) ...
  auto a = store->open(uri, flags);
  auto b = store->open(uri, flags);
  REQUIRE(a.is_ok());
  REQUIRE(b.is_ok());
  REQUIRE(a->write("AAAA", 4, 0).is_ok());
  REQUIRE(b->write("BBBB", 4, 0).is_ok());
  // ... the first close creates it, the second is refused by the server.
  REQUIRE(a->close().is_ok());
  Status lost = b->close();
  CHECK(lost.code() == Code::kAlreadyExists);
  CHECK(fake.objects().at("race") == "AAAA");
  // Opening an existing object exclusively fails at open already.
  CHECK(store->open(uri, flags).status().code() == Code::kAlreadyExists);
  CHECK(fake.violations().empty());
}

TEST_CASE("express fake: a rewrite through a file replaces only the version it read (If-Match)") {
  ExpressFake fake(kBucket);
  fake.put("doc", "0123456789");
  auto store = fake_store(fake);
  const std::string uri = std::string("s3express://") + kBucket + "/doc";
  auto f = store->open(uri, kOpenWrite);
  REQUIRE(f.is_ok());
  // Every byte is rewritten, so nothing is read back from the old version at close: only the
  // If-Match on the PutObject itself can notice the other writer.
  REQUIRE(f->write("ABCDEFGHIJ", 10, 0).is_ok());
  fake.put("doc", "someone else's");  // a concurrent writer replaces the object
  Status s = f->close();
  INFO(s.message());
  CHECK(s.code() == Code::kAborted);
  CHECK(s.message().find("If-Match") != std::string::npos);
  CHECK(fake.objects().at("doc") == "someone else's");
  // Without interference the read-modify-write goes through.
  REQUIRE(write_file(*store, uri, "ab", kOpenWrite).is_ok());
  CHECK(fake.objects().at("doc") == "abmeone else's");
}

TEST_CASE("express fake: appends with x-amz-write-offset-bytes") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake);
  REQUIRE(client->put_object_single(kBucket, "log", "hello", 5).is_ok());
  REQUIRE(client->append_object(kBucket, "log", 5, " world", 6).is_ok());
  auto put = last_request(fake, "PUT", std::string("/") + kBucket + "/log");
  CHECK(put.headers["x-amz-write-offset-bytes"] == "5");
  CHECK(fake.objects().at("log") == "hello world");
  // A wrong offset (another appender got there first) is refused, nothing is added.
  CHECK_FALSE(client->append_object(kBucket, "log", 5, "!", 1).is_ok());
  CHECK(fake.objects().at("log") == "hello world");
  // General purpose buckets cannot append.
  Result<std::string> gp = client->append_object("plain-bucket", "log", 0, "x", 1);
  CHECK(gp.status().code() == Code::kUnsupported);
  CHECK(fake.violations().empty());
}

TEST_CASE("express fake: RenameObject, through the client and Backend::rename") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake);
  fake.put("src", "payload");
  fake.put("taken", "keep me");
  REQUIRE(client->rename_object(kBucket, "src", "dir/dst").is_ok());
  auto req = last_request(fake, "PUT", std::string("/") + kBucket + "/dir/dst?renameObject");
  CHECK(req.headers["x-amz-rename-source"] == std::string("/") + kBucket + "/src");
  CHECK(!req.headers["x-amz-client-token"].empty());
  CHECK(fake.objects().count("src") == 0);
  CHECK(fake.objects().at("dir/dst") == "payload");
  // If-None-Match: * keeps an existing destination.
  WriteCondition create_only;
  create_only.if_none_match = true;
  CHECK(client->rename_object(kBucket, "dir/dst", "taken", create_only).code() == Code::kAlreadyExists);
  CHECK(fake.objects().at("taken") == "keep me");
  CHECK(client->rename_object("plain-bucket", "a", "b").code() == Code::kUnsupported);

  // Backend::rename on a directory bucket is one RenameObject: no CopyObject, no DELETE.
  auto store = fake_store(fake);
  const size_t before = fake.requests().size();
  REQUIRE(store->rename(std::string("s3express://") + kBucket + "/dir/dst", std::string("s3express://") + kBucket + "/moved")
              .is_ok());
  auto seen = fake.requests();
  for (size_t i = before; i < seen.size(); ++i) {
    CHECK(seen[i].headers.count("x-amz-copy-source") == 0);
    CHECK(seen[i].method != "DELETE");
  }
  CHECK(fake.objects().at("moved") == "payload");
  CHECK(fake.violations().empty());
}

TEST_CASE("express fake: listings in no particular order come out sorted") {
  ExpressFake fake(kBucket);
  for (const char* k : {"d/a", "d/z/1", "d/c", "d/b", "d/m/2", "d/e"}) fake.put(k, k);
  auto store = fake_store(fake);
  auto entries = store->list(std::string("s3express://") + kBucket + "/d");
  REQUIRE(entries.is_ok());
  std::vector<std::string> names;
  for (const auto& e : *entries) names.push_back(e.name);
  CHECK(names == std::vector<std::string>{"a", "b", "c", "e", "m", "z"});
}

TEST_CASE("express fake: multipart uploads carry a FULL_OBJECT CRC32C, checked on whole reads") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake, {{"s3.part_size", "64K"}});
  std::vector<char> data = stor::test::pattern((200u << 10) + 3, 5);  // 4 parts of 64 KiB, the last short
  // Through the client (put_object_multipart, no stor metadata: only the server's CRC can check)
  // and through a streamed file (ObjectWriter).
  auto put = client->put_object_multipart(kBucket, "mp", data.data(), data.size());
  INFO(put.status().to_string());
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(put.is_ok());
  auto create = last_request(fake, "POST", std::string("/") + kBucket + "/mp?uploads");
  CHECK(create.headers["x-amz-checksum-type"] == "FULL_OBJECT");
  CHECK(create.headers["x-amz-checksum-algorithm"] == "CRC32C");
  CHECK(fake.violations().empty());  // the fake compared the completion's CRC with the object's
  auto info = client->head_object(kBucket, "mp");
  REQUIRE(info.is_ok());
  CHECK(info->checksum_type == "FULL_OBJECT");
  CHECK(info->metadata.empty());
  auto back = client->get_object(kBucket, "mp");
  REQUIRE(back.is_ok());
  CHECK(std::equal(back->begin(), back->end(), data.begin(), data.end()));
  fake.corrupt("mp");
  auto bad = client->get_object(kBucket, "mp");
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find("CRC32C mismatch") != std::string::npos);

  StoreOptions opts;
  opts.settings = fake.settings();
  opts.settings["s3.part_size"] = "64K";
  auto store = Store::create(opts);
  REQUIRE(store.is_ok());
  const std::string uri = std::string("s3express://") + kBucket + "/streamed";
  Status written = write_file(**store, uri, std::string(data.begin(), data.end()), kOpenWrite | kOpenCreate);
  INFO(written.to_string());
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(written.is_ok());
  CHECK(fake.violations().empty());
  CHECK(client->head_object(kBucket, "streamed")->checksum_type == "FULL_OBJECT");
  CHECK(client->get_object(kBucket, "streamed").is_ok());
  fake.corrupt("streamed");
  CHECK(client->get_object(kBucket, "streamed").status().code() == Code::kCorruption);
}
