// ibverbs transport (built when rdma-core is found): RC queue pairs, control frames by
// send/recv, bulk data by RDMA READ/WRITE between registered buffers.
//
// Connection set-up runs over a TCP side channel to the endpoint's host:port: the client sends
// its QP number, PSN, LID, GID and the address/rkey/length of its registered bulk buffer; the
// server creates its QP, posts a receive, moves the QP to RTS and answers with its own numbers.
// Per call the client copies the request payload into its bulk buffer and SENDs the frame
// header + control bytes; the server RDMA READs the payload from the client's buffer, runs the
// handler, RDMA WRITEs the reply payload back into that buffer and SENDs the reply frame. RC
// ordering makes the WRITE visible before the reply SEND completes at the client. The side
// channel stays open: its closing tells either end that the peer is gone.
#ifdef STOR_HAVE_RDMA

#include <infiniband/verbs.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "net/acceptor.h"
#include "net/auth.h"
#include "net/socket_io.h"
#include "net/transport_internal.h"
#include "net/wire.h"
#include "stor/settings.h"

namespace stor::transport {

bool verbs_compiled() { return true; }

namespace {

constexpr uint32_t kSetupMagic = 0x56525453;  // "STRV"
constexpr size_t kSetupSize = 50;
constexpr size_t kCtrlBufSize = kFrameHeaderSize + kMaxControlBytes;
constexpr uint64_t kSendId = 1, kRecvId = 2, kReadId = 3;

Status verbs_error(const std::string& what, int err) {
  return Status::Unavailable("verbs: " + what + ": " + std::strerror(err));
}

// One opened RDMA device: context, protection domain and the port/GID used for addressing.
class VerbsDevice {
 public:
  static Result<std::shared_ptr<VerbsDevice>> open() {
    int n = 0;
    ibv_device** list = ibv_get_device_list(&n);
    if (!list) {
      // rdma-core reports a kernel without RDMA support (no uverbs/rxe) as ENOSYS: no devices.
      if (errno == ENOSYS)
        return Status::Unavailable("no RDMA device found (ibv_get_device_list returned 0 devices: the kernel has no RDMA "
                      "support, errno ENOSYS)");
      return Status::Unavailable(std::string("no RDMA device found (ibv_get_device_list failed: ") + std::strerror(errno) + ")");
    }
    if (n == 0) {
      ibv_free_device_list(list);
      return Status::Unavailable("no RDMA device found (ibv_get_device_list returned 0 devices)");
    }
    ibv_device* chosen = list[0];
    const char* want = std::getenv("STOR_VERBS_DEVICE");
    if (want && *want) {
      chosen = nullptr;
      for (int i = 0; i < n; ++i)
        if (std::strcmp(ibv_get_device_name(list[i]), want) == 0) chosen = list[i];
      if (!chosen) {
        ibv_free_device_list(list);
        return Status::NotFound(std::string("verbs: STOR_VERBS_DEVICE=") + want + " names no RDMA device");
      }
    }
    auto dev = std::shared_ptr<VerbsDevice>(new VerbsDevice);
    dev->name_ = ibv_get_device_name(chosen);
    dev->ctx_ = ibv_open_device(chosen);
    ibv_free_device_list(list);
    if (!dev->ctx_) return verbs_error("ibv_open_device " + dev->name_, errno);
    dev->pd_ = ibv_alloc_pd(dev->ctx_);
    if (!dev->pd_) return verbs_error("ibv_alloc_pd", errno);
    if (int rc = ibv_query_port(dev->ctx_, dev->port_, &dev->port_attr_); rc != 0) return verbs_error("ibv_query_port", rc);
    if (dev->port_attr_.state != IBV_PORT_ACTIVE)
      return Status::Unavailable("verbs: port 1 of " + dev->name_ + " is not active");
    if (const char* g = std::getenv("STOR_VERBS_GID_INDEX")) {
      // atoi read junk as GID 0 (a silently wrong address): strict, and inside the port's table.
      auto idx = parse_uint(g);
      if (!idx.is_ok() || *idx >= static_cast<uint64_t>(dev->port_attr_.gid_tbl_len))
        return Status::InvalidArgument("verbs: STOR_VERBS_GID_INDEX='" + std::string(g) + "' is not a GID index below " +
                                       std::to_string(dev->port_attr_.gid_tbl_len));
      dev->gid_index_ = static_cast<int>(*idx);
    }
    if (int rc = ibv_query_gid(dev->ctx_, dev->port_, dev->gid_index_, &dev->gid_); rc != 0)
      return verbs_error("ibv_query_gid", rc);
    return dev;
  }
  ~VerbsDevice() {
    if (pd_) ibv_dealloc_pd(pd_);
    if (ctx_) ibv_close_device(ctx_);
  }

