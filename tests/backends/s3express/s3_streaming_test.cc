// Streaming writes of S3 objects through stor::Store against s3rver: parts go up as they fill,
// random and sparse writers spill to a bounded temp file, bytes already streamed are refused,
// failures leave no object behind, sync() completes the object and writing can go on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>

#include "backends/s3express/crypto.h"
#include "s3_test_support.h"
#include "stor/store.h"

using namespace stor;
using namespace stor::s3::test;

namespace {

constexpr size_t kPart = 1u << 20;

std::unique_ptr<Store> open_store(const std::string& endpoint, std::map<std::string, std::string> extra = {}) {
  StoreOptions opts;
  opts.settings = s3rver_settings(endpoint);
  opts.settings["s3.part_size"] = "1M";
  for (auto& [k, v] : extra) opts.settings[k] = v;
  auto store = Store::create(opts);
  REQUIRE(store.is_ok());
  return std::move(store).value();
}

std::string make_bucket(const std::string& endpoint, const std::string& stem) {
  std::string bucket = unique_bucket(stem);
  auto client = make_client(endpoint);
  REQUIRE(client);
  REQUIRE(client->create_bucket(bucket).is_ok());
  return bucket;
}

std::vector<char> read_all(Store& store, const std::string& uri) {
  auto f = store.open(uri, kOpenRead);
  REQUIRE(f.is_ok());
  auto size = f->size();
  REQUIRE(size.is_ok());
  std::vector<char> out(size.value());
  REQUIRE(f->read_exact(out.data(), out.size(), 0).is_ok());
  REQUIRE(f->close().is_ok());
  return out;
}

}  // namespace

TEST_CASE("s3 streaming: random and sparse writes spill beyond the memory budget and read back exactly") {
  REQUIRE_S3RVER();
  // Two 1 MiB parts in memory; the other parts being filled at the same time go to a temp file.
  auto store = open_store(server.endpoint(), {{"s3.write_buffer_memory", "2M"}});
  const std::string bucket = make_bucket(server.endpoint(), "stream-random");
  const std::string uri = "s3express://" + bucket + "/r.bin";

  // 12 parts written in shuffled 100 KiB pieces, part 7 left as a hole, one tail write far out.
  const size_t body = 12 * kPart, tail_at = 20 * kPart + 12345;
  std::vector<char> expect(tail_at + 777, '\0');
  std::vector<char> data = stor::test::pattern(body, 5);
  std::vector<size_t> pieces;
  for (size_t off = 0; off < body; off += 100 << 10)
    if (off / kPart != 7 && (off + (100 << 10) - 1) / kPart != 7) pieces.push_back(off);
  std::shuffle(pieces.begin(), pieces.end(), std::mt19937(11));
  auto f = store->open(uri, kOpenWrite | kOpenCreate | kOpenTruncate);
  REQUIRE(f.is_ok());
  for (size_t off : pieces) {
    const size_t n = std::min<size_t>(100 << 10, body - off);
    REQUIRE(f->write(data.data() + off, n, off).is_ok());
    std::memcpy(expect.data() + off, data.data() + off, n);
  }
  std::vector<char> tail = stor::test::pattern(777, 6);
  REQUIRE(f->write(tail.data(), tail.size(), tail_at).is_ok());
  std::memcpy(expect.data() + tail_at, tail.data(), tail.size());
  auto size = f->size();
  REQUIRE(size.is_ok());
  CHECK(size.value() == expect.size());
  // The hole and the bytes around it are still held (in memory or spilled) and read back.
  std::vector<char> back(3 * kPart);
  REQUIRE(f->read_exact(back.data(), 100, tail_at - 50).is_ok());
  CHECK(std::memcmp(back.data(), expect.data() + tail_at - 50, 100) == 0);
  REQUIRE(f->close().is_ok());
  CHECK(read_all(*store, uri) == expect);
}

