// S3 XML and header parsing fed with hostile values: timestamps outside what a nanosecond
// system_clock holds, impossible dates, garbage, negative or overflowing sizes, missing fields.
// Nothing here needs a server.
#include <catch2/catch.hpp>

#include <string>

#include "backends/s3express/http_client.h"
#include "backends/s3express/s3_client.h"
#include "backends/s3express/s3_xml.h"

using namespace stor::s3;

namespace {

std::string listing_with_mtime(const std::string& mtime) {
  return "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>k</Key><Size>1</Size>"
         "<ETag>\"e\"</ETag><LastModified>" +
         mtime + "</LastModified></Contents></ListBucketResult>";
}

std::string session_with_expiration(const std::string& expiration) {
  return "<CreateSessionResult><Credentials><SessionToken>T</SessionToken><SecretAccessKey>S</SecretAccessKey>"
         "<AccessKeyId>A</AccessKeyId><Expiration>" +
         expiration + "</Expiration></Credentials></CreateSessionResult>";
}

}  // namespace

TEST_CASE("xml: LastModified and Expiration outside 1677-09-21..2262-04-11 are rejected, not overflowed") {
  // Representable by a nanosecond system_clock: exact values.
  struct Good {
    const char* text;
    long long ns;
  };
  for (const Good& g : {Good{"1678-01-01T00:00:00Z", -9214560000LL * 1000000000LL},
                        Good{"2262-01-01T00:00:00Z", 9214646400LL * 1000000000LL},
                        Good{"1970-01-01T00:00:00.5Z", 500000000LL},
                        Good{"2024-02-29T23:59:59.123456789Z", 1709251199123456789LL},
                        Good{"2262-04-11T23:47:16.854775807Z", 9223372036854775807LL},
                        Good{"1677-09-21T00:12:43.145224192Z", -9223372036854775807LL - 1}}) {
    INFO(g.text);
    auto page = parse_list_objects_v2(listing_with_mtime(g.text));
    INFO(page.status().message());
    REQUIRE(page.is_ok());
    REQUIRE(page->objects.size() == 1);
    CHECK(page->objects[0].mtime_ns == g.ns);
    CHECK(parse_create_session(session_with_expiration(g.text)).is_ok());
  }
  // Out of range, impossible fields, garbage: a clear error, never a wrapped value.
  for (const char* bad : {"0001-01-01T00:00:00Z", "1677-01-01T00:00:00Z", "1677-09-21T00:12:43.145224191Z",
                          "2262-04-11T23:47:16.854775808Z", "2262-04-12T00:00:00Z", "2263-01-01T00:00:00Z",
                          "9999-12-31T23:59:59Z", "2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z",
                          "2024-01-32T00:00:00Z", "2023-02-29T00:00:00Z", "2024-01-01T24:00:00Z",
                          "2024-01-01T00:60:00Z", "2024-01-01T00:00:61Z", "2024-01-01T00:00:00.Z",
                          "-2024-01-01T00:00:00Z", "2024-1-01T00:00:00Z", "2024-01-01T00:00:00Zjunk",
                          "99999999999-01-01T00:00:00Z", "garbage", "2024-01-01", "2024-01-01 00:00:00Z", ""}) {
    INFO(bad);
    auto page = parse_list_objects_v2(listing_with_mtime(bad));
    REQUIRE_FALSE(page.is_ok());
    CHECK(page.status().message().find("LastModified") != std::string::npos);
    auto session = parse_create_session(session_with_expiration(bad));
    REQUIRE_FALSE(session.is_ok());
    CHECK(session.status().message().find("Expiration") != std::string::npos);
  }
}

TEST_CASE("xml: parse_iso8601 and parse_http_date_ns check every field and the range directly") {
  auto t = parse_iso8601("2024-01-02T03:04:05.678Z");
  REQUIRE(t.is_ok());
  CHECK(std::chrono::duration_cast<std::chrono::nanoseconds>(t->time_since_epoch()).count() == 1704164645678000000LL);
  auto shifted = parse_iso8601("2024-01-02T05:04:05.678+02:00");
  REQUIRE(shifted.is_ok());
  CHECK(*shifted == *t);
  for (const char* year : {"0001", "1677", "2263", "9999"}) {
    auto r = parse_iso8601(std::string(year) + "-06-01T00:00:00Z");
    INFO(year);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("representable range") != std::string::npos);
  }
  for (const char* year : {"1678", "2262"}) CHECK(parse_iso8601(std::string(year) + "-03-01T00:00:00Z").is_ok());

  auto h = parse_http_date_ns("Sun, 06 Nov 1994 08:49:37 GMT");
  REQUIRE(h.is_ok());
  CHECK(*h == 784111777LL * 1000000000LL);
  for (const char* bad : {"Fri, 31 Dec 9999 23:59:59 GMT", "Thu, 01 Jan 0001 00:00:00 GMT",
                          "Sat, 01 Jan 2263 00:00:00 GMT", "Wed, 01 Jan 1677 00:00:00 GMT",
                          "Sun, 31 Feb 2024 00:00:00 GMT", "Sun, 06 Xyz 1994 08:49:37 GMT",
                          "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Nov 1994",
                          "", "garbage"}) {
    INFO(bad);
    CHECK_FALSE(parse_http_date_ns(bad).is_ok());
  }
}