  ibv_context* ctx() const { return ctx_; }
  ibv_pd* pd() const { return pd_; }
  uint8_t port() const { return port_; }
  const ibv_port_attr& port_attr() const { return port_attr_; }
  const ibv_gid& gid() const { return gid_; }
  int gid_index() const { return gid_index_; }
  // RoCE needs a GRH (addressing by GID); InfiniBand routes by LID.
  bool needs_grh() const { return port_attr_.link_layer == IBV_LINK_LAYER_ETHERNET || port_attr_.lid == 0; }

 private:
  VerbsDevice() = default;
  std::string name_;
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  uint8_t port_ = 1;
  ibv_port_attr port_attr_{};
  ibv_gid gid_{};
  int gid_index_ = 0;
};

// What the two ends tell each other over the side channel.
struct SetupInfo {
  uint32_t qpn = 0, psn = 0;
  uint16_t lid = 0;
  uint8_t gid[16] = {};
  uint64_t bulk_addr = 0;  // client: its bulk buffer; server: 0
  uint32_t bulk_rkey = 0;
  uint64_t bulk_len = 0;   // bytes of bulk per call this end supports
};

std::string encode_setup(const SetupInfo& s) {
  std::string out;
  put_u32(out, kSetupMagic);
  put_u32(out, s.qpn);
  put_u32(out, s.psn);
  put_u16(out, s.lid);
  out.append(reinterpret_cast<const char*>(s.gid), 16);
  put_u64(out, s.bulk_addr);
  put_u32(out, s.bulk_rkey);
  put_u64(out, s.bulk_len);
  return out;
}

Result<SetupInfo> decode_setup(const std::string& b, const std::string& peer) {
  if (b.size() != kSetupSize || get_u32(b.data()) != kSetupMagic)
    return Status::Corruption("verbs: bad connection set-up message from " + peer);
  SetupInfo s;
  s.qpn = get_u32(b.data() + 4);
  s.psn = get_u32(b.data() + 8) & 0xffffff;
  s.lid = get_u16(b.data() + 12);
  std::memcpy(s.gid, b.data() + 14, 16);
  s.bulk_addr = get_u64(b.data() + 30);
  s.bulk_rkey = get_u32(b.data() + 38);
  s.bulk_len = get_u64(b.data() + 42);
  if (s.bulk_len == 0 || s.bulk_len > kMaxPayloadLimit)
    return Status::Corruption("verbs: set-up message from " + peer + " has bulk length " + std::to_string(s.bulk_len));
  return s;
}

// A registered, page-aligned buffer.
class RegisteredBuffer {
 public:
  static Result<std::unique_ptr<RegisteredBuffer>> create(ibv_pd* pd, size_t size, int access) {
    auto b = std::unique_ptr<RegisteredBuffer>(new RegisteredBuffer);
    size = (size + 4095) / 4096 * 4096;
    b->data_ = static_cast<std::byte*>(std::aligned_alloc(4096, size));
    if (!b->data_) return Status::NoSpace("verbs: out of memory for a " + std::to_string(size) + "-byte buffer");
    b->size_ = size;
    b->mr_ = ibv_reg_mr(pd, b->data_, size, access);
    if (!b->mr_) return verbs_error("ibv_reg_mr of " + std::to_string(size) + " bytes", errno);
    return b;
  }
  ~RegisteredBuffer() {
    if (mr_) ibv_dereg_mr(mr_);
    std::free(data_);
  }
  std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  ibv_mr* mr() const { return mr_; }

