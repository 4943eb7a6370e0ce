// The public admin and target API (stor/admin.h, stor/target.h) as tools use it: only public
// headers, linked against libstor.so (PUBLIC_API), so these calls must be exported.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>

#include "stor/admin.h"
#include "stor/engine.h"
#include "stor/store.h"
#include "stor/target.h"
#include "test_util.h"

using namespace stor;

TEST_CASE("admin: mkfs, a progressive layout through setstripe/getstripe, df and fsck", "[admin][lustre]") {
  stor::test::TempDir dir;
  const std::string root = dir.path() + "/fs";
  admin::MkfsOptions mo;
  mo.targets = 3;
  REQUIRE(admin::mkfs(root, mo).is_ok());
  CHECK(admin::mkfs(root, mo).code() == Code::kAlreadyExists);

  // First 1 MiB on one target, the rest on all three with 128 KiB stripes.
  const admin::LayoutSpec spec = {admin::StripeSpec{1, 64 << 10, 0, 1 << 20},
                                  admin::StripeSpec{-1, 128 << 10, -1, admin::kEof}};
  const admin::Layout tmpl = admin::layout_of(spec);
  REQUIRE(tmpl.components.size() == 2);
  CHECK(tmpl.components[1].extent_start == (1u << 20));
  CHECK(admin::describe_layout(tmpl) == "[0, 1M) count=1 size=64K offset=0; [1M, EOF) count=-1 size=128K offset=-1");

  const std::string file = "lustre://" + root + "/pfl.bin";
  REQUIRE(admin::setstripe(file, spec).is_ok());
  const auto data = stor::test::pattern(3 << 20, 7);
  {
    auto store = Store::create().value();
    auto f = store->open(file, kOpenWrite).value();
    REQUIRE(f.write(data.data(), data.size(), 0).value() == data.size());
    REQUIRE(f.close().is_ok());
  }
  auto info = admin::getstripe(file);
  REQUIRE(info.is_ok());
  CHECK_FALSE(info->is_dir);
  CHECK(info->driver == "emulated");
  CHECK(info->size == data.size());
  REQUIRE(info->layout.components.size() == 2);
  const auto& c0 = info->layout.components[0];
  const auto& c1 = info->layout.components[1];
  CHECK(c0.extent_end == (1u << 20));
  CHECK(c0.targets == std::vector<uint32_t>{0});
  CHECK(c1.extent_end == admin::kEof);
  CHECK(c1.stripe_size == (128u << 10));
  CHECK(c1.targets.size() == 3);  // -1 resolved to every target
  REQUIRE(info->objects.size() == 4);
  uint64_t stored = 0;
  for (const auto& o : info->objects) stored += o.exists ? o.size : 0;
  CHECK(stored == data.size());
  CHECK_THAT(admin::format_stripe_info(*info), Catch::Contains("obdidx"));

  auto dirinfo = admin::getstripe(root);
  REQUIRE(dirinfo.is_ok());
  CHECK(dirinfo->is_dir);
  CHECK(dirinfo->inherited);

  // A layout the file system refuses: stripe size not a multiple of 64 KiB.
  CHECK(admin::setstripe("lustre://" + root + "/bad.bin", {admin::StripeSpec{1, 1000}}).code() == Code::kInvalidArgument);

  auto df = admin::df(root);
  REQUIRE(df.is_ok());
  CHECK(df->fsname == "stor");
  REQUIRE(df->targets.size() == 3);
  uint64_t objects = 0;
  for (const auto& t : df->targets) objects += t.objects;
  CHECK(objects == 4);

  auto clean = admin::fsck(root);
  REQUIRE(clean.is_ok());
  CHECK(clean->orphans == 0);
  CHECK(clean->problems.empty());
  // An object no file owns, next to the real ones: found, then removed by repair.
  const std::string orphan = std::filesystem::path(info->objects[0].path).parent_path().string() + "/999999.0.0";
  std::ofstream(orphan) << "stray";
  auto found = admin::fsck(root);
  REQUIRE(found.is_ok());
  CHECK(found->orphans == 1);
  REQUIRE(admin::fsck(root, /*repair=*/true).is_ok());
  CHECK_FALSE(std::filesystem::exists(orphan));
  CHECK(admin::host_path_of("lustre://" + root) == root);
}

