// A small blocking HTTP/1.1 client over Boost.Beast with a keep-alive connection pool.
// Each call borrows one pooled connection for the whole exchange, so N threads calling execute()
// at once use up to max_connections sockets. Timeouts are enforced per operation, and a request
// deadline bounds the whole exchange (a server drip-feeding bytes cannot hold a call forever).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/s3express/sigv4.h"
#include "stor/status.h"

namespace stor::s3 {

struct Endpoint {
  bool tls = false;
  std::string host;  // name or address, no port
  std::string port;  // "80", "443", "9000"

  // "http://127.0.0.1:9000" or "https://host". Rejects other schemes and paths beyond "/".
  static Result<Endpoint> parse(const std::string& url);
  // Host header value: host, plus ":port" when it is not the scheme's default.
  std::string host_header() const;
  std::string to_string() const;
};

struct HttpOptions {
  unsigned max_connections = 16;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{60000};  // per read/write operation, not per request
  bool verify_tls = true;
  std::string ca_file;  // extra CA bundle (PEM); the system store is always used
  // Bodies that land in HttpResponse::body (XML documents, error answers) longer than this fail
  // the request: a server streaming an endless body must not grow memory without bound.
  uint64_t max_body = 8ull << 20;
  // Local addresses ("10.0.1.5") or interface names ("eth1", SO_BINDTODEVICE) that new connections
  // are bound to in turn; empty: the kernel picks. The server's addresses (every one the name
  // resolves to) are taken in turn too.
  std::vector<std::string> local_bind;
};

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // encoded path plus "?query"
  HeaderList headers;  // Host and Content-Length are added by the client
  const char* body = nullptr;
  size_t body_len = 0;
  // The whole exchange (waiting for a pooled connection, connect, send, every read) ends by this
  // time; each socket operation is also bounded by its own timeout. max(): no deadline.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;        // the body, unless it went to the caller's sink
  size_t sink_bytes = 0;   // bytes written into the sink

  // Empty when absent.
  std::string header(const std::string& lower_name) const;
};

struct HttpStats {
  uint64_t requests = 0;
  uint64_t connections_opened = 0;
};

class HttpClient {
 public:
  HttpClient(Endpoint endpoint, HttpOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends the request and reads the response. When sink is non-null and the status is 2xx, the
  // body is written to sink (more than sink_len bytes is an error); otherwise it lands in
  // HttpResponse::body (more than options().max_body bytes is an error). Transport failures come
  // back as Unavailable or Timeout. *permanent (optional) is set when retrying cannot help: the
  // server sent more than the sink holds or more than max_body.
  Result<HttpResponse> execute(const HttpRequest& req, char* sink = nullptr, size_t sink_len = 0,
                               bool* permanent = nullptr);

  const Endpoint& endpoint() const noexcept { return endpoint_; }
  const HttpOptions& options() const noexcept { return options_; }
  HttpStats stats() const;

  struct Connection;  // defined in the .cc (keeps Beast out of this header)

 private:
  // Null when a new connection must be opened; Timeout when none was free before the deadline.
  Result<std::unique_ptr<Connection>> acquire(std::chrono::steady_clock::time_point deadline);
  void release(std::unique_ptr<Connection> conn, bool reusable);

  Endpoint endpoint_;
  HttpOptions options_;
  struct TlsContext;
  std::unique_ptr<TlsContext> tls_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  unsigned in_use_ = 0;
  HttpStats stats_;
};

}  // namespace stor::s3
