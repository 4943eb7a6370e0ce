// AWS Signature Version 4, header form (Authorization: AWS4-HMAC-SHA256 ...).
// Pure functions so they can be checked against the published test vectors.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stor::s3 {

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // STS token (x-amz-security-token); empty when none
};

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct SignRequest {
  std::string method;                  // "GET"
  std::string path;                    // already URI-encoded, e.g. "/bucket/a%20b"
  HeaderList query;                    // decoded names and values, any order
  HeaderList headers;                  // every header to sign, must include host and x-amz-date
  std::string payload_hash;            // hex SHA-256 of the body, or "UNSIGNED-PAYLOAD"
  std::string amz_date;                // "20150830T123600Z"
  std::string region;                  // "us-east-1"
  std::string service;                 // "s3", "s3express"
};

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters stay, everything else is %XX
// (upper-case hex); '/' stays when encode_slash is false (object key paths).
std::string uri_encode(std::string_view s, bool encode_slash);

std::string canonical_query(const HeaderList& query);
std::string canonical_request(const SignRequest& req, std::string* signed_headers_out);
std::string string_to_sign(const SignRequest& req, const std::string& canonical_request_text);
std::string signature(const SignRequest& req, const Credentials& creds, const std::string& string_to_sign_text);
// The full Authorization header value.
std::string authorization_header(const SignRequest& req, const Credentials& creds);

// "YYYYMMDDTHHMMSSZ" for the given time.
std::string amz_date(std::chrono::system_clock::time_point t);

inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

}  // namespace stor::s3
