// The stor-mds request path (backends/lustre/remote_mds.cc MdsService, behind the transport
// Listener mds_server.cc sets up): every input runs against a fresh file system made by mkfs,
// and whatever the requests did, the metadata they leave must mount again.
//
// First byte:
//   bit 0 clear: the rest is records `u16 length | bytes`, each one request's control bytes (an
//                encoded pb::MdsRequest as a client sends it, or anything else);
//         set:   the rest drives a FuzzedDataProvider that builds requests field by field
//                (paths from a small tree, handles and inode numbers from earlier OPEN replies,
//                resends of earlier (client, xid) pairs), encoded and sent the same way, so the
//                handle, reply-cache and rename paths are reached.
//   bit 1: no root squash (uid 0 acts as root).
//   bit 2: reply capacity from the input (0..2047 bytes) instead of the MDS's 1 MiB.
//   bit 3: over TCP: frames to a Listener with an authentication key (as stor-mds), from a
//          client that authenticated (a raw record with bit 7 of its first byte set starts with
//          the opcode, u16); else straight to MdsService::handle.

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/stubs/logging.h>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/remote_mds.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/lustre_walk.h"
#include "net/auth.h"
#include "net/transport.h"

using namespace stor;
using namespace stor::lustre;
namespace fsys = std::filesystem;

namespace {

constexpr auto kTimeout = std::chrono::milliseconds(2000);
constexpr size_t kMaxRequests = 64;

// mkfs's output, copied for every input (mkfs fsyncs; a copy on /dev/shm does not).
const std::string& template_root() {
  static const std::string root = [] {
    std::string r = stor::fuzz::scratch_dir() + "/template";
    MkfsOptions o;
    o.targets = 4;
    if (Status s = mkfs(r, o); !s.is_ok()) stor::fuzz::fail("mkfs: " + s.to_string());
    return r;
  }();
  return root;
}

std::string fresh_root() {
  const std::string root = stor::fuzz::scratch_dir() + "/fs";
  std::error_code ec;
  fsys::remove_all(root, ec);
  fsys::copy(template_root(), root, fsys::copy_options::recursive, ec);
  if (ec) stor::fuzz::fail("copy of the mkfs template: " + ec.message());
  return root;
}

// The transports of the network mode, authenticating with one key, for the whole process.
struct Net {
  std::unique_ptr<transport::Transport> server, client;
};

Net& net() {
  static Net* n = [] {
    auto* me = new Net();
    auto key = transport::AuthKey::generate();
    if (!key.is_ok()) stor::fuzz::fail("key: " + key.status().to_string());
    transport::TransportOptions to;
    to.timeout = kTimeout;
    to.auth_key = std::make_shared<const transport::AuthKey>(*key);
    to.max_payload = kMdsReplyCapacity;  // as stor-mds
    auto st = transport::Transport::create("tcp", to);
    auto ct = transport::Transport::create("tcp", to);
    if (!st.is_ok() || !ct.is_ok()) stor::fuzz::fail("transport");
    me->server = std::move(*st);
    me->client = std::move(*ct);
    return me;
  }();
  return *n;
}

// What came back for one request, checked for what any reply must satisfy.
struct Outcome {
  bool ok = false;
  pb::MdsReply reply;
};

class Session {
 public:
  Session(MdsService& svc, bool network, bool small_replies)
      : svc_(svc), network_(network), small_(small_replies) {
    if (!network_) return;
    // A Listener per input: stopping it waits for its connection thread, so nothing of this
    // input is still running (or allocated) when the next one starts.
    auto l = net().server->listen("tcp://127.0.0.1:0", [this](const transport::ServerCall& c) { return svc_.handle(c); });
    if (!l.is_ok()) stor::fuzz::fail("listen: " + l.status().to_string());
    listener_ = std::move(*l);
    auto ch = net().client->connect(listener_->endpoint());
    if (ch.is_ok()) channel_ = std::move(*ch);
  }
  ~Session() {
    channel_.reset();  // hang up
    if (listener_) listener_->stop();
  }

