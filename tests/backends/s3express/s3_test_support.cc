#include "s3_test_support.h"

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

}  // namespace stor::s3::test
