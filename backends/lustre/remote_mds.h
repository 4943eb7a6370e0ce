// Cluster mode: the MDS protocol over stor's transport (docs/lustre.md "Cluster mode").
//
// Client: MdsConnection (a pool of authenticated channels to one stor-mds, with request ids,
// reconnect and resend) and MdsClient (the MetadataClient over it). Server: MdsService, the
// request handler a stor-mds puts behind a transport Listener.
//
// Wire: one transport opcode, kMdsOpcode. Request control bytes: a pb::MdsRequest; reply bulk
// payload: a pb::MdsReply; errors travel as the frame's status and message.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <tbb/concurrent_hash_map.h>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre.pb.h"
#include "backends/lustre/metadata.h"
#include "net/transport.h"

namespace stor::lustre {

inline constexpr uint16_t kMdsOpcode = 0x4d31;  // "M1"
inline constexpr size_t kMdsReplyCapacity = 1u << 20;  // reply buffer per call (readdir pages fit it)
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr int kMaxGids = 64;

// Validates what a request carries before any of it is used (server side): op, path lengths
// and names, identity counts, layout. InvalidArgument naming the field.
Status validate_mds_request(const pb::MdsRequest& req, uint32_t target_count);

class MdsConnection {
 public:
  // Connects to endpoint ("tcp://HOST:PORT") with the key (null: no handshake).
  // lock_timeout bounds an extent lock request's wait at the MDS; the transport's call deadline
  // is kept above it.
  static Result<std::unique_ptr<MdsConnection>> connect(const std::string& endpoint,
                                                        std::shared_ptr<const transport::AuthKey> key,
                                                        std::chrono::milliseconds reconnect_timeout,
                                                        std::chrono::milliseconds lock_timeout = std::chrono::seconds(60));
  ~MdsConnection();

  // Numbers the request (client_id, xid), sends it and parses the reply. On a lost connection
  // it reconnects and resends the same request (same xid) until reconnect_timeout has passed
  // without an answer, then fails with Unavailable. Errors the MDS sent come back as is.
  // instance: set to the server instance (MDS process) that answered.
  Result<pb::MdsReply> call(pb::MdsRequest req, uint64_t* instance = nullptr);
  const std::string& endpoint() const { return endpoint_; }
  uint64_t client_id() const { return client_id_; }
  std::chrono::milliseconds lock_timeout() const { return lock_timeout_; }

  // ---- Recovery: what this client replays to a restarted MDS (docs/lustre.md "Lock replay") ----
  // Every new connection starts with CONNECT; when the MDS's instance id differs from the one
  // the client knew, the connection first replays every tracked open handle and its granted
  // locks, and the client's other calls wait for that. A background watcher reconnects as soon
  // as the MDS's connections close while anything is tracked, so a client that holds a lock but
  // makes no call still replays within the recovery window.
  struct TrackedLock {
    uint64_t id = 0;
    bool exclusive = false;
    uint64_t start = 0, end = 0;
  };
  struct TrackedOpen {
    uint64_t handle = 0, ino = 0;
    bool writable = false;
    Identity id;
    std::atomic<uint64_t> size{0};    // what the handle's writes reached
    std::atomic<bool> dirty{false};   // grown since the last merge with the MDS
    // Guarded by the connection's reg_mu_:
    std::map<uint64_t, TrackedLock> locks;
    std::map<uint64_t, std::string> lost;  // lock id -> why its replay failed
  };
  // instance: the MDS instance that answered the OPEN / LOCK. If it is not the one the tracked
  // state was (or is being) replayed to, the item is replayed on its own now; failing that, it
  // is forgotten and the error returned (the lock or handle did not survive the restart).
  Status track_open(const std::shared_ptr<TrackedOpen>& open, uint64_t instance);
  void untrack_open(uint64_t handle);
  Status track_lock(uint64_t handle, const TrackedLock& lock, uint64_t instance);
  // Forgets the lock; Aborted when it had been lost in a restart (its bytes were not protected
  // since), naming why.
  Status untrack_lock(uint64_t handle, uint64_t id);
  // Restarts of the MDS seen and replayed to (tests, stats).
  uint64_t replays() const { return replays_.load(); }

