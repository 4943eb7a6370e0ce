// stctl link / status / sync / demote / promote on a directory linked to another local directory.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "stor/store.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

using Run = stor::test::CommandRun;

Run stctl(const std::string& args) {
  Run r = stor::test::run_command(std::string(STCTL_PATH) + " " + args + " 2>&1");
  REQUIRE(r.exit_code != -2);
  return r;
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
  REQUIRE(link.exit_code == 0);
  CHECK(contains(link.out, "imported  2"));

  auto status = stctl("status " + ns);
  INFO(status.out);
  REQUIRE(status.exit_code == 0);
  CHECK(contains(status.out, "uncached"));
  CHECK(contains(status.out, "sub/b.txt"));
  CHECK(!fs::exists(ns + "/a.txt"));  // nothing fetched by link or status
  // A ranged read through the namespace.
  auto cat = stctl("cat --offset 1 --length 3 tier://" + ns + "/a.txt");
  CHECK(cat.exit_code == 0);
  CHECK(cat.out == "lph");

  REQUIRE(stctl("cp tier://" + ns + "/a.txt " + dir / "a.copy").exit_code == 0);
  std::ifstream in(dir / "a.copy");
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(got == "alpha");
  CHECK(contains(stctl("status " + ns + "/a.txt").out, "cached"));

  put(dir / "local.txt", "local data");
  REQUIRE(stctl("cp " + dir / "local.txt" + " tier://" + ns + "/out/local.txt").exit_code == 0);
  CHECK(contains(stctl("status " + ns + "/out").out, "dirty"));
  auto sync = stctl("sync " + ns);
  INFO(sync.out);
  REQUIRE(sync.exit_code == 0);
  CHECK(contains(sync.out, "exported  out/local.txt"));
  CHECK(fs::exists(cold + "/out/local.txt"));

  auto demote = stctl("demote " + ns + "/out/local.txt");
  INFO(demote.out);
  REQUIRE(demote.exit_code == 0);
  CHECK(contains(demote.out, "demoted"));
  CHECK(!fs::exists(ns + "/out/local.txt"));
  auto json = stctl("--json status " + ns + "/out/local.txt");
  CHECK(contains(json.out, "\"state\":\"demoted\""));
  REQUIRE(stctl("promote " + ns + "/out/local.txt").exit_code == 0);
  CHECK(fs::exists(ns + "/out/local.txt"));

  // Policy from the command line: everything idle for >= 0 s goes.
  auto policy = stctl("--set tier.demote_after=0 demote --policy " + ns);
  INFO(policy.out);
  REQUIRE(policy.exit_code == 0);
  CHECK(!fs::exists(ns + "/a.txt"));
  CHECK(!fs::exists(ns + "/out/local.txt"));

  CHECK(stctl("status " + dir / "elsewhere").exit_code == 1);
  CHECK(stctl("link " + ns).exit_code == 2);
}

TEST_CASE("stctl: a linked namespace with its fast tier on lustre://") {
  stor::test::TempDir dir;
  const std::string fsdir = dir / "lfs", ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/deep/x.bin", "from the cold tier");
  auto mkfs = stctl("mkfs -t 4 " + fsdir);
  INFO(mkfs.out);
  REQUIRE(mkfs.exit_code == 0);
  auto link = stctl("link --fast lustre://" + fsdir + " " + ns + " nvme://" + cold);
  INFO(link.out);
  REQUIRE(link.exit_code == 0);
  CHECK(contains(link.out, "lustre://" + fsdir));
  REQUIRE(stctl("cp tier://" + ns + "/deep/x.bin " + dir / "x.out").exit_code == 0);
  std::ifstream in(dir / "x.out");
  CHECK(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()) == "from the cold tier");
  // The fetched copy lives in the striped file system, not in the linked directory.
  CHECK(!fs::exists(ns + "/deep/x.bin"));
  auto ls = stctl("ls lustre://" + fsdir + "/deep");
  INFO(ls.out);
  CHECK(contains(ls.out, "x.bin"));
  put(dir / "y.txt", "written to lustre first");
  REQUIRE(stctl("cp " + dir / "y.txt" + " tier://" + ns + "/y.txt").exit_code == 0);
  CHECK(contains(stctl("status " + ns + "/y.txt").out, "dirty"));
  auto demote = stctl("demote " + ns + "/y.txt");
  INFO(demote.out);
  REQUIRE(demote.exit_code == 0);
  std::ifstream y(cold + "/y.txt");
  CHECK(std::string((std::istreambuf_iterator<char>(y)), std::istreambuf_iterator<char>()) == "written to lustre first");
  CHECK(!contains(stctl("ls lustre://" + fsdir).out, "y.txt"));  // released from the fast tier
  CHECK(stctl("link --fast lustre:///other " + ns + " nvme://" + cold).exit_code == 1);  // already linked otherwise
}

