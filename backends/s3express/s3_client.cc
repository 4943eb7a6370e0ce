#include "backends/s3express/s3_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <thread>

#include "backends/s3express/crypto.h"
#include "stor/settings.h"

namespace stor::s3 {

namespace {

constexpr const char* kCrcMetaKey = "stor-crc32c";
constexpr size_t kMaxSignedPayload = 64 * 1024;  // larger bodies go UNSIGNED-PAYLOAD (+ Content-MD5)
constexpr uint64_t kMaxParts = 10000;
constexpr double kGbpsPerConnection = 0.4;  // aws-c-s3's estimate of one connection's throughput

// "10", "2.5": Gbps, 0.01..10000.
Result<double> parse_gbps(const std::string& text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v, std::chars_format::fixed);
  if (ec != std::errc() || p != end || !(v >= 0.01 && v <= 10000))
    return Status::InvalidArgument("s3.target_gbps: '" + text + "' is not a number of Gbps in 0.01..10000");
  return v;
}

std::string env_or(const char* name, const std::string& fallback = {}) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::string strip_quotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

// x-amz-checksum-crc32c: base64 of the big-endian CRC.
std::string crc32c_base64_of(uint32_t crc) {
  unsigned char be[4] = {static_cast<unsigned char>(crc >> 24), static_cast<unsigned char>(crc >> 16),
                         static_cast<unsigned char>(crc >> 8), static_cast<unsigned char>(crc)};
  return base64_encode(be, 4);
}

std::string crc32c_base64(const char* data, size_t len) { return crc32c_base64_of(crc32c(0, data, len)); }

// x-amz-checksum-crc64nvme: base64 of the big-endian CRC.
std::string crc64_base64_of(uint64_t crc) {
  unsigned char be[8];
  for (int i = 0; i < 8; ++i) be[i] = static_cast<unsigned char>(crc >> (56 - 8 * i));
  return base64_encode(be, 8);
}

// The upload checksum of s3.checksum_algorithm: its header, its name in x-amz-checksum-algorithm,
// the CRC of some bytes, its base64 form and the combination of two.
const char* checksum_header(ChecksumAlgorithm a) {
  return a == ChecksumAlgorithm::kCrc64Nvme ? "x-amz-checksum-crc64nvme" : "x-amz-checksum-crc32c";
}
const char* checksum_name(ChecksumAlgorithm a) { return a == ChecksumAlgorithm::kCrc64Nvme ? "CRC64NVME" : "CRC32C"; }
uint64_t checksum_of(ChecksumAlgorithm a, const char* data, size_t len) {
  return a == ChecksumAlgorithm::kCrc64Nvme ? crc64nvme(0, data, len) : crc32c(0, data, len);
}
uint64_t checksum_combine(ChecksumAlgorithm a, uint64_t x, uint64_t y, uint64_t len_y) {
  return a == ChecksumAlgorithm::kCrc64Nvme ? crc64nvme_combine(x, y, len_y)
                                            : crc32c_combine(static_cast<uint32_t>(x), static_cast<uint32_t>(y), len_y);
}


bool is_plain_md5_etag(const std::string& etag) {
  if (etag.size() != 32) return false;
  return std::all_of(etag.begin(), etag.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

std::string object_name(const std::string& bucket, const std::string& key) {
  return "s3://" + bucket + (key.empty() ? "" : "/" + key);
}

void add_condition(HeaderList* headers, const WriteCondition& cond) {
  if (cond.if_none_match) headers->emplace_back("If-None-Match", "*");
  if (!cond.if_match.empty()) headers->emplace_back("If-Match", "\"" + cond.if_match + "\"");
}

// A failed write condition (412 PreconditionFailed, or 409 ConditionalRequestConflict when another
// conditional write to the key was in progress) said in the caller's terms; see WriteCondition.
Status condition_failed(const Status& s, const WriteCondition& cond) {
  if (s.is_ok() || cond.empty() || s.code() != Code::kAborted) return s;
  if (cond.if_none_match) return Status::AlreadyExists(s.message() + ": the object exists (If-None-Match: *)");
  return Status::Aborted(s.message() + ": the object changed since ETag " + cond.if_match + " was read (If-Match)");
}

// x-amz-client-token: 64 random ASCII characters at most, so a retried RenameObject is idempotent.
std::string client_token() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  char buf[40];
  std::snprintf(buf, sizeof buf, "stor-%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  return buf;
}

struct ContentRange {
  uint64_t start = 0, end = 0, total = 0;  // total: UINT64_MAX for "*"
};

// "bytes START-END/TOTAL" (TOTAL may be "*").
Result<ContentRange> parse_content_range(const std::string& cr, const std::string& what) {
  const size_t dash = cr.find('-'), slash = cr.find('/');
  Status bad = Status::IoError(what + ": bad Content-Range '" + cr.substr(0, 80) + "'");
  if (cr.rfind("bytes ", 0) != 0 || dash == std::string::npos || slash == std::string::npos || dash > slash) return bad;
  Result<uint64_t> start = parse_object_size(std::string_view(cr).substr(6, dash - 6));
  Result<uint64_t> end = parse_object_size(std::string_view(cr).substr(dash + 1, slash - dash - 1));
  Result<uint64_t> total = cr.substr(slash + 1) == "*" ? Result<uint64_t>(UINT64_MAX) : parse_object_size(cr.substr(slash + 1));
  if (!start.is_ok() || !end.is_ok() || !total.is_ok() || *end < *start) return bad;
  return ContentRange{*start, *end, *total};
}

// The Content-Range of a 206 answering a GET of [offset, offset+len): the server must answer the
// range asked for with exactly the bytes it announces (fewer would pass for the object's end).
Result<ContentRange> answered_range(const HttpResponse& resp, uint64_t offset, size_t len, const std::string& what) {
  Result<ContentRange> cr = parse_content_range(resp.header("content-range"), what);
  if (!cr.is_ok() || cr->start != offset || resp.sink_bytes == 0 || cr->end != offset + resp.sink_bytes - 1 ||
      cr->end >= cr->total) {
    return Status::IoError(what + ": asked for " + std::to_string(len) + " bytes from " + std::to_string(offset) +
                           ", got " + std::to_string(resp.sink_bytes) + " with Content-Range '" +
                           resp.header("content-range").substr(0, 80) + "'");
  }
  return cr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Configuration

Result<S3Config> S3Config::from_settings(const std::map<std::string, std::string>& settings, bool express) {
  using std::chrono::milliseconds;
  constexpr milliseconds kMs{1}, kDay{86'400'000};
  const Settings s(settings);
  S3Config c;
  c.endpoint = s.get_string("s3.endpoint", env_or("AWS_ENDPOINT_URL_S3", env_or("AWS_ENDPOINT_URL")));
  c.region = s.get_string("s3.region", env_or("AWS_REGION", env_or("AWS_DEFAULT_REGION", "us-east-1")));
  c.credentials.access_key = s.get_string("s3.access_key", env_or("AWS_ACCESS_KEY_ID"));
  c.credentials.secret_key = s.get_string("s3.secret_key", env_or("AWS_SECRET_ACCESS_KEY"));
  c.credentials.session_token = s.get_string("s3.session_token", env_or("AWS_SESSION_TOKEN"));

  // A custom endpoint is usually a local server: path-style unless told otherwise.
  STOR_ASSIGN_OR_RETURN(std::string addressing,
                        s.get_choice("s3.addressing", c.endpoint.empty() ? "virtual" : "path", {"path", "virtual"}));
  c.path_style = addressing == "path";
  if (c.endpoint.empty()) c.endpoint = "https://s3." + c.region + ".amazonaws.com";

  if (s.has("s3.target_gbps")) {
    STOR_ASSIGN_OR_RETURN(c.target_gbps, parse_gbps(s.get_string("s3.target_gbps")));
  }
  // aws-c-s3's sizing: ~0.4 Gbps per connection. An explicit s3.max_connections wins.
  const uint64_t sized = c.target_gbps > 0 ? static_cast<uint64_t>(std::ceil(c.target_gbps / kGbpsPerConnection))
                                           : c.max_connections;
  STOR_ASSIGN_OR_RETURN(uint64_t connections,
                        s.get_uint("s3.max_connections", std::clamp<uint64_t>(sized, 1, 1024), 1, 1024));
  c.max_connections = static_cast<unsigned>(connections);
  const std::string interfaces = s.get_string("s3.network_interfaces");
  for (std::string_view rest = interfaces; !rest.empty();) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item.empty()) {
      return Status::InvalidArgument("s3.network_interfaces='" + interfaces +
                                     "': an empty item (want addresses or interface names, comma-separated)");
    }
    c.network_interfaces.emplace_back(item);
  }
  STOR_ASSIGN_OR_RETURN(c.small_object_size, s.get_size("s3.small_object_size", c.small_object_size, 0, 1ull << 30));
  STOR_ASSIGN_OR_RETURN(c.part_size, s.get_size("s3.part_size", c.part_size, 4096, 5ull << 30));
  STOR_ASSIGN_OR_RETURN(uint64_t attempts, s.get_uint("s3.max_attempts", c.max_attempts, 1, 100));
  c.max_attempts = static_cast<unsigned>(attempts);
  STOR_ASSIGN_OR_RETURN(c.retry_base, s.get_duration("s3.retry_base_ms", c.retry_base, kMs, milliseconds(0), kDay));
  // Timeouts 1 ms .. 1 day (larger values would overflow nanosecond clocks later).
  STOR_ASSIGN_OR_RETURN(c.connect_timeout, s.get_duration("s3.connect_timeout_ms", c.connect_timeout, kMs, kMs, kDay));
  STOR_ASSIGN_OR_RETURN(c.io_timeout, s.get_duration("s3.timeout_ms", c.io_timeout, kMs, kMs, kDay));
  STOR_ASSIGN_OR_RETURN(c.request_deadline, s.get_duration("s3.request_deadline_ms", c.request_deadline, kMs, kMs, kDay));
  STOR_ASSIGN_OR_RETURN(c.min_transfer_rate, s.get_size("s3.min_transfer_rate", c.min_transfer_rate, 1024));  // bytes/s
  STOR_ASSIGN_OR_RETURN(c.max_xml_body, s.get_size("s3.max_xml_body", c.max_xml_body, 64ull << 10, 1ull << 30));

  STOR_ASSIGN_OR_RETURN(std::string session, s.get_choice("s3.session", express ? "auto" : "off", {"auto", "on", "off"}));
  c.session = session == "on" ? SessionMode::kOn : session == "off" ? SessionMode::kOff : SessionMode::kAuto;
  STOR_ASSIGN_OR_RETURN(milliseconds renew, s.get_duration("s3.session_renew_seconds", c.session_renew_margin,
                                                           milliseconds(1000), milliseconds(0), kDay));
  c.session_renew_margin = std::chrono::duration_cast<std::chrono::seconds>(renew);

  STOR_ASSIGN_OR_RETURN(c.verify_tls, s.get_bool("s3.verify_tls", c.verify_tls));
  c.ca_file = s.get_string("s3.ca_file", env_or("AWS_CA_BUNDLE"));
  // s3.checksum_crc32c=false (the older switch) means none unless s3.checksum_algorithm says.
  STOR_ASSIGN_OR_RETURN(bool legacy_crc, s.get_bool("s3.checksum_crc32c", true));
  STOR_ASSIGN_OR_RETURN(std::string algo, s.get_choice("s3.checksum_algorithm", legacy_crc ? "crc32c" : "none",
                                                       {"crc32c", "crc64nvme", "none"}));
  c.checksum = algo == "crc64nvme" ? ChecksumAlgorithm::kCrc64Nvme
               : algo == "none"    ? ChecksumAlgorithm::kNone
                                   : ChecksumAlgorithm::kCrc32c;
  STOR_ASSIGN_OR_RETURN(c.content_md5, s.get_bool("s3.content_md5", c.content_md5));
  STOR_ASSIGN_OR_RETURN(c.verify_checksums, s.get_bool("s3.verify_checksums", c.verify_checksums));
  STOR_ASSIGN_OR_RETURN(c.verify_md5, s.get_bool("s3.verify_md5", c.verify_md5));
  STOR_ASSIGN_OR_RETURN(c.write_buffer_memory, s.get_size("s3.write_buffer_memory", c.write_buffer_memory));
  STOR_ASSIGN_OR_RETURN(c.readahead, s.get_size("s3.readahead", c.readahead));
  c.tmp_dir = s.get_string("s3.tmp_dir", env_or("TMPDIR", "/tmp"));
  return c;
}

bool is_directory_bucket(const std::string& bucket) {
  constexpr std::string_view kSuffix = "--x-s3";
  return bucket.size() > kSuffix.size() && bucket.compare(bucket.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
}

std::string checksum_base64(ChecksumAlgorithm a, uint64_t crc) {
  return a == ChecksumAlgorithm::kCrc64Nvme ? crc64_base64_of(crc) : crc32c_base64_of(static_cast<uint32_t>(crc));
}
// A server checksum that is the CRC of the object's bytes: FULL_OBJECT, or untyped and not a
// COMPOSITE "crc-N" (a CRC of the parts' CRCs).
bool is_full_object_checksum(const std::string& value, const std::string& type) {
  return !value.empty() && (type == "FULL_OBJECT" || (type.empty() && value.find('-') == std::string::npos));
}

Code code_for_s3_error(int status, const std::string& c) {
  if (c == "NoSuchKey" || c == "NoSuchBucket" || c == "NoSuchUpload" || c == "NotFound") return Code::kNotFound;
  if (c == "AccessDenied" || c == "InvalidAccessKeyId" || c == "SignatureDoesNotMatch" || c == "ExpiredToken" ||
      c == "InvalidToken")
    return Code::kPermissionDenied;
  if (c == "BucketAlreadyExists" || c == "BucketAlreadyOwnedByYou") return Code::kAlreadyExists;
  if (c == "BucketNotEmpty") return Code::kNotEmpty;
  if (c == "InvalidRange") return Code::kOutOfRange;
  if (c == "BadDigest") return Code::kCorruption;
  if (c == "NotImplemented" || c == "MethodNotAllowed") return Code::kUnsupported;
  if (c == "SlowDown" || c == "InternalError" || c == "ServiceUnavailable") return Code::kUnavailable;
  if (c == "RequestTimeout") return Code::kTimeout;
  // InvalidWriteOffset: an append's x-amz-write-offset-bytes is no longer the object's size.
  if (c == "PreconditionFailed" || c == "ConditionalRequestConflict" || c == "InvalidWriteOffset")
    return Code::kAborted;
  switch (status) {
    case 400: return Code::kInvalidArgument;
    case 401:
    case 403: return Code::kPermissionDenied;
    case 404: return Code::kNotFound;
    case 405:
    case 501: return Code::kUnsupported;
    case 409: return Code::kAlreadyExists;
    case 412: return Code::kAborted;
    case 416: return Code::kOutOfRange;
    case 429: return Code::kUnavailable;
    default: break;
  }
  if (status >= 500) return Code::kUnavailable;
  return Code::kIoError;
}

// ---------------------------------------------------------------------------------------------
// Client

struct S3Client::Session {
  enum class State { kUnknown, kActive, kUnsupported };
  std::mutex mu;  // held while (re)creating, so concurrent requests share one CreateSession
  State state = State::kUnknown;
  SessionCredentials creds;
};

S3Client::S3Client(S3Config config, Endpoint endpoint) : config_(std::move(config)), endpoint_(std::move(endpoint)) {
  pool_ = std::make_unique<WorkerPool>(config_.max_connections);
}

S3Client::~S3Client() = default;

Result<std::unique_ptr<S3Client>> S3Client::create(S3Config config) {
  STOR_ASSIGN_OR_RETURN(Endpoint ep, Endpoint::parse(config.endpoint));
  if (config.part_size == 0) return Status::InvalidArgument("s3 part size must be > 0");
  return std::unique_ptr<S3Client>(new S3Client(std::move(config), std::move(ep)));
}

S3Stats S3Client::stats() const {
  S3Stats s;
  s.requests = requests_.load();
  s.retries = retries_.load();
  s.sessions_created = sessions_created_.load();
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(clients_mu_));
  if (path_client_) s.connections_opened += path_client_->stats().connections_opened;
  for (const auto& [b, c] : vhost_clients_) s.connections_opened += c->stats().connections_opened;
  return s;
}

HttpClient& S3Client::http_for(const std::string& bucket) {
  HttpOptions opts;
  opts.max_connections = config_.max_connections;
  opts.connect_timeout = config_.connect_timeout;
  opts.io_timeout = config_.io_timeout;
  opts.max_body = config_.max_xml_body;
  opts.verify_tls = config_.verify_tls;
  opts.ca_file = config_.ca_file;
  opts.local_bind = config_.network_interfaces;
  std::lock_guard<std::mutex> lock(clients_mu_);
  if (config_.path_style || bucket.empty()) {
    if (!path_client_) path_client_ = std::make_unique<HttpClient>(endpoint_, opts);
    return *path_client_;
  }
  auto& c = vhost_clients_[bucket];
  if (!c) {
    Endpoint ep = endpoint_;
    ep.host = bucket + "." + ep.host;
    c = std::make_unique<HttpClient>(ep, opts);
  }
  return *c;
}

std::chrono::milliseconds S3Client::budget(uint64_t bytes) const {
  const uint64_t rate = config_.min_transfer_rate;
  const uint64_t data_ms = bytes / rate * 1000 + bytes % rate * 1000 / rate;
  constexpr uint64_t kMaxMs = 30ull * 86400 * 1000;  // keeps steady_clock arithmetic far from overflow
  return config_.request_deadline + std::chrono::milliseconds(std::min(data_ms, kMaxMs));
}

bool S3Client::backoff(unsigned attempt, Deadline deadline) {
  // Exponential with "equal jitter": half fixed, half random, so retries spread out but never
  // collapse to zero delay.
  thread_local std::mt19937_64 rng(std::random_device{}());
  double cap = static_cast<double>(config_.retry_max.count());
  double exp = std::min(cap, static_cast<double>(config_.retry_base.count()) * static_cast<double>(1u << std::min(attempt, 16u)));
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  const auto delay = std::chrono::microseconds(static_cast<int64_t>(exp * jitter(rng) * 1000.0));
  // Sleeping into the deadline would only end in a failure reported later.
  if (std::chrono::steady_clock::now() + delay >= deadline) return false;
  std::this_thread::sleep_for(delay);
  return true;
}

std::string S3Client::gave_up(unsigned attempts, std::chrono::steady_clock::time_point start, Deadline deadline,
                              bool deadline_hit) const {
  auto secs = [](std::chrono::steady_clock::duration d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
    return std::string(buf);
  };
  std::string out = " (gave up after " + std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts") +
                    " in " + secs(std::chrono::steady_clock::now() - start);
  if (deadline_hit) out += "; deadline " + secs(deadline - start) + ", see s3.request_deadline_ms";
  else out += "; s3.max_attempts=" + std::to_string(config_.max_attempts);
  return out + ")";
}

void S3Client::invalidate_session(const std::string& bucket) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto it = sessions_.find(bucket);
    if (it == sessions_.end()) return;
    s = it->second;
  }
  std::lock_guard<std::mutex> lock(s->mu);
  if (s->state == Session::State::kActive) s->state = Session::State::kUnknown;
}