 private:
  RegisteredBuffer() = default;
  std::byte* data_ = nullptr;
  size_t size_ = 0;
  ibv_mr* mr_ = nullptr;
};

// One RC queue pair with its completion queue, control buffers and bulk buffers.
class QueuePair {
 public:
  static Result<std::unique_ptr<QueuePair>> create(std::shared_ptr<VerbsDevice> dev, uint64_t bulk_size,
                                                   int bulk_buffers) {
    auto q = std::unique_ptr<QueuePair>(new QueuePair);
    q->dev_ = std::move(dev);
    ibv_context* ctx = q->dev_->ctx();
    q->channel_ = ibv_create_comp_channel(ctx);
    if (!q->channel_) return verbs_error("ibv_create_comp_channel", errno);
    q->cq_ = ibv_create_cq(ctx, 32, nullptr, q->channel_, 0);
    if (!q->cq_) return verbs_error("ibv_create_cq", errno);
    ibv_qp_init_attr init{};
    init.send_cq = q->cq_;
    init.recv_cq = q->cq_;
    init.qp_type = IBV_QPT_RC;
    init.sq_sig_all = 0;
    init.cap.max_send_wr = 16;
    init.cap.max_recv_wr = 4;
    init.cap.max_send_sge = 1;
    init.cap.max_recv_sge = 1;
    q->qp_ = ibv_create_qp(q->dev_->pd(), &init);
    if (!q->qp_) return verbs_error("ibv_create_qp", errno);
    int access = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
    STOR_ASSIGN_OR_RETURN(q->send_ctrl_, RegisteredBuffer::create(q->dev_->pd(), kCtrlBufSize, IBV_ACCESS_LOCAL_WRITE));
    STOR_ASSIGN_OR_RETURN(q->recv_ctrl_, RegisteredBuffer::create(q->dev_->pd(), kCtrlBufSize, IBV_ACCESS_LOCAL_WRITE));
    for (int i = 0; i < bulk_buffers; ++i) {
      STOR_ASSIGN_OR_RETURN(auto b, RegisteredBuffer::create(q->dev_->pd(), bulk_size, access));
      q->bulk_.push_back(std::move(b));
    }
    q->psn_ = std::random_device{}() & 0xffffff;
    return q;
  }

  ~QueuePair() {
    if (qp_) ibv_destroy_qp(qp_);
    bulk_.clear();
    send_ctrl_.reset();
    recv_ctrl_.reset();
    if (cq_) {
      if (unacked_events_) ibv_ack_cq_events(cq_, unacked_events_);
      ibv_destroy_cq(cq_);
    }
    if (channel_) ibv_destroy_comp_channel(channel_);
  }

  SetupInfo local_info(int exposed_bulk, uint64_t bulk_len) const {
    SetupInfo s;
    s.qpn = qp_->qp_num;
    s.psn = psn_;
    s.lid = dev_->port_attr().lid;
    std::memcpy(s.gid, dev_->gid().raw, 16);
    if (exposed_bulk >= 0) {
      s.bulk_addr = reinterpret_cast<uintptr_t>(bulk_[exposed_bulk]->data());
      s.bulk_rkey = bulk_[exposed_bulk]->mr()->rkey;
    }
    s.bulk_len = bulk_len;
    return s;
  }

