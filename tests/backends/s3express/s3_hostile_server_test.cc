// The S3 client against a hostile endpoint: a tiny in-test HTTP server (a thread accepting on
// 127.0.0.1:0) that answers with endless bodies, never answers, or drip-feeds bytes. The client
// must fail with a clear error, within its deadline, without its memory growing with the body.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "s3_test_support.h"

using namespace stor;
using namespace stor::s3;
using Clock = std::chrono::steady_clock;

namespace {

// Accepts connections and runs `behave(fd)` for each on its own thread. The destructor closes the
// listener and shuts every connection down, so behaviours blocked in I/O return.
class HostileServer {
 public:
  using Behave = std::function<void(int fd, const std::atomic<bool>& stop)>;
  explicit HostileServer(Behave behave) : behave_(std::move(behave)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 16) == 0);
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~HostileServer() { stop(); }
  void stop() {
    if (stop_.exchange(true)) return;
    acceptor_.join();
    ::close(listen_fd_);
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    for (auto& t : workers_) t.join();
    for (int fd : fds_) ::close(fd);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_.load(); }

 private:
  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int fd = ::accept(listen_fd_, nullptr, nullptr);
      if (fd < 0) continue;
      connections_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      fds_.push_back(fd);
      workers_.emplace_back([this, fd] { behave_(fd, stop_); });
    }
  }
  Behave behave_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> workers_;
};

// Reads up to the blank line ending a request head; false on EOF, error or stop.
bool read_request_head(int fd, const std::atomic<bool>& stop) {
  std::string head;
  char buf[4096];
  while (!stop && head.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    head.append(buf, static_cast<size_t>(n));
  }
  return !stop;
}

bool send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

void wait_for_stop(int fd, const std::atomic<bool>& stop) {
  char buf[4096];
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0 && ::recv(fd, buf, sizeof buf, 0) <= 0) return;
  }
}

// Safety cap for the endless bodies: a client without a limit would otherwise eat the machine.
// The server closes the connection after this much.
constexpr uint64_t kEndlessCap = 200ull << 20;

// Answers every request with `status` and a chunked XML body that never ends (up to kEndlessCap).
HostileServer::Behave endless_chunked(int status) {
  return [status](int fd, const std::atomic<bool>& stop) {
    while (read_request_head(fd, stop)) {
      std::string head = "HTTP/1.1 " + std::to_string(status) +
                         " X\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n";
      std::string chunk;
      while (chunk.size() < 64 * 1024) chunk += "<Contents><Key>key-that-never-ends</Key></Contents>";
      char size[32];
      std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      const std::string framed = size + chunk + "\r\n";
      if (!send_all(fd, head + size + ("<ListBucketResult>" + chunk).substr(0, chunk.size()) + "\r\n")) return;
      for (uint64_t sent = 0; !stop && sent < kEndlessCap; sent += chunk.size())
        if (!send_all(fd, framed)) return;
      ::shutdown(fd, SHUT_RDWR);  // cap reached
      return;
    }
  };
}

// Same with a Content-Length the server never finishes.
HostileServer::Behave endless_with_length(int status) {
  return [status](int fd, const std::atomic<bool>& stop) {
    while (read_request_head(fd, stop)) {
      std::string block(64 * 1024, 'x');
      if (!send_all(fd, "HTTP/1.1 " + std::to_string(status) +
                            " X\r\nContent-Type: application/xml\r\nContent-Length: 999999999999999\r\n\r\n"))
        return;
      for (uint64_t sent = 0; !stop && sent < kEndlessCap; sent += block.size())
        if (!send_all(fd, block)) return;
      ::shutdown(fd, SHUT_RDWR);  // cap reached
      return;
    }
  };
}

uint64_t rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  }
  return 0;
}