Status S3Client::credentials_for(const std::string& bucket, Credentials* creds, bool* is_session,
                                 Deadline deadline) {
  *creds = config_.credentials;
  *is_session = false;
  if (config_.session == SessionMode::kOff || bucket.empty()) return Status::ok();
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> lock(sessions_mu_);
    auto& slot = sessions_[bucket];
    if (!slot) slot = std::make_shared<Session>();
    s = slot;
  }
  std::lock_guard<std::mutex> lock(s->mu);
  auto use_session = [&] {
    creds->access_key = s->creds.access_key;
    creds->secret_key = s->creds.secret_key;
    creds->session_token = s->creds.session_token;
    *is_session = true;
    return Status::ok();
  };
  if (s->state == Session::State::kUnsupported) return Status::ok();
  const auto now = std::chrono::system_clock::now();
  if (s->state == Session::State::kActive && now + config_.session_renew_margin < s->creds.expiration)
    return use_session();

  Request req;
  req.op = "CreateSession";
  req.method = "GET";
  req.bucket = bucket;
  req.query = {{"session", ""}};
  req.create_session = true;
  Result<HttpResponse> resp = send(req, nullptr, 0, deadline);
  Status failure;
  if (resp.is_ok()) {
    Result<SessionCredentials> parsed = parse_create_session(resp->body);
    if (parsed.is_ok()) {
      s->creds = std::move(parsed).value();
      s->state = Session::State::kActive;
      sessions_created_.fetch_add(1);
      return use_session();
    }
    // 200 with something else: the server ignores "?session" (plain S3, local servers).
    failure = Status::Unsupported("CreateSession on " + object_name(bucket, "") +
                                             " is not supported by the server: " + parsed.status().message());
  } else {
    failure = resp.status();
  }
  const Code code = failure.code();
  const bool transient = code == Code::kUnavailable || code == Code::kTimeout;
  // A still-valid token outlives a failed early renewal.
  if (s->state == Session::State::kActive && now < s->creds.expiration && transient) return use_session();
  if (config_.session == SessionMode::kOn) return failure;
  if (transient) return failure;
  if (code == Code::kNotFound) return Status::ok();  // bucket missing: ask again next time
  s->state = Session::State::kUnsupported;           // fall back to plain SigV4 for good
  return Status::ok();
}