  // RESET -> INIT -> RTR (ready to receive from the remote QP) -> RTS (ready to send).
  Status connect(const SetupInfo& remote) {
    ibv_qp_attr a{};
    a.qp_state = IBV_QPS_INIT;
    a.pkey_index = 0;
    a.port_num = dev_->port();
    a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE;
    if (int rc = ibv_modify_qp(qp_, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS); rc != 0)
      return verbs_error("ibv_modify_qp to INIT", rc);

    a = {};
    a.qp_state = IBV_QPS_RTR;
    a.path_mtu = dev_->port_attr().active_mtu;
    a.dest_qp_num = remote.qpn;
    a.rq_psn = remote.psn;
    a.max_dest_rd_atomic = 1;
    a.min_rnr_timer = 12;
    a.ah_attr.dlid = remote.lid;
    a.ah_attr.sl = 0;
    a.ah_attr.src_path_bits = 0;
    a.ah_attr.port_num = dev_->port();
    if (dev_->needs_grh()) {
      a.ah_attr.is_global = 1;
      std::memcpy(a.ah_attr.grh.dgid.raw, remote.gid, 16);
      a.ah_attr.grh.sgid_index = static_cast<uint8_t>(dev_->gid_index());
      a.ah_attr.grh.hop_limit = 1;
    }
    if (int rc = ibv_modify_qp(qp_, &a, IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                                            IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER);
        rc != 0)
      return verbs_error("ibv_modify_qp to RTR", rc);

    a = {};
    a.qp_state = IBV_QPS_RTS;
    a.timeout = 14;
    a.retry_cnt = 7;
    a.rnr_retry = 7;
    a.sq_psn = psn_;
    a.max_rd_atomic = 1;
    if (int rc = ibv_modify_qp(qp_, &a, IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                                            IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC);
        rc != 0)
      return verbs_error("ibv_modify_qp to RTS", rc);
    return {};
  }

  Status post_recv() {
    ibv_sge sge{reinterpret_cast<uintptr_t>(recv_ctrl_->data()), static_cast<uint32_t>(kCtrlBufSize), recv_ctrl_->mr()->lkey};
    ibv_recv_wr wr{};
    wr.wr_id = kRecvId;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_recv_wr* bad = nullptr;
    if (int rc = ibv_post_recv(qp_, &wr, &bad); rc != 0) return verbs_error("ibv_post_recv", rc);
    return {};
  }

  // SENDs the first len bytes of the send control buffer (signaled).
  Status post_send(size_t len) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(send_ctrl_->data()), static_cast<uint32_t>(len), send_ctrl_->mr()->lkey};
    ibv_send_wr wr{};
    wr.wr_id = kSendId;
    wr.opcode = IBV_WR_SEND;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    ibv_send_wr* bad = nullptr;
    if (int rc = ibv_post_send(qp_, &wr, &bad); rc != 0) return verbs_error("ibv_post_send (SEND)", rc);
    return {};
  }

  // RDMA READ (remote -> bulk[index]) or RDMA WRITE (bulk[index] -> remote) of len bytes.
  Status post_rdma(ibv_wr_opcode op, int index, uint64_t remote_addr, uint32_t rkey, size_t len, bool signaled,
                   uint64_t wr_id) {
    ibv_sge sge{reinterpret_cast<uintptr_t>(bulk_[index]->data()), static_cast<uint32_t>(len), bulk_[index]->mr()->lkey};
    ibv_send_wr wr{};
    wr.wr_id = wr_id;
    wr.opcode = op;
    wr.send_flags = signaled ? IBV_SEND_SIGNALED : 0;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.wr.rdma.remote_addr = remote_addr;
    wr.wr.rdma.rkey = rkey;
    ibv_send_wr* bad = nullptr;
    if (int rc = ibv_post_send(qp_, &wr, &bad); rc != 0)
      return verbs_error(op == IBV_WR_RDMA_READ ? "ibv_post_send (RDMA READ)" : "ibv_post_send (RDMA WRITE)", rc);
    return {};
  }

