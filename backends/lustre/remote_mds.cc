#include "backends/lustre/remote_mds.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "backends/lustre/layout.h"
#include "net/auth.h"

namespace stor::lustre {

namespace {

constexpr uint32_t kKnownOpenFlags =
    kOpenRead | kOpenWrite | kOpenCreate | kOpenTruncate | kOpenExclusive | kOpenDirect | kOpenAppend;

uint64_t random_u64() {
  uint64_t v = 0;
  while (v == 0) {
    if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v))
      v = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
          (static_cast<uint64_t>(::getpid()) << 40);
  }
  return v;
}

Status check_path(const std::string& p, const char* field) {
  if (p.size() > kMaxPathBytes)
    return Status::InvalidArgument(std::string("lustre mds: ") + field + " longer than " +
                                   std::to_string(kMaxPathBytes) + " bytes");
  if (p.find('\0') != std::string::npos)
    return Status::InvalidArgument(std::string("lustre mds: ") + field + " contains NUL");
  return Status::ok();
}

// Attributes from the wire, checked like attributes from disk.
Result<FileInfo> info_from(const pb::MdsAttrs& a, const std::string& path) {
  if (!pb::InodeType_IsValid(a.type())) return Status::Corruption("lustre mds reply: unknown inode type");
  if (a.mode() & ~07777u) return Status::Corruption("lustre mds reply: mode has bits outside 07777");
  if (a.size() > kMaxFileSize) return Status::Corruption("lustre mds reply: size past 2^63 - 1");
  if (a.type() == pb::DIRECTORY && a.size() != 0) return Status::Corruption("lustre mds reply: sized directory");
  FileInfo fi;
  fi.path = path;
  fi.type = a.type() == pb::DIRECTORY ? FileType::kDirectory : FileType::kRegular;
  fi.size = a.size();
  fi.mode = a.mode();
  fi.uid = a.uid();
  fi.gid = a.gid();
  fi.mtime_ns = a.mtime_ns();
  return fi;
}

void fill_attrs(const FileInfo& fi, uint64_t ino, pb::MdsAttrs* a) {
  a->set_ino(ino);
  a->set_type(fi.type == FileType::kDirectory ? pb::DIRECTORY : pb::REGULAR);
  a->set_mode(fi.mode);
  a->set_uid(fi.uid);
  a->set_gid(fi.gid);
  a->set_size(fi.size);
  a->set_mtime_ns(fi.mtime_ns);
}

// "/.stor-remote/NAME": where a redirect may send a client.
bool is_remote_dir_path(const std::string& p) {
  auto comps = split_path(p);
  return comps && comps->size() == 2 && (*comps)[0] == kRemoteDirName && entry_name_problem((*comps)[1]).empty() &&
         p == "/" + (*comps)[0] + "/" + (*comps)[1];
}

void set_identity(pb::MdsRequest& req, const Identity& id) {
  req.set_uid(id.uid);
  for (size_t i = 0; i < id.gids.size() && i < static_cast<size_t>(kMaxGids); ++i) req.add_gids(id.gids[i]);
}

}  // namespace

