#include "backends/tier/notify_listener.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <map>
#include <memory>
#include <optional>

namespace stor::tiering::internal {
namespace {

constexpr size_t kMaxHeader = 16 << 10;
constexpr size_t kMaxBody = 4 << 20;
constexpr int kMaxDepth = 32;

// A JSON value with just what the event format needs.
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string str;
  std::vector<Json> items;
  // Object members as two parallel vectors: std::pair<std::string, Json> would need Json complete
  // here (clang with libstdc++ refuses it; only std::vector allows an incomplete element type).
  std::vector<std::string> keys;
  std::vector<Json> values;
  const Json* get(std::string_view name) const {
    if (kind != kObject) return nullptr;
    for (size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == name) return &values[i];
    return nullptr;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  bool parse(Json* out) {
    if (!value(out, 0)) return false;
    ws();
    return i_ == s_.size();
  }

 private:
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  static void put_utf8(std::string* out, uint32_t c) {
    if (c < 0x80) {
      *out += static_cast<char>(c);
    } else if (c < 0x800) {
      *out += static_cast<char>(0xC0 | (c >> 6));
      *out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      *out += static_cast<char>(0xE0 | (c >> 12));
      *out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      *out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  bool string(std::string* out) {
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size()) {
      char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return false;
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) return false;
      char e = s_[i_++];
      switch (e) {
        case '"': case '\\': case '/': *out += e; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          if (i_ + 4 > s_.size()) return false;
          uint32_t c16 = 0;
          auto [end, ec] = std::from_chars(s_.data() + i_, s_.data() + i_ + 4, c16, 16);
          if (ec != std::errc() || end != s_.data() + i_ + 4) return false;
          i_ += 4;
          put_utf8(out, c16);  // surrogate halves are kept as they are: keys are checked by HEAD
          break;
        }
        default: return false;
      }
    }
    return false;
  }
  bool value(Json* out, int depth) {
    if (depth > kMaxDepth) return false;
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') {
      out->kind = Json::kString;
      return string(&out->str);
    }
    if (c == '{') {
      out->kind = Json::kObject;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
      for (;;) {
        ws();
        std::string key;
        if (!string(&key)) return false;
        ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        Json v;
        if (!value(&v, depth + 1)) return false;
        out->keys.push_back(std::move(key));
        out->values.push_back(std::move(v));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
        return false;
      }
    }
    if (c == '[') {
      out->kind = Json::kArray;
      ++i_;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
      for (;;) {
        Json v;
        if (!value(&v, depth + 1)) return false;
        out->items.push_back(std::move(v));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
        return false;
      }
    }
    if (lit("true") || lit("false")) return out->kind = Json::kBool, true;
    if (lit("null")) return out->kind = Json::kNull, true;
    const size_t start = i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '-' || s_[i_] == '+' ||
                              s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E'))
      ++i_;
    out->kind = Json::kNumber;
    return i_ > start;
  }
  std::string_view s_;
  size_t i_ = 0;
};

// AWS event keys: URL-encoded, '+' for a space. False on a bad escape.
bool url_decode(const std::string& in, std::string* out) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      *out += ' ';
    } else if (in[i] == '%') {
      if (i + 2 >= in.size() || hex(in[i + 1]) < 0 || hex(in[i + 2]) < 0) return false;
      *out += static_cast<char>(hex(in[i + 1]) * 16 + hex(in[i + 2]));
      i += 2;
    } else {
      *out += in[i];
    }
  }
  return true;
}

const std::string* str_at(const Json& j, std::initializer_list<std::string_view> path) {
  const Json* cur = &j;
  for (auto name : path) {
    cur = cur->get(name);
    if (!cur) return nullptr;
  }
  return cur->kind == Json::kString ? &cur->str : nullptr;
}

bool write_all_fd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

