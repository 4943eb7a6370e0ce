#include "backends/s3express/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <exception>
#include <optional>

#include "stor/settings.h"

namespace stor::s3 {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

// ---------------------------------------------------------------------------------------------
// Endpoint

Result<Endpoint> Endpoint::parse(const std::string& url) {
  Endpoint ep;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    ep.tls = true;
    rest = url.substr(8);
  } else {
    return Status::InvalidArgument("s3 endpoint must start with http:// or https://: '" + url + "'");
  }
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    if (rest.substr(slash) != "/") return Status::InvalidArgument("s3 endpoint must not have a path: '" + url + "'");
    rest.resize(slash);
  }
  if (rest.empty()) return Status::InvalidArgument("s3 endpoint has no host: '" + url + "'");
  // "[::1]:9000" or "host:9000" or "host".
  std::string host = rest, port;
  bool has_port = false;
  const bool bracketed = rest.front() == '[';
  if (bracketed) {
    auto close = rest.find(']');
    if (close == std::string::npos) return Status::InvalidArgument("bad IPv6 endpoint: '" + url + "'");
    host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return Status::InvalidArgument("bad IPv6 endpoint: '" + url + "'");
      port = rest.substr(close + 2);
      has_port = true;
    }
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    has_port = true;
  }
  // The host goes into the Host header and the TLS name check: plain name/address characters
  // only (no userinfo, spaces or CR/LF).
  if (host.empty()) return Status::InvalidArgument("s3 endpoint has no host: '" + url + "'");
  for (char c : host) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
                    (bracketed && (c == ':' || c == '%'));
    if (!ok) return Status::InvalidArgument("bad character in s3 endpoint host: '" + url + "'");
  }
  if (!has_port) port = ep.tls ? "443" : "80";
  if (port.size() > 5) return Status::InvalidArgument("bad port in '" + url + "'");
  if (auto n = parse_uint(port); !n.is_ok()) return Status::InvalidArgument("bad port in '" + url + "'");
  else if (*n < 1 || *n > 65535) return Status::InvalidArgument("port out of range in '" + url + "'");
  ep.host = host;
  ep.port = port;
  return ep;
}

std::string Endpoint::host_header() const {
  bool default_port = (tls && port == "443") || (!tls && port == "80");
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return default_port ? h : h + ":" + port;
}

std::string Endpoint::to_string() const { return (tls ? "https://" : "http://") + host_header(); }

std::string HttpResponse::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

// ---------------------------------------------------------------------------------------------
// Connection: one socket (optionally TLS) with its own io_context, driven synchronously by the
// borrowing thread. Async operations + run() give us Beast's per-operation timeouts.

struct HttpClient::TlsContext {
  asio::ssl::context ctx{asio::ssl::context::tls_client};
};

struct HttpClient::Connection {
  asio::io_context ioc;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  // Reserved below: Beast sizes each socket read by its free capacity. Capped: a header, chunk
  // line or trailer that never ends must not grow it (Beast then fails with buffer_overflow).
  static constexpr size_t kReadBufferLimit = 256 * 1024;
  beast::flat_buffer buffer{kReadBufferLimit};
  bool reused = false;  // served a request before: may have been closed by the server meanwhile
  bool deadline_cut = false;  // the armed expiry is the request deadline, not the operation timeout