TEST_CASE("admin: S3 calls refuse a URI the S3 backend does not serve", "[admin][s3]") {
  auto store = Store::create().value();
  CHECK(admin::s3_create_bucket(*store, "nvme:///tmp/x").status().code() == Code::kInvalidArgument);
  CHECK(admin::s3_auth_info(*store, "nvme:///tmp/x").status().code() == Code::kInvalidArgument);
  CHECK(admin::s3_client_stats(*store, "nvme:///tmp/x").status().code() == Code::kInvalidArgument);
}

TEST_CASE("target: an in-process TargetServer serves a directory to a TargetClient", "[admin][target]") {
  stor::test::TempDir dir;
  const auto data = stor::test::pattern(300 << 10, 3);
  std::filesystem::create_directories(dir.path() + "/ab");
  std::ofstream(dir.path() + "/ab/obj", std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));

  auto engine = IoEngine::create().value();
  TargetOptions to;
  to.listen = "tcp://127.0.0.1:0";
  to.dir = dir.path();
  auto server = TargetServer::start(to, engine.get());
  REQUIRE(server.is_ok());
  const std::string endpoint = (*server)->endpoint();
  CHECK(endpoint.rfind("tcp://127.0.0.1:", 0) == 0);
  CHECK(endpoint != "tcp://127.0.0.1:0");

  TargetClientOptions co;
  co.max_payload = 64 << 10;  // the read is split into several calls
  auto client = TargetClient::connect(endpoint, co);
  REQUIRE(client.is_ok());
  std::vector<char> got(data.size() - 100);
  std::promise<Result<size_t>> done;
  (*client)->read_async("ab/obj", got.data(), got.size(), 100, [&](Result<size_t> r) { done.set_value(r); });
  auto r = done.get_future().get();
  REQUIRE(r.is_ok());
  REQUIRE(*r == got.size());
  CHECK(std::memcmp(got.data(), data.data() + 100, got.size()) == 0);

  std::promise<Result<size_t>> missing;
  (*client)->read_async("ab/none", got.data(), 10, 0, [&](Result<size_t> r2) { missing.set_value(r2); });
  CHECK(missing.get_future().get().status().code() == Code::kNotFound);

  (*server)->stop();
  client->reset();
  CHECK_FALSE(TargetClient::connect(endpoint).is_ok());  // nobody listens there any more

  to.dir = dir.path() + "/does-not-exist";
  CHECK_FALSE(TargetServer::start(to, engine.get()).is_ok());
  CHECK(TargetServer::start(to, nullptr).status().code() == Code::kInvalidArgument);
}