  // Waits until the completions of every id in `ids` arrived. watch_fd (the side channel)
  // becoming readable means the peer went away. Returns the receive's byte count if kRecvId
  // was among them.
  Result<uint32_t> wait(std::initializer_list<uint64_t> ids, Deadline dl, int watch_fd, const std::string& peer) {
    std::vector<uint64_t> missing(ids);
    uint32_t recv_len = 0;
    auto take = [&](const ibv_wc& wc) -> Status {
      if (wc.status != IBV_WC_SUCCESS)
        return Status::Unavailable("verbs: work request " + std::to_string(wc.wr_id) + " to " + peer +
                                              " failed: " + ibv_wc_status_str(wc.status));
      if (wc.wr_id == kRecvId) recv_len = wc.byte_len;
      std::erase(missing, wc.wr_id);
      return {};
    };
    for (;;) {
      ibv_wc wc[8];
      int n;
      while ((n = ibv_poll_cq(cq_, 8, wc)) > 0)
        for (int i = 0; i < n; ++i) STOR_RETURN_IF_ERROR(take(wc[i]));
      if (n < 0) return Status::IoError("verbs: ibv_poll_cq failed");
      if (missing.empty()) return recv_len;
      // Arm the notification, then look once more: a completion may have slipped in between.
      if (int rc = ibv_req_notify_cq(cq_, 0); rc != 0) return verbs_error("ibv_req_notify_cq", rc);
      if ((n = ibv_poll_cq(cq_, 8, wc)) > 0) {
        for (int i = 0; i < n; ++i) STOR_RETURN_IF_ERROR(take(wc[i]));
        continue;
      }
      pollfd fds[2] = {{channel_->fd, POLLIN, 0}, {watch_fd, POLLIN, 0}};
      int ms = -1;
      if (dl != kNoDeadline) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(dl - Clock::now()).count();
        if (left <= 0) return Status::Timeout("verbs: call to " + peer + " timed out");
        ms = left > INT_MAX ? INT_MAX : static_cast<int>(left);
      }
      int rc = ::poll(fds, watch_fd >= 0 ? 2 : 1, ms);
      if (rc < 0 && errno != EINTR) return verbs_error("poll", errno);
      if (rc == 0) return Status::Timeout("verbs: call to " + peer + " timed out");
      if (rc > 0 && watch_fd >= 0 && fds[1].revents)
        return Status::Unavailable("verbs: " + peer + " closed the connection");
      if (rc > 0 && fds[0].revents) {
        ibv_cq* ev_cq = nullptr;
        void* ev_ctx = nullptr;
        if (ibv_get_cq_event(channel_, &ev_cq, &ev_ctx) == 0 && ++unacked_events_ >= 16) {
          ibv_ack_cq_events(cq_, unacked_events_);
          unacked_events_ = 0;
        }
      }
    }
  }

  std::byte* send_ctrl() const { return send_ctrl_->data(); }
  const std::byte* recv_ctrl() const { return recv_ctrl_->data(); }
  std::byte* bulk(int i) const { return bulk_[i]->data(); }

 private:
  QueuePair() = default;
  std::shared_ptr<VerbsDevice> dev_;
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  unsigned unacked_events_ = 0;
  uint32_t psn_ = 0;
  std::unique_ptr<RegisteredBuffer> send_ctrl_, recv_ctrl_;
  std::vector<std::unique_ptr<RegisteredBuffer>> bulk_;
};

// Puts header + control into the send control buffer; returns the message length.
size_t build_message(QueuePair& qp, const FrameHeader& h, std::string_view control) {
  FrameBytes hb = encode_frame_header(h);
  std::memcpy(qp.send_ctrl(), hb.data(), hb.size());
  if (!control.empty()) std::memcpy(qp.send_ctrl() + hb.size(), control.data(), control.size());
  return hb.size() + control.size();
}

// Validates a received control message and returns its header.
Result<FrameHeader> parse_message(const QueuePair& qp, uint32_t len, const std::string& peer) {
  if (len < kFrameHeaderSize)
    return Status::Corruption("verbs: " + std::to_string(len) + "-byte message from " + peer + " is shorter than a frame header");
  FrameBytes hb;
  std::memcpy(hb.data(), qp.recv_ctrl(), hb.size());
  STOR_ASSIGN_OR_RETURN(FrameHeader h, decode_frame_header(hb, peer));
  if (kFrameHeaderSize + h.control_len != len)
    return Status::Corruption("verbs: message length " + std::to_string(len) + " from " + peer +
                                         " disagrees with its header");
  return h;
}

