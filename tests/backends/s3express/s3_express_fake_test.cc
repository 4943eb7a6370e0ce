// S3 Express calls neither s3rver nor RGW implements, against ExpressFake (s3_test_support.h): a
// protocol-level fake of one directory bucket that recomputes every SigV4 signature itself and
// checks the requests as the AWS documentation specifies. Conditional writes, appends,
// RenameObject, unordered listings.
#include <catch2/catch.hpp>

#include <algorithm>
#include <thread>

#include "backends/s3express/crypto.h"
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

// Reads `key` back whole (it must equal data), then flips a stored bit on the fake (the checksum
// kept): the next whole read fails with Corruption saying `mismatch`.
void read_back_then_corrupt(ExpressFake& fake, S3Client& client, const std::string& key, const std::vector<char>& data,
                            const std::string& mismatch) {
  auto back = client.get_object(kBucket, key);
  REQUIRE(back.is_ok());
  CHECK(std::equal(back->begin(), back->end(), data.begin(), data.end()));
  fake.corrupt(key);
  auto bad = client.get_object(kBucket, key);
  CHECK(bad.status().code() == Code::kCorruption);
  CHECK(bad.status().message().find(mismatch) != std::string::npos);
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
  CHECK(put.headers["x-amz-checksum-crc32c"] == "pgadfA==");  // CRC32C of " world" alone
  CHECK(fake.objects().at("log") == "hello world");
  // A wrong offset (another appender got there first) is refused, nothing is added.
  Result<std::string> stale = client->append_object(kBucket, "log", 5, "!", 1);
  CHECK(stale.status().code() == Code::kAborted);
  CHECK(stale.status().message().find("InvalidWriteOffset") != std::string::npos);
  CHECK(fake.objects().at("log") == "hello world");
  // General purpose buckets cannot append; empty appends are refused before any request.
  Result<std::string> gp = client->append_object("plain-bucket", "log", 0, "x", 1);
  CHECK(gp.status().code() == Code::kUnsupported);
  CHECK(client->append_object(kBucket, "log", 11, "", 0).status().code() == Code::kInvalidArgument);
  CHECK(fake.violations().empty());
}