std::string S3Client::auth_mode(const std::string& bucket) {
  Credentials creds;
  bool is_session = false;
  if (!credentials_for(bucket, &creds, &is_session, std::chrono::steady_clock::now() + budget(0)).is_ok())
    return "unresolved";
  return is_session ? "session" : "sigv4";
}

Result<HttpResponse> S3Client::send_once(const Request& req, char* sink, size_t sink_len, Deadline deadline,
                                         bool* retryable) {
  *retryable = false;
  HttpClient& http = http_for(req.bucket);
  Credentials creds = config_.credentials;
  bool is_session = false;
  if (!req.create_session) STOR_RETURN_IF_ERROR(credentials_for(req.bucket, &creds, &is_session, deadline));

  std::string path;
  if (config_.path_style || req.bucket.empty()) {
    path = "/" + uri_encode(req.bucket, true);
    if (!req.key.empty()) path += "/" + uri_encode(req.key, false);
  } else {
    path = "/" + uri_encode(req.key, false);
  }

  HeaderList headers = req.headers;
  const std::string date = amz_date(std::chrono::system_clock::now());
  std::string payload_hash;
  if (req.body_len == 0) payload_hash = std::string(kEmptyPayloadSha256);
  else if (req.body_len <= kMaxSignedPayload) payload_hash = sha256_hex(std::string_view(req.body, req.body_len));
  else payload_hash = "UNSIGNED-PAYLOAD";
  headers.emplace_back("x-amz-date", date);
  headers.emplace_back("x-amz-content-sha256", payload_hash);
  if (is_session) headers.emplace_back("x-amz-s3session-token", creds.session_token);
  else if (!creds.session_token.empty()) headers.emplace_back("x-amz-security-token", creds.session_token);

  if (!creds.access_key.empty()) {
    SignRequest sr;
    sr.method = req.method;
    sr.path = path;
    sr.query = req.query;
    sr.headers = headers;
    sr.headers.emplace_back("host", http.endpoint().host_header());
    sr.payload_hash = payload_hash;
    sr.amz_date = date;
    sr.region = config_.region;
    sr.service = (is_session || req.create_session) ? "s3express" : "s3";
    headers.emplace_back("Authorization", authorization_header(sr, creds));
  }

  HttpRequest hr;
  hr.method = req.method;
  hr.target = path;
  if (!req.query.empty()) hr.target += "?" + canonical_query(req.query);
  hr.headers = std::move(headers);
  hr.body = req.body;
  hr.body_len = req.body_len;
  hr.deadline = deadline;

  requests_.fetch_add(1);
  const std::string what = std::string("S3 ") + req.op + " " + object_name(req.bucket, req.key);
  bool permanent = false;
  Result<HttpResponse> r = http.execute(hr, sink, sink_len, &permanent);
  if (!r.is_ok()) {
    Code code = r.status().code();
    *retryable = !permanent && (code == Code::kUnavailable || code == Code::kTimeout || code == Code::kIoError);
    return Status(code, what + ": " + r.status().message());
  }
  HttpResponse resp = std::move(r).value();
  if (resp.status >= 200 && resp.status < 300) return resp;

  ErrorDoc err;
  if (!parse_error(resp.body, &err)) {
    // HEAD answers and some proxies carry no XML body.
    err.code = resp.status == 404 ? "NotFound" : "HTTP" + std::to_string(resp.status);
    err.message = resp.body.size() < 200 ? resp.body : resp.body.substr(0, 200);
  }
  *retryable = (resp.status >= 500 && resp.status != 501) || resp.status == 429 || err.code == "SlowDown" ||
               err.code == "RequestTimeout" || err.code == "InternalError";
  if (std::string region = resp.header("x-amz-bucket-region"); !region.empty() && region != config_.region) {
    // A redirect or 400 for a bucket in another region: say what to configure.
    err.message += (err.message.empty() ? "" : "; ") + std::string("the bucket is in region ") + region +
                   ", set s3.region=" + region;
  }
  if (is_session && (err.code == "ExpiredToken" || err.code == "InvalidToken")) {
    invalidate_session(req.bucket);
    *retryable = true;
  }
  std::string msg = what + ": " + err.code;
  if (!err.message.empty()) msg += ": " + err.message;
  msg += " (HTTP " + std::to_string(resp.status);
  if (!err.request_id.empty()) msg += ", request " + err.request_id;
  msg += ")";
  return Status(code_for_s3_error(resp.status, err.code), msg);
}

