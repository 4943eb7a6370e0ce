#include <catch2/catch.hpp>
#include <cerrno>

#include "stor/backend.h"
#include "stor/status.h"

using namespace stor;

TEST_CASE("Uri::parse splits scheme, authority and path") {
  auto u = Uri::parse("nvme:///data/x.bin");
  REQUIRE(u.is_ok());
  CHECK(u->scheme == "nvme");
  CHECK(u->authority.empty());
  CHECK(u->path == "/data/x.bin");

  auto s3 = Uri::parse("s3express://bucket--usw2-az1--x-s3/prefix/key.parquet");
  REQUIRE(s3.is_ok());
  CHECK(s3->scheme == "s3express");
  CHECK(s3->authority == "bucket--usw2-az1--x-s3");
  CHECK(s3->path == "/prefix/key.parquet");
  CHECK(s3->to_string() == "s3express://bucket--usw2-az1--x-s3/prefix/key.parquet");

  auto upper = Uri::parse("LUSTRE:///mnt/fs/f");
  REQUIRE(upper.is_ok());
  CHECK(upper->scheme == "lustre");
}

TEST_CASE("Uri::parse treats bare paths as nvme") {
  for (const char* p : {"/abs/path", "rel/path", "a/b:c", "file"}) {
    auto u = Uri::parse(p);
    REQUIRE(u.is_ok());
    CHECK(u->scheme == "nvme");
    CHECK(u->path == p);
  }
}

TEST_CASE("Uri::parse rejects malformed input with InvalidArgument") {
  for (std::string_view bad : {std::string_view(""), std::string_view("nvme:/x"), std::string_view("nvme://"),
                               std::string_view("bad scheme:///x"), std::string_view("a\0b", 3)}) {
    auto u = Uri::parse(bad);
    REQUIRE_FALSE(u.is_ok());
    CHECK(u.status().code() == Code::kInvalidArgument);
    CHECK_FALSE(u.status().message().empty());
  }
}

TEST_CASE("Status maps errno and formats messages") {
  CHECK(Status::from_errno(ENOENT, "open /x").code() == Code::kNotFound);
  CHECK(Status::from_errno(EACCES, "open /x").code() == Code::kPermissionDenied);
  CHECK(Status::from_errno(ENOSPC, "write").code() == Code::kNoSpace);
  CHECK(Status::from_errno(EINVAL, "read").code() == Code::kInvalidArgument);
  auto s = Status::from_errno(ENOENT, "open /x");
  CHECK(s.to_string() == "NotFound: open /x: No such file or directory");
  CHECK(Status().is_ok());
  CHECK(Status().to_string() == "OK");
}

TEST_CASE("Result carries a value or a status") {
  Result<int> ok = 7;
  REQUIRE(ok.is_ok());
  CHECK(*ok == 7);
  Result<int> bad = Status::NotFound("x");
  REQUIRE_FALSE(bad.is_ok());
  CHECK(bad.status().code() == Code::kNotFound);
  // An OK status cannot pose as a value: it becomes an Internal error.
  Result<int> odd = Status::ok();
  CHECK(odd.status().code() == Code::kInternal);
}

TEST_CASE("capabilities_to_string names the bits") {
  CHECK(capabilities_to_string(kCapRead | kCapWrite | kCapStriping) == "read,write,striping");
  CHECK(capabilities_to_string(0).empty());
}
