#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "test_util.h"

namespace {

struct Run {
  int exit_code;
  std::string out;  // stdout and stderr
};

Run stctl(const std::string& args) {
  std::string cmd = std::string(STOR_TEST_STCTL) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("stctl version and help") {
  auto v = stctl("version");
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("stctl 0.") != std::string::npos);
  CHECK(v.out.find("nvme") != std::string::npos);
  auto j = stctl("--json version");
  CHECK(j.exit_code == 0);
  CHECK(j.out.find("\"version\":\"") != std::string::npos);
  CHECK(stctl("help cp").out.find("usage: stctl cp SRC DST") != std::string::npos);
  CHECK(stctl("frobnicate").exit_code == 2);
  CHECK(stctl("").exit_code == 2);
}

TEST_CASE("stctl cp copies between nvme paths and info describes the result") {
  stor::test::TempDir dir;
  auto data = stor::test::pattern((20 << 20) + 12345, 21);  // several chunks plus a tail
  {
    std::ofstream out(dir / "src", std::ios::binary);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  auto cp = stctl("cp nvme://" + (dir / "src") + " nvme://" + (dir / "dst"));
  INFO(cp.out);
  REQUIRE(cp.exit_code == 0);
  CHECK(slurp(dir / "dst") == std::string(data.begin(), data.end()));

  // A bare path is nvme too; an existing destination is truncated first.
  auto small = stctl("cp nvme://" + (dir / "dst") + " " + (dir / "dst2"));
  REQUIRE(small.exit_code == 0);
  { std::ofstream(dir / "tiny") << "abc"; }
  REQUIRE(stctl("cp " + (dir / "tiny") + " " + (dir / "dst2")).exit_code == 0);
  CHECK(slurp(dir / "dst2") == "abc");

  auto info = stctl("info nvme://" + (dir / "dst"));
  REQUIRE(info.exit_code == 0);
  CHECK(info.out.find("backend") != std::string::npos);
  CHECK(info.out.find(std::to_string(data.size())) != std::string::npos);
  auto json = stctl("--json info nvme://" + (dir / "dst"));
  CHECK(json.out.find("\"size\":\"" + std::to_string(data.size()) + "\"") != std::string::npos);
}

TEST_CASE("stctl cp between nvme and a plugin backend") {
  stor::test::TempDir dir;
  { std::ofstream(dir / "src") << "through the plugin and back"; }
  // One process per command: mem:// lives in memory, so copy there and back in one run is not
  // possible; instead check that the plugin scheme resolves and the copy to it succeeds.
  auto cp = stctl("--plugins " STOR_TEST_PLUGIN_DIR_PATH " cp " + (dir / "src") + " mem://b/obj");
  INFO(cp.out);
  CHECK(cp.exit_code == 0);
}

TEST_CASE("stctl reports errors with exit code 1 and a message") {
  stor::test::TempDir dir;
  auto missing = stctl("cp " + (dir / "nope") + " " + (dir / "out"));
  CHECK(missing.exit_code == 1);
  CHECK(missing.out.find("NotFound") != std::string::npos);
  auto scheme = stctl("info warp://x/y");
  CHECK(scheme.exit_code == 1);
  CHECK(scheme.out.find("unknown URI scheme") != std::string::npos);
  auto dircp = stctl("cp " + dir.path() + " " + (dir / "x"));
  CHECK(dircp.exit_code == 1);
  CHECK(stctl("bench --bs 0 " + (dir / "b")).exit_code == 1);
  CHECK(stctl("bench --rw sideways " + (dir / "b")).exit_code == 2);
}

TEST_CASE("stctl bench prints IOPS and bandwidth") {
  stor::test::TempDir dir;
  auto r = stctl("--json bench --rw randread --bs 4k --qd 8 --size 8M --runtime 0.3 " + (dir / "b"));
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("\"iops\":\"") != std::string::npos);
  CHECK(r.out.find("\"ops\":\"0\"") == std::string::npos);
  auto w = stctl("bench --rw write --bs 1M --qd 4 --size 16M --runtime 0.3 " + (dir / "w"));
  INFO(w.out);
  REQUIRE(w.exit_code == 0);
  CHECK(w.out.find("MiB/s") != std::string::npos);
}