TEST_CASE("express fake: files opened kOpenAppend append at the object's end") {
  ExpressFake fake(kBucket);
  auto store = fake_store(fake);
  const std::string uri = std::string("s3express://") + kBucket + "/logs/app.log";
  const std::string put_target = std::string("/") + kBucket + "/logs/app.log";
  fake.put("logs/app.log", "line1\n");

  auto f = store->open(uri, kOpenWrite | kOpenAppend);
  REQUIRE(f.is_ok());
  // O_APPEND: the offsets given are ignored, every write lands at the end.
  REQUIRE(f->write("line2\n", 6, 0).is_ok());
  REQUIRE(f->write("line3\n", 6, 12345).is_ok());
  CHECK(f->stat()->size == 18);
  CHECK(fake.objects().at("logs/app.log") == "line1\n");  // collected until sync / close
  REQUIRE(f->sync().is_ok());
  CHECK(fake.objects().at("logs/app.log") == "line1\nline2\nline3\n");
  {
    auto put = last_request(fake, "PUT", put_target);
    CHECK(put.headers["x-amz-write-offset-bytes"] == "6");  // the size seen at open
    CHECK(put.headers["content-length"] == "12");
    CHECK(put.headers["x-amz-checksum-crc32c"] == "QHT9NA==");  // CRC32C of "line2\nline3\n"
    CHECK(!put.headers["x-amz-s3session-token"].empty());
    CHECK(put.headers.count("if-match") == 0);
    CHECK(put.headers.count("if-none-match") == 0);
  }
  REQUIRE(f->write("line4\n", 6, 0).is_ok());
  REQUIRE(f->close().is_ok());
  CHECK(last_request(fake, "PUT", put_target).headers["x-amz-write-offset-bytes"] == "18");
  CHECK(fake.objects().at("logs/app.log") == "line1\nline2\nline3\nline4\n");

  // Two appenders: the one whose view of the size is stale fails loudly, nothing is lost or
  // misplaced, and its handle stays failed.
  auto a = store->open(uri, kOpenWrite | kOpenAppend);
  auto b = store->open(uri, kOpenWrite | kOpenAppend);
  REQUIRE(a.is_ok());
  REQUIRE(b.is_ok());
  REQUIRE(a->write("from-a\n", 7, 0).is_ok());
  REQUIRE(a->close().is_ok());
  REQUIRE(b->write("from-b\n", 7, 0).is_ok());
  Status lost = b->sync();
  CHECK(lost.code() == Code::kAborted);
  CHECK(lost.message().find("another writer") != std::string::npos);
  CHECK(b->write("more\n", 5, 0).status().code() == Code::kAborted);
  CHECK(b->close().code() == Code::kAborted);
  CHECK(fake.objects().at("logs/app.log") == "line1\nline2\nline3\nline4\nfrom-a\n");

  // Creating opens: the first append is at offset 0; nothing written still makes an (empty)
  // object, with If-None-Match: * so nothing is replaced.
  const std::string fresh = std::string("s3express://") + kBucket + "/new.log";
  auto c = store->open(fresh, kOpenWrite | kOpenCreate | kOpenAppend);
  REQUIRE(c.is_ok());
  REQUIRE(c->write("abc", 3, 99).is_ok());
  REQUIRE(c->close().is_ok());
  CHECK(last_request(fake, "PUT", std::string("/") + kBucket + "/new.log").headers["x-amz-write-offset-bytes"] == "0");
  CHECK(fake.objects().at("new.log") == "abc");
  auto e = store->open(std::string("s3express://") + kBucket + "/empty.log", kOpenWrite | kOpenCreate | kOpenAppend);
  REQUIRE(e.is_ok());
  REQUIRE(e->close().is_ok());
  CHECK(last_request(fake, "PUT", std::string("/") + kBucket + "/empty.log").headers["if-none-match"] == "*");
  CHECK(fake.objects().at("empty.log").empty());
  CHECK(store->open(std::string("s3express://") + kBucket + "/missing.log", kOpenWrite | kOpenAppend).status().code() ==
        Code::kNotFound);

  // Reads through an appending handle: appended bytes from the object, waiting ones from memory.
  auto r = store->open(fresh, kOpenRead | kOpenWrite | kOpenAppend);
  REQUIRE(r.is_ok());
  REQUIRE(r->write("def", 3, 0).is_ok());
  std::string back(6, '\0');
  auto got = r->read(back.data(), back.size(), 0);
  REQUIRE(got.is_ok());
  CHECK(*got == 6);
  CHECK(back == "abcdef");
  CHECK(r->truncate(0).code() == Code::kUnsupported);
  REQUIRE(r->close().is_ok());
  CHECK(fake.objects().at("new.log") == "abcdef");

  // Appends larger than s3.part_size go out as they fill, each at the size the last one left.
  StoreOptions small;
  small.settings = fake.settings();
  small.settings["s3.part_size"] = "1M";
  auto store2 = Store::create(small);
  REQUIRE(store2.is_ok());
  const std::string big(2500000, 'x');
  auto g = (*store2)->open(fresh, kOpenWrite | kOpenAppend);
  REQUIRE(g.is_ok());
  for (size_t off = 0; off < big.size(); off += 500000) REQUIRE(g->write(big.data() + off, 500000, 0).is_ok());
  REQUIRE(g->close().is_ok());
  std::vector<std::string> offsets;
  for (const auto& req : fake.requests())
    if (req.method == "PUT" && req.target == std::string("/") + kBucket + "/new.log" && req.headers.count("x-amz-write-offset-bytes"))
      offsets.push_back(req.headers.at("x-amz-write-offset-bytes"));
  CHECK(offsets == std::vector<std::string>{"0", "3", "6", "1500006"});
  CHECK(fake.objects().at("new.log") == "abcdef" + big);

  // Truncating appends and read-only appends are refused; so are general purpose buckets (no
  // request is sent: a server without appends would replace the object).
  CHECK(store->open(fresh, kOpenWrite | kOpenAppend | kOpenTruncate).status().code() == Code::kUnsupported);
  CHECK(store->open(fresh, kOpenRead | kOpenAppend).status().code() == Code::kInvalidArgument);
  const size_t before = fake.requests().size();
  CHECK(store->open("s3express://plain-bucket/x.log", kOpenWrite | kOpenCreate | kOpenAppend).status().code() ==
        Code::kUnsupported);
  CHECK(fake.requests().size() == before);
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
  read_back_then_corrupt(fake, *client, "mp", data, "CRC32C mismatch");

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

TEST_CASE("express fake: s3.checksum_algorithm=crc64nvme: PutObject, parts and FULL_OBJECT completion") {
  ExpressFake fake(kBucket);
  auto client = fake_client(fake, {{"s3.part_size", "64K"}, {"s3.checksum_algorithm", "crc64nvme"}});
  // PutObject: the CRC-64/NVME of the body, no CRC32C.
  REQUIRE(client->put_object_single(kBucket, "one", "123456789", 9).is_ok());
  auto put = last_request(fake, "PUT", std::string("/") + kBucket + "/one");
  CHECK(put.headers["x-amz-checksum-crc64nvme"] == "rosUhgp5mIg=");  // 0xAE8B14860A799888
  CHECK(put.headers.count("x-amz-checksum-crc32c") == 0);
  auto one = client->head_object(kBucket, "one");
  REQUIRE(one.is_ok());
  CHECK(one->checksum_crc64nvme == "rosUhgp5mIg=");

  // Multipart: declared CRC64NVME / FULL_OBJECT, each part with its CRC, the completion with the
  // whole object's (combined from the parts', compared by the fake with its own).
  std::vector<char> data = stor::test::pattern((200u << 10) + 3, 9);
  auto mp = client->put_object_multipart(kBucket, "mp", data.data(), data.size());
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(mp.is_ok());
  auto create = last_request(fake, "POST", std::string("/") + kBucket + "/mp?uploads");
  CHECK(create.headers["x-amz-checksum-algorithm"] == "CRC64NVME");
  CHECK(create.headers["x-amz-checksum-type"] == "FULL_OBJECT");
  auto part = last_request(fake, "PUT", std::string("/") + kBucket + "/mp?partNumber=");
  CHECK(part.headers["x-amz-checksum-crc64nvme"].size() == 12);
  auto complete = last_request(fake, "POST", std::string("/") + kBucket + "/mp?uploadId=");
  const uint64_t whole = crc64nvme(0, data.data(), data.size());
  CHECK(complete.headers["x-amz-checksum-crc64nvme"] == checksum_base64(ChecksumAlgorithm::kCrc64Nvme, whole));
  CHECK(complete.headers["x-amz-checksum-type"] == "FULL_OBJECT");
  CHECK(fake.violations().empty());
  auto info = client->head_object(kBucket, "mp");
  REQUIRE(info.is_ok());
  CHECK(info->checksum_crc64nvme == checksum_base64(ChecksumAlgorithm::kCrc64Nvme, whole));
  CHECK(info->metadata.empty());  // only the server's CRC can check this object
  // A server whose bytes do not match its checksum: whole reads and sequential reads to the end
  // (read-ahead) both fail with Corruption.
  read_back_then_corrupt(fake, *client, "mp", data, "CRC64NVME mismatch");
  StoreOptions opts;
  opts.settings = fake.settings();
  opts.settings["s3.part_size"] = "64K";
  opts.settings["s3.small_object_size"] = "0";
  opts.settings["s3.checksum_algorithm"] = "crc64nvme";
  auto store = Store::create(opts);
  REQUIRE(store.is_ok());
  auto f = (*store)->open(std::string("s3express://") + kBucket + "/mp", kOpenRead);
  REQUIRE(f.is_ok());
  std::vector<char> buf(32 << 10);
  Status seq = Status::ok();
  for (uint64_t off = 0; off < data.size() && seq.is_ok(); off += buf.size()) {
    auto r = f->read(buf.data(), buf.size(), off);
    seq = r.status();
  }
  CHECK(seq.code() == Code::kCorruption);
  CHECK(seq.message().find("CRC64NVME mismatch") != std::string::npos);

  // A streamed file (ObjectWriter) completes with the CRC64NVME too; appends keep the object's
  // algorithm.
  const std::string uri = std::string("s3express://") + kBucket + "/streamed";
  Status written = write_file(**store, uri, std::string(data.begin(), data.end()), kOpenWrite | kOpenCreate);
  for (const auto& v : fake.violations()) INFO(v);
  REQUIRE(written.is_ok());
  CHECK(client->head_object(kBucket, "streamed")->checksum_crc64nvme ==
        checksum_base64(ChecksumAlgorithm::kCrc64Nvme, whole));
  REQUIRE(client->append_object(kBucket, "one", 9, "0", 1).is_ok());
  CHECK(last_request(fake, "PUT", std::string("/") + kBucket + "/one").headers["x-amz-checksum-crc64nvme"] ==
        checksum_base64(ChecksumAlgorithm::kCrc64Nvme, crc64nvme(0, "0", 1)));
  CHECK(client->head_object(kBucket, "one")->checksum_crc64nvme ==
        checksum_base64(ChecksumAlgorithm::kCrc64Nvme, crc64nvme(0, "1234567890", 10)));

  // s3.checksum_algorithm=none sends no checksum at all; a bad value is refused naming the key.
  auto none = fake_client(fake, {{"s3.checksum_algorithm", "none"}});
  REQUIRE(none->put_object_single(kBucket, "plain", "x", 1).is_ok());
  auto plain = last_request(fake, "PUT", std::string("/") + kBucket + "/plain");
  CHECK(plain.headers.count("x-amz-checksum-crc64nvme") == 0);
  CHECK(plain.headers.count("x-amz-checksum-crc32c") == 0);
  auto settings = fake.settings();
  settings["s3.checksum_algorithm"] = "sha1";
  auto refused = S3Config::from_settings(settings, true);
  CHECK(refused.status().code() == Code::kInvalidArgument);
  CHECK(refused.status().message().find("s3.checksum_algorithm") != std::string::npos);
  CHECK(fake.violations().empty());
}