Result<HttpResponse> S3Client::send(const Request& req, char* sink, size_t sink_len, Deadline deadline) {
  const auto start = std::chrono::steady_clock::now();
  if (deadline == kNoDeadline) deadline = start + budget(req.body_len + sink_len);
  for (unsigned attempt = 0;; ++attempt) {
    bool retryable = false;
    Result<HttpResponse> r = send_once(req, sink, sink_len, deadline, &retryable);
    if (r.is_ok() || !retryable) {
      if (r.is_ok() || r.status().code() != Code::kTimeout || std::chrono::steady_clock::now() < deadline ||
          r.status().message().find("(gave up after") != std::string::npos)  // said by a nested send()
        return r;
      // Not retryable because the deadline ended it (e.g. while waiting for a session).
      return r.status().with_suffix(gave_up(attempt + 1, start, deadline, true));
    }
    if (attempt + 1 >= config_.max_attempts)
      return r.status().with_suffix(gave_up(attempt + 1, start, deadline, false));
    if (!backoff(attempt, deadline))
      return r.status().with_suffix(gave_up(attempt + 1, start, deadline, true));
    retries_.fetch_add(1);
  }
}

Result<HttpResponse> S3Client::send_allowing_late_errors(const Request& req, uint64_t work_bytes) {
  // CompleteMultipartUpload and CopyObject answer 200 first and may still fail in the body;
  // a transient <Error> there is retried like a 5xx, within one deadline.
  const Deadline deadline = std::chrono::steady_clock::now() + budget(req.body_len + work_bytes);
  for (unsigned attempt = 0;; ++attempt) {
    STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req, nullptr, 0, deadline));
    ErrorDoc err;
    const bool transient = parse_error(resp.body, &err) && (err.code == "InternalError" || err.code == "SlowDown" ||
                                                            err.code == "ServiceUnavailable");
    if (!transient || attempt + 1 >= config_.max_attempts || !backoff(attempt, deadline)) return resp;
    retries_.fetch_add(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Operations

Status S3Client::create_bucket(const std::string& bucket) {
  Request req;
  req.op = "CreateBucket";
  req.method = "PUT";
  req.bucket = bucket;
  return send(req).status();
}

Result<std::string> S3Client::create_topic(const std::string& name, const std::string& push_endpoint) {
  const std::string body = "Action=CreateTopic&Name=" + uri_encode(name, true) +
                           "&Attributes.entry.1.key=push-endpoint&Attributes.entry.1.value=" +
                           uri_encode(push_endpoint, true);
  Request req;
  req.op = "CreateTopic";
  req.method = "POST";
  req.headers.emplace_back("Content-Type", "application/x-www-form-urlencoded");
  req.body = body.data();
  req.body_len = body.size();
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
  const size_t open = resp.body.find("<TopicArn>"), close = resp.body.find("</TopicArn>");
  if (open == std::string::npos || close == std::string::npos || close < open)
    return Status::IoError("S3 CreateTopic " + name + ": no TopicArn in the answer");
  return resp.body.substr(open + 10, close - open - 10);
}

Status S3Client::put_bucket_notification(const std::string& bucket, const std::string& id,
                                         const std::string& topic_arn, const std::string& prefix) {
  std::string body =
      "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><TopicConfiguration><Id>" +
      xml_escape(id) + "</Id><Topic>" + xml_escape(topic_arn) +
      "</Topic><Event>s3:ObjectCreated:*</Event><Event>s3:ObjectRemoved:*</Event>";
  if (!prefix.empty())
    body += "<Filter><S3Key><FilterRule><Name>prefix</Name><Value>" + xml_escape(prefix) +
            "</Value></FilterRule></S3Key></Filter>";
  body += "</TopicConfiguration></NotificationConfiguration>";
  Request req;
  req.op = "PutBucketNotificationConfiguration";
  req.method = "PUT";
  req.bucket = bucket;
  req.query = {{"notification", ""}};
  req.headers.emplace_back("Content-Type", "application/xml");
  req.body = body.data();
  req.body_len = body.size();
  return send(req).status();
}

Result<ObjectInfo> S3Client::head_object(const std::string& bucket, const std::string& key) {
  Request req;
  req.op = "HeadObject";
  req.method = "HEAD";
  req.bucket = bucket;
  req.key = key;
  req.headers.emplace_back("x-amz-checksum-mode", "ENABLED");
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
  // The size decides how much is read and allocated later: it must be there and sane.
  Result<uint64_t> size = parse_object_size(resp.header("content-length"));
  if (!size.is_ok()) {
    return Status::IoError("S3 HeadObject " + object_name(bucket, key) + ": Content-Length: " +
                                      size.status().message());
  }
  return info_from_headers(resp, *size, "S3 HeadObject " + object_name(bucket, key));
}

Result<ObjectInfo> S3Client::info_from_headers(const HttpResponse& resp, uint64_t size, const std::string& what) {
  ObjectInfo info;
  info.size = size;
  info.etag = strip_quotes(resp.header("etag"));
  if (std::string lm = resp.header("last-modified"); !lm.empty()) {
    Result<int64_t> t = parse_http_date_ns(lm);
    if (!t.is_ok()) return Status::IoError(what + ": Last-Modified: " + t.status().message());
    info.mtime_ns = *t;
  }
  for (const auto& [name, value] : resp.headers)
    if (name.rfind("x-amz-meta-", 0) == 0) info.metadata[name.substr(11)] = value;
  info.checksum_crc32c = resp.header("x-amz-checksum-crc32c");
  info.checksum_crc64nvme = resp.header("x-amz-checksum-crc64nvme");
  info.checksum_type = resp.header("x-amz-checksum-type");
  return info;
}

S3Client::Request S3Client::ranged_get(const std::string& bucket, const std::string& key, uint64_t offset,
                                       size_t len) {
  Request req;
  req.op = "GetObject";
  req.method = "GET";
  req.bucket = bucket;
  req.key = key;
  req.headers.emplace_back("Range", "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + len - 1));
  return req;
}

Result<S3Client::Fetched> S3Client::get_object_start(const std::string& bucket, const std::string& key,
                                                     uint64_t offset, size_t len, char* dst) {
  const Deadline deadline = std::chrono::steady_clock::now() + budget(len);
  for (unsigned attempt = 0;; ++attempt) {
    bool replaced = false;
    Result<Fetched> r = get_object_start_once(bucket, key, offset, len, dst, &replaced);
    if (!replaced || attempt + 1 >= config_.max_attempts || !backoff(attempt, deadline)) return r;
    retries_.fetch_add(1);
  }
}

Result<S3Client::Fetched> S3Client::get_object_start_once(const std::string& bucket, const std::string& key,
                                                          uint64_t offset, size_t len, char* dst, bool* replaced) {
  const std::string what = "S3 GetObject " + object_name(bucket, key);
  Fetched out;
  if (len == 0) {  // nothing to read: the object's description alone
    STOR_ASSIGN_OR_RETURN(out.info, head_object(bucket, key));
    return out;
  }
  Request req = ranged_get(bucket, key, offset, len);
  req.headers.emplace_back("x-amz-checksum-mode", "ENABLED");
  Result<HttpResponse> sent = send(req, dst, len);
  if (!sent.is_ok()) {
    // S3 refuses any range of an empty object (416): then it is the object's size that counts.
    if (sent.status().code() != Code::kOutOfRange) return sent.status();
    STOR_ASSIGN_OR_RETURN(out.info, head_object(bucket, key));
    if (offset < out.info.size) return sent.status();
    return out;
  }
  const HttpResponse& resp = *sent;
  uint64_t size = 0;
  if (resp.status == 206) {
    STOR_ASSIGN_OR_RETURN(ContentRange cr, answered_range(resp, offset, len, what));
    if (cr.total == UINT64_MAX) return Status::IoError(what + ": the answer does not say the object's size");
    size = cr.total;
  } else {
    // A 200 is the whole object: servers that ignore Range (s3rver for bytes=0-0).
    if (offset != 0) return Status::IoError(what + ": server ignored the Range header");
    size = resp.sink_bytes;
    if (size == 0) {
      // An empty body is only believed when a HEAD agrees: s3rver, overwriting a large object,
      // briefly serves an empty one (the HEAD path then saw the size and failed the read loudly).
      STOR_ASSIGN_OR_RETURN(ObjectInfo head, head_object(bucket, key));
      if (head.size != 0) {
        *replaced = true;
        return Status::Unavailable(what + ": an empty answer for an object of " + std::to_string(head.size) +
                                   " bytes (the object is being replaced?)");
      }
    }
  }
  STOR_ASSIGN_OR_RETURN(out.info, info_from_headers(resp, size, what));
  out.bytes = resp.sink_bytes;
  if (offset == 0 && out.bytes == size) STOR_RETURN_IF_ERROR(verify_whole(bucket, key, out.info, dst));
  return out;
}

Result<size_t> S3Client::get_range(const std::string& bucket, const std::string& key, uint64_t offset, size_t len,
                                   char* dst, const std::string& etag) {
  if (len == 0) return size_t{0};
  Request req = ranged_get(bucket, key, offset, len);
  if (!etag.empty()) req.headers.emplace_back("If-Match", "\"" + etag + "\"");
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req, dst, len));
  if (!etag.empty()) {
    // If-Match is only a request: some servers (s3rver, some S3-compatible stores) ignore it on
    // GET. The response names the version it served; bytes of another version are refused alike.
    const std::string served = strip_quotes(resp.header("etag"));
    if (!served.empty() && served != etag) {
      return Status::Aborted("S3 GetObject " + object_name(bucket, key) + ": the object changed (ETag " +
                                        served + ", expected " + etag + ")");
    }
  }
  if (resp.status == 206) {
    STOR_RETURN_IF_ERROR(answered_range(resp, offset, len, "S3 GetObject " + object_name(bucket, key)).status());
  } else if (offset != 0) {
    return Status::IoError("S3 GetObject " + object_name(bucket, key) + ": server ignored the Range header");
  }
  return resp.sink_bytes;
}

