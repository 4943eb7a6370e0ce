// The metadata service of the Lustre-style backend: namespace tree, POSIX permissions, and the
// inode -> layout map, made crash consistent by a write-ahead log plus periodic checkpoints.
//
// Concurrency: every inode has its own shared_mutex; lookups take shared locks one directory at
// a time, so creates in different directories and all lookups/stats run in parallel. A mutation
// logs its WAL record while holding the exclusive lock of the directory it changes, so any later
// operation that can observe the change is also logged after it: replay in log order is valid.
// Locks are taken parent before child; renames are serialised by one mutex (like the VFS's
// s_vfs_rename_mutex) which also keeps the parent pointers used for loop checks stable.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <tbb/concurrent_hash_map.h>

#include "backends/lustre/extent_locks.h"
#include "backends/lustre/lustre.pb.h"
#include "backends/lustre/wal.h"
#include "stor/backend.h"
#include "stor/status.h"

namespace stor::lustre {

// Who performs an operation; permission checks use it like the kernel uses fsuid/fsgid/groups.
struct Identity {
  uint32_t uid = 0;
  std::vector<uint32_t> gids;  // the first one is the primary group (owner group of new files)
  static Identity process();   // real uid, gid and supplementary groups of this process
  bool in_group(uint32_t gid) const;
  uint32_t primary_gid() const { return gids.empty() ? 0 : gids.front(); }
};

struct Inode {
  explicit Inode(uint64_t n) : ino(n) {}
  const uint64_t ino;
  mutable std::shared_mutex mu;
  // Guarded by mu.
  pb::InodeType type = pb::REGULAR;
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  pb::Layout layout;       // regular files
  pb::Layout dir_default;  // directories; empty: inherit the file system default
  std::unordered_map<std::string, std::shared_ptr<Inode>> children;
  bool linked = true;      // false once unlinked (objects go when the last opener closes)
  int open_count = 0;
  // False only for files created by this mount that never had an object created (the data path
  // sets it before creating one): their unlink skips deleting objects that cannot exist.
  // Conservatively true after a remount.
  std::atomic<bool> may_have_objects{true};
  // Guarded by Mds::rename_mu_ (written only by mkdir-time creation and rename).
  std::weak_ptr<Inode> parent;
  // Extent locks of a regular file (BackendFile::lock_range); in memory only, own mutex.
  ExtentLockQueue locks;
  // Several MDTs: a remote entry (a directory, or a file renamed across MDTs, living on MDT
  // remote_mdt as the entry remote_name of its /.stor-remote). Set before the entry is
  // published, never changed.
  uint32_t remote_mdt = 0;
  std::string remote_name;
  // The unfinished cross-MDT operation on this entry (kIntentMkdir / kIntentRmdir / kIntentMove),
  // or 0; for kIntentMove, where it goes (set before intent, under the parent's lock).
  std::atomic<uint32_t> intent{0};
  uint32_t intent_mdt = 0, intent_uid = 0, intent_gid = 0;
  std::string intent_path;
  bool remote() const { return !remote_name.empty(); }

