#include "s3_test_support.h"

#include "backends/s3express/crypto.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>

#ifndef STOR_S3RVER_JS
#error "STOR_S3RVER_JS must point at tools/node/node_modules/s3rver/bin/s3rver.js"
#endif

namespace stor::s3::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

bool accepts_connections(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// True once something on the port answers an HTTP request.
bool answers_http(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[16] = {};
      ok = ::read(fd, buf, 8) > 0 && std::string(buf).rfind("HTTP/1.", 0) == 0;
    }
  }
  ::close(fd);
  return ok;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string iso8601(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Closes with RST instead of FIN: the peer sees "connection reset by peer".
void reset(tcp::socket& s) {
  error_code ec;
  s.set_option(asio::socket_base::linger(true, 0), ec);
  s.close(ec);
}

http::response<http::string_body> xml_answer(http::status status, const std::string& body, bool keep_alive) {
  http::response<http::string_body> r{status, 11};
  r.set(http::field::content_type, "application/xml");
  r.body() = body;
  r.keep_alive(keep_alive);
  r.prepare_payload();
  return r;
}

// Accept loop on an io_context thread; each connection is served by `serve` on its own thread.
class ThreadedServer {
 public:
  using Serve = std::function<void(std::shared_ptr<tcp::socket>)>;
  explicit ThreadedServer(Serve serve) : serve_(std::move(serve)) {
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~ThreadedServer() {
    asio::post(ioc_, [this] {
      error_code ec;
      acceptor_.close(ec);
    });
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (auto& s : sockets_) {
        error_code ec;
        s->shutdown(tcp::socket::shutdown_both, ec);
      }
    }
    ioc_.stop();
    thread_.join();
    for (auto& t : workers_) t.join();
  }
  int port() const { return port_; }

 private:
  void accept() {
    acceptor_.async_accept([this](error_code ec, tcp::socket s) {
      if (ec) return;
      auto sp = std::make_shared<tcp::socket>(std::move(s));
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
        sockets_.push_back(sp);
        workers_.emplace_back([this, sp] { serve_(sp); });
      }
      accept();
    });
  }
  Serve serve_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
  std::mutex mu_;
  bool stopping_ = false;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> workers_;
  int port_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// s3rver

bool on_rgw() {
  const char* server = std::getenv("STOR_S3_TEST_SERVER");
  return server != nullptr && std::string(server) == "rgw";
}

namespace {
// The S3 user tests/fixtures/rgw.sh creates.
constexpr const char* kRgwAccessKey = "STORTESTRGWACCESSKEY";
constexpr const char* kRgwSecretKey = "storTestRgwSecretKey0123456789abcdefABCD";
}  // namespace

S3rver& S3rver::instance() {
  if (on_rgw()) {
    static S3rver rgw{Rgw{}};
    return rgw;
  }
  static S3rver server;
  return server;
}

// The gateway is started and stopped by the CTest fixture; this only finds it.
S3rver::S3rver(Rgw) {
  const char* dir = std::getenv("STOR_RGW_DIR");
  if (dir == nullptr || *dir == 0) {
    available_ = true;
    error_ = "STOR_S3_TEST_SERVER=rgw needs STOR_RGW_DIR (the directory of tests/fixtures/rgw.sh start)";
    return;
  }
  if (find_in_path("radosgw").empty()) {
    skip_reason_ = "radosgw is not installed (apt-get install ceph-mon ceph-osd radosgw ceph-common)";
    return;
  }
  if (std::string why = read_file(std::string(dir) + "/skip"); !why.empty()) {  // rgw.sh could not run here
    skip_reason_ = "RGW fixture: " + why;
    return;
  }
  available_ = true;
  const std::string endpoint = read_file(std::string(dir) + "/endpoint");
  const std::string prefix = "http://127.0.0.1:";
  if (endpoint.rfind(prefix, 0) != 0) {
    error_ = std::string("the RGW fixture is not running (no endpoint in ") + dir +
             "/endpoint; run tests/fixtures/rgw.sh start DIR 0, logs in DIR/log)";
    return;
  }
  port_ = std::atoi(endpoint.c_str() + prefix.size());
  if (!answers_http(port_)) error_ = "the RGW fixture does not answer on " + endpoint + " (logs in " + dir + "/log)";
}

S3rver::S3rver(const std::string& tls_key_file, const std::string& tls_cert_file) : tls_(!tls_key_file.empty()) {
  std::string node = find_in_path("node");
  if (node.empty()) {
    skip_reason_ = "node is not installed: the S3 tests need node and `npm install --prefix tools/node` (s3rver)";
    return;
  }
  available_ = true;
  const std::string js = STOR_S3RVER_JS;
  if (::access(js.c_str(), R_OK) != 0) {
    error_ = "s3rver is not installed at " + js + ": run `npm install --no-audit --no-fund --prefix tools/node`";
    return;
  }
  const std::string data = dir_ / "data";
  std::filesystem::create_directories(data);
  const std::string log = dir_ / "s3rver.log";
  // A free port can be taken by someone else before s3rver binds it: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (start_on(free_port(), node, js, data, log, tls_key_file, tls_cert_file)) return;
  }
}

