#include "backends/lustre/fs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "backends/lustre/layout.h"
#include "backends/lustre/remote_mds.h"
#include "backends/lustre/wal.h"
#include "net/auth.h"

namespace stor::lustre {

namespace {
std::mutex g_mounts_mu;

// "INO.C.S" exactly as object_name() writes it (no sign, spaces or leading zeros, in range);
// names on a target are read from disk and may be anything.
bool parse_object_leaf(const std::string& leaf, uint64_t* ino, uint32_t* comp, uint32_t* stripe) {
  const char* p = leaf.data();
  const char* end = leaf.data() + leaf.size();
  auto field = [&](auto* out, bool last) {
    auto [next, ec] = std::from_chars(p, end, *out);
    if (ec != std::errc() || next == p) return false;
    p = next;
    if (last) return p == end;
    if (p == end || *p != '.') return false;
    ++p;
    return true;
  };
  if (!field(ino, false) || !field(comp, false) || !field(stripe, true)) return false;
  return leaf == std::to_string(*ino) + "." + std::to_string(*comp) + "." + std::to_string(*stripe);
}
std::map<std::string, std::weak_ptr<FileSystem>>& mounts() {
  static auto* m = new std::map<std::string, std::weak_ptr<FileSystem>>();  // never destroyed: safe at exit
  return *m;
}
}  // namespace

Result<pb::Superblock> parse_superblock(std::string_view data, const std::string& where) {
  pb::Superblock sb;
  auto bad = [&](const std::string& what) { return Status::Corruption("lustre: superblock " + where + ": " + what); };
  if (data.size() > (1u << 20) || !sb.ParseFromArray(data.data(), static_cast<int>(data.size())))
    return bad("does not parse");
  if (sb.format_version() != 1)
    return Status::Unsupported("lustre: superblock " + where + ": format " + std::to_string(sb.format_version()) +
                                          " is not one this library understands (1)");
  if (sb.target_count() == 0 || sb.target_count() > kMaxTargets)
    return bad("target_count " + std::to_string(sb.target_count()) + " is not 1.." + std::to_string(kMaxTargets));
  if (Status s = validate_layout(sb.default_layout(), sb.target_count()); !s)
    return bad("default layout: " + s.message());
  if (sb.target_endpoints_size() > 0 && static_cast<uint32_t>(sb.target_endpoints_size()) != sb.target_count())
    return bad("names " + std::to_string(sb.target_endpoints_size()) + " endpoints for " +
               std::to_string(sb.target_count()) + " targets");
  if (static_cast<uint32_t>(sb.mdt_endpoints_size()) > kMaxMdts)
    return bad("names " + std::to_string(sb.mdt_endpoints_size()) + " MDTs (at most " + std::to_string(kMaxMdts) + ")");
  return sb;
}

Result<std::pair<std::string, std::string>> FileSystem::locate(const std::string& host_path) {
  if (host_path.empty() || host_path[0] != '/')
    return Status::InvalidArgument("lustre: path '" + host_path + "' must be absolute (lustre:///dir/...)");
  STOR_ASSIGN_OR_RETURN(auto comps, split_path(host_path));  // rejects ".."
  std::error_code ec;
  for (size_t n = comps.size() + 1; n-- > 0;) {
    std::string dir;
    for (size_t i = 0; i < n; ++i) dir += "/" + comps[i];
    if (std::filesystem::exists((dir.empty() ? std::string() : dir) + "/" + kMarkerName, ec)) {
      std::string rest;
      for (size_t i = n; i < comps.size(); ++i) rest += "/" + comps[i];
      return std::make_pair(dir.empty() ? std::string("/") : dir, rest.empty() ? std::string("/") : rest);
    }
  }
  return Status::NotFound("lustre: no file system (" + std::string(kMarkerName) + ") above '" + host_path +
                                     "'; create one with `stctl mkfs`");
}

Result<std::shared_ptr<const transport::AuthKey>> target_key(const std::string& root, const std::string& key_file) {
  std::string path = key_file.empty() ? root + "/" + kTargetKeyName : key_file;
  auto key = transport::load_key_file(path);
  if (!key && key_file.empty() && key.status().code() == Code::kNotFound)
    return std::shared_ptr<const transport::AuthKey>();
  if (!key) return key.status().with_context("lustre: " + root);
  return *key;
}

Result<std::shared_ptr<FileSystem>> FileSystem::mount(const std::string& root_in, const MountOptions& opts) {
  // One instance per root, whatever spelling ("/a//b/", "/a/./b") names it.
  STOR_ASSIGN_OR_RETURN(auto comps, split_path(root_in));
  std::string root_dir;
  for (auto& c : comps) root_dir += "/" + c;
  if (root_dir.empty()) root_dir = "/";
  if (root_in.empty() || root_in[0] != '/')
    return Status::InvalidArgument("lustre: file system root '" + root_in + "' must be absolute");
  const bool recovery = opts.mds.recover;
  const std::string mount_key = opts.mdt_index == 0 ? root_dir : root_dir + "#" + std::to_string(opts.mdt_index);
  std::lock_guard lk(g_mounts_mu);
  if (auto it = mounts().find(mount_key); !recovery && it != mounts().end())
    if (auto fs = it->second.lock()) return fs;

  std::shared_ptr<FileSystem> fs(new FileSystem());
  fs->root_ = root_dir;
  fs->read_only_ = opts.mds.read_only;
  fs->mdt_index_ = opts.mdt_index;
  auto sb = read_file(root_dir + "/" + kMarkerName);
  if (!sb) return sb.status();
  STOR_ASSIGN_OR_RETURN(fs->sb_, parse_superblock(*sb, root_dir + "/" + kMarkerName));
  if (opts.mdt_index >= mdt_count(fs->sb_))
    return Status::InvalidArgument("lustre: " + root_dir + " has " + std::to_string(mdt_count(fs->sb_)) +
                                   " MDT(s); there is no MDT " + std::to_string(opts.mdt_index));
  const std::string mdt_dir = fs->mdt_dir();
  std::string lock_path = mdt_dir + "/lock";
  fs->lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fs->lock_fd_ < 0) return Status::from_errno(errno, "lustre: open " + lock_path);
  // An expired entry means this process is still unmounting it (checkpoint, then unlock): wait.
  bool unmounting = mounts().count(mount_key) != 0;
  for (int tries = 0; ::flock(fs->lock_fd_, LOCK_EX | LOCK_NB) != 0; ++tries) {
    if (!unmounting || tries > 500)
      return Status::Busy("lustre: file system " + root_dir + " is mounted by another process");
    ::usleep(10000);
  }
  if (fs->sb_.target_endpoints_size() > 0) {
    // Before the MDS opens: replaying its log may delete objects of unlinked files.
    transport::RemoteTargetOptions ro;
    ro.reconnect_timeout = opts.reconnect_timeout;
    STOR_ASSIGN_OR_RETURN(ro.transport.auth_key, target_key(root_dir, opts.key_file));
    for (int t = 0; t < fs->sb_.target_endpoints_size(); ++t) {
      auto target = transport::RemoteObjectTarget::connect(fs->sb_.target_endpoints(t), ro);
      if (!target)
        return target.status().with_context("lustre: mount " + root_dir + ": target " + std::to_string(t) + " (" +
                                              fs->sb_.target_endpoints(t) + ")");
      fs->remote_targets_.push_back(std::move(*target));
    }
  }
  FileSystem* raw = fs.get();
  if (opts.async_reap) fs->reaper_ = std::make_unique<internal::TaskPool>(4);
  MdsOptions mo = opts.mds;
  mo.mdt_index = opts.mdt_index;
  auto mds = Mds::open(mdt_dir, fs->sb_.target_count(), fs->sb_.default_layout(), mo,
                       [raw](uint64_t ino, const pb::Layout& l) {
                         if (raw->reaper_) raw->reaper_->post([raw, ino, l] { raw->remove_objects(ino, l); });
                         else raw->remove_objects(ino, l);
                       });
  if (!mds) {
    if (mds.status().code() == Code::kCorruption && !recovery)
      return Status::Corruption(mds.status().message() + " (`stctl fsck " + root_dir +
                                           "` lists every problem; `stctl fsck --repair " + root_dir +
                                           "` sets them aside)");
    return mds.status();
  }
  fs->mds_ = std::move(*mds);
  fs->meta_ = make_embedded_metadata(*fs->mds_);
  if (fs->read_only_) return fs;
  // A repaired namespace is made durable before anything else: the damaged log is not replayed again.
  if (recovery) STOR_RETURN_IF_ERROR(fs->mds_->checkpoint());
  // No "clean" marker: the last mount did not unmount cleanly, so objects may be orphaned.
  std::string clean = mdt_dir + "/clean";
  if (::unlink(clean.c_str()) != 0) {
    // The log replay above may have queued removals of unlinked files' objects: let them finish
    // first, or the sweep lists an object the reaper is about to remove and races it.
    if (fs->reaper_) fs->reaper_->drain();
    auto scan = fs->scan_objects(/*repair=*/true, /*cut_overlong=*/opts.cut_overlong);
    if (!scan) return scan.status();
  }
  if (!recovery) mounts()[mount_key] = fs;
  return fs;
}