 private:
  MdsConnection(std::string endpoint, std::unique_ptr<transport::Transport> t, std::chrono::milliseconds rt,
                std::chrono::milliseconds lock_timeout);
  struct Pooled {
    std::unique_ptr<transport::Channel> ch;
    std::vector<std::byte> buf;
    uint64_t instance = 0;  // the MDS process on the other end (CONNECT)
  };
  Result<std::unique_ptr<Pooled>> acquire();
  void release(std::unique_ptr<Pooled> p);
  // Numbers a request of this client (client_id, a fresh xid, grace).
  void stamp(pb::MdsRequest& req, uint64_t xid);
  // CONNECT on a new channel, then the replay if the MDS restarted. A failure leaves the
  // channel unusable (the caller reconnects).
  Status handshake(Pooled& p);
  Result<pb::MdsReply> call_on(Pooled& p, pb::MdsRequest req);
  pb::MdsRequest replay_open_request(const TrackedOpen& o);
  pb::MdsRequest replay_lock_request(const TrackedOpen& o, const TrackedLock& l);
  void watch();  // the watcher thread

  const std::string endpoint_;
  std::unique_ptr<transport::Transport> transport_;
  const std::chrono::milliseconds reconnect_timeout_;
  const std::chrono::milliseconds lock_timeout_;
  uint64_t client_id_ = 0;
  std::atomic<uint64_t> next_xid_{1};
  std::mutex mu_;
  std::vector<std::unique_ptr<Pooled>> idle_;
  std::set<uint64_t> inflight_;  // xids sent and not answered yet (min_inflight_xid)