Status validate_mds_request(const pb::MdsRequest& req, uint32_t target_count) {
  if (!pb::MdsRequest::Op_IsValid(req.op()))
    return Status::InvalidArgument("lustre mds: unknown operation " + std::to_string(req.op()));
  if (req.gids_size() > kMaxGids)
    return Status::InvalidArgument("lustre mds: more than " + std::to_string(kMaxGids) + " groups");
  STOR_RETURN_IF_ERROR(check_path(req.path(), "path"));
  STOR_RETURN_IF_ERROR(check_path(req.new_path(), "new_path"));
  if (!req.after().empty() && !entry_name_problem(req.after()).empty())
    return Status::InvalidArgument("lustre mds: readdir cookie is not a name");
  if (req.flags() & ~kKnownOpenFlags) return Status::InvalidArgument("lustre mds: unknown open flags");
  if (req.size() > kMaxFileSize) return Status::InvalidArgument("lustre mds: size past 2^63 - 1 bytes");
  if (req.mode() & ~07777u) return Status::InvalidArgument("lustre mds: mode has bits outside 07777");
  if (req.has_layout()) STOR_RETURN_IF_ERROR(validate_layout(req.layout(), target_count));
  switch (req.op()) {
    case pb::MdsRequest::STAT:
    case pb::MdsRequest::READDIR:
    case pb::MdsRequest::MKDIR:
    case pb::MdsRequest::REMOVE:
    case pb::MdsRequest::CHMOD:
    case pb::MdsRequest::CHOWN:
    case pb::MdsRequest::OPEN:
    case pb::MdsRequest::GET_LAYOUT:
      if (req.path().empty()) return Status::InvalidArgument("lustre mds: no path");
      break;
    case pb::MdsRequest::RENAME:
      if (req.path().empty() || req.new_path().empty()) return Status::InvalidArgument("lustre mds: rename needs two paths");
      break;
    case pb::MdsRequest::SET_LAYOUT:
      if (req.path().empty() || !req.has_layout()) return Status::InvalidArgument("lustre mds: set_layout needs a path and a layout");
      break;
    case pb::MdsRequest::PEER_MKDIR:
    case pb::MdsRequest::PEER_RMDIR:
    case pb::MdsRequest::PEER_UNLINK:
      if (!entry_name_problem(req.path()).empty()) return Status::InvalidArgument("lustre mds: remote entry name");
      break;
    case pb::MdsRequest::PEER_LINK:
      if (req.new_path().empty() || !entry_name_problem(req.remote_name()).empty())
        return Status::InvalidArgument("lustre mds: peer link needs a path and a remote entry name");
      if (!pb::InodeType_IsValid(req.remote_type())) return Status::InvalidArgument("lustre mds: peer link: bad type");
      break;
    case pb::MdsRequest::CLOSE:
    case pb::MdsRequest::MERGE_SIZE:
    case pb::MdsRequest::SET_SIZE:
    case pb::MdsRequest::UNLOCK:
      if (req.handle() == 0 || req.ino() == 0) return Status::InvalidArgument("lustre mds: no open handle");
      break;
    case pb::MdsRequest::REPLAY_OPEN:
      if (req.handle() == 0 || req.ino() == 0) return Status::InvalidArgument("lustre mds: no open handle");
      break;
    case pb::MdsRequest::LOCK:
    case pb::MdsRequest::REPLAY_LOCK:
      if (req.handle() == 0 || req.ino() == 0) return Status::InvalidArgument("lustre mds: no open handle");
      if (req.lock_end() <= req.lock_start() || req.lock_end() > kMaxFileSize)
        return Status::InvalidArgument("lustre mds: extent lock range is empty or past 2^63 - 1");
      if (req.op() == pb::MdsRequest::REPLAY_LOCK && req.lock_id() == 0)
        return Status::InvalidArgument("lustre mds: replayed extent lock without an id");
      break;
    default:
      break;
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Client

MdsConnection::MdsConnection(std::string endpoint, std::unique_ptr<transport::Transport> t,
                             std::chrono::milliseconds rt, std::chrono::milliseconds lock_timeout)
    : endpoint_(std::move(endpoint)),
      transport_(std::move(t)),
      reconnect_timeout_(rt),
      lock_timeout_(lock_timeout),
      client_id_(random_u64()) {}

MdsConnection::~MdsConnection() {
  {
    std::lock_guard lk(reg_mu_);
    stopping_ = true;
  }
  reg_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

Result<std::unique_ptr<MdsConnection>> MdsConnection::connect(const std::string& endpoint,
                                                              std::shared_ptr<const transport::AuthKey> key,
                                                              std::chrono::milliseconds reconnect_timeout,
                                                              std::chrono::milliseconds lock_timeout) {
  transport::TransportOptions topts;
  topts.auth_key = std::move(key);
  topts.max_payload = kMdsReplyCapacity;
  // A LOCK call waits at the MDS up to lock_timeout: the call deadline must outlast it.
  topts.timeout = std::max<std::chrono::milliseconds>(topts.timeout, lock_timeout + std::chrono::seconds(10));
  STOR_ASSIGN_OR_RETURN(auto t, transport::Transport::for_endpoint(endpoint, topts));
  // No connection yet: the first call (GET_CONFIG at mount) connects, and waits for an MDS that
  // is restarting like any other call; a wrong key fails it at once.
  return std::unique_ptr<MdsConnection>(new MdsConnection(endpoint, std::move(t), reconnect_timeout, lock_timeout));
}

Result<std::unique_ptr<MdsConnection::Pooled>> MdsConnection::acquire() {
  {
    std::lock_guard lk(mu_);
    while (!idle_.empty()) {
      auto p = std::move(idle_.back());
      idle_.pop_back();
      if (!p->ch->broken() && !p->ch->peer_closed()) return p;
    }
  }
  auto p = std::make_unique<Pooled>();
  STOR_ASSIGN_OR_RETURN(p->ch, transport_->connect(endpoint_));
  p->buf.resize(kMdsReplyCapacity);
  STOR_RETURN_IF_ERROR(handshake(*p));
  return p;
}

void MdsConnection::release(std::unique_ptr<Pooled> p) {
  if (p->ch->broken()) return;
  std::lock_guard lk(mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(p));
}

void MdsConnection::stamp(pb::MdsRequest& req, uint64_t xid) {
  req.set_client_id(client_id_);
  req.set_xid(xid);
  // The MDS keeps our handles and locks this long after our connections are gone.
  req.set_session_grace_ms(static_cast<uint32_t>(std::min<int64_t>(reconnect_timeout_.count(), UINT32_MAX)));
  std::lock_guard lk(mu_);
  req.set_min_inflight_xid(inflight_.empty() ? xid : std::min(xid, *inflight_.begin()));
}

Result<pb::MdsReply> MdsConnection::call_on(Pooled& p, pb::MdsRequest req) {
  stamp(req, next_xid_.fetch_add(1));
  auto r = p.ch->call(kMdsOpcode, req.SerializeAsString(), {}, p.buf);
  if (!r) return r.status();
  pb::MdsReply rep;
  if (r->payload_len > p.buf.size() || !rep.ParseFromArray(p.buf.data(), static_cast<int>(r->payload_len)))
    return Status::Corruption("lustre: reply of MDS " + endpoint_ + " does not parse");
  return rep;
}

pb::MdsRequest MdsConnection::replay_open_request(const TrackedOpen& o) {
  pb::MdsRequest req;
  req.set_op(pb::MdsRequest::REPLAY_OPEN);
  set_identity(req, o.id);
  req.set_handle(o.handle);
  req.set_ino(o.ino);
  req.set_flags(o.writable ? kOpenWrite : kOpenRead);
  req.set_size(o.size.load());
  req.set_has_size(o.writable && o.dirty.load());
  return req;
}

pb::MdsRequest MdsConnection::replay_lock_request(const TrackedOpen& o, const TrackedLock& l) {
  pb::MdsRequest req;
  req.set_op(pb::MdsRequest::REPLAY_LOCK);
  set_identity(req, o.id);
  req.set_handle(o.handle);
  req.set_ino(o.ino);
  req.set_lock_id(l.id);
  req.set_lock_start(l.start);
  req.set_lock_end(l.end);
  req.set_lock_exclusive(l.exclusive);
  return req;
}

Status MdsConnection::handshake(Pooled& p) {
  pb::MdsRequest hello;
  hello.set_op(pb::MdsRequest::CONNECT);
  STOR_ASSIGN_OR_RETURN(auto rep, call_on(p, std::move(hello)));
  if (rep.server_instance() == 0) return Status::Corruption("lustre mds reply: CONNECT without an instance id");
  p.instance = rep.server_instance();
  std::unique_lock lk(reg_mu_);
  for (;;) {
    if (instance_ == 0) instance_ = p.instance;  // the first MDS this client talks to
    if (p.instance != instance_) {
      // Another MDS process than the one our handles and locks live in: it restarted.
      instance_ = p.instance;
      replay_ = Replay::kNeeded;
    }
    if (replay_ == Replay::kDone) return Status::ok();
    if (replay_ == Replay::kRunning) {  // another connection replays: nothing goes before it
      reg_cv_.wait(lk);
      if (p.instance != instance_)  // this MDS is gone already; the caller reconnects
        return Status::Unavailable("lustre: MDS " + endpoint_ + " restarted again during recovery");
      continue;
    }
    replay_ = Replay::kRunning;
    // A snapshot: tracking calls meanwhile see instance_ changed and replay their item alone.
    struct Item {
      std::shared_ptr<TrackedOpen> open;
      std::vector<TrackedLock> locks;
    };
    std::vector<Item> items;
    for (auto& [h, o] : opens_) {
      Item it{o, {}};
      for (auto& [id, l] : o->locks) it.locks.push_back(l);
      items.push_back(std::move(it));
    }
    lk.unlock();
    // Handles first, each followed by its locks; an error the MDS sends loses that item only.
    Status broken;
    std::vector<std::pair<std::shared_ptr<TrackedOpen>, std::pair<uint64_t, std::string>>> lost;
    for (auto& it : items) {
      auto r = call_on(p, replay_open_request(*it.open));
      if (!r && p.ch->broken()) {
        broken = r.status();
        break;
      }
      if (!r) {
        for (auto& l : it.locks)
          lost.push_back({it.open, {l.id, "its open handle was not replayed: " + r.status().message()}});
        continue;
      }
      for (auto& l : it.locks) {
        auto lr = call_on(p, replay_lock_request(*it.open, l));
        if (!lr && p.ch->broken()) {
          broken = lr.status();
          break;
        }
        if (!lr) lost.push_back({it.open, {l.id, lr.status().message()}});
      }
      if (!broken.is_ok()) break;
    }
    lk.lock();
    if (broken.is_ok()) {
      for (auto& [o, why] : lost) {
        if (o->locks.erase(why.first)) o->lost[why.first] = why.second;
      }
      replays_.fetch_add(1);
    }
    if (instance_ == p.instance) replay_ = broken.is_ok() ? Replay::kDone : Replay::kNeeded;
    reg_cv_.notify_all();
    if (!broken.is_ok()) return broken;
    if (instance_ != p.instance)
      return Status::Unavailable("lustre: MDS " + endpoint_ + " restarted again during recovery");
    return Status::ok();
  }
}

Status MdsConnection::track_open(const std::shared_ptr<TrackedOpen>& open, uint64_t instance) {
  {
    std::lock_guard lk(reg_mu_);
    opens_[open->handle] = open;
    if (!watcher_.joinable()) watcher_ = std::thread([this] { watch(); });
    if (instance == instance_) return Status::ok();
  }
  // Opened by an MDS process that has gone since, after our state was replayed to its successor.
  auto r = call(replay_open_request(*open));
  if (!r) {
    untrack_open(open->handle);
    return r.status().with_context("lustre: the MDS restarted right after the open; reopen the file");
  }
  return Status::ok();
}

void MdsConnection::untrack_open(uint64_t handle) {
  std::lock_guard lk(reg_mu_);
  opens_.erase(handle);
}

Status MdsConnection::track_lock(uint64_t handle, const TrackedLock& lock, uint64_t instance) {
  std::shared_ptr<TrackedOpen> open;
  {
    std::lock_guard lk(reg_mu_);
    auto it = opens_.find(handle);
    if (it == opens_.end()) return Status::ok();  // closed meanwhile: the lock went with it
    open = it->second;
    open->locks[lock.id] = lock;
    if (instance == instance_) return Status::ok();
  }
  // Granted by an MDS process that has gone since, after our state was replayed to its successor.
  auto r = call(replay_lock_request(*open, lock));
  if (!r) {
    std::lock_guard lk(reg_mu_);
    open->locks.erase(lock.id);
    return r.status().with_context("lustre: extent lock granted just before an MDS restart was lost");
  }
  return Status::ok();
}

Status MdsConnection::untrack_lock(uint64_t handle, uint64_t id) {
  std::lock_guard lk(reg_mu_);
  auto it = opens_.find(handle);
  if (it == opens_.end()) return Status::ok();
  it->second->locks.erase(id);
  auto l = it->second->lost.find(id);
  if (l == it->second->lost.end()) return Status::ok();
  Status s = Status::Aborted("lustre: extent lock " + std::to_string(id) + " was lost when MDS " + endpoint_ +
                             " restarted (its bytes were not protected since): " + l->second);
  it->second->lost.erase(l);
  return s;
}

void MdsConnection::watch() {
  // Lustre's pinger, without pings: a dead MDS closes its connections, which the pooled idle
  // channels show at once; then reconnect (and replay) without waiting for the next call.
  constexpr auto kInterval = std::chrono::milliseconds(100);
  std::unique_lock lk(reg_mu_);
  while (!stopping_) {
    reg_cv_.wait_for(lk, kInterval, [&] { return stopping_; });
    if (stopping_ || opens_.empty()) continue;
    lk.unlock();
    bool healthy = false, busy = false;
    {
      std::lock_guard ml(mu_);
      for (auto it = idle_.begin(); it != idle_.end();) {
        if ((*it)->ch->broken() || (*it)->ch->peer_closed()) {
          it = idle_.erase(it);
        } else {
          healthy = true;
          ++it;
        }
      }
      busy = !inflight_.empty();  // calls in flight notice a lost connection themselves
    }
    if (!healthy && !busy) {
      if (auto p = acquire()) release(std::move(*p));
    }
    lk.lock();
  }
}

Result<pb::MdsReply> MdsConnection::call(pb::MdsRequest req, uint64_t* instance) {
  const uint64_t xid = next_xid_.fetch_add(1);
  {
    std::lock_guard lk(mu_);
    inflight_.insert(xid);
  }
  stamp(req, xid);
  struct Done {
    MdsConnection* c;
    uint64_t xid;
    ~Done() {
      std::lock_guard lk(c->mu_);
      c->inflight_.erase(xid);
    }
  } done{this, xid};
  const std::string control = req.SerializeAsString();
  if (control.size() > transport::kMaxControlBytes)
    return Status::InvalidArgument("lustre: metadata request too large");
  const auto deadline = std::chrono::steady_clock::now() + reconnect_timeout_;
  Status last;
  for (int attempt = 0;; ++attempt) {
    auto p = acquire();
    if (p) {
      auto r = (*p)->ch->call(kMdsOpcode, control, {}, (*p)->buf);
      const bool broken = (*p)->ch->broken();
      if (r) {
        pb::MdsReply rep;
        bool ok = r->payload_len <= (*p)->buf.size() &&
                  rep.ParseFromArray((*p)->buf.data(), static_cast<int>(r->payload_len));
        if (instance) *instance = (*p)->instance;
        release(std::move(*p));
        if (!ok) return Status::Corruption("lustre: reply of MDS " + endpoint_ + " does not parse");
        return rep;
      }
      // An error the MDS sent on a healthy connection is the answer; a lost connection (or an
      // MDS too busy to take one) is retried with the same xid.
      // A refused handshake (wrong or missing key) will not become right by retrying.
      if ((!broken && r.status().code() != Code::kUnavailable) || r.status().code() == Code::kPermissionDenied) {
        release(std::move(*p));
        return r.status();
      }
      last = r.status();
    } else {
      // A wrong key, or a CONNECT the MDS refused (not a recovery protocol it speaks), will not
      // become right by retrying.
      const Code code = p.status().code();
      if (code == Code::kPermissionDenied || code == Code::kInvalidArgument || code == Code::kCorruption)
        return p.status();
      last = p.status();
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return Status::Unavailable("lustre: MDS " + endpoint_ + " did not answer within " +
                                 std::to_string(reconnect_timeout_.count()) + " ms (lustre.reconnect_timeout_ms): " +
                                 last.message());
    auto pause = std::chrono::milliseconds(std::min(1000, 20 << std::min(attempt, 6)));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
  }
}

namespace {

class RemoteMetaFile final : public MetaFile {
 public:
  // state: what a restarted MDS is told about this handle (tracked by the connection).
  RemoteMetaFile(std::shared_ptr<MdsConnection> conn, Identity id, uint64_t handle, uint64_t ino, pb::Layout layout,
                 FileInfo attrs, std::shared_ptr<MdsConnection::TrackedOpen> state)
      : conn_(std::move(conn)),
        id_(std::move(id)),
        handle_(handle),
        ino_(ino),
        layout_(std::move(layout)),
        attrs_(std::move(attrs)),
        state_(std::move(state)),
        size_(state_->size),
        dirty_(state_->dirty) {}
  ~RemoteMetaFile() override { (void)close(); }

  uint64_t ino() const override { return ino_; }
  const pb::Layout& layout() const override { return layout_; }
  uint64_t size() const override { return size_.load(); }
  FileInfo info(const std::string& path) const override {
    FileInfo fi = attrs_;
    fi.path = path;
    fi.size = size_.load();
    return fi;
  }
  Status wrote(uint64_t end) override {
    if (end > kMaxFileSize) return Status::InvalidArgument("lustre: file size past 2^63 - 1 bytes");
    uint64_t cur = size_.load();
    while (cur < end && !size_.compare_exchange_weak(cur, end)) {
    }
    dirty_ = true;
    return Status::ok();
  }
  Status set_size(uint64_t size) override {
    pb::MdsRequest req = request(pb::MdsRequest::SET_SIZE);
    req.set_size(size);
    req.set_has_size(true);
    STOR_RETURN_IF_ERROR(conn_->call(std::move(req)).status());
    size_ = size;
    return Status::ok();
  }
  Status sync() override {
    pb::MdsRequest req = request(pb::MdsRequest::MERGE_SIZE);
    const bool dirty = dirty_.exchange(false);
    req.set_has_size(dirty);
    const uint64_t sent = size_.load();
    req.set_size(sent);
    auto r = conn_->call(std::move(req));
    if (!r) {
      if (dirty) dirty_ = true;
      return r.status();
    }
    // Adopt the MDS's merged size (other handles' growth, another client's truncate), unless a
    // write of ours grew the size meanwhile: then the larger one stands.
    uint64_t cur = sent;
    if (r->has_attrs() && !size_.compare_exchange_strong(cur, r->attrs().size())) {
      while (cur < r->attrs().size() && !size_.compare_exchange_weak(cur, r->attrs().size())) {
      }
    }
    return Status::ok();
  }
  void objects_may_exist() override {}  // the MDS assumes objects may exist for client files
  bool others_may_write_past_size() const override { return true; }
  Result<uint64_t> lock(RangeLockMode mode, uint64_t start, uint64_t end, std::chrono::milliseconds timeout) override {
    pb::MdsRequest req = request(pb::MdsRequest::LOCK);
    req.set_lock_start(start);
    req.set_lock_end(end);
    req.set_lock_exclusive(mode == RangeLockMode::kExclusive);
    const auto wait = std::min(timeout, conn_->lock_timeout());
    req.set_lock_wait_ms(static_cast<uint32_t>(std::min<int64_t>(wait.count(), UINT32_MAX)));
    uint64_t instance = 0;
    auto r = conn_->call(std::move(req), &instance);
    if (!r) {
      if (r.status().code() == Code::kTimeout)
        return Status::Timeout(r.status().message() + " (waited " + std::to_string(wait.count()) +
                               " ms; lustre.lock_timeout_ms bounds the wait)");
      return r.status();
    }
    if (r->lock_id() == 0) return Status::Corruption("lustre mds reply: LOCK granted no lock");
    // Replayed to the MDS if it restarts while we hold it.
    STOR_RETURN_IF_ERROR(conn_->track_lock(
        handle_, MdsConnection::TrackedLock{r->lock_id(), mode == RangeLockMode::kExclusive, start, end}, instance));
    return r->lock_id();
  }
  Status unlock(uint64_t id) override {
    pb::MdsRequest req = request(pb::MdsRequest::UNLOCK);
    req.set_lock_id(id);
    Status s = conn_->call(std::move(req)).status();
    Status lost = conn_->untrack_lock(handle_, id);
    return s.is_ok() ? lost : s;
  }
  Status close() override {
    if (closed_.exchange(true)) return Status::ok();
    pb::MdsRequest req = request(pb::MdsRequest::CLOSE);
    req.set_has_size(dirty_.load());
    req.set_size(size_.load());
    Status s = conn_->call(std::move(req)).status();
    conn_->untrack_open(handle_);
    return s;
  }

 private:
  pb::MdsRequest request(pb::MdsRequest::Op op) const {
    pb::MdsRequest req;
    req.set_op(op);
    set_identity(req, id_);
    req.set_handle(handle_);
    req.set_ino(ino_);
    return req;
  }

  const std::shared_ptr<MdsConnection> conn_;
  const Identity id_;
  const uint64_t handle_, ino_;
  const pb::Layout layout_;
  const FileInfo attrs_;
  const std::shared_ptr<MdsConnection::TrackedOpen> state_;
  std::atomic<uint64_t>& size_;  // state_->size
  std::atomic<bool>& dirty_;     // state_->dirty: grown by writes since the last merge
  std::atomic<bool> closed_{false};
};

class RemoteMetadata final : public MetadataClient {
 public:
  RemoteMetadata(std::vector<std::shared_ptr<MdsConnection>> conns, uint32_t target_count, int mkdir_mdt,
                 std::chrono::milliseconds route_ttl)
      : conns_(std::move(conns)), conn_(conns_.at(0)), target_count_(target_count), mkdir_mdt_(mkdir_mdt),
        route_ttl_(route_ttl) {}

  Result<FileInfo> stat(const Identity& id, std::string_view path) override {
    auto req = request(pb::MdsRequest::STAT, id, path);
    STOR_ASSIGN_OR_RETURN(auto rep, call(std::move(req)));
    return info_from(rep.attrs(), std::string(path));
  }

  Result<std::vector<DirEntry>> readdir(const Identity& id, std::string_view path) override {
    std::vector<DirEntry> out;
    std::vector<size_t> remote_files;  // indexes in out
    std::string after;
    for (;;) {
      auto req = request(pb::MdsRequest::READDIR, id, path);
      req.set_after(after);
      STOR_ASSIGN_OR_RETURN(auto rep, call(std::move(req)));
      for (const auto& e : rep.entries()) {
        if (std::string bad = entry_name_problem(e.name()); !bad.empty())
          return Status::Corruption("lustre mds reply: readdir entry: " + bad);
        // Pages come in name order: a name not after the cookie would loop forever.
        if (!after.empty() && e.name() <= after) return Status::Corruption("lustre mds reply: readdir out of order");
        if (!pb::InodeType_IsValid(e.type()) || e.size() > kMaxFileSize)
          return Status::Corruption("lustre mds reply: readdir entry '" + e.name() + "' has bad attributes");
        out.push_back(DirEntry{e.name(), e.type() == pb::DIRECTORY ? FileType::kDirectory : FileType::kRegular,
                               e.size()});
        if (e.remote_file()) remote_files.push_back(out.size() - 1);
        after = e.name();
      }
      if (!rep.more()) break;
      if (rep.entries_size() == 0) return Status::Corruption("lustre mds reply: empty readdir page with more to come");
    }
    // Files renamed here from another MDT: their size is where their inode lives.
    std::string dir(path);
    if (dir.empty() || dir.back() != '/') dir += '/';
    std::vector<bool> gone(out.size(), false);
    for (size_t i : remote_files) {
      auto st = stat(id, dir + out[i].name);
      if (st) out[i].size = st->size;
      else if (st.status().code() == Code::kNotFound) gone[i] = true;  // removed meanwhile
      else return st.status();
    }
    size_t w = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      if (gone[i]) continue;
      if (w != i) out[w] = std::move(out[i]);
      ++w;
    }
    out.resize(w);
    return out;
  }

  Status mkdir(const Identity& id, std::string_view path, uint32_t mode) override {
    auto req = request(pb::MdsRequest::MKDIR, id, path);
    req.set_mode(mode & 07777);
    if (mkdir_mdt_ >= 0) req.set_mkdir_mdt(static_cast<uint32_t>(mkdir_mdt_) + 1);
    return call(std::move(req)).status();
  }
  Status remove(const Identity& id, std::string_view path) override {
    Status s = call(request(pb::MdsRequest::REMOVE, id, path)).status();
    if (s.is_ok()) forget_routes(path);
    return s;
  }
  Status rename(const Identity& id, std::string_view from, std::string_view to) override {
    // Into itself: refused here too, as an MDS sees only its own part of the two paths.
    if (auto f = split_path(from), t = split_path(to); f && t && t->size() > f->size() && !f->empty() &&
                                                          std::equal(f->begin(), f->end(), t->begin()))
      return Status::InvalidArgument("lustre: cannot move '" + std::string(from) + "' into itself ('" +
                                     std::string(to) + "')");
    auto req = request(pb::MdsRequest::RENAME, id, from);
    req.set_new_path(std::string(to));
    Status s = call(std::move(req)).status();
    if (s.is_ok()) forget_routes(from);
    return s;
  }
  Status chmod(const Identity& id, std::string_view path, uint32_t mode) override {
    auto req = request(pb::MdsRequest::CHMOD, id, path);
    req.set_mode(mode & 07777);
    return call(std::move(req)).status();
  }
  Status chown(const Identity& id, std::string_view path, uint32_t uid, uint32_t gid) override {
    auto req = request(pb::MdsRequest::CHOWN, id, path);
    req.set_owner_uid(uid);
    req.set_owner_gid(gid);
    return call(std::move(req)).status();
  }

  Result<OpenedFile> open(const Identity& id, std::string_view path, uint32_t flags, uint32_t mode,
                          const pb::Layout* layout_template) override {
    auto req = request(pb::MdsRequest::OPEN, id, path);
    req.set_flags(flags & kKnownOpenFlags);
    req.set_mode(mode & 07777);
    if (layout_template) {
      *req.mutable_layout() = *layout_template;
    }
    uint32_t mdt = 0;
    uint64_t instance = 0;
    STOR_ASSIGN_OR_RETURN(auto rep, call(std::move(req), &mdt, &instance));
    STOR_ASSIGN_OR_RETURN(FileInfo fi, info_from(rep.attrs(), std::string(path)));
    if (rep.handle() == 0 || rep.attrs().ino() == 0 || fi.type != FileType::kRegular)
      return Status::Corruption("lustre mds reply: open of '" + std::string(path) + "' gave no regular file handle");
    if (Status s = validate_layout(rep.layout(), target_count_, LayoutKind::kResolved); !s)
      return Status::Corruption("lustre mds reply: layout of '" + std::string(path) + "': " + s.message());
    OpenedFile out;
    out.created = rep.created();
    // The handle lives on the MDT that opened it (the one holding the file's directory).
    auto state = std::make_shared<MdsConnection::TrackedOpen>();
    state->handle = rep.handle();
    state->ino = rep.attrs().ino();
    state->writable = (flags & (kOpenWrite | kOpenTruncate)) != 0;
    state->id = id;
    state->size = fi.size;
    // Before the file object exists: a failure here has nothing to close at the MDS (it forgot
    // the handle in a restart).
    STOR_RETURN_IF_ERROR(conns_[mdt]->track_open(state, instance));
    out.file = std::make_unique<RemoteMetaFile>(conns_[mdt], id, rep.handle(), rep.attrs().ino(), rep.layout(), fi,
                                                std::move(state));
    return out;
  }

  Status set_layout(const Identity& id, std::string_view path, const pb::Layout& tmpl) override {
    auto req = request(pb::MdsRequest::SET_LAYOUT, id, path);
    *req.mutable_layout() = tmpl;
    return call(std::move(req)).status();
  }

  Result<LayoutInfo> get_layout(const Identity& id, std::string_view path) override {
    STOR_ASSIGN_OR_RETURN(auto rep, call(request(pb::MdsRequest::GET_LAYOUT, id, path)));
    STOR_ASSIGN_OR_RETURN(FileInfo fi, info_from(rep.attrs(), std::string(path)));
    const bool is_dir = fi.type == FileType::kDirectory;
    if (rep.is_dir() != is_dir) return Status::Corruption("lustre mds reply: layout and attributes disagree");
    if (is_dir ? rep.layout().components_size() > 0 && !validate_layout(rep.layout(), target_count_)
               : !validate_layout(rep.layout(), target_count_, LayoutKind::kResolved))
      return Status::Corruption("lustre mds reply: invalid layout of '" + std::string(path) + "'");
    return LayoutInfo{rep.layout(), is_dir, rep.attrs().ino(), fi.size};
  }

  Result<MetaCounters> statfs() override {
    MetaCounters sum;  // over every MDT
    for (auto& c : conns_) {
      pb::MdsRequest req;
      req.set_op(pb::MdsRequest::STATFS);
      STOR_ASSIGN_OR_RETURN(auto rep, c->call(std::move(req)));
      sum.inodes += rep.inodes();
      sum.wal_bytes += rep.wal_bytes();
      sum.requests += rep.requests();
      sum.per_mdt.emplace_back(rep.inodes(), rep.wal_bytes());
    }
    return sum;
  }

 private:
  static pb::MdsRequest request(pb::MdsRequest::Op op, const Identity& id, std::string_view path) {
    pb::MdsRequest req;
    req.set_op(op);
    set_identity(req, id);
    req.set_path(std::string(path));
    return req;
  }

  // ---- Routing over several MDTs ----
  // A directory that lives on another MDT: its path in the namespace (the cache key) -> the MDT
  // and its path there ("/NAME"). Learnt from redirects; forgotten after route_ttl_ (another
  // client may have renamed or removed it) and when this client renames or removes it.
  struct Route {
    uint32_t mdt = 0;
    std::string path;
    std::chrono::steady_clock::time_point expires;
  };

  // The MDT to send `path` to and the path there: the longest cached prefix (entry: of the
  // parent only, for calls that change the entry in its directory: mkdir, remove, rename).
  std::pair<uint32_t, std::string> route(const std::string& path, bool entry, size_t* prefix_comps,
                                         size_t* remote_comps) {
    *prefix_comps = 0;
    *remote_comps = 0;
    if (conns_.size() < 2) return {0, path};
    auto comps = split_path(path);
    if (!comps || comps->empty()) return {0, path};
    const auto now = std::chrono::steady_clock::now();
    std::shared_lock lk(routes_mu_);
    if (routes_.empty()) return {0, path};
    std::string prefix;
    std::vector<std::string> prefixes;
    for (auto& c : *comps) prefixes.push_back(prefix += "/" + c);
    for (size_t i = prefixes.size() - (entry ? 1 : 0); i-- > 0;) {
      auto it = routes_.find(prefixes[i]);
      if (it == routes_.end() || it->second.expires < now) continue;
      std::string out = it->second.path;
      for (size_t j = i + 1; j < comps->size(); ++j) out += "/" + (*comps)[j];
      *prefix_comps = i + 1;
      *remote_comps = 2;  // "/.stor-remote/NAME"
      return {it->second.mdt, out};
    }
    return {0, path};
  }
  // A redirect for `global` (consumed components of the path as sent, which began with
  // remote_comps components standing for the first prefix_comps of global).
  Status learn(const std::string& global, size_t prefix_comps, size_t remote_comps, const pb::MdsReply& rep) {
    auto comps = split_path(global);
    const size_t consumed = rep.redirect_consumed();
    if (!comps || rep.redirect_mdt() >= conns_.size() || consumed < remote_comps ||
        prefix_comps + consumed - remote_comps > comps->size() || consumed == remote_comps ||
        !is_remote_dir_path(rep.redirect_path()))
      return Status::Corruption("lustre mds reply: bad redirect for '" + global + "'");
    std::string key;
    for (size_t i = 0; i < prefix_comps + consumed - remote_comps; ++i) key += "/" + (*comps)[i];
    std::unique_lock lk(routes_mu_);
    if (routes_.size() > 100000) routes_.clear();
    routes_[key] = Route{rep.redirect_mdt(), rep.redirect_path(), std::chrono::steady_clock::now() + route_ttl_};
    return Status::ok();
  }
  void forget_routes(std::string_view path) {
    if (conns_.size() < 2) return;
    const std::string p(path);
    std::unique_lock lk(routes_mu_);
    for (auto it = routes_.begin(); it != routes_.end();) {
      if (it->first == p || (it->first.size() > p.size() && it->first.compare(0, p.size(), p) == 0 &&
                             it->first[p.size()] == '/'))
        it = routes_.erase(it);
      else
        ++it;
    }
  }

  // Drops the cached route of the first `comps` components of path.
  void forget_route(const std::string& path, size_t comps) {
    auto c = split_path(path);
    if (!c) return;
    std::string key;
    for (size_t i = 0; i < comps && i < c->size(); ++i) key += "/" + (*c)[i];
    std::unique_lock lk(routes_mu_);
    routes_.erase(key);
  }

  // Sends a path request to the MDT holding its directory, following redirects.
  Result<pb::MdsReply> call(pb::MdsRequest req, uint32_t* mdt_out = nullptr, uint64_t* instance = nullptr) {
    const std::string path = req.path(), new_path = req.new_path();
    const bool entry = req.op() == pb::MdsRequest::MKDIR || req.op() == pb::MdsRequest::REMOVE ||
                       req.op() == pb::MdsRequest::RENAME;
    bool stale_retried = false;
    for (int hop = 0; hop < 64; ++hop) {
      size_t pc = 0, rc = 0, npc = 0, nrc = 0;
      auto [mdt, p] = route(path, entry, &pc, &rc);
      req.set_path(p);
      if (!new_path.empty()) {
        auto [nmdt, np] = route(new_path, true, &npc, &nrc);
        // Across MDTs the source's MDT coordinates (docs/lustre.md "Cross-MDT operations").
        req.set_new_mdt(nmdt != mdt ? nmdt + 1 : 0);
        req.set_new_path(np);
      }
      auto answer = conns_[mdt]->call(req, instance);
      if (!answer && answer.status().code() == Code::kNotFound && (pc || npc) && !stale_retried) {
        // A cached route may be stale (another client renamed or removed what it led to):
        // once more from the routes the MDSs give now.
        stale_retried = true;
        if (pc) forget_route(path, pc);
        if (npc) forget_route(new_path, npc);
        continue;
      }
      STOR_ASSIGN_OR_RETURN(auto rep, std::move(answer));
      if (!rep.redirected()) {
        if (mdt_out) *mdt_out = mdt;
        return rep;
      }
      if (rep.redirect_new_path()) STOR_RETURN_IF_ERROR(learn(new_path, npc, nrc, rep));
      else STOR_RETURN_IF_ERROR(learn(path, pc, rc, rep));
    }
    return Status::Corruption("lustre: '" + path + "': more than 64 redirects between MDTs");
  }

  std::vector<std::shared_ptr<MdsConnection>> conns_;
  std::shared_ptr<MdsConnection> conn_;
  const uint32_t target_count_;
  const int mkdir_mdt_;
  const std::chrono::milliseconds route_ttl_;
  std::shared_mutex routes_mu_;
  std::unordered_map<std::string, Route> routes_;
};

}  // namespace

std::unique_ptr<MetadataClient> make_remote_metadata(std::vector<std::shared_ptr<MdsConnection>> conns,
                                                     uint32_t target_count, int mkdir_mdt,
                                                     std::chrono::milliseconds route_ttl) {
  return std::make_unique<RemoteMetadata>(std::move(conns), target_count, mkdir_mdt, route_ttl);
}

// ---------------------------------------------------------------------------------------------
// Server

namespace {
std::atomic<uint64_t> g_handle_seq{1};
}

MdsService::MdsService(std::shared_ptr<FileSystem> fs, MdsServiceOptions opts)
    : fs_(std::move(fs)), mds_(fs_->mds()), opts_(std::move(opts)), instance_(random_u64()) {
  // Clients may still hold handles and locks of the previous process (the marker is left by a
  // crash, or by a clean stop with handles open): they replay them during the window, and new
  // LOCK requests wait for its end (docs/lustre.md "Lock replay").
  if (opts_.recovery_window.count() > 0 && ::access(recovery_marker().c_str(), F_OK) == 0) {
    recovery_end_ = std::chrono::steady_clock::now() + opts_.recovery_window;
    recovering_ = true;
    if (opts_.log)
      opts_.log("recovery: clients may hold open handles and extent locks from before this start; new extent "
                "locks wait " + std::to_string(opts_.recovery_window.count()) + " ms for their replays");
  }
  reaper_ = std::thread([this] { reap_sessions(); });
  mdt_count_ = mdt_count(fs_->superblock());
  if (mdt_count_ < 2) return;
  peers_.resize(mdt_count_);
  redo_peers_.resize(mdt_count_);
  for (uint32_t k = 0; k < mdt_count_; ++k) {
    if (k == opts_.mdt_index) continue;
    const std::string ep = fs_->superblock().mdt_endpoints(static_cast<int>(k));
    // Connections are made on first use: the other MDTs may not be up yet.
    if (auto c = MdsConnection::connect(ep, opts_.peer_key, opts_.peer_timeout)) peers_[k] = std::move(*c);
    if (auto c = MdsConnection::connect(ep, opts_.peer_key, std::chrono::milliseconds(2000))) redo_peers_[k] = std::move(*c);
  }
  // Recovery: cross-MDT operations logged here but not finished before a crash are re-driven in
  // the background (the other MDT may be restarting too); their entries stay invisible (mkdir)
  // or busy (rmdir) until then.
  redo_ = mds_.pending_intents();
  redo_thread_ = std::thread([this] { redo_loop(); });
}

void MdsService::crash_at(const char* point) const {
  if (opts_.crash_point == point) ::raise(SIGKILL);
}

Status MdsService::drive_intent(const RemoteEntry& e, bool recovery) {
  // The MDT that does the other half: the directory's (mkdir, rmdir) or the target's (rename).
  const uint32_t other = e.intent == kIntentMove ? e.to_mdt : e.mdt;
  if (other >= mdt_count_ || other == opts_.mdt_index || e.mdt >= mdt_count_)
    return Status::Corruption("lustre mds: cross-MDT operation on inode " + std::to_string(e.ino) + " names MDT " +
                              std::to_string(other));
  auto& conn = recovery ? redo_peers_[other] : peers_[other];
  if (!conn) return Status::Unavailable("lustre mds: no connection to MDT " + std::to_string(other));
  pb::MdsRequest req;
  req.set_path(e.name);
  if (e.intent == kIntentMove) {
    req.set_op(pb::MdsRequest::PEER_LINK);
    req.clear_path();
    req.set_new_path(e.to_path);
    req.set_remote_mdt(e.mdt);
    req.set_remote_name(e.name);
    req.set_remote_type(e.attrs.type());
    req.set_uid(e.uid);
    req.add_gids(e.gid);
  } else if (e.intent == kIntentMkdir) {
    req.set_op(pb::MdsRequest::PEER_MKDIR);
    req.set_mode(e.attrs.mode());
    req.set_owner_uid(e.attrs.uid());
    req.set_owner_gid(e.attrs.gid());
    if (e.attrs.dir_default().components_size()) *req.mutable_layout() = e.attrs.dir_default();
  } else {
    // A remote file entry (a file renamed across MDTs) goes with its inode and objects.
    req.set_op(e.attrs.type() == pb::REGULAR ? pb::MdsRequest::PEER_UNLINK : pb::MdsRequest::PEER_RMDIR);
  }
  auto answer = conn->call(std::move(req));
  Status peer = answer.status();
  if (peer.code() == Code::kUnavailable || peer.code() == Code::kTimeout) return peer;
  std::optional<Redirect> redirect;
  if (answer && answer->redirected()) {
    // The target path leads through yet another remote directory: undone here, and the client
    // goes on with what it learnt.
    redirect = Redirect{answer->redirect_mdt(), answer->redirect_path(), answer->redirect_consumed(), true};
    peer = Status::Aborted("lustre: rename target continues on MDT " + std::to_string(answer->redirect_mdt()));
  }
  crash_at("peer");
  // Done there: commit. A definite refusal (rmdir of a directory that is not empty, a bad
  // request): undo, and the caller gets the refusal.
  STOR_RETURN_IF_ERROR(mds_.finish_intent(e.ino, peer.is_ok()));
  crash_at("commit");
  if (redirect) Mds::set_redirect(*redirect);
  return peer;
}

Status MdsService::run_intent(const RemoteEntry& e) {
  crash_at("intent");
  Status s = drive_intent(e, false);
  if (s.code() == Code::kUnavailable || s.code() == Code::kTimeout) {  // recovery finishes it
    std::lock_guard lk(redo_mu_);
    redo_.push_back(e);
    redo_cv_.notify_all();
  }
  return s;
}

void MdsService::redo_loop() {
  std::unique_lock lk(redo_mu_);
  for (;;) {
    redo_cv_.wait_for(lk, std::chrono::milliseconds(200), [&] { return redo_stopping_ || !redo_.empty(); });
    if (redo_stopping_) return;
    if (redo_.empty()) continue;
    std::vector<RemoteEntry> batch;
    batch.swap(redo_);
    redo_busy_ = batch.size();
    lk.unlock();
    std::vector<RemoteEntry> again;
    for (auto& e : batch) {
      Status s = drive_intent(e, /*recovery=*/true);
      if (s.code() == Code::kUnavailable || s.code() == Code::kTimeout) again.push_back(std::move(e));
    }
    lk.lock();
    redo_busy_ = 0;
    for (auto& e : again) redo_.push_back(std::move(e));
    redo_cv_.notify_all();
    if (!again.empty()) redo_cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return redo_stopping_; });
  }
}

void MdsService::wait_redo_idle() {
  std::unique_lock lk(redo_mu_);
  redo_cv_.wait_for(lk, opts_.peer_timeout, [&] { return redo_stopping_ || (redo_.empty() && redo_busy_ == 0); });
}

MdsService::~MdsService() {
  {
    std::lock_guard lk(sessions_mu_);
    stopping_ = true;
  }
  sessions_cv_.notify_all();
  reaper_.join();
  {
    std::lock_guard lk(redo_mu_);
    redo_stopping_ = true;
  }
  redo_cv_.notify_all();
  if (redo_thread_.joinable()) redo_thread_.join();
  // No handle open: no client holds anything of this MDS, so the next start needs no window.
  if (open_handles() == 0) ::unlink(recovery_marker().c_str());
  // Handles still open when the daemon stops: their files' objects may go now.
  for (auto& sh : handle_shards_)
    for (auto& [h, handle] : sh.map) mds_.close_file(handle.inode);
}

std::string MdsService::recovery_marker() const { return fs_->mdt_dir() + "/recovery"; }

void MdsService::note_handles_exist() {
  // Once per process, before the first handle is handed out: a crash from here on leaves it.
  std::call_once(marker_once_, [this] {
    int fd = ::open(recovery_marker().c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
    else if (opts_.log) opts_.log("recovery: cannot create " + recovery_marker() + ": " + std::strerror(errno));
  });
}

bool MdsService::recovering() {
  if (!recovering_.load()) return false;
  std::lock_guard lk(recovery_mu_);
  if (std::chrono::steady_clock::now() >= recovery_end_) end_recovery_locked();
  return recovering_.load();
}

void MdsService::end_recovery_locked() {
  if (!recovering_.exchange(false)) return;
  if (opts_.log)
    opts_.log("recovery window closed: " + std::to_string(replayed_handles_.load()) + " open handle(s) and " +
              std::to_string(replayed_locks_.load()) + " extent lock(s) replayed, " +
              std::to_string(refused_replays_.load()) + " replay(s) refused");
}

Status MdsService::wait_recovery(std::chrono::steady_clock::time_point deadline,
                                 const std::function<bool()>* peer_gone) {
  std::unique_lock lk(recovery_mu_);
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (!recovering_.load()) return Status::ok();
    if (now >= recovery_end_) {
      end_recovery_locked();
      return Status::ok();
    }
    if (peer_gone && *peer_gone && (*peer_gone)())
      return Status::Aborted("lustre mds: extent lock request cancelled: the client's connection closed");
    if (now >= deadline)
      return Status::Timeout("extent lock not granted in time: the MDS restarted and waits for its clients to "
                             "replay their locks (recovery window, " +
                             std::to_string(opts_.recovery_window.count()) + " ms)");
    lk.unlock();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
        {ExtentLockQueue::kGonePoll, recovery_end_ - now, deadline - now}));
    lk.lock();
  }
}