Result<std::shared_ptr<FileSystem>> FileSystem::connect(const std::string& authority, const ClusterOptions& opts) {
  // "HOST:PORT" only: no user info, no path (Endpoint::parse refuses the rest).
  if (authority.empty() || authority.find_first_of("@/?#") != std::string::npos)
    return Status::InvalidArgument("lustre: '" + authority + "' is not HOST:PORT of a stor-mds");
  const std::string endpoint = "tcp://" + authority;
  STOR_RETURN_IF_ERROR(transport::Endpoint::parse(endpoint).status().with_context("lustre://" + authority));
  const std::string name = "lustre://" + authority;
  const std::string cache_key = name + "\n" + opts.key_file + "\n" + std::to_string(opts.mkdir_mdt);
  std::lock_guard lk(g_mounts_mu);
  if (auto it = mounts().find(cache_key); it != mounts().end())
    if (auto fs = it->second.lock()) return fs;

  std::shared_ptr<const transport::AuthKey> key;
  if (!opts.key_file.empty()) {
    auto loaded = transport::load_key_file(opts.key_file);
    if (!loaded) return loaded.status().with_context(name + " (lustre.key_file / STOR_LUSTRE_KEY_FILE)");
    key = *loaded;
  }
  auto conn = MdsConnection::connect(endpoint, key, opts.reconnect_timeout, opts.lock_timeout);
  if (!conn) return conn.status().with_context(name);
  std::shared_ptr<MdsConnection> mds(std::move(*conn));
  // The MDS hands out the configuration, as Lustre's MGS does; checked like the superblock file.
  pb::MdsRequest req;
  req.set_op(pb::MdsRequest::GET_CONFIG);
  STOR_ASSIGN_OR_RETURN(auto rep, mds->call(std::move(req)));
  std::shared_ptr<FileSystem> fs(new FileSystem());
  fs->root_ = name;
  STOR_ASSIGN_OR_RETURN(fs->sb_, parse_superblock(rep.config().SerializeAsString(), "from " + name));
  if (fs->sb_.target_endpoints_size() == 0)
    return Status::Unsupported(name + ": the file system's targets are local directories of the MDS host; "
                               "cluster mode needs stor-target servers (stctl mkfs --remote tcp://...)");
  transport::RemoteTargetOptions ro;
  ro.transport.auth_key = key;
  ro.reconnect_timeout = opts.reconnect_timeout;
  for (int t = 0; t < fs->sb_.target_endpoints_size(); ++t) {
    auto target = transport::RemoteObjectTarget::connect(fs->sb_.target_endpoints(t), ro);
    if (!target)
      return target.status().with_context(name + ": target " + std::to_string(t) + " (" +
                                          fs->sb_.target_endpoints(t) + ")");
    fs->remote_targets_.push_back(std::move(*target));
  }
  // Several MDTs: MDT 0 named them all in the configuration; connections are made on first use.
  std::vector<std::shared_ptr<MdsConnection>> conns{std::move(mds)};
  for (uint32_t k = 1; k < mdt_count(fs->sb_); ++k) {
    auto c = MdsConnection::connect(fs->sb_.mdt_endpoints(static_cast<int>(k)), key, opts.reconnect_timeout);
    if (!c) return c.status().with_context(name + ": MDT " + std::to_string(k));
    conns.push_back(std::move(*c));
  }
  if (opts.mkdir_mdt >= static_cast<int>(conns.size()))
    return Status::InvalidArgument(name + ": lustre.mkdir_mdt " + std::to_string(opts.mkdir_mdt) + " but the file system has " +
                                   std::to_string(conns.size()) + " MDT(s)");
  fs->meta_ = make_remote_metadata(std::move(conns), fs->sb_.target_count(), opts.mkdir_mdt);
  mounts()[cache_key] = fs;
  return fs;
}

