// stor-target hardening: object paths never leave the target directory (symlinks are refused),
// and idle or stalled connections cannot lock valid clients out.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "core/transport/object_protocol.h"
#include "core/transport/object_service.h"
#include "core/transport/remote_object.h"
#include "core/transport/socket_io.h"
#include "core/transport/transport.h"
#include "core/transport/wire.h"
#include "stor/engine.h"
#include "tests/core/transport/target_process.h"
#include "test_util.h"

using namespace stor;
using namespace stor::transport;
using stor::test::TargetProcess;
using stor::test::TempDir;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One object call, however it reaches the service: status plus reply payload bytes.
struct Outcome {
  Status status;
  std::string payload;
};
using CallFn = std::function<Outcome(ObjectOp op, const ObjectCall& c, std::string_view payload)>;

// A target directory with three planted symlinks (to a file outside, to a directory outside and
// to "/") and one honest object; `outside` holds the file the links point at.
struct Planted {
  TempDir outside, target;
  std::string secret_path;
  Planted() {
    secret_path = outside / "secret";
    std::ofstream(secret_path) << "SECRET";
    std::filesystem::create_directory(outside / "sub");
    std::ofstream(outside / "sub/inner") << "INNER";
    std::filesystem::create_symlink(secret_path, target / "lf");
    std::filesystem::create_symlink(outside.path(), target / "ld");
    std::filesystem::create_symlink("/", target / "lr");
    std::filesystem::create_directory(target / "real");
    std::filesystem::create_symlink(outside.path(), target / "real/ld");  // deeper down
  }
  // Names that must not resolve: the links themselves and paths through them. All of them aim at
  // the scratch directory `outside` (through "/" too), never at system files: a regression
  // must not damage the machine running the test.
  std::vector<std::string> bad_names() const {
    std::string via_root = "lr" + outside.path();  // "lr/tmp/stor-test-XXXX"
    return {"lf", "ld", "lr", "ld/secret", "ld/sub/inner", "ld/new", "ld/sub/new", via_root + "/secret",
            via_root + "/new", "real/ld/secret", "real/ld/new"};
  }
  void check_outside_untouched() const {
    CHECK(slurp(secret_path) == "SECRET");
    CHECK(slurp(outside / "sub/inner") == "INNER");
    size_t n = 0;
    for (auto& e : std::filesystem::recursive_directory_iterator(outside.path())) (void)e, ++n;
    CHECK(n == 3);  // secret, sub, sub/inner: nothing created
    for (const char* l : {"lf", "ld", "lr", "real/ld"}) CHECK(std::filesystem::is_symlink(target / l));
  }
};

// Every operation through every planted link fails with PermissionDenied and touches nothing.
void check_links_refused(const Planted& p, const CallFn& call) {
  for (const auto& name : p.bad_names()) {
    INFO("object name " << name);
    std::vector<std::pair<ObjectOp, ObjectCall>> ops = {
        {ObjectOp::kRead, {name, 0, 6, 0}},     {ObjectOp::kWrite, {name, 0, 4, 0}},
        {ObjectOp::kTruncate, {name, 0, 0, 0}}, {ObjectOp::kStat, {name, 0, 0, 0}},
        {ObjectOp::kSync, {name, 0, 0, 0}},     {ObjectOp::kRemove, {name, 0, 0, 0}},
    };
    for (auto& [op, c] : ops) {
      INFO("opcode " << static_cast<int>(op));
      auto r = call(op, c, op == ObjectOp::kWrite ? std::string_view("EVIL") : std::string_view());
      CHECK(r.status.code() == Code::kPermissionDenied);
      CHECK_THAT(r.status.message(), Catch::Contains("symbolic link"));
      CHECK(r.payload.empty());
    }
  }
  // The listing shows the honest object only: links are neither listed nor followed.
  auto l = call(ObjectOp::kList, ObjectCall{"", 0, 0, 0}, {});
  REQUIRE(l.status.is_ok());
  auto entries = decode_object_entries(l.payload).value();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].name == "real/ok");
  CHECK(entries[0].size == 2);
  p.check_outside_untouched();
}