Result<size_t> S3Client::read_object(const std::string& bucket, const std::string& key, const ObjectInfo& info,
                                     uint64_t offset, size_t len, char* dst) {
  if (offset >= info.size || len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, info.size - offset));
  const uint64_t part = config_.part_size;
  const size_t parts = static_cast<size_t>((len + part - 1) / part);
  Status st = parallel_for(*pool_, parts, config_.max_connections, [&](size_t i) -> Status {
    const uint64_t off = i * part;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(part, len - off));
    STOR_ASSIGN_OR_RETURN(size_t got, get_range(bucket, key, offset + off, n, dst + off, info.etag));
    if (got != n) {
      return Status::IoError("S3 GetObject " + object_name(bucket, key) + ": short read at offset " +
                                        std::to_string(offset + off) + ": " + std::to_string(got) + " of " +
                                        std::to_string(n) + " bytes");
    }
    return Status::ok();
  });
  STOR_RETURN_IF_ERROR(st);

  if (offset == 0 && len == info.size) STOR_RETURN_IF_ERROR(verify_whole(bucket, key, info, dst));
  return len;
}

Status S3Client::verify_whole(const std::string& bucket, const std::string& key, const ObjectInfo& info,
                              const char* data) const {
  if (!config_.verify_checksums) return Status::ok();
  const size_t len = static_cast<size_t>(info.size);
  const std::string what = "S3 GetObject " + object_name(bucket, key);
  if (auto it = info.metadata.find(kCrcMetaKey); it != info.metadata.end()) {
    std::string actual = hex32(crc32c(0, data, len));
    if (actual != it->second)
      return Status::Corruption(what + ": CRC32C mismatch (stored " + it->second + ", read " + actual + ")");
  } else if (is_full_object_checksum(info.checksum_crc64nvme, info.checksum_type)) {
    const std::string actual = crc64_base64_of(crc64nvme(0, data, len));
    if (actual != info.checksum_crc64nvme)
      return Status::Corruption(what + ": CRC64NVME mismatch (server " + info.checksum_crc64nvme + ", read " + actual +
                                ")");
  } else if (is_full_object_checksum(info.checksum_crc32c, info.checksum_type)) {
    const std::string actual = crc32c_base64(data, len);
    if (actual != info.checksum_crc32c)
      return Status::Corruption(what + ": CRC32C mismatch (server " + info.checksum_crc32c + ", read " + actual + ")");
  } else if (config_.verify_md5 && is_plain_md5_etag(info.etag)) {
    std::string raw = md5(data, len);
    std::string actual = to_hex(raw.data(), raw.size());
    if (actual != info.etag)
      return Status::Corruption(what + ": MD5 mismatch (ETag " + info.etag + ", read " + actual + ")");
  }
  return Status::ok();
}