  Outcome send(uint16_t opcode, std::string_view control, size_t capacity) {
    Outcome out;
    // The full-size buffer is allocated once (zeroing 1 MiB per request was most of the time); a
    // small one exactly, so ASan sees a write past the capacity the caller gave.
    static std::vector<std::byte> full(kMdsReplyCapacity);
    std::vector<std::byte> small;
    std::span<std::byte> buf(full);
    if (small_) {
      small.resize(capacity);
      buf = small;
    }
    Status status;
    size_t len = 0;
    if (network_) {
      if (!channel_ || channel_->broken()) return out;
      auto r = channel_->call(opcode, control, {}, buf);
      if (r.is_ok()) {
        STOR_FUZZ_CHECK(r->payload_len <= buf.size(), "reply payload larger than the caller's buffer");
        len = r->payload_len;
      }
      status = r.status();
    } else {
      transport::ServerCall call;
      call.opcode = opcode;
      call.control = control;
      call.reply_buffer = buf;
      transport::ServerResult r = svc_.handle(call);
      if (r.status.is_ok()) {
        STOR_FUZZ_CHECK(r.control.empty(), "an MDS reply with control bytes");
        STOR_FUZZ_CHECK(r.payload_len <= buf.size(), "reply larger than the caller's buffer");
        len = r.payload_len;
      }
      status = r.status;
    }
    if (trace()) {  // MDS_FUZZ_TRACE=1: what each request got (checking seeds reach the code)
      pb::MdsRequest req;
      const bool parsed = req.ParseFromArray(control.data(), static_cast<int>(control.size()));
      std::fprintf(stderr, "mds fuzz: opcode %u op %s path '%s' -> %s\n", opcode,
                   parsed ? pb::MdsRequest::Op_Name(req.op()).c_str() : "(unparsed)", parsed ? req.path().c_str() : "",
                   status.to_string().c_str());
    }
    if (!status.is_ok()) return out;
    STOR_FUZZ_CHECK(out.reply.ParseFromArray(buf.data(), static_cast<int>(len)), "a reply that does not parse");
    out.ok = true;
    return out;
  }
  static bool trace() {
    static const bool on = std::getenv("MDS_FUZZ_TRACE") != nullptr;
    return on;
  }

 private:
  MdsService& svc_;
  const bool network_, small_;
  std::unique_ptr<transport::Listener> listener_;
  std::unique_ptr<transport::Channel> channel_;
};

uint16_t u16_at(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

void raw_records(Session& session, const uint8_t* p, size_t n, bool network) {
  for (size_t count = 0; n >= 2 && count < kMaxRequests; ++count) {
    size_t len = u16_at(p);
    p += 2;
    n -= 2;
    if (len > n) len = n;
    std::string_view control(reinterpret_cast<const char*>(p), len);
    uint16_t opcode = kMdsOpcode;
    size_t capacity = 0;
    // Over TCP the opcode travels in the frame: take it from the record when one is left over.
    if (network && control.size() >= 2 && (control[0] & 0x80)) {
      opcode = u16_at(reinterpret_cast<const uint8_t*>(control.data()));
      control.remove_prefix(2);
    }
    if (!control.empty()) capacity = static_cast<uint8_t>(control.back()) * 8;
    session.send(opcode, control, capacity);
    p += len;
    n -= len;
  }
}

const char* const kNames[] = {"a", "b", "c", "d.bin", "..", ".", "", "x/y", "a\xff", "long"};

std::string fuzz_path(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0: return "/";
    case 1: return in.ConsumeRandomLengthString(64);
    default: {
      std::string p;
      const int depth = in.ConsumeIntegralInRange<int>(1, 3);
      for (int i = 0; i < depth; ++i) {
        std::string n = kNames[in.ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)];
        if (n == "long") n.assign(in.ConsumeIntegralInRange<size_t>(200, 300), 'n');
        p += "/" + n;
      }
      return p;
    }
  }
}

// Mostly layouts the validator accepts (templates: no targets), sometimes anything.
void fuzz_layout(FuzzedDataProvider& in, pb::Layout* l) {
  const bool wild = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  const int n = in.ConsumeIntegralInRange<int>(wild ? 0 : 1, 3);
  uint64_t start = 0;
  for (int i = 0; i < n; ++i) {
    auto* c = l->add_components();
    c->set_extent_start(wild ? in.ConsumeIntegral<uint64_t>() : start);
    start = i + 1 == n || in.ConsumeBool() ? UINT64_MAX : start + (uint64_t{1} << in.ConsumeIntegralInRange<int>(20, 40));
    c->set_extent_end(start);
    c->set_stripe_count(in.ConsumeIntegralInRange<int32_t>(wild ? -3 : -1, wild ? 9 : 4));
    c->set_stripe_size(wild ? in.ConsumeIntegral<uint64_t>() : uint64_t{1} << in.ConsumeIntegralInRange<int>(16, 26));
    c->set_stripe_offset(in.ConsumeIntegralInRange<int32_t>(wild ? -3 : -1, wild ? 9 : 3));
    const int t = wild ? in.ConsumeIntegralInRange<int>(0, 5) : 0;
    for (int k = 0; k < t; ++k) c->add_targets(in.ConsumeIntegralInRange<uint32_t>(0, 5));
    if (start == UINT64_MAX) break;
  }
}