bool S3rver::start_on(int port_number, const std::string& node, const std::string& js, const std::string& data,
                      const std::string& log, const std::string& tls_key_file, const std::string& tls_cert_file) {
  port_ = port_number;
  const std::string port = std::to_string(port_);
  // s3rver's continuation tokens use DES, which OpenSSL 3 only has in its legacy provider.
  // Everything is prepared before fork(): the child of a threaded process may only make syscalls.
  std::vector<const char*> argv = {"node", "--openssl-legacy-provider", js.c_str(), "-d", data.c_str(), "-a",
                                   "127.0.0.1", "-p", port.c_str(), "--silent"};
  if (tls_) {
    for (const char* a : {"--key", tls_key_file.c_str(), "--cert", tls_cert_file.c_str()}) argv.push_back(a);
  }
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    ::execv(node.c_str(), const_cast<char* const*>(argv.data()));
    ::_exit(127);
  }
  if (pid < 0) {
    error_ = "fork failed";
    return true;  // not worth retrying
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      error_ = "s3rver exited during start-up: " + read_file(log);
      return false;
    }
    if (tls_ ? accepts_connections(port_) : answers_http(port_)) {
      // Still ours? (Another process answering on a stolen port would leave s3rver dead.)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        error_ = "s3rver exited during start-up: " + read_file(log);
        return false;
      }
      error_.clear();
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  error_ = "s3rver did not answer on port " + port + " within 30 s: " + read_file(log);
  return true;
}

S3rver::~S3rver() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
}

std::map<std::string, std::string> s3rver_settings(const std::string& endpoint) {
  if (on_rgw()) {
    return {{"s3.endpoint", endpoint},
            {"s3.region", "us-east-1"},
            {"s3.access_key", kRgwAccessKey},
            {"s3.secret_key", kRgwSecretKey},
            {"s3.retry_base_ms", "5"}};
  }
  return {{"s3.endpoint", endpoint},
          {"s3.region", "us-east-1"},
          {"s3.access_key", "S3RVER"},
          {"s3.secret_key", "S3RVER"},
          {"s3.retry_base_ms", "5"}};
}

std::unique_ptr<S3Client> make_client(const std::string& endpoint, std::map<std::string, std::string> extra) {
  auto settings = s3rver_settings(endpoint);
  for (auto& [k, v] : extra) settings[k] = v;
  auto config = S3Config::from_settings(settings, true);
  if (!config.is_ok()) return nullptr;
  auto client = S3Client::create(config.value());
  return client.is_ok() ? std::move(client).value() : nullptr;
}

