#include "backends/lustre/mds.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <unordered_set>

#include "backends/lustre/layout.h"

namespace stor::lustre {

namespace {

constexpr uint32_t kAttrMode = 1, kAttrUid = 2, kAttrGid = 4, kAttrSize = 8, kAttrMtime = 16;
constexpr int kPermR = 4, kPermW = 2, kPermX = 1;
constexpr uint64_t kRootIno = 1;
constexpr uint32_t kAttrIntent = 32;  // remote entries: the unfinished cross-MDT operation
constexpr uint32_t kAttrAll = kAttrMode | kAttrUid | kAttrGid | kAttrSize | kAttrMtime | kAttrIntent;
constexpr uint64_t kMaxIno = static_cast<uint64_t>(INT64_MAX);  // next_ino can always go one above

// The request the current thread's mutations serve (Mds::RequestScope); null: none.
thread_local const RequestTag* t_request = nullptr;
// Where the path of the failed (Aborted) call continues: several MDTs, a remote entry was met.
thread_local std::optional<Redirect> t_redirect;

// Reply-cache slots older than this are dropped at checkpoints: far beyond any client's
// reconnect timeout, so a client still resending never finds its slot gone.
constexpr int64_t kReplySlotLifetimeNs = 3600ll * 1000 * 1000 * 1000;
constexpr int kMaxReplySlots = 1 << 20;  // in a checkpoint read from disk

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The in-memory inode of a persisted one (checkpoint or CREATE record); links are set by callers.
InodeRef inode_from_record(const pb::Inode& in) {
  auto n = std::make_shared<Inode>(in.ino());
  n->type = in.type();
  n->mode = in.mode();
  n->uid = in.uid();
  n->gid = in.gid();
  n->size = in.size();
  n->mtime_ns = in.mtime_ns();
  n->ctime_ns = in.ctime_ns();
  n->layout = in.layout();
  n->dir_default = in.dir_default();
  n->remote_mdt = in.remote_mdt();
  n->remote_name = in.remote_name();
  n->intent = in.intent();
  n->intent_mdt = in.intent_mdt();
  n->intent_path = in.intent_path();
  n->intent_uid = in.intent_uid();
  n->intent_gid = in.intent_gid();
  return n;
}

std::string wal_path(const std::string& dir, uint64_t gen) { return dir + "/wal." + std::to_string(gen); }

std::string octal(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%o", v);
  return buf;
}

// What is wrong with a persisted directory entry name ("" when nothing): the names split_path
// could produce, so every entry stays reachable by a path.
std::string name_problem(const std::string& name) {
  if (name.empty()) return "empty name";
  if (name.size() > 255) return "name longer than 255 bytes";
  if (name == "." || name == "..") return "name '" + name + "'";
  if (name.find('/') != std::string::npos) return "name '" + name + "' contains '/'";
  if (name.find('\0') != std::string::npos) return "name contains NUL";
  return "";
}

// What is wrong with a persisted inode ("" when nothing), naming the field.
std::string inode_problem(const pb::Inode& in, uint32_t target_count) {
  const std::string ino = std::to_string(in.ino());
  if (in.ino() == 0 || in.ino() > kMaxIno) return "inode number " + ino + " is out of range";
  if (!pb::InodeType_IsValid(in.type())) return "type " + std::to_string(in.type()) + " is unknown";
  if (in.mode() & ~07777u) return "mode " + octal(in.mode()) + " has bits outside 07777";
  if (in.intent() > kIntentMove) return "intent " + std::to_string(in.intent()) + " is unknown";
  if (in.intent() == kIntentMove) {
    if (in.intent_path().empty() || in.intent_path().size() > 4096 || in.intent_path()[0] != '/' ||
        in.intent_path().find('\0') != std::string::npos)
      return "rename intent without a valid path";
  }
  if (!in.remote_name().empty()) {
    if (in.remote_mdt() > 65535) return "remote MDT " + std::to_string(in.remote_mdt()) + " is out of range";
    if (std::string b = name_problem(in.remote_name()); !b.empty()) return "remote " + b;
    // A file renamed across MDTs: its size and layout stay with its inode on that MDT.
    if (in.type() == pb::REGULAR) {
      if (in.size() != 0 || in.layout().components_size() || in.dir_default().components_size())
        return "remote file entry with a size or layout";
      return "";
    }
  } else if (in.intent() != 0 && in.intent() != kIntentMove) {
    return "intent on an inode that is not a remote entry";
  }
  if (in.type() == pb::DIRECTORY) {
    if (in.size() != 0) return "size " + std::to_string(in.size()) + " on a directory";
    if (in.layout().components_size()) return "layout on a directory";
    if (in.dir_default().components_size())
      if (Status s = validate_layout(in.dir_default(), target_count); !s) return "dir_default: " + s.message();
    return "";
  }
  if (in.size() > kMaxFileSize) return "size " + std::to_string(in.size()) + " exceeds the largest file size (2^63 - 1)";
  if (in.dir_default().components_size()) return "dir_default on a regular file";
  if (Status s = validate_layout(in.layout(), target_count, LayoutKind::kResolved); !s) return "layout: " + s.message();
  return "";
}

// Recovery: repairs what needs no guessing (stray mode bits, fields the type does not use, a bad
// directory default, which then inherits the file system's). False when the inode stays invalid.
bool repair_inode(pb::Inode* in, uint32_t target_count) {
  in->set_mode(in->mode() & 07777);
  if (in->type() == pb::DIRECTORY) {
    in->set_size(0);
    in->clear_layout();
    if (!validate_layout(in->dir_default(), target_count)) in->clear_dir_default();
  } else {
    in->clear_dir_default();
    if (!in->remote_name().empty()) {
      in->set_size(0);
      in->clear_layout();
    }
  }
  return inode_problem(*in, target_count).empty();
}

bool permitted(const Inode& n, const Identity& id, int want) {
  if (id.uid == 0) {
    // root bypasses permission bits, except that executing needs some x bit on non-directories.
    return !(want & kPermX) || n.is_dir() || (n.mode & 0111);
  }
  uint32_t bits = id.uid == n.uid ? (n.mode >> 6) : id.in_group(n.gid) ? (n.mode >> 3) : n.mode;
  return (static_cast<int>(bits & 7) & want) == want;
}

std::string perm_name(int want) {
  std::string s;
  if (want & kPermR) s += "read";
  if (want & kPermW) s += s.empty() ? "write" : "+write";
  if (want & kPermX) s += s.empty() ? "search" : "+search";
  return s;
}

Status denied(int want, std::string_view path, const Identity& id) {
  return Status::PermissionDenied("lustre: " + perm_name(want) + " permission denied on '" +
                                             std::string(path) + "' for uid " + std::to_string(id.uid));
}

// Sticky directories (like /tmp): only the owner of the entry or of the directory, or root, may
// remove or rename the entry.
bool sticky_allows(const Inode& dir, const Inode& victim, const Identity& id) {
  if (!(dir.mode & S_ISVTX) || id.uid == 0) return true;
  return id.uid == dir.uid || id.uid == victim.uid;
}

FileType to_file_type(pb::InodeType t) { return t == pb::DIRECTORY ? FileType::kDirectory : FileType::kRegular; }

std::string join(const std::vector<std::string>& comps, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "/" + comps[i];
  return s.empty() ? "/" : s;
}

bool is_ancestor(const Inode* maybe_ancestor, InodeRef node) {
  while (node) {
    if (node.get() == maybe_ancestor) return true;
    node = node->parent.lock();
  }
  return false;
}

void fill_inode_pb(const Inode& n, pb::Inode* out) {
  out->set_ino(n.ino);
  out->set_type(n.type);
  out->set_mode(n.mode);
  out->set_uid(n.uid);
  out->set_gid(n.gid);
  out->set_size(n.size);
  out->set_mtime_ns(n.mtime_ns);
  out->set_ctime_ns(n.ctime_ns);
  if (n.is_dir()) *out->mutable_dir_default() = n.dir_default;
  else *out->mutable_layout() = n.layout;
  if (n.remote()) {
    out->set_remote_mdt(n.remote_mdt);
    out->set_remote_name(n.remote_name);
  }
  if (uint32_t i = n.intent.load(); i != 0) {
    out->set_intent(i);
    out->set_intent_mdt(n.intent_mdt);
    out->set_intent_path(n.intent_path);
    out->set_intent_uid(n.intent_uid);
    out->set_intent_gid(n.intent_gid);
  }
}

}  // namespace

Identity Identity::process() {
  Identity id;
  id.uid = ::getuid();
  id.gids.push_back(::getgid());
  int n = ::getgroups(0, nullptr);
  if (n > 0) {
    std::vector<gid_t> g(static_cast<size_t>(n));
    n = ::getgroups(n, g.data());
    for (int i = 0; i < n; ++i)
      if (g[static_cast<size_t>(i)] != id.gids.front()) id.gids.push_back(g[static_cast<size_t>(i)]);
  }
  return id;
}

bool Identity::in_group(uint32_t gid) const { return std::find(gids.begin(), gids.end(), gid) != gids.end(); }

Result<std::vector<std::string>> split_path(std::string_view path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view c = path.substr(i, j - i);
    if (c == "..")
      return Status::InvalidArgument("lustre: path '" + std::string(path) +
                                                "' contains '..'; paths may not escape their directory");
    if (c.find('\0') != std::string_view::npos) return Status::InvalidArgument("lustre: path contains NUL");
    if (!c.empty() && c != ".") {
      if (c.size() > 255) return Status::InvalidArgument("lustre: path component longer than 255 bytes");
      out.emplace_back(c);
    }
    i = j + 1;
  }
  return out;
}

Mds::Mds(std::string mdt_dir, uint32_t target_count, pb::Layout fs_default, MdsOptions opts, ObjectReaper reaper)
    : dir_(std::move(mdt_dir)), target_count_(target_count), fs_default_(std::move(fs_default)), opts_(opts),
      reaper_(std::move(reaper)) {}

