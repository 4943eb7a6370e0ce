// HTTP responses as the S3 client sees them: a loopback server answers every request with the
// input bytes, and one S3Client operation (picked by the first byte) runs against it. This goes
// through the real path: Boost.Beast's response parser with stor's settings in http_client.cc,
// the body/sink handling, then the S3 client's header handling (Content-Length, ETag,
// Last-Modified, Content-Range, x-amz-meta-*, x-amz-bucket-region), error bodies and XML.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/s3express/s3_client.h"
#include "fuzz/fuzz_util.h"

using namespace stor::s3;

namespace {

constexpr int kTimeoutMs = 2000;

// Serves one connection at a time: reads a request (headers, then Content-Length body bytes),
// writes the current response, closes.
class FakeServer {
 public:
  FakeServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      stor::fuzz::fail("fake S3 server socket");
    port_ = ntohs(a.sin_port);
    std::thread([this] { serve(); }).detach();  // lives until exit
  }
  uint16_t port() const { return port_; }
  void set_response(std::string r) {
    std::lock_guard lk(mu_);
    response_ = std::move(r);
  }

 private:
  static bool wait_readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, kTimeoutMs) > 0;
  }
  void serve() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::string req;
      char buf[65536];
      size_t header_end = std::string::npos;
      while (header_end == std::string::npos && wait_readable(c)) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
        header_end = req.find("\r\n\r\n");
      }
      if (header_end != std::string::npos) {
        size_t body = 0;
        std::string lower = req.substr(0, header_end);
        for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (auto p = lower.find("\r\ncontent-length:"); p != std::string::npos)
          body = std::strtoull(lower.c_str() + p + 17, nullptr, 10);
        size_t have = req.size() - header_end - 4;
        while (have < body && wait_readable(c)) {
          ssize_t n = ::recv(c, buf, sizeof buf, 0);
          if (n <= 0) break;
          have += static_cast<size_t>(n);
        }
        std::string resp;
        {
          std::lock_guard lk(mu_);
          resp = response_;
        }
        size_t done = 0;
        while (done < resp.size()) {
          ssize_t n = ::send(c, resp.data() + done, resp.size() - done, MSG_NOSIGNAL);
          if (n <= 0) break;
          done += static_cast<size_t>(n);
        }
      }
      ::close(c);
    }
  }
  int fd_ = -1;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::string response_;
};

FakeServer& server() {
  static FakeServer* s = new FakeServer();
  return *s;
}

S3Client& client(bool sessions) {
  static S3Client* c[2] = {nullptr, nullptr};
  if (!c[sessions]) {
    S3Config cfg;
    cfg.endpoint = "http://127.0.0.1:" + std::to_string(server().port());
    cfg.credentials.access_key = "AKIDFUZZ";
    cfg.credentials.secret_key = "fuzz-secret";
    cfg.max_attempts = 1;  // one exchange per operation: the input is the answer
    cfg.retry_base = std::chrono::milliseconds(0);
    cfg.connect_timeout = std::chrono::milliseconds(kTimeoutMs);
    cfg.io_timeout = std::chrono::milliseconds(kTimeoutMs);
    cfg.session = sessions ? SessionMode::kOn : SessionMode::kOff;
    cfg.part_size = 64 * 1024;
    cfg.max_connections = 4;
    cfg.readahead = 0;
    auto made = S3Client::create(cfg);
    if (!made.is_ok()) stor::fuzz::fail("S3Client: " + made.status().to_string());
    c[sessions] = made->release();  // lives until exit
  }
  return *c[sessions];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t op = data[0];
  server().set_response(std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  S3Client& s3 = client(false);
  const std::string bucket = "bucket", key = "dir/key";
  static const std::string payload(1000, 'x');
  switch (op % 13) {
    case 0: {
      auto info = s3.head_object(bucket, key);
      if (info.is_ok()) (void)info->size;
      break;
    }
    case 1: {
      char buf[4096];
      const uint64_t offset = (op & 0x80) ? 100 : 0;
      auto n = s3.get_range(bucket, key, offset, sizeof buf, buf, (op & 0x40) ? "etag" : "");
      if (n.is_ok()) STOR_FUZZ_CHECK(*n <= sizeof buf, "get_range returned more than asked");
      break;
    }
    case 2: {
      // A whole-object read as the backend does it: HEAD, then ranged GETs (checksummed).
      auto info = s3.head_object(bucket, key);
      if (!info.is_ok() || info->size > (1u << 20)) break;  // the backend caps reads by the caller's buffer
      std::vector<char> buf(info->size);
      auto n = s3.read_object(bucket, key, *info, 0, buf.size(), buf.data());
      if (n.is_ok()) STOR_FUZZ_CHECK(*n <= buf.size(), "read_object returned more than asked");
      break;
    }
    case 3: {
      auto page = s3.list_objects_v2(bucket, "dir/", "/", (op & 0x80) ? "token" : "", 1000);
      (void)page;
      break;
    }
    case 4: (void)s3.create_multipart_upload(bucket, key, {{"k", "v"}}); break;
    case 5: (void)s3.upload_part(bucket, key, "upload-id", 1, payload.data(), payload.size()); break;
    case 6: {
      std::vector<S3Client::UploadedPart> parts{{"etag1", ""}, {"etag2", ""}};
      (void)s3.complete_multipart_upload(bucket, key, "upload-id", parts);
      break;
    }
    case 7: (void)s3.delete_objects(bucket, {"a", "b/c", "d&<>"}); break;
    case 8: (void)s3.copy_object(bucket, key, bucket, "dir/copy"); break;
    case 9: (void)s3.put_object_single(bucket, key, payload.data(), payload.size()); break;
    case 10: {
      // CreateSession on a bucket never seen before (sessions are cached per bucket).
      static std::atomic<uint64_t> n{0};
      (void)client(true).auth_mode("b" + std::to_string(n++) + "--x-s3");
      break;
    }
    case 11: (void)s3.delete_object(bucket, key); break;
    case 12: (void)s3.create_bucket(bucket); break;
  }
  return 0;
}
