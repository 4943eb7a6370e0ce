// The lustre:// backend: namespace operations go to the MDS, data is striped over object files
// in the target directories, each piece submitted through the shared IoEngine so the stripes of
// one request transfer in parallel.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <mutex>
#include <shared_mutex>

#include "backends/lustre/fs.h"
#include "backends/lustre/layout.h"
#include "backends/lustre/layout_driver.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/native.h"
#include "backends/lustre/remote_file.h"
#include "backends/lustre/striped_file.h"
#include "stor/backend.h"
#include "stor/register_backend.h"
#include "stor/settings.h"

namespace stor::lustre {

namespace {

// Stripe objects in the local ostK directories, read and written through the IoEngine: all
// pieces of a request go to the engine in one batch.
class LustreFile final : public StripedFile {
 public:
  LustreFile(std::shared_ptr<FileSystem> fs, std::unique_ptr<MetaFile> meta, IoEngine* engine, uint32_t flags,
             std::string path)
      : StripedFile(std::move(fs), std::move(meta), flags, std::move(path)), engine_(engine) {
    for (int c = 0; c < layout_.components_size(); ++c) {
      comp_base_.push_back(fds_.size());
      fds_.resize(fds_.size() + static_cast<size_t>(layout_.components(c).targets_size()), -1);
    }
  }
  ~LustreFile() override { (void)close(); }

 private:
  // One engine request per piece: plain when the piece is one segment, else preadv/pwritev over
  // the caller's segments (the engine copies the segment array during submit).
  static IoRequest piece_request(IoOp op, int fd, const PieceIo& pi, IoCallback done) {
    IoRequest r{op, fd, nullptr, static_cast<size_t>(pi.piece.length), pi.piece.object_offset, -1, std::move(done)};
    if (pi.iov.size() == 1) {
      r.buf = pi.iov[0].iov_base;
    } else {
      r.iov = pi.iov.data();
      r.iov_count = pi.iov.size();
    }
    return r;
  }

  void read_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) override {
    std::vector<IoRequest> reqs;
    reqs.reserve(pieces.size());
    for (auto& pi : pieces) {
      auto fd = object_fd(pi.piece, /*create=*/false);
      if (!fd) {
        op->fail(fd.status());
        break;
      }
      const size_t want = pi.piece.length;
      if (*fd < 0) {  // object never written: a hole
        zero_fill(pi.iov, 0, want);
        continue;
      }
      // The segments are kept for a sparse tail (the engine has its own copy to transfer into).
      auto segs = std::make_shared<std::vector<struct iovec>>(pi.iov);
      reqs.push_back(piece_request(IoOp::kRead, *fd, pi, [op, segs, want](Result<size_t> r) {
        if (!r) op->fail(r.status());
        else if (*r < want) zero_fill(*segs, *r, want - *r);  // object ends early: sparse tail
        op->finish_one();
      }));
    }
    op->set_pieces(reqs.size());
    if (!reqs.empty()) engine_->submit(std::span<IoRequest>(reqs));
  }

  void write_pieces(std::vector<PieceIo>& pieces, const std::shared_ptr<PendingIo>& op) override {
    std::vector<IoRequest> reqs;
    reqs.reserve(pieces.size());
    for (auto& pi : pieces) {
      auto fd = object_fd(pi.piece, /*create=*/true);
      if (!fd) {
        op->fail(fd.status());
        break;
      }
      const size_t want = pi.piece.length;
      reqs.push_back(piece_request(IoOp::kWrite, *fd, pi, [op, want](Result<size_t> r) {
        if (!r) op->fail(r.status());
        else if (*r != want) op->fail(Status::IoError("lustre: short write to a stripe object"));
        op->finish_one();
      }));
    }
    op->set_pieces(reqs.size());
    if (!reqs.empty()) engine_->submit(std::span<IoRequest>(reqs));
  }

