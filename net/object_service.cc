#include "net/object_service.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

#include "net/server_stats.h"
#include "net/wire.h"

namespace stor::transport {

namespace {
constexpr size_t kMaxOpenObjects = 1024;  // descriptors kept open between calls

long sys_openat2(int dirfd, const char* path, const open_how& how) {
  return ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

// The status of a failed path operation on object `name`. ELOOP (a link met with O_NOFOLLOW or
// RESOLVE_NO_SYMLINKS) and EXDEV (RESOLVE_BENEATH: the path would leave the directory) are the
// refusals; they are PermissionDenied: the name is well-formed, the target will not follow it.
Status path_error(int err, const char* what, const std::string& name) {
  if (err == ELOOP || err == EXDEV)
    return Status::PermissionDenied(std::string(what) + " object '" + name +
                                               "': the path leads through a symbolic link, which stor-target does not follow");
  return Status::from_errno(err, std::string(what) + " object '" + name + "'");
}

std::string_view base_name(std::string_view name) {
  size_t slash = name.rfind('/');
  return slash == std::string_view::npos ? name : name.substr(slash + 1);
}
}  // namespace

struct ObjectService::OpenObject {
  int fd = -1;
  ~OpenObject() {
    if (fd >= 0) ::close(fd);
  }
};

Result<std::unique_ptr<ObjectService>> ObjectService::create(const std::string& dir, IoEngine* engine,
                                                             const ObjectServiceOptions& opts) {
  if (!engine) return Status::InvalidArgument("object service needs an IoEngine");
  // The directory itself is the operator's choice (it may be reached through a link); what lies
  // beneath it is not.
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOTDIR) return Status::NotADirectory("object directory " + dir + " is not a directory");
    return Status::from_errno(errno, "object directory " + dir);
  }
  bool openat2 = false;
  if (!opts.force_component_walk) {
    // ENOSYS before Linux 5.6; a seccomp filter may say EPERM. Either way the walk is as safe.
    open_how how{};
    how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long probe = sys_openat2(fd, ".", how);
    if (probe >= 0) {
      ::close(static_cast<int>(probe));
      openat2 = true;
    }
  }
  return std::unique_ptr<ObjectService>(new ObjectService(dir, engine, fd, openat2, opts.inline_cached_reads));
}

ObjectService::~ObjectService() {
  open_.clear();
  ::close(dir_fd_);
}

int ObjectService::open_beneath(int dirfd, std::string_view rel, int flags, mode_t mode) const {
  if (!(flags & O_CREAT)) mode = 0;
  if (use_openat2_) {
    open_how how{};
    // No O_NOFOLLOW: with O_PATH it would open a trailing link itself; RESOLVE_NO_SYMLINKS
    // refuses every link, the last component's too, with ELOOP.
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = mode;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    std::string path(rel);
    for (int tries = 0;; ++tries) {
      long fd = sys_openat2(dirfd, path.c_str(), how);
      if (fd >= 0) return static_cast<int>(fd);
      // EAGAIN: a concurrent rename raced the RESOLVE_BENEATH check; retrying is the documented answer.
      if (errno == EINTR || (errno == EAGAIN && tries < 16)) continue;
      return -errno;
    }
  }
  // No openat2: one component at a time, each opened with O_NOFOLLOW beneath the previous one.
  int cur = dirfd;
  size_t i = 0;
  for (;;) {
    size_t j = rel.find('/', i);
    bool last = j == std::string_view::npos;
    std::string comp(rel.substr(i, last ? std::string_view::npos : j - i));
    if (comp.empty() || comp == "." || comp == "..") {  // validated names have none; never step up
      if (cur != dirfd) ::close(cur);
      return -EXDEV;
    }
    int f = (last ? flags : O_PATH | O_DIRECTORY) | O_CLOEXEC | O_NOFOLLOW;
    int fd;
    do fd = ::openat(cur, comp.c_str(), f, mode);
    while (fd < 0 && errno == EINTR);
    int err = fd < 0 ? errno : 0;
    if (err == ENOTDIR) {
      // O_DIRECTORY | O_NOFOLLOW on a link says ENOTDIR; report it as the link it is.
      struct stat st {};
      if (::fstatat(cur, comp.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) err = ELOOP;
    }
    if (cur != dirfd) ::close(cur);
    if (fd < 0) return -err;
    if (last) return fd;
    cur = fd;
    i = j + 1;
  }
}

Status ObjectService::open_parent(const std::string& name, bool create, int* out) const {
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) {
    *out = dir_fd_;
    return {};
  }
  std::string_view parent(name.data(), slash);
  int fd = open_beneath(dir_fd_, parent, O_PATH | O_DIRECTORY);
  if (fd >= 0) {
    *out = fd;
    return {};
  }
  if (fd != -ENOENT || !create) return path_error(-fd, "open", name);
  // Make the missing directories one at a time beneath the last one: mkdirat never follows a
  // link, and the open after it refuses a link planted meanwhile.
  int cur = dir_fd_;
  size_t i = 0;
  while (i <= parent.size()) {
    size_t j = std::min(parent.find('/', i), parent.size());
    std::string comp(parent.substr(i, j - i));
    int next = open_beneath(cur, comp, O_PATH | O_DIRECTORY);
    if (next == -ENOENT) {
      if (::mkdirat(cur, comp.c_str(), 0777) != 0 && errno != EEXIST) next = -errno;
      else next = open_beneath(cur, comp, O_PATH | O_DIRECTORY);
    }
    if (cur != dir_fd_) ::close(cur);
    if (next < 0) return path_error(-next, "create", name);
    cur = next;
    i = j + 1;
  }
  *out = cur;
  return {};
}