Result<pb::MdsReply> MdsService::replay_open(const pb::MdsRequest& req, const Identity& id) {
  const bool write = (req.flags() & kOpenWrite) != 0;
  auto known = [&]() -> Result<bool> {  // replayed before (the replay's connection broke)?
    HandleShard& sh = shard(req.handle());
    std::lock_guard lk(sh.mu);
    auto a = sh.map.find(req.handle());
    if (a == sh.map.end()) return false;
    if (a->second.client_id != req.client_id() || a->second.inode->ino != req.ino())
      return Status::PermissionDenied("lustre mds: replayed open handle belongs to another client");
    return true;
  };
  STOR_ASSIGN_OR_RETURN(bool again, known());
  if (again) return pb::MdsReply();
  note_handles_exist();
  STOR_ASSIGN_OR_RETURN(InodeRef n, mds_.reopen_file(id, req.ino(), write));
  n->may_have_objects = true;
  {
    HandleShard& sh = shard(req.handle());
    std::lock_guard lk(sh.mu);
    if (!sh.map.emplace(req.handle(), Handle{n, req.client_id(), write}).second) {
      mds_.close_file(n);  // a copy of this replay won the race
      return pb::MdsReply();
    }
  }
  replayed_handles_.fetch_add(1);
  // The size its writes reached, not merged yet: what its close would merge.
  if (write && req.has_size()) STOR_RETURN_IF_ERROR(mds_.extend_size(*n, req.size()));
  return pb::MdsReply();
}