  bool is_dir() const { return type == pb::DIRECTORY; }
  // What an open regular file reports through BackendFile::stat().
  FileInfo regular_file_info(const std::string& path) const {
    std::shared_lock lk(mu);
    FileInfo fi;
    fi.path = path;
    fi.type = FileType::kRegular;
    fi.size = size;
    fi.mode = mode;
    fi.uid = uid;
    fi.gid = gid;
    fi.mtime_ns = mtime_ns;
    return fi;
  }
};
using InodeRef = std::shared_ptr<Inode>;

struct MdsOptions {
  uint64_t checkpoint_bytes = 64ull << 20;  // checkpoint once the WAL grows past this
  bool sync_each_op = false;                // fdatasync the WAL before acknowledging (power-loss safety)
  // fsck: instead of failing on the first invalid checkpoint entry or WAL record, load what is
  // valid, set the rest aside (docs/lustre.md, "fsck") and list each problem in problems().
  bool recover = false;
  // Write nothing: the WAL is neither truncated nor opened, no checkpoint, nothing reaped (fsck
  // without --repair, verify_metadata_image).
  bool read_only = false;
  // Several MDTs: this MDT's index, which names the remote entries it makes ("K.INO").
  uint32_t mdt_index = 0;
};

// Several MDTs: every MDT keeps the directories placed on it for entries of other MDTs in this
// directory under its root ("/.stor-remote/K.INO"), hidden from listings of the root.
inline constexpr const char* kRemoteDirName = ".stor-remote";

// Cross-MDT operations (docs/lustre.md "Cross-MDT operations"), logged on the coordinating MDT.
inline constexpr uint32_t kIntentMkdir = 1, kIntentRmdir = 2, kIntentMove = 3;

// A remote entry: where its directory lives, and (mkdir) what to create there.
struct RemoteEntry {
  uint64_t ino = 0;  // of the entry on this MDT; 0: none (the operation was local)
  uint32_t mdt = 0;
  std::string name;  // of the directory in that MDT's /.stor-remote
  uint32_t intent = 0;
  pb::Inode attrs;   // mkdir: mode, uid, gid, dir_default of the new directory; always: type
  // rename (kIntentMove): where the entry goes (a path on MDT to_mdt) and as whom.
  uint32_t to_mdt = 0;
  std::string to_path;
  uint32_t uid = 0, gid = 0;
};

// Several MDTs: a path that leads through a remote entry. Mds calls then fail with Aborted and
// Mds::take_redirect() tells the caller where the rest of the path lives.
struct Redirect {
  uint32_t mdt = 0;
  std::string path;       // "/.stor-remote/NAME" on that MDT
  uint32_t consumed = 0;  // components of the request's path that lead to the remote entry
  bool new_path = false;  // rename: the redirect is for the target path
};

// Cluster mode: the client request a mutation serves (MdsRequest client_id / xid). Its WAL
// record carries it, so the reply cache (Lustre's last_rcvd) survives a crash of the MDS.
struct RequestTag {
  uint64_t client_id = 0;
  uint64_t xid = 0;
  uint64_t min_inflight_xid = 0;  // the client's oldest unanswered request: older slots can go
};

// Called with the inode number and layout of a file whose data objects may be deleted.
using ObjectReaper = std::function<void(uint64_t ino, const pb::Layout& layout)>;

class Mds {
 public:
  // Writes the initial checkpoint of an empty namespace (root directory only) into mdt_dir.
  // first_ino: the first inode number handed out (several MDTs: MDT k numbers from k << 48);
  // remote_dir: also make /.stor-remote (several MDTs).
  static Status format(const std::string& mdt_dir, uint32_t root_uid, uint32_t root_gid, uint32_t root_mode,
                       uint64_t first_ino = 2, bool remote_dir = false);
  // Loads the checkpoint, replays the WAL and opens it for appending.
  // Every checkpoint entry and WAL record is validated before it is applied; the first invalid one
  // fails the open with Corruption naming it (unless opts.recover).
  static Result<std::unique_ptr<Mds>> open(const std::string& mdt_dir, uint32_t target_count,
                                           pb::Layout fs_default, MdsOptions opts, ObjectReaper reaper);
  // The same over a checkpoint and WAL (generation wal_generation of the checkpoint) held in
  // memory; always read only. For fsck-style checks and fuzzing: any bytes give a Status.
  static Result<std::unique_ptr<Mds>> load_image(std::string_view checkpoint, std::string_view wal,
                                                 uint32_t target_count, pb::Layout fs_default, bool recover);
  ~Mds();