  Status sync_objects(bool data_only) override {
    std::vector<std::future<Result<size_t>>> waits;
    {
      std::lock_guard lk(fd_mu_);
      for (int fd : fds_)
        if (fd >= 0) waits.push_back(engine_->fsync(fd, data_only));
    }
    Status first;
    for (auto& w : waits) {
      auto r = w.get();
      if (!r && first.is_ok()) first = r.status();
    }
    return first;
  }

  Status cut_object(uint32_t target, uint32_t component, uint32_t stripe, uint64_t keep) override {
    std::string obj = fs_->object_path(target, ino_, component, stripe);
    auto fd = open_object(obj, O_WRONLY | O_CLOEXEC);
    if (!fd) return fd.status();
    if (*fd < 0) return {};  // never written: nothing to cut
    struct stat st {};
    Status s;
    if (::fstat(*fd, &st) != 0) s = Status::from_errno(errno, "lustre: stat object " + obj);
    else if (static_cast<uint64_t>(st.st_size) > keep && ::ftruncate(*fd, static_cast<off_t>(keep)) != 0)
      s = Status::from_errno(errno, "lustre: truncate object " + obj);
    ::close(*fd);
    return s;
  }

  // Opens an object that must be a regular file in a real ostK/XX directory: no symlink is
  // followed there (it could point anywhere; ostK itself may be a link to another disk) and a
  // FIFO cannot block the open. -1 when it (or its XX directory) does not exist.
  static Result<int> open_object(const std::string& obj, int oflags) {
    const size_t slash = obj.rfind('/');
    const std::string sub = obj.substr(0, slash), leaf = obj.substr(slash + 1);
    int dfd = ::open(sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
      if (errno == ENOENT) return -1;
      if (errno == ELOOP || errno == ENOTDIR)
        return Status::Corruption("lustre: object directory " + sub + " is not a directory (`stctl fsck --repair` removes it)");
      return Status::from_errno(errno, "lustre: open object directory " + sub);
    }
    int fd = ::openat(dfd, leaf.c_str(), oflags | O_NOFOLLOW | O_NONBLOCK, 0600);
    const int open_errno = errno;
    ::close(dfd);
    if (fd < 0) {
      if (open_errno == ENOENT) return -1;
      if (open_errno == ELOOP)
        return Status::Corruption("lustre: object " + obj + " is a symbolic link (`stctl fsck --repair` removes it)");
      return Status::from_errno(open_errno, "lustre: open object " + obj);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return Status::Corruption("lustre: object " + obj + " is not a regular file");
    }
    // Back to blocking: io_uring would answer EAGAIN instead of waiting on an O_NONBLOCK file.
    int fl = ::fcntl(fd, F_GETFL);
    if (fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
      int e = errno;
      ::close(fd);
      return Status::from_errno(e, "lustre: fcntl object " + obj);
    }
    return fd;
  }

  Status close_objects() override {
    Status first;
    std::lock_guard lk(fd_mu_);
    for (int& fd : fds_) {
      if (fd >= 0 && ::close(fd) != 0 && first.is_ok()) first = Status::from_errno(errno, "lustre: close object");
      fd = -1;
    }
    return first;
  }

  // The object's fd, opened on first use; -1 when it does not exist and create is false.
  Result<int> object_fd(const StripePiece& p, bool create) {
    size_t idx = comp_base_[p.component] + p.stripe;
    std::lock_guard lk(fd_mu_);
    if (fds_[idx] >= 0) return fds_[idx];
    std::string obj = fs_->object_path(p.target, ino_, p.component, p.stripe);
    int oflags = ((flags_ & kOpenWrite) ? O_RDWR : O_RDONLY) | O_CLOEXEC | (create ? O_CREAT : 0);
    // Set before the object can exist; unlink cannot reap while we hold the file open.
    if (create) meta_->objects_may_exist();
    auto fd = open_object(obj, oflags);
    if (fd && *fd < 0 && create) {
      // First object in this ostK/XX subdirectory: make it (a racing creator may beat us to it).
      std::string sub = obj.substr(0, obj.rfind('/'));
      if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST)
        return Status::from_errno(errno, "lustre: create object directory " + sub);
      fd = open_object(obj, oflags);
      if (fd && *fd < 0) return Status::NotFound("lustre: object " + obj + " vanished while being created");
    }
    if (!fd) return fd.status();
    if (*fd < 0) return -1;
    fds_[idx] = *fd;
    return *fd;
  }