Result<pb::MdsReply> MdsService::replay_lock(const pb::MdsRequest& req) {
  STOR_ASSIGN_OR_RETURN(Handle h, own_handle(req));
  if (req.lock_exclusive() && !h.writable)
    return Status::PermissionDenied("lustre mds: an exclusive extent lock needs a handle open for writing");
  const std::string what = "extent lock " + std::to_string(req.lock_id()) + " of bytes [" +
                           std::to_string(req.lock_start()) + ", " + std::to_string(req.lock_end()) + ") of inode " +
                           std::to_string(req.ino()) + ", client " + std::to_string(req.client_id());
  // Held across the insert: the window cannot close (and new requests enter the queues) between
  // the check and the grant.
  std::lock_guard lk(recovery_mu_);
  if (recovering_.load() && std::chrono::steady_clock::now() >= recovery_end_) end_recovery_locked();
  if (!recovering_.load()) {
    refused_replays_.fetch_add(1);
    return Status::Aborted("lustre mds: " + what + " was replayed after the recovery window (" +
                           std::to_string(opts_.recovery_window.count()) +
                           " ms) closed: others may have been granted its bytes; it is lost");
  }
  Status s = h.inode->locks.replay(LockOwner{req.client_id(), req.handle()}, req.lock_id(),
                                   req.lock_exclusive() ? RangeLockMode::kExclusive : RangeLockMode::kShared,
                                   req.lock_start(), req.lock_end());
  if (!s) {
    refused_replays_.fetch_add(1);
    if (opts_.log) opts_.log("recovery: refused replay of " + what + ": " + s.message());
    return s;
  }
  replayed_locks_.fetch_add(1);
  return pb::MdsReply();
}