  Result<FileInfo> stat(const Identity& id, std::string_view path);
  // remote_files: the names of remote file entries (their size lives on another MDT; 0 here).
  Result<std::vector<DirEntry>> readdir(const Identity& id, std::string_view path,
                                        std::vector<std::string>* remote_files = nullptr);
  // placement (several MDTs): the MDT the new directory goes to, from its parent's inode number
  // and its name. Another MDT than this one: the entry is made as a remote entry with intent
  // kIntentMkdir, described in *remote; the caller creates the directory there and then calls
  // finish_intent.
  Status mkdir(const Identity& id, std::string_view path, uint32_t mode,
               const std::function<uint32_t(uint64_t, const std::string&)>& placement = {},
               RemoteEntry* remote = nullptr);
  // Removes a file (unlink) or an empty directory (rmdir). A remote entry is not removed: it gets
  // intent kIntentRmdir, described in *remote (Unsupported without remote); the caller removes
  // the directory (or file) on its MDT and then calls finish_intent.
  Status remove(const Identity& id, std::string_view path, RemoteEntry* remote = nullptr);
  // Ends the cross-MDT operation on remote entry `ino`: commit makes it done (mkdir: the entry
  // becomes visible; rmdir: the entry goes), otherwise it is undone. Idempotent.
  Status finish_intent(uint64_t ino, bool commit);
  // Unfinished cross-MDT operations (after a restart), for recovery to re-drive.
  std::vector<RemoteEntry> pending_intents();
  // The other side of a cross-MDT mkdir / rmdir: the directory `name` under this MDT's root.
  // Idempotent: a directory that exists (mkdir) or is gone (rmdir) is success.
  Status peer_mkdir(const std::string& name, const pb::Inode& attrs);
  // Cross-MDT rename of the directory, file (or remote entry) `from` to `to_path` on MDT to_mdt:
  // logs the intent kIntentMove and describes in *out what the other MDT links there; the caller
  // asks it (peer_link), then finish_intent moves the entry out (a directory or file stays on
  // this MDT, in /.stor-remote) or undoes the intent.
  Status begin_move(const Identity& id, std::string_view from, uint32_t to_mdt, const std::string& to_path,
                    RemoteEntry* out);
  // The other side of a cross-MDT rename: a remote entry at `path` for the directory or file
  // (`type`) `name` of MDT `mdt`, made as `id`; a regular file (for a file) or an empty
  // directory (for a directory) there is replaced in the same step. A file of this very MDT leaves /.stor-remote for `path` instead (renamed back home).
  // Idempotent: that very entry there already (or the file gone from /.stor-remote) is success.
  Status peer_link(const Identity& id, std::string_view path, uint32_t mdt, const std::string& name,
                   pb::InodeType type = pb::DIRECTORY);
  // Removes /.stor-remote/name: an empty directory, or (file) a regular file and its objects.
  Status peer_rmdir(const std::string& name, bool file = false);
  // Every remote entry (fsck: each must name an existing directory on its MDT), and the
  // directories under the root that stand for remote entries of other MDTs ("K.INO").
  std::vector<RemoteEntry> remote_entries();
  std::vector<std::string> root_names();  // the names in /.stor-remote
  // Where the path of the last call on this thread that failed with Aborted continues.
  static std::optional<Redirect> take_redirect();
  static void set_redirect(const Redirect& r);
  Status rename(const Identity& id, std::string_view from, std::string_view to);
  Status chmod(const Identity& id, std::string_view path, uint32_t mode);
  // UINT32_MAX leaves that id unchanged.
  Status chown(const Identity& id, std::string_view path, uint32_t uid, uint32_t gid);

  struct Opened {
    InodeRef inode;
    bool created = false;
  };
  // Opens a regular file for the access kOpenRead/kOpenWrite ask for, creating it with kOpenCreate
  // (with `layout_template`, else the directory / file system default). Pair with close_file().
  Result<Opened> open_file(const Identity& id, std::string_view path, uint32_t flags, uint32_t mode,
                           const pb::Layout* layout_template = nullptr);
  void close_file(const InodeRef& inode);

  // setstripe: the default layout of a directory, or the layout of an empty regular file.
  Status set_layout(const Identity& id, std::string_view path, const pb::Layout& layout_template);
  // The layout of a file (resolved) or a directory's default (empty when it inherits), and type.
  Result<std::pair<pb::Layout, bool /*is_dir*/>> get_layout(const Identity& id, std::string_view path);

  // Data path hooks. Sizes are logged, so acknowledged writes keep their file size after a crash.
  Status extend_size(Inode& inode, uint64_t end_offset);
  Status set_size(Inode& inode, uint64_t size);

  Status checkpoint();
  Status sync();

  // Reply cache. Mutations run inside a RequestScope on the serving thread record their request
  // in their WAL record and, once logged, in the cache; replay and checkpoints keep it. A resent
  // request whose mutation was applied is answered from here instead of running again.
  class RequestScope {
   public:
    explicit RequestScope(const RequestTag& tag);
    ~RequestScope();
    RequestScope(const RequestScope&) = delete;
    RequestScope& operator=(const RequestScope&) = delete;

   private:
    const RequestTag* prev_;
  };
  bool applied(uint64_t client_id, uint64_t xid) const;
  size_t reply_slots() const;
  // What a recovery open (opts.recover) found wrong and what it did about it, one line each.
  const std::vector<std::string>& problems() const { return problems_; }  // makes every logged operation durable against power loss

  const pb::Layout& fs_default() const { return fs_default_; }
  uint32_t target_count() const { return target_count_; }
  uint64_t inode_count() const { return inodes_.size(); }
  uint64_t wal_bytes() const { return wal_.size(); }
  // The largest size object (component, stripe) on `target` may have given its file's size, or -1
  // when no live file's layout names the object (an orphan).
  int64_t object_limit(uint64_t ino, uint32_t component, uint32_t stripe, uint32_t target) const;
  // The inode number of a path (object names contain it).
  Result<uint64_t> inode_number(const Identity& id, std::string_view path);
  // Cluster mode, an open handle the MDS no longer knows (it restarted): the regular file `ino`
  // if `id` may write it.
  Result<InodeRef> inode_for_write(const Identity& id, uint64_t ino);
  // Cluster mode, a client replaying an open handle to a restarted MDS: the regular file `ino`,
  // opened again (pair with close_file()) if `id` may read it, or write it when `write`.
  Result<InodeRef> reopen_file(const Identity& id, uint64_t ino, bool write);

