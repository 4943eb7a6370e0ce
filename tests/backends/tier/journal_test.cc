// The tiering state (checkpoint + journal lines) is read from disk and trusted by nothing: every
// CRC-valid line is validated, bad ones are Corruption naming the file and line, and only a torn
// last journal line (a crash mid-append) is skipped.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "backends/tier/journal.h"
#include "backends/tier/notify_listener.h"
#include "stor/store.h"
#include "stor/tiering.h"
#include "test_util.h"

using namespace stor;
using namespace stor::tiering;
using namespace stor::tiering::internal;

namespace {

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

// A line framed like the journal writer frames it: "crc32(payload) payload\n".
std::string framed(const std::string& payload) {
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", crc32(payload.data(), payload.size()));
  return std::string(crc) + ' ' + payload + '\n';
}

const std::string kGood = "P\tdir/a.bin\t1\t100\t5\t\"etag1\"\t6\t7\t8";

void write(const std::string& path, const std::string& body) { std::ofstream(path, std::ios::binary) << body; }

Status open_with_journal(const stor::test::TempDir& dir, const std::string& journal,
                         std::map<std::string, Record>* records) {
  write(dir / "journal", journal);
  auto j = Journal::open(dir.path(), records);
  return j.status();
}

}  // namespace

TEST_CASE("valid journal lines load; a torn last line is skipped", "[tiering][journal]") {
  stor::test::TempDir dir;
  std::map<std::string, Record> records;
  std::string body = framed(kGood) + framed("P\tb\t0\t0\t0\t\t0\t0\t0") + framed("E\tb");
  body += framed("P\tc%09d\t2\t3\t-4\t\"e\"\t-5\t6\t7").substr(0, 12);  // torn: no CRC match, last line
  REQUIRE(open_with_journal(dir, body, &records).is_ok());
  REQUIRE(records.size() == 1);
  const Record& r = records.at("dir/a.bin");
  CHECK(r.residency == Residency::kCached);
  CHECK(r.size == 100);
  CHECK(r.cold_etag == "\"etag1\"");
  CHECK(r.reads == 8);
}

TEST_CASE("an export intent (10th field) round-trips through journal and checkpoint", "[tiering][journal]") {
  stor::test::TempDir dir;
  std::map<std::string, Record> records;
  REQUIRE(open_with_journal(dir, framed(kGood) + framed("P\tb\t0\t5\t1\t\t0\t0\t0\t5:0a0b0c0d"), &records).is_ok());
  CHECK(!records.at("dir/a.bin").export_pending);
  const Record& b = records.at("b");
  CHECK(b.export_pending);
  CHECK(b.export_size == 5);
  CHECK(b.export_crc == 0x0a0b0c0du);
  // Open compacted both into the checkpoint; a second open reads the intent back from there.
  std::map<std::string, Record> again;
  {
    auto j = Journal::open(dir.path(), &again);
    REQUIRE(j.is_ok());
  }
  CHECK(again.at("b").export_pending);
  CHECK(again.at("b").export_crc == 0x0a0b0c0du);
  CHECK(!again.at("dir/a.bin").export_pending);
}

TEST_CASE("a rename intent (11th field) round-trips, with or without an export intent", "[tiering][journal]") {
  stor::test::TempDir dir;
  std::map<std::string, Record> records;
  REQUIRE(open_with_journal(dir, framed("P\tnew\t1\t5\t1\t\"e\"\t0\t0\t0\t\told%09name") +
                                     framed("P\tb\t0\t5\t1\t\t0\t0\t0\t5:0a0b0c0d\tc"), &records).is_ok());
  CHECK(records.at("new").renamed_from == "old\tname");
  CHECK(!records.at("new").export_pending);
  CHECK(records.at("b").renamed_from == "c");
  CHECK(records.at("b").export_pending);
  std::map<std::string, Record> again;
  {
    auto j = Journal::open(dir.path(), &again);
    REQUIRE(j.is_ok());
  }
  CHECK(again.at("new").renamed_from == "old\tname");
  CHECK(again.at("b").export_crc == 0x0a0b0c0du);
}