FileSystem::~FileSystem() {
  meta_.reset();
  reaper_.reset();  // runs the deletions still queued
  if (mds_ && !read_only_) {
    // A clean unmount leaves a fresh checkpoint, so the next mount replays nothing.
    if (mds_->checkpoint().is_ok()) {
      int fd = ::open((mdt_dir() + "/clean").c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
      if (fd >= 0) ::close(fd);
    }
    mds_.reset();
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string FileSystem::target_dir(uint32_t target) const { return root_ + "/ost" + std::to_string(target); }

std::string FileSystem::object_name(uint64_t ino, uint32_t component, uint32_t stripe) {
  char sub[4];
  std::snprintf(sub, sizeof sub, "%02x", static_cast<unsigned>(ino & 0xff));
  return std::string(sub) + "/" + std::to_string(ino) + "." + std::to_string(component) + "." + std::to_string(stripe);
}

std::string FileSystem::object_path(uint32_t target, uint64_t ino, uint32_t component, uint32_t stripe) const {
  char sub[8];
  std::snprintf(sub, sizeof sub, "/%02x/", static_cast<unsigned>(ino & 0xff));
  return target_dir(target) + sub + std::to_string(ino) + "." + std::to_string(component) + "." +
         std::to_string(stripe);
}

void FileSystem::remove_objects(uint64_t ino, const pb::Layout& layout) const {
  if (remote()) {
    // Like unlink() below, failures are left for fsck: the file is gone from the namespace.
    for (int c = 0; c < layout.components_size(); ++c)
      for (int s = 0; s < layout.components(c).targets_size(); ++s)
        (void)remote_target(layout.components(c).targets(s))
            .remove(object_name(ino, static_cast<uint32_t>(c), static_cast<uint32_t>(s)));
    return;
  }
  for (int c = 0; c < layout.components_size(); ++c)
    for (int s = 0; s < layout.components(c).targets_size(); ++s) {
      // Through an O_NOFOLLOW descriptor of ostK/XX: a symlinked XX must not aim the unlink
      // at a file elsewhere.
      std::string obj = object_path(layout.components(c).targets(s), ino, static_cast<uint32_t>(c), static_cast<uint32_t>(s));
      const size_t slash = obj.rfind('/');
      int dfd = ::open(obj.substr(0, slash).c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dfd < 0) continue;
      ::unlinkat(dfd, obj.c_str() + slash + 1, 0);
      ::close(dfd);
    }
}

Result<FileSystem::ObjectScan> FileSystem::scan_remote_objects(bool repair, bool cut_overlong) {
  ObjectScan scan;
  for (uint32_t t = 0; t < target_count(); ++t) {
    auto& target = remote_target(t);
    STOR_ASSIGN_OR_RETURN(auto entries, target.list());
    for (const auto& e : entries) {
      ++scan.objects;
      // "XX/INO.C.S", the same names object_name() makes.
      std::string leaf = e.name.substr(e.name.rfind('/') + 1);
      uint64_t ino = 0;
      uint32_t comp = 0, stripe = 0;
      bool parsed = parse_object_leaf(leaf, &ino, &comp, &stripe) && e.name == object_name(ino, comp, stripe);
      if (parsed && mdt_of_ino(ino) != mdt_index_ && mdt_count(sb_) > 1) continue;  // another MDT's file
      int64_t limit = parsed ? mds_->object_limit(ino, comp, stripe, t) : -1;
      if (limit >= 0) {
        if (e.size > static_cast<uint64_t>(limit)) {
          ++scan.overlong;
          if (repair && cut_overlong) STOR_RETURN_IF_ERROR(target.truncate(e.name, static_cast<uint64_t>(limit)));
        }
        continue;
      }
      ++scan.orphans;
      scan.orphan_paths.push_back(target.endpoint() + "/" + e.name);
      if (repair) {
        // Gone already (a client's late unlink, a concurrent sweep) is what removing wanted.
        Status removed = target.remove(e.name);
        if (!removed.is_ok() && removed.code() != Code::kNotFound) return removed;
      }
    }
  }
  return scan;
}

Result<FileSystem::ObjectScan> FileSystem::scan_objects(bool repair, bool cut_overlong) {
  ObjectScan scan;
  if (!mds_) return Status::Unsupported("lustre: object scan of a cluster mount (run fsck on the MDS root)");
  if (remote()) return scan_remote_objects(repair, cut_overlong);
  for (uint32_t t = 0; t < target_count(); ++t) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(target_dir(t), ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      // Never follow a symlink (nor block on a FIFO) from a target: anything but a regular file
      // or a directory there is an orphan, and unlinking it removes only the entry.
      std::error_code type_ec;
      const auto type = it->symlink_status(type_ec).type();
      if (type_ec || type == std::filesystem::file_type::directory) continue;
      const bool regular = type == std::filesystem::file_type::regular;
      ++scan.objects;
      std::string name = it->path().filename().string();
      uint64_t ino = 0;
      uint32_t comp = 0, stripe = 0;
      // In its own XX directory too: a copy elsewhere is not the object the data path reads.
      bool parsed = regular && parse_object_leaf(name, &ino, &comp, &stripe) &&
                    it->path().string() == object_path(t, ino, comp, stripe);
      int64_t limit = parsed ? mds_->object_limit(ino, comp, stripe, t) : -1;
      if (limit >= 0) {
        std::error_code size_ec;
        auto size = it->file_size(size_ec);
        if (!size_ec && size > static_cast<uint64_t>(limit)) {
          ++scan.overlong;
          if (repair && cut_overlong) {
            // O_NOFOLLOW: the entry may have been swapped for a symlink since it was listed.
            int fd = ::open(it->path().c_str(), O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
            if (fd >= 0) {
              (void)::ftruncate(fd, static_cast<off_t>(limit));
              ::close(fd);
            }
          }
        }
        continue;
      }
      ++scan.orphans;
      scan.orphan_paths.push_back(it->path().string());
      if (repair) ::unlink(it->path().c_str());
    }
    if (ec) return Status::from_errno(ec.value(), "lustre: scan target " + target_dir(t));
  }
  return scan;
}

}  // namespace stor::lustre