// Runs fn on a thread while sampling VmRSS; returns the peak growth over the starting RSS.
template <typename Fn>
uint64_t peak_rss_growth(Fn&& fn) {
  const uint64_t before = rss_bytes();
  std::atomic<bool> done{false};
  std::atomic<uint64_t> peak{before};
  std::thread sampler([&] {
    while (!done) {
      uint64_t now = rss_bytes();
      if (now > peak) peak = now;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  fn();
  done = true;
  sampler.join();
  return peak > before ? peak - before : 0;
}

std::map<std::string, std::string> hostile_settings(std::map<std::string, std::string> extra = {}) {
  extra.emplace("s3.session", "off");
  return extra;
}

}  // namespace

TEST_CASE("s3 hostile: an endless ListObjectsV2 body fails with a size error and bounded memory") {
  for (bool chunked : {true, false}) {
    INFO((chunked ? "chunked" : "Content-Length"));
    HostileServer server(chunked ? endless_chunked(200) : endless_with_length(200));
    auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.max_attempts", "2"}, {"s3.timeout_ms", "5000"}}));
    REQUIRE(client);
    Result<ListPage> page = Status::Internal("not run");
    const uint64_t growth = peak_rss_growth([&] { page = client->list_objects_v2("bucket", "", "/", ""); });
    INFO(page.status().to_string());
    REQUIRE_FALSE(page.is_ok());
    CHECK(page.status().code() == Code::kIoError);
    CHECK(page.status().message().find("s3.max_xml_body") != std::string::npos);
    CHECK(growth < (64ull << 20));
    CHECK(server.connections() == 1);  // a body over the limit is not retried
  }
}

TEST_CASE("s3 hostile: an endless error body on a data GET is capped too") {
  HostileServer server(endless_chunked(403));
  auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.max_attempts", "2"}, {"s3.timeout_ms", "5000"}}));
  REQUIRE(client);
  std::vector<char> dst(1 << 20);
  Result<size_t> got = Status::Internal("not run");
  const uint64_t growth =
      peak_rss_growth([&] { got = client->get_range("bucket", "key", 0, dst.size(), dst.data()); });
  INFO(got.status().to_string());
  REQUIRE_FALSE(got.is_ok());
  CHECK(got.status().message().find("s3.max_xml_body") != std::string::npos);
  CHECK(growth < (64ull << 20));
}

TEST_CASE("s3 hostile: a data GET answered with more bytes than asked for fails without growing memory") {
  for (bool chunked : {true, false}) {
    INFO((chunked ? "chunked" : "Content-Length"));
    HostileServer server(chunked ? endless_chunked(200) : endless_with_length(200));
    auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.max_attempts", "2"}, {"s3.timeout_ms", "5000"}}));
    REQUIRE(client);
    std::vector<char> dst(1 << 20);
    Result<size_t> got = Status::Internal("not run");
    const uint64_t growth =
        peak_rss_growth([&] { got = client->get_range("bucket", "key", 0, dst.size(), dst.data()); });
    INFO(got.status().to_string());
    REQUIRE_FALSE(got.is_ok());
    CHECK(got.status().code() == Code::kIoError);
    CHECK(got.status().message().find("expected") != std::string::npos);
    CHECK(growth < (64ull << 20));
    CHECK(server.connections() == 1);
  }
}

namespace {

// Reads the request, then says nothing until stopped.
void silent(int fd, const std::atomic<bool>& stop) {
  if (read_request_head(fd, stop)) wait_for_stop(fd, stop);
}

// Sends `prefix`, then one byte every 100 ms until stopped or the client goes away.
HostileServer::Behave drip(std::string prefix, char byte) {
  return [prefix, byte](int fd, const std::atomic<bool>& stop) {
    if (!read_request_head(fd, stop) || !send_all(fd, prefix)) return;
    while (!stop && send_all(fd, std::string(1, byte))) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  };
}

// Runs fn on a thread and waits at most `limit` for it. A client that ignores its deadline would
// hang the test for minutes: then the server is stopped (the client sees the connection end and
// the listener gone) so the thread finishes, and the check below fails.
template <typename T>
Result<T> bounded_call(HostileServer& server, std::chrono::seconds limit, double* seconds,
                       std::function<Result<T>()> fn) {
  const auto start = Clock::now();
  auto future = std::async(std::launch::async, std::move(fn));
  const bool finished = future.wait_for(limit) == std::future_status::ready;
  *seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (!finished) server.stop();
  Result<T> r = future.get();
  CHECK(finished);
  return r;
}

}  // namespace

TEST_CASE("s3 hostile: a silent endpoint fails within the request deadline, saying how long and how often") {
  HostileServer server(silent);
  // Default per-operation timeout (60 s) and attempts (6): only the deadline can end this early.
  auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.request_deadline_ms", "2000"}}));
  REQUIRE(client);
  double seconds = 0;
  auto page = bounded_call<ListPage>(server, std::chrono::seconds(15), &seconds,
                                     [&] { return client->list_objects_v2("bucket", "", "/", ""); });
  INFO(page.status().to_string());
  REQUIRE_FALSE(page.is_ok());
  CHECK(seconds < 5.0);
  CHECK(page.status().code() == Code::kTimeout);
  CHECK(page.status().message().find("attempt") != std::string::npos);
  CHECK(page.status().message().find("s3.request_deadline_ms") != std::string::npos);
  CHECK(page.status().message().find(" s") != std::string::npos);
}

TEST_CASE("s3 hostile: drip-fed headers or bodies (one byte per 100 ms) still end at the deadline") {
  struct Case {
    const char* name;
    std::string prefix;
    char byte;
  };
  for (const Case& c : {Case{"header", "HTTP/1.1 200 OK\r\nX-Drip: ", 'a'},
                        Case{"body", "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 100000\r\n\r\n<",
                             'a'}}) {
    INFO(c.name);
    HostileServer server(drip(c.prefix, c.byte));
    auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.request_deadline_ms", "1000"}}));
    REQUIRE(client);
    double seconds = 0;
    auto page = bounded_call<ListPage>(server, std::chrono::seconds(15), &seconds,
                                       [&] { return client->list_objects_v2("bucket", "", "/", ""); });
    INFO(page.status().to_string());
    REQUIRE_FALSE(page.is_ok());
    CHECK(seconds < 5.0);
    CHECK(page.status().code() == Code::kTimeout);
    CHECK(page.status().message().find("s3.request_deadline_ms") != std::string::npos);

    // A data GET gets the same treatment (its deadline grows with its size: 1 KiB adds ~1 ms).
    HostileServer data_server(drip(c.prefix, c.byte));
    auto data_client =
        s3::test::make_client(data_server.endpoint(), hostile_settings({{"s3.request_deadline_ms", "1000"}}));
    std::vector<char> dst(1024);
    auto got = bounded_call<size_t>(data_server, std::chrono::seconds(15), &seconds,
                                    [&] { return data_client->get_range("bucket", "key", 0, dst.size(), dst.data()); });
    INFO(got.status().to_string());
    REQUIRE_FALSE(got.is_ok());
    CHECK(seconds < 5.0);
  }
}

TEST_CASE("s3 hostile: retry backoff does not sleep past the deadline") {
  // Every request gets 503 SlowDown at once; backoffs of ~1-2 s each would take minutes for
  // 100 attempts.
  HostileServer server([](int fd, const std::atomic<bool>& stop) {
    const std::string body = "<Error><Code>SlowDown</Code><Message>slow down</Message></Error>";
    while (read_request_head(fd, stop)) {
      if (!send_all(fd, "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body))
        return;
    }
  });
  auto client = s3::test::make_client(
      server.endpoint(),
      hostile_settings({{"s3.request_deadline_ms", "2000"}, {"s3.max_attempts", "100"}, {"s3.retry_base_ms", "1500"}}));
  REQUIRE(client);
  double seconds = 0;
  auto page = bounded_call<ListPage>(server, std::chrono::seconds(15), &seconds,
                                     [&] { return client->list_objects_v2("bucket", "", "/", ""); });
  INFO(page.status().to_string());
  REQUIRE_FALSE(page.is_ok());
  CHECK(seconds < 5.0);
  CHECK(page.status().code() == Code::kUnavailable);  // the server's answer, not a made-up one
  CHECK(page.status().message().find("SlowDown") != std::string::npos);
  CHECK(page.status().message().find("s3.request_deadline_ms") != std::string::npos);
}

namespace {

// Answers every request with the same bytes (a HEAD answer has no body).
HostileServer::Behave canned(std::string response) {
  return [response](int fd, const std::atomic<bool>& stop) {
    while (read_request_head(fd, stop))
      if (!send_all(fd, response)) return;
  };
}

}  // namespace

TEST_CASE("s3 hostile: HEAD answers with impossible sizes, dates or conflicting headers are errors") {
  const std::string date = "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
  struct Case {
    const char* name;
    std::string headers;
    const char* expect;  // in the message
  };
  for (const Case& c : {Case{"2^64-1 bytes", "Content-Length: 18446744073709551615\r\n" + date, "Content-Length"},
                        Case{"2^63 bytes", "Content-Length: 9223372036854775808\r\n" + date, "Content-Length"},
                        Case{"no length", date, "Content-Length"},
                        Case{"year 9999", "Content-Length: 5\r\nLast-Modified: Fri, 31 Dec 9999 23:59:59 GMT\r\n",
                             "Last-Modified"},
                        Case{"two ETags", "Content-Length: 5\r\nETag: \"aaa\"\r\nETag: \"bbb\"\r\n" + date, "etag"},
                        Case{"two CRCs", "Content-Length: 5\r\nx-amz-meta-stor-crc32c: 00000001\r\n"
                                         "x-amz-meta-stor-crc32c: 00000002\r\n" + date,
                             "x-amz-meta-stor-crc32c"}}) {
    INFO(c.name);
    HostileServer server(canned("HTTP/1.1 200 OK\r\n" + c.headers + "\r\n"));
    auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.request_deadline_ms", "3000"}}));
    REQUIRE(client);
    auto head = client->head_object("bucket", "key");
    INFO(head.status().to_string());
    REQUIRE_FALSE(head.is_ok());
    CHECK(head.status().message().find(c.expect) != std::string::npos);
    // get_object must not try to allocate what the HEAD claimed.
    CHECK_FALSE(client->get_object("bucket", "key").is_ok());
  }
  // The same header twice with the same value is harmless.
  HostileServer same(canned("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nETag: \"aaa\"\r\nETag: \"aaa\"\r\n" + date + "\r\n"));
  auto client = s3::test::make_client(same.endpoint(), hostile_settings());
  auto head = client->head_object("bucket", "key");
  INFO(head.status().to_string());
  REQUIRE(head.is_ok());
  CHECK(head->size == 5);
  CHECK(head->etag == "aaa");
  CHECK(head->mtime_ns == 784111777LL * 1000000000LL);
}

TEST_CASE("s3 hostile: a ranged GET whose Content-Range disagrees with the bytes sent is an error") {
  // Asked for bytes 0-99; the server claims 0-99 but sends 50 (a short read would look like the
  // object's end and silently truncate the file).
  HostileServer server(canned("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/1000\r\n"
                              "Content-Length: 50\r\n\r\n" + std::string(50, 'x')));
  auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.max_attempts", "1"}}));
  std::vector<char> dst(100);
  auto got = client->get_range("bucket", "key", 0, dst.size(), dst.data());
  INFO(got.status().to_string());
  REQUIRE_FALSE(got.is_ok());
  CHECK(got.status().message().find("Content-Range") != std::string::npos);
  // Consistent answers still work: the last 50 bytes of a 50-byte object.
  HostileServer good(canned("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-49/50\r\n"
                            "Content-Length: 50\r\n\r\n" + std::string(50, 'x')));
  auto good_client = s3::test::make_client(good.endpoint(), hostile_settings());
  auto ok = good_client->get_range("bucket", "key", 0, dst.size(), dst.data());
  INFO(ok.status().to_string());
  REQUIRE(ok.is_ok());
  CHECK(*ok == 50);
}

TEST_CASE("s3 hostile: bytes sent after an answer are not read as the next answer") {
  // Each connection's first answer carries a second, unrequested answer right behind it. A
  // pooled connection would hand that one to the next request.
  const std::string good = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
  const std::string smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!";
  HostileServer server([&](int fd, const std::atomic<bool>& stop) {
    bool first = true;
    while (read_request_head(fd, stop)) {
      if (!send_all(fd, first ? good + smuggled : good)) return;
      first = false;
    }
  });
  auto client = s3::test::make_client(server.endpoint(), hostile_settings({{"s3.max_connections", "1"}}));
  for (int i = 0; i < 3; ++i) {
    char dst[5] = {};
    auto got = client->get_range("bucket", "key", 0, sizeof dst, dst);
    INFO(i << ": " << got.status().to_string());
    REQUIRE(got.is_ok());
    CHECK(std::string(dst, sizeof dst) == "hello");
  }
}

TEST_CASE("s3 hostile: an endless chunk extension or trailer does not grow the read buffer") {
  // Chunk headers and trailers sit in the connection's read buffer until their line ends.
  for (const char* what : {"extension", "trailer"}) {
    INFO(what);
    HostileServer server([what](int fd, const std::atomic<bool>& stop) {
      if (!read_request_head(fd, stop)) return;
      std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
      head += std::string(what) == "extension" ? "5;ext=" : "0\r\nX-Trailer: ";
      if (!send_all(fd, head)) return;
      const std::string block(64 * 1024, 'a');
      for (uint64_t sent = 0; !stop && sent < kEndlessCap; sent += block.size())
        if (!send_all(fd, block)) return;
      ::shutdown(fd, SHUT_RDWR);
    });
    auto client = s3::test::make_client(server.endpoint(),
                                        hostile_settings({{"s3.max_attempts", "1"}, {"s3.timeout_ms", "5000"}}));
    Result<ListPage> page = Status::Internal("not run");
    const uint64_t growth = peak_rss_growth([&] { page = client->list_objects_v2("bucket", "", "/", ""); });
    INFO(page.status().to_string());
    REQUIRE_FALSE(page.is_ok());
    CHECK(growth < (64ull << 20));
  }
}

TEST_CASE("s3 hostile: completing a multipart upload gets time in proportion to the object's size") {
  // The server assembles the object before it answers (real S3 may take minutes for a large one):
  // 1.5 s here, past the 1 s metadata deadline but well inside the time 16 MiB of parts earn at
  // s3.min_transfer_rate.
  HostileServer server([](int fd, const std::atomic<bool>& stop) {
    while (read_request_head(fd, stop)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      const std::string body =
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult><Bucket>b</Bucket>"
          "<Key>k</Key><ETag>\"0123456789abcdef0123456789abcdef-2\"</ETag></CompleteMultipartUploadResult>";
      if (!send_all(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n" + body))
        return;
    }
  });
  auto client = s3::test::make_client(
      server.endpoint(), hostile_settings({{"s3.request_deadline_ms", "1000"}, {"s3.min_transfer_rate", "1M"}}));
  REQUIRE(client);
  const std::vector<S3Client::UploadedPart> big{{"\"e1\"", "", 8u << 20}, {"\"e2\"", "", 8u << 20}};
  auto done = client->complete_multipart_upload("b", "k", "upload-1", big);
  INFO(done.status().to_string());
  CHECK(done.is_ok());
  // Tiny parts earn almost nothing: the metadata deadline ends the wait.
  const std::vector<S3Client::UploadedPart> tiny{{"\"e1\"", "", 10}, {"\"e2\"", "", 10}};
  auto late = client->complete_multipart_upload("b", "k", "upload-2", tiny);
  CHECK(late.status().code() == Code::kTimeout);
  CHECK(late.status().message().find("deadline") != std::string::npos);
}

TEST_CASE("s3 hostile: pooled connections the server has since closed are not used") {
  // HTTP/1.1 servers close idle keep-alive connections (node's s3rver after 5 s). The client
  // pools 4 connections, the server closes them all, then each request must still succeed on its
  // first attempt (it dropped the stale ones; it used to retry once, then fail with "closed twice
  // in a row" when the pool held two).
  constexpr int kConnections = 4;
  std::atomic<int> arrived{0};
  HostileServer server([&](int fd, const std::atomic<bool>& stop) {
    if (!read_request_head(fd, stop)) return;
    ++arrived;
    // Hold the first answers until all 4 connections are open, so the client opens 4.
    const auto until = Clock::now() + std::chrono::seconds(5);
    while (arrived.load() < kConnections && Clock::now() < until && !stop)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (!send_all(fd, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-4/5\r\nContent-Length: 5\r\n\r\nhello"))
      return;
    ::shutdown(fd, SHUT_WR);  // a keep-alive answer, then the server closes its side
  });
  auto client = s3::test::make_client(
      server.endpoint(), hostile_settings({{"s3.max_attempts", "1"}, {"s3.max_connections", std::to_string(kConnections)}}));
  std::vector<std::future<Result<size_t>>> first;
  for (int i = 0; i < kConnections; ++i) {
    first.push_back(std::async(std::launch::async, [&] {
      char dst[5];
      return client->get_range("bucket", "key", 0, sizeof dst, dst);
    }));
  }
  for (auto& f : first) REQUIRE(f.get().is_ok());
  REQUIRE(server.connections() == kConnections);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the FINs arrive
  for (int i = 0; i < 3; ++i) {
    char dst[5] = {};
    auto got = client->get_range("bucket", "key", 0, sizeof dst, dst);
    INFO(i << ": " << got.status().to_string());
    REQUIRE(got.is_ok());
    CHECK(std::string(dst, sizeof dst) == "hello");
  }
}

// Not hostile: the in-test server here is also the simplest way to see which local address each
// connection comes from.
namespace {
// Answers one HEAD per connection with a 3-byte object and closes it, recording the peer address,
// so every request opens a new connection.
HostileServer::Behave record_peers(std::mutex* mu, std::vector<std::string>* peers) {
  return [mu, peers](int fd, const std::atomic<bool>& stop) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
    char addr[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &peer.sin_addr, addr, sizeof addr);
    if (!read_request_head(fd, stop)) return;
    {
      std::lock_guard<std::mutex> lock(*mu);
      peers->push_back(addr);
    }
    send_all(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nETag: \"e\"\r\nConnection: close\r\n\r\n");
    ::shutdown(fd, SHUT_RDWR);
  };
}
}  // namespace

TEST_CASE("s3 client: s3.network_interfaces binds new connections to each local address in turn") {
  std::mutex mu;
  std::vector<std::string> peers;
  HostileServer server(record_peers(&mu, &peers));
  // The whole of 127.0.0.0/8 is local on Linux: two source addresses without any set-up.
  auto client = s3::test::make_client(server.endpoint(),
                                      hostile_settings({{"s3.network_interfaces", "127.0.0.2,127.0.0.3"}}));
  REQUIRE(client);
  for (int i = 0; i < 4; ++i) {
    auto head = client->head_object("bucket", "key" + std::to_string(i));
    INFO(head.status().to_string());
    REQUIRE(head.is_ok());
    CHECK(head->size == 3);
  }
  server.stop();
  CHECK(peers == std::vector<std::string>{"127.0.0.2", "127.0.0.3", "127.0.0.2", "127.0.0.3"});

  // An address of another family, or one this host does not have, fails clearly.
  HostileServer other(record_peers(&mu, &peers));
  auto v6 = s3::test::make_client(other.endpoint(), hostile_settings({{"s3.network_interfaces", "::1"}}));
  REQUIRE(v6);
  auto r = v6->head_object("bucket", "key");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("s3.network_interfaces") != std::string::npos);
  auto foreign = s3::test::make_client(other.endpoint(), hostile_settings({{"s3.network_interfaces", "192.0.2.1"}}));
  REQUIRE(foreign);
  r = foreign->head_object("bucket", "key");
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("bind to 192.0.2.1") != std::string::npos);
  if (::geteuid() == 0) {
    // An interface name (SO_BINDTODEVICE, needs CAP_NET_RAW).
    auto lo = s3::test::make_client(other.endpoint(), hostile_settings({{"s3.network_interfaces", "lo"}}));
    REQUIRE(lo);
    CHECK(lo->head_object("bucket", "key").is_ok());
  }
}

TEST_CASE("s3 client: a name resolving to several addresses falls back to one that answers") {
  std::mutex mu;
  std::vector<std::string> peers;
  HostileServer server(record_peers(&mu, &peers));
  // "localhost" may also resolve to ::1, where nothing listens: connections are spread over the
  // addresses in turn, and one refused moves on to the next.
  const std::string endpoint = "http://localhost:" + server.endpoint().substr(server.endpoint().rfind(':') + 1);
  auto client = s3::test::make_client(endpoint, hostile_settings());
  REQUIRE(client);
  for (int i = 0; i < 4; ++i) CHECK(client->head_object("bucket", "k").is_ok());
  server.stop();
  CHECK(peers.size() == 4);
}