Status exchange_setup(SocketIo& io, int fd, const SetupInfo& mine, SetupInfo& theirs, Deadline dl, bool send_first,
                      const std::string& peer) {
  std::string out = encode_setup(mine), in(kSetupSize, '\0');
  if (send_first) STOR_RETURN_IF_ERROR(io.send_all(fd, out.data(), out.size(), dl));
  STOR_RETURN_IF_ERROR(io.recv_all(fd, in.data(), in.size(), dl));
  // A server refusing us (authentication, connection limit) answers with an error frame instead.
  if (send_first && get_u32(in.data()) == kFrameMagic) {
    Status s = read_error_frame(io, fd, in, dl, peer);
    return Status(s.code(), peer + " closed the connection: " + s.message());
  }
  STOR_ASSIGN_OR_RETURN(theirs, decode_setup(in, peer));
  if (!send_first) STOR_RETURN_IF_ERROR(io.send_all(fd, out.data(), out.size(), dl));
  return {};
}

class VerbsChannel final : public Channel {
 public:
  VerbsChannel(int side_fd, std::unique_ptr<QueuePair> qp, uint64_t max_payload, std::string peer, TransportOptions opts)
      : side_fd_(side_fd), qp_(std::move(qp)), max_payload_(max_payload), peer_(std::move(peer)), opts_(opts) {}
  ~VerbsChannel() override {
    qp_.reset();
    ::close(side_fd_);
  }

  Result<Reply> call(uint16_t opcode, std::string_view control, std::span<const std::byte> payload,
                     std::span<std::byte> reply_payload) override {
    if (broken_) return Status::Unavailable("verbs: connection to " + peer_ + " failed earlier");
    if (control.size() > kMaxControlBytes || payload.size() > max_payload_ || reply_payload.size() > max_payload_)
      return Status::InvalidArgument("verbs: call to " + peer_ + " exceeds the frame limits");
    Deadline dl = deadline_after(opts_.timeout);
    broken_ = true;  // until the reply arrived intact
    if (!payload.empty()) std::memcpy(qp_->bulk(0), payload.data(), payload.size());
    FrameHeader h;
    h.opcode = opcode;
    h.request_id = ++next_request_id_;
    h.control_len = static_cast<uint32_t>(control.size());
    h.payload_len = payload.size();
    h.reply_capacity = reply_payload.size();
    STOR_RETURN_IF_ERROR(qp_->post_recv());
    STOR_RETURN_IF_ERROR(qp_->post_send(build_message(*qp_, h, control)));
    STOR_ASSIGN_OR_RETURN(uint32_t len, qp_->wait({kSendId, kRecvId}, dl, side_fd_, peer_));
    STOR_ASSIGN_OR_RETURN(FrameHeader rh, parse_message(*qp_, len, peer_));
    std::string text(reinterpret_cast<const char*>(qp_->recv_ctrl()) + kFrameHeaderSize, rh.control_len);
    if ((rh.flags & kFrameReply) && rh.request_id == 0 && rh.status != 0)  // the server rejected our frame
      return Status(static_cast<Code>(rh.status), peer_ + " closed the connection: " + text);
    if (!(rh.flags & kFrameReply) || rh.opcode != opcode || rh.request_id != h.request_id ||
        rh.payload_len > reply_payload.size() || (rh.status != 0 && rh.payload_len != 0))
      return Status::Corruption("verbs: reply from " + peer_ + " does not match the request");
    broken_ = false;
    if (rh.status != 0) return Status(static_cast<Code>(rh.status), peer_ + ": " + text);
    if (rh.payload_len) std::memcpy(reply_payload.data(), qp_->bulk(0), rh.payload_len);
    return Reply{std::move(text), rh.payload_len};
  }