size_t MdsService::open_handles() const {
  size_t n = 0;
  for (auto& sh : handle_shards_) {
    std::lock_guard lk(sh.mu);
    n += sh.map.size();
  }
  return n;
}

size_t MdsService::granted_locks() const {
  std::vector<InodeRef> inodes;
  for (auto& sh : handle_shards_) {
    std::lock_guard lk(sh.mu);
    for (auto& [h, handle] : sh.map) inodes.push_back(handle.inode);
  }
  std::sort(inodes.begin(), inodes.end());
  inodes.erase(std::unique(inodes.begin(), inodes.end()), inodes.end());
  size_t n = 0;
  for (auto& i : inodes) n += i->locks.granted();
  return n;
}

size_t MdsService::sessions() const {
  std::lock_guard lk(sessions_mu_);
  return sessions_.size();
}

void MdsService::note_connection(uint64_t connection, uint64_t client, uint32_t grace_ms) {
  // Each connection is served by its own thread, so a per-thread memo of the last (connection,
  // client) recorded keeps the common case (every request of a connection) off the mutex.
  struct Seen {
    const MdsService* service = nullptr;
    uint64_t connection = 0, client = 0;
  };
  thread_local Seen seen;
  if (seen.service == this && seen.connection == connection && seen.client == client) return;
  {
    std::lock_guard lk(sessions_mu_);
    Session& sess = sessions_[client];
    if (sess.connections.insert(connection).second) conn_clients_[connection].push_back(client);
    constexpr uint32_t kMaxGraceMs = 3600 * 1000;
    if (grace_ms) sess.grace = std::chrono::milliseconds(std::min(grace_ms, kMaxGraceMs));
  }
  seen = Seen{this, connection, client};
}

