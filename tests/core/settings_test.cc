// stor::Settings and the strict value parsers behind every backend setting and tool number.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "stor/settings.h"

using namespace stor;
using std::chrono::milliseconds;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("parse_uint takes plain digits only and refuses overflow") {
  CHECK(*parse_uint("0") == 0);
  CHECK(*parse_uint("42") == 42);
  CHECK(*parse_uint("18446744073709551615") == UINT64_MAX);
  CHECK(*parse_uint("0755", 8) == 0755);
  CHECK(*parse_uint("ff", 16) == 255);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "0x10", "1e3", "1.0", "12abc", "18446744073709551616",
                          "99999999999999999999"}) {
    INFO(bad);
    auto r = parse_uint(bad);
    CHECK(r.status().code() == Code::kInvalidArgument);
  }
  CHECK_FALSE(parse_uint("8", 8).is_ok());
  CHECK(contains(parse_uint("x7").status().message(), "'x7'"));
}

TEST_CASE("parse_size accepts binary units in any case, refuses junk and overflow") {
  CHECK(*parse_size("65536") == 65536);
  CHECK(*parse_size("0") == 0);
  CHECK(*parse_size("12B") == 12);
  for (const char* k : {"64K", "64k", "64KB", "64kb", "64Ki", "64KiB", "64kib"}) {
    INFO(k);
    CHECK(*parse_size(k) == 65536);
  }
  CHECK(*parse_size("1M") == (1ull << 20));
  CHECK(*parse_size("2g") == (2ull << 30));
  CHECK(*parse_size("5GiB") == (5ull << 30));
  CHECK(*parse_size("3T") == (3ull << 40));
  CHECK(*parse_size("16777215T") == (16777215ull << 40));  // the largest T that fits
  for (const char* bad : {"", "K", "-1", "-1K", " 5", "5 ", "1Q", "1KK", "1Kx", "1.5M", "x1M", "0x10",
                          "16777216T", "17179869184G", "18014398509481984K", "99999999999999999999"}) {
    INFO(bad);
    CHECK(parse_size(bad).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("parse_bool knows four spellings each way and nothing else") {
  for (const char* t : {"1", "true", "yes", "on", "TRUE", "On"}) CHECK(*parse_bool(t));
  for (const char* f : {"0", "false", "no", "off", "False", "NO"}) CHECK_FALSE(*parse_bool(f));
  for (const char* bad : {"", "2", "y", "tru", " true", "enabled"}) {
    INFO(bad);
    CHECK(parse_bool(bad).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("parse_duration: a bare number is in the given unit, ms/s/m/h override it") {
  CHECK(*parse_duration("250", milliseconds(1)) == milliseconds(250));
  CHECK(*parse_duration("30", milliseconds(1000)) == milliseconds(30'000));
  CHECK(*parse_duration("500ms", milliseconds(1000)) == milliseconds(500));
  CHECK(*parse_duration("2s", milliseconds(1)) == milliseconds(2000));
  CHECK(*parse_duration("5m", milliseconds(1)) == milliseconds(300'000));
  CHECK(*parse_duration("2h", milliseconds(1)) == milliseconds(7'200'000));
  for (const char* bad : {"", "-5", "s", "1d", "5M", "5K", "2H", "1MS", "1.5s", "5 s", "99999999999999999999", "9223372036854776s"}) {
    INFO(bad);
    CHECK(parse_duration(bad, milliseconds(1)).status().code() == Code::kInvalidArgument);
  }
  // Overflow is checked after applying the bare-number unit too.
  CHECK_FALSE(parse_duration("9223372036854776", milliseconds(1000)).is_ok());
  CHECK(parse_duration("9223372036854775", milliseconds(1000)).is_ok());
}

TEST_CASE("format_size uses the largest unit that divides exactly") {
  CHECK(format_size(0) == "0");
  CHECK(format_size(1000) == "1000");
  CHECK(format_size(4096) == "4K");
  CHECK(format_size(5ull << 30) == "5G");
  CHECK(format_size(1536ull << 20) == "1536M");
  CHECK(format_size(7ull << 50) == "7168T");
}

TEST_CASE("Settings: absent keys give the fallback, present ones are parsed and range-checked") {
  const std::map<std::string, std::string> m = {
      {"n", "7"},          {"size", "4K"},    {"flag", "off"},  {"t", "1500"},     {"t_s", "2m"},
      {"mode", "on"},      {"empty", ""},     {"neg", "-1"},    {"junk", "12abc"}, {"huge", "99999999999999999999"},
      {"list", "1000,,50"}, {"badlist", "1,x"}, {"name", "value"}};
  Settings s(m);
  CHECK(s.has("n"));
  CHECK_FALSE(s.has("absent"));

  CHECK(*s.get_uint("n", 1, 1, 10) == 7);
  CHECK(*s.get_uint("absent", 99, 1, 10) == 99);  // the fallback is the caller's, unchecked
  CHECK(*s.get_size("size", 0) == 4096);
  CHECK(*s.get_size("absent", 123) == 123);
  CHECK_FALSE(*s.get_bool("flag", true));
  CHECK(*s.get_bool("absent", true));
  CHECK(*s.get_duration("t", milliseconds(5), milliseconds(1)) == milliseconds(1500));
  CHECK(*s.get_duration("t_s", milliseconds(5), milliseconds(1000)) == milliseconds(120'000));
  CHECK(*s.get_duration("absent", milliseconds(5), milliseconds(1)) == milliseconds(5));
  CHECK(*s.get_choice("mode", "auto", {"auto", "on", "off"}) == "on");
  CHECK(*s.get_choice("absent", "auto", {"auto", "on", "off"}) == "auto");
  CHECK(s.get_string("name") == "value");
  CHECK(s.get_string("empty", "fb").empty());  // present but empty: as given
  CHECK(s.get_string("absent", "fb") == "fb");
  CHECK(*s.get_uint_list("list", {}) == std::vector<uint64_t>{1000, 50});
  CHECK(*s.get_uint_list("absent", {3}) == std::vector<uint64_t>{3});

  // Each refusal is InvalidArgument naming the key and the value.
  auto refused = [](const Status& st, const std::string& key, const std::string& value) {
    INFO(st.message());
    CHECK(st.code() == Code::kInvalidArgument);
    CHECK(contains(st.message(), key + "='" + value + "'"));
  };
  refused(s.get_uint("n", 1, 8, 10).status(), "n", "7");
  refused(s.get_uint("n", 1, 0, 6).status(), "n", "7");
  refused(s.get_uint("size", 1).status(), "size", "4K");  // counts take no units
  refused(s.get_uint("empty", 1).status(), "empty", "");
  refused(s.get_uint("neg", 1).status(), "neg", "-1");
  refused(s.get_uint("junk", 1).status(), "junk", "12abc");
  refused(s.get_uint("huge", 1).status(), "huge", "99999999999999999999");
  refused(s.get_size("size", 0, 8192).status(), "size", "4K");
  refused(s.get_size("size", 0, 0, 1024).status(), "size", "4K");
  refused(s.get_size("empty", 0).status(), "empty", "");
  refused(s.get_size("neg", 0).status(), "neg", "-1");
  refused(s.get_size("huge", 0).status(), "huge", "99999999999999999999");
  refused(s.get_bool("n", false).status(), "n", "7");
  refused(s.get_bool("empty", false).status(), "empty", "");
  refused(s.get_duration("t", milliseconds(0), milliseconds(1), milliseconds(2000)).status(), "t", "1500");
  refused(s.get_duration("t", milliseconds(0), milliseconds(1), milliseconds(0), milliseconds(1000)).status(), "t",
          "1500");
  refused(s.get_duration("neg", milliseconds(0), milliseconds(1)).status(), "neg", "-1");
  refused(s.get_choice("name", "auto", {"auto", "on"}).status(), "name", "value");
  refused(s.get_uint_list("badlist", {}).status(), "badlist", "1,x");
  refused(s.get_uint_list("list", {}, 0, 999).status(), "list", "1000,,50");

  // Ranges are spelled in the value's own units.
  CHECK(contains(s.get_size("size", 0, 8192, 5ull << 30).status().message(), "8K..5G"));
  CHECK(contains(s.get_duration("t", milliseconds(0), milliseconds(1), milliseconds(1),
                                milliseconds(1000)).status().message(),
                 "1ms..1s"));
}

TEST_CASE("Settings: a context prefixes the messages") {
  const std::map<std::string, std::string> m = {{"demote_after", "-1"}};
  auto r = Settings(m, "tier config").get_duration("demote_after", milliseconds(0), milliseconds(1000));
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().rfind("tier config: demote_after='-1'", 0) == 0);
}
