#include "net/auth.h"

#include <fcntl.h>
#include <poll.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "net/acceptor.h"
#include "net/transport.h"
#include "net/wire.h"

namespace stor::transport {

namespace {

constexpr uint32_t kAuthMagic = 0x41525453;  // "STRA"
constexpr uint16_t kAuthVersion = 1;
constexpr uint16_t kHello = 1, kChallenge = 2, kProof = 3;
constexpr size_t kNonceBytes = 32, kMacBytes = 32;
// Distinct labels for the two proofs: a server's proof can never be replayed as a client's.
constexpr std::string_view kServerLabel = "stor-transport-auth-v1 server";
constexpr std::string_view kClientLabel = "stor-transport-auth-v1 client";
constexpr size_t kMaxKeyFileBytes = 4096;

using Nonce = std::array<uint8_t, kNonceBytes>;
using Mac = std::array<uint8_t, kMacBytes>;
using Message = std::array<uint8_t, kAuthMessageBytes>;

Status fill_random(uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "transport: getrandom");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return {};
}

Mac proof(const AuthKey& key, std::string_view label, const Nonce& client, const Nonce& server) {
  // label | 0 | version | client nonce | server nonce: both nonces and the protocol are bound.
  std::string msg(label);
  msg.push_back('\0');
  put_u16(msg, kAuthVersion);
  msg.append(reinterpret_cast<const char*>(client.data()), client.size());
  msg.append(reinterpret_cast<const char*>(server.data()), server.size());
  Mac out{};
  unsigned len = 0;
  ::HMAC(EVP_sha256(), key.bytes().data(), static_cast<int>(key.bytes().size()),
         reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out.data(), &len);
  return out;
}

bool same_mac(const uint8_t* a, const Mac& b) { return CRYPTO_memcmp(a, b.data(), b.size()) == 0; }

Message auth_message(uint16_t kind, const uint8_t* body32) {
  Message m{};
  std::string head;
  put_u32(head, kAuthMagic);
  put_u16(head, kAuthVersion);
  put_u16(head, kind);
  std::memcpy(m.data(), head.data(), head.size());
  std::memcpy(m.data() + 8, body32, 32);
  return m;
}

// Checks magic, version, kind and the zero tail of a handshake message; empty string when good.
std::string check_message(const Message& m, uint16_t kind) {
  if (get_u32(m.data()) != kAuthMagic) return "not a handshake message";
  if (get_u16(m.data() + 4) != kAuthVersion)
    return "handshake version " + std::to_string(get_u16(m.data() + 4)) + " (this side speaks " +
           std::to_string(kAuthVersion) + ")";
  if (get_u16(m.data() + 6) != kind)
    return "handshake message of kind " + std::to_string(get_u16(m.data() + 6)) + ", expected " + std::to_string(kind);
  for (size_t i = 40; i < m.size(); ++i)
    if (m[i] != 0) return "reserved handshake bytes are not zero";
  return {};
}

Status auth_failed(const std::string& why) { return Status::PermissionDenied("authentication failed: " + why); }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The server's refusal: tell the client (best effort within the deadline), return it for the log.
// Unread bytes at close would make the kernel send a reset, which can destroy the refusal before
// the client reads it: so stop sending, then drain what the client sent (briefly) before closing.
Status refuse(SocketIo& io, int fd, Deadline dl, const Status& why) {
  std::string frame = connection_error_frame(why);
  if (!io.send_all(fd, frame.data(), frame.size(), dl).is_ok()) return why;
  ::shutdown(fd, SHUT_WR);
  auto until = std::min(dl, Clock::now() + std::chrono::milliseconds(200));
  char sink[4096];
  for (size_t drained = 0; drained < (64u << 10) && Clock::now() < until;) {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left, 0))) <= 0) break;
    ssize_t n = ::recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  return why;
}

// What the client shows of a server's refusal: its reason without the repeated prefixes.
std::string server_reason(std::string why) {
  for (std::string_view prefix : {"stor-target: ", "authentication failed: "})
    if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size());
  return why;
}

}  // namespace

AuthKey::~AuthKey() { OPENSSL_cleanse(k_.data(), k_.size()); }

Result<AuthKey> AuthKey::generate() {
  AuthKey k;
  STOR_RETURN_IF_ERROR(fill_random(k.k_.data(), k.k_.size()));
  return k;
}