void MdsService::connection_closed(uint64_t connection) {
  bool expiring = false;
  {
    std::lock_guard lk(sessions_mu_);
    auto it = conn_clients_.find(connection);
    if (it == conn_clients_.end()) return;
    for (uint64_t client : it->second) {
      auto s = sessions_.find(client);
      if (s == sessions_.end()) continue;
      s->second.connections.erase(connection);
      if (s->second.connections.empty()) {
        s->second.expires = std::chrono::steady_clock::now() + s->second.grace;
        expiring = true;
      }
    }
    conn_clients_.erase(it);
  }
  if (expiring) sessions_cv_.notify_all();
}

void MdsService::reap_sessions() {
  std::unique_lock lk(sessions_mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    std::vector<uint64_t> expired;
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      if (!it->second.connections.empty()) {
        ++it;
      } else if (it->second.expires <= now) {
        expired.push_back(it->first);
        it = sessions_.erase(it);
      } else {
        next = std::min(next, it->second.expires);
        ++it;
      }
    }
    if (!expired.empty()) {
      lk.unlock();
      for (uint64_t client : expired) release_client(client);
      lk.lock();
      continue;
    }
    if (next == std::chrono::steady_clock::time_point::max()) sessions_cv_.wait(lk);
    else sessions_cv_.wait_until(lk, next);
  }
}