namespace {

std::string listing_with_contents(const std::string& contents) {
  return "<ListBucketResult><IsTruncated>false</IsTruncated><Contents>" + contents + "</Contents></ListBucketResult>";
}

}  // namespace

TEST_CASE("xml: ListObjectsV2 sizes must be plain non-negative numbers that fit, keys must be there") {
  auto ok = parse_list_objects_v2(listing_with_contents("<Key>k</Key><Size>9223372036854775807</Size>"));
  REQUIRE(ok.is_ok());
  CHECK(ok->objects[0].size == 9223372036854775807ULL);
  for (const char* size : {"-1", "18446744073709551615", "18446744073709551616", "99999999999999999999999", "1e9",
                           "0x10", "12abc", "", " -0"}) {
    INFO(size);
    auto page = parse_list_objects_v2(listing_with_contents(std::string("<Key>k</Key><Size>") + size + "</Size>"));
    REQUIRE_FALSE(page.is_ok());
    CHECK(page.status().message().find("Size") != std::string::npos);
  }
  CHECK_FALSE(parse_list_objects_v2(listing_with_contents("<Key>k</Key>")).is_ok());      // no Size
  CHECK_FALSE(parse_list_objects_v2(listing_with_contents("<Size>1</Size>")).is_ok());    // no Key
  CHECK_FALSE(parse_list_objects_v2(listing_with_contents("<Key></Key><Size>1</Size>")).is_ok());
}

TEST_CASE("xml: deeply nested or node-flooded documents are refused before the recursive parser sees them") {
  // rapidxml (under Boost.PropertyTree) recurses once per nesting level: 1 MiB of "<a>" would
  // overflow a worker thread's stack.
  std::string deep;
  for (int i = 0; i < 300000; ++i) deep += "<a>";
  auto page = parse_list_objects_v2("<ListBucketResult>" + deep);
  REQUIRE_FALSE(page.is_ok());
  CHECK(page.status().message().find("nest") != std::string::npos);
  ErrorDoc e;
  CHECK_FALSE(parse_error("<Error>" + deep, &e));
  // Quotes cannot hide a level: '/>' inside an attribute value does not close the element.
  std::string tricky;
  for (int i = 0; i < 300000; ++i) tricky += "<a x=\"/>\">";
  CHECK_FALSE(parse_list_objects_v2("<ListBucketResult>" + tricky).is_ok());
  // Millions of tiny elements would cost hundreds of MiB of tree nodes.
  std::string flood = "<ListBucketResult>";
  for (int i = 0; i < 1000000; ++i) flood += "<b/>";
  flood += "</ListBucketResult>";
  auto flooded = parse_list_objects_v2(flood);
  REQUIRE_FALSE(flooded.is_ok());
  CHECK(flooded.status().message().find("elements") != std::string::npos);
  // A realistic page (1000 entries) still parses.
  std::string page1000 = "<ListBucketResult><IsTruncated>false</IsTruncated>";
  for (int i = 0; i < 1000; ++i)
    page1000 += "<Contents><Key>k" + std::to_string(i) +
                "</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><ETag>\"e\"</ETag><Size>1</Size>"
                "<Owner><ID>o</ID><DisplayName>d</DisplayName></Owner><StorageClass>STANDARD</StorageClass>"
                "</Contents><CommonPrefixes><Prefix>p" +
                std::to_string(i) + "/</Prefix></CommonPrefixes>";
  page1000 += "</ListBucketResult>";
  auto parsed = parse_list_objects_v2(page1000);
  REQUIRE(parsed.is_ok());
  CHECK(parsed->objects.size() == 1000);
}

