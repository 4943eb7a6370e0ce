#include "backends/s3express/sigv4.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

#include "backends/s3express/crypto.h"

namespace stor::s3 {

std::string uri_encode(std::string_view s, bool encode_slash) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (c == '/' && !encode_slash)) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string canonical_query(const HeaderList& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [k, v] : query) encoded.emplace_back(uri_encode(k, true), uri_encode(v, true));
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [k, v] : encoded) {
    if (!out.empty()) out.push_back('&');
    out += k;
    out.push_back('=');
    out += v;
  }
  return out;
}

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Trims and collapses runs of spaces, as the spec's canonical header value requires.
std::string trim_collapse(std::string_view v) {
  std::string out;
  bool in_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}

}  // namespace

std::string canonical_request(const SignRequest& req, std::string* signed_headers_out) {
  // Same-name headers are joined with ',' in the order given.
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : req.headers) {
    std::string key = lower(name);
    std::string v = trim_collapse(value);
    auto it = headers.find(key);
    if (it == headers.end()) headers.emplace(std::move(key), std::move(v));
    else it->second += "," + v;
  }
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers.push_back(';');
    signed_headers += k;
  }
  if (signed_headers_out) *signed_headers_out = signed_headers;
  return req.method + "\n" + (req.path.empty() ? "/" : req.path) + "\n" + canonical_query(req.query) + "\n" +
         canonical_headers + "\n" + signed_headers + "\n" + req.payload_hash;
}

static std::string scope_of(const SignRequest& req) {
  return req.amz_date.substr(0, 8) + "/" + req.region + "/" + req.service + "/aws4_request";
}

std::string string_to_sign(const SignRequest& req, const std::string& canonical_request_text) {
  return "AWS4-HMAC-SHA256\n" + req.amz_date + "\n" + scope_of(req) + "\n" + sha256_hex(canonical_request_text);
}

std::string signature(const SignRequest& req, const Credentials& creds, const std::string& string_to_sign_text) {
  std::string k_date = hmac_sha256("AWS4" + creds.secret_key, req.amz_date.substr(0, 8));
  std::string k_region = hmac_sha256(k_date, req.region);
  std::string k_service = hmac_sha256(k_region, req.service);
  std::string k_signing = hmac_sha256(k_service, "aws4_request");
  std::string mac = hmac_sha256(k_signing, string_to_sign_text);
  return to_hex(mac.data(), mac.size());
}

std::string authorization_header(const SignRequest& req, const Credentials& creds) {
  std::string signed_headers;
  std::string creq = canonical_request(req, &signed_headers);
  std::string sts = string_to_sign(req, creq);
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope_of(req) + ", SignedHeaders=" + signed_headers +
         ", Signature=" + signature(req, creds, sts);
}

std::string amz_date(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace stor::s3