Mds::~Mds() {
  wal_.close();
  // A damaged image may hold a directory cycle (a child owning its ancestor): break every link so
  // nothing leaks.
  inodes_.rehash();  // see Mds::load: TBB's iterator is only defined on a rehashed table
  for (auto it = inodes_.begin(); it != inodes_.end(); ++it) it->second->children.clear();
  for (auto& n : detached_) n->children.clear();
}

Status Mds::format(const std::string& mdt_dir, uint32_t root_uid, uint32_t root_gid, uint32_t root_mode,
                   uint64_t first_ino, bool remote_dir) {
  pb::Checkpoint cp;
  first_ino = std::max(kRootIno + 1, first_ino);
  cp.set_next_ino(first_ino);
  if (remote_dir) {
    // Everyone may search it (each directory in it has its own permissions); only root lists it.
    auto* d = cp.add_inodes();
    d->set_ino(first_ino);
    d->set_type(pb::DIRECTORY);
    d->set_mode(0711);
    d->set_uid(root_uid);
    d->set_gid(root_gid);
    d->set_mtime_ns(now_ns());
    d->set_ctime_ns(d->mtime_ns());
    auto* e = cp.add_dirents();
    e->set_parent(kRootIno);
    e->set_name(kRemoteDirName);
    e->set_ino(first_ino);
    cp.set_next_ino(first_ino + 1);
  }
  cp.set_wal_generation(1);
  auto* root = cp.add_inodes();
  root->set_ino(kRootIno);
  root->set_type(pb::DIRECTORY);
  root->set_mode(root_mode & 07777);
  root->set_uid(root_uid);
  root->set_gid(root_gid);
  root->set_mtime_ns(now_ns());
  root->set_ctime_ns(root->mtime_ns());
  return write_file_atomic(mdt_dir + "/checkpoint", cp.SerializeAsString());
}

Result<std::unique_ptr<Mds>> Mds::open(const std::string& mdt_dir, uint32_t target_count, pb::Layout fs_default,
                                       MdsOptions opts, ObjectReaper reaper) {
  if (opts.read_only) reaper = nullptr;  // replaying an UNLINK must not delete objects
  std::unique_ptr<Mds> m(new Mds(mdt_dir, target_count, std::move(fs_default), opts, std::move(reaper)));
  auto cp = read_file(mdt_dir + "/checkpoint");
  if (!cp) {
    if (cp.status().code() == Code::kNotFound)
      return Status::Corruption("lustre: metadata checkpoint " + mdt_dir + "/checkpoint is missing");
    return cp.status();
  }
  STOR_RETURN_IF_ERROR(m->load(*cp));
  std::string wal = wal_path(mdt_dir, m->wal_generation_);
  auto log = read_file(wal);
  if (!log && log.status().code() != Code::kNotFound) return log.status();
  uint64_t valid = 0;
  STOR_RETURN_IF_ERROR(m->replay_log(log ? std::string_view(*log) : std::string_view(), &valid));
  if (opts.recover) m->quarantine_detached();
  if (opts.read_only) return m;
  STOR_RETURN_IF_ERROR(m->wal_.open(wal, valid));
  // Logs of other generations are leftovers of a checkpoint interrupted by a crash.
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(mdt_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("wal.", 0) == 0 && e.path().string() != wal) std::filesystem::remove(e.path(), ec);
  }
  return m;
}

Result<std::unique_ptr<Mds>> Mds::load_image(std::string_view checkpoint, std::string_view wal, uint32_t target_count,
                                             pb::Layout fs_default, bool recover) {
  if (target_count == 0 || target_count > kMaxTargets)
    return Status::InvalidArgument("lustre: target count must be 1.." + std::to_string(kMaxTargets));
  MdsOptions opts;
  opts.recover = recover;
  opts.read_only = true;
  std::unique_ptr<Mds> m(new Mds(std::string(), target_count, std::move(fs_default), opts, nullptr));
  STOR_RETURN_IF_ERROR(m->load(checkpoint));
  uint64_t valid = 0;
  STOR_RETURN_IF_ERROR(m->replay_log(wal, &valid));
  if (recover) m->quarantine_detached();
  return m;
}

Status Mds::problem(const std::string& what, const std::string& action) {
  if (!opts_.recover) return Status::Corruption("lustre: " + what);
  // A log of a million bad records must not become a million strings.
  constexpr size_t kMaxListed = 1000;
  if (problems_.size() < kMaxListed) problems_.push_back(what + " (" + action + ")");
  else ++unlisted_problems_;
  return Status::ok();
}

Status Mds::load(std::string_view data) {
  pb::Checkpoint cp;
  if (data.size() > static_cast<size_t>(INT_MAX) || !cp.ParseFromArray(data.data(), static_cast<int>(data.size())))
    return Status::Corruption("lustre: metadata checkpoint does not parse (fsck cannot rebuild it)");
  wal_generation_ = cp.wal_generation();
  auto find = [&](uint64_t ino) -> InodeRef {
    decltype(inodes_)::const_accessor a;
    return inodes_.find(a, ino) ? a->second : nullptr;
  };
  uint64_t max_ino = 0;
  for (const auto& stored : cp.inodes()) {
    pb::Inode in = stored;
    const std::string where = "checkpoint inode " + std::to_string(in.ino());
    if (std::string bad = inode_problem(in, target_count_); !bad.empty()) {
      const bool fixed = repair_inode(&in, target_count_);
      STOR_RETURN_IF_ERROR(problem(where + ": " + bad, fixed ? "repaired" : "inode dropped"));
      if (!fixed) continue;
    }
    if (in.ino() == kRootIno && in.type() != pb::DIRECTORY) {
      STOR_RETURN_IF_ERROR(problem(where + ": the root is not a directory", "inode dropped"));
      continue;
    }
    if (find(in.ino())) {
      STOR_RETURN_IF_ERROR(problem(where + ": duplicate inode number", "later copy dropped"));
      continue;
    }
    InodeRef n = inode_from_record(in);
    inodes_.insert({in.ino(), n});
    max_ino = std::max(max_ino, in.ino());
    if (in.ino() == kRootIno) root_ = n;
  }
  if (!root_) {
    STOR_RETURN_IF_ERROR(problem("checkpoint has no root directory (inode 1)", "made an empty root, mode 0755"));
    root_ = std::make_shared<Inode>(kRootIno);
    root_->type = pb::DIRECTORY;
    root_->mode = 0755;
    root_->mtime_ns = root_->ctime_ns = now_ns();
    inodes_.insert({kRootIno, root_});
    max_ino = std::max(max_ino, kRootIno);
  }
  for (const auto& d : cp.dirents()) {
    const std::string where = "checkpoint entry '" + d.name() + "' (inode " + std::to_string(d.ino()) +
                              " in directory " + std::to_string(d.parent()) + ")";
    InodeRef p = find(d.parent()), c = find(d.ino());
    std::string bad = name_problem(d.name());
    if (!bad.empty()) {
    } else if (!p) {
      bad = "parent " + std::to_string(d.parent()) + " does not exist";
    } else if (!p->is_dir()) {
      bad = "parent " + std::to_string(d.parent()) + " is not a directory";
    } else if (!c) {
      bad = "inode " + std::to_string(d.ino()) + " does not exist";
    } else if (c == root_) {
      bad = "links the root directory";
    } else if (c->parent.lock()) {
      bad = "inode " + std::to_string(d.ino()) + " already has an entry (hard links are not supported)";
    } else if (p->children.count(d.name())) {
      bad = "directory " + std::to_string(d.parent()) + " already has an entry of that name";
    }
    if (!bad.empty()) {
      STOR_RETURN_IF_ERROR(problem(where + ": " + bad, "entry dropped"));
      continue;
    }
    p->children[d.name()] = c;
    c->parent = p;
  }
  // Entries give every inode at most one parent, so a walk from the root meets each reachable
  // inode once; any other inode has no entry or sits in a directory cycle.
  std::unordered_set<const Inode*> reached;
  std::vector<Inode*> stack{root_.get()};
  while (!stack.empty()) {
    Inode* n = stack.back();
    stack.pop_back();
    if (!reached.insert(n).second) continue;
    for (auto& [name, child] : n->children) stack.push_back(child.get());
  }
  if (reached.size() != inodes_.size()) {
    std::vector<InodeRef> lost;
    // TBB's iterator casts the marker of a bucket not yet rehashed (address 0x3) to a node
    // pointer, undefined behaviour that UBSan reports; rehash() completes every bucket first. It
    // is not safe against concurrent use of the table, and nothing else touches it here.
    inodes_.rehash();
    for (auto it = inodes_.begin(); it != inodes_.end(); ++it)
      if (!reached.count(it->second.get())) lost.push_back(it->second);
    std::sort(lost.begin(), lost.end(), [](const InodeRef& a, const InodeRef& b) { return a->ino < b->ino; });
    for (const auto& x : lost) {
      if (reached.count(x.get())) continue;  // placed with an earlier subtree
      // The top of x's detached subtree: up the parent pointers until they leave the lost set
      // or come round again (a cycle).
      InodeRef top = x;
      std::unordered_set<const Inode*> path{x.get()};
      for (InodeRef up = top->parent.lock(); up && !reached.count(up.get()) && path.insert(up.get()).second;
           up = top->parent.lock())
        top = up;
      STOR_RETURN_IF_ERROR(problem("checkpoint inode " + std::to_string(top->ino) +
                                       " is not reachable from the root (no entry, or in a directory cycle)",
                                   "moved to /lost+found/#" + std::to_string(top->ino)));
      if (InodeRef up = top->parent.lock()) {  // a cycle: cut it above top
        for (auto it = up->children.begin(); it != up->children.end(); ++it)
          if (it->second == top) {
            up->children.erase(it);
            break;
          }
      }
      top->parent.reset();
      detached_.push_back(top);
      std::vector<Inode*> sub{top.get()};
      while (!sub.empty()) {
        Inode* n = sub.back();
        sub.pop_back();
        if (!reached.insert(n).second) continue;
        for (auto& [name, child] : n->children) sub.push_back(child.get());
      }
    }
  }
  if (cp.replies_size() > kMaxReplySlots) {
    STOR_RETURN_IF_ERROR(problem("checkpoint holds " + std::to_string(cp.replies_size()) + " reply-cache slots (at most " +
                                     std::to_string(kMaxReplySlots) + ")",
                                 "reply cache dropped"));
  } else {
    for (const auto& slot : cp.replies()) {
      // A slot only ever answers a resend with "applied": a bad one is dropped, nothing else.
      if (slot.client_id() == 0 || slot.xid() == 0) {
        STOR_RETURN_IF_ERROR(problem("checkpoint reply-cache slot with client " + std::to_string(slot.client_id()) +
                                         " xid " + std::to_string(slot.xid()),
                                     "slot dropped"));
        continue;
      }
      remember_reply(slot.client_id(), slot.xid(), 0, slot.time_ns());
    }
  }
  uint64_t next = cp.next_ino();
  if (next <= max_ino || next > kMaxIno) {
    STOR_RETURN_IF_ERROR(problem("checkpoint next_ino " + std::to_string(next) +
                                     " is not above every inode (largest " + std::to_string(max_ino) + ")",
                                 "set to " + std::to_string(max_ino + 1)));
    next = max_ino + 1;
  }
  next_ino_ = next;
  return Status::ok();
}

