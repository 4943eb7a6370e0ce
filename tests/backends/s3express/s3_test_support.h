// Test fixtures for the S3 suites: a real s3rver process, a fault-injecting proxy in front of it,
// and a tiny server that implements CreateSession.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/s3express/s3_client.h"
#include "test_util.h"

namespace stor::s3::test {

// True when the suites run against the Ceph RADOS Gateway instead of s3rver: STOR_S3_TEST_SERVER=rgw,
// with STOR_RGW_DIR the directory of a gateway started by tests/fixtures/rgw.sh (the CTest fixture
// `rgw` does both; see the `.rgw` registrations in CMakeLists.txt). RGW checks SigV4 signatures,
// so the settings then carry the fixed keys of the S3 user rgw.sh creates.
bool on_rgw();

// One s3rver per test process, started on first use on 127.0.0.1 with a free port and a temp
// directory, stopped at exit. available() is false (with the reason in skip_reason()) only when
// node is not installed; a missing s3rver package is a hard failure.
// Under on_rgw(), instance() is the already running gateway instead (data_dir() is then not an
// object store directory: tests that poke at s3rver's files skip that part).
class S3rver {
 public:
  static S3rver& instance();
  // A separate server; with a key and certificate (PEM files) it serves https.
  explicit S3rver(const std::string& tls_key_file = {}, const std::string& tls_cert_file = {});
  bool available() const { return available_; }
  const std::string& skip_reason() const { return skip_reason_; }
  const std::string& error() const { return error_; }  // non-empty: node is there but s3rver failed
  int port() const { return port_; }
  std::string endpoint() const { return (tls_ ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port_); }
  const std::string& data_dir() const { return dir_.path(); }
  ~S3rver();
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

 private:
  struct Rgw {};
  explicit S3rver(Rgw);
  bool start_on(int port, const std::string& node, const std::string& js, const std::string& data,
                const std::string& log, const std::string& tls_key_file, const std::string& tls_cert_file);
  stor::test::TempDir dir_;
  bool tls_ = false;
  bool available_ = false;
  std::string skip_reason_, error_;
  int pid_ = -1;
  int port_ = 0;
};

// Starts (once) the shared s3rver in a test case, or skips the case when node is missing.
// Binds `server` to it.
#define REQUIRE_S3RVER()                                                  \
  auto& server = ::stor::s3::test::S3rver::instance();                    \
  if (!server.available()) {                                              \
    WARN("skipping S3 test: " << server.skip_reason());                   \
    return;                                                               \
  }                                                                       \
  REQUIRE(server.error() == "")

// Path of an executable in $PATH, or "".
std::string find_in_path(const std::string& name);

// Settings for a client of `endpoint` with the shared server's fixed credentials (s3rver's, or the
// RGW fixture's under on_rgw()).
std::map<std::string, std::string> s3rver_settings(const std::string& endpoint);
std::unique_ptr<S3Client> make_client(const std::string& endpoint, std::map<std::string, std::string> extra = {});
// A bucket name unique within this process run.
std::string unique_bucket(const std::string& stem);

// TCP proxy on 127.0.0.1 forwarding HTTP/1.1 to an upstream, injecting faults for a seeded,
// deterministic fraction of requests: connection resets (before or in the middle of the response)
// and 503 SlowDown answers. `fail_matching` answers 400 to every request whose target contains it.
class FaultProxy {
 public:
  struct Options {
    double reset_fraction = 0.0;
    double slowdown_fraction = 0.0;
    uint64_t seed = 42;
    std::string fail_matching;
    // The first POST whose target contains this is forwarded, then its answer is cut off.
    std::string lose_first_post_answer_matching;
    // The first POST whose target contains this is answered "200 OK" with an InternalError body
    // (as S3 may do for CompleteMultipartUpload) without being forwarded.
    std::string error_in_200_first_post_matching;
  };
  FaultProxy(int upstream_port, Options opts);
  ~FaultProxy();
  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  uint64_t requests() const { return requests_.load(); }
  uint64_t injected() const { return injected_.load(); }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
  std::atomic<uint64_t> requests_{0}, injected_{0};
};

// Minimal S3 Express look-alike: GET /bucket?session issues tokens (lifetime configurable); other
// requests must carry a live x-amz-s3session-token and get a fixed body. Tokens can be revoked
// to exercise the ExpiredToken path. With sessions_supported=false it answers 501 NotImplemented.
class SessionServer {
 public:
  SessionServer(int token_lifetime_seconds, bool sessions_supported);
  ~SessionServer();
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int sessions_issued() const;
  std::vector<std::string> tokens_seen() const;  // x-amz-s3session-token of each data request
  std::vector<std::string> auth_services() const;  // service in each request's credential scope
  void revoke_all();
  static constexpr const char* kBody = "session-protected-content";

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

// Protocol-level fake of one S3 Express directory bucket, for the calls neither s3rver nor RGW
// implements (CreateSession, conditional writes, appends with x-amz-write-offset-bytes,
// RenameObject, multipart uploads with a FULL_OBJECT CRC32C) and for unordered listings. It checks each request as the AWS documentation
// specifies: the SigV4 signature is recomputed here with OpenSSL (independently of the client's
// sigv4.cc) from the exact method, path, query, signed headers and payload hash, the payload hash
// against the body; data calls must carry a live x-amz-s3session-token and be signed with that
// session's keys for the s3express service. A request that fails a check gets 403
// SignatureDoesNotMatch (or 400) and is recorded in violations().
class ExpressFake {
 public:
  static constexpr const char* kAccessKey = "AKIDEXPRESSFAKE";
  static constexpr const char* kSecretKey = "express-fake-secret";
  explicit ExpressFake(std::string bucket);
  ~ExpressFake();
  std::string endpoint() const;
  // Settings for a path-style client of this fake with its keys.
  std::map<std::string, std::string> settings() const;
  struct Seen {
    std::string method, target;
    std::map<std::string, std::string> headers;  // lower-case names
  };
  std::vector<Seen> requests() const;
  std::vector<std::string> violations() const;
  // Direct access to the stored objects (key -> bytes).
  std::map<std::string, std::string> objects() const;
  void put(const std::string& key, const std::string& data);
  void corrupt(const std::string& key);  // flips a bit of the stored bytes, checksum kept

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace stor::s3::test