Result<std::string> S3Client::get_object(const std::string& bucket, const std::string& key) {
  STOR_ASSIGN_OR_RETURN(ObjectInfo info, head_object(bucket, key));
  std::string out;
  try {
    out.resize(info.size);
  } catch (const std::exception&) {  // bad_alloc or length_error: the object does not fit in memory
    return Status::NoSpace("S3 GetObject " + object_name(bucket, key) + ": no memory for its " +
                                      std::to_string(info.size) + " bytes");
  }
  STOR_ASSIGN_OR_RETURN(size_t n, read_object(bucket, key, info, 0, out.size(), out.data()));
  out.resize(n);
  return out;
}

Result<std::string> S3Client::put_object(const std::string& bucket, const std::string& key, const char* data,
                                         size_t len, const WriteCondition& cond) {
  std::map<std::string, std::string> meta{{kCrcMetaKey, hex32(crc32c(0, data, len))}};
  if (len > config_.part_size) return put_object_multipart(bucket, key, data, len, meta, cond);
  return put_object_single(bucket, key, data, len, meta, cond);
}

S3Client::Request S3Client::put_request(const std::string& bucket, const std::string& key, const char* data,
                                        size_t len) const {
  Request req;
  req.op = "PutObject";
  req.method = "PUT";
  req.bucket = bucket;
  req.key = key;
  req.body = data;
  req.body_len = len;
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  if (config_.checksum != ChecksumAlgorithm::kNone)
    req.headers.emplace_back(checksum_header(config_.checksum),
                             checksum_base64(config_.checksum, checksum_of(config_.checksum, data, len)));
  return req;
}

Result<std::string> S3Client::put_object_single(const std::string& bucket, const std::string& key, const char* data,
                                                size_t len, const std::map<std::string, std::string>& metadata,
                                                const WriteCondition& cond) {
  Request req = put_request(bucket, key, data, len);
  std::string md5_hex;
  if (config_.content_md5) {
    std::string raw = md5(data, len);
    md5_hex = to_hex(raw.data(), raw.size());
    req.headers.emplace_back("Content-MD5", base64_encode(raw.data(), raw.size()));
  }
  for (const auto& [k, v] : metadata) req.headers.emplace_back("x-amz-meta-" + k, v);
  add_condition(&req.headers, cond);
  Result<HttpResponse> sent = send(req);
  if (!sent.is_ok() && sent.status().code() == Code::kAborted && !cond.if_match.empty()) {
    // Ceph RGW (16) compares If-Match on writes with the stored ETag without its quotes, so a
    // quoted (RFC 9110) value never matches there. The unquoted one is the same compare-and-swap:
    // asking once more cannot let a changed object through.
    for (auto& [name, value] : req.headers)
      if (name == "If-Match") value = cond.if_match;
    sent = send(req);
  }
  if (!sent.is_ok()) return condition_failed(sent.status(), cond);
  HttpResponse resp = std::move(sent).value();
  std::string etag = strip_quotes(resp.header("etag"));
  if (!md5_hex.empty() && is_plain_md5_etag(etag) && etag != md5_hex) {
    return Status::Corruption("S3 PutObject " + object_name(bucket, key) + ": server stored MD5 " + etag +
                                         ", sent " + md5_hex);
  }
  return etag;
}