void Mds::quarantine_detached() {
  if (unlisted_problems_)
    problems_.push_back("... and " + std::to_string(unlisted_problems_) + " more problems of the same kinds");
  unlisted_problems_ = 0;
  if (detached_.empty()) return;
  std::string name = "lost+found";
  InodeRef lf;
  if (auto it = root_->children.find(name); it != root_->children.end() && it->second->is_dir()) {
    lf = it->second;
  } else {
    if (it != root_->children.end()) name += "." + std::to_string(next_ino_.load());
    lf = std::make_shared<Inode>(next_ino_.fetch_add(1));
    lf->type = pb::DIRECTORY;
    lf->mode = 0700;  // what it holds kept its permissions, but its old path did not
    lf->uid = root_->uid;
    lf->gid = root_->gid;
    lf->mtime_ns = lf->ctime_ns = now_ns();
    inodes_.insert({lf->ino, lf});
    lf->parent = root_;
    root_->children[name] = lf;
  }
  for (const auto& n : detached_) {
    std::string entry = "#" + std::to_string(n->ino);
    while (lf->children.count(entry)) entry += "+";
    lf->children[entry] = n;
    n->parent = lf;
  }
  detached_.clear();
}

Status Mds::replay_log(std::string_view wal, uint64_t* valid_end) {
  const std::string name = "wal." + std::to_string(wal_generation_);
  uint64_t index = 0;
  auto valid = replay_wal_data(wal, [&](std::string_view p) { return replay(p, name + " record " + std::to_string(++index)); });
  if (!valid) return valid.status();
  *valid_end = *valid;
  return Status::ok();
}

Status Mds::check_record(const pb::WalRecord& rec, const std::string& where) {
  auto find = [&](uint64_t ino) -> InodeRef {
    decltype(inodes_)::const_accessor a;
    return inodes_.find(a, ino) ? a->second : nullptr;
  };
  auto bad = [&](const std::string& what) { return Status::Corruption(where + ": " + what); };
  auto dir = [&](uint64_t ino, InodeRef* out) -> Status {
    *out = find(ino);
    if (!*out) return bad("directory " + std::to_string(ino) + " does not exist");
    if (!(*out)->is_dir()) return bad("inode " + std::to_string(ino) + " is not a directory");
    return Status::ok();
  };
  const auto& in = rec.inode();
  const std::string ino = std::to_string(in.ino());
  switch (rec.op()) {
    case pb::WalRecord::CREATE: {
      if (std::string b = name_problem(rec.name()); !b.empty()) return bad(b);
      InodeRef p;
      STOR_RETURN_IF_ERROR(dir(rec.parent(), &p));
      if (auto it = p->children.find(rec.name()); it != p->children.end()) {
        if (!rec.replace())
          return bad("directory " + std::to_string(rec.parent()) + " already has an entry of that name");
        const InodeRef& old = it->second;
        if (in.remote_name().empty() || old->remote() || old->is_dir() != (in.type() == pb::DIRECTORY) ||
            !old->children.empty())
          return bad("replaces an entry that is not a local file or empty directory of the new entry's type");
      }
      if (std::string b = inode_problem(in, target_count_); !b.empty()) return bad("inode " + ino + ": " + b);
      if (find(in.ino())) return bad("inode " + ino + " already exists");
      return Status::ok();
    }
    case pb::WalRecord::UNLINK: {
      if (std::string b = name_problem(rec.name()); !b.empty()) return bad(b);
      InodeRef p;
      STOR_RETURN_IF_ERROR(dir(rec.parent(), &p));
      auto it = p->children.find(rec.name());
      if (it == p->children.end()) return bad("no such entry");
      if (it->second->is_dir() && !it->second->children.empty()) return bad("removes a non-empty directory");
      return Status::ok();
    }
    case pb::WalRecord::RENAME: {
      if (std::string b = name_problem(rec.name()); !b.empty()) return bad(b);
      if (std::string b = name_problem(rec.new_name()); !b.empty()) return bad("new " + b);
      InodeRef sp, dp;
      STOR_RETURN_IF_ERROR(dir(rec.parent(), &sp));
      STOR_RETURN_IF_ERROR(dir(rec.new_parent(), &dp));
      auto it = sp->children.find(rec.name());
      if (it == sp->children.end()) return bad("no such entry");
      InodeRef src = it->second;
      if (src->is_dir() && is_ancestor(src.get(), dp)) return bad("moves a directory into itself");
      if (auto d = dp->children.find(rec.new_name()); d != dp->children.end() && d->second != src) {
        if (d->second->is_dir() != src->is_dir()) return bad("replaces a file with a directory or the reverse");
        if (d->second->is_dir() && !d->second->children.empty()) return bad("replaces a non-empty directory");
      }
      return Status::ok();
    }
    case pb::WalRecord::SET_ATTR: {
      InodeRef n = find(in.ino());
      if (!n) return bad("inode " + ino + " does not exist");
      const uint32_t m = rec.attr_mask();
      if (m & ~kAttrAll) return bad("attr_mask " + octal(m) + " has unknown bits");
      if ((m & kAttrMode) && (in.mode() & ~07777u)) return bad("mode " + octal(in.mode()) + " has bits outside 07777");
      if ((m & kAttrIntent) && (in.intent() > kIntentMove || (in.intent() != kIntentMove && in.intent() != 0 && !n->remote()) ||
                                (in.intent() == kIntentMove && in.intent_path().empty())))
        return bad("intent " + std::to_string(in.intent()) + " on inode " + ino);
      if (m & kAttrSize) {
        if (n->is_dir()) return bad("size on a directory");
        if (n->remote()) return bad("size on a remote file entry (its inode is on another MDT)");
        if (in.size() > kMaxFileSize)
          return bad("size " + std::to_string(in.size()) + " exceeds the largest file size (2^63 - 1)");
      }
      return Status::ok();
    }
    case pb::WalRecord::SET_LAYOUT: {
      InodeRef n = find(in.ino());
      if (!n) return bad("inode " + ino + " does not exist");
      if (n->remote()) return bad("layout of a remote entry (it lives on another MDT)");
      if (n->is_dir()) {
        if (Status s = validate_layout(in.dir_default(), target_count_); !s) return bad("dir_default: " + s.message());
        return Status::ok();
      }
      if (Status s = validate_layout(in.layout(), target_count_, LayoutKind::kResolved); !s)
        return bad("layout: " + s.message());
      if (n->size != 0) return bad("file has data (" + std::to_string(n->size) + " bytes); its layout cannot change");
      return Status::ok();
    }
    default:
      return bad("unknown operation");
  }
}

Status Mds::replay(std::string_view payload, const std::string& at) {
  pb::WalRecord rec;
  if (payload.size() > static_cast<size_t>(INT_MAX) ||
      !rec.ParseFromArray(payload.data(), static_cast<int>(payload.size())))
    return problem(at + ": does not parse (its checksum is valid)", "record dropped");
  std::string where = at + " (";
  if (pb::WalRecord::Op_IsValid(rec.op())) where += pb::WalRecord::Op_Name(rec.op());
  else where += "operation " + std::to_string(rec.op());
  switch (rec.op()) {
    case pb::WalRecord::CREATE:
    case pb::WalRecord::UNLINK:
      where += " '" + rec.name() + "' in directory " + std::to_string(rec.parent());
      break;
    case pb::WalRecord::RENAME:
      where += " '" + rec.name() + "' in directory " + std::to_string(rec.parent()) + " to '" + rec.new_name() +
               "' in directory " + std::to_string(rec.new_parent());
      break;
    default:
      break;
  }
  if (rec.op() != pb::WalRecord::UNLINK && rec.op() != pb::WalRecord::RENAME)
    where += ", inode " + std::to_string(rec.inode().ino());
  where += ")";
  if (Status s = check_record(rec, where); !s) return problem(s.message(), "record dropped");
  if (rec.client_id() != 0 && rec.xid() != 0)
    remember_reply(rec.client_id(), rec.xid(), rec.min_inflight_xid(), now_ns());
  auto find = [&](uint64_t ino) -> InodeRef {
    decltype(inodes_)::const_accessor a;
    return inodes_.find(a, ino) ? a->second : nullptr;
  };
  switch (rec.op()) {
    case pb::WalRecord::CREATE: {
      InodeRef p = find(rec.parent());
      if (rec.replace()) {
        if (InodeRef dead = apply_unlink(*p, rec.name())) reap({dead});
      }
      apply_create(p, rec.name(), rec.inode());
      break;
    }
    case pb::WalRecord::UNLINK:
      if (InodeRef dead = apply_unlink(*find(rec.parent()), rec.name())) reap({dead});
      break;
    case pb::WalRecord::RENAME: {
      InodeRef sp = find(rec.parent()), dp = find(rec.new_parent());
      auto it = sp->children.find(rec.name());
      InodeRef src = it->second;
      sp->children.erase(it);
      if (auto d = dp->children.find(rec.new_name()); d != dp->children.end() && d->second != src) {
        if (InodeRef dead = apply_unlink(*dp, rec.new_name())) reap({dead});
      }
      dp->children[rec.new_name()] = src;
      src->parent = dp;
      break;
    }
    case pb::WalRecord::SET_ATTR:
      apply_setattr(*find(rec.inode().ino()), rec);
      break;
    case pb::WalRecord::SET_LAYOUT: {
      InodeRef n = find(rec.inode().ino());
      if (n->is_dir()) n->dir_default = rec.inode().dir_default();
      else n->layout = rec.inode().layout();
      break;
    }
    default:
      break;  // check_record refused it
  }
  return Status::ok();
}