Result<std::shared_ptr<ObjectService::OpenObject>> ObjectService::open_object(const std::string& name, bool create) {
  {
    std::lock_guard lk(mu_);
    if (auto it = open_.find(name); it != open_.end()) return it->second;
  }
  int fd = open_beneath(dir_fd_, name, O_RDWR | (create ? O_CREAT : 0), 0600);
  if (fd == -EMFILE || fd == -ENFILE) {
    // Out of descriptors: the cached ones are the first to give back (calls in flight keep theirs).
    {
      std::lock_guard lk(mu_);
      open_.clear();
    }
    fd = open_beneath(dir_fd_, name, O_RDWR | (create ? O_CREAT : 0), 0600);
  }
  if (fd == -ENOENT && create) {
    // Objects may live in sub-directories ("ab/123.0.1"): make the parents on first write.
    int parent = -1;
    STOR_RETURN_IF_ERROR(open_parent(name, true, &parent));
    fd = open_beneath(parent, base_name(name), O_RDWR | O_CREAT, 0600);
    if (parent != dir_fd_) ::close(parent);
  }
  if (fd < 0) return path_error(-fd, "open", name);
  auto obj = std::make_shared<OpenObject>();
  obj->fd = fd;
  // Only regular files are objects: no I/O on a FIFO or device node found in the directory.
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "open object '" + name + "'");
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument("object '" + name + "' is not a regular file");
  std::lock_guard lk(mu_);
  if (open_.size() >= kMaxOpenObjects) open_.clear();  // calls in flight keep their own reference
  auto [it, inserted] = open_.emplace(name, obj);
  return it->second;  // another thread may have opened it first: use that one
}

void ObjectService::forget(const std::string& name) {
  std::lock_guard lk(mu_);
  open_.erase(name);
}

ServerResult ObjectService::handle(const ServerCall& call) {
  if (call.opcode == kServerStatsOpcode) return stats();
  ServerResult r = dispatch(call);
  requests_.fetch_add(1, std::memory_order_relaxed);
  if (!r.status.is_ok()) errors_.fetch_add(1, std::memory_order_relaxed);
  else if (call.opcode == static_cast<uint16_t>(ObjectOp::kRead)) read_bytes_.fetch_add(r.payload_len, std::memory_order_relaxed);
  else if (call.opcode == static_cast<uint16_t>(ObjectOp::kWrite)) write_bytes_.fetch_add(call.payload.size(), std::memory_order_relaxed);
  return r;
}

ServerResult ObjectService::stats() {
  ServerStats s;
  s.role = "ost";
  size_t open_objects = 0;
  {
    std::lock_guard lk(mu_);
    open_objects = open_.size();
  }
  const auto up = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
  s.counters = {{"requests", requests_.load(std::memory_order_relaxed)},
                {"errors", errors_.load(std::memory_order_relaxed)},
                {"read_bytes", read_bytes_.load(std::memory_order_relaxed)},
                {"write_bytes", write_bytes_.load(std::memory_order_relaxed)},
                {"open_objects", open_objects},
                {"uptime_ms", static_cast<uint64_t>(up.count())}};
  return {Status(), encode_server_stats(s), 0};
}