TEST_CASE("stctl: a link that fails leaves nothing behind, and a retry then succeeds") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  put(dir / "plain-file", "not a directory");
  auto state_left = [&](const std::string& d) { return fs::exists(d + "/.stor-tier"); };

  // Unknown scheme for the cold or the fast tier; a cold root that cannot be listed.
  for (const std::string& args : {"link " + ns + " bogus://x", "link --fast bogus://y " + ns + " nvme://" + cold,
                                  "link " + ns + " nvme://" + dir / "plain-file"}) {
    auto bad = stctl(args);
    INFO(args << " -> " << bad.out);
    CHECK(bad.exit_code == 1);
    CHECK(!state_left(ns));
  }
  CHECK(contains(stctl("link " + ns + " bogus://x").out, "unknown URI scheme"));
  // A directory the failed link would have created is not left either.
  CHECK(stctl("link " + dir / "new/ns" + " bogus://x").exit_code == 1);
  CHECK(!fs::exists(dir / "new"));
  // Not linked: status says so instead of failing on the bogus config.
  auto status = stctl("status " + ns);
  CHECK(status.exit_code == 1);
  CHECK(contains(status.out, "no linked directory"));

  auto link = stctl("link " + ns + " nvme://" + cold);
  INFO(link.out);
  REQUIRE(link.exit_code == 0);
  CHECK(contains(link.out, "imported  1"));
  CHECK(contains(stctl("status " + ns).out, "a.txt"));
  // Linked now: relinking elsewhere is refused and changes nothing.
  CHECK(stctl("link " + ns + " bogus://x").exit_code == 1);
  std::ifstream config(ns + "/.stor-tier/config");
  std::string text((std::istreambuf_iterator<char>(config)), std::istreambuf_iterator<char>());
  CHECK(contains(text, "cold=nvme://" + cold));
  CHECK(!contains(text, "bogus"));
}

TEST_CASE("stctl: tier.* settings reject signs, junk and overflow instead of wrapping") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  REQUIRE(stctl("link " + ns + " nvme://" + cold).exit_code == 0);
  REQUIRE(stctl("cp tier://" + ns + "/a.txt " + dir / "a.copy").exit_code == 0);  // now on the fast tier
  // -1 used to wrap to 2^64-1 s, i.e. -1 s once multiplied: everything was idle long enough.
  for (const char* bad_text : {"tier.demote_after=-1", "tier.demote_after=1x", "tier.demote_after=99999999999",
                                 "tier.demote_after=18446744073709551615", "tier.high_watermark=-1",
                                 "tier.policy_interval=-1", "tier.low_watermark= 5"}) {
    const std::string bad = bad_text;
    auto r = stctl("--set '" + bad + "' demote --policy " + ns);
    INFO(bad << " -> " << r.out);
    CHECK(r.exit_code == 1);
    CHECK(contains(r.out, bad.substr(5, bad.find('=') - 5)));
    CHECK(fs::exists(ns + "/a.txt"));
  }
}