InodeRef Mds::apply_create(const InodeRef& parent, const std::string& name, const pb::Inode& in) {
  InodeRef n = inode_from_record(in);
  inodes_.insert({n->ino, n});
  // Set before the entry is published (under the parent's lock), so renames walking parent
  // pointers under rename_mu_ never race with this write.
  n->parent = parent;
  parent->children[name] = n;
  parent->mtime_ns = in.ctime_ns();
  uint64_t want = in.ino() + 1, cur = next_ino_.load();
  while (cur < want && !next_ino_.compare_exchange_weak(cur, want)) {
  }
  return n;
}

InodeRef Mds::apply_unlink(Inode& parent, const std::string& name) {
  auto it = parent.children.find(name);
  if (it == parent.children.end()) return nullptr;
  InodeRef victim = it->second;
  parent.children.erase(it);
  inodes_.erase(victim->ino);
  victim->linked = false;
  // A remote file entry has no objects: they belong to its inode on the other MDT.
  if (!victim->is_dir() && !victim->remote() && victim->open_count == 0) return victim;
  return nullptr;
}

void Mds::apply_setattr(Inode& n, const pb::WalRecord& rec) {
  const auto& in = rec.inode();
  uint32_t m = rec.attr_mask();
  if (m & kAttrMode) n.mode = in.mode();
  if (m & kAttrUid) n.uid = in.uid();
  if (m & kAttrGid) n.gid = in.gid();
  if (m & kAttrSize) n.size = in.size();
  if (m & kAttrMtime) n.mtime_ns = in.mtime_ns();
  if (m & kAttrIntent) {
    n.intent_mdt = in.intent_mdt();
    n.intent_path = in.intent_path();
    n.intent_uid = in.intent_uid();
    n.intent_gid = in.intent_gid();
    n.intent = in.intent();
  }
  n.ctime_ns = in.ctime_ns() ? in.ctime_ns() : n.ctime_ns;
}

void Mds::reap(const std::vector<InodeRef>& dead) {
  if (!reaper_) return;
  for (const auto& n : dead)
    if (n && n->may_have_objects.load()) reaper_(n->ino, n->layout);
}

// A failed append or sync fails the operation: it is neither applied nor acknowledged (its record
// may still be replayed after a crash, like any unacknowledged operation). The first failure
// breaks the log, so no later record can land behind it and conflict with what memory holds;
// the next checkpoint (maybe_checkpoint, sync, unmount) persists memory and rotates to a fresh
// log, which ends the broken state.
Status Mds::log(const pb::WalRecord& rec) {
  const RequestTag* tag = t_request;
  if (!tag || tag->client_id == 0) {
    STOR_RETURN_IF_ERROR(wal_.append(rec.SerializeAsString()));
    if (opts_.sync_each_op) return wal_.sync();
    return Status::ok();
  }
  pb::WalRecord tagged = rec;
  tagged.set_client_id(tag->client_id);
  tagged.set_xid(tag->xid);
  tagged.set_min_inflight_xid(tag->min_inflight_xid);
  STOR_RETURN_IF_ERROR(wal_.append(tagged.SerializeAsString()));
  if (opts_.sync_each_op) STOR_RETURN_IF_ERROR(wal_.sync());
  remember_reply(tag->client_id, tag->xid, tag->min_inflight_xid, now_ns());
  return Status::ok();
}

Mds::RequestScope::RequestScope(const RequestTag& tag) : prev_(t_request) { t_request = &tag; }
Mds::RequestScope::~RequestScope() { t_request = prev_; }

void Mds::remember_reply(uint64_t client_id, uint64_t xid, uint64_t min_inflight, int64_t time_ns) {
  std::shared_ptr<ClientReplies> c;
  {
    std::shared_lock lk(replies_mu_);
    if (auto it = replies_.find(client_id); it != replies_.end()) c = it->second;
  }
  if (!c) {
    std::unique_lock lk(replies_mu_);
    auto& slot = replies_[client_id];
    if (!slot) slot = std::make_shared<ClientReplies>();
    c = slot;
  }
  std::lock_guard lk(c->mu);
  c->applied[xid] = time_ns;
  // Everything below the client's oldest unanswered request has been answered: never resent.
  c->applied.erase(c->applied.begin(), c->applied.lower_bound(min_inflight));
}

bool Mds::applied(uint64_t client_id, uint64_t xid) const {
  std::shared_ptr<ClientReplies> c;
  {
    std::shared_lock lk(replies_mu_);
    auto it = replies_.find(client_id);
    if (it == replies_.end()) return false;
    c = it->second;
  }
  std::lock_guard lk(c->mu);
  return c->applied.count(xid) != 0;
}

size_t Mds::reply_slots() const {
  size_t n = 0;
  std::shared_lock rlk(replies_mu_);
  for (const auto& [id, c] : replies_) {
    std::lock_guard lk(c->mu);
    n += c->applied.size();
  }
  return n;
}

void Mds::maybe_checkpoint() {
  if (wal_.size() < opts_.checkpoint_bytes && !wal_.broken()) return;
  bool expected = false;
  if (!checkpointing_.compare_exchange_strong(expected, true)) return;
  // A failed checkpoint is harmless: the WAL still holds everything and we retry later.
  (void)checkpoint();
  checkpointing_ = false;
}

Status Mds::checkpoint() {
  if (opts_.read_only) return Status::Internal("lustre: metadata opened read only (fsck without --repair)");
  std::unique_lock lk(state_mu_);
  pb::Checkpoint cp;
  const uint64_t gen = wal_generation_ + 1;
  cp.set_next_ino(next_ino_.load());
  cp.set_wal_generation(gen);
  // Depth-first walk; no other mutation runs while we hold state_mu_ exclusively.
  std::vector<InodeRef> stack{root_};
  while (!stack.empty()) {
    InodeRef n = stack.back();
    stack.pop_back();
    fill_inode_pb(*n, cp.add_inodes());
    for (auto& [name, child] : n->children) {
      auto* d = cp.add_dirents();
      d->set_parent(n->ino);
      d->set_name(name);
      d->set_ino(child->ino);
      stack.push_back(child);
    }
  }
  const int64_t oldest = now_ns() - kReplySlotLifetimeNs;
  std::shared_lock rlk(replies_mu_);
  for (const auto& [client, c] : replies_) {
    std::lock_guard clk(c->mu);
    for (const auto& [xid, t] : c->applied) {
      if (t < oldest) continue;
      auto* slot = cp.add_replies();
      slot->set_client_id(client);
      slot->set_xid(xid);
      slot->set_time_ns(t);
    }
  }
  // New empty log first, then the checkpoint that names it: a crash in between leaves the old
  // checkpoint + old log, which are complete.
  WalWriter fresh_check;
  std::string next = wal_path(dir_, gen);
  STOR_RETURN_IF_ERROR(fresh_check.open(next, 0));
  fresh_check.close();
  STOR_RETURN_IF_ERROR(fsync_dir(dir_));
  STOR_RETURN_IF_ERROR(write_file_atomic(dir_ + "/checkpoint", cp.SerializeAsString()));
  std::string old = wal_path(dir_, wal_generation_);
  STOR_RETURN_IF_ERROR(wal_.open(next, 0));
  wal_generation_ = gen;
  ::unlink(old.c_str());
  return Status::ok();
}

Status Mds::sync() {
  // A broken log acknowledges nothing; a checkpoint makes every acknowledged operation durable
  // and starts a fresh log, so the sync can then succeed.
  if (wal_.broken() && !opts_.read_only) maybe_checkpoint();
  return wal_.sync();
}

Result<InodeRef> Mds::walk(const Identity& id, const std::vector<std::string>& comps, size_t n,
                           std::string_view path) const {
  if (n == 0) return root_;
  // Hand-over-hand shared locks on raw pointers: a directory we hold locked cannot be unlinked
  // (that needs its exclusive lock), so only the result costs a reference count. This keeps
  // threads from bouncing the reference counts of common ancestors between CPUs.
  const Inode* cur = root_.get();
  std::shared_lock<std::shared_mutex> lk(cur->mu);
  for (size_t i = 0;; ++i) {
    if (!cur->is_dir())
      return Status::NotADirectory("lustre: '" + join(comps, i) + "' in path '" + std::string(path) +
                                              "' is not a directory");
    if (!permitted(*cur, id, kPermX)) return denied(kPermX, join(comps, i), id);
    auto it = cur->children.find(comps[i]);
    if (it == cur->children.end())
      return Status::NotFound("lustre: '" + join(comps, i + 1) + "' does not exist");
    if (it->second->remote()) {
      // A directory on another MDT: a cross-MDT mkdir not finished yet does not exist; otherwise
      // the caller goes on there.
      if (it->second->intent.load() == kIntentMkdir)
        return Status::NotFound("lustre: '" + join(comps, i + 1) + "' does not exist");
      t_redirect = Redirect{it->second->remote_mdt, std::string("/") + kRemoteDirName + "/" + it->second->remote_name,
                            static_cast<uint32_t>(i + 1), false};
      return Status::Aborted("lustre: '" + join(comps, i + 1) + "' lives on MDT " +
                             std::to_string(it->second->remote_mdt));
    }
    if (i + 1 == n) return it->second;
    const Inode* next = it->second.get();
    std::shared_lock<std::shared_mutex> next_lk(next->mu);  // before the parent's lock goes
    lk = std::move(next_lk);
    cur = next;
  }
}

