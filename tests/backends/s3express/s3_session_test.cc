// CreateSession handling: token cached and reused, renewed before expiry, re-created after an
// ExpiredToken answer, and plain SigV4 when the server has no sessions.
#include <catch2/catch.hpp>

#include <thread>

#include "s3_test_support.h"

using namespace stor;
using namespace stor::s3;
using namespace stor::s3::test;

namespace {

std::unique_ptr<S3Client> session_client(const std::string& endpoint, const std::string& renew_seconds) {
  std::map<std::string, std::string> settings = {{"s3.endpoint", endpoint},
                                                 {"s3.access_key", "AKIDBASE"},
                                                 {"s3.secret_key", "base-secret"},
                                                 {"s3.session_renew_seconds", renew_seconds},
                                                 {"s3.retry_base_ms", "5"}};
  auto config = S3Config::from_settings(settings, /*express=*/true);
  REQUIRE(config.is_ok());
  auto client = S3Client::create(config.value());
  REQUIRE(client.is_ok());
  return std::move(client).value();
}

Result<size_t> fetch(S3Client& client, std::string* out) {
  char buf[128];
  auto n = client.get_range("dirbucket--use1-az4--x-s3", "obj", 0, sizeof buf, buf);
  if (n.is_ok()) out->assign(buf, n.value());
  return n;
}

}  // namespace

TEST_CASE("s3 session: one CreateSession token is cached and reused") {
  SessionServer server(/*token_lifetime_seconds=*/300, /*sessions_supported=*/true);
  auto client = session_client(server.endpoint(), "60");
  std::string body;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(fetch(*client, &body).is_ok());
    CHECK(body == SessionServer::kBody);
  }
  CHECK(server.sessions_issued() == 1);
  CHECK(client->stats().sessions_created == 1);
  auto tokens = server.tokens_seen();
  REQUIRE(tokens.size() == 5);
  for (const auto& t : tokens) CHECK(t == "token-1");
  // CreateSession and the session-authenticated calls are signed for the s3express service.
  for (const auto& s : server.auth_services()) CHECK(s == "s3express");
  CHECK(client->auth_mode("dirbucket--use1-az4--x-s3") == "session");
}

TEST_CASE("s3 session: the token is renewed before it expires") {
  // Tokens live 6 s and are renewed when less than 3 s remain: reused during the first 2-3 s
  // (the expiration is sent with whole seconds).
  SessionServer server(6, true);
  auto client = session_client(server.endpoint(), "3");
  std::string body;
  REQUIRE(fetch(*client, &body).is_ok());
  REQUIRE(fetch(*client, &body).is_ok());
  CHECK(server.sessions_issued() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(4000));
  REQUIRE(fetch(*client, &body).is_ok());
  CHECK(server.sessions_issued() == 2);
  auto tokens = server.tokens_seen();
  REQUIRE(tokens.size() == 3);
  CHECK(tokens[0] == "token-1");
  CHECK(tokens[1] == "token-1");
  CHECK(tokens[2] == "token-2");
}

TEST_CASE("s3 session: an ExpiredToken answer drops the session and the request succeeds with a new one") {
  SessionServer server(300, true);
  auto client = session_client(server.endpoint(), "60");
  std::string body;
  REQUIRE(fetch(*client, &body).is_ok());
  server.revoke_all();
  REQUIRE(fetch(*client, &body).is_ok());
  CHECK(body == SessionServer::kBody);
  CHECK(server.sessions_issued() == 2);
  auto tokens = server.tokens_seen();
  REQUIRE(tokens.size() == 3);
  CHECK(tokens[1] == "token-1");  // refused
  CHECK(tokens[2] == "token-2");
}

TEST_CASE("s3 session: servers without CreateSession get plain SigV4") {
  SessionServer server(300, /*sessions_supported=*/false);
  auto client = session_client(server.endpoint(), "60");
  std::string body;
  REQUIRE(fetch(*client, &body).is_ok());
  REQUIRE(fetch(*client, &body).is_ok());
  CHECK(body == SessionServer::kBody);
  CHECK(client->auth_mode("dirbucket--use1-az4--x-s3") == "sigv4");
  auto tokens = server.tokens_seen();
  REQUIRE(tokens.size() == 2);
  for (const auto& t : tokens) CHECK(t.empty());
  auto services = server.auth_services();
  REQUIRE(services.size() == 3);  // one refused CreateSession, two data requests
  CHECK(services[0] == "s3express");
  CHECK(services[1] == "s3");
  CHECK(services[2] == "s3");
}

TEST_CASE("s3 session: s3:// (plain S3) never asks for a session") {
  SessionServer server(300, true);
  std::map<std::string, std::string> settings = {
      {"s3.endpoint", server.endpoint()}, {"s3.access_key", "A"}, {"s3.secret_key", "B"}};
  auto config = S3Config::from_settings(settings, /*express=*/false);
  REQUIRE(config.is_ok());
  auto client = S3Client::create(config.value()).value();
  std::string body;
  // The look-alike refuses requests without a token: the request reaches it unsigned by a session.
  char buf[64];
  auto r = client->get_range("bucket", "obj", 0, sizeof buf, buf);
  CHECK(r.status().code() == Code::kPermissionDenied);
  CHECK(r.status().message().find("ExpiredToken") != std::string::npos);
  CHECK(server.sessions_issued() == 0);
}
