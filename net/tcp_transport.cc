// TCP transport: each frame is header + control bytes + payload on one stream socket.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <deque>
#include <memory>
#include <vector>

#include "net/acceptor.h"
#include "net/auth.h"
#include "net/socket_io.h"
#include "net/transport_internal.h"
#include "net/wire.h"

namespace stor::transport {

namespace {

// A frame's header followed by its control bytes, to go out in one send.
std::string frame_head(const FrameBytes& header, std::string_view control) {
  std::string head(reinterpret_cast<const char*>(header.data()), header.size());
  head.append(control);
  return head;
}

class TcpChannel final : public Channel {
 public:
  TcpChannel(int fd, std::unique_ptr<SocketIo> io, std::string peer, const TransportOptions& opts)
      : fd_(fd), io_(std::move(io)), peer_(std::move(peer)), opts_(opts) {}
  ~TcpChannel() override { ::close(fd_); }

  Result<Reply> call(uint16_t opcode, std::string_view control, std::span<const std::byte> payload,
                     std::span<std::byte> reply_payload) override {
    if (!pending_.empty())
      return Status::InvalidArgument("transport: call to " + peer_ + " while " + std::to_string(pending_.size()) +
                                     " pipelined call(s) are outstanding");
    STOR_RETURN_IF_ERROR(start_call_impl(opcode, control, payload, reply_payload));
    return finish_call();
  }

  Status start_call(uint16_t opcode, std::string control, std::span<const std::byte> payload,
                    std::span<std::byte> reply_payload) override {
    return start_call_impl(opcode, control, payload, reply_payload);
  }

  Result<Reply> finish_call() override {
    if (pending_.empty()) return Status::InvalidArgument("transport: no call to " + peer_ + " is outstanding");
    Pending p = pending_.front();
    pending_.pop_front();
    if (broken_) return broken_status();
    // Each reply within the timeout of being waited for: a pipelined one queues behind others.
    bool in_sync = false;
    auto r = receive_reply(p, deadline_after(opts_.timeout), &in_sync);
    if (!in_sync) mark_broken(r.status());
    return r;
  }