Result<AuthKey> AuthKey::parse(std::string_view text, const std::string& where) {
  AuthKey k;
  if (text.size() == kAuthKeyBytes) {
    std::memcpy(k.k_.data(), text.data(), kAuthKeyBytes);
    return k;
  }
  std::string_view hex = text;
  if (!hex.empty() && hex.back() == '\n') hex.remove_suffix(1);
  if (!hex.empty() && hex.back() == '\r') hex.remove_suffix(1);
  bool ok = hex.size() == 2 * kAuthKeyBytes;
  for (size_t i = 0; ok && i < kAuthKeyBytes; ++i) {
    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) ok = false;
    else k.k_[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (!ok)
    return Status::InvalidArgument("transport: key file " + where + " holds neither 32 raw bytes nor 64 hex digits (" +
                                   std::to_string(text.size()) + " bytes); make one with `stor-target --make-key FILE`");
  return k;
}

std::string AuthKey::hex() const {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (uint8_t b : k_) {
    s.push_back(digits[b >> 4]);
    s.push_back(digits[b & 15]);
  }
  return s;
}

Result<std::shared_ptr<const AuthKey>> load_key_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
  if (fd < 0) return Status::from_errno(errno, "transport: key file " + path);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "transport: key file " + path);
  if (!S_ISREG(st.st_mode)) return Status::PermissionDenied("transport: key file " + path + " is not a regular file");
  if (st.st_uid != ::geteuid() && st.st_uid != 0)
    return Status::PermissionDenied("transport: key file " + path + " belongs to uid " + std::to_string(st.st_uid) +
                                    ", not to this user; refusing to trust it");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::PermissionDenied("transport: key file " + path + " has mode " + mode +
                                    ": group or others may access it; `chmod 600 " + path + "`");
  }
  if (st.st_size > static_cast<off_t>(kMaxKeyFileBytes))
    return Status::InvalidArgument("transport: key file " + path + " is too large to be a key");
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "transport: read key file " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  auto key = AuthKey::parse(text, path);
  OPENSSL_cleanse(text.data(), text.size());
  if (!key) return key.status();
  return std::shared_ptr<const AuthKey>(std::make_shared<AuthKey>(std::move(*key)));
}

Status write_key_file(const std::string& path, const AuthKey& key) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::AlreadyExists("transport: key file " + path + " exists; not overwriting it");
    return Status::from_errno(errno, "transport: create key file " + path);
  }
  // The umask can only remove bits; fchmod makes sure of 0600 whatever it is.
  std::string text = key.hex() + "\n";
  Status s;
  if (::fchmod(fd, 0600) != 0) s = Status::from_errno(errno, "transport: chmod key file " + path);
  for (size_t done = 0; s.is_ok() && done < text.size();) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = Status::from_errno(errno, "transport: write key file " + path);
    else done += static_cast<size_t>(n);
  }
  if (s.is_ok() && ::fsync(fd) != 0) s = Status::from_errno(errno, "transport: fsync key file " + path);
  ::close(fd);
  OPENSSL_cleanse(text.data(), text.size());
  if (!s.is_ok()) ::unlink(path.c_str());
  return s;
}

std::string connection_error_frame(const Status& why) {
  FrameHeader h;
  h.flags = kFrameReply;
  h.status = static_cast<uint32_t>(why.code());
  std::string text = "stor-target: " + why.message();
  if (text.size() > kMaxControlBytes) text.resize(kMaxControlBytes);
  h.control_len = static_cast<uint32_t>(text.size());
  FrameBytes b = encode_frame_header(h);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size()) + text;
}

Status read_error_frame(SocketIo& io, int fd, std::string_view have, Deadline dl, const std::string& peer) {
  if (have.size() < kFrameHeaderSize) return Status::Corruption("transport: short frame from " + peer);
  FrameBytes fb;
  std::memcpy(fb.data(), have.data(), fb.size());
  auto h = decode_frame_header(fb, peer);
  if (!h) return h.status();
  if (!(h->flags & kFrameReply) || h->request_id != 0 || h->status == 0 || h->payload_len != 0)
    return Status::Corruption("transport: " + peer + " sent a frame that is not a connection-level error");
  // The text: what already arrived past the header, then the rest (bounded: it is only shown).
  std::string why(have.substr(kFrameHeaderSize, h->control_len));
  size_t want = std::min<size_t>(h->control_len, 4096);
  if (why.size() < want) {
    size_t at = why.size();
    why.resize(want);
    if (Status s = io.recv_all(fd, why.data() + at, want - at, dl); !s.is_ok()) return s.with_suffix(" (" + peer + ")");
  }
  if (why.size() > want) why.resize(want);
  return Status(static_cast<Code>(h->status), why);
}

