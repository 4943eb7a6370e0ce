// SigV4 against the published AWS "sig-v4-test-suite" vectors (credentials AKIDEXAMPLE, region
// us-east-1, service "service", 20150830T123600Z) and the S3 documentation's GET example.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "backends/s3express/crypto.h"
#include "backends/s3express/http_client.h"
#include "backends/s3express/s3_client.h"
#include "backends/s3express/s3_xml.h"
#include "backends/s3express/sigv4.h"

using namespace stor::s3;

namespace {

const Credentials kSuiteCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
const char* kScope = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

SignRequest suite_request(const std::string& method, const std::string& path, HeaderList query, HeaderList extra,
                          const std::string& body = "") {
  SignRequest r;
  r.method = method;
  r.path = path;
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  r.headers.insert(r.headers.end(), extra.begin(), extra.end());
  r.payload_hash = sha256_hex(body);
  r.amz_date = "20150830T123600Z";
  r.region = "us-east-1";
  r.service = "service";
  return r;
}

}  // namespace

TEST_CASE("sigv4: get-vanilla canonical request, string to sign and signature") {
  SignRequest r = suite_request("GET", "/", {}, {});
  std::string signed_headers;
  std::string creq = canonical_request(r, &signed_headers);
  CHECK(creq ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(signed_headers == "host;x-amz-date");
  std::string sts = string_to_sign(r, creq);
  CHECK(sts ==
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK(signature(r, kSuiteCreds, sts) == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  CHECK(authorization_header(r, kSuiteCreds) ==
        std::string(kScope) +
            "SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("sigv4: test-suite vectors") {
  struct Vector {
    const char* name;
    SignRequest req;
    const char* expected;  // "SignedHeaders=..., Signature=..."
  };
  std::vector<Vector> vectors = {
      {"post-vanilla", suite_request("POST", "/", {}, {}),
       "SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
      {"get-vanilla-query-order-key-case", suite_request("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}, {}),
       "SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
      {"post-vanilla-query", suite_request("POST", "/", {{"Param1", "value1"}}, {}),
       "SignedHeaders=host;x-amz-date, Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
      {"post-header-key-case", suite_request("POST", "/", {}, {{"MY-HEADER1", "value1"}}),
       "SignedHeaders=host;my-header1;x-amz-date, "
       "Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
      {"post-header-value-case", suite_request("POST", "/", {}, {{"My-Header1", "VALUE1"}}),
       "SignedHeaders=host;my-header1;x-amz-date, "
       "Signature=cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
      {"get-header-value-trim", suite_request("GET", "/", {}, {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}),
       "SignedHeaders=host;my-header1;my-header2;x-amz-date, "
       "Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
      {"get-header-key-duplicate",
       suite_request("GET", "/", {}, {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}}),
       "SignedHeaders=host;my-header1;x-amz-date, "
       "Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
      {"get-unreserved",
       suite_request("GET", "/" + uri_encode("-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", false),
                     {}, {}),
       "SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
      {"post-x-www-form-urlencoded",
       suite_request("POST", "/", {}, {{"Content-Type", "application/x-www-form-urlencoded"}}, "Param1=value1"),
       "SignedHeaders=content-type;host;x-amz-date, "
       "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
  };
  for (const auto& v : vectors) {
    INFO(v.name);
    CHECK(authorization_header(v.req, kSuiteCreds) == std::string(kScope) + v.expected);
  }
}

TEST_CASE("sigv4: S3 documentation example (GET /test.txt with Range)") {
  SignRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", std::string(kEmptyPayloadSha256)},
               {"x-amz-date", "20130524T000000Z"}};
  r.payload_hash = std::string(kEmptyPayloadSha256);
  r.amz_date = "20130524T000000Z";
  r.region = "us-east-1";
  r.service = "s3";
  Credentials creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""};
  CHECK(authorization_header(r, creds) ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("sigv4: uri encoding keeps unreserved characters and slashes in keys") {
  CHECK(uri_encode("a b/c+d~e", false) == "a%20b/c%2Bd~e");
  CHECK(uri_encode("a b/c", true) == "a%20b%2Fc");
  CHECK(uri_encode("\xc3\xa9", true) == "%C3%A9");
  CHECK(canonical_query({{"b", "2"}, {"a", "x y"}, {"session", ""}}) == "a=x%20y&b=2&session=");
}

namespace {
// Bit-at-a-time CRC-64/NVME straight from its definition, to check the fast paths against.
uint64_t crc64nvme_bitwise(const std::string& data) {
  uint64_t crc = ~0ull;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x9A6C9329AC4BC9B5ull : crc >> 1;
  }
  return ~crc;
}
uint32_t crc32c_bitwise(const char* data, size_t len) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < len; ++i) {
    crc ^= static_cast<unsigned char>(data[i]);
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
  }
  return ~crc;
}
}  // namespace

TEST_CASE("checksums: CRC32C's three-lane path agrees with the definition") {
  std::string big(200000, 'x');
  uint64_t seed = 777;
  for (auto& c : big) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(seed >> 56);
  }
  // Around the 3 x 8 KiB block the fast path works in, at odd offsets, and with a running CRC.
  for (size_t len : {size_t{24575}, size_t{24576}, size_t{24577}, size_t{49152 + 5}, size_t{199990}}) {
    for (size_t off : {size_t{0}, size_t{3}, size_t{9}}) {
      INFO("len " << len << " offset " << off);
      CHECK(crc32c(0, big.data() + off, len) == crc32c_bitwise(big.data() + off, len));
      CHECK(crc32c(crc32c(0, big.data() + off, 1000), big.data() + off + 1000, len - 1000) ==
            crc32c_bitwise(big.data() + off, len));
    }
  }
}

TEST_CASE("checksums: CRC-64/NVME known answer, every length and alignment, combine") {
  // The catalogue check value of CRC-64/NVME.
  CHECK(crc64nvme(0, "123456789", 9) == 0xAE8B14860A799888ull);
  CHECK(crc64nvme(0, "", 0) == 0);
  CHECK(crc64nvme(crc64nvme(0, "1234", 4), "56789", 5) == 0xAE8B14860A799888ull);
  std::string big(300000, 'x');
  uint64_t seed = 12345;
  for (auto& c : big) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(seed >> 56);
  }
  // The folding path (64 bytes and up, four lanes from 128) against the definition at every
  // length up to 600 and from every offset in a 16-byte window.
  for (size_t len = 0; len <= 600; ++len) {
    for (size_t off : {size_t{0}, size_t{1}, size_t{7}, size_t{15}}) {
      const std::string piece = big.substr(off, len);
      INFO("len " << len << " offset " << off);
      REQUIRE(crc64nvme(0, piece.data(), piece.size()) == crc64nvme_bitwise(piece));
    }
  }
  const uint64_t whole = crc64nvme(0, big.data(), big.size());
  CHECK(whole == crc64nvme_bitwise(big));
  for (size_t cut : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{129}, size_t{150001}, big.size() - 1, big.size()}) {
    INFO("cut at " << cut);
    const uint64_t a = crc64nvme(0, big.data(), cut);
    CHECK(crc64nvme(a, big.data() + cut, big.size() - cut) == whole);
    CHECK(crc64nvme_combine(a, crc64nvme(0, big.data() + cut, big.size() - cut), big.size() - cut) == whole);
  }
  CHECK(crc64nvme_combine(crc64nvme(0, "1234", 4), crc64nvme(0, "56789", 5), 5) == 0xAE8B14860A799888ull);
  // The header form: base64 of the 8 big-endian bytes.
  CHECK(checksum_base64(ChecksumAlgorithm::kCrc64Nvme, 0xAE8B14860A799888ull) == "rosUhgp5mIg=");
  CHECK(checksum_base64(ChecksumAlgorithm::kCrc32c, 0xE3069283u) == "4waSgw==");
}

TEST_CASE("checksums: CRC32C and MD5 known answers") {
  // CRC32C("123456789") = 0xE3069283 (the standard check value).
  CHECK(crc32c(0, "123456789", 9) == 0xE3069283u);
  // Incremental use gives the same answer.
  CHECK(crc32c(crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u);
  std::string big(100003, 'x');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31 + 7);
  CHECK(crc32c(crc32c(0, big.data(), 50001), big.data() + 50001, big.size() - 50001) ==
        crc32c(0, big.data(), big.size()));
  // Combining part CRCs gives the whole CRC (multipart FULL_OBJECT checksums), for any split.
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{50001}, big.size() - 1, big.size()}) {
    INFO("cut at " << cut);
    CHECK(crc32c_combine(crc32c(0, big.data(), cut), crc32c(0, big.data() + cut, big.size() - cut),
                         big.size() - cut) == crc32c(0, big.data(), big.size()));
  }
  CHECK(crc32c_combine(crc32c(0, "1234", 4), crc32c(0, "56789", 5), 5) == 0xE3069283u);
  std::string m = md5("", 0);
  CHECK(to_hex(m.data(), m.size()) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(base64_encode(m.data(), m.size()) == "1B2M2Y8AsgTpgAmY7PhCfg==");
}

TEST_CASE("xml: S3 documents parse with a real parser") {
  ErrorDoc e;
  REQUIRE(parse_error("<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>gone &amp; lost</Message>"
                      "<RequestId>R1</RequestId></Error>",
                      &e));
  CHECK(e.code == "NoSuchKey");
  CHECK(e.message == "gone & lost");
  CHECK(e.request_id == "R1");
  CHECK_FALSE(parse_error("not xml <", &e));

  auto page = parse_list_objects_v2(
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>tok</NextContinuationToken>"
      "<Contents><Key>a/x</Key><Size>12</Size><ETag>\"abc\"</ETag><LastModified>2024-01-02T03:04:05.000Z</LastModified></Contents>"
      "<CommonPrefixes><Prefix>a/d/</Prefix></CommonPrefixes></ListBucketResult>");
  REQUIRE(page.is_ok());
  CHECK(page->truncated);
  CHECK(page->next_continuation_token == "tok");
  REQUIRE(page->objects.size() == 1);
  CHECK(page->objects[0].key == "a/x");
  CHECK(page->objects[0].size == 12);
  CHECK(page->objects[0].etag == "abc");
  CHECK(page->objects[0].mtime_ns == 1704164645000000000LL);
  REQUIRE(page->common_prefixes.size() == 1);
  CHECK(page->common_prefixes[0] == "a/d/");
  CHECK_FALSE(parse_list_objects_v2("<Other/>").is_ok());

  auto session = parse_create_session(
      "<CreateSessionResult><Credentials><SessionToken>T</SessionToken><SecretAccessKey>S</SecretAccessKey>"
      "<AccessKeyId>A</AccessKeyId><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials></CreateSessionResult>");
  REQUIRE(session.is_ok());
  CHECK(session->session_token == "T");
  CHECK(session->access_key == "A");

  auto completed = parse_complete_multipart_upload("<Error><Code>InternalError</Code><Message>m</Message></Error>");
  CHECK_FALSE(completed.is_ok());
  CHECK(build_delete_objects({"a&b"}, true).find("<Key>a&amp;b</Key>") != std::string::npos);
}

TEST_CASE("config: settings win over AWS_* environment variables, which fill the gaps") {
  ::setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  ::setenv("AWS_SESSION_TOKEN", "envtoken", 1);
  ::setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000", 1);
  ::setenv("AWS_REGION", "eu-west-1", 1);
  auto from_env = S3Config::from_settings({}, true);
  REQUIRE(from_env.is_ok());
  CHECK(from_env->credentials.access_key == "ENVKEY");
  CHECK(from_env->credentials.secret_key == "envsecret");
  CHECK(from_env->credentials.session_token == "envtoken");
  CHECK(from_env->endpoint == "http://127.0.0.1:9000");
  CHECK(from_env->region == "eu-west-1");
  CHECK(from_env->path_style);  // custom endpoint: path-style
  CHECK(from_env->session == SessionMode::kAuto);
  CHECK(from_env->part_size == (8u << 20));

  auto from_settings = S3Config::from_settings({{"s3.access_key", "SETKEY"},
                                                {"s3.region", "us-west-2"},
                                                {"s3.part_size", "16M"},
                                                {"s3.max_connections", "4"},
                                                {"s3.addressing", "virtual"},
                                                {"s3.session", "off"}},
                                               true);
  REQUIRE(from_settings.is_ok());
  CHECK(from_settings->credentials.access_key == "SETKEY");
  CHECK(from_settings->credentials.secret_key == "envsecret");
  CHECK(from_settings->region == "us-west-2");
  CHECK(from_settings->part_size == (16u << 20));
  CHECK(from_settings->max_connections == 4);
  CHECK_FALSE(from_settings->path_style);
  CHECK(from_settings->session == SessionMode::kOff);

  CHECK(S3Config::from_settings({}, false)->session == SessionMode::kOff);  // s3:// never uses sessions
  CHECK(S3Config::from_settings({{"s3.part_size", "lots"}}, true).status().code() == stor::Code::kInvalidArgument);
  CHECK(S3Config::from_settings({{"s3.session", "maybe"}}, true).status().code() == stor::Code::kInvalidArgument);

  for (const char* v : {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"})
    ::unsetenv(v);
  auto aws_default = S3Config::from_settings({}, true);
  REQUIRE(aws_default.is_ok());
  CHECK(aws_default->endpoint == "https://s3.us-east-1.amazonaws.com");
  CHECK_FALSE(aws_default->path_style);
}

TEST_CASE("endpoint: URLs parse into scheme, host and port") {
  auto local = Endpoint::parse("http://127.0.0.1:9000");
  REQUIRE(local.is_ok());
  CHECK_FALSE(local->tls);
  CHECK(local->host == "127.0.0.1");
  CHECK(local->port == "9000");
  CHECK(local->host_header() == "127.0.0.1:9000");
  auto aws = Endpoint::parse("https://s3express-usw2-az1.us-west-2.amazonaws.com/");
  REQUIRE(aws.is_ok());
  CHECK(aws->tls);
  CHECK(aws->port == "443");
  CHECK(aws->host_header() == "s3express-usw2-az1.us-west-2.amazonaws.com");
  auto v6 = Endpoint::parse("http://[::1]:8080");
  REQUIRE(v6.is_ok());
  CHECK(v6->host == "::1");
  CHECK(v6->host_header() == "[::1]:8080");
  CHECK_FALSE(Endpoint::parse("ftp://x").is_ok());
  CHECK_FALSE(Endpoint::parse("http://host/path").is_ok());
  CHECK_FALSE(Endpoint::parse("http://host:port").is_ok());
}