  IoEngine* engine_;
  std::vector<size_t> comp_base_;
  std::mutex fd_mu_;
  std::vector<int> fds_;
};

class LustreBackend final : public Backend {
 public:
  LustreBackend(IoEngine* engine, BackendOptions opts) : engine_(engine), opts_(std::move(opts)) {}

  std::string_view scheme() const override { return "lustre"; }
  uint32_t capabilities() const override {
    return kCapRead | kCapWrite | kCapRandomWrite | kCapDirectories | kCapTruncate | kCapStriping |
           kCapPermissions | kCapRename;
  }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& o) override {
    STOR_ASSIGN_OR_RETURN(auto t, resolve(uri));
    if (!t.fs) return native::open(engine_, t.path, o, uri.to_string());
    if ((o.flags & kOpenAppend) && !(o.flags & kOpenWrite))
      return Status::InvalidArgument("lustre: kOpenAppend needs kOpenWrite: " + uri.to_string());
    STOR_ASSIGN_OR_RETURN(auto opened, t.fs->meta().open(opts_.identity, t.path, o.flags, o.mode));
    uint32_t flags = o.flags | ((o.flags & kOpenTruncate) ? uint32_t{kOpenWrite} : uint32_t{0});
    std::unique_ptr<BackendFile> file;
    if (t.fs->remote()) file = make_remote_file(*t.mount, std::move(opened.file), flags, uri.to_string());  // stor-target servers
    else file = std::make_unique<LustreFile>(*t.mount, std::move(opened.file), engine_, flags, uri.to_string());
    if ((o.flags & kOpenTruncate) && !opened.created) STOR_RETURN_IF_ERROR(file->truncate(0));
    return file;
  }

  Result<FileInfo> stat(const Uri& uri) override {
    STOR_ASSIGN_OR_RETURN(auto t, resolve(uri));
    if (!t.fs) return native::stat(t.path);
    STOR_ASSIGN_OR_RETURN(FileInfo fi, t.fs->meta().stat(opts_.identity, t.path));
    fi.path = uri.path;
    return fi;
  }

  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    STOR_ASSIGN_OR_RETURN(auto t, resolve(uri));
    if (!t.fs) return native::list(t.path);
    return t.fs->meta().readdir(opts_.identity, t.path);
  }

  Status remove(const Uri& uri) override {
    STOR_ASSIGN_OR_RETURN(auto t, resolve(uri));
    if (!t.fs) return native::remove(t.path);
    return t.fs->meta().remove(opts_.identity, t.path);
  }

  Status mkdir(const Uri& uri, uint32_t mode) override {
    STOR_ASSIGN_OR_RETURN(auto t, resolve(uri));
    if (!t.fs) return native::mkdir(t.path, mode);
    return t.fs->meta().mkdir(opts_.identity, t.path, mode);
  }

  Status rename(const Uri& from, const Uri& to) override {
    STOR_ASSIGN_OR_RETURN(auto a, resolve(from));
    STOR_ASSIGN_OR_RETURN(auto b, resolve(to));
    if (!a.fs && !b.fs) return native::rename(a.path, b.path);
    if (a.fs != b.fs)
      return Status::InvalidArgument("lustre: cannot rename across file systems ('" + from.path + "' and '" +
                                                to.path + "')");
    return a.fs->meta().rename(opts_.identity, a.path, b.path);
  }

  std::map<std::string, std::string> describe(const Uri& uri) override {
    std::map<std::string, std::string> out;
    auto drv = layout_driver_for(uri.path);
    out["lustre.layout_driver"] = drv.driver;
    out["lustre.layout_driver_reason"] = drv.reason;
    auto t = resolve(uri);
    if (!t) {
      out["lustre.error"] = t.status().to_string();
      return out;
    }
    if (!t->fs) {
      out["lustre.mode"] = "native";
      auto l = getstripe(t->path);
      if (l.is_ok()) out["lustre.layout"] = describe_layout(l->layout);
      return out;
    }
    out["lustre.mode"] = "emulated";
    const auto& sb = t->fs->superblock();
    out["lustre.root"] = t->fs->root();
    out["lustre.fsname"] = sb.fsname();
    out["lustre.targets"] = std::to_string(sb.target_count());
    out["lustre.default_layout"] = describe_layout(sb.default_layout());
    if (sb.target_endpoints_size() > 0) {  // objects on stor-target servers
      std::string eps;
      for (const auto& ep : sb.target_endpoints()) eps += (eps.empty() ? "" : ",") + ep;
      out["lustre.target_endpoints"] = eps;
    }
    if (t->fs->cluster()) out["lustre.mode"] = "cluster";
    if (auto c = t->fs->meta().statfs()) out["lustre.inodes"] = std::to_string(c->inodes);
    out["lustre.uid"] = std::to_string(opts_.identity.uid);
    if (auto l = t->fs->meta().get_layout(opts_.identity, t->path))
      out["lustre.layout"] = l->layout.components_size() ? describe_layout(l->layout) : "(inherits the file system default)";
    return out;
  }

 private:
  struct Target {
    // Null: native Lustre, and path is the host path. Points into mounted_, whose entries live
    // as long as the backend: no reference count traffic per call.
    const std::shared_ptr<FileSystem>* mount = nullptr;
    FileSystem* fs = nullptr;
    std::string path;  // in-fs path of the emulated file system
  };
  Result<Target> resolve(const Uri& uri) {
    if (!uri.authority.empty()) return resolve_cluster(uri);
    // Fast path: a path under an already mounted root needs no walk up the host directories.
    STOR_ASSIGN_OR_RETURN(auto comps, split_path(uri.path));
    if (uri.path.empty() || uri.path[0] != '/')
      return Status::InvalidArgument("lustre: path '" + uri.path + "' must be absolute (lustre:///dir/...)");
    std::string norm;
    for (auto& c : comps) norm += "/" + c;
    {
      std::shared_lock lk(mu_);
      for (auto& [root, fs] : mounted_) {
        if (norm.size() >= root.size() && norm.compare(0, root.size(), root) == 0 &&
            (norm.size() == root.size() || norm[root.size()] == '/' || root == "/"))
          return Target{&fs, fs.get(),
                        norm.size() == root.size() ? std::string("/") : norm.substr(root == "/" ? 0 : root.size())};
      }
    }
    auto located = FileSystem::locate(uri.path);
    if (!located) {
      // No emulated file system here: a real Lustre mount with liblustreapi is served natively.
      if (located.status().code() != Code::kNotFound) return located.status();
      auto drv = detect_layout_driver(norm);
      if (drv.native) return Target{nullptr, nullptr, norm};
      return Status::NotFound(located.status().message() + " (" + drv.reason + ")");
    }
    auto& loc = *located;
    std::unique_lock lk(mu_);
    auto& fs = mounted_[loc.first];
    if (!fs) {
      MountOptions mo;
      mo.mds = opts_.mds;
      mo.key_file = opts_.key_file;
      auto m = FileSystem::mount(loc.first, mo);
      if (!m) {
        mounted_.erase(loc.first);
        return m.status();
      }
      fs = std::move(*m);
    }
    return Target{&fs, fs.get(), std::move(loc.second)};
  }

  // lustre://HOST:PORT/path: the file system served by the stor-mds at HOST:PORT.
  Result<Target> resolve_cluster(const Uri& uri) {
    STOR_ASSIGN_OR_RETURN(auto comps, split_path(uri.path));  // rejects ".."
    std::string path;
    for (auto& c : comps) path += "/" + c;
    if (path.empty()) path = "/";
    const std::string key = "lustre://" + uri.authority;
    {
      std::shared_lock lk(mu_);
      if (auto it = mounted_.find(key); it != mounted_.end()) return Target{&it->second, it->second.get(), path};
    }
    std::unique_lock lk(mu_);
    auto& fs = mounted_[key];
    if (!fs) {
      auto m = FileSystem::connect(uri.authority, opts_.cluster);
      if (!m) {
        mounted_.erase(key);
        return m.status();
      }
      fs = std::move(*m);
    }
    return Target{&fs, fs.get(), path};
  }

  IoEngine* engine_;
  BackendOptions opts_;
  // Keeps file systems mounted for the backend's lifetime (mounting replays the log).
  std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<FileSystem>> mounted_;
};

}  // namespace