  // Recovery state, guarded by reg_mu_.
  enum class Replay { kDone, kNeeded, kRunning };
  std::mutex reg_mu_;
  std::condition_variable reg_cv_;
  std::unordered_map<uint64_t, std::shared_ptr<TrackedOpen>> opens_;  // by handle
  uint64_t instance_ = 0;  // the MDS instance the tracked state was (or is being) replayed to
  Replay replay_ = Replay::kDone;
  bool stopping_ = false;
  std::thread watcher_;  // started with the first tracked handle
  std::atomic<uint64_t> replays_{0};
};

// The MetadataClient of a cluster mount: one connection per MDT (MDT 0 first). Requests go to
// the MDT holding the directory they name (learnt from redirects, cached for route_ttl);
// mkdir_mdt >= 0 places new directories on that MDT.
std::unique_ptr<MetadataClient> make_remote_metadata(std::vector<std::shared_ptr<MdsConnection>> conns,
                                                     uint32_t target_count, int mkdir_mdt = -1,
                                                     std::chrono::milliseconds route_ttl = std::chrono::milliseconds(1000));

struct MdsServiceOptions {
  bool root_squash = true;  // uid 0 becomes squash_uid/squash_gid (Lustre's nodemap root squash)
  uint32_t squash_uid = 65534;
  uint32_t squash_gid = 65534;
  // Fault injection for recovery tests (as Lustre's fail_loc): > 0: the process kills itself
  // with SIGKILL right after applying (and logging) this many client mutations, before the
  // last one's reply is sent.
  uint64_t crash_after_mutations = 0;
  // The longest a LOCK request may wait to be granted, whatever it asks (it holds its
  // connection's thread meanwhile).
  std::chrono::milliseconds max_lock_wait{std::chrono::hours(1)};
  // Several MDTs: the MDT this service is (the superblock's mdt_endpoints name the others), the
  // key it authenticates to them with, and how long a call to another MDT keeps retrying.
  uint32_t mdt_index = 0;
  std::shared_ptr<const transport::AuthKey> peer_key;
  std::chrono::milliseconds peer_timeout{60000};
  // Fault injection for the cross-MDT protocol: SIGKILL at this step of a cross-MDT mkdir or
  // rmdir coordinated here: "intent" (logged, other MDT not asked), "peer" (the other MDT did
  // its part, not committed here), "commit" (committed, not replied).
  std::string crash_point;
  // Recovery (docs/lustre.md "Lock replay"): after a start that may have left clients holding
  // open handles and extent locks here (a crash, or a clean stop with handles open), new LOCK
  // requests wait this long while clients replay what they held.
  std::chrono::milliseconds recovery_window{5000};
  std::function<void(const std::string&)> log;  // recovery events, refused replays
};

// The request handler of a stor-mds: thread-safe (connections call it concurrently; the Mds
// locks per inode). fs is an embedded mount of the file system's root.
//
// Client sessions: every request names its client (client_id, one per client mount) and comes
// over some connection. While a client has at least one connection open, its open handles and
// extent locks stay; once its last connection closed (the process died, or the network broke),
// they are released after the grace period the client asked for (session_grace_ms, its
// lustre.reconnect_timeout_ms), unless it reconnected meanwhile. Locks are granted per inode
// (Inode::locks) and handles live in sharded tables: no lock common to unrelated files.
class MdsService {
 public:
  MdsService(std::shared_ptr<FileSystem> fs, MdsServiceOptions opts);
  ~MdsService();
  // Cross-MDT operations still to finish (recovery re-drives them in the background).
  size_t pending_intents() const {
    std::lock_guard lk(redo_mu_);
    return redo_.size() + redo_busy_;
  }
  transport::ServerResult handle(const transport::ServerCall& call);
  // The transport reports the end of each connection here (TransportOptions::on_connection_closed).
  void connection_closed(uint64_t connection);
  // Number of open handles (tests, stats).
  size_t open_handles() const;
  // Extent locks granted now, over all open handles (stats).
  size_t granted_locks() const;
  // Clients with at least one connection or within their grace period (stats).
  size_t sessions() const;
  // Resent mutations answered from the reply cache instead of running again.
  uint64_t resends_answered() const { return resends_answered_.load(); }
  // Recovery: this process's instance id (CONNECT), whether the window is still open, and
  // what clients replayed into it.
  uint64_t instance() const { return instance_; }
  bool recovering();
  uint64_t replayed_handles() const { return replayed_handles_.load(); }
  uint64_t replayed_locks() const { return replayed_locks_.load(); }
  uint64_t refused_replays() const { return refused_replays_.load(); }

 private:
  struct Handle {
    InodeRef inode;
    uint64_t client_id = 0;
    bool writable = false;
  };
  // peer_gone: the transport's probe of the caller's connection (null: cannot tell).
  Result<pb::MdsReply> dispatch(const pb::MdsRequest& req, const Identity& id, size_t reply_capacity,
                                const std::function<bool()>* peer_gone = nullptr);
  // A mutation: at most once per (client, xid), also across MDS restarts (Mds reply cache).
  Result<pb::MdsReply> run_once(const pb::MdsRequest& req, const Identity& id, size_t reply_capacity,
                                const std::function<bool()>* peer_gone = nullptr);
  struct PairHash {
    static size_t hash(const std::pair<uint64_t, uint64_t>& k) { return std::hash<uint64_t>()(k.first * 0x9e3779b97f4a7c15ull ^ k.second); }
    static bool equal(const std::pair<uint64_t, uint64_t>& a, const std::pair<uint64_t, uint64_t>& b) { return a == b; }
  };
  // (client, xid) of mutations running now: a resend arriving meanwhile waits for the original.
  tbb::concurrent_hash_map<std::pair<uint64_t, uint64_t>, bool, PairHash> running_;
  std::atomic<uint64_t> resends_answered_{0};
  std::atomic<uint64_t> logged_mutations_{0};
  std::atomic<uint64_t> requests_{0};  // relaxed; reported by STATFS
  // The inode of the open handle req names; write: the handle must be open for writing.
  Result<InodeRef> handle_inode(const pb::MdsRequest& req, const Identity& id, bool release, bool write);
  // The handle req names if this MDS opened it for req's client (NotFound otherwise).
  Result<Handle> own_handle(const pb::MdsRequest& req) const;
  Result<pb::MdsReply> lock(const pb::MdsRequest& req, const std::function<bool()>* peer_gone);
  Result<pb::MdsReply> replay_open(const pb::MdsRequest& req, const Identity& id);
  Result<pb::MdsReply> replay_lock(const pb::MdsRequest& req);
  // A new LOCK waits here while the recovery window is open (Timeout at deadline, Aborted when
  // its client hung up).
  Status wait_recovery(std::chrono::steady_clock::time_point deadline, const std::function<bool()>* peer_gone);
  void end_recovery_locked();  // caller holds recovery_mu_
  // MDT_DIR/recovery exists while clients may hold handles of this MDS (docs/lustre.md).
  std::string recovery_marker() const;
  void note_handles_exist();
  Identity identity_of(const pb::MdsRequest& req) const;