TEST_CASE("s3 streaming: bytes already streamed are refused, the rest of the file is unaffected") {
  REQUIRE_S3RVER();
  auto store = open_store(server.endpoint());
  const std::string bucket = make_bucket(server.endpoint(), "stream-refuse");
  const std::string uri = "s3express://" + bucket + "/s.bin";
  std::vector<char> data = stor::test::pattern(5 * kPart + 99, 7);
  auto f = store->open(uri, kOpenWrite | kOpenCreate | kOpenTruncate);
  REQUIRE(f.is_ok());
  for (size_t off = 0; off < data.size(); off += 300000)
    REQUIRE(f->write(data.data() + off, std::min<size_t>(300000, data.size() - off), off).is_ok());
  // Parts 1-5 are complete and the file extends past them: they have been streamed.
  auto w = f->write("x", 1, kPart + 5);
  CHECK(w.status().code() == Code::kUnsupported);
  CHECK(w.status().message().find("already streamed") != std::string::npos);
  char c;
  CHECK(f->read_exact(&c, 1, 10).code() == Code::kUnsupported);
  CHECK(f->truncate(3 * kPart + 1).code() == Code::kUnsupported);
  // The last (partial) part is still held: it can be rewritten and truncated.
  REQUIRE(f->write("tail", 4, data.size() - 4).is_ok());
  std::memcpy(data.data() + data.size() - 4, "tail", 4);
  REQUIRE(f->truncate(data.size() - 2).is_ok());
  data.resize(data.size() - 2);
  REQUIRE(f->close().is_ok());
  CHECK(read_all(*store, uri) == data);

  // Objects up to one part are a single PutObject carrying the whole-object CRC32C; larger ones
  // record the part layout instead.
  auto client = make_client(server.endpoint());
  auto big = client->head_object(bucket, "s.bin");
  REQUIRE(big.is_ok());
  CHECK(big->metadata.count("stor-part-size") == 1);
  CHECK(big->metadata.count("stor-crc32c") == 0);
  {
    auto small = store->open("s3express://" + bucket + "/small", kOpenWrite | kOpenCreate);
    REQUIRE(small.is_ok());
    REQUIRE(small->write(data.data(), kPart, 0).is_ok());  // exactly one part
    REQUIRE(small->close().is_ok());
  }
  auto small = client->head_object(bucket, "small");
  REQUIRE(small.is_ok());
  CHECK(small->size == kPart);
  CHECK(small->metadata.count("stor-crc32c") == 1);
  CHECK(small->metadata.count("stor-part-size") == 0);
}