// Honest objects, in and below the directory, still work.
void check_honest_objects(const Planted& p, const CallFn& call) {
  REQUIRE(call(ObjectOp::kWrite, {"real/ok", 0, 2, 0}, "ok").status.is_ok());
  REQUIRE(call(ObjectOp::kWrite, {"new/deep/obj", 0, 3, 0}, "abc").status.is_ok());
  auto r = call(ObjectOp::kRead, {"new/deep/obj", 0, 3, 0}, {});
  REQUIRE(r.status.is_ok());
  CHECK(r.payload == "abc");
  CHECK(call(ObjectOp::kStat, {"new/deep/obj", 0, 0, 0}, {}).status.is_ok());
  CHECK(call(ObjectOp::kRemove, {"new/deep/obj", 0, 0, 0}, {}).status.is_ok());
  CHECK(call(ObjectOp::kStat, {"new/deep/obj", 0, 0, 0}, {}).status.code() == Code::kNotFound);
  CHECK(slurp(p.target / "real/ok") == "ok");
}

CallFn in_process(ObjectService& svc) {
  return [&svc](ObjectOp op, const ObjectCall& c, std::string_view payload) {
    std::vector<std::byte> reply(op == ObjectOp::kList ? 65536 : c.length);
    std::string control = encode_object_call(c);
    ServerCall call{static_cast<uint16_t>(op), control,
                    std::as_bytes(std::span<const char>(payload.data(), payload.size())), reply};
    ServerResult r = svc.handle(call);
    Outcome o{r.status, {}};
    if (r.status.is_ok()) o.payload.assign(reinterpret_cast<const char*>(reply.data()), r.payload_len);
    return o;
  };
}

CallFn over_channel(Channel& ch) {
  return [&ch](ObjectOp op, const ObjectCall& c, std::string_view payload) {
    std::vector<std::byte> reply(op == ObjectOp::kList ? 65536 : c.length);
    auto r = ch.call(static_cast<uint16_t>(op), encode_object_call(c),
                     std::as_bytes(std::span<const char>(payload.data(), payload.size())), reply);
    Outcome o;
    if (!r) o.status = r.status();
    else o.payload.assign(reinterpret_cast<const char*>(reply.data()), r->payload_len);
    return o;
  };
}

}  // namespace

TEST_CASE("object service refuses symlinks in and below its directory", "[transport][security]") {
  auto engine = IoEngine::create().value();
  for (bool walk : {false, true}) {
    INFO((walk ? "O_NOFOLLOW component walk" : "openat2"));
    Planted p;
    ObjectServiceOptions o;
    o.force_component_walk = walk;
    auto svc = ObjectService::create(p.target.path(), engine.get(), o).value();
    if (walk) CHECK_FALSE(svc->uses_openat2());
    else CHECK(svc->uses_openat2());  // Linux >= 5.6 without a seccomp filter refusing it
    auto call = in_process(*svc);
    check_honest_objects(p, call);
    check_links_refused(p, call);
    // A link planted where a parent directory would be created is not followed either.
    std::filesystem::create_symlink(p.outside.path(), p.target / "real/later");
    auto r = call(ObjectOp::kWrite, {"real/later/x/y", 0, 1, 0}, "z");
    CHECK(r.status.code() == Code::kPermissionDenied);
    p.check_outside_untouched();
  }
}

TEST_CASE("stor-target refuses symlinks in its directory", "[transport][security]") {
  Planted p;
  TargetProcess t(STOR_TARGET_PATH, "tcp://127.0.0.1:0", p.target.path());
  auto ch = Transport::create("tcp").value()->connect(t.endpoint()).value();
  auto call = over_channel(*ch);
  check_honest_objects(p, call);
  check_links_refused(p, call);
  CHECK_FALSE(ch->broken());
  CHECK(t.stop_cleanly());
}