void structured(Session& session, FuzzedDataProvider& in) {
  struct Open {
    uint64_t handle, ino;
  };
  std::vector<Open> opened;
  std::vector<pb::MdsRequest> sent;
  const uint64_t client = in.ConsumeIntegralInRange<uint64_t>(0, 2);
  uint64_t xid = 0;
  for (size_t count = 0; in.remaining_bytes() > 0 && count < kMaxRequests; ++count) {
    pb::MdsRequest req;
    if (!sent.empty() && in.ConsumeIntegralInRange<int>(0, 7) == 0) {
      req = sent[in.ConsumeIntegralInRange<size_t>(0, sent.size() - 1)];  // a resend: same xid
    } else {
      req.set_op(static_cast<pb::MdsRequest::Op>(
          in.ConsumeIntegralInRange<int>(pb::MdsRequest::Op_MIN, pb::MdsRequest::Op_MAX)));
      req.set_client_id(client);
      req.set_xid(++xid);
      req.set_min_inflight_xid(in.ConsumeIntegralInRange<uint64_t>(0, xid));
      req.set_uid(in.PickValueInArray<uint32_t>({0, 0, 1000, 1001, UINT32_MAX}));
      const int gids = in.ConsumeBool() ? 1 : in.ConsumeIntegralInRange<int>(0, kMaxGids + 1);
      for (int i = 0; i < gids; ++i) req.add_gids(in.PickValueInArray<uint32_t>({0, 1000, 1001, 65534}));
      req.set_path(fuzz_path(in));
      if (in.ConsumeBool()) req.set_new_path(fuzz_path(in));
      req.set_flags(in.ConsumeIntegralInRange<uint32_t>(0, 63));
      req.set_mode(in.ConsumeBool() ? 0755 : in.ConsumeIntegralInRange<uint32_t>(0, 010000));
      req.set_owner_uid(in.PickValueInArray<uint32_t>({0, 1000, 1001, UINT32_MAX}));
      req.set_owner_gid(in.PickValueInArray<uint32_t>({0, 1000, 1001, UINT32_MAX}));
      if (!opened.empty() && in.ConsumeBool()) {
        const Open& o = opened[in.ConsumeIntegralInRange<size_t>(0, opened.size() - 1)];
        req.set_handle(in.ConsumeIntegralInRange<int>(0, 7) ? o.handle : o.handle ^ 1);
        req.set_ino(in.ConsumeIntegralInRange<int>(0, 7) ? o.ino : in.ConsumeIntegralInRange<uint64_t>(0, 16));
      } else {
        req.set_handle(in.ConsumeIntegralInRange<uint64_t>(0, 3));
        req.set_ino(in.ConsumeIntegralInRange<uint64_t>(0, 16));
      }
      req.set_has_size(in.ConsumeBool());
      req.set_size(in.ConsumeIntegralInRange<int>(0, 7) ? in.ConsumeIntegralInRange<uint64_t>(0, 1 << 24)
                                                        : in.ConsumeIntegral<uint64_t>());
      if (in.ConsumeIntegralInRange<int>(0, 3) == 0 || req.op() == pb::MdsRequest::SET_LAYOUT)
        fuzz_layout(in, req.mutable_layout());
      if (in.ConsumeIntegralInRange<int>(0, 7) == 0) req.set_after(kNames[in.ConsumeIntegralInRange<size_t>(0, std::size(kNames) - 1)]);
      sent.push_back(req);
    }
    const size_t capacity = in.ConsumeIntegralInRange<size_t>(0, 2047);
    Outcome o = session.send(kMdsOpcode, req.SerializeAsString(), capacity);
    if (o.ok && req.op() == pb::MdsRequest::OPEN && o.reply.handle() != 0)
      opened.push_back({o.reply.handle(), o.reply.attrs().ino()});
  }
}

// Every entry under "/" stats.
void walk(FileSystem& fs) {
  const Identity root_id{0, {0}};
  stor::fuzz::walk_namespace(fs, root_id, [&](const std::string& path) {
    auto st = fs.mds().stat(root_id, path);
    STOR_FUZZ_CHECK(st.is_ok(), "a listed entry does not stat: " + path + ": " + st.status().to_string());
  });
}

}  // namespace

// Protobuf logs every malformed string field it parses; the status returned is what matters.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const bool is_structured = mode & 1, squash = !(mode & 2), small = mode & 4, network = mode & 8;
  const std::string root = fresh_root();
  uint64_t inodes = 0;
  {
    auto fs = FileSystem::mount(root);
    if (!fs.is_ok()) stor::fuzz::fail("mount of a fresh file system: " + fs.status().to_string());
    {
      MdsServiceOptions so;
      so.root_squash = squash;
      so.max_lock_wait = std::chrono::milliseconds(5);  // a conflicting LOCK must not stall the run
      MdsService svc(*fs, so);
      Session session(svc, network, small);
      if (is_structured) {
        FuzzedDataProvider in(data + 1, size - 1);
        structured(session, in);
      } else {
        raw_records(session, data + 1, size - 1, network);
      }
    }  // the session hangs up, the service closes the handles still open
    inodes = (*fs)->mds().inode_count();
  }  // the unmount writes a checkpoint

  // Nothing a client sent may leave metadata that does not load: it mounts again, every entry
  // it lists stats, and it has the inodes it had.
  auto again = FileSystem::mount(root);
  STOR_FUZZ_CHECK(again.is_ok(), "the metadata the requests left does not mount: " + again.status().to_string());
  walk(**again);
  STOR_FUZZ_CHECK((*again)->mds().inode_count() == inodes,
                  "inode count changed across a clean remount: " + std::to_string(inodes) + " -> " +
                      std::to_string((*again)->mds().inode_count()));
  return 0;
}