std::string unique_bucket(const std::string& stem) {
  static std::atomic<int> counter{0};
  return stem + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

// ---------------------------------------------------------------------------------------------
// FaultProxy

struct FaultProxy::Impl {
  enum class Fault { kNone, kResetBefore, kResetMidResponse, kSlowDown, kFail, kErrorIn200 };

  Impl(FaultProxy* owner, int upstream_port, Options opts)
      : owner(owner), upstream_port(upstream_port), opts(std::move(opts)), rng(this->opts.seed),
        server([this](std::shared_ptr<tcp::socket> s) { serve(std::move(s)); }) {}

  Fault decide(const std::string& target, bool is_post) {
    std::lock_guard<std::mutex> lock(mu);
    owner->requests_.fetch_add(1);
    Fault f = Fault::kNone;
    if (is_post && !error_sent && !opts.error_in_200_first_post_matching.empty() &&
        target.find(opts.error_in_200_first_post_matching) != std::string::npos) {
      error_sent = true;
      owner->injected_.fetch_add(1);
      return Fault::kErrorIn200;
    }
    if (is_post && !answer_lost && !opts.lose_first_post_answer_matching.empty() &&
        target.find(opts.lose_first_post_answer_matching) != std::string::npos) {
      answer_lost = true;
      owner->injected_.fetch_add(1);
      return Fault::kResetMidResponse;
    }
    double x = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    bool coin = (rng() & 1) != 0;
    if (!opts.fail_matching.empty() && target.find(opts.fail_matching) != std::string::npos) f = Fault::kFail;
    else if (x < opts.reset_fraction) f = coin ? Fault::kResetBefore : Fault::kResetMidResponse;
    else if (x < opts.reset_fraction + opts.slowdown_fraction) f = Fault::kSlowDown;
    if (f != Fault::kNone) owner->injected_.fetch_add(1);
    return f;
  }

  void serve(std::shared_ptr<tcp::socket> client) {
    beast::flat_buffer client_buf, upstream_buf;
    asio::io_context local_ioc;  // declared first: the upstream socket must be destroyed before it
    std::optional<tcp::socket> upstream;
    for (;;) {
      http::request_parser<http::string_body> rp;
      rp.body_limit(std::numeric_limits<std::uint64_t>::max());
      error_code ec;
      http::read(*client, client_buf, rp, ec);
      if (ec) break;
      http::request<http::string_body> req = rp.release();
      Fault f = decide(std::string(req.target()), req.method() == http::verb::post);
      if (f == Fault::kResetBefore) {
        reset(*client);
        break;
      }
      if (f == Fault::kErrorIn200) {
        auto r = xml_answer(http::status::ok,
                            "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
                            req.keep_alive());
        http::write(*client, r, ec);
        if (ec || !req.keep_alive()) break;
        continue;
      }
      if (f == Fault::kSlowDown || f == Fault::kFail) {
        auto r = f == Fault::kSlowDown
                     ? xml_answer(http::status::service_unavailable,
                                  "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
                                  req.keep_alive())
                     : xml_answer(http::status::bad_request,
                                  "<Error><Code>InvalidRequest</Code><Message>injected failure</Message></Error>",
                                  req.keep_alive());
        http::write(*client, r, ec);
        if (ec || !req.keep_alive()) break;
        continue;
      }
      if (!upstream) {
        upstream.emplace(local_ioc);
        upstream->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(upstream_port)), ec);
        if (ec) {
          reset(*client);
          break;
        }
      }
      http::write(*upstream, req, ec);
      http::response_parser<http::string_body> resp_parser;
      resp_parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      if (req.method() == http::verb::head) resp_parser.skip(true);
      if (!ec) http::read(*upstream, upstream_buf, resp_parser, ec);
      if (ec) {
        reset(*client);
        break;
      }
      http::response<http::string_body> resp = resp_parser.release();
      if (f == Fault::kResetMidResponse) {
        std::ostringstream os;
        os << resp;
        std::string wire = os.str();
        asio::write(*client, asio::buffer(wire.data(), wire.size() / 2), ec);
        reset(*client);
        break;
      }
      http::write(*client, resp, ec);
      if (ec || !resp.keep_alive()) break;
    }
  }

  FaultProxy* owner;
  int upstream_port;
  Options opts;
  std::mutex mu;
  std::mt19937_64 rng;
  bool answer_lost = false;
  bool error_sent = false;
  ThreadedServer server;  // last: starts serving once everything above exists
};

FaultProxy::FaultProxy(int upstream_port, Options opts)
    : impl_(std::make_unique<Impl>(this, upstream_port, std::move(opts))) {
  port_ = impl_->server.port();
}

FaultProxy::~FaultProxy() = default;

// ---------------------------------------------------------------------------------------------
// SessionServer

struct SessionServer::Impl {
  Impl(int lifetime, bool supported)
      : lifetime(lifetime), supported(supported),
        server([this](std::shared_ptr<tcp::socket> s) { serve(std::move(s)); }) {}

  void serve(std::shared_ptr<tcp::socket> sock) {
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      error_code ec;
      http::read(*sock, buf, req, ec);
      if (ec) break;
      auto r = handle(req);
      http::write(*sock, r, ec);
      if (ec || !req.keep_alive()) break;
    }
  }

  http::response<http::string_body> handle(const http::request<http::string_body>& req) {
    std::string target(req.target());
    std::string auth(req[http::field::authorization]);
    std::string service;
    if (auto p = auth.find("Credential="); p != std::string::npos) {
      // Credential=KEY/DATE/REGION/SERVICE/aws4_request
      std::string scope = auth.substr(p + 11, auth.find(',', p) - p - 11);
      std::vector<std::string> parts;
      std::stringstream ss(scope);
      for (std::string s; std::getline(ss, s, '/');) parts.push_back(s);
      if (parts.size() == 5) service = parts[3];
    }
    std::lock_guard<std::mutex> lock(mu);
    services.push_back(service);
    const bool is_session_call = target.find("?session") != std::string::npos;
    if (is_session_call) {
      if (!supported) {
        return xml_answer(http::status::not_implemented,
                          "<Error><Code>NotImplemented</Code><Message>no sessions here</Message></Error>",
                          req.keep_alive());
      }
      std::string token = "token-" + std::to_string(++issued);
      valid.insert(token);
      auto expiration = std::chrono::system_clock::now() + std::chrono::seconds(lifetime);
      return xml_answer(http::status::ok,
                        "<CreateSessionResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Credentials>"
                        "<SessionToken>" + token + "</SessionToken><SecretAccessKey>secret-" + token +
                            "</SecretAccessKey><AccessKeyId>AKID-" + token + "</AccessKeyId><Expiration>" +
                            iso8601(expiration) + "</Expiration></Credentials></CreateSessionResult>",
                        req.keep_alive());
    }
    std::string token(req["x-amz-s3session-token"]);
    tokens.push_back(token);
    if (supported && !valid.count(token)) {
      return xml_answer(http::status::bad_request,
                        "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>",
                        req.keep_alive());
    }
    http::response<http::string_body> r{http::status::ok, 11};
    r.set(http::field::etag, "\"-\"");
    r.body() = kBody;
    r.keep_alive(req.keep_alive());
    r.prepare_payload();
    return r;
  }

  int lifetime;
  bool supported;
  mutable std::mutex mu;
  int issued = 0;
  std::set<std::string> valid;
  std::vector<std::string> tokens, services;
  ThreadedServer server;
};