Result<BackendOptions> backend_options_from_settings(const std::map<std::string, std::string>& settings) {
  const Settings s(settings);
  BackendOptions o;
  if (s.has("lustre.uid")) {
    STOR_ASSIGN_OR_RETURN(uint64_t uid, s.get_uint("lustre.uid", 0, 0, UINT32_MAX));
    o.identity.uid = static_cast<uint32_t>(uid);
    o.identity.gids = {o.identity.uid};  // like a user-private group, until lustre.gids says otherwise
  }
  if (s.has("lustre.gids")) {
    STOR_ASSIGN_OR_RETURN(auto gids, s.get_uint_list("lustre.gids", {}, 0, UINT32_MAX));
    o.identity.gids.assign(gids.begin(), gids.end());
  }
  STOR_ASSIGN_OR_RETURN(o.mds.checkpoint_bytes, s.get_size("lustre.checkpoint_bytes", o.mds.checkpoint_bytes));
  o.key_file = s.get_string("lustre.key_file", o.key_file);
  // Cluster mode: the same key (mkfs's mdt/target.key) authenticates to the MDS and the
  // targets; the environment variable reaches MPI ranks and Python without code changes.
  o.cluster.key_file = o.key_file;
  if (o.cluster.key_file.empty())
    if (const char* env = std::getenv("STOR_LUSTRE_KEY_FILE")) o.cluster.key_file = env;
  STOR_ASSIGN_OR_RETURN(uint64_t reconnect_ms,
                        s.get_uint("lustre.reconnect_timeout_ms", static_cast<uint64_t>(o.cluster.reconnect_timeout.count()),
                                   0, 24ull * 3600 * 1000));
  o.cluster.reconnect_timeout = std::chrono::milliseconds(reconnect_ms);
  STOR_ASSIGN_OR_RETURN(uint64_t lock_ms,
                        s.get_uint("lustre.lock_timeout_ms", static_cast<uint64_t>(o.cluster.lock_timeout.count()), 1,
                                   3600ull * 1000));
  o.cluster.lock_timeout = std::chrono::milliseconds(lock_ms);
  if (s.has("lustre.mkdir_mdt")) {  // as `lfs mkdir -i K`: new directories on MDT K
    STOR_ASSIGN_OR_RETURN(uint64_t k, s.get_uint("lustre.mkdir_mdt", 0, 0, 255));
    o.cluster.mkdir_mdt = static_cast<int>(k);
  }
  STOR_ASSIGN_OR_RETURN(o.mds.sync_each_op, s.get_bool("lustre.sync_metadata", o.mds.sync_each_op));
  return o;
}

Result<std::shared_ptr<Backend>> make_backend(IoEngine* engine, const BackendOptions& opts) {
  if (!engine) return Status::InvalidArgument("lustre: backend needs an IoEngine");
  return std::shared_ptr<Backend>(std::make_shared<LustreBackend>(engine, opts));
}

STOR_REGISTER_BACKEND("lustre", [](const BackendContext& ctx) -> Result<std::shared_ptr<Backend>> {
  STOR_ASSIGN_OR_RETURN(auto opts, backend_options_from_settings(ctx.settings));
  return make_backend(ctx.engine, opts);
});

}  // namespace stor::lustre