Result<InodeRef> Mds::lookup(const Identity& id, std::string_view path) const {
  STOR_ASSIGN_OR_RETURN(auto comps, split_path(path));
  return walk(id, comps, comps.size(), path);
}

Result<Mds::Parent> Mds::resolve_parent(const Identity& id, std::string_view path) const {
  STOR_ASSIGN_OR_RETURN(auto comps, split_path(path));
  if (comps.empty())
    return Status::InvalidArgument("lustre: operation not allowed on the file system root");
  STOR_ASSIGN_OR_RETURN(InodeRef dir, walk(id, comps, comps.size() - 1, path));
  return Parent{std::move(dir), comps.back()};
}

// Checks, with the directory locked, that an entry may be added to or removed from it.
static Status check_dir_writable(const Inode& dir, const Identity& id, std::string_view path) {
  if (!dir.is_dir())
    return Status::NotADirectory("lustre: parent of '" + std::string(path) + "' is not a directory");
  if (!dir.linked)
    return Status::NotFound("lustre: parent directory of '" + std::string(path) + "' was removed");
  if (!permitted(dir, id, kPermW | kPermX)) return denied(kPermW | kPermX, std::string(path) + "/..", id);
  return Status::ok();
}

Result<FileInfo> Mds::stat(const Identity& id, std::string_view path) {
  STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
  std::shared_lock lk(n->mu);
  FileInfo fi;
  fi.path = std::string(path);
  fi.type = to_file_type(n->type);
  fi.size = n->size;
  fi.mode = n->mode;
  fi.uid = n->uid;
  fi.gid = n->gid;
  fi.mtime_ns = n->mtime_ns;
  return fi;
}

Result<std::vector<DirEntry>> Mds::readdir(const Identity& id, std::string_view path,
                                           std::vector<std::string>* remote_files) {
  STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
  std::vector<InodeRef> kids;
  std::vector<DirEntry> out;
  {
    std::shared_lock lk(n->mu);
    if (!n->is_dir()) return Status::NotADirectory("lustre: '" + std::string(path) + "' is not a directory");
    if (!permitted(*n, id, kPermR)) return denied(kPermR, path, id);
    out.reserve(n->children.size());
    kids.reserve(n->children.size());
    for (auto& [name, child] : n->children) {
      if (child->remote() && child->intent.load() == kIntentMkdir) continue;  // not made yet
      if (n == root_ && name == kRemoteDirName) continue;  // several MDTs: internal
      out.push_back(DirEntry{name, to_file_type(child->type), 0});
      kids.push_back(child);
      if (remote_files && child->remote() && !child->is_dir()) remote_files->push_back(name);
    }
  }
  for (size_t i = 0; i < kids.size(); ++i) {
    if (out[i].type != FileType::kRegular) continue;
    std::shared_lock lk(kids[i]->mu);
    out[i].size = kids[i]->size;
  }
  return out;
}

pb::WalRecord Mds::create_record(const Parent& p, const Identity& id, pb::InodeType type, uint32_t mode) {
  pb::WalRecord rec;
  rec.set_op(pb::WalRecord::CREATE);
  rec.set_parent(p.dir->ino);
  rec.set_name(p.name);
  auto* in = rec.mutable_inode();
  in->set_ino(next_ino_.fetch_add(1));
  in->set_type(type);
  in->set_mode(mode & 07777);
  in->set_uid(id.uid);
  // BSD/setgid-directory semantics: a setgid parent hands its group down.
  in->set_gid((p.dir->mode & S_ISGID) ? p.dir->gid : id.primary_gid());
  in->set_mtime_ns(now_ns());
  in->set_ctime_ns(in->mtime_ns());
  return rec;
}

Status Mds::mkdir(const Identity& id, std::string_view path, uint32_t mode,
                  const std::function<uint32_t(uint64_t, const std::string&)>& placement, RemoteEntry* remote) {
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(Parent p, resolve_parent(id, path));
    std::unique_lock lk(p.dir->mu);
    STOR_RETURN_IF_ERROR(check_dir_writable(*p.dir, id, path));
    if (p.dir->children.count(p.name))
      return Status::AlreadyExists("lustre: '" + std::string(path) + "' already exists");
    pb::WalRecord rec = create_record(p, id, pb::DIRECTORY, mode);
    auto* in = rec.mutable_inode();
    if (p.dir->mode & S_ISGID) in->set_mode(in->mode() | S_ISGID);  // and keeps subdirectories setgid
    *in->mutable_dir_default() = p.dir->dir_default;  // subdirectories inherit the default layout
    const uint32_t mdt = placement && remote ? placement(p.dir->ino, p.name) : opts_.mdt_index;
    if (mdt != opts_.mdt_index) {
      // The directory goes to another MDT: this entry names it there and stays invisible until
      // the caller made it and finish_intent committed (the intent is what recovery re-drives).
      remote->ino = in->ino();
      remote->mdt = mdt;
      remote->name = std::to_string(opts_.mdt_index) + "." + std::to_string(in->ino());
      remote->intent = kIntentMkdir;
      remote->attrs = *in;
      in->clear_dir_default();
      in->set_remote_mdt(mdt);
      in->set_remote_name(remote->name);
      in->set_intent(kIntentMkdir);
    }
    STOR_RETURN_IF_ERROR(log(rec));
    apply_create(p.dir, p.name, *in);
  }
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::remove(const Identity& id, std::string_view path, RemoteEntry* remote) {
  InodeRef dead;
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(Parent p, resolve_parent(id, path));
    std::unique_lock lk(p.dir->mu);
    STOR_RETURN_IF_ERROR(check_dir_writable(*p.dir, id, path));
    auto it = p.dir->children.find(p.name);
    if (it == p.dir->children.end())
      return Status::NotFound("lustre: '" + std::string(path) + "' does not exist");
    InodeRef victim = it->second;
    std::unique_lock vlk(victim->mu);
    if (!sticky_allows(*p.dir, *victim, id))
      return Status::PermissionDenied("lustre: sticky directory: uid " + std::to_string(id.uid) +
                                                 " may not remove '" + std::string(path) + "'");
    if (victim->is_dir() && !victim->children.empty())
      return Status::NotEmpty("lustre: directory '" + std::string(path) + "' is not empty");
    if (!victim->remote() && victim->intent.load() != 0)
      return Status::Busy("lustre: '" + std::string(path) + "' is being moved to another MDT");
    if (victim->remote()) {
      // Its directory lives on another MDT: only the intent is logged here; the caller removes
      // the directory there (if empty) and then finish_intent removes this entry.
      if (!remote) return Status::Unsupported("lustre: '" + std::string(path) + "' lives on another MDT");
      if (victim->intent.load() == kIntentMkdir)
        return Status::NotFound("lustre: '" + std::string(path) + "' does not exist");
      if (victim->intent.load() != 0)
        return Status::Busy("lustre: '" + std::string(path) + "' is being removed");
      pb::WalRecord rec;
      rec.set_op(pb::WalRecord::SET_ATTR);
      rec.set_attr_mask(kAttrIntent);
      rec.mutable_inode()->set_ino(victim->ino);
      rec.mutable_inode()->set_intent(kIntentRmdir);
      STOR_RETURN_IF_ERROR(log(rec));
      victim->intent = kIntentRmdir;
      *remote = RemoteEntry{victim->ino, victim->remote_mdt, victim->remote_name, kIntentRmdir, {}, 0, {}, 0, 0};
      remote->attrs.set_type(victim->type);  // a directory (rmdir) or a file renamed there (unlink)
      return Status::ok();
    }
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::UNLINK);
    rec.set_parent(p.dir->ino);
    rec.set_name(p.name);
    STOR_RETURN_IF_ERROR(log(rec));
    dead = apply_unlink(*p.dir, p.name);
  }
  reap({dead});
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::rename(const Identity& id, std::string_view from, std::string_view to) {
  InodeRef dead;
  {
    std::lock_guard rl(rename_mu_);
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(Parent sp, resolve_parent(id, from));
    auto dpr = resolve_parent(id, to);
    if (!dpr) {
      if (t_redirect) t_redirect->new_path = true;
      return dpr.status();
    }
    Parent dp = std::move(*dpr);
    // Lock parents ancestor-first (others lock parent before child); unrelated ones in any
    // order, as only renames hold two unrelated directories and they are serialised.
    std::unique_lock<std::shared_mutex> l1, l2;
    if (sp.dir == dp.dir) {
      l1 = std::unique_lock(sp.dir->mu);
    } else if (is_ancestor(dp.dir.get(), sp.dir)) {
      l1 = std::unique_lock(dp.dir->mu);
      l2 = std::unique_lock(sp.dir->mu);
    } else {
      l1 = std::unique_lock(sp.dir->mu);
      l2 = std::unique_lock(dp.dir->mu);
    }
    STOR_RETURN_IF_ERROR(check_dir_writable(*sp.dir, id, from));
    STOR_RETURN_IF_ERROR(check_dir_writable(*dp.dir, id, to));
    auto sit = sp.dir->children.find(sp.name);
    if (sit == sp.dir->children.end())
      return Status::NotFound("lustre: rename source '" + std::string(from) + "' does not exist");
    InodeRef src = sit->second;
    if (src->remote() && src->intent.load() == kIntentMkdir)
      return Status::NotFound("lustre: rename source '" + std::string(from) + "' does not exist");
    if (src->intent.load() != 0)
      return Status::Busy("lustre: rename source '" + std::string(from) + "' is being removed or moved");
    if (src->is_dir() && is_ancestor(src.get(), dp.dir))
      return Status::InvalidArgument("lustre: cannot move directory '" + std::string(from) +
                                                "' into itself ('" + std::string(to) + "')");
    InodeRef dst;
    if (auto dit = dp.dir->children.find(dp.name); dit != dp.dir->children.end()) dst = dit->second;
    if (dst == src) return Status::ok();
    {
      std::shared_lock slk(src->mu);
      if (!sticky_allows(*sp.dir, *src, id))
        return Status::PermissionDenied("lustre: sticky directory: uid " + std::to_string(id.uid) +
                                                   " may not rename '" + std::string(from) + "'");
    }
    std::unique_lock<std::shared_mutex> dlk;
    if (dst && dst->remote() && dst->intent.load() != 0)
      return Status::Busy("lustre: rename target '" + std::string(to) + "' is being made or removed");
    if (dst && dst->remote())
      return Status::Unsupported("lustre: rename over '" + std::string(to) +
                                 "', which lives on another MDT (remove it first)");
    if (dst) {
      if (is_ancestor(dst.get(), sp.dir))
        return Status::NotEmpty("lustre: rename target '" + std::string(to) + "' is a non-empty directory");
      dlk = std::unique_lock(dst->mu);
      if (!sticky_allows(*dp.dir, *dst, id))
        return Status::PermissionDenied("lustre: sticky directory: uid " + std::to_string(id.uid) +
                                                   " may not replace '" + std::string(to) + "'");
      if (src->is_dir() && !dst->is_dir())
        return Status::NotADirectory("lustre: rename target '" + std::string(to) + "' is not a directory");
      if (!src->is_dir() && dst->is_dir())
        return Status::IsADirectory("lustre: rename target '" + std::string(to) + "' is a directory");
      if (dst->is_dir() && !dst->children.empty())
        return Status::NotEmpty("lustre: rename target '" + std::string(to) + "' is a non-empty directory");
    }
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::RENAME);
    rec.set_parent(sp.dir->ino);
    rec.set_name(sp.name);
    rec.set_new_parent(dp.dir->ino);
    rec.set_new_name(dp.name);
    STOR_RETURN_IF_ERROR(log(rec));
    // One in-memory step under both directory locks: observers see old or new, never neither.
    sp.dir->children.erase(sp.name);
    if (dst) dead = apply_unlink(*dp.dir, dp.name);
    dp.dir->children[dp.name] = src;
    src->parent = dp.dir;
    int64_t t = now_ns();
    sp.dir->mtime_ns = dp.dir->mtime_ns = t;
  }
  reap({dead});
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::chmod(const Identity& id, std::string_view path, uint32_t mode) {
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
    std::unique_lock lk(n->mu);
    if (id.uid != 0 && id.uid != n->uid)
      return Status::PermissionDenied("lustre: only the owner or root may chmod '" + std::string(path) + "'");
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::SET_ATTR);
    rec.set_attr_mask(kAttrMode);
    rec.mutable_inode()->set_ino(n->ino);
    uint32_t m = mode & 07777;
    // Like the kernel: a non-member may not leave the setgid bit on a file.
    if (id.uid != 0 && !n->is_dir() && !id.in_group(n->gid)) m &= ~static_cast<uint32_t>(S_ISGID);
    rec.mutable_inode()->set_mode(m);
    rec.mutable_inode()->set_ctime_ns(now_ns());
    STOR_RETURN_IF_ERROR(log(rec));
    apply_setattr(*n, rec);
  }
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::chown(const Identity& id, std::string_view path, uint32_t uid, uint32_t gid) {
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
    std::unique_lock lk(n->mu);
    if (id.uid != 0) {
      if (uid != UINT32_MAX && uid != n->uid)
        return Status::PermissionDenied("lustre: only root may change the owner of '" + std::string(path) + "'");
      if (id.uid != n->uid)
        return Status::PermissionDenied("lustre: only the owner or root may change the group of '" +
                                                   std::string(path) + "'");
      if (gid != UINT32_MAX && !id.in_group(gid))
        return Status::PermissionDenied("lustre: uid " + std::to_string(id.uid) + " is not in group " +
                                                   std::to_string(gid));
    }
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::SET_ATTR);
    uint32_t mask = 0;
    if (uid != UINT32_MAX) mask |= kAttrUid, rec.mutable_inode()->set_uid(uid);
    if (gid != UINT32_MAX) mask |= kAttrGid, rec.mutable_inode()->set_gid(gid);
    uint32_t mode = n->mode;
    // Ownership changes by non-root drop setuid/setgid on files, as POSIX requires.
    if (!n->is_dir() && (mode & (S_ISUID | S_ISGID))) {
      mode &= ~static_cast<uint32_t>(S_ISUID | S_ISGID);
      mask |= kAttrMode;
      rec.mutable_inode()->set_mode(mode);
    }
    rec.set_attr_mask(mask);
    rec.mutable_inode()->set_ino(n->ino);
    rec.mutable_inode()->set_ctime_ns(now_ns());
    STOR_RETURN_IF_ERROR(log(rec));
    apply_setattr(*n, rec);
  }
  maybe_checkpoint();
  return Status::ok();
}