  // Arms the timer for the next operation: `timeout`, cut short by the request deadline. False
  // when the deadline has passed already.
  bool arm(std::chrono::milliseconds timeout, std::chrono::steady_clock::time_point deadline) {
    const auto now = std::chrono::steady_clock::now();
    deadline_cut = deadline - now <= timeout;  // deadline is never before the epoch: no overflow
    if (now >= deadline) return false;
    if (deadline_cut) lowest().expires_at(deadline);
    else lowest().expires_after(timeout);
    return true;
  }

  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }

  // Leaves delayed-ACK ("pingpong") mode before a response is read. Servers that write the header
  // and the body of an answer separately with Nagle on (RGW's beast frontend) hold the body until
  // the header is ACKed, and a client that just sent a request delays that ACK ~40 ms: 4 KiB GETs
  // took ~45 ms instead of ~1 ms. Linux clears TCP_QUICKACK again as the connection is used, so
  // this is re-armed before every read of a response. Failure only costs latency: ignored.
  void quickack() {
#ifdef TCP_QUICKACK
    int one = 1;
    ::setsockopt(lowest().socket().native_handle(), IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#endif
  }

  // Runs one asynchronous operation to completion on this thread.
  template <typename Start>
  error_code run(Start&& start) {
    error_code result = asio::error::would_block;
    start([&result](error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run();
    return result;
  }
};

namespace {

Status deadline_error(const std::string& what, const Endpoint& ep) {
  return Status::Timeout(what + " " + ep.to_string() + ": request deadline reached");
}

// A header, chunk line or trailer longer than Beast's header limit or our read buffer: the
// server misbehaves, a retry would see the same.
// True when the peer has closed (or reset) an idle socket: poll says readable or hung up.
bool peer_closed(int fd) {
  pollfd p{fd, POLLIN | POLLRDHUP, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

bool oversized(const error_code& ec) { return ec == http::error::header_limit || ec == http::error::buffer_overflow; }

// Opens `sock` for `target` bound to `local`: an address of this host (port chosen by the kernel)
// or an interface name (SO_BINDTODEVICE, which needs CAP_NET_RAW).
Status bind_local(tcp::socket& sock, const tcp::endpoint& target, const std::string& local) {
  error_code ec;
  sock.open(target.protocol(), ec);
  if (ec) return Status::Unavailable("socket for " + target.address().to_string() + ": " + ec.message());
  error_code addr_ec;
  const asio::ip::address addr = asio::ip::make_address(local, addr_ec);
  if (!addr_ec) {
    if (addr.is_v4() != target.address().is_v4()) {
      return Status::InvalidArgument("s3.network_interfaces: local address " + local + " cannot reach " +
                                     target.address().to_string() + " (other address family)");
    }
    sock.bind(tcp::endpoint(addr, 0), ec);
    if (ec) return Status::InvalidArgument("s3.network_interfaces: bind to " + local + ": " + ec.message());
    return Status::ok();
  }
  if (::setsockopt(sock.native_handle(), SOL_SOCKET, SO_BINDTODEVICE, local.c_str(),
                   static_cast<socklen_t>(local.size())) != 0) {
    return Status::from_errno(errno, "s3.network_interfaces: bind to interface " + local);
  }
  return Status::ok();
}

Status transport_error(const std::string& what, const Endpoint& ep, const error_code& ec, bool deadline_cut = false) {
  if (ec == beast::error::timeout && deadline_cut) return deadline_error(what, ep);
  if (oversized(ec)) {
    return Status::IoError(what + " " + ep.to_string() + ": a header, chunk line or trailer longer than " +
                                      std::to_string(HttpClient::Connection::kReadBufferLimit) + " bytes: " +
                                      ec.message());
  }
  Code code = ec == beast::error::timeout ? Code::kTimeout : Code::kUnavailable;
  return Status(code, what + " " + ep.to_string() + ": " + ec.message());
}

template <typename Stream>
Result<HttpResponse> exchange(HttpClient::Connection& c, Stream& stream, const Endpoint& ep, const HttpOptions& opt,
                              const HttpRequest& req, char* sink, size_t sink_len, bool* reusable,
                              bool* failed_before_response, bool* permanent) {
  *reusable = false;
  *failed_before_response = true;
  http::request<http::buffer_body> msg;
  msg.version(11);
  msg.method_string(req.method);
  msg.target(req.target);
  msg.set(http::field::host, ep.host_header());
  for (const auto& [k, v] : req.headers) msg.insert(k, v);
  msg.keep_alive(true);
  msg.body().data = const_cast<char*>(req.body);
  msg.body().size = req.body_len;
  msg.body().more = false;
  if (req.body_len > 0 || req.method == "PUT" || req.method == "POST") msg.content_length(req.body_len);

  if (!c.arm(opt.io_timeout, req.deadline)) return deadline_error("send " + req.method + " to", ep);
  error_code ec = c.run([&](auto handler) { http::async_write(stream, msg, std::move(handler)); });
  if (ec) return transport_error("send " + req.method + " to", ep, ec, c.deadline_cut);

  http::response_parser<http::buffer_body> parser;
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  if (req.method == "HEAD") parser.skip(true);
  if (!c.arm(opt.io_timeout, req.deadline)) return deadline_error("read response header from", ep);
  c.quickack();
  ec = c.run([&](auto handler) { http::async_read_header(stream, c.buffer, parser, std::move(handler)); });
  if (oversized(ec)) *permanent = true;
  if (ec) return transport_error("read response header from", ep, ec, c.deadline_cut);
  *failed_before_response = false;

  HttpResponse resp;
  resp.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    auto [it, inserted] = resp.headers.emplace(name, std::string(field.value()));
    if (!inserted && it->second != field.value()) {
      // Two different ETags, ranges or checksums: no way to tell which one is meant.
      if (name == "etag" || name == "content-range" || name == "last-modified" || name.rfind("x-amz-", 0) == 0) {
        *permanent = true;
        return Status::IoError("response from " + ep.to_string() + " has conflicting '" + name +
                                          "' headers: '" + it->second.substr(0, 80) + "' and '" +
                                          std::string(field.value().substr(0, 80)) + "'");
      }
      it->second = std::string(field.value());  // others: the last one, as before
    }
  }

  if (resp.status == 206) {
    // A range of an empty object does not exist (S3 answers 416). s3rver answers 206 "bytes 0-0/0"
    // with a Content-Length of 1 and no body, which would be waited for until the deadline: take
    // it for the 416 it means, and drop the connection (its framing is wrong).
    const std::string cr = resp.header("content-range");
    if (cr.size() > 2 && cr.compare(cr.size() - 2, 2, "/0") == 0 && cr.find('/') == cr.size() - 2) {
      *permanent = true;
      return Status::OutOfRange("response from " + ep.to_string() + ": Content-Range '" + cr.substr(0, 80) +
                                "' is a range of an empty object");
    }
  }
  const bool to_sink = sink != nullptr && resp.status >= 200 && resp.status < 300;
  auto too_large = [&](const std::string& how) {
    *permanent = true;
    return Status::IoError("response body from " + ep.to_string() + " " + how + " the " +
                                      std::to_string(opt.max_body) + "-byte limit for XML and error bodies (s3.max_xml_body)");
  };
  if (!to_sink && req.method != "HEAD") {
    if (parser.content_length() && *parser.content_length() > opt.max_body)
      return too_large("announces " + std::to_string(*parser.content_length()) + " bytes, more than");
    parser.body_limit(opt.max_body);  // chunked and read-to-EOF bodies: Beast counts as it goes
  }
  if (to_sink && parser.content_length() && !parser.chunked()) {
    // Fast path for object data: bypass the parser and read the body straight from the socket
    // into the caller's buffer (no intermediate copy, large reads).
    const uint64_t length = *parser.content_length();
    if (length > sink_len) {
      *permanent = true;
      return Status::IoError("response body from " + ep.to_string() + " has " + std::to_string(length) +
                                        " bytes, more than the " + std::to_string(sink_len) + " expected");
    }
    const size_t have = std::min<size_t>(c.buffer.size(), static_cast<size_t>(length));
    asio::buffer_copy(asio::buffer(sink, have), c.buffer.data());
    c.buffer.consume(have);
    if (length > have) {
      if (!c.arm(opt.io_timeout, req.deadline)) return deadline_error("read response body from", ep);
      c.quickack();
      ec = c.run([&](auto handler) {
        asio::async_read(stream, asio::buffer(sink + have, static_cast<size_t>(length) - have), std::move(handler));
      });
      if (ec) return transport_error("read response body from", ep, ec, c.deadline_cut);
    }
    resp.sink_bytes = static_cast<size_t>(length);
    // Bytes past the body would be read as the next answer on this connection.
    *reusable = parser.get().keep_alive() && c.buffer.size() == 0;
    return resp;
  }
  std::vector<char> scratch;
  if (!to_sink) scratch.resize(64 * 1024);
  size_t got = 0;
  while (!parser.is_done()) {
    auto& body = parser.get().body();
    if (to_sink) {
      if (got == sink_len) {
        *permanent = true;
        return Status::IoError("response body from " + ep.to_string() + " is larger than the " +
                                          std::to_string(sink_len) + " bytes expected");
      }
      body.data = sink + got;
      body.size = sink_len - got;
    } else {
      body.data = scratch.data();
      body.size = scratch.size();
    }
    size_t offered = body.size;
    if (!c.arm(opt.io_timeout, req.deadline)) return deadline_error("read response body from", ep);
    c.quickack();
    ec = c.run([&](auto handler) { http::async_read(stream, c.buffer, parser, std::move(handler)); });
    if (ec == http::error::need_buffer) ec = {};
    if (ec == http::error::body_limit) return too_large("exceeds");
    if (oversized(ec)) *permanent = true;
    if (ec) return transport_error("read response body from", ep, ec, c.deadline_cut);
    size_t n = offered - parser.get().body().size;
    if (to_sink) {
      got += n;
    } else {
      if (resp.body.size() + n > opt.max_body) return too_large("exceeds");
      resp.body.append(scratch.data(), n);
    }
  }
  resp.sink_bytes = got;
  *reusable = parser.get().keep_alive() && c.buffer.size() == 0;
  return resp;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpClient

HttpClient::HttpClient(Endpoint endpoint, HttpOptions options)
    : endpoint_(std::move(endpoint)), options_(std::move(options)) {
  if (options_.max_connections == 0) options_.max_connections = 1;
  if (endpoint_.tls) {
    tls_ = std::make_unique<TlsContext>();
    error_code ec;
    tls_->ctx.set_default_verify_paths(ec);
    if (!options_.ca_file.empty()) tls_->ctx.load_verify_file(options_.ca_file, ec);
    tls_->ctx.set_verify_mode(options_.verify_tls ? asio::ssl::verify_peer : asio::ssl::verify_none, ec);
  }
}

HttpClient::~HttpClient() = default;

HttpStats HttpClient::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Result<std::unique_ptr<HttpClient::Connection>> HttpClient::acquire(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  auto free_slot = [&] { return in_use_ < options_.max_connections; };
  if (deadline == std::chrono::steady_clock::time_point::max()) {
    cv_.wait(lock, free_slot);
  } else if (!cv_.wait_until(lock, deadline, free_slot)) {
    return Status::Timeout("no free connection to " + endpoint_.to_string() + " (all " +
                                      std::to_string(options_.max_connections) + " busy): request deadline reached");
  }
  ++in_use_;
  ++stats_.requests;
  if (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return Result<std::unique_ptr<Connection>>(std::move(conn));
  }
  return Result<std::unique_ptr<Connection>>(std::unique_ptr<Connection>());  // opened by the caller, unlocked
}

void HttpClient::release(std::unique_ptr<Connection> conn, bool reusable) {
  std::lock_guard<std::mutex> lock(mu_);
  --in_use_;
  if (conn && reusable) {
    conn->reused = true;
    idle_.push_back(std::move(conn));
  }
  cv_.notify_one();
}

Result<HttpResponse> HttpClient::execute(const HttpRequest& req, char* sink, size_t sink_len, bool* permanent) {
  bool ignored = false;
  if (!permanent) permanent = &ignored;
  *permanent = false;
  try {
    // A pooled connection the server has meanwhile closed fails before any response byte; that
    // is not a server error, so retry once on a fresh connection.
    for (int attempt = 0; attempt < 2; ++attempt) {
      Result<std::unique_ptr<Connection>> slot = acquire(req.deadline);
      if (!slot.is_ok()) return slot.status();
      std::unique_ptr<Connection> conn = std::move(slot).value();
      if (conn && conn->plain) {
        // An idle connection with unread bytes got more than its last answer; one readable with
        // nothing to read was closed by the server (an idle keep-alive timeout: node's is 5 s).
        // Drop either. Only the single retry below covered the closed ones, so a pool holding
        // two failed the request ("closed twice in a row"). (Not for TLS, where late session
        // tickets are normal.)
        error_code ec;
        if (conn->plain->socket().available(ec) > 0 || ec || peer_closed(conn->plain->socket().native_handle()))
          conn.reset();
      }
      if (!conn) {
        conn = std::make_unique<Connection>();
        conn->buffer.reserve(64 * 1024);
        uint64_t nth = 0;
        {
          std::lock_guard<std::mutex> lock(mu_);
          nth = stats_.connections_opened++;
        }
        tcp::resolver resolver(conn->ioc);
        error_code ec;
        auto resolved = resolver.resolve(endpoint_.host, endpoint_.port, ec);
        if (ec) {
          release(nullptr, false);
          return transport_error("resolve", endpoint_, ec);
        }
        if (endpoint_.tls) conn->secure.emplace(conn->ioc, tls_->ctx);
        else conn->plain.emplace(conn->ioc);
        if (!conn->arm(options_.connect_timeout, req.deadline)) {
          release(nullptr, false);
          return deadline_error("connect to", endpoint_);
        }
        // Connections go to the server's addresses in turn (a name with several answers spreads
        // its load), falling back to the others when one refuses.
        std::vector<tcp::endpoint> targets;
        for (const auto& r : resolved) targets.push_back(r.endpoint());
        if (targets.empty()) {
          release(nullptr, false);
          return Status::Unavailable("resolve " + endpoint_.to_string() + ": no addresses");
        }
        std::rotate(targets.begin(), targets.begin() + static_cast<std::ptrdiff_t>(nth % targets.size()), targets.end());
        const std::string* local =
            options_.local_bind.empty() ? nullptr : &options_.local_bind[nth % options_.local_bind.size()];
        for (const tcp::endpoint& target : targets) {
          error_code close_ec;
          conn->lowest().socket().close(close_ec);
          if (local) {
            Status bound = bind_local(conn->lowest().socket(), target, *local);
            if (!bound.is_ok()) {
              release(nullptr, false);
              return bound;
            }
          }
          ec = conn->run([&](auto handler) { conn->lowest().async_connect(target, std::move(handler)); });
          if (!ec || conn->deadline_cut || ec == asio::error::timed_out) break;
        }
        if (ec) {
          release(nullptr, false);
          return transport_error("connect to", endpoint_, ec, conn->deadline_cut);
        }
        conn->lowest().socket().set_option(tcp::no_delay(true), ec);
        if (endpoint_.tls) {
          error_code addr_ec;
          asio::ip::make_address(endpoint_.host, addr_ec);
          if (addr_ec) SSL_set_tlsext_host_name(conn->secure->native_handle(), endpoint_.host.c_str());  // SNI: names only
          if (options_.verify_tls) conn->secure->set_verify_callback(asio::ssl::host_name_verification(endpoint_.host));
          if (!conn->arm(options_.connect_timeout, req.deadline)) {
            release(nullptr, false);
            return deadline_error("TLS handshake with", endpoint_);
          }
          ec = conn->run([&](auto handler) {
            conn->secure->async_handshake(asio::ssl::stream_base::client, std::move(handler));
          });
          if (ec) {
            release(nullptr, false);
            return transport_error("TLS handshake with", endpoint_, ec, conn->deadline_cut);
          }
        }
      }
      bool reusable = false, failed_before_response = false;
      const bool was_reused = conn->reused;
      Result<HttpResponse> r =
          conn->plain ? exchange(*conn, *conn->plain, endpoint_, options_, req, sink, sink_len, &reusable,
                                 &failed_before_response, permanent)
                      : exchange(*conn, *conn->secure, endpoint_, options_, req, sink, sink_len, &reusable,
                                 &failed_before_response, permanent);
      release(std::move(conn), r.is_ok() && reusable);
      if (!r.is_ok() && was_reused && failed_before_response && r.status().code() == Code::kUnavailable) continue;
      return r;
    }
    return Status::Unavailable("connection to " + endpoint_.to_string() + " closed twice in a row");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("http client: ") + e.what());
  }
}

}  // namespace stor::s3