ServerResult ObjectService::dispatch(const ServerCall& call) {
  auto c = decode_object_call(call.control);
  if (!c) return ServerResult{c.status(), {}, 0};
  if (call.opcode == static_cast<uint16_t>(ObjectOp::kList)) {
    if (!c->name.empty()) return ServerResult{Status::InvalidArgument("list takes no object name"), {}, 0};
    return list(*c, call);
  }
  if (Status s = validate_object_name(c->name); !s.is_ok()) return ServerResult{s, {}, 0};
  switch (static_cast<ObjectOp>(call.opcode)) {
    case ObjectOp::kRead: return read(*c, call);
    case ObjectOp::kWrite: return write(*c, call);
    case ObjectOp::kSync: return sync(*c);
    case ObjectOp::kTruncate: return truncate(*c);
    case ObjectOp::kStat: return stat(*c);
    case ObjectOp::kRemove: return remove(*c);
    case ObjectOp::kList: break;  // handled above
  }
  return ServerResult{Status::Unsupported("stor-target: unknown opcode " + std::to_string(call.opcode)), {}, 0};
}

ServerResult ObjectService::read(const ObjectCall& c, const ServerCall& call) {
  if (c.length > call.reply_buffer.size())
    return {Status::InvalidArgument("read of " + std::to_string(c.length) + " bytes exceeds the caller's buffer of " +
                                               std::to_string(call.reply_buffer.size())), {}, 0};
  if (c.offset + c.length < c.offset) return {Status::InvalidArgument("read range overflows"), {}, 0};
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  if (c.length == 0) return {};
  // What the page cache holds is copied right here (preadv2 RWF_NOWAIT never waits for the
  // device): through the engine every call costs two thread wake-ups (its completion thread, then
  // this one), which measured as a fifth of the target's CPU time per byte and, on a loaded
  // machine, as that many scheduling delays. What is not cached is read through the engine.
  CachedRead cached = inline_cached_reads_ ? read_cached((*obj)->fd, call.reply_buffer.data(), c.length, c.offset)
                                           : CachedRead{};
  if (cached.bytes == c.length || cached.eof) return {Status(), {}, cached.bytes};
  auto r = engine_->read((*obj)->fd, call.reply_buffer.data() + cached.bytes, c.length - cached.bytes,
                         c.offset + cached.bytes)
               .get();
  if (!r) return {r.status(), {}, 0};
  return {Status(), {}, cached.bytes + *r};
}

ObjectService::CachedRead ObjectService::read_cached(int fd, std::byte* dst, size_t len, uint64_t offset) {
  CachedRead out;
  while (out.bytes < len) {
    iovec v{dst + out.bytes, len - out.bytes};
    ssize_t n = ::preadv2(fd, &v, 1, static_cast<off_t>(offset + out.bytes), RWF_NOWAIT);
    if (n > 0) {
      out.bytes += static_cast<size_t>(n);
    } else if (n == 0) {
      out.eof = true;
      break;
    } else if (errno != EINTR) {
      // EAGAIN: not (all) in the page cache. EOPNOTSUPP, EINVAL, ENOSYS: no RWF_NOWAIT for this
      // file or kernel. Anything else: the engine's read reports it.
      break;
    }
  }
  return out;
}

ServerResult ObjectService::write(const ObjectCall& c, const ServerCall& call) {
  if (c.length != call.payload.size())
    return {Status::Corruption("write announces " + std::to_string(c.length) + " bytes but carries " +
                                          std::to_string(call.payload.size())), {}, 0};
  if (c.offset + c.length < c.offset) return {Status::InvalidArgument("write range overflows"), {}, 0};
  auto obj = open_object(c.name, true);
  if (!obj) return {obj.status(), {}, 0};
  if (c.length == 0) return {};
  auto r = engine_->write((*obj)->fd, call.payload.data(), call.payload.size(), c.offset).get();
  if (!r) return {r.status(), {}, 0};
  if (*r != c.length) return {Status::IoError("short write to object '" + c.name + "'"), {}, 0};
  return {};
}

ServerResult ObjectService::sync(const ObjectCall& c) {
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  auto r = engine_->fsync((*obj)->fd, (c.flags & kSyncDataOnly) != 0).get();
  if (!r) return {r.status(), {}, 0};
  return {};
}