  // Sessions: the client's connection is recorded once per (connection, client).
  void note_connection(uint64_t connection, uint64_t client, uint32_t grace_ms);
  // Releases every handle (and its locks) of a client whose session expired.
  void release_client(uint64_t client);
  void reap_sessions();

  std::shared_ptr<FileSystem> fs_;
  Mds& mds_;
  const MdsServiceOptions opts_;

  // ---- Recovery (lock replay) ----
  const uint64_t instance_;
  std::atomic<bool> recovering_{false};  // the window is open (also read without the mutex)
  std::mutex recovery_mu_;               // window end vs. replays entering the lock queues
  std::chrono::steady_clock::time_point recovery_end_{};
  std::once_flag marker_once_;
  std::atomic<uint64_t> replayed_handles_{0}, replayed_locks_{0}, refused_replays_{0};

  // ---- Several MDTs ----
  uint32_t mdt_count_ = 1;
  std::vector<std::shared_ptr<MdsConnection>> peers_;       // by MDT index (null: this one)
  std::vector<std::shared_ptr<MdsConnection>> redo_peers_;  // the same, short retries (recovery)
  // Asks the MDT of `e` to do its part, then commits or undoes here. Unavailable: the other
  // MDT did not answer in time; the intent stays and recovery finishes it.
  Status drive_intent(const RemoteEntry& e, bool recovery);
  // A cross-MDT operation whose intent was just logged: drives it; one the other MDT does not
  // answer in time goes to recovery.
  Status run_intent(const RemoteEntry& e);
  void crash_at(const char* point) const;
  void redo_loop();
  void wait_redo_idle();
  mutable std::mutex redo_mu_;
  std::condition_variable redo_cv_;
  std::vector<RemoteEntry> redo_;
  size_t redo_busy_ = 0;
  bool redo_stopping_ = false;  // guarded by redo_mu_
  std::thread redo_thread_;
  // Open handles, sharded by handle id: one short critical section of one shard per open,
  // close or handle check. Plain maps (not tbb::concurrent_hash_map) so the destructor and a
  // session's release can walk them (TBB's iterators trip UBSan).
  struct HandleShard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, Handle> map;
  };
  static constexpr size_t kHandleShards = 64;
  HandleShard& shard(uint64_t h) { return handle_shards_[h % kHandleShards]; }
  const HandleShard& shard(uint64_t h) const { return handle_shards_[h % kHandleShards]; }
  std::array<HandleShard, kHandleShards> handle_shards_;

  struct Session {
    std::set<uint64_t> connections;
    std::chrono::milliseconds grace{60000};
    std::chrono::steady_clock::time_point expires{};  // once connections is empty
  };
  mutable std::mutex sessions_mu_;
  std::condition_variable sessions_cv_;
  std::unordered_map<uint64_t, Session> sessions_;                     // by client id
  std::unordered_map<uint64_t, std::vector<uint64_t>> conn_clients_;   // connection -> clients seen on it
  bool stopping_ = false;
  std::thread reaper_;  // expires sessions (last member: started after the rest is built)
};

}  // namespace stor::lustre