TEST_CASE("stctl: ls -l of a linked directory with a trailing slash shows each entry's mode, mtime and tier") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  put(cold + "/sub/b.txt", "bravo!");
  REQUIRE(stctl("link " + ns + " nvme://" + cold).exit_code == 0);
  const std::string a_row = "{\"mode\":\"-rw-r--r--\",\"size\":\"5\",\"mtime\":\"2";  // a real timestamp
  const std::string sub_row = "{\"mode\":\"drwxr-xr-x\",\"size\":\"0\"";
  for (const std::string& uri : {"tier://" + ns, "tier://" + ns + "/", "tier://" + ns + "//"}) {
    auto ls = stctl("--json ls -l " + uri);
    INFO(uri << " -> " << ls.out);
    REQUIRE(ls.exit_code == 0);
    CHECK(contains(ls.out, a_row));
    CHECK(contains(ls.out, "\"tier\":\"uncached\",\"name\":\"a.txt\""));
    CHECK(contains(ls.out, sub_row));
  }
  auto sub = stctl("--json ls -l tier://" + ns + "/sub/");
  INFO(sub.out);
  CHECK(contains(sub.out, "{\"mode\":\"-rw-r--r--\",\"size\":\"6\""));
  CHECK(contains(sub.out, "\"tier\":\"uncached\",\"name\":\"b.txt\""));
}

TEST_CASE("stctl: status shows no last-read time for files never read") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  put(cold + "/b.txt", "bravo");
  REQUIRE(stctl("link " + ns + " nvme://" + cold).exit_code == 0);
  put(dir / "w.txt", "written, not read");
  REQUIRE(stctl("cp " + dir / "w.txt" + " tier://" + ns + "/w.txt").exit_code == 0);
  auto before = stctl("--json status " + ns);
  INFO(before.out);
  CHECK(contains(before.out, "\"last_read\":\"-\",\"reads\":\"0\",\"path\":\"a.txt\""));
  CHECK(contains(before.out, "\"last_read\":\"-\",\"reads\":\"0\",\"path\":\"w.txt\""));
  REQUIRE(stctl("cp tier://" + ns + "/a.txt " + dir / "a.copy").exit_code == 0);
  auto after = stctl("--json status " + ns);
  INFO(after.out);
  CHECK(contains(after.out, "\"last_read\":\"2"));  // a.txt: a real timestamp now
  CHECK(contains(after.out, "\"reads\":\"1\",\"path\":\"a.txt\""));
  CHECK(contains(after.out, "\"last_read\":\"-\",\"reads\":\"0\",\"path\":\"b.txt\""));
}

TEST_CASE("stctl: status, sync and demote run while another process has the namespace open") {
  stor::test::TempDir dir;
  const std::string ns = dir / "ns", cold = dir / "cold";
  fs::create_directories(ns);
  put(cold + "/a.txt", "alpha");
  REQUIRE(stctl("link " + ns + " nvme://" + cold).exit_code == 0);
  // This process reads a.txt and keeps it open, and writes b.txt.
  auto store = stor::Store::create().value();
  auto held = store->open("tier://" + ns + "/a.txt", stor::kOpenRead);
  REQUIRE(held.is_ok());
  char buf[8];
  REQUIRE(held->read(buf, sizeof buf, 0).is_ok());
  {
    auto w = store->open("tier://" + ns + "/b.txt", stor::kOpenWrite | stor::kOpenCreate);
    REQUIRE(w.is_ok());
    REQUIRE(w->write("bravo", 5, 0).is_ok());
    REQUIRE(w->close().is_ok());
  }
  auto status = stctl("status " + ns);  // was: Busy (the state was locked by this process)
  INFO(status.out);
  REQUIRE(status.exit_code == 0);
  CHECK(contains(status.out, "a.txt"));
  CHECK(contains(status.out, "dirty"));  // b.txt, written by this process
  auto sync = stctl("sync " + ns);
  INFO(sync.out);
  REQUIRE(sync.exit_code == 0);
  CHECK(contains(sync.out, "exported  b.txt"));
  CHECK(fs::exists(cold + "/b.txt"));
  // a.txt is open here: stctl may not pull its copy away.
  auto demote = stctl("demote " + ns + "/a.txt");
  INFO(demote.out);
  CHECK(demote.exit_code != 0);
  CHECK(contains(demote.out, "open"));
  CHECK(fs::exists(ns + "/a.txt"));
  REQUIRE(held->close().is_ok());
  CHECK(stctl("demote " + ns + "/a.txt").exit_code == 0);
  CHECK(!fs::exists(ns + "/a.txt"));
  // This process sees what stctl did without reopening.
  auto info = store->stat("tier://" + ns + "/b.txt");
  REQUIRE(info.is_ok());
  CHECK(!info->etag.empty());
}