TEST_CASE("CRC-valid journal lines with bad fields are Corruption naming the line", "[tiering][journal]") {
  stor::test::TempDir dir;
  std::string bad;
  std::string field;
  SECTION("residency out of range") {
    bad = "P\tx\t7\t1\t1\t\"e\"\t1\t1\t1";
    field = "residency";
  }
  SECTION("negative size") {
    bad = "P\tx\t1\t-1\t1\t\"e\"\t1\t1\t1";
    field = "size";
  }
  SECTION("size past 2^63") {
    bad = "P\tx\t1\t18446744073709551615\t1\t\"e\"\t1\t1\t1";
    field = "size";
  }
  SECTION("number with trailing junk") {
    bad = "P\tx\t1\t12abc\t1\t\"e\"\t1\t1\t1";
    field = "size";
  }
  SECTION("path escaping the namespace") {
    bad = "P\t../etc/passwd\t1\t1\t1\t\"e\"\t1\t1\t1";
    field = "path";
  }
  SECTION("absolute path") {
    bad = "P\t/etc/passwd\t1\t1\t1\t\"e\"\t1\t1\t1";
    field = "path";
  }
  SECTION("empty path") {
    bad = "E\t";
    field = "path";
  }
  SECTION("path with NUL") {
    bad = "P\ta%00b\t1\t1\t1\t\"e\"\t1\t1\t1";
    field = "path";
  }
  SECTION("bad escape") {
    bad = "P\ta%zzb\t1\t1\t1\t\"e\"\t1\t1\t1";
    field = "escape";
  }
  SECTION("etag with a newline (would reach an HTTP header)") {
    bad = "P\tx\t1\t1\t1\t\"e%0Ax: y\"\t1\t1\t1";
    field = "etag";
  }
  SECTION("uncached file without a cold validator") {
    bad = "P\tx\t2\t1\t1\t\t1\t1\t1";
    field = "etag";
  }
  SECTION("export intent without SIZE:") {
    bad = "P\tx\t0\t1\t1\t\t1\t1\t1\tdeadbeef";
    field = "export intent";
  }
  SECTION("export intent with a CRC that is not 8 hex digits") {
    bad = "P\tx\t0\t1\t1\t\t1\t1\t1\t5:-eadbeef";
    field = "export intent";
  }
  SECTION("rename source escaping the namespace") {
    bad = "P\tx\t0\t1\t1\t\t1\t1\t1\t\t../y";
    field = "rename source";
  }
  SECTION("rename source naming the record itself") {
    bad = "P\tx\t0\t1\t1\t\t1\t1\t1\t\tx";
    field = "rename source";
  }
  SECTION("wrong field count") {
    bad = "P\tx\t1\t1";
    field = "fields";
  }
  SECTION("unknown record type") {
    bad = "Z\tx";
    field = "record type";
  }
  std::map<std::string, Record> records;
  // The bad line is the last one: a valid CRC means it is not a torn append.
  Status s = open_with_journal(dir, framed(kGood) + framed(bad), &records);
  INFO(s.message());
  CHECK(s.code() == Code::kCorruption);
  CHECK(contains(s.message(), "journal line 2"));
  CHECK(contains(s.message(), field));
  // Nothing was compacted over the damaged state.
  std::ifstream in(dir / "journal", std::ios::binary);
  std::string kept((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(contains(kept, framed(bad)));
}

TEST_CASE("a bad CRC before the last journal line, or anywhere in the checkpoint, is Corruption", "[tiering][journal]") {
  stor::test::TempDir dir;
  std::map<std::string, Record> records;
  std::string torn = framed(kGood);
  torn[0] = torn[0] == '0' ? '1' : '0';
  Status s = open_with_journal(dir, framed(kGood) + torn + framed(kGood), &records);
  INFO(s.message());
  CHECK(s.code() == Code::kCorruption);
  CHECK(contains(s.message(), "journal line 2"));

  stor::test::TempDir dir2;
  write(dir2 / "checkpoint", framed(kGood) + torn);
  std::map<std::string, Record> r2;
  auto j = Journal::open(dir2.path(), &r2);
  INFO(j.status().message());
  CHECK(j.status().code() == Code::kCorruption);
  CHECK(contains(j.status().message(), "checkpoint line 2"));
}

TEST_CASE("replaying arbitrary journal bytes never crashes", "[tiering][journal]") {
  std::mt19937_64 rng(11);
  const std::string good = framed(kGood) + framed("E\tdir/a.bin") + framed("P\tq\t3\t9\t1\t\"v\"\t1\t1\t1");
  for (int round = 0; round < 2000; ++round) {
    std::string text = good;
    for (int flips = 1 + static_cast<int>(rng() % 3); flips-- > 0;) text[rng() % text.size()] = static_cast<char>(rng());
    std::map<std::string, Record> records;
    Status s = replay_lines(text, "journal", /*is_journal=*/true, &records);
    if (!s.is_ok()) CHECK(s.code() == Code::kCorruption);
    for (const auto& [path, r] : records) CHECK(path == r.path);
  }
  // A CRC-valid line of random bytes.
  for (int round = 0; round < 2000; ++round) {
    std::string payload(rng() % 64, '\0');
    for (auto& c : payload) c = "PE\t0123456789%-aZ/."[rng() % 19];
    std::map<std::string, Record> records;
    (void)replay_lines(framed(payload), "journal", true, &records);
  }
}

// The link's DIR/.stor-tier/config is read from disk too: numbers must be numbers in range.
TEST_CASE("tier link config with a negative or overflowing number is refused", "[tiering][config]") {
  stor::test::TempDir dir;
  const std::string fast = dir / "ns", cold = dir / "bucket";
  std::filesystem::create_directories(fast);
  std::filesystem::create_directories(cold);
  std::string key, value;
  SECTION("negative seconds (stoull wrapped it to a negative demote_after)") {
    key = "demote_after";
    value = "-1";
  }
  SECTION("seconds overflowing nanoseconds") {
    key = "policy_interval";
    value = "99999999999";
  }
  SECTION("trailing junk") {
    key = "high_watermark";
    value = "10 GB";
  }
  SECTION("not a boolean (was silently read as false)") {
    key = "auto_export";
    value = "maybe";
  }
  {
    auto store = Store::create().value();
    auto tier = store->backend(Uri::parse("tier:///").value());
    REQUIRE(tier.is_ok());
    REQUIRE(create_link(**tier, fast, "nvme://" + cold).is_ok());
  }
  std::ofstream(fast + "/.stor-tier/config", std::ios::app) << key << "=" << value << "\n";
  auto store = Store::create().value();
  auto st = store->stat("tier://" + fast + "/x");
  INFO(st.status().message());
  CHECK(st.status().code() == Code::kInvalidArgument);
  CHECK(contains(st.status().message(), key + "='" + value + "'"));
}

TEST_CASE("tier link config takes units on durations and sizes", "[tiering][config]") {
  stor::test::TempDir dir;
  const std::string fast = dir / "ns", cold = dir / "bucket";
  std::filesystem::create_directories(fast);
  std::filesystem::create_directories(cold);
  {
    auto store = Store::create().value();
    auto tier = store->backend(Uri::parse("tier:///").value());
    REQUIRE(tier.is_ok());
    REQUIRE(create_link(**tier, fast, "nvme://" + cold).is_ok());
  }
  std::ofstream(fast + "/.stor-tier/config", std::ios::app)
      << "demote_after=2h\npolicy_interval=0\nhigh_watermark=1G\nlow_watermark=512MiB\nauto_export=yes\n";
  auto store = Store::create().value();
  auto st = store->stat("tier://" + fast + "/x");
  INFO(st.status().message());
  CHECK(st.status().code() == Code::kNotFound);  // the namespace opened; the file is just absent
}

// State files are rewritten through checkpoint.tmp and appended to: planted symlinks must not
// redirect those writes.
TEST_CASE("symlinks planted as the journal or checkpoint.tmp are not written through", "[tiering][journal]") {
  stor::test::TempDir dir;
  const std::string outside = dir / "outside.txt";
  std::ofstream(outside, std::ios::binary) << std::string(3000, 'k');
  const std::string state = dir / "state";
  std::filesystem::create_directories(state);
  SECTION("checkpoint.tmp") { std::filesystem::create_symlink(outside, state + "/checkpoint.tmp"); }
  SECTION("journal") { std::filesystem::create_symlink(outside, state + "/journal"); }
  std::map<std::string, Record> records;
  auto j = Journal::open(state, &records);
  Record dirty;
  dirty.path = "a";
  dirty.residency = Residency::kDirty;
  if (j.is_ok()) CHECK_FALSE((*j)->put(dirty, true).is_ok());
  CHECK(std::filesystem::file_size(outside) == 3000);
}

TEST_CASE("tiering: bucket notification bodies are parsed strictly; junk is refused, never crashes") {
  using stor::tiering::internal::parse_bucket_events;
  auto ok = parse_bucket_events(
      R"({"Records":[{"eventSource":"ceph:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},)"
      R"("object":{"key":"d/a+b%41.txt","size":5,"eTag":"5d41"}}},)"
      R"({"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{"bucket":{"name":"b"},"object":{"key":"d/a+b%41.txt"}}}]})");
  REQUIRE(ok.is_ok());
  REQUIRE(ok->size() == 2);
  CHECK((*ok)[0].key == "d/a+b%41.txt");  // Ceph sends keys as they are
  CHECK((*ok)[0].etag == "5d41");
  CHECK(!(*ok)[0].removed);
  CHECK((*ok)[1].key == "d/a bA.txt");  // AWS: URL-encoded, '+' for space
  CHECK((*ok)[1].removed);
  for (const char* bad : {"", "{", "[]", "{\"Records\":{}}", "{\"Records\":[{\"eventName\":\"x\"}]}",
                          "{\"Records\":[]} trailing", "{\"Records\":[{\"eventName\":\"x\",\"s3\":{\"bucket\":{\"name\":\"b\"},"
                          "\"object\":{\"key\":\"%zz\"}}}]}"}) {
    INFO(bad);
    CHECK(parse_bucket_events(bad).status().code() == stor::Code::kInvalidArgument);
  }
  CHECK(!parse_bucket_events(std::string(100000, '[')).is_ok());  // depth-limited, no stack overflow
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 200, '\0');
    for (auto& c : junk) c = "{}[]\":,\\ aeu0123ObjectRecords"[rng() % 30];
    (void)parse_bucket_events(junk);
  }
}
