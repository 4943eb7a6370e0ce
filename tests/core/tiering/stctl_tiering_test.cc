// stctl link / status / sync / demote / promote on a directory linked to another local directory.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

struct Run {
  int code;
  std::string out;
};

Run stctl(const std::string& args) {
  const std::string cmd = std::string(STCTL_PATH) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

void put(const std::string& path, const std::string& body) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << body;
}

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

}  // namespace

TEST_CASE("stctl: link, status, cp through tier://, sync, demote, promote") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  put(cold + "/sub/b.txt", "bravo!");

  auto link = stctl("link " + ns + " nvme://" + cold);
  INFO(link.out);
  REQUIRE(link.code == 0);
  CHECK(contains(link.out, "imported  2"));

  auto status = stctl("status " + ns);
  INFO(status.out);
  REQUIRE(status.code == 0);
  CHECK(contains(status.out, "uncached"));
  CHECK(contains(status.out, "sub/b.txt"));
  CHECK(!fs::exists(ns + "/a.txt"));  // nothing fetched by link or status

  REQUIRE(stctl("cp tier://" + ns + "/a.txt " + dir / "a.copy").code == 0);
  std::ifstream in(dir / "a.copy");
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(got == "alpha");
  CHECK(contains(stctl("status " + ns + "/a.txt").out, "cached"));

  put(dir / "local.txt", "local data");
  REQUIRE(stctl("cp " + dir / "local.txt" + " tier://" + ns + "/out/local.txt").code == 0);
  CHECK(contains(stctl("status " + ns + "/out").out, "dirty"));
  auto sync = stctl("sync " + ns);
  INFO(sync.out);
  REQUIRE(sync.code == 0);
  CHECK(contains(sync.out, "exported  out/local.txt"));
  CHECK(fs::exists(cold + "/out/local.txt"));

  auto demote = stctl("demote " + ns + "/out/local.txt");
  INFO(demote.out);
  REQUIRE(demote.code == 0);
  CHECK(contains(demote.out, "demoted"));
  CHECK(!fs::exists(ns + "/out/local.txt"));
  auto json = stctl("--json status " + ns + "/out/local.txt");
  CHECK(contains(json.out, "\"state\":\"demoted\""));
  REQUIRE(stctl("promote " + ns + "/out/local.txt").code == 0);
  CHECK(fs::exists(ns + "/out/local.txt"));

  // Policy from the command line: everything idle for >= 0 s goes.
  auto policy = stctl("--set tier.demote_after=0 demote --policy " + ns);
  INFO(policy.out);
  REQUIRE(policy.code == 0);
  CHECK(!fs::exists(ns + "/a.txt"));
  CHECK(!fs::exists(ns + "/out/local.txt"));

  CHECK(stctl("status " + dir / "elsewhere").code == 1);
  CHECK(stctl("link " + ns).code == 2);
}