Status client_handshake(SocketIo& io, int fd, const AuthKey& key, Deadline dl, const std::string& peer) {
  Nonce client{};
  STOR_RETURN_IF_ERROR(fill_random(client.data(), client.size()));
  Message hello = auth_message(kHello, client.data());
  auto ctx = [&](Status s) { return s.with_context("transport: authentication with " + peer); };
  if (Status s = io.send_all(fd, hello.data(), hello.size(), dl); !s.is_ok()) return ctx(s);
  // The answer is 48 bytes either way: a challenge, or a frame header. A server without a key
  // reads our hello as a bad frame header and answers with its Corruption error frame, so this
  // side learns at once that the target does not authenticate, instead of waiting for a timeout.
  Message m{};
  if (Status s = io.recv_all(fd, m.data(), m.size(), dl); !s.is_ok()) return ctx(s);
  if (get_u32(m.data()) == kFrameMagic) {
    Status refused = read_error_frame(io, fd, std::string_view(reinterpret_cast<const char*>(m.data()), m.size()), dl,
                                      peer);
    if (refused.code() == Code::kCorruption)
      return auth_failed(peer + " does not authenticate connections (a target started with --insecure-no-auth?); it "
                                "answered: " + refused.message());
    if (refused.code() == Code::kPermissionDenied)
      return auth_failed(peer + " refused the connection: " + server_reason(refused.message()));
    // Not about the key (all slots busy: Unavailable): keep the code, so callers retry as ever.
    return Status(refused.code(), peer + " closed the connection: " + refused.message());
  }
  if (std::string bad = check_message(m, kChallenge); !bad.empty()) return auth_failed(peer + " sent " + bad);
  Nonce server{};
  std::memcpy(server.data(), m.data() + 8, server.size());
  Mac server_mac{};
  if (Status s = io.recv_all(fd, server_mac.data(), server_mac.size(), dl); !s.is_ok()) return ctx(s);
  if (!same_mac(server_mac.data(), proof(key, kServerLabel, client, server)))
    return auth_failed(peer + " could not prove it holds this key (the target was started with another key file)");
  Mac mine = proof(key, kClientLabel, client, server);
  Message p = auth_message(kProof, mine.data());
  if (Status s = io.send_all(fd, p.data(), p.size(), dl); !s.is_ok()) return ctx(s);
  // No verdict to wait for: the server's proof already showed both ends hold the same key, so a
  // refusal now means a damaged stream, and it arrives as the connection-level error frame in
  // answer to the first request. This keeps the handshake's cost at one round trip.
  return {};
}

Status server_handshake(SocketIo& io, int fd, const AuthKey& key, Deadline dl) {
  Message hello{};
  if (Status s = io.recv_all(fd, hello.data(), hello.size(), dl); !s.is_ok())
    return auth_failed("no handshake: " + s.message());
  // An unkeyed client's first bytes: a request frame (TCP) or a set-up message (verbs, "STRV").
  if (get_u32(hello.data()) == kFrameMagic || get_u32(hello.data()) == 0x56525453)
    return refuse(io, fd, dl,
                  auth_failed("this target requires authentication: the client sent a request without the key "
                              "handshake (give it the file system's key file)"));
  if (std::string bad = check_message(hello, kHello); !bad.empty())
    return refuse(io, fd, dl, auth_failed("expected a handshake hello, got " + bad));
  Nonce client{}, server{};
  std::memcpy(client.data(), hello.data() + 8, client.size());
  STOR_RETURN_IF_ERROR(fill_random(server.data(), server.size()));
  Message challenge = auth_message(kChallenge, server.data());
  Mac server_mac = proof(key, kServerLabel, client, server);
  std::string out(reinterpret_cast<const char*>(challenge.data()), challenge.size());
  out.append(reinterpret_cast<const char*>(server_mac.data()), server_mac.size());
  if (Status s = io.send_all(fd, out.data(), out.size(), dl); !s.is_ok())
    return auth_failed("sending the challenge: " + s.message());
  Message p{};
  if (Status s = io.recv_all(fd, p.data(), p.size(), dl); !s.is_ok())
    return auth_failed("no proof from the client (" + s.message() +
                       "); a client holding another key hangs up here");
  if (std::string bad = check_message(p, kProof); !bad.empty())
    return refuse(io, fd, dl, auth_failed("expected a handshake proof, got " + bad));
  if (!same_mac(p.data() + 8, proof(key, kClientLabel, client, server)))
    return refuse(io, fd, dl, auth_failed("the client's proof does not match this target's key (wrong key file?)"));
  return {};
}

bool authenticate_connection(SocketIo& io, int fd, ConnectionState& state, const AuthKey& key,
                             const TransportOptions& opts, RateLimitedLog& log) {
  std::chrono::milliseconds limit = opts.timeout;
  if (opts.idle_timeout.count() > 0 && (limit.count() <= 0 || opts.idle_timeout < limit)) limit = opts.idle_timeout;
  Status s = server_handshake(io, fd, key, deadline_after(limit));
  if (s.is_ok()) return true;
  if (state.evicted()) return false;  // the acceptor closed it to make room: not a refusal
  sockaddr_in a{};
  socklen_t len = sizeof a;
  std::string who = "unknown peer";
  char buf[INET_ADDRSTRLEN] = {};
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && a.sin_family == AF_INET &&
      ::inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf))
    who = std::string(buf) + ":" + std::to_string(ntohs(a.sin_port));
  log.note("refused connection from " + who + ": " + s.message());
  return false;
}

void RateLimitedLog::note(const std::string& line) {
  if (!sink_) return;
  std::string msg;
  {
    std::lock_guard lk(mu_);
    auto now = std::chrono::steady_clock::now();
    if (last_ != std::chrono::steady_clock::time_point{} && now - last_ < std::chrono::seconds(1)) {
      ++suppressed_;
      return;
    }
    last_ = now;
    msg = line;
    if (suppressed_) msg += " (and " + std::to_string(suppressed_) + " more refused since the last report)";
    suppressed_ = 0;
  }
  sink_(msg);
}

}  // namespace stor::transport