SessionServer::SessionServer(int token_lifetime_seconds, bool sessions_supported)
    : impl_(std::make_unique<Impl>(token_lifetime_seconds, sessions_supported)) {
  port_ = impl_->server.port();
}

SessionServer::~SessionServer() = default;

int SessionServer::sessions_issued() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->issued;
}

std::vector<std::string> SessionServer::tokens_seen() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->tokens;
}

std::vector<std::string> SessionServer::auth_services() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->services;
}

void SessionServer::revoke_all() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->valid.clear();
}


// ---------------------------------------------------------------------------------------------
// ExpressFake

namespace {

std::string hex_of(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += d[p[i] >> 4], out += d[p[i] & 15];
  return out;
}

std::string ossl_sha256_hex(const std::string& data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return hex_of(md, sizeof md);
}

std::string ossl_hmac(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), md, &len);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::string pct_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() + 0 && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// RFC 3986 encoding as the SigV4 documentation specifies (upper-case hex, unreserved kept).
std::string aws_encode(const std::string& s, bool keep_slash) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

std::string collapse_spaces(std::string v) {
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  while (!v.empty() && v.back() == ' ') v.pop_back();
  std::string out;
  for (char c : v)
    if (!(c == ' ' && !out.empty() && out.back() == ' ')) out += c;
  return out;
}

}  // namespace

struct ExpressFake::Impl {
  explicit Impl(std::string bucket)
      : bucket(std::move(bucket)), server([this](std::shared_ptr<tcp::socket> s) { serve(std::move(s)); }) {}