TEST_CASE("s3 streaming: overwrite without O_TRUNC, sync then keep writing, truncate and extend") {
  REQUIRE_S3RVER();
  auto store = open_store(server.endpoint());
  const std::string bucket = make_bucket(server.endpoint(), "stream-rewrite");
  const std::string uri = "s3express://" + bucket + "/o.bin";
  std::vector<char> data = stor::test::pattern(4 * kPart + 10, 9);
  {
    auto f = store->open(uri, kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  {
    // Bytes not written come from the object as it was (fetched a part at a time at close).
    auto f = store->open(uri, kOpenWrite);
    REQUIRE(f.is_ok());
    REQUIRE(f->write("MIDDLE", 6, 2 * kPart + 3).is_ok());
    std::memcpy(data.data() + 2 * kPart + 3, "MIDDLE", 6);
    char buf[10];
    REQUIRE(f->read_exact(buf, 10, 2 * kPart).is_ok());
    CHECK(std::memcmp(buf, data.data() + 2 * kPart, 10) == 0);
    // sync() completes the object; writing goes on from it.
    REQUIRE(f->sync().is_ok());
    CHECK(read_all(*store, uri) == data);
    std::vector<char> more = stor::test::pattern(2 * kPart, 10);
    REQUIRE(f->write(more.data(), more.size(), data.size()).is_ok());
    data.insert(data.end(), more.begin(), more.end());
    // Shrink into the part still being filled, then extend: the cut bytes come back as zeros.
    // (data is 6 MiB + 10: part 6 is uploaded, part 7 holds the last 10 bytes.)
    CHECK(f->truncate(data.size() - 11).code() == Code::kUnsupported);
    REQUIRE(f->truncate(data.size() - 6).is_ok());
    REQUIRE(f->truncate(data.size()).is_ok());
    std::fill(data.end() - 6, data.end(), '\0');
    REQUIRE(f->close().is_ok());
  }
  CHECK(read_all(*store, uri) == data);
  {
    // Truncating to zero and writing a little: a small object again.
    auto f = store->open(uri, kOpenWrite);
    REQUIRE(f.is_ok());
    REQUIRE(f->truncate(0).is_ok());
    REQUIRE(f->write("abc", 3, 0).is_ok());
    Status closed = f->close();
    INFO(closed.to_string());
    REQUIRE(closed.is_ok());
  }
  CHECK(read_all(*store, uri) == std::vector<char>{'a', 'b', 'c'});
  {
    // Parts streamed, then all truncated away: the upload is dropped and a PutObject stores the rest.
    auto f = store->open(uri, kOpenWrite | kOpenTruncate);
    REQUIRE(f.is_ok());
    std::vector<char> big = stor::test::pattern(3 * kPart + 1, 14);
    REQUIRE(f->write(big.data(), big.size(), 0).is_ok());
    REQUIRE(f->truncate(0).is_ok());
    REQUIRE(f->write("xyz", 3, 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  CHECK(read_all(*store, uri) == std::vector<char>{'x', 'y', 'z'});
  auto head = make_client(server.endpoint())->head_object(bucket, "o.bin");
  REQUIRE(head.is_ok());
  CHECK(head->metadata.count("stor-crc32c") == 1);
}

TEST_CASE("s3 streaming: a failed part fails the file and leaves no object") {
  REQUIRE_S3RVER();
  FaultProxy::Options opts;
  opts.fail_matching = "partNumber=3";  // every try of part 3 gets a non-retryable 400
  FaultProxy proxy(server.port(), opts);
  auto store = open_store(proxy.endpoint());
  const std::string bucket = make_bucket(server.endpoint(), "stream-fail");
  const std::string uri = "s3express://" + bucket + "/f.bin";
  std::vector<char> data = stor::test::pattern(kPart, 12);
  auto f = store->open(uri, kOpenWrite | kOpenCreate | kOpenTruncate);
  REQUIRE(f.is_ok());
  Status first_error;
  for (size_t i = 0; i < 10 && first_error.is_ok(); ++i) first_error = f->write(data.data(), kPart, i * kPart).status();
  Status closed = f->close();
  CHECK_FALSE(closed.is_ok());
  if (!first_error.is_ok()) CHECK(first_error.code() == closed.code());
  CHECK(closed.message().find("UploadPart") != std::string::npos);
  auto client = make_client(server.endpoint());
  CHECK(client->head_object(bucket, "f.bin").status().code() == Code::kNotFound);
}

TEST_CASE("s3 streaming: with s3.verify_md5 a multipart ETag is checked at the end of a sequential read") {
  REQUIRE_S3RVER();
  auto store = open_store(server.endpoint(), {{"s3.readahead", "4M"}, {"s3.verify_md5", "true"}});
  const std::string bucket = make_bucket(server.endpoint(), "stream-etag");
  const std::string uri = "s3express://" + bucket + "/m.bin";
  std::vector<char> data = stor::test::pattern(5 * kPart + 4321, 13);
  {
    auto f = store->open(uri, kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write(data.data(), data.size(), 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  // s3rver's ETags are plain MD5s; S3 gives multipart uploads MD5(part MD5s)-N. Store that form.
  // (RGW gives that form itself: there the check runs on the server's own ETag.)
  std::string digests;
  for (size_t off = 0; off < data.size(); off += kPart)
    digests += stor::s3::md5(data.data() + off, std::min(kPart, data.size() - off));
  const std::string raw = stor::s3::md5(digests.data(), digests.size());
  const std::string etag = stor::s3::to_hex(raw.data(), raw.size()) + "-6";
  const std::string object = server.data_dir() + "/data/" + bucket + "/m.bin._S3rver_object";
  if (!on_rgw()) std::ofstream(object + ".md5", std::ios::trunc) << etag;
  auto sequential = [&]() -> Status {
    auto f = store->open(uri, kOpenRead);
    REQUIRE(f.is_ok());
    CHECK(f->stat()->etag == etag);
    std::vector<char> got(data.size());
    for (uint64_t off = 0; off < data.size(); off += 500000) {
      Status s = f->read_exact(got.data() + off, std::min<size_t>(500000, data.size() - off), off);
      if (!s.is_ok()) return s;
    }
    return got == data ? Status::ok() : Status::Internal("content differs");
  };
  CHECK(sequential().is_ok());
  if (on_rgw()) return;  // the corruption below pokes at s3rver's backing file
  {
    std::fstream f(object, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(3 * kPart + 7);
    f.put(static_cast<char>(data[3 * kPart + 7] ^ 0x20));
  }
  Status s = sequential();
  CHECK(s.code() == Code::kCorruption);
  CHECK(s.message().find("MD5 mismatch") != std::string::npos);
}

TEST_CASE("s3 streaming: abort() publishes nothing, so an object keeps its old bytes") {
  REQUIRE_S3RVER();
  auto store = open_store(server.endpoint());
  const std::string bucket = make_bucket(server.endpoint(), "stream-abort");
  const std::string uri = "s3express://" + bucket + "/kept.bin";
  const std::string old_bytes = "the object before the failed writer";
  {
    auto f = store->open(uri, kOpenWrite | kOpenCreate | kOpenTruncate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write(old_bytes.data(), old_bytes.size(), 0).is_ok());
    REQUIRE(f->close().is_ok());
  }
  // A writer that gets well past several parts (so parts were already streamed) and then fails.
  for (size_t size : {kPart / 2, 6 * kPart + 123}) {
    auto f = store->open(uri, kOpenWrite | kOpenCreate | kOpenTruncate);
    REQUIRE(f.is_ok());
    std::vector<char> junk(size, 'j');
    REQUIRE(f->write(junk.data(), junk.size(), 0).is_ok());
    CHECK(f->abort().is_ok());
    CHECK_FALSE(f->is_open());
    auto back = read_all(*store, uri);
    CHECK(std::string(back.begin(), back.end()) == old_bytes);
  }
  // A new key written and aborted never appears.
  {
    auto f = store->open("s3express://" + bucket + "/never.bin", kOpenWrite | kOpenCreate);
    REQUIRE(f.is_ok());
    std::vector<char> junk(3 * kPart, 'n');
    REQUIRE(f->write(junk.data(), junk.size(), 0).is_ok());
    CHECK(f->abort().is_ok());
  }
  CHECK(store->stat("s3express://" + bucket + "/never.bin").status().code() == Code::kNotFound);
}