  size_t outstanding_calls() const override { return pending_.size(); }
  uint64_t max_payload() const override { return std::min(opts_.max_payload, kMaxPayloadLimit); }
  bool broken() const override { return broken_; }
  bool peer_closed() const override {
    // Between calls nothing may arrive: readable means end of stream, a reset, or junk.
    pollfd p{fd_, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }
  const std::string& peer() const override { return peer_; }

 private:
  struct Pending {
    uint64_t request_id;
    uint16_t opcode;
    std::span<std::byte> reply_payload;
  };

  Status broken_status() const {
    return Status::Unavailable("transport: connection to " + peer_ + " failed earlier: " + broken_why_);
  }
  void mark_broken(const Status& why) {
    if (broken_) return;
    broken_ = true;
    broken_why_ = why.to_string();
  }

  // Sends one request frame and queues what its reply must match.
  Status start_call_impl(uint16_t opcode, std::string_view control, std::span<const std::byte> payload,
                         std::span<std::byte> reply_payload) {
    if (broken_) return broken_status();
    STOR_RETURN_IF_ERROR(check_start(control, payload, reply_payload));
    Deadline dl = deadline_after(opts_.timeout);
    FrameHeader h;
    h.opcode = opcode;
    h.request_id = ++next_request_id_;
    h.control_len = static_cast<uint32_t>(control.size());
    h.payload_len = payload.size();
    h.reply_capacity = reply_payload.size();
    FrameBytes hb = encode_frame_header(h);
    // Header and control bytes in one send: one system call (and segment) fewer per call.
    std::string head = frame_head(hb, control);
    Status s = io_->send_all(fd_, head.data(), head.size(), dl, !payload.empty());
    if (s.is_ok() && !payload.empty()) s = io_->send_all(fd_, payload.data(), payload.size(), dl);
    if (!s.is_ok()) {
      // Part of a frame may be on the wire: the stream is out of step for good.
      s = s.with_suffix(" (" + peer_ + ")");
      mark_broken(s);
      return s;
    }
    pending_.push_back(Pending{h.request_id, opcode, reply_payload});
    return {};
  }

  // Reads the reply to `p`. *in_sync: the whole reply frame was read (whatever its status), so the
  // stream can carry the next one.
  Result<Reply> receive_reply(const Pending& p, Deadline dl, bool* in_sync) {
    *in_sync = false;
    auto ctx = [&](Status s) { return s.with_suffix(" (" + peer_ + ")"); };
    FrameBytes rb;
    if (Status s = io_->recv_all(fd_, rb.data(), rb.size(), dl); !s.is_ok()) return ctx(s);
    STOR_ASSIGN_OR_RETURN(FrameHeader rh, decode_frame_header(rb, peer_));
    auto bad = [&](const std::string& what) { return Status::Corruption("transport: bad reply from " + peer_ + ": " + what); };
    if (!(rh.flags & kFrameReply)) return bad("not marked as a reply");
    if (rh.request_id == 0 && rh.status != 0 && rh.payload_len == 0 && rh.control_len > 0) {
      // The server rejected the connection as a whole (it could not parse our frame): report its
      // words; the stream stays marked as failed.
      std::string why(rh.control_len, '\0');
      if (Status s = io_->recv_all(fd_, why.data(), why.size(), dl); !s.is_ok()) return ctx(s);
      return Status(static_cast<Code>(rh.status), peer_ + " closed the connection: " + why);
    }
    if (rh.request_id != p.request_id)
      return bad("request id " + std::to_string(rh.request_id) + ", expected " + std::to_string(p.request_id));
    if (rh.opcode != p.opcode)
      return bad("opcode " + std::to_string(rh.opcode) + ", expected " + std::to_string(p.opcode));
    if (rh.payload_len > p.reply_payload.size())
      return bad(std::to_string(rh.payload_len) + " payload bytes for a " + std::to_string(p.reply_payload.size()) +
                 "-byte buffer");
    if (rh.status != 0 && rh.payload_len != 0) return bad("error reply with a payload");
    Reply reply;
    reply.control.resize(rh.control_len);
    if (Status s = io_->recv_all(fd_, reply.control.data(), rh.control_len, dl); !s.is_ok()) return ctx(s);
    if (rh.payload_len)
      if (Status s = io_->recv_all(fd_, p.reply_payload.data(), rh.payload_len, dl); !s.is_ok()) return ctx(s);
    *in_sync = true;  // whatever the status says
    reply.payload_len = rh.payload_len;
    if (rh.status != 0) return Status(static_cast<Code>(rh.status), peer_ + ": " + reply.control);
    return reply;
  }

  int fd_;
  std::unique_ptr<SocketIo> io_;
  std::string peer_;
  TransportOptions opts_;
  uint64_t next_request_id_ = 0;
  std::deque<Pending> pending_;  // started calls whose replies were not read yet, oldest first
  bool broken_ = false;
  std::string broken_why_;
};

// Request payloads are received (and their buffer grown) this much at a time.
constexpr uint64_t kRecvStep = 1 << 20;

// Serves one TCP connection until the peer leaves, a frame is bad, it idles past
// opts.idle_timeout, the acceptor evicts it, or the listener stops. With a key, nothing is read
// as a frame before the client passed the handshake.
void serve_tcp_connection(int fd, ConnectionState& state, const Handler& handler, const TransportOptions& opts,
                          RateLimitedLog& auth_log) {
  auto io = SocketIo::create(opts.io_uring);
  std::string peer = "tcp client fd " + std::to_string(fd);
  ServedConnection served(opts);
  if (opts.auth_key && !authenticate_connection(*io, fd, state, *opts.auth_key, opts, auth_log)) return;
  // Lengths in a header are promises, not bytes: the payload buffer grows with the bytes that
  // actually arrive, and the reply buffer is left uninitialised, so only what the handler writes
  // is ever touched. Otherwise a bare header (payload_len or reply_capacity = max_payload) would
  // commit max_payload bytes per connection.
  std::vector<std::byte> in_payload;
  std::unique_ptr<std::byte[]> reply_buffer;
  size_t reply_buffer_size = 0;
  const uint64_t limit = std::min(opts.max_payload, kMaxPayloadLimit);
  std::string control;
  // While a handler runs nothing more is read: a FIN or reset pending on the socket means the
  // client is gone (a pipelined next request only makes it readable).
  const std::function<bool()> peer_gone = [fd] {
    pollfd p{fd, POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  };
  for (;;) {
    FrameBytes hb;
    // The whole header within the idle timeout (nothing or a byte at a time alike); then the rest
    // of the frame within opts.timeout.
    state.idle();
    if (!io->recv_all(fd, hb.data(), hb.size(), deadline_after(opts.idle_timeout)).is_ok()) return;
    if (!state.begin_request()) return;  // evicted meanwhile: the socket is shut down already
    Deadline dl = deadline_after(opts.timeout);
    auto h = decode_frame_header(hb, peer);
    FrameHeader reply;
    reply.flags = kFrameReply;
    ServerResult result;
    uint64_t capacity = 0;  // reply bulk bytes the handler may return
    bool fatal = false;  // the stream cannot be trusted any more: answer, then hang up
    if (!h) {
      result.status = h.status();
      fatal = true;
    } else if (h->flags & kFrameReply) {
      result.status = Status::Corruption("transport: server got a reply frame");
      fatal = true;
    } else if (h->payload_len > limit) {
      // Not read: this bounds what one connection can make the server allocate.
      result.status = Status::InvalidArgument("transport: request payload of " + std::to_string(h->payload_len) +
                                                         " bytes exceeds this server's limit of " + std::to_string(limit));
      reply.opcode = h->opcode;
      fatal = true;
    } else {
      reply.opcode = h->opcode;
      reply.request_id = h->request_id;
      control.resize(h->control_len);
      if (!io->recv_all(fd, control.data(), control.size(), dl).is_ok()) return;
      for (uint64_t got = 0; got < h->payload_len;) {
        size_t step = static_cast<size_t>(std::min<uint64_t>(h->payload_len - got, kRecvStep));
        if (in_payload.size() < got + step) in_payload.resize(got + step);
        if (!io->recv_all(fd, in_payload.data() + got, step, dl).is_ok()) return;
        got += step;
      }
      capacity = h->reply_capacity;
      result.status = check_reply_capacity(capacity, limit);
      if (result.status.is_ok()) {
        if (reply_buffer_size < capacity) {
          reply_buffer.reset(new std::byte[capacity]);  // default-initialised: not written
          reply_buffer_size = capacity;
        }
        ServerCall call{h->opcode, control, std::span<const std::byte>(in_payload.data(), h->payload_len),
                        std::span<std::byte>(reply_buffer.get(), capacity), served.use(), peer_gone};
        result = handler(call);
        dl = deadline_after(opts.timeout);  // the handler may wait (stor-mds extent locks)
      }
    }
    finish_result(result, capacity, reply);
    FrameBytes rb = encode_frame_header(reply);
    // MSG_MORE only when bytes follow: a corked header alone would wait for the cork timer.
    std::string head = frame_head(rb, result.control);
    if (!io->send_all(fd, head.data(), head.size(), dl, result.payload_len > 0).is_ok()) return;
    if (result.payload_len && !io->send_all(fd, reply_buffer.get(), result.payload_len, dl).is_ok()) return;
    if (fatal) return;
  }
}

// A connection refused by the acceptor gets one connection-level error frame (request id 0, the
// reason as control bytes, as for a bad frame), which TcpChannel reports as that status. It is
// a fresh socket, so the ~100 bytes fit its send buffer: never blocks.
void reject_tcp_connection(int fd, const Status& why) {
  std::string frame = connection_error_frame(why);
  (void)!::send(fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(fd, SHUT_WR);
}

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(const TransportOptions& opts) : opts_(opts) {}
  std::string_view kind() const override { return "tcp"; }

  Result<std::unique_ptr<Channel>> connect(const Endpoint& ep) override {
    if (ep.scheme != "tcp") return Status::InvalidArgument("transport: tcp cannot reach " + ep.to_string());
    auto io = SocketIo::create(opts_.io_uring);
    std::string peer = ep.to_string();
    Deadline dl = deadline_after(opts_.timeout);
    STOR_ASSIGN_OR_RETURN(int fd, tcp_connect(*io, ep.host, ep.port, dl, peer));
    if (opts_.auth_key) {
      if (Status s = client_handshake(*io, fd, *opts_.auth_key, dl, peer); !s.is_ok()) {
        ::close(fd);
        return s;
      }
    }
    return std::unique_ptr<Channel>(std::make_unique<TcpChannel>(fd, std::move(io), peer, opts_));
  }

  Result<std::unique_ptr<Listener>> listen(const Endpoint& ep, Handler handler) override {
    if (ep.scheme != "tcp") return Status::InvalidArgument("transport: tcp cannot listen on " + ep.to_string());
    auto opts = opts_;
    auto auth_log = std::make_shared<RateLimitedLog>(opts_.log);
    STOR_ASSIGN_OR_RETURN(auto acceptor, Acceptor::start(
                                             ep, opts_,
                                             [handler = std::move(handler), opts, auth_log](int fd, ConnectionState& state) {
                                               serve_tcp_connection(fd, state, handler, opts, *auth_log);
                                             },
                                             reject_tcp_connection));
    Endpoint bound = ep;
    bound.port = acceptor->port();
    return std::unique_ptr<Listener>(std::make_unique<AcceptorListener>(std::move(acceptor), bound.to_string()));
  }

 private:
  TransportOptions opts_;
};

}  // namespace

std::unique_ptr<Transport> make_tcp_transport(const TransportOptions& opts) {
  return std::make_unique<TcpTransport>(opts);
}

}  // namespace stor::transport