  void serve(std::shared_ptr<tcp::socket> sock) {
    beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(64u << 20);
      error_code ec;
      http::read(*sock, buf, parser, ec);
      if (ec) break;
      auto req = parser.release();
      auto r = handle(req);
      r.keep_alive(req.keep_alive());
      if (req.method() != http::verb::head) {
        r.prepare_payload();
      } else if (r.result() != http::status::ok) {
        r.body().clear();  // HEAD answers have no body
        r.prepare_payload();
      }  // else HEAD keeps the object's length
      http::write(*sock, r, ec);
      if (ec || !req.keep_alive()) break;
    }
  }

  using Response = http::response<http::string_body>;
  static Response error(http::status st, const std::string& code, const std::string& msg) {
    Response r{st, 11};
    r.body() = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>" + code + "</Code><Message>" + msg +
               "</Message></Error>";
    return r;
  }
  Response violation(const std::string& what) {
    violations.push_back(what);
    return error(http::status::forbidden, "SignatureDoesNotMatch", what);
  }

  // Checks the SigV4 Authorization header; `secret` is the key the request must be signed with.
  std::string check_signature(const http::request<http::string_body>& req, const std::string& path,
                              const std::string& query, const std::string& secret, const std::string& access_key,
                              const std::string& service) {
    const std::string auth(req[http::field::authorization]);
    const std::string prefix = "AWS4-HMAC-SHA256 Credential=";
    if (auth.rfind(prefix, 0) != 0) return "no AWS4-HMAC-SHA256 Authorization header";
    const size_t sh = auth.find(", SignedHeaders="), sg = auth.find(", Signature=");
    if (sh == std::string::npos || sg == std::string::npos || sg < sh) return "malformed Authorization: " + auth;
    const std::string credential = auth.substr(prefix.size(), sh - prefix.size());
    const std::string signed_headers = auth.substr(sh + 16, sg - sh - 16);
    const std::string signature = auth.substr(sg + 12);
    const std::string amz_date(req["x-amz-date"]);
    if (amz_date.size() != 16) return "x-amz-date missing or malformed";
    const std::string date = amz_date.substr(0, 8);
    const std::string scope = date + "/us-east-1/" + service + "/aws4_request";
    if (credential != access_key + "/" + scope) return "credential scope " + credential + ", expected " + access_key + "/" + scope;
    // The payload hash must be signed and must match the body (or be UNSIGNED-PAYLOAD).
    const std::string payload_hash(req["x-amz-content-sha256"]);
    if (payload_hash != "UNSIGNED-PAYLOAD" && payload_hash != ossl_sha256_hex(req.body()))
      return "x-amz-content-sha256 does not match the body";
    std::vector<std::string> names;
    std::stringstream ss(signed_headers);
    for (std::string n; std::getline(ss, n, ';');) names.push_back(n);
    for (const char* must : {"host", "x-amz-date", "x-amz-content-sha256"})
      if (std::find(names.begin(), names.end(), must) == names.end()) return std::string(must) + " is not signed";
    if (req.count("x-amz-s3session-token") &&
        std::find(names.begin(), names.end(), "x-amz-s3session-token") == names.end())
      return "x-amz-s3session-token is not signed";
    if (!std::is_sorted(names.begin(), names.end())) return "SignedHeaders not sorted";
    std::string canonical_headers;
    for (const auto& n : names) {
      auto it = req.find(n);
      if (it == req.end()) return "signed header " + n + " is missing";
      canonical_headers += n + ":" + collapse_spaces(std::string(it->value())) + "\n";
    }
    std::vector<std::pair<std::string, std::string>> params;
    std::stringstream qs(query);
    for (std::string kv; std::getline(qs, kv, '&');) {
      if (kv.empty()) continue;
      const size_t eq = kv.find('=');
      params.emplace_back(aws_encode(pct_decode(kv.substr(0, eq)), false),
                          eq == std::string::npos ? "" : aws_encode(pct_decode(kv.substr(eq + 1)), false));
    }
    std::sort(params.begin(), params.end());
    std::string canonical_query;
    for (const auto& [k, v] : params) canonical_query += (canonical_query.empty() ? "" : "&") + k + "=" + v;
    const std::string canonical = std::string(req.method_string()) + "\n" + aws_encode(pct_decode(path), true) + "\n" +
                                  canonical_query + "\n" + canonical_headers + "\n" + signed_headers + "\n" + payload_hash;
    const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + ossl_sha256_hex(canonical);
    std::string k = ossl_hmac("AWS4" + secret, date);
    k = ossl_hmac(k, "us-east-1");
    k = ossl_hmac(k, service);
    k = ossl_hmac(k, "aws4_request");
    const std::string mac = ossl_hmac(k, to_sign);
    if (hex_of(reinterpret_cast<const unsigned char*>(mac.data()), mac.size()) != signature)
      return "signature mismatch for canonical request:\n" + canonical;
    return {};
  }

  static std::string etag_of(uint64_t version) { return "\"v" + std::to_string(version) + "\""; }

  static std::string crc_base64(const std::string& data, const std::string& algo = "CRC32C") {
    if (algo == "CRC64NVME") {
      const uint64_t crc = stor::s3::crc64nvme(0, data.data(), data.size());
      unsigned char be[8];
      for (int i = 0; i < 8; ++i) be[i] = static_cast<unsigned char>(crc >> (56 - 8 * i));
      return stor::s3::base64_encode(be, 8);
    }
    const uint32_t crc = stor::s3::crc32c(0, data.data(), data.size());
    const unsigned char be[4] = {static_cast<unsigned char>(crc >> 24), static_cast<unsigned char>(crc >> 16),
                                 static_cast<unsigned char>(crc >> 8), static_cast<unsigned char>(crc)};
    return stor::s3::base64_encode(be, 4);
  }
  static std::string header_of(const std::string& algo) {
    return algo == "CRC64NVME" ? "x-amz-checksum-crc64nvme" : "x-amz-checksum-crc32c";
  }
  // The algorithm of the checksum header a request carries ("" for none; two is an error, "!").
  static std::string algo_of(const http::request<http::string_body>& req) {
    const bool c32 = req.count("x-amz-checksum-crc32c") > 0, c64 = req.count("x-amz-checksum-crc64nvme") > 0;
    return c32 && c64 ? "!" : c64 ? "CRC64NVME" : c32 ? "CRC32C" : "";
  }

  Response object_answer(const std::string& key, bool head, bool checksum_mode) {
    auto it = store.find(key);
    if (it == store.end()) return error(http::status::not_found, "NoSuchKey", "no such key");
    Response r{http::status::ok, 11};
    r.set(http::field::etag, etag_of(it->second.version));
    r.set(http::field::last_modified, "Fri, 27 Nov 2026 12:00:00 GMT");
    if (checksum_mode && !it->second.checksum.empty()) {
      r.set(header_of(it->second.algo), it->second.checksum);
      r.set("x-amz-checksum-type", "FULL_OBJECT");
    }
    if (head) {
      r.set(http::field::content_length, std::to_string(it->second.data.size()));
    } else {
      r.body() = it->second.data;
    }
    return r;
  }

  Response handle(const http::request<http::string_body>& req) {
    std::lock_guard<std::mutex> lock(mu);
    const std::string target(req.target());
    Seen seen{std::string(req.method_string()), target, {}};
    for (const auto& f : req) {
      std::string n(f.name_string());
      std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
      seen.headers[n] = std::string(f.value());
    }
    seen_requests.push_back(seen);
    const size_t q = target.find('?');
    const std::string path = target.substr(0, q), query = q == std::string::npos ? "" : target.substr(q + 1);
    const std::string bucket_path = "/" + bucket;
    if (path != bucket_path && path.rfind(bucket_path + "/", 0) != 0) return error(http::status::not_found, "NoSuchBucket", path);
    const std::string key = path.size() > bucket_path.size() + 1 ? pct_decode(path.substr(bucket_path.size() + 1)) : "";
    std::map<std::string, std::string> params;  // "session" and "session=" alike
    {
      std::stringstream qs(query);
      for (std::string kv; std::getline(qs, kv, '&');) {
        const size_t eq = kv.find('=');
        if (!kv.empty()) params[pct_decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : pct_decode(kv.substr(eq + 1));
      }
    }
    const auto only = [&](const char* name) { return params.size() == 1 && params.count(name) && params[name].empty(); };

    if (only("session")) {
      if (std::string e = check_signature(req, path, query, kSecretKey, kAccessKey, "s3express"); !e.empty())
        return violation("CreateSession: " + e);
      const std::string token = "fake-token-" + std::to_string(++issued);
      sessions[token] = "fake-session-secret-" + std::to_string(issued);
      Response r{http::status::ok, 11};
      r.body() = "<CreateSessionResult><Credentials><SessionToken>" + token + "</SessionToken><SecretAccessKey>" +
                 sessions[token] + "</SecretAccessKey><AccessKeyId>ASIA" + std::to_string(issued) +
                 "</AccessKeyId><Expiration>" + iso8601(std::chrono::system_clock::now() + std::chrono::minutes(5)) +
                 "</Expiration></Credentials></CreateSessionResult>";
      return r;
    }
    const std::string token(req["x-amz-s3session-token"]);
    auto sess = sessions.find(token);
    if (sess == sessions.end()) return violation("data call without a live x-amz-s3session-token");
    const std::string access = "ASIA" + token.substr(std::string("fake-token-").size());
    if (std::string e = check_signature(req, path, query, sess->second, access, "s3express"); !e.empty())
      return violation(std::string(req.method_string()) + " " + target + ": " + e);

    const std::string if_none_match(req[http::field::if_none_match]);
    const std::string if_match(req[http::field::if_match]);
    auto it = store.find(key);
    auto precondition = [&]() -> std::optional<Response> {
      if (!if_none_match.empty()) {
        if (if_none_match != "*") return error(http::status::not_implemented, "NotImplemented", "If-None-Match: only *");
        if (it != store.end()) return error(http::status::precondition_failed, "PreconditionFailed", "exists");
      }
      if (!if_match.empty()) {
        if (it == store.end()) return error(http::status::not_found, "NoSuchKey", "If-Match on a missing key");
        if (if_match != etag_of(it->second.version))
          return error(http::status::precondition_failed, "PreconditionFailed", "ETag differs");
      }
      return std::nullopt;
    };

    if (req.method() == http::verb::get && key.empty() && params["list-type"] == "2") {
      // Directory buckets list in no particular order: newest version first here.
      const std::string prefix = params["prefix"], delimiter = params["delimiter"];
      if (!delimiter.empty() && delimiter != "/") return error(http::status::bad_request, "InvalidArgument", "delimiter");
      std::vector<std::pair<uint64_t, std::string>> order;
      std::set<std::string> common;
      for (const auto& [k, o] : store) {
        if (k.compare(0, prefix.size(), prefix) != 0) continue;
        const size_t slash = delimiter.empty() ? std::string::npos : k.find('/', prefix.size());
        if (slash != std::string::npos) common.insert(k.substr(0, slash + 1));
        else order.emplace_back(o.version, k);
      }
      std::sort(order.rbegin(), order.rend());
      std::string body = "<ListBucketResult><Name>" + bucket + "</Name><KeyCount>" +
                         std::to_string(order.size() + common.size()) + "</KeyCount><IsTruncated>false</IsTruncated>";
      for (const auto& [v, k] : order)
        body += "<Contents><Key>" + k + "</Key><Size>" + std::to_string(store[k].data.size()) + "</Size><ETag>" +
                etag_of(v) + "</ETag></Contents>";
      for (auto c = common.rbegin(); c != common.rend(); ++c)  // unordered too
        body += "<CommonPrefixes><Prefix>" + *c + "</Prefix></CommonPrefixes>";
      Response r{http::status::ok, 11};
      r.body() = body + "</ListBucketResult>";
      return r;
    }
    if ((req.method() == http::verb::get || req.method() == http::verb::head) && query.empty()) {
      if (it != store.end() && !if_match.empty() && if_match != etag_of(it->second.version))
        return error(http::status::precondition_failed, "PreconditionFailed", "ETag differs");
      Response r = object_answer(key, req.method() == http::verb::head, req["x-amz-checksum-mode"] == "ENABLED");
      const std::string range(req[http::field::range]);
      uint64_t first = 0, last = 0;
      if (r.result() == http::status::ok && req.method() == http::verb::get &&
          std::sscanf(range.c_str(), "bytes=%lu-%lu", &first, &last) == 2) {
        const std::string& data = it->second.data;
        if (first > last || first >= data.size())
          return error(http::status::range_not_satisfiable, "InvalidRange", range);
        last = std::min<uint64_t>(last, data.size() - 1);
        r.result(http::status::partial_content);
        r.set(http::field::content_range,
              "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" + std::to_string(data.size()));
        r.body() = data.substr(first, last - first + 1);
      }
      return r;
    }
    if (req.method() == http::verb::put && only("renameObject")) {
      const std::string source = pct_decode(std::string(req["x-amz-rename-source"]));
      if (source.rfind(bucket_path + "/", 0) != 0) return error(http::status::bad_request, "InvalidRequest", "rename source " + source);
      if (req["x-amz-client-token"].empty()) violations.push_back("RenameObject without x-amz-client-token");
      const std::string src = source.substr(bucket_path.size() + 1);
      if (auto p = precondition()) return *p;
      auto s = store.find(src);
      if (s == store.end()) return error(http::status::not_found, "NoSuchKey", "rename source missing");
      Object moved = s->second;
      store.erase(s);
      store[key] = moved;
      return Response{http::status::ok, 11};
    }
    if (req.method() == http::verb::put) {
      if (auto p = precondition()) return *p;
      const std::string algo = algo_of(req);
      if (algo == "!") return error(http::status::bad_request, "InvalidRequest", "more than one checksum");
      const std::string checksum = algo.empty() ? "" : std::string(req[header_of(algo)]);
      if (!algo.empty() && checksum != crc_base64(req.body(), algo))
        return error(http::status::bad_request, "BadDigest", algo + " mismatch");
      if (params.count("partNumber") && params.count("uploadId")) {
        auto up = uploads.find(params["uploadId"]);
        if (up == uploads.end() || up->second.key != key) return error(http::status::not_found, "NoSuchUpload", "");
        if (!up->second.algo.empty() && algo != up->second.algo)
          return error(http::status::bad_request, "InvalidRequest", "part checksum is not " + up->second.algo);
        const int n = std::atoi(params["partNumber"].c_str());
        up->second.parts[n] = req.body();
        Response r{http::status::ok, 11};
        r.set(http::field::etag, "\"part" + std::to_string(n) + "\"");
        return r;
      }
      if (!params.empty()) return error(http::status::not_implemented, "NotImplemented", target);
      const std::string offset(req["x-amz-write-offset-bytes"]);
      if (!offset.empty()) {
        // Appends (as the PutObject documentation specifies): exactly at the object's end; 0 on
        // a missing key creates it; never empty; no user metadata on an existing object.
        if (req.body().empty())
          return error(http::status::bad_request, "InvalidRequest", "Request body cannot be empty when 'write offset' is specified.");
        const uint64_t size = it == store.end() ? 0 : it->second.data.size();
        if (offset != std::to_string(size))
          return error(http::status::bad_request, "InvalidWriteOffset",
                       "The write offset value that you specified does not match the current object size.");
        for (const auto& f : req)
          if (it != store.end() && std::string(f.name_string()).rfind("x-amz-meta-", 0) == 0)
            return error(http::status::bad_request, "InvalidRequest", "Cannot specify both a write offset value and user-defined object metadata for existing objects.");
        if (it != store.end() && !it->second.algo.empty() && !algo.empty() && algo != it->second.algo)
          return error(http::status::bad_request, "InvalidRequest", "Checksum Type mismatch occurred, expected checksum Type: " +
                                                                       it->second.algo + ", actual checksum Type: " + algo);
        Object& o = store[key];
        if (o.algo.empty()) o.algo = algo.empty() ? "CRC32C" : algo;
        o.data += req.body();
        o.version = ++versions;
        o.checksum = crc_base64(o.data, o.algo);
        Response r{http::status::ok, 11};
        r.set(http::field::etag, etag_of(o.version));
        r.set("x-amz-object-size", std::to_string(o.data.size()));
        return r;
      }
      store[key] = Object{req.body(), ++versions, checksum, algo};
      Response r{http::status::ok, 11};
      r.set(http::field::etag, etag_of(store[key].version));
      return r;
    }
    if (req.method() == http::verb::post && only("uploads")) {
      const std::string id = "upload-" + std::to_string(++versions);
      const std::string algo(req["x-amz-checksum-algorithm"]);
      if (!algo.empty() && algo != "CRC32C" && algo != "CRC64NVME")
        return error(http::status::bad_request, "InvalidRequest", "checksum algorithm " + algo);
      if (algo == "CRC64NVME" && req["x-amz-checksum-type"] != "FULL_OBJECT")
        return error(http::status::bad_request, "InvalidRequest", "CRC64NVME supports only FULL_OBJECT");
      uploads[id] = Upload{key, req["x-amz-checksum-type"] == "FULL_OBJECT" ? algo : "", {}};
      Response r{http::status::ok, 11};
      r.body() = "<InitiateMultipartUploadResult><Bucket>" + bucket + "</Bucket><Key>" + key + "</Key><UploadId>" + id +
                 "</UploadId></InitiateMultipartUploadResult>";
      return r;
    }
    if (req.method() == http::verb::post && params.size() == 1 && params.count("uploadId")) {
      auto up = uploads.find(params["uploadId"]);
      if (up == uploads.end() || up->second.key != key) return error(http::status::not_found, "NoSuchUpload", "");
      if (auto p = precondition()) return *p;
      std::string data;
      for (const auto& [n, bytes] : up->second.parts) data += bytes;
      const std::string algo = up->second.algo;
      std::string checksum;
      if (!algo.empty()) {
        // As AWS: the whole object's CRC must come with the completion, and match; each part
        // listed in the body carries its own.
        const std::string full = crc_base64(data, algo);
        const std::string header = header_of(algo);
        if (req["x-amz-checksum-type"] != "FULL_OBJECT" || req[header] != full) {
          violations.push_back("CompleteMultipartUpload: " + header + " '" + std::string(req[header]) + "', object's " +
                               full);
          return error(http::status::bad_request, "BadDigest", "full-object " + algo + " mismatch");
        }
        for (const auto& [n, bytes] : up->second.parts) {
          const std::string element = "<Checksum" + algo + ">" + crc_base64(bytes, algo) + "</Checksum" + algo + ">";
          if (req.body().find(element) == std::string::npos) {
            violations.push_back("CompleteMultipartUpload: part " + std::to_string(n) + " without " + element);
            return error(http::status::bad_request, "InvalidPart", "part checksum missing");
          }
        }
        checksum = full;
      }
      store[key] = Object{data, ++versions, checksum, algo};
      uploads.erase(up);
      Response r{http::status::ok, 11};
      r.body() = "<CompleteMultipartUploadResult><Bucket>" + bucket + "</Bucket><Key>" + key + "</Key><ETag>" +
                 etag_of(versions) + "</ETag></CompleteMultipartUploadResult>";
      return r;
    }
    if (req.method() == http::verb::delete_ && params.size() == 1 && params.count("uploadId")) {
      uploads.erase(params["uploadId"]);
      return Response{http::status::no_content, 11};
    }
    if (req.method() == http::verb::delete_ && query.empty()) {
      store.erase(key);
      return Response{http::status::no_content, 11};
    }
    return error(http::status::not_implemented, "NotImplemented", "the fake does not implement " + target);
  }

  struct Object {
    std::string data;
    uint64_t version = 0;
    std::string checksum;  // FULL_OBJECT CRC (base64) when the writer sent one
    std::string algo;      // its algorithm: "CRC32C", "CRC64NVME" or ""
  };
  struct Upload {
    std::string key;
    std::string algo;  // declared with x-amz-checksum-type: FULL_OBJECT, else ""
    std::map<int, std::string> parts;
  };
  std::map<std::string, Upload> uploads;
  std::string bucket;
  mutable std::mutex mu;
  std::map<std::string, Object> store;
  uint64_t versions = 0;
  int issued = 0;
  std::map<std::string, std::string> sessions;  // token -> secret
  std::vector<Seen> seen_requests;
  std::vector<std::string> violations;
  ThreadedServer server;
};

