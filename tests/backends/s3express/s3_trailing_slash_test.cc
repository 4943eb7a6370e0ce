// Objects whose key ends in '/' (S3 allows them; other tools write them) through stor::Store:
// the URI names such a key with its final '/' percent-encoded ("trail/obj%2F"), while
// "trail/obj" and "trail/obj/" remain the prefix (directory).
#include <catch2/catch.hpp>

#include <algorithm>

#include "s3_test_support.h"
#include "stor/store.h"

using namespace stor;
using namespace stor::s3::test;

namespace {

std::vector<std::string> names(const std::vector<DirEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.name + (e.type == FileType::kDirectory ? "/" : ""));
  return out;
}

std::string read_all(Store& store, const std::string& uri) {
  auto f = store.open(uri, kOpenRead);
  REQUIRE(f.is_ok());
  auto size = f->size();
  REQUIRE(size.is_ok());
  std::string out(size.value(), '\0');
  REQUIRE(f->read_exact(out.data(), out.size(), 0).is_ok());
  REQUIRE(f->close().is_ok());
  return out;
}

}  // namespace

TEST_CASE("s3 keys ending in '/': written, read, stat'd, listed and removed through %2F URIs") {
  REQUIRE_S3RVER();
  StoreOptions opts;
  opts.settings = s3rver_settings(server.endpoint());
  opts.settings["s3.part_size"] = "1M";
  auto created = Store::create(opts);
  REQUIRE(created.is_ok());
  Store& store = *created.value();
  auto client = make_client(server.endpoint());
  REQUIRE(client);
  const std::string bucket = unique_bucket("trail");
  REQUIRE(client->create_bucket(bucket).is_ok());
  const std::string root = "s3express://" + bucket;

  // Written by another client: an object "trail/obj/" holding bytes, one below it, a plain file.
  const std::string foreign = "bytes of an object whose key ends in a slash";
  REQUIRE(client->put_object_single(bucket, "trail/obj/", foreign.data(), foreign.size()).is_ok());
  REQUIRE(client->put_object_single(bucket, "trail/obj/inner.txt", "in", 2).is_ok());
  REQUIRE(client->put_object_single(bucket, "trail/file", "f", 1).is_ok());
  REQUIRE(store.mkdir(root + "/trail/empty").is_ok());  // an empty "trail/empty/" marker

  CHECK(read_all(store, root + "/trail/obj%2F") == foreign);
  CHECK(read_all(store, root + "/trail/obj%2f") == foreign);
  auto st = store.stat(root + "/trail/obj%2F");
  REQUIRE(st.is_ok());
  CHECK(st->type == FileType::kRegular);
  CHECK(st->size == foreign.size());
  // Without the encoded slash the name is the prefix, as before.
  auto dir = store.stat(root + "/trail/obj");
  REQUIRE(dir.is_ok());
  CHECK(dir->type == FileType::kDirectory);
  CHECK(store.open(root + "/trail/obj/", kOpenRead).status().code() == Code::kIsADirectory);
  CHECK(store.open(root + "/trail/obj", kOpenRead).status().code() == Code::kIsADirectory);

  // Written through stor: one part and several parts.
  std::string mine(3 * (1u << 20) + 17, '\0');
  for (size_t i = 0; i < mine.size(); ++i) mine[i] = static_cast<char>('a' + i % 23);
  for (const std::string& key : {std::string("trail/new"), std::string("trail/big")}) {
    const size_t n = key == "trail/new" ? 100 : mine.size();
    auto f = store.open(root + "/" + key + "%2F", kOpenWrite | kOpenCreate | kOpenTruncate);
    REQUIRE(f.is_ok());
    REQUIRE(f->write(mine.data(), n, 0).is_ok());
    REQUIRE(f->close().is_ok());
    auto head = client->head_object(bucket, key + "/");
    REQUIRE(head.is_ok());
    CHECK(head->size == n);
    CHECK(client->head_object(bucket, key).status().code() == Code::kNotFound);
    CHECK(read_all(store, root + "/" + key + "%2F") == mine.substr(0, n));
  }

  // A listing shows such a key twice: as the prefix "obj/" and as the object "obj%2F" (the name
  // that reaches it). Empty "x/" objects are directory markers only.
  auto listing = store.list(root + "/trail");
  REQUIRE(listing.is_ok());
  CHECK(names(listing.value()) ==
        std::vector<std::string>{"big/", "big%2F", "empty/", "file", "new/", "new%2F", "obj/", "obj%2F"});
  for (const auto& e : listing.value())
    if (e.name == "obj%2F") CHECK(e.size == foreign.size());
  auto inside = store.list(root + "/trail/obj/");
  REQUIRE(inside.is_ok());
  CHECK(names(inside.value()) == std::vector<std::string>{"inner.txt"});

  // The prefix cannot be removed as an empty directory while its key holds bytes; the object can.
  CHECK(store.remove(root + "/trail/new").code() == Code::kNotEmpty);
  REQUIRE(store.remove(root + "/trail/new%2F").is_ok());
  CHECK(store.stat(root + "/trail/new%2F").status().code() == Code::kNotFound);
  CHECK(store.stat(root + "/trail/new").status().code() == Code::kNotFound);
  CHECK(store.mkdir(root + "/trail/file").code() == Code::kAlreadyExists);
  // "%2F" on its own is not a key.
  CHECK(store.stat(root + "/%2F").status().code() == Code::kInvalidArgument);
}