Result<std::string> S3Client::create_multipart_upload(const std::string& bucket, const std::string& key,
                                                      const std::map<std::string, std::string>& metadata) {
  Request req;
  req.op = "CreateMultipartUpload";
  req.method = "POST";
  req.bucket = bucket;
  req.key = key;
  req.query = {{"uploads", ""}};
  req.headers.emplace_back("Content-Type", "application/octet-stream");
  if (config_.checksum != ChecksumAlgorithm::kNone) {
    req.headers.emplace_back("x-amz-checksum-algorithm", checksum_name(config_.checksum));
    req.headers.emplace_back("x-amz-checksum-type", "FULL_OBJECT");
  }
  for (const auto& [k, v] : metadata) req.headers.emplace_back("x-amz-meta-" + k, v);
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
  return parse_initiate_multipart_upload(resp.body);
}

Result<S3Client::UploadedPart> S3Client::upload_part(const std::string& bucket, const std::string& key,
                                                    const std::string& upload_id, int part_number, const char* data,
                                                    size_t len) {
  UploadedPart part;
  part.size = len;
  Request req;
  req.op = "UploadPart";
  req.method = "PUT";
  req.bucket = bucket;
  req.key = key;
  req.query = {{"partNumber", std::to_string(part_number)}, {"uploadId", upload_id}};
  req.body = data;
  req.body_len = len;
  std::string md5_hex;
  if (config_.content_md5) {
    std::string raw = md5(data, len);
    md5_hex = to_hex(raw.data(), raw.size());
    req.headers.emplace_back("Content-MD5", base64_encode(raw.data(), raw.size()));
  }
  if (config_.checksum != ChecksumAlgorithm::kNone) {
    part.crc = checksum_of(config_.checksum, data, len);
    part.checksum = checksum_base64(config_.checksum, part.crc);
    req.headers.emplace_back(checksum_header(config_.checksum), part.checksum);
  }
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
  std::string etag = strip_quotes(resp.header("etag"));
  if (etag.empty()) return Status::IoError("S3 UploadPart " + object_name(bucket, key) + ": no ETag in answer");
  if (!md5_hex.empty() && is_plain_md5_etag(etag) && etag != md5_hex) {
    return Status::Corruption("S3 UploadPart " + object_name(bucket, key) + " part " +
                                         std::to_string(part_number) + ": server stored MD5 " + etag + ", sent " +
                                         md5_hex);
  }
  part.etag = etag;
  return part;
}

Result<std::string> S3Client::complete_multipart_upload(const std::string& bucket, const std::string& key,
                                                        const std::string& upload_id,
                                                        const std::vector<UploadedPart>& parts,
                                                        const WriteCondition& cond) {
  std::vector<std::string> etags, checksums;
  uint64_t object_bytes = 0;
  // The whole object's CRC from the parts' (FULL_OBJECT, declared at CreateMultipartUpload).
  const ChecksumAlgorithm algo = config_.checksum;
  bool full_crc = algo != ChecksumAlgorithm::kNone && !parts.empty();
  uint64_t crc = 0;
  for (const auto& p : parts) {
    etags.push_back(p.etag);
    checksums.push_back(p.checksum);
    object_bytes += p.size;
    full_crc = full_crc && !p.checksum.empty();
    crc = checksum_combine(algo, crc, p.crc, p.size);
  }
  std::string body = build_complete_multipart_upload(etags, checksums, checksum_name(algo));
  Request req;
  req.op = "CompleteMultipartUpload";
  req.method = "POST";
  req.bucket = bucket;
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  req.headers.emplace_back("Content-Type", "application/xml");
  if (full_crc) {
    req.headers.emplace_back(checksum_header(algo), checksum_base64(algo, crc));
    req.headers.emplace_back("x-amz-checksum-type", "FULL_OBJECT");
  }
  add_condition(&req.headers, cond);
  req.body = body.data();
  req.body_len = body.size();
  const std::string what = "S3 CompleteMultipartUpload " + object_name(bucket, key);
  Result<HttpResponse> sent = send_allowing_late_errors(req, object_bytes);
  if (!sent.is_ok()) return condition_failed(sent.status(), cond);
  Result<std::string> etag = parse_complete_multipart_upload(sent->body);
  // A 200 whose body is a PreconditionFailed <Error> is the same refusal.
  if (!etag.is_ok() && !cond.empty()) {
    ErrorDoc err;
    if (parse_error(sent->body, &err) && code_for_s3_error(412, err.code) == Code::kAborted)
      return condition_failed(Status::Aborted(what + ": " + err.code + ": " + err.message), cond);
  }
  return etag;
}

Status S3Client::abort_multipart_upload(const std::string& bucket, const std::string& key,
                                        const std::string& upload_id) {
  Request req;
  req.op = "AbortMultipartUpload";
  req.method = "DELETE";
  req.bucket = bucket;
  req.key = key;
  req.query = {{"uploadId", upload_id}};
  return send(req).status();
}

Result<std::string> S3Client::put_object_multipart(const std::string& bucket, const std::string& key,
                                                   const char* data, size_t len,
                                                   const std::map<std::string, std::string>& metadata,
                                                   const WriteCondition& cond) {
  // S3 allows at most 10000 parts: grow the part size for huge objects.
  uint64_t part = std::max<uint64_t>(config_.part_size, (len + kMaxParts - 1) / kMaxParts);
  size_t parts = std::max<size_t>(1, static_cast<size_t>((len + part - 1) / part));
  STOR_ASSIGN_OR_RETURN(std::string upload_id, create_multipart_upload(bucket, key, metadata));
  std::vector<UploadedPart> uploaded(parts);
  Status st = parallel_for(*pool_, parts, config_.max_connections, [&](size_t i) -> Status {
    const uint64_t off = i * part;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(part, len - off));
    STOR_ASSIGN_OR_RETURN(uploaded[i], upload_part(bucket, key, upload_id, static_cast<int>(i + 1), data + off, n));
    return Status::ok();
  });
  Result<std::string> done = st.is_ok() ? complete_multipart_upload(bucket, key, upload_id, uploaded, cond)
                                        : Result<std::string>(st);
  if (done.is_ok()) return done;
  if (auto ours = metadata.find(kCrcMetaKey); st.is_ok() && ours != metadata.end()) {
    // The answer to a Complete that did succeed can be lost (connection reset); its retry then
    // fails (S3: NoSuchUpload, s3rver: 500). If the object is there with our size and CRC32C,
    // the upload worked.
    Result<ObjectInfo> head = head_object(bucket, key);
    if (head.is_ok() && head->size == len && head->metadata.count(kCrcMetaKey) &&
        head->metadata.at(kCrcMetaKey) == ours->second)
      return head->etag;
  }
  // Leave nothing behind: parts of an unfinished upload are billed and never become an object.
  Status aborted = abort_multipart_upload(bucket, key, upload_id);
  std::string note = aborted.is_ok() ? " (upload aborted)" : " (abort also failed: " + aborted.message() + ")";
  return done.status().with_suffix(note);
}