void MdsService::release_client(uint64_t client) {
  std::vector<std::pair<uint64_t, Handle>> gone;
  for (auto& sh : handle_shards_) {
    std::lock_guard lk(sh.mu);
    for (auto it = sh.map.begin(); it != sh.map.end();) {
      if (it->second.client_id == client) {
        gone.emplace_back(it->first, std::move(it->second));
        it = sh.map.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [h, handle] : gone) {
    handle.inode->locks.release(LockOwner{client, h});
    mds_.close_file(handle.inode);
  }
}

Identity MdsService::identity_of(const pb::MdsRequest& req) const {
  Identity id;
  if (req.uid() == 0 && opts_.root_squash) {
    id.uid = opts_.squash_uid;
    id.gids = {opts_.squash_gid};
    return id;
  }
  id.uid = req.uid();
  id.gids.assign(req.gids().begin(), req.gids().end());
  return id;
}

transport::ServerResult MdsService::handle(const transport::ServerCall& call) {
  if (call.opcode != kMdsOpcode)
    return {Status::InvalidArgument("lustre mds: unknown opcode " + std::to_string(call.opcode)), {}, 0};
  requests_.fetch_add(1, std::memory_order_relaxed);
  pb::MdsRequest req;
  if (!req.ParseFromArray(call.control.data(), static_cast<int>(call.control.size())))
    return {Status::InvalidArgument("lustre mds: request does not parse"), {}, 0};
  if (Status s = validate_mds_request(req, fs_->target_count()); !s) return {s, {}, 0};
  if (req.client_id() != 0 && call.connection != 0) note_connection(call.connection, req.client_id(), req.session_grace_ms());
  (void)Mds::take_redirect();
  auto rep = run_once(req, identity_of(req), call.reply_buffer.size(), &call.peer_gone);
  if (!rep && rep.status().code() == Code::kAborted) {
    // The path leads through a directory on another MDT: the client goes on there.
    if (auto r = Mds::take_redirect()) {
      rep = pb::MdsReply();
      rep->set_redirected(true);
      rep->set_redirect_mdt(r->mdt);
      rep->set_redirect_path(r->path);
      rep->set_redirect_consumed(r->consumed);
      rep->set_redirect_new_path(r->new_path);
    }
  }
  if (!rep) return {rep.status(), {}, 0};
  const size_t n = rep->ByteSizeLong();
  if (n > call.reply_buffer.size())
    return {Status::InvalidArgument("lustre mds: reply of " + std::to_string(n) + " bytes does not fit the caller's " +
                                    std::to_string(call.reply_buffer.size())),
            {}, 0};
  rep->SerializeToArray(call.reply_buffer.data(), static_cast<int>(n));
  return {Status::ok(), {}, n};
}

Result<pb::MdsReply> MdsService::run_once(const pb::MdsRequest& req, const Identity& id, size_t reply_capacity,
                                          const std::function<bool()>* peer_gone) {
  bool mutation = false;
  switch (req.op()) {
    case pb::MdsRequest::MKDIR:
    case pb::MdsRequest::REMOVE:
    case pb::MdsRequest::RENAME:
    case pb::MdsRequest::CHMOD:
    case pb::MdsRequest::CHOWN:
    case pb::MdsRequest::CLOSE:
    case pb::MdsRequest::MERGE_SIZE:
    case pb::MdsRequest::SET_SIZE:
    case pb::MdsRequest::SET_LAYOUT:
    case pb::MdsRequest::PEER_MKDIR:
    case pb::MdsRequest::PEER_RMDIR:
    case pb::MdsRequest::PEER_LINK:
    case pb::MdsRequest::PEER_UNLINK:
      mutation = true;
      break;
    case pb::MdsRequest::OPEN:
      mutation = (req.flags() & kOpenCreate) != 0;
      break;
    default:
      break;
  }
  if (!mutation || req.client_id() == 0 || req.xid() == 0) return dispatch(req, id, reply_capacity, peer_gone);
  decltype(running_)::accessor running;
  running_.insert(running, {req.client_id(), req.xid()});  // waits while a copy of it runs
  struct Done {
    decltype(running_)& map;
    decltype(running_)::accessor& a;
    ~Done() { map.erase(a); }
  } done{running_, running};
  if (mds_.applied(req.client_id(), req.xid())) {
    // Applied before (the reply was lost, maybe with the MDS): the recorded result, not a
    // second application. An open that created the file opens it now.
    resends_answered_.fetch_add(1);
    // A cross-MDT mkdir / rmdir logged before a crash: recovery finishes it before we answer.
    if (req.op() == pb::MdsRequest::MKDIR || req.op() == pb::MdsRequest::REMOVE || req.op() == pb::MdsRequest::RENAME)
      wait_redo_idle();
    if (req.op() != pb::MdsRequest::OPEN) return pb::MdsReply();
    pb::MdsRequest again = req;
    again.set_flags(req.flags() & ~static_cast<uint32_t>(kOpenCreate | kOpenExclusive | kOpenTruncate));
    STOR_ASSIGN_OR_RETURN(auto rep, dispatch(again, id, reply_capacity));
    rep.set_created(true);
    return rep;
  }
  RequestTag tag{req.client_id(), req.xid(), req.min_inflight_xid()};
  Mds::RequestScope scope(tag);
  auto rep = dispatch(req, id, reply_capacity);
  // Fault injection (tests): die like kill -9 between applying a logged mutation and replying.
  if (opts_.crash_after_mutations && rep && mds_.applied(req.client_id(), req.xid()) &&
      logged_mutations_.fetch_add(1) + 1 == opts_.crash_after_mutations)
    ::raise(SIGKILL);
  return rep;
}

Result<InodeRef> MdsService::handle_inode(const pb::MdsRequest& req, const Identity& id, bool release, bool write) {
  {
    HandleShard& sh = shard(req.handle());
    std::lock_guard lk(sh.mu);
    if (auto a = sh.map.find(req.handle()); a != sh.map.end()) {
      if (a->second.client_id != req.client_id() || a->second.inode->ino != req.ino())
        return Status::PermissionDenied("lustre mds: open handle belongs to another client");
      if (write && !a->second.writable)
        return Status::PermissionDenied("lustre mds: file was not opened for writing");
      InodeRef n = a->second.inode;
      if (release) sh.map.erase(a);
      return n;
    }
  }
  // Not ours (the MDS restarted since the open): by inode number, if the caller may write it.
  return mds_.inode_for_write(id, req.ino());
}

Result<MdsService::Handle> MdsService::own_handle(const pb::MdsRequest& req) const {
  const HandleShard& sh = shard(req.handle());
  std::lock_guard lk(sh.mu);
  auto a = sh.map.find(req.handle());
  if (a == sh.map.end())
    return Status::NotFound("lustre mds: extent locks need an open handle this MDS knows (it restarted, or the "
                            "client's session expired): reopen the file");
  if (a->second.client_id != req.client_id() || a->second.inode->ino != req.ino())
    return Status::PermissionDenied("lustre mds: open handle belongs to another client");
  return a->second;
}

Result<pb::MdsReply> MdsService::lock(const pb::MdsRequest& req, const std::function<bool()>* peer_gone) {
  STOR_ASSIGN_OR_RETURN(Handle h, own_handle(req));
  if (req.lock_exclusive() && !h.writable)
    return Status::PermissionDenied("lustre mds: an exclusive extent lock needs a handle open for writing");
  const LockOwner owner{req.client_id(), req.handle()};
  // The wait holds this connection's thread: bounded whatever the client asks.
  const auto deadline = std::chrono::steady_clock::now() +
                        std::min<std::chrono::milliseconds>(std::chrono::milliseconds(req.lock_wait_ms()),
                                                            opts_.max_lock_wait);
  // After a restart, locks granted before it are replayed first: a new request must not take
  // bytes a client still holds but has not replayed yet.
  if (recovering_.load()) STOR_RETURN_IF_ERROR(wait_recovery(deadline, peer_gone));
  static const std::function<bool()> kNever;
  STOR_ASSIGN_OR_RETURN(uint64_t id, h.inode->locks.lock(owner, req.xid(),
                                                         req.lock_exclusive() ? RangeLockMode::kExclusive
                                                                              : RangeLockMode::kShared,
                                                         req.lock_start(), req.lock_end(), deadline,
                                                         peer_gone ? *peer_gone : kNever));
  // The handle may have closed (or its session expired) while this waited: its locks went with
  // it, and this one must not outlive it.
  if (!own_handle(req)) {
    h.inode->locks.unlock(req.client_id(), id);
    return Status::Aborted("lustre mds: the handle was closed while its extent lock request waited");
  }
  pb::MdsReply rep;
  rep.set_lock_id(id);
  return rep;
}

Result<pb::MdsReply> MdsService::dispatch(const pb::MdsRequest& req, const Identity& id, size_t reply_capacity,
                                          const std::function<bool()>* peer_gone) {
  pb::MdsReply rep;
  if (mdt_count_ < 2 && (req.op() == pb::MdsRequest::PEER_MKDIR || req.op() == pb::MdsRequest::PEER_RMDIR ||
                         req.op() == pb::MdsRequest::PEER_LINK || req.op() == pb::MdsRequest::PEER_UNLINK))
    return Status::InvalidArgument("lustre mds: a request between MDTs, but this file system has one MDT");
  switch (req.op()) {
    case pb::MdsRequest::GET_CONFIG:
      *rep.mutable_config() = fs_->superblock();
      return rep;
    case pb::MdsRequest::STAT: {
      STOR_ASSIGN_OR_RETURN(FileInfo fi, mds_.stat(id, req.path()));
      fill_attrs(fi, 0, rep.mutable_attrs());
      return rep;
    }
    case pb::MdsRequest::READDIR: {
      std::vector<std::string> remote_files;
      STOR_ASSIGN_OR_RETURN(auto entries, mds_.readdir(id, req.path(), &remote_files));
      std::sort(remote_files.begin(), remote_files.end());
      std::sort(entries.begin(), entries.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
      auto it = req.after().empty() ? entries.begin()
                                    : std::upper_bound(entries.begin(), entries.end(), req.after(),
                                                       [](const std::string& n, const DirEntry& e) { return n < e.name; });
      size_t bytes = 64;
      for (; it != entries.end(); ++it) {
        bytes += it->name.size() + 24;  // generous per-entry protobuf overhead
        if (bytes > reply_capacity) break;
        auto* e = rep.add_entries();
        e->set_name(it->name);
        e->set_type(it->type == FileType::kDirectory ? pb::DIRECTORY : pb::REGULAR);
        e->set_size(it->size);
        if (std::binary_search(remote_files.begin(), remote_files.end(), it->name)) e->set_remote_file(true);
      }
      rep.set_more(it != entries.end());
      if (rep.more() && rep.entries_size() == 0) return Status::InvalidArgument("lustre mds: reply buffer too small");
      return rep;
    }
    case pb::MdsRequest::MKDIR: {
      if (mdt_count_ < 2) {
        STOR_RETURN_IF_ERROR(mds_.mkdir(id, req.path(), req.mode()));
        return rep;
      }
      if (req.mkdir_mdt() > mdt_count_)
        return Status::InvalidArgument("lustre mds: there is no MDT " + std::to_string(req.mkdir_mdt() - 1) + " (" +
                                       std::to_string(mdt_count_) + " MDTs)");
      // Placement: the MDT the client asked for, else a hash of (parent, name), so the
      // directories of a tree spread over the MDTs (Lustre DNE's remote directories).
      const uint32_t n = mdt_count_, want = req.mkdir_mdt();
      auto place = [n, want](uint64_t parent, const std::string& name) -> uint32_t {
        if (want) return want - 1;
        return static_cast<uint32_t>((std::hash<std::string>()(name) ^ (parent * 0x9e3779b97f4a7c15ull)) % n);
      };
      RemoteEntry remote;
      STOR_RETURN_IF_ERROR(mds_.mkdir(id, req.path(), req.mode(), place, &remote));
      if (remote.ino == 0) return rep;
      STOR_RETURN_IF_ERROR(run_intent(remote));
      return rep;
    }
    case pb::MdsRequest::REMOVE: {
      RemoteEntry remote;
      STOR_RETURN_IF_ERROR(mds_.remove(id, req.path(), mdt_count_ > 1 ? &remote : nullptr));
      if (remote.ino == 0) return rep;
      STOR_RETURN_IF_ERROR(run_intent(remote));
      return rep;
    }
    case pb::MdsRequest::PEER_MKDIR: {
      pb::Inode attrs;
      attrs.set_mode(req.mode());
      // Root squash holds here too: a peer request cannot make a root-owned directory unless
      // the MDTs let clients be root.
      const bool squash = opts_.root_squash && req.owner_uid() == 0;
      attrs.set_uid(squash ? opts_.squash_uid : req.owner_uid());
      attrs.set_gid(squash ? opts_.squash_gid : req.owner_gid());
      if (req.has_layout()) *attrs.mutable_dir_default() = req.layout();
      STOR_RETURN_IF_ERROR(mds_.peer_mkdir(req.path(), attrs));
      return rep;
    }
    case pb::MdsRequest::PEER_RMDIR:
    case pb::MdsRequest::PEER_UNLINK:
      STOR_RETURN_IF_ERROR(mds_.peer_rmdir(req.path(), req.op() == pb::MdsRequest::PEER_UNLINK));
      return rep;
    case pb::MdsRequest::RENAME: {
      if (req.new_mdt() == 0 || req.new_mdt() - 1 == opts_.mdt_index) {
        STOR_RETURN_IF_ERROR(mds_.rename(id, req.path(), req.new_path()));
        return rep;
      }
      if (req.new_mdt() > mdt_count_)
        return Status::InvalidArgument("lustre mds: there is no MDT " + std::to_string(req.new_mdt() - 1));
      // Across MDTs: the intent here, the new entry there, then the old entry goes (or stays).
      RemoteEntry move;
      STOR_RETURN_IF_ERROR(mds_.begin_move(id, req.path(), req.new_mdt() - 1, req.new_path(), &move));
      STOR_RETURN_IF_ERROR(run_intent(move));
      return rep;
    }
    case pb::MdsRequest::PEER_LINK: {
      if (req.remote_mdt() >= mdt_count_) return Status::InvalidArgument("lustre mds: no such MDT");
      STOR_RETURN_IF_ERROR(mds_.peer_link(id, req.new_path(), req.remote_mdt(), req.remote_name(), req.remote_type()));
      return rep;
    }
    case pb::MdsRequest::CHMOD:
      STOR_RETURN_IF_ERROR(mds_.chmod(id, req.path(), req.mode()));
      return rep;
    case pb::MdsRequest::CHOWN:
      STOR_RETURN_IF_ERROR(mds_.chown(id, req.path(), req.owner_uid(), req.owner_gid()));
      return rep;
    case pb::MdsRequest::OPEN: {
      STOR_ASSIGN_OR_RETURN(auto opened, mds_.open_file(id, req.path(), req.flags(), req.mode(),
                                                        req.has_layout() ? &req.layout() : nullptr));
      // Clients write objects without telling the MDS first: unlink must always look for them.
      opened.inode->may_have_objects = true;
      note_handles_exist();
      const uint64_t h = (random_u64() & ~0xffffffull) | (g_handle_seq.fetch_add(1) & 0xffffff);
      {
        HandleShard& sh = shard(h);
        std::lock_guard lk(sh.mu);
        sh.map[h] = Handle{opened.inode, req.client_id(), (req.flags() & (kOpenWrite | kOpenTruncate)) != 0};
      }
      rep.set_handle(h);
      rep.set_created(opened.created);
      FileInfo fi = opened.inode->regular_file_info(req.path());
      fill_attrs(fi, opened.inode->ino, rep.mutable_attrs());
      std::shared_lock lk(opened.inode->mu);
      *rep.mutable_layout() = opened.inode->layout;
      return rep;
    }
    case pb::MdsRequest::CLOSE: {
      bool ours = false;
      {
        HandleShard& sh = shard(req.handle());
        std::lock_guard lk(sh.mu);
        ours = sh.map.count(req.handle()) != 0;
      }
      auto n = handle_inode(req, id, /*release=*/true, /*write=*/req.has_size());
      if (!n) {
        // Nothing to merge into (the file is gone, or the MDS restarted and the caller may not
        // write it): a close never fails for that.
        if (!ours && !req.has_size()) return rep;
        return n.status();
      }
      Status s = req.has_size() ? mds_.extend_size(**n, req.size()) : Status::ok();
      if (ours) {
        (*n)->locks.release(LockOwner{req.client_id(), req.handle()});
        mds_.close_file(*n);
      }
      STOR_RETURN_IF_ERROR(s);
      return rep;
    }
    case pb::MdsRequest::MERGE_SIZE: {
      STOR_ASSIGN_OR_RETURN(InodeRef n, handle_inode(req, id, false, req.has_size()));
      if (req.has_size()) STOR_RETURN_IF_ERROR(mds_.extend_size(*n, req.size()));
      STOR_RETURN_IF_ERROR(mds_.sync());
      {  // the merged size goes back: the client adopts it (growth and truncates by others)
        std::shared_lock lk(n->mu);
        rep.mutable_attrs()->set_size(n->size);
      }
      return rep;
    }
    case pb::MdsRequest::SET_SIZE: {
      STOR_ASSIGN_OR_RETURN(InodeRef n, handle_inode(req, id, false, true));
      STOR_RETURN_IF_ERROR(mds_.set_size(*n, req.size()));
      return rep;
    }
    case pb::MdsRequest::SET_LAYOUT:
      STOR_RETURN_IF_ERROR(mds_.set_layout(id, req.path(), req.layout()));
      return rep;
    case pb::MdsRequest::GET_LAYOUT: {
      STOR_ASSIGN_OR_RETURN(auto l, mds_.get_layout(id, req.path()));
      STOR_ASSIGN_OR_RETURN(FileInfo fi, mds_.stat(id, req.path()));
      STOR_ASSIGN_OR_RETURN(uint64_t ino, mds_.inode_number(id, req.path()));
      *rep.mutable_layout() = l.first;
      rep.set_is_dir(l.second);
      fill_attrs(fi, ino, rep.mutable_attrs());
      return rep;
    }
    case pb::MdsRequest::LOCK:
      return lock(req, peer_gone);
    case pb::MdsRequest::CONNECT:
      rep.set_server_instance(instance_);
      rep.set_recovering(recovering());
      return rep;
    case pb::MdsRequest::REPLAY_OPEN:
      return replay_open(req, id);
    case pb::MdsRequest::REPLAY_LOCK:
      return replay_lock(req);
    case pb::MdsRequest::UNLOCK: {
      // Unknown handle: closed, expired or from before a restart; its locks went with it.
      auto h = own_handle(req);
      if (h) h->inode->locks.unlock(req.client_id(), req.lock_id());
      else if (h.status().code() != Code::kNotFound) return h.status();
      return rep;
    }
    case pb::MdsRequest::STATFS:
      rep.set_inodes(mds_.inode_count());
      rep.set_wal_bytes(mds_.wal_bytes());
      rep.set_requests(requests_.load(std::memory_order_relaxed));
      return rep;
    default:
      return Status::InvalidArgument("lustre mds: unknown operation");
  }
}

}  // namespace stor::lustre