TEST_CASE("config: sizes and durations that overflow or are negative are refused, not wrapped") {
  auto with = [](const char* key, const char* value) {
    return S3Config::from_settings({{"s3.endpoint", "http://127.0.0.1:1"}, {key, value}}, false);
  };
  for (const auto& [key, value] :
       std::vector<std::pair<const char*, const char*>>{{"s3.readahead", "-1"},
                                                        {"s3.write_buffer_memory", "99999999999999999999"},
                                                        {"s3.part_size", "17179869184G"},
                                                        {"s3.readahead", "18014398509481984K"},
                                                        {"s3.timeout_ms", "0"},
                                                        {"s3.request_deadline_ms", "-5"},
                                                        {"s3.request_deadline_ms", "86400001"},
                                                        {"s3.max_xml_body", "1K"},
                                                        {"s3.min_transfer_rate", "0"},
                                                        {"s3.readahead", " 5"}}) {
    INFO(key << "=" << value);
    auto r = with(key, value);
    REQUIRE_FALSE(r.is_ok());
    // The message names the setting and the value refused.
    CHECK(r.status().message().find(std::string(key) + "='" + value + "'") != std::string::npos);
  }
  // Units and words are accepted where documented.
  CHECK(with("s3.timeout_ms", "90s")->io_timeout == std::chrono::milliseconds(90'000));
  CHECK(with("s3.session_renew_seconds", "2m")->session_renew_margin == std::chrono::seconds(120));
  CHECK_FALSE(with("s3.session_renew_seconds", "86401").is_ok());
  CHECK_FALSE(with("s3.max_connections", "0").is_ok());
  CHECK_FALSE(with("s3.max_connections", "1025").is_ok());
  CHECK_FALSE(with("s3.verify_tls", "maybe").is_ok());
  CHECK_FALSE(with("s3.verify_tls", "").is_ok());  // present but empty: refused, not the default
  auto ok = with("s3.request_deadline_ms", "2500");
  REQUIRE(ok.is_ok());
  CHECK(ok->request_deadline == std::chrono::milliseconds(2500));
  CHECK(with("s3.readahead", "16G")->readahead == (16ull << 30));
  CHECK(with("s3.max_xml_body", "1M")->max_xml_body == (1ull << 20));
}

TEST_CASE("settings: s3.target_gbps sizes the connection pool, s3.network_interfaces lists local addresses") {
  auto with = [](std::map<std::string, std::string> settings) { return S3Config::from_settings(settings, false); };
  // aws-c-s3's estimate: 0.4 Gbps per connection.
  CHECK(with({{"s3.target_gbps", "10"}})->max_connections == 25);
  CHECK(with({{"s3.target_gbps", "2.5"}})->max_connections == 7);
  CHECK(with({{"s3.target_gbps", "0.1"}})->max_connections == 1);
  CHECK(with({{"s3.target_gbps", "10000"}})->max_connections == 1024);  // the pool's cap
  CHECK(with({{"s3.target_gbps", "10"}, {"s3.max_connections", "3"}})->max_connections == 3);  // explicit wins
  CHECK(with({})->max_connections == 16);
  for (const char* bad : {"", "0", "-1", "ten", "1e3", "10 ", "nan", "20000", "0.001"}) {
    INFO(bad);
    auto r = with({{"s3.target_gbps", bad}});
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().message().find("s3.target_gbps") != std::string::npos);
  }
  auto nics = with({{"s3.network_interfaces", "127.0.0.2, 127.0.0.3,eth1"}});
  REQUIRE(nics.is_ok());
  CHECK(nics->network_interfaces == std::vector<std::string>{"127.0.0.2", "127.0.0.3", "eth1"});
  CHECK_FALSE(with({{"s3.network_interfaces", "127.0.0.2,,eth1"}}).is_ok());
  CHECK(with({{"s3.small_object_size", "0"}})->small_object_size == 0);
  CHECK(with({})->small_object_size == (1ull << 20));
  CHECK_FALSE(with({{"s3.small_object_size", "2G"}}).is_ok());
}

TEST_CASE("endpoint: hosts and ports that would not make a sane Host header are refused") {
  for (const char* bad : {"http://", "http://:9000", "http://host:", "http://host:0", "http://host:65536",
                          "http://host:123456", "http://user@host", "http://ho st", "http://host\r\nX-Evil: 1",
                          "http://[::1]junk", "http://[::1]:", "http://[]:80", "http://[::1"}) {
    INFO(bad);
    CHECK_FALSE(Endpoint::parse(bad).is_ok());
  }
  for (const char* good : {"http://127.0.0.1:9000", "https://s3.us-east-1.amazonaws.com", "http://[::1]:65535",
                           "http://[fe80::1%eth0]:80", "http://my_host.local:1"}) {
    INFO(good);
    CHECK(Endpoint::parse(good).is_ok());
  }
}