Result<std::vector<BucketEvent>> parse_bucket_events(std::string_view body) {
  Json doc;
  if (!Parser(body).parse(&doc)) return Status::InvalidArgument("bucket notification: not a JSON document");
  const Json* records = doc.get("Records");
  if (!records || records->kind != Json::kArray)
    return Status::InvalidArgument("bucket notification: no \"Records\" array");
  std::vector<BucketEvent> out;
  for (const Json& r : records->items) {
    const std::string* name = str_at(r, {"eventName"});
    const std::string* bucket = str_at(r, {"s3", "bucket", "name"});
    const std::string* key = str_at(r, {"s3", "object", "key"});
    if (!name || !bucket || !key) return Status::InvalidArgument("bucket notification: a record without eventName, bucket or key");
    const std::string* source = str_at(r, {"eventSource"});
    BucketEvent e;
    e.bucket = *bucket;
    if (source && *source == "ceph:s3") {
      e.key = *key;
    } else if (!url_decode(*key, &e.key)) {
      return Status::InvalidArgument("bucket notification: bad %XX escape in a key");
    }
    e.removed = name->rfind("ObjectRemoved", 0) == 0;
    if (const std::string* etag = str_at(r, {"s3", "object", "eTag"})) e.etag = *etag;
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::unique_ptr<NotifyListener>> NotifyListener::start(const std::string& listen, Handler handler) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return Status::InvalidArgument("tier.notify_listen '" + listen + "' is not HOST:PORT");
  const std::string host = listen.substr(0, colon);
  unsigned port = 0;
  const std::string port_text = listen.substr(colon + 1);
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535)
    return Status::InvalidArgument("tier.notify_listen '" + listen + "': bad port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Status::InvalidArgument("tier.notify_listen '" + listen + "': HOST must be an IPv4 address");
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::from_errno(errno, "socket");
  int one = 1;
  (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 16) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::from_errno(err, "listen on " + listen);
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::unique_ptr<NotifyListener> l(
      new NotifyListener(fd, "http://" + host + ":" + std::to_string(ntohs(addr.sin_port)), std::move(handler)));
  l->thread_ = std::thread([p = l.get()] { p->run(); });
  return l;
}

NotifyListener::~NotifyListener() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

void NotifyListener::run() {
  while (!stopping_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;  // wakes up to notice stopping_
    int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    serve(conn);
    ::close(conn);
  }
}

// One request per connection (we answer "Connection: close"), read within 5 s.
void NotifyListener::serve(int conn) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::string in;
  size_t header_end = std::string::npos, body_len = 0;
  auto answer = [&](const char* status) {
    (void)write_all_fd(conn, std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
  };
  for (;;) {
    if (header_end != std::string::npos && in.size() >= header_end + 4 + body_len) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || stopping_) return;
    pollfd p{conn, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100))) <= 0) continue;
    char buf[16384];
    ssize_t n = ::recv(conn, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    in.append(buf, static_cast<size_t>(n));
    if (header_end == std::string::npos) {
      header_end = in.find("\r\n\r\n");
      if (header_end == std::string::npos) {
        if (in.size() > kMaxHeader) return answer("431 Request Header Fields Too Large");
        continue;
      }
      // Content-Length, case-insensitive; no chunked bodies (RGW and AWS send a length).
      std::string head = in.substr(0, header_end);
      for (auto& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (head.rfind("post ", 0) != 0) return answer("405 Method Not Allowed");
      const size_t cl = head.find("\r\ncontent-length:");
      if (cl == std::string::npos) return answer("411 Length Required");
      size_t v = cl + 17;
      while (v < head.size() && head[v] == ' ') ++v;
      auto [end, ec] = std::from_chars(head.data() + v, head.data() + head.size(), body_len);
      if (ec != std::errc() || body_len > kMaxBody) return answer("413 Content Too Large");
      (void)end;
    }
  }
  auto events = parse_bucket_events(std::string_view(in).substr(header_end + 4, body_len));
  if (!events.is_ok()) return answer("400 Bad Request");
  answer("200 OK");
  handler_(*events);
}

}  // namespace stor::tiering::internal