Status S3Client::delete_object(const std::string& bucket, const std::string& key) {
  Request req;
  req.op = "DeleteObject";
  req.method = "DELETE";
  req.bucket = bucket;
  req.key = key;
  return send(req).status();
}

Result<std::vector<DeleteFailure>> S3Client::delete_objects(const std::string& bucket,
                                                            const std::vector<std::string>& keys) {
  std::vector<DeleteFailure> failures;
  for (size_t start = 0; start < keys.size(); start += 1000) {
    std::vector<std::string> batch(keys.begin() + start, keys.begin() + std::min(keys.size(), start + 1000));
    std::string body = build_delete_objects(batch, true);
    std::string raw = md5(body.data(), body.size());
    Request req;
    req.op = "DeleteObjects";
    req.method = "POST";
    req.bucket = bucket;
    req.query = {{"delete", ""}};
    req.headers.emplace_back("Content-Type", "application/xml");
    req.headers.emplace_back("Content-MD5", base64_encode(raw.data(), raw.size()));  // required by S3
    req.body = body.data();
    req.body_len = body.size();
    STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
    STOR_ASSIGN_OR_RETURN(auto f, parse_delete_result(resp.body));
    failures.insert(failures.end(), f.begin(), f.end());
  }
  return failures;
}

Result<ListPage> S3Client::list_objects_v2(const std::string& bucket, const std::string& prefix,
                                           const std::string& delimiter, const std::string& continuation_token,
                                           unsigned max_keys) {
  Request req;
  req.op = "ListObjectsV2";
  req.method = "GET";
  req.bucket = bucket;
  req.query = {{"list-type", "2"}, {"max-keys", std::to_string(max_keys)}};
  if (!prefix.empty()) req.query.emplace_back("prefix", prefix);
  if (!delimiter.empty()) req.query.emplace_back("delimiter", delimiter);
  if (!continuation_token.empty()) req.query.emplace_back("continuation-token", continuation_token);
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send(req));
  return parse_list_objects_v2(resp.body);
}

Result<ListPage> S3Client::list_all(const std::string& bucket, const std::string& prefix,
                                    const std::string& delimiter, unsigned page_size, unsigned* pages) {
  ListPage all;
  std::string token;
  unsigned n = 0;
  do {
    STOR_ASSIGN_OR_RETURN(ListPage page, list_objects_v2(bucket, prefix, delimiter, token, page_size));
    ++n;
    all.objects.insert(all.objects.end(), page.objects.begin(), page.objects.end());
    all.common_prefixes.insert(all.common_prefixes.end(), page.common_prefixes.begin(), page.common_prefixes.end());
    token = page.truncated ? page.next_continuation_token : std::string();
  } while (!token.empty());
  // Some servers repeat common prefixes on every page.
  std::sort(all.common_prefixes.begin(), all.common_prefixes.end());
  all.common_prefixes.erase(std::unique(all.common_prefixes.begin(), all.common_prefixes.end()),
                            all.common_prefixes.end());
  if (pages) *pages = n;
  return all;
}

Result<std::string> S3Client::append_object(const std::string& bucket, const std::string& key, uint64_t offset,
                                            const char* data, size_t len) {
  const std::string what = "S3 PutObject (append) " + object_name(bucket, key);
  if (!is_directory_bucket(bucket))
    return Status::Unsupported(what + ": appends need an S3 Express directory bucket (name ending in --x-s3)");
  if (len == 0) return Status::InvalidArgument(what + ": S3 refuses an empty append");
  Request req = put_request(bucket, key, data, len);
  req.op = "PutObject (append)";
  req.headers.emplace_back("x-amz-write-offset-bytes", std::to_string(offset));
  Result<HttpResponse> sent = send(req);
  if (!sent.is_ok()) {
    if (sent.status().code() != Code::kAborted) return sent.status();
    return Status::Aborted(sent.status().message() + ": the object is no longer " + std::to_string(offset) +
                           " bytes long (another writer appended to or replaced it); nothing of this append of " +
                           std::to_string(len) + " bytes was written");
  }
  // S3 Express answers an append with the object's new size. A server without appends ignores
  // x-amz-write-offset-bytes and stores the body as the whole object: say so loudly.
  const std::string size = sent->header("x-amz-object-size");
  const std::string expected = std::to_string(offset + len);
  if (size.empty())
    return Status::Unsupported(what + ": the server did not confirm the append (no x-amz-object-size in its "
                               "answer): it may not implement appends and may have replaced the object with the " +
                               std::to_string(len) + " appended bytes");
  if (size != expected)
    return Status::Corruption(what + ": the server reports " + size + " bytes after the append, expected " + expected);
  return strip_quotes(sent->header("etag"));
}

Status S3Client::rename_object(const std::string& bucket, const std::string& src_key, const std::string& dst_key,
                               const WriteCondition& cond) {
  const std::string what = "S3 RenameObject " + object_name(bucket, src_key) + " -> " + object_name(bucket, dst_key);
  if (!is_directory_bucket(bucket))
    return Status::Unsupported(what + ": RenameObject needs an S3 Express directory bucket (name ending in --x-s3)");
  Request req;
  req.op = "RenameObject";
  req.method = "PUT";
  req.bucket = bucket;
  req.key = dst_key;
  req.query = {{"renameObject", ""}};
  req.headers.emplace_back("x-amz-rename-source", "/" + uri_encode(bucket, true) + "/" + uri_encode(src_key, false));
  // One token for every attempt: a retry of a rename that did happen is recognised by the server.
  req.headers.emplace_back("x-amz-client-token", client_token());
  add_condition(&req.headers, cond);
  return condition_failed(send(req).status(), cond);
}

Result<std::string> S3Client::copy_object(const std::string& src_bucket, const std::string& src_key,
                                          const std::string& dst_bucket, const std::string& dst_key) {
  Request req;
  req.op = "CopyObject";
  req.method = "PUT";
  req.bucket = dst_bucket;
  req.key = dst_key;
  req.headers.emplace_back("x-amz-copy-source", "/" + uri_encode(src_bucket, true) + "/" + uri_encode(src_key, false));
  // The source's size is not known here: the copy gets the metadata deadline.
  STOR_ASSIGN_OR_RETURN(HttpResponse resp, send_allowing_late_errors(req, 0));
  return parse_copy_object(resp.body);
}

}  // namespace stor::s3