ServerResult ObjectService::truncate(const ObjectCall& c) {
  if (c.length > static_cast<uint64_t>(INT64_MAX)) return {Status::InvalidArgument("truncate size too large"), {}, 0};
  auto obj = open_object(c.name, true);
  if (!obj) return {obj.status(), {}, 0};
  if (::ftruncate((*obj)->fd, static_cast<off_t>(c.length)) != 0)
    return {Status::from_errno(errno, "truncate object '" + c.name + "'"), {}, 0};
  return {};
}

ServerResult ObjectService::stat(const ObjectCall& c) {
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  struct stat st {};
  if (::fstat((*obj)->fd, &st) != 0) return {Status::from_errno(errno, "stat object '" + c.name + "'"), {}, 0};
  ObjectInfo info{static_cast<uint64_t>(st.st_size),
                  static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  return {Status(), encode_object_info(info), 0};
}

Status ObjectService::list_dir(int fd, const std::string& prefix,
                               std::vector<std::pair<std::string, uint64_t>>& out) const {
  DIR* d = ::fdopendir(fd);
  if (!d) {
    Status s = Status::from_errno(errno, "list objects of " + dir_);
    ::close(fd);
    return s;
  }
  std::vector<std::string> subdirs;
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string name = prefix + n;
    if (name.size() > kMaxObjectName) continue;
    // Links are neither listed nor followed; what vanished meanwhile is skipped.
    struct stat st {};
    if (::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISREG(st.st_mode)) {
      if (validate_object_name(name).is_ok()) out.emplace_back(std::move(name), static_cast<uint64_t>(st.st_size));
    } else if (S_ISDIR(st.st_mode) && name.size() + 2 <= kMaxObjectName) {  // room left for an object below
      subdirs.push_back(std::move(n));
    }
    errno = 0;
  }
  Status status;
  if (errno != 0) status = Status::from_errno(errno, "list objects in '" + prefix + "' of " + dir_);
  for (size_t k = 0; status.is_ok() && k < subdirs.size(); ++k) {
    int sub = open_beneath(::dirfd(d), subdirs[k], O_RDONLY | O_DIRECTORY);
    if (sub == -ENOENT || sub == -ELOOP) continue;  // removed, or replaced by a link, meanwhile
    if (sub < 0) status = Status::from_errno(-sub, "list objects in '" + prefix + subdirs[k] + "' of " + dir_);
    else status = list_dir(sub, prefix + subdirs[k] + "/", out);
  }
  ::closedir(d);
  return status;
}

ServerResult ObjectService::list(const ObjectCall& c, const ServerCall& call) {
  // Every regular file under the directory, by name; the caller pages with offset = entries
  // already seen. Names that could not be sent back as object names are left out.
  std::vector<std::pair<std::string, uint64_t>> all;
  int fd = ::openat(dir_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);  // own offset for readdir
  if (fd < 0) return {Status::from_errno(errno, "list objects of " + dir_), {}, 0};
  if (Status s = list_dir(fd, "", all); !s.is_ok()) return {s, {}, 0};
  std::sort(all.begin(), all.end());
  size_t used = 0;
  for (size_t i = c.offset; i < all.size(); ++i) {
    const auto& [name, size] = all[i];
    size_t need = 2 + name.size() + 8;
    if (used + need > call.reply_buffer.size()) break;
    std::string entry;
    put_u16(entry, static_cast<uint16_t>(name.size()));
    entry += name;
    put_u64(entry, size);
    std::memcpy(call.reply_buffer.data() + used, entry.data(), entry.size());
    used += need;
  }
  return {Status(), {}, used};
}

ServerResult ObjectService::remove(const ObjectCall& c) {
  forget(c.name);
  int parent = -1;
  if (Status s = open_parent(c.name, false, &parent); !s.is_ok()) return {s, {}, 0};
  std::string base(base_name(c.name));
  Status status;
  // unlinkat would remove a link itself, harmlessly, but a name that is a link is refused like
  // every other operation on it.
  struct stat st {};
  if (::fstatat(parent, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    status = Status::from_errno(errno, "remove object '" + c.name + "'");
  else if (S_ISLNK(st.st_mode))
    status = path_error(ELOOP, "remove", c.name);
  else if (::unlinkat(parent, base.c_str(), 0) != 0)
    status = Status::from_errno(errno, "remove object '" + c.name + "'");
  if (parent != dir_fd_) ::close(parent);
  return {status, {}, 0};
}

}  // namespace stor::transport