TEST_CASE("target: a keyed TargetServer serves only clients holding its key", "[admin][target][auth]") {
  stor::test::TempDir dir, keys;
  std::ofstream(dir.path() + "/obj") << "keyed";
  const std::string key = keys.path() + "/fs.key", other = keys.path() + "/other.key";
  REQUIRE(make_target_key(key).is_ok());
  REQUIRE(make_target_key(other).is_ok());
  CHECK_FALSE(make_target_key(key).is_ok());  // never overwritten
  CHECK((std::filesystem::status(key).permissions() & std::filesystem::perms::group_read) == std::filesystem::perms::none);

  auto engine = IoEngine::create().value();
  TargetOptions to;
  to.listen = "tcp://127.0.0.1:0";
  to.dir = dir.path();
  to.key_file = key;
  auto server = TargetServer::start(to, engine.get());
  REQUIRE(server.is_ok());
  const std::string endpoint = (*server)->endpoint();

  TargetClientOptions co;
  co.key_file = key;
  auto client = TargetClient::connect(endpoint, co);
  REQUIRE(client.is_ok());
  char buf[5];
  std::promise<Result<size_t>> done;
  (*client)->read_async("obj", buf, sizeof buf, 0, [&](Result<size_t> r) { done.set_value(r); });
  auto r = done.get_future().get();
  REQUIRE(r.is_ok());
  CHECK(std::string(buf, *r) == "keyed");

  co.key_file = other;
  CHECK(TargetClient::connect(endpoint, co).status().code() == Code::kPermissionDenied);
  // Without a key the client sends no handshake; the target refuses its first request.
  co.key_file.clear();
  auto unkeyed = TargetClient::connect(endpoint, co);
  if (unkeyed.is_ok()) {
    std::promise<Result<size_t>> refused;
    (*unkeyed)->read_async("obj", buf, sizeof buf, 0, [&](Result<size_t> r2) { refused.set_value(r2); });
    CHECK_FALSE(refused.get_future().get().is_ok());
  }
  co.key_file = keys.path() + "/missing.key";
  CHECK_FALSE(TargetClient::connect(endpoint, co).is_ok());
  to.key_file = keys.path() + "/missing.key";
  CHECK_FALSE(TargetServer::start(to, engine.get()).is_ok());
}


TEST_CASE("target: query_server_stats counts a target's calls and needs its key", "[admin][target][stats]") {
  stor::test::TempDir dir, keys;
  std::ofstream(dir.path() + "/obj") << "0123456789";
  const std::string key = keys.path() + "/fs.key", other = keys.path() + "/other.key";
  REQUIRE(make_target_key(key).is_ok());
  REQUIRE(make_target_key(other).is_ok());
  auto engine = IoEngine::create().value();
  TargetOptions to;
  to.listen = "tcp://127.0.0.1:0";
  to.dir = dir.path();
  to.key_file = key;
  auto server = TargetServer::start(to, engine.get());
  REQUIRE(server.is_ok());
  const std::string endpoint = (*server)->endpoint();

  ServerQueryOptions qo;
  qo.key_file = key;
  auto before = query_server_stats(endpoint, qo);
  REQUIRE(before.is_ok());
  CHECK(before->role == "ost");
  CHECK(before->get("requests", 99) == 0);
  CHECK(before->get("read_bytes", 99) == 0);
  CHECK(before->get("no_such_counter", 7) == 7);

  TargetClientOptions co;
  co.key_file = key;
  auto client = TargetClient::connect(endpoint, co);
  REQUIRE(client.is_ok());
  char buf[10];
  for (int i = 0; i < 3; ++i) {
    std::promise<Result<size_t>> done;
    (*client)->read_async("obj", buf, sizeof buf, 0, [&](Result<size_t> r) { done.set_value(r); });
    REQUIRE(done.get_future().get().is_ok());
  }
  std::promise<Result<size_t>> missing;
  (*client)->read_async("nope", buf, sizeof buf, 0, [&](Result<size_t> r) { missing.set_value(r); });
  CHECK_FALSE(missing.get_future().get().is_ok());

  auto after = query_server_stats(endpoint, qo);
  REQUIRE(after.is_ok());
  CHECK(after->get("requests") == 4);  // the stats calls themselves are not counted
  CHECK(after->get("errors") == 1);
  CHECK(after->get("read_bytes") == 30);
  CHECK(after->get("write_bytes") == 0);

  // Reachable but the wrong key: PermissionDenied; nothing listening: Unavailable.
  qo.key_file = other;
  CHECK(query_server_stats(endpoint, qo).status().code() == Code::kPermissionDenied);
  (*server)->stop();
  qo.key_file = key;
  auto gone = query_server_stats(endpoint, qo);
  REQUIRE_FALSE(gone.is_ok());
  CHECK((gone.status().code() == Code::kUnavailable || gone.status().code() == Code::kTimeout));
}
