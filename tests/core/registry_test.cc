// Backend registration: STOR_REGISTER_BACKEND and the function behind it.
#include <catch2/catch.hpp>

#include <algorithm>

#include "stor/register_backend.h"
#include "stor/store.h"
#include "test_util.h"

using namespace stor;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Result<std::shared_ptr<Backend>> no_backend(const BackendContext&) {
  return Status::Unsupported("test factory");
}
}  // namespace

// Registered while the test binary loads, like the built-in backends.
STOR_REGISTER_BACKEND("registry-test-macro", [](const BackendContext& ctx) { return no_backend(ctx); });

TEST_CASE("STOR_REGISTER_BACKEND registers at load time") {
  auto f = BackendRegistry::global().find("registry-test-macro");
  REQUIRE(f.is_ok());
  CHECK((*f)(BackendContext{}).status().message() == "test factory");
}

TEST_CASE("every built-in backend is registered once under its scheme") {
  auto store = Store::create();  // makes sure libstor's initialisers ran
  REQUIRE(store.is_ok());
  const auto schemes = BackendRegistry::global().schemes();
  for (const char* s : {"nvme", "lustre", "s3", "s3express", "tier"}) {
    INFO(s);
    CHECK(std::count(schemes.begin(), schemes.end(), s) == 1);
  }
}

TEST_CASE("a second registration of a scheme is AlreadyExists naming the scheme and the source") {
  for (const char* taken : {"nvme", "s3", "tier", "registry-test-macro"}) {
    INFO(taken);
    Status s = internal::register_builtin_backend(taken, no_backend, "second_copy.cc");
    CHECK(s.code() == Code::kAlreadyExists);
    CHECK(contains(s.message(), std::string("'") + taken + "'"));
    CHECK(contains(s.message(), "second_copy.cc"));
  }
  // The first factory stays.
  CHECK((*BackendRegistry::global().find("registry-test-macro"))(BackendContext{}).status().message() == "test factory");

  CHECK(internal::register_builtin_backend("registry-test-fresh", no_backend, "here.cc").is_ok());
  CHECK(BackendRegistry::global().find("registry-test-fresh").is_ok());
  CHECK(internal::register_builtin_backend("registry-test-fresh", no_backend, "here.cc").code() == Code::kAlreadyExists);
  CHECK(internal::register_builtin_backend("", no_backend, "here.cc").code() == Code::kInvalidArgument);
  CHECK(internal::registered_or_abort(Status::ok()));
}

TEST_CASE("a program linking two backends for one scheme aborts at load time, naming both") {
  auto r = stor::test::run_command(std::string(STOR_TEST_REGISTRY_COLLISION) + " 2>&1");
  INFO(r.out);
  CHECK(r.exit_code == -1);  // killed by SIGABRT, main() never ran
  CHECK_FALSE(contains(r.out, "main() ran"));
  CHECK(contains(r.out, "stor: AlreadyExists: built-in backend 'nvme' (" ));
  CHECK(contains(r.out, "registry_collision.cc"));
  CHECK(contains(r.out, "already registered"));
}