Result<Mds::Opened> Mds::open_file(const Identity& id, std::string_view path, uint32_t flags, uint32_t mode,
                                   const pb::Layout* layout_template) {
  int want = 0;
  if (flags & kOpenRead) want |= kPermR;
  if (flags & (kOpenWrite | kOpenTruncate)) want |= kPermW;
  auto check_existing = [&](Inode& n) -> Status {
    if (n.is_dir()) return Status::IsADirectory("lustre: '" + std::string(path) + "' is a directory");
    if (want && !permitted(n, id, want)) return denied(want, path, id);
    return Status::ok();
  };
  if (layout_template) STOR_RETURN_IF_ERROR(validate_layout(*layout_template, target_count_));

  if (!(flags & kOpenCreate)) {
    STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
    std::unique_lock lk(n->mu);
    STOR_RETURN_IF_ERROR(check_existing(*n));
    ++n->open_count;
    return Opened{n, false};
  }

  Opened out;
  {
    std::shared_lock st(state_mu_);
    const InodeRef rd = remote_dir();  // before any directory lock: it takes the root's
    STOR_ASSIGN_OR_RETURN(Parent p, resolve_parent(id, path));
    std::unique_lock lk(p.dir->mu);
    if (!p.dir->is_dir())
      return Status::NotADirectory("lustre: parent of '" + std::string(path) + "' is not a directory");
    if (auto it = p.dir->children.find(p.name); it != p.dir->children.end()) {
      if (flags & kOpenExclusive)
        return Status::AlreadyExists("lustre: '" + std::string(path) + "' already exists");
      InodeRef n = it->second;
      if (n->remote() && !n->is_dir()) {
        // A file renamed here from another MDT: it is opened where its inode lives.
        STOR_ASSIGN_OR_RETURN(auto comps, split_path(path));
        t_redirect = Redirect{n->remote_mdt, std::string("/") + kRemoteDirName + "/" + n->remote_name,
                              static_cast<uint32_t>(comps.size()), false};
        return Status::Aborted("lustre: '" + std::string(path) + "' lives on MDT " + std::to_string(n->remote_mdt));
      }
      std::unique_lock nlk(n->mu);
      STOR_RETURN_IF_ERROR(check_existing(*n));
      ++n->open_count;
        return Opened{n, false};
    }
    STOR_RETURN_IF_ERROR(check_dir_writable(*p.dir, id, path));
    // Only cross-MDT operations add entries there; a client following a stale route to a file
    // renamed here (since removed) must not create a stray one.
    if (p.dir == rd) return Status::NotFound("lustre: '" + std::string(path) + "' does not exist");
    const pb::Layout& tmpl = layout_template                        ? *layout_template
                             : p.dir->dir_default.components_size() ? p.dir->dir_default
                                                                    : fs_default_;
    pb::WalRecord rec = create_record(p, id, pb::REGULAR, mode);
    auto* in = rec.mutable_inode();
    *in->mutable_layout() = resolve_layout(tmpl, target_count_, rr_.fetch_add(1) % target_count_);
    STOR_RETURN_IF_ERROR(log(rec));
    out.inode = apply_create(p.dir, p.name, *in);
    out.inode->open_count = 1;
    out.inode->may_have_objects = false;  // objects are created on first write
    out.created = true;
  }
  maybe_checkpoint();
  return out;
}

void Mds::close_file(const InodeRef& n) {
  if (!n) return;
  bool reap_now;
  {
    std::unique_lock lk(n->mu);
    reap_now = --n->open_count == 0 && !n->linked;
  }
  if (reap_now) reap({n});
}

Status Mds::set_layout(const Identity& id, std::string_view path, const pb::Layout& tmpl) {
  STOR_RETURN_IF_ERROR(validate_layout(tmpl, target_count_));
  pb::Layout old;
  uint64_t ino = 0;
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
    std::unique_lock lk(n->mu);
    if (id.uid != 0 && id.uid != n->uid && !permitted(*n, id, kPermW)) return denied(kPermW, path, id);
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::SET_LAYOUT);
    rec.mutable_inode()->set_ino(n->ino);
    if (n->is_dir()) {
      *rec.mutable_inode()->mutable_dir_default() = tmpl;
    } else {
      if (n->size != 0)
        return Status::Busy("lustre: '" + std::string(path) +
                                       "' has data; a layout can only be set on an empty file");
      *rec.mutable_inode()->mutable_layout() = resolve_layout(tmpl, target_count_, rr_.fetch_add(1) % target_count_);
    }
    STOR_RETURN_IF_ERROR(log(rec));
    if (n->is_dir()) {
      n->dir_default = rec.inode().dir_default();
    } else {
      old = n->layout;
      ino = n->ino;
      n->layout = rec.inode().layout();
    }
  }
  // The old layout's objects hold no data (size was 0) but may exist; drop them.
  if (ino && reaper_) reaper_(ino, old);
  maybe_checkpoint();
  return Status::ok();
}