  uint64_t max_payload() const override { return max_payload_; }
  bool broken() const override { return broken_; }
  bool peer_closed() const override {
    // The side channel carries nothing after set-up: readable means the server hung up.
    pollfd p{side_fd_, POLLIN | POLLRDHUP, 0};
    return ::poll(&p, 1, 0) != 0;
  }
  const std::string& peer() const override { return peer_; }

 private:
  int side_fd_;
  std::unique_ptr<QueuePair> qp_;
  uint64_t max_payload_;
  std::string peer_;
  TransportOptions opts_;
  uint64_t next_request_id_ = 0;
  bool broken_ = false;
};

// Serves one verbs connection whose side channel is fd.
void serve_verbs_connection(int fd, ConnectionState& state, const std::shared_ptr<VerbsDevice>& dev,
                            const Handler& handler, const TransportOptions& opts, RateLimitedLog& auth_log) {
  auto io = SocketIo::create(opts.io_uring);
  std::string peer = "verbs client fd " + std::to_string(fd);
  ServedConnection served(opts);
  // The same handshake as TCP, on the side channel, before any QP is made: an unauthenticated
  // client never gets a queue pair, let alone the chance to post a request.
  if (opts.auth_key && !authenticate_connection(*io, fd, state, *opts.auth_key, opts, auth_log)) return;
  // The set-up message counts as a request header: idle timeout, evictable until it arrived.
  std::string in(kSetupSize, '\0');
  if (!io->recv_all(fd, in.data(), in.size(), deadline_after(opts.idle_timeout)).is_ok()) return;
  if (!state.begin_request()) return;
  Deadline setup_dl = deadline_after(opts.timeout);
  auto remote = decode_setup(in, peer);
  if (!remote) return;
  uint64_t bulk = std::min<uint64_t>(opts.max_payload, kMaxPayloadLimit);
  auto qp = QueuePair::create(dev, bulk, /*in and out*/ 2);
  if (!qp) return;
  QueuePair& q = **qp;
  // Receives can only be posted once the QP left RESET; the client sends nothing before it got
  // our answer below, so this receive is in place in time.
  if (!q.connect(*remote).is_ok() || !q.post_recv().is_ok()) return;
  std::string out = encode_setup(q.local_info(-1, bulk));
  if (!io->send_all(fd, out.data(), out.size(), setup_dl).is_ok()) return;
  uint64_t limit = std::min(bulk, remote->bulk_len);

  for (;;) {
    state.idle();
    auto len = q.wait({kRecvId}, deadline_after(opts.idle_timeout), fd, peer);
    if (!len) return;
    if (!state.begin_request()) return;  // evicted meanwhile
    Deadline dl = deadline_after(opts.timeout);
    auto h = parse_message(q, *len, peer);
    FrameHeader reply;
    reply.flags = kFrameReply;
    ServerResult result;
    uint64_t capacity = 0;  // reply bulk bytes the handler may return
    bool fatal = false;
    if (!h) {
      result.status = h.status();
      fatal = true;
    } else if ((h->flags & kFrameReply) || h->payload_len > limit) {
      result.status = Status::Corruption("verbs: request frame is a reply or exceeds the bulk buffer");
      fatal = true;
    } else {
      reply.opcode = h->opcode;
      reply.request_id = h->request_id;
      std::string control(reinterpret_cast<const char*>(q.recv_ctrl()) + kFrameHeaderSize, h->control_len);
      if (h->payload_len) {
        if (!q.post_rdma(IBV_WR_RDMA_READ, 0, remote->bulk_addr, remote->bulk_rkey, h->payload_len, true, kReadId).is_ok())
          return;
        if (!q.wait({kReadId}, dl, fd, peer)) return;
      }
      capacity = h->reply_capacity;
      result.status = check_reply_capacity(capacity, limit);
      if (result.status.is_ok()) {
        ServerCall call{h->opcode, control, std::span<const std::byte>(q.bulk(0), h->payload_len),
                        std::span<std::byte>(q.bulk(1), capacity), served.use()};
        result = handler(call);
        dl = deadline_after(opts.timeout);  // the handler may wait (stor-mds extent locks)
      }
    }
    finish_result(result, capacity, reply);
    // The next request may follow as soon as the client sees this reply: receive first.
    if (!fatal && !q.post_recv().is_ok()) return;
    if (result.payload_len &&
        !q.post_rdma(IBV_WR_RDMA_WRITE, 1, remote->bulk_addr, remote->bulk_rkey, result.payload_len, false, 0).is_ok())
      return;
    if (!q.post_send(build_message(q, reply, result.control)).is_ok()) return;
    if (!q.wait({kSendId}, dl, fd, peer)) return;
    if (fatal) return;
  }
}