ExpressFake::ExpressFake(std::string bucket) : impl_(std::make_unique<Impl>(std::move(bucket))) {}
ExpressFake::~ExpressFake() = default;
std::string ExpressFake::endpoint() const { return "http://127.0.0.1:" + std::to_string(impl_->server.port()); }
std::map<std::string, std::string> ExpressFake::settings() const {
  return {{"s3.endpoint", endpoint()}, {"s3.region", "us-east-1"}, {"s3.access_key", kAccessKey},
          {"s3.secret_key", kSecretKey}, {"s3.session", "on"},     {"s3.retry_base_ms", "5"}};
}
std::vector<ExpressFake::Seen> ExpressFake::requests() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->seen_requests;
}
std::vector<std::string> ExpressFake::violations() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->violations;
}
std::map<std::string, std::string> ExpressFake::objects() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::map<std::string, std::string> out;
  for (const auto& [k, o] : impl_->store) out[k] = o.data;
  return out;
}
void ExpressFake::corrupt(const std::string& key) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto& data = impl_->store.at(key).data;
  if (!data.empty()) data[data.size() / 2] ^= 0x20;
}
void ExpressFake::put(const std::string& key, const std::string& data) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->store[key] = Impl::Object{data, ++impl_->versions, "", ""};
}

}  // namespace stor::s3::test