Result<std::pair<pb::Layout, bool>> Mds::get_layout(const Identity& id, std::string_view path) {
  STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
  std::shared_lock lk(n->mu);
  if (n->is_dir()) return std::make_pair(n->dir_default, true);
  return std::make_pair(n->layout, false);
}

Status Mds::extend_size(Inode& n, uint64_t end) {
  if (end > kMaxFileSize) return Status::InvalidArgument("lustre: file size past 2^63 - 1 bytes");
  {
    std::shared_lock st(state_mu_);
    std::unique_lock lk(n.mu);
    int64_t t = now_ns();
    if (end <= n.size || !n.linked) {
      n.mtime_ns = t;  // in memory only: mtime of overwrites is not worth a log record each
      return Status::ok();
    }
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::SET_ATTR);
    rec.set_attr_mask(kAttrSize | kAttrMtime);
    rec.mutable_inode()->set_ino(n.ino);
    rec.mutable_inode()->set_size(end);
    rec.mutable_inode()->set_mtime_ns(t);
    STOR_RETURN_IF_ERROR(log(rec));
    apply_setattr(n, rec);
  }
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::set_size(Inode& n, uint64_t size) {
  if (size > kMaxFileSize) return Status::InvalidArgument("lustre: file size past 2^63 - 1 bytes");
  {
    std::shared_lock st(state_mu_);
    std::unique_lock lk(n.mu);
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::SET_ATTR);
    rec.set_attr_mask(kAttrSize | kAttrMtime);
    rec.mutable_inode()->set_ino(n.ino);
    rec.mutable_inode()->set_size(size);
    rec.mutable_inode()->set_mtime_ns(now_ns());
    if (n.linked) STOR_RETURN_IF_ERROR(log(rec));
    apply_setattr(n, rec);
  }
  maybe_checkpoint();
  return Status::ok();
}

std::string entry_name_problem(const std::string& name) { return name_problem(name); }

Result<InodeRef> Mds::inode_for_write(const Identity& id, uint64_t ino) {
  InodeRef n;
  {
    decltype(inodes_)::const_accessor a;
    if (!inodes_.find(a, ino)) return Status::NotFound("lustre: inode " + std::to_string(ino) + " does not exist");
    n = a->second;
  }
  std::shared_lock lk(n->mu);
  if (n->is_dir()) return Status::IsADirectory("lustre: inode " + std::to_string(ino) + " is a directory");
  if (!permitted(*n, id, kPermW)) return denied(kPermW, "inode " + std::to_string(ino), id);
  return n;
}

Result<InodeRef> Mds::reopen_file(const Identity& id, uint64_t ino, bool write) {
  InodeRef n;
  {
    decltype(inodes_)::const_accessor a;
    if (!inodes_.find(a, ino)) return Status::NotFound("lustre: inode " + std::to_string(ino) + " does not exist");
    n = a->second;
  }
  std::unique_lock lk(n->mu);
  if (n->is_dir()) return Status::IsADirectory("lustre: inode " + std::to_string(ino) + " is a directory");
  const int want = write ? kPermW : kPermR;
  if (!permitted(*n, id, want)) return denied(want, "inode " + std::to_string(ino), id);
  ++n->open_count;
  return n;
}

Result<uint64_t> Mds::inode_number(const Identity& id, std::string_view path) {
  STOR_ASSIGN_OR_RETURN(InodeRef n, lookup(id, path));
  return n->ino;
}

}  // namespace stor::lustre