class VerbsTransport final : public Transport {
 public:
  VerbsTransport(std::shared_ptr<VerbsDevice> dev, const TransportOptions& opts) : dev_(std::move(dev)), opts_(opts) {}
  std::string_view kind() const override { return "verbs"; }

  Result<std::unique_ptr<Channel>> connect(const Endpoint& ep) override {
    if (ep.scheme != "verbs") return Status::InvalidArgument("transport: verbs cannot reach " + ep.to_string());
    std::string peer = ep.to_string();
    Deadline dl = deadline_after(opts_.timeout);
    auto io = SocketIo::create(opts_.io_uring);
    STOR_ASSIGN_OR_RETURN(int fd, tcp_connect(*io, ep.host, ep.port, dl, peer));
    if (opts_.auth_key) {
      if (Status s = client_handshake(*io, fd, *opts_.auth_key, dl, peer); !s.is_ok()) {
        ::close(fd);
        return s;
      }
    }
    uint64_t bulk = std::min<uint64_t>(opts_.max_payload, kMaxPayloadLimit);
    auto qp = QueuePair::create(dev_, bulk, 1);
    if (!qp) {
      ::close(fd);
      return qp.status();
    }
    SetupInfo theirs;
    Status s = exchange_setup(*io, fd, (*qp)->local_info(0, bulk), theirs, dl, /*send_first=*/true, peer);
    if (s.is_ok()) s = (*qp)->connect(theirs);
    if (!s.is_ok()) {
      ::close(fd);
      return s.with_suffix(" (" + peer + ")");
    }
    return std::unique_ptr<Channel>(
        std::make_unique<VerbsChannel>(fd, std::move(*qp), std::min(bulk, theirs.bulk_len), peer, opts_));
  }

  Result<std::unique_ptr<Listener>> listen(const Endpoint& ep, Handler handler) override {
    if (ep.scheme != "verbs") return Status::InvalidArgument("transport: verbs cannot listen on " + ep.to_string());
    auto opts = opts_;
    auto auth_log = std::make_shared<RateLimitedLog>(opts_.log);
    // A refused verbs client is just hung up on: its side channel expects a set-up message.
    STOR_ASSIGN_OR_RETURN(auto acceptor, Acceptor::start(ep, opts_, [dev = dev_, handler = std::move(handler), opts,
                                                                     auth_log](int fd, ConnectionState& state) {
                            serve_verbs_connection(fd, state, dev, handler, opts, *auth_log);
                          }));
    Endpoint bound = ep;
    bound.port = acceptor->port();
    return std::unique_ptr<Listener>(std::make_unique<AcceptorListener>(std::move(acceptor), bound.to_string()));
  }

 private:
  std::shared_ptr<VerbsDevice> dev_;
  TransportOptions opts_;
};

}  // namespace

Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportOptions& opts) {
  STOR_ASSIGN_OR_RETURN(auto dev, VerbsDevice::open());
  return std::unique_ptr<Transport>(std::make_unique<VerbsTransport>(std::move(dev), opts));
}

}  // namespace stor::transport

#endif  // STOR_HAVE_RDMA