 private:
  Mds(std::string mdt_dir, uint32_t target_count, pb::Layout fs_default, MdsOptions opts, ObjectReaper reaper);
  struct Parent {
    InodeRef dir;
    std::string name;
  };
  Result<InodeRef> walk(const Identity& id, const std::vector<std::string>& comps, size_t n, std::string_view path) const;
  Result<InodeRef> lookup(const Identity& id, std::string_view path) const;
  Result<Parent> resolve_parent(const Identity& id, std::string_view path) const;
  // visit(child) for every entry of this MDT's own tree, descending into local directories only
  // (a remote entry's directory lives on another MDT). Takes state_mu_: no mutation runs meanwhile.
  void for_each_local_entry(const std::function<void(const Inode&)>& visit);
  // The CREATE record of a new inode named p.name in p.dir, owned by id; caller holds p.dir->mu.
  pb::WalRecord create_record(const Parent& p, const Identity& id, pb::InodeType type, uint32_t mode);
  Status log(const pb::WalRecord& rec);
  void maybe_checkpoint();
  Status load(std::string_view checkpoint_data);
  Status replay_log(std::string_view wal_data, uint64_t* valid_end);
  // Validates one record completely, then applies it; an invalid record changes nothing.
  Status replay(std::string_view payload, const std::string& where);
  Status check_record(const pb::WalRecord& rec, const std::string& where);
  // Recovery, after replay: inodes the checkpoint could not place in the tree go to /lost+found;
  // closes the problem list.
  void quarantine_detached();
  // Reports a problem: Corruption when strict, a problems() line when recovering.
  Status problem(const std::string& what, const std::string& action);

  InodeRef remote_dir() const;  // /.stor-remote, or null
  // peer_link of a file of this MDT: RENAME /.stor-remote/name to path (replacing a file).
  Status rehome(const Identity& id, std::string_view path, const std::string& name);
  // May a cross-MDT rename of a `type` replace `old` in `dir` (POSIX: a file a file, a directory
  // an empty directory; here also: not a remote entry)? Caller holds dir's lock.
  static Status check_replace(const Inode& dir, Inode& old, pb::InodeType type, const Identity& id,
                              std::string_view path);
  InodeRef apply_create(const InodeRef& parent, const std::string& name, const pb::Inode& in);
  // Detaches parent/name; returns the detached inode when its objects can be reaped now.
  InodeRef apply_unlink(Inode& parent, const std::string& name);
  void apply_setattr(Inode& n, const pb::WalRecord& rec);
  void reap(const std::vector<InodeRef>& dead);

  const std::string dir_;
  const uint32_t target_count_;
  const pb::Layout fs_default_;
  const MdsOptions opts_;
  const ObjectReaper reaper_;

  InodeRef root_;
  tbb::concurrent_hash_map<uint64_t, InodeRef> inodes_;
  std::atomic<uint64_t> next_ino_{2};
  std::atomic<uint32_t> rr_{0};  // round-robin start target for new files

  std::shared_mutex state_mu_;  // mutations shared, checkpoint exclusive
  std::mutex rename_mu_;
  std::atomic<bool> checkpointing_{false};
  WalWriter wal_;
  uint64_t wal_generation_ = 1;
  std::vector<std::string> problems_;
  uint64_t unlisted_problems_ = 0;

  // The reply cache: per client, the xids of applied mutations and when they were recorded.
  struct ClientReplies {
    mutable std::mutex mu;
    std::map<uint64_t, int64_t> applied;  // xid -> time_ns
  };
  void remember_reply(uint64_t client_id, uint64_t xid, uint64_t min_inflight, int64_t time_ns);
  // A plain map under a reader-writer lock rather than a tbb::concurrent_hash_map: the checkpoint
  // and reply_slots() walk it while requests add clients, which TBB's iterators do not allow
  // (and they trip UBSan on their bucket markers). Lookups share the lock; only a new client
  // takes it exclusively.
  mutable std::shared_mutex replies_mu_;
  std::unordered_map<uint64_t, std::shared_ptr<ClientReplies>> replies_;

  friend struct MdsTestPeer;  // tests reach wal_ to inject write failures
  std::vector<InodeRef> detached_;  // recovery: roots of subtrees no entry reaches
};

// What is wrong with a directory entry name ("" when nothing): empty, longer than 255 bytes,
// "." / "..", '/' or NUL in it. For names read from disk or the network.
std::string entry_name_problem(const std::string& name);

// Splits an in-fs path into components, dropping "" and "."; ".." is rejected.
Result<std::vector<std::string>> split_path(std::string_view path);

}  // namespace stor::lustre