namespace stor::lustre {

int64_t Mds::object_limit(uint64_t ino, uint32_t component, uint32_t stripe, uint32_t target) const {
  decltype(inodes_)::const_accessor a;
  if (!inodes_.find(a, ino)) return -1;
  std::shared_lock lk(a->second->mu);
  const auto& l = a->second->layout;
  if (a->second->is_dir() || static_cast<int>(component) >= l.components_size()) return -1;
  const auto& c = l.components(static_cast<int>(component));
  if (static_cast<int>(stripe) >= c.targets_size() || c.targets(static_cast<int>(stripe)) != target) return -1;
  auto limit = object_size_for(l, component, stripe, a->second->size);
  // Loaded layouts are validated; should one still be unusable, leave its objects alone rather
  // than delete or cut them.
  return limit ? static_cast<int64_t>(*limit) : INT64_MAX;
}



// ---- Several MDTs (docs/lustre.md "Several MDTs") ----

void Mds::set_redirect(const Redirect& r) { t_redirect = r; }

std::optional<Redirect> Mds::take_redirect() {
  std::optional<Redirect> r;
  r.swap(t_redirect);
  return r;
}

Status Mds::finish_intent(uint64_t ino, bool commit) {
  InodeRef n;
  {
    decltype(inodes_)::const_accessor a;
    if (!inodes_.find(a, ino)) return Status::ok();  // the entry is gone: finished before
    n = a->second;
  }
  const InodeRef rd = remote_dir();  // before any directory lock: it takes the root's
  {
    std::lock_guard rl(rename_mu_);  // keeps n->parent stable
    std::shared_lock st(state_mu_);
    InodeRef parent = n->parent.lock();
    if (!parent) return Status::ok();
    std::unique_lock lk(parent->mu);
    const uint32_t intent = n->intent.load();
    if (intent == 0 || !n->linked) return Status::ok();
    std::string name;
    for (auto& [k, v] : parent->children)
      if (v == n) {
        name = k;
        break;
      }
    if (name.empty()) return Status::ok();
    pb::WalRecord rec;
    if (intent == kIntentMove && commit && !n->remote() && parent != rd) {
      // A directory moved to another MDT's namespace stays here, in /.stor-remote, named as the
      // remote entry there names it; then the intent is cleared (below, next call or recovery).
      if (!rd) return Status::Internal("lustre: no " + std::string(kRemoteDirName) + " on this MDT");
      std::unique_lock rlk(rd->mu);
      const std::string target = std::to_string(opts_.mdt_index) + "." + std::to_string(n->ino);
      rec.set_op(pb::WalRecord::RENAME);
      rec.set_parent(parent->ino);
      rec.set_name(name);
      rec.set_new_parent(rd->ino);
      rec.set_new_name(target);
      STOR_RETURN_IF_ERROR(log(rec));
      parent->children.erase(name);
      rd->children[target] = n;
      n->parent = rd;
      parent->mtime_ns = now_ns();
      rec.Clear();
    }
    if (intent == kIntentMove && commit && n->remote()) {
      // A remote entry moved: the other MDT has its own entry for the directory now.
      rec.set_op(pb::WalRecord::UNLINK);
      rec.set_parent(parent->ino);
      rec.set_name(name);
      STOR_RETURN_IF_ERROR(log(rec));
      apply_unlink(*parent, name);
      parent->mtime_ns = now_ns();
    } else if (intent != kIntentMove && (intent == kIntentMkdir) != commit) {  // an undone mkdir, a done rmdir: the entry goes
      rec.set_op(pb::WalRecord::UNLINK);
      rec.set_parent(parent->ino);
      rec.set_name(name);
      STOR_RETURN_IF_ERROR(log(rec));
      apply_unlink(*parent, name);  // a directory: nothing to reap
      parent->mtime_ns = now_ns();
    } else {
      rec.set_op(pb::WalRecord::SET_ATTR);
      rec.set_attr_mask(kAttrIntent);
      rec.mutable_inode()->set_ino(n->ino);
      rec.mutable_inode()->set_intent(0);
      STOR_RETURN_IF_ERROR(log(rec));
      n->intent = 0;
    }
  }
  maybe_checkpoint();
  return Status::ok();
}

void Mds::for_each_local_entry(const std::function<void(const Inode&)>& visit) {
  std::unique_lock st(state_mu_);  // no mutation runs: the tree is stable
  std::vector<const Inode*> stack{root_.get()};
  while (!stack.empty()) {
    const Inode* d = stack.back();
    stack.pop_back();
    for (auto& [name, child] : d->children) {
      visit(*child);
      if (child->is_dir() && !child->remote()) stack.push_back(child.get());
    }
  }
}

std::vector<RemoteEntry> Mds::remote_entries() {
  std::vector<RemoteEntry> out;
  for_each_local_entry([&](const Inode& child) {
    if (!child.remote()) return;
    out.push_back(RemoteEntry{child.ino, child.remote_mdt, child.remote_name, child.intent.load(), {}, 0, {}, 0, 0});
    fill_inode_pb(child, &out.back().attrs);
  });
  return out;
}

std::vector<RemoteEntry> Mds::pending_intents() {
  std::vector<RemoteEntry> out;
  for_each_local_entry([&](const Inode& child) {
    const uint32_t i = child.intent.load();
    if (i == 0) return;
    RemoteEntry e{child.ino, child.remote_mdt, child.remote_name, i, {}, 0, {}, 0, 0};
    fill_inode_pb(child, &e.attrs);
    if (i == kIntentMove) {
      if (!child.remote()) {
        e.mdt = opts_.mdt_index;
        e.name = std::to_string(opts_.mdt_index) + "." + std::to_string(child.ino);
      }
      e.to_mdt = child.intent_mdt;
      e.to_path = child.intent_path;
      e.uid = child.intent_uid;
      e.gid = child.intent_gid;
    }
    out.push_back(std::move(e));
  });
  return out;
}

Status Mds::begin_move(const Identity& id, std::string_view from, uint32_t to_mdt, const std::string& to_path,
                       RemoteEntry* out) {
  if (!remote_dir()) return Status::Unsupported("lustre: this MDT has no " + std::string(kRemoteDirName));
  std::lock_guard rl(rename_mu_);
  std::shared_lock st(state_mu_);
  STOR_ASSIGN_OR_RETURN(Parent sp, resolve_parent(id, from));
  std::unique_lock lk(sp.dir->mu);
  STOR_RETURN_IF_ERROR(check_dir_writable(*sp.dir, id, from));
  auto it = sp.dir->children.find(sp.name);
  if (it == sp.dir->children.end() || (it->second->remote() && it->second->intent.load() == kIntentMkdir))
    return Status::NotFound("lustre: rename source '" + std::string(from) + "' does not exist");
  InodeRef src = it->second;
  std::unique_lock slk(src->mu);
  if (src->intent.load() != 0) return Status::Busy("lustre: rename source '" + std::string(from) + "' is busy");
  if (!sticky_allows(*sp.dir, *src, id))
    return Status::PermissionDenied("lustre: sticky directory: uid " + std::to_string(id.uid) + " may not rename '" +
                                    std::string(from) + "'");
  pb::WalRecord rec;
  rec.set_op(pb::WalRecord::SET_ATTR);
  rec.set_attr_mask(kAttrIntent);
  auto* in = rec.mutable_inode();
  in->set_ino(src->ino);
  in->set_intent(kIntentMove);
  in->set_intent_mdt(to_mdt);
  in->set_intent_path(to_path);
  in->set_intent_uid(id.uid);
  in->set_intent_gid(id.primary_gid());
  STOR_RETURN_IF_ERROR(log(rec));
  apply_setattr(*src, rec);
  *out = RemoteEntry{src->ino, src->remote() ? src->remote_mdt : opts_.mdt_index,
                     src->remote() ? src->remote_name : std::to_string(opts_.mdt_index) + "." + std::to_string(src->ino),
                     kIntentMove, {}, to_mdt, to_path, id.uid, id.primary_gid()};
  out->attrs.set_type(src->type);  // the other MDT links a directory or a file
  return Status::ok();
}

Status Mds::peer_link(const Identity& id, std::string_view path, uint32_t mdt, const std::string& name,
                      pb::InodeType type) {
  if (std::string b = name_problem(name); !b.empty()) return Status::InvalidArgument("lustre: remote entry: " + b);
  if (type != pb::REGULAR && type != pb::DIRECTORY) return Status::InvalidArgument("lustre: remote entry: bad type");
  // A file coming back to the MDT holding its inode: it leaves /.stor-remote for the new name.
  if (type == pb::REGULAR && mdt == opts_.mdt_index) return rehome(id, path, name);
  InodeRef dead;
  {
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(Parent p, resolve_parent(id, path));
    std::unique_lock lk(p.dir->mu);
    STOR_RETURN_IF_ERROR(check_dir_writable(*p.dir, id, path));
    if (p.dir == root_ && p.name == kRemoteDirName)
      return Status::InvalidArgument("lustre: rename target '" + std::string(path) + "' is internal");
    bool replace = false;
    if (auto it = p.dir->children.find(p.name); it != p.dir->children.end()) {
      const InodeRef old = it->second;
      if (old->remote() && old->remote_mdt == mdt && old->remote_name == name)
        return Status::ok();  // linked before (a re-driven intent)
      STOR_RETURN_IF_ERROR(check_replace(*p.dir, *old, type, id, path));
      replace = true;
    }
    pb::WalRecord rec = create_record(p, id, type, type == pb::DIRECTORY ? 0755 : 0644);
    auto* in = rec.mutable_inode();
    in->set_remote_mdt(mdt);
    in->set_remote_name(name);
    // One record replaces the old file (or empty directory) and names the new one: a crash
    // leaves one or the other.
    rec.set_replace(replace);
    STOR_RETURN_IF_ERROR(log(rec));
    if (replace) dead = apply_unlink(*p.dir, p.name);
    apply_create(p.dir, p.name, *in);
  }
  reap({dead});
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::check_replace(const Inode& dir, Inode& old, pb::InodeType type, const Identity& id, std::string_view path) {
  std::shared_lock olk(old.mu);
  if (old.remote() || old.intent.load() != 0)
    return Status::AlreadyExists("lustre: rename target '" + std::string(path) +
                                 "' exists and lives on another MDT or is being moved (remove it first)");
  if (type == pb::DIRECTORY) {
    if (!old.is_dir())
      return Status::NotADirectory("lustre: rename target '" + std::string(path) + "' is not a directory");
    if (!old.children.empty())
      return Status::NotEmpty("lustre: rename target '" + std::string(path) + "' is a non-empty directory");
  } else if (old.is_dir()) {
    return Status::IsADirectory("lustre: rename target '" + std::string(path) + "' is a directory");
  }
  if (!sticky_allows(dir, old, id))
    return Status::PermissionDenied("lustre: sticky directory: uid " + std::to_string(id.uid) + " may not replace '" +
                                    std::string(path) + "'");
  return Status::ok();
}

Status Mds::rehome(const Identity& id, std::string_view path, const std::string& name) {
  const InodeRef rd = remote_dir();
  if (!rd) return Status::InvalidArgument("lustre: this MDT has no " + std::string(kRemoteDirName));
  InodeRef dead;
  {
    std::lock_guard rl(rename_mu_);  // parent pointers stay put for the lock order
    std::shared_lock st(state_mu_);
    STOR_ASSIGN_OR_RETURN(Parent p, resolve_parent(id, path));
    if (p.dir == rd) return Status::InvalidArgument("lustre: rename target '" + std::string(path) + "' is internal");
    std::unique_lock<std::shared_mutex> l1, l2;
    if (is_ancestor(p.dir.get(), rd)) {
      l1 = std::unique_lock(p.dir->mu);
      l2 = std::unique_lock(rd->mu);
    } else {
      l1 = std::unique_lock(rd->mu);
      l2 = std::unique_lock(p.dir->mu);
    }
    STOR_RETURN_IF_ERROR(check_dir_writable(*p.dir, id, path));
    auto sit = rd->children.find(name);
    // Gone: moved out before (a re-driven intent); nothing else removes it while the
    // coordinator's remote entry carries the rename intent (its unlink waits: Busy).
    if (sit == rd->children.end()) return Status::ok();
    const InodeRef src = sit->second;
    if (src->is_dir() || src->remote())
      return Status::InvalidArgument("lustre: /" + std::string(kRemoteDirName) + "/" + name + " is not a file");
    InodeRef old;
    if (auto it = p.dir->children.find(p.name); it != p.dir->children.end()) {
      old = it->second;
      STOR_RETURN_IF_ERROR(check_replace(*p.dir, *old, pb::REGULAR, id, path));
    }
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::RENAME);
    rec.set_parent(rd->ino);
    rec.set_name(name);
    rec.set_new_parent(p.dir->ino);
    rec.set_new_name(p.name);
    STOR_RETURN_IF_ERROR(log(rec));
    rd->children.erase(sit);
    if (old) dead = apply_unlink(*p.dir, p.name);
    p.dir->children[p.name] = src;
    src->parent = p.dir;
    rd->mtime_ns = p.dir->mtime_ns = now_ns();
  }
  reap({dead});
  maybe_checkpoint();
  return Status::ok();
}

InodeRef Mds::remote_dir() const {
  std::shared_lock lk(root_->mu);
  auto it = root_->children.find(kRemoteDirName);
  return it == root_->children.end() || !it->second->is_dir() ? nullptr : it->second;
}

std::vector<std::string> Mds::root_names() {
  std::vector<std::string> out;
  InodeRef d = remote_dir();
  if (!d) return out;
  std::shared_lock lk(d->mu);
  for (auto& [name, child] : d->children) out.push_back(name);
  return out;
}

Status Mds::peer_mkdir(const std::string& name, const pb::Inode& attrs) {
  if (std::string b = name_problem(name); !b.empty()) return Status::InvalidArgument("lustre: remote directory: " + b);
  if (attrs.mode() & ~07777u) return Status::InvalidArgument("lustre: remote directory: mode has bits outside 07777");
  if (attrs.dir_default().components_size())
    STOR_RETURN_IF_ERROR(validate_layout(attrs.dir_default(), target_count_));
  InodeRef rd = remote_dir();
  if (!rd) return Status::InvalidArgument("lustre: this MDT has no " + std::string(kRemoteDirName) + " (a single-MDT file system)");
  {
    std::shared_lock st(state_mu_);
    std::unique_lock lk(rd->mu);
    if (rd->children.count(name)) return Status::ok();  // made before (a re-driven intent)
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::CREATE);
    rec.set_parent(rd->ino);
    rec.set_name(name);
    auto* in = rec.mutable_inode();
    in->set_ino(next_ino_.fetch_add(1));
    in->set_type(pb::DIRECTORY);
    in->set_mode(attrs.mode());
    in->set_uid(attrs.uid());
    in->set_gid(attrs.gid());
    in->set_mtime_ns(now_ns());
    in->set_ctime_ns(in->mtime_ns());
    *in->mutable_dir_default() = attrs.dir_default();
    STOR_RETURN_IF_ERROR(log(rec));
    apply_create(rd, name, *in);
  }
  maybe_checkpoint();
  return Status::ok();
}

Status Mds::peer_rmdir(const std::string& name, bool file) {
  if (std::string b = name_problem(name); !b.empty()) return Status::InvalidArgument("lustre: remote directory: " + b);
  InodeRef rd = remote_dir();
  if (!rd) return Status::ok();
  InodeRef dead;
  {
    std::shared_lock st(state_mu_);
    std::unique_lock lk(rd->mu);
    auto it = rd->children.find(name);
    if (it == rd->children.end()) return Status::ok();  // removed before (a re-driven intent)
    InodeRef victim = it->second;
    std::unique_lock vlk(victim->mu);
    if (file && (victim->is_dir() || victim->remote()))
      return Status::IsADirectory("lustre: remote file '" + name + "' is not a regular file");
    if (!file && !victim->is_dir())
      return Status::NotADirectory("lustre: remote directory '" + name + "' is not a directory");
    if (!victim->children.empty()) return Status::NotEmpty("lustre: directory is not empty");
    pb::WalRecord rec;
    rec.set_op(pb::WalRecord::UNLINK);
    rec.set_parent(rd->ino);
    rec.set_name(name);
    STOR_RETURN_IF_ERROR(log(rec));
    dead = apply_unlink(*rd, name);  // a file: its objects go (now, or at its last close)
  }
  reap({dead});
  maybe_checkpoint();
  return Status::ok();
}

}  // namespace stor::lustre
