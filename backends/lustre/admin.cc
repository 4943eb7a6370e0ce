#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <map>

#include "backends/lustre/fs.h"
#include "backends/lustre/layout_driver.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/wal.h"
#include "net/auth.h"
#include "net/remote_object.h"

namespace stor::lustre {

namespace fsys = std::filesystem;

pb::Layout to_layout(const LayoutSpec& spec) {
  pb::Layout l;
  uint64_t start = 0;
  for (size_t i = 0; i < spec.size(); ++i) {
    const auto& s = spec[i];
    auto* c = l.add_components();
    c->set_extent_start(start);
    c->set_extent_end(i + 1 == spec.size() && s.extent_end == 0 ? kEof : s.extent_end);
    c->set_stripe_count(s.stripe_count);
    c->set_stripe_size(s.stripe_size);
    c->set_stripe_offset(s.stripe_offset);
    start = c->extent_end();
  }
  return l;
}

std::string host_path_of(const std::string& p) {
  static const std::string prefix = "lustre://";
  if (p.rfind(prefix, 0) == 0) return p.substr(prefix.size());
  return p;
}

namespace {
Status from_fs_error(const std::error_code& ec, const std::string& what) {
  return Status::from_errno(ec.value(), what);
}
// Absolute, lexically normal path without resolving symlinks (the file may not exist yet).
std::string absolute_path(const std::string& p) {
  std::error_code ec;
  auto a = fsys::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}
}  // namespace

namespace {
// "lustre://HOST:PORT/path": a cluster URI (non-empty authority) -> {authority, in-fs path}.
bool cluster_uri(const std::string& p, std::string* authority, std::string* path) {
  static const std::string prefix = "lustre://";
  if (p.rfind(prefix, 0) != 0 || p.size() == prefix.size() || p[prefix.size()] == '/') return false;
  size_t slash = p.find('/', prefix.size());
  *authority = p.substr(prefix.size(), slash == std::string::npos ? std::string::npos : slash - prefix.size());
  *path = slash == std::string::npos ? "/" : p.substr(slash);
  return true;
}

struct Located {
  std::shared_ptr<FileSystem> fs;
  std::string path;  // in the file system
};
// The file system holding a host path / lustre:/// URI (mounted here), or the cluster a
// lustre://HOST:PORT/ URI names (key from $STOR_LUSTRE_KEY_FILE). NotFound when neither.
Result<Located> open_fs(const std::string& path_in, const std::string& host_path) {
  std::string authority, path;
  if (cluster_uri(path_in, &authority, &path)) {
    ClusterOptions co;
    if (const char* env = std::getenv("STOR_LUSTRE_KEY_FILE")) co.key_file = env;
    STOR_ASSIGN_OR_RETURN(auto fs, FileSystem::connect(authority, co));
    return Located{std::move(fs), path};
  }
  STOR_ASSIGN_OR_RETURN(auto loc, FileSystem::locate(host_path));
  STOR_ASSIGN_OR_RETURN(auto fs, FileSystem::mount(loc.first));
  return Located{std::move(fs), loc.second};
}
}  // namespace

std::string target_key_path(const std::string& dir) {
  return absolute_path(host_path_of(dir)) + "/" + kTargetKeyName;
}

// admin::mkfs (below).
static Status make_file_system(const std::string& dir_in, const MkfsOptions& opts_in) {
  std::string dir = absolute_path(host_path_of(dir_in));
  MkfsOptions opts = opts_in;
  std::shared_ptr<const transport::AuthKey> key;  // remote targets: written to mdt/target.key
  if (!opts.target_endpoints.empty()) {
    opts.targets = static_cast<uint32_t>(opts.target_endpoints.size());
    const bool fresh = opts.key_file.empty();
    if (fresh) {
      STOR_ASSIGN_OR_RETURN(auto made, transport::AuthKey::generate());
      key = std::make_shared<transport::AuthKey>(made);
    } else {
      auto loaded = transport::load_key_file(opts.key_file);
      if (!loaded) return loaded.status().with_context("lustre mkfs");
      key = *loaded;
    }
    transport::RemoteTargetOptions ro;
    ro.transport.auth_key = key;
    ro.connections = 1;
    for (size_t t = 0; t < opts.target_endpoints.size(); ++t) {
      auto reach = transport::RemoteObjectTarget::connect(opts.target_endpoints[t], ro);
      // A new key cannot be held by a running target yet: a refusal of it proves a target answers.
      if (!reach && !(fresh && reach.status().code() == Code::kPermissionDenied))
        return reach.status().with_context("lustre mkfs: target " + std::to_string(t) + " (" +
                                             opts.target_endpoints[t] + ")");
    }
  }
  if (opts.targets == 0 || opts.targets > kMaxTargets)
    return Status::InvalidArgument("lustre mkfs: target count must be 1.." + std::to_string(kMaxTargets));
  pb::Layout def = to_layout(opts.default_layout);
  STOR_RETURN_IF_ERROR(validate_layout(def, opts.targets));
  std::error_code ec;
  fsys::create_directories(dir, ec);
  if (ec) return from_fs_error(ec, "lustre mkfs: create " + dir);
  if (fsys::exists(dir + "/" + kMarkerName, ec))
    return Status::AlreadyExists("lustre mkfs: " + dir + " already holds a file system");
  if (fsys::exists(dir + "/mdt", ec))
    return Status::AlreadyExists("lustre mkfs: " + dir + "/mdt exists; refusing to overwrite");
  for (const auto& parent : {fsys::path(dir).parent_path()}) {
    auto loc = FileSystem::locate(parent.string());
    if (loc) return Status::InvalidArgument("lustre mkfs: " + dir + " is inside the file system at " + loc->first);
  }
  fsys::create_directories(dir + "/mdt", ec);
  if (ec) return from_fs_error(ec, "lustre mkfs: create " + dir + "/mdt");
  // Object subdirectories (ostK/XX) are made on first use, which keeps mkfs fast.
  for (uint32_t t = 0; opts.target_endpoints.empty() && t < opts.targets; ++t) {
    std::string ost = dir + "/ost" + std::to_string(t);
    fsys::create_directories(ost, ec);
    if (ec) return from_fs_error(ec, "lustre mkfs: create " + ost);
  }
  if (key) {
    if (Status s = transport::write_key_file(dir + "/" + kTargetKeyName, *key); !s.is_ok())
      return s.with_context("lustre mkfs");
  }
  STOR_RETURN_IF_ERROR(Mds::format(dir + "/mdt", ::getuid(), ::getgid(), opts.root_mode, first_ino_of_mdt(0),
                                   opts.mdt_endpoints.size() > 1));
  if (opts.mdt_endpoints.size() > 1) {
    if (opts.target_endpoints.empty())
      return Status::InvalidArgument("lustre mkfs: several MDTs need remote targets (--remote tcp://...)");
    if (opts.mdt_endpoints.size() > kMaxMdts)
      return Status::InvalidArgument("lustre mkfs: at most " + std::to_string(kMaxMdts) + " MDTs");
    // MDT k's root only holds /.stor-remote, where the directories placed there live, named by
    // their entry on another MDT.
    for (uint32_t k = 1; k < opts.mdt_endpoints.size(); ++k) {
      std::string d = dir + "/" + mdt_dir_name(k);
      fsys::create_directories(d, ec);
      if (ec) return from_fs_error(ec, "lustre mkfs: create " + d);
      STOR_RETURN_IF_ERROR(Mds::format(d, ::getuid(), ::getgid(), 0711, first_ino_of_mdt(k), true));
    }
  }
  pb::Superblock sb;
  sb.set_format_version(1);
  sb.set_fsname(opts.fsname);
  sb.set_target_count(opts.targets);
  sb.set_created_ns(std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch()).count());
  *sb.mutable_default_layout() = def;
  for (const auto& ep : opts.target_endpoints) sb.add_target_endpoints(ep);
  if (opts.mdt_endpoints.size() > 1)
    for (const auto& ep : opts.mdt_endpoints) sb.add_mdt_endpoints(ep);
  // The marker goes last: a half-made file system is never found by locate().
  return write_file_atomic(dir + "/" + kMarkerName, sb.SerializeAsString());
}

Status setstripe(const std::string& path_in, const LayoutSpec& spec, const Identity& id) {
  std::string path = absolute_path(host_path_of(path_in));
  pb::Layout tmpl = to_layout(spec);
  auto loc = open_fs(path_in, path);
  if (!loc) {
    if (loc.status().code() != Code::kNotFound) return loc.status();
    auto drv = detect_layout_driver(path);
    if (drv.native) return drv.native->set_layout(path, tmpl);
    return loc.status().with_suffix(" (" + drv.reason + ")");
  }
  auto& fs = loc->fs;
  STOR_RETURN_IF_ERROR(validate_layout(tmpl, fs->target_count()));
  auto st = fs->meta().stat(id, loc->path);
  if (!st && st.status().code() == Code::kNotFound) {
    STOR_ASSIGN_OR_RETURN(auto opened, fs->meta().open(id, loc->path, kOpenWrite | kOpenCreate | kOpenExclusive,
                                                       0644, &tmpl));
    return opened.file->close();
  }
  if (!st) return st.status();
  return fs->meta().set_layout(id, loc->path, tmpl);
}

Result<StripeInfo> getstripe(const std::string& path_in, const Identity& id) {
  std::string path = absolute_path(host_path_of(path_in));
  StripeInfo info;
  info.path = path;
  auto loc = open_fs(path_in, path);
  if (!loc) {
    if (loc.status().code() != Code::kNotFound) return loc.status();
    auto drv = detect_layout_driver(path);
    if (!drv.native) return loc.status().with_suffix(" (" + drv.reason + ")");
    STOR_ASSIGN_OR_RETURN(info.layout, drv.native->get_layout(path));
    std::error_code ec;
    info.is_dir = fsys::is_directory(path, ec);
    info.size = info.is_dir ? 0 : fsys::file_size(path, ec);
    info.driver = std::string(drv.native->name());
    return info;
  }
  info.driver = "emulated";
  auto& fs = loc->fs;
  if (fs->cluster()) info.path = path_in;
  STOR_ASSIGN_OR_RETURN(auto lay, fs->meta().get_layout(id, loc->path));
  info.is_dir = lay.is_dir;
  info.size = lay.size;
  info.layout = lay.layout;
  if (info.is_dir && info.layout.components_size() == 0) {
    info.inherited = true;
    info.layout = fs->superblock().default_layout();
  }
  if (!info.is_dir) {
    const uint64_t ino = lay.ino;  // part of every object name
    for (int c = 0; c < info.layout.components_size(); ++c) {
      const auto& comp = info.layout.components(c);
      for (int s = 0; s < comp.targets_size(); ++s) {
        ObjectInfo o;
        o.component = static_cast<uint32_t>(c);
        o.stripe = static_cast<uint32_t>(s);
        o.target = comp.targets(s);
        o.path = fs->cluster() ? fs->superblock().target_endpoints(static_cast<int>(o.target)) + "/" +
                                    FileSystem::object_name(ino, o.component, o.stripe)
                              : fs->object_path(o.target, ino, o.component, o.stripe);
        if (fs->remote()) {
          auto st = fs->remote_target(o.target).stat(FileSystem::object_name(ino, o.component, o.stripe));
          if (!st && st.status().code() != Code::kNotFound) return st.status();
          o.exists = st.is_ok();
          o.size = o.exists ? st->size : 0;
        } else {
          struct stat st {};
          o.exists = ::lstat(o.path.c_str(), &st) == 0;  // a symlink there is not followed
          o.size = o.exists ? static_cast<uint64_t>(st.st_size) : 0;
        }
        info.objects.push_back(std::move(o));
      }
    }
  }
  return info;
}

std::string format_stripe_info(const StripeInfo& info) { return admin::format_stripe_info(to_admin_stripe_info(info)); }

admin::Layout to_admin_layout(const pb::Layout& layout) {
  admin::Layout out;
  for (const auto& c : layout.components()) {
    admin::LayoutComponent ac;
    ac.extent_start = c.extent_start();
    ac.extent_end = c.extent_end();
    ac.stripe_count = c.stripe_count();
    ac.stripe_size = c.stripe_size();
    ac.stripe_offset = c.stripe_offset();
    ac.targets.assign(c.targets().begin(), c.targets().end());
    out.components.push_back(std::move(ac));
  }
  return out;
}

pb::Layout from_admin_layout(const admin::Layout& layout) {
  pb::Layout out;
  for (const auto& ac : layout.components) {
    auto* c = out.add_components();
    c->set_extent_start(ac.extent_start);
    c->set_extent_end(ac.extent_end);
    c->set_stripe_count(ac.stripe_count);
    c->set_stripe_size(ac.stripe_size);
    c->set_stripe_offset(ac.stripe_offset);
    for (uint32_t t : ac.targets) c->add_targets(t);
  }
  return out;
}

admin::StripeInfo to_admin_stripe_info(const StripeInfo& info) {
  admin::StripeInfo out;
  out.path = info.path;
  out.is_dir = info.is_dir;
  out.inherited = info.inherited;
  out.layout = to_admin_layout(info.layout);
  out.size = info.size;
  out.objects = info.objects;
  out.driver = info.driver;
  return out;
}

Result<DfReport> df(const std::string& path_in) {
  std::string path = absolute_path(host_path_of(path_in));
  STOR_ASSIGN_OR_RETURN(auto loc, open_fs(path_in, path));
  auto& fs = loc.fs;
  DfReport r;
  r.root = fs->root();
  r.fsname = fs->superblock().fsname();
  STOR_ASSIGN_OR_RETURN(MetaCounters counters, fs->meta().statfs());
  r.inodes = counters.inodes;
  r.wal_bytes = counters.wal_bytes;
  if (counters.per_mdt.size() > 1)
    for (uint32_t k = 0; k < counters.per_mdt.size() && k < mdt_count(fs->superblock()); ++k)
      r.mdts.push_back(admin::MdtUsage{k, fs->superblock().mdt_endpoints(static_cast<int>(k)), counters.per_mdt[k].first,
                                counters.per_mdt[k].second});
  for (uint32_t t = 0; t < fs->target_count(); ++t) {
    TargetUsage u;
    u.index = t;
    u.path = fs->target_dir(t);
    if (fs->remote()) {  // served by a stor-target: its listing gives objects and sizes
      u.path = fs->superblock().target_endpoints(static_cast<int>(t));
      STOR_ASSIGN_OR_RETURN(auto entries, fs->remote_target(t).list());
      for (const auto& e : entries) {
        ++u.objects;
        u.apparent_bytes += e.size;
      }
      u.used_bytes = u.apparent_bytes;  // allocation is the server's business
      r.targets.push_back(std::move(u));
      continue;
    }
    std::error_code ec;
    for (auto it = fsys::recursive_directory_iterator(u.path, ec); !ec && it != fsys::recursive_directory_iterator();
         it.increment(ec)) {
      struct stat st {};
      if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      ++u.objects;
      u.apparent_bytes += static_cast<uint64_t>(st.st_size);
      u.used_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    }
    if (ec) return from_fs_error(ec, "lustre df: scan " + u.path);
    struct statvfs sv {};
    if (::statvfs(u.path.c_str(), &sv) == 0) {
      u.fs_total = static_cast<uint64_t>(sv.f_blocks) * sv.f_frsize;
      u.fs_avail = static_cast<uint64_t>(sv.f_bavail) * sv.f_frsize;
    }
    r.targets.push_back(std::move(u));
  }
  return r;
}

Result<FsckReport> fsck(const std::string& path_in, bool repair) {
  std::string path = absolute_path(host_path_of(path_in));
  STOR_ASSIGN_OR_RETURN(auto loc, FileSystem::locate(path));
  FsckReport r;
  // Several MDTs: each one is checked (its metadata, and the objects of its own inodes), then
  // the remote entries across them.
  std::vector<std::shared_ptr<FileSystem>> mdts;
  for (uint32_t k = 0, n = 1; k < n; ++k) {
    MountOptions mo;
    mo.mdt_index = k;
    auto mounted = FileSystem::mount(loc.first, mo);
    const std::string who = n > 1 ? "MDT " + std::to_string(k) + ": " : "";
    if (!mounted && mounted.status().code() == Code::kCorruption) {
      // Load what is valid; without repair write nothing, with it checkpoint the result.
      mo.mds.recover = true;
      mo.mds.read_only = !repair;
      mounted = FileSystem::mount(loc.first, mo);
      if (mounted)
        for (const auto& p : (*mounted)->mds().problems()) r.problems.push_back(who + p);
    }
    if (!mounted) return mounted.status();
    auto fs = *mounted;
    n = mdt_count(fs->superblock());
    STOR_ASSIGN_OR_RETURN(auto scan, fs->scan_objects(repair));
    r.inodes += fs->mds().inode_count();
    r.objects = scan.objects;  // every scan lists all objects
    r.orphans += scan.orphans;
    r.overlong += scan.overlong;
    for (auto& o : scan.orphan_paths) r.orphan_paths.push_back(std::move(o));
    mdts.push_back(std::move(fs));
  }
  if (mdts.size() > 1) {
    // Every remote entry names a directory in /.stor-remote of its MDT, and every directory
    // there is named by exactly one remote entry; cross-MDT operations left unfinished are
    // listed (the MDS finishes them when it starts).
    std::map<std::pair<uint32_t, std::string>, int> refs;
    for (uint32_t k = 0; k < mdts.size(); ++k)
      for (const auto& e : mdts[k]->mds().remote_entries()) {
        const std::string what = "MDT " + std::to_string(k) + ": remote entry (inode " + std::to_string(e.ino) +
                                 ") for MDT " + std::to_string(e.mdt) +
                                 (e.attrs.type() == pb::REGULAR ? " file " : " directory ") + e.name;
        if (e.intent != 0) {
          const char* op = e.intent == kIntentMkdir ? "mkdir"
                           : e.intent == kIntentMove ? "rename"
                           : e.attrs.type() == pb::REGULAR ? "unlink" : "rmdir";
          r.problems.push_back(what + ": unfinished cross-MDT " + op +
                               " (stor-mds of MDT " + std::to_string(k) + " finishes it when it starts)");
          if (e.intent == kIntentMkdir) continue;
        }
        if (e.mdt >= mdts.size()) {
          r.problems.push_back(what + ": no such MDT");
          continue;
        }
        ++refs[{e.mdt, e.name}];
      }
    for (uint32_t k = 0; k < mdts.size(); ++k)
      for (const auto& name : mdts[k]->mds().root_names()) {
        auto it = refs.find({k, name});
        if (it == refs.end()) {
          r.problems.push_back("MDT " + std::to_string(k) + ": /" + kRemoteDirName + "/" + name +
                               " is named by no remote entry (orphan of an aborted cross-MDT operation)");
          continue;
        }
        if (it->second > 1) r.problems.push_back("MDT " + std::to_string(k) + ": /" + kRemoteDirName + "/" + name + " is named by " +
                                                 std::to_string(it->second) + " remote entries");
        refs.erase(it);
      }
    for (const auto& [where, n] : refs)
      r.problems.push_back("MDT " + std::to_string(where.first) + " has no /" + kRemoteDirName + "/" + where.second +
                           " that a remote entry names (dangling)");
  }
  return r;
}

Result<ImageReport> verify_metadata_image(std::string_view superblock, std::string_view checkpoint,
                                          std::string_view wal, bool recover) {
  STOR_ASSIGN_OR_RETURN(auto sb, parse_superblock(superblock, kMarkerName));
  STOR_ASSIGN_OR_RETURN(auto mds, Mds::load_image(checkpoint, wal, sb.target_count(), sb.default_layout(), recover));
  ImageReport r;
  r.inodes = mds->inode_count();
  r.problems = mds->problems();
  return r;
}

DriverInfo layout_driver_for(const std::string& path_in) {
  std::string path = absolute_path(host_path_of(path_in));
  auto drv = detect_layout_driver(path);
  auto loc = FileSystem::locate(path);
  if (loc) {
    // A stor file system always uses its own MDS, even if it happens to sit on Lustre.
    return {"emulated", loc->first + " holds a stor emulated Lustre file system (" + kMarkerName + "); " + drv.reason};
  }
  if (drv.native) return {std::string(drv.native->name()), drv.reason};
  return {"emulated", drv.reason};
}

}  // namespace stor::lustre

// The public admin API (include/stor/admin.h): plain structs in, plain structs out, as the
// calling process's identity.
namespace stor::admin {

static_assert(kEof == lustre::kEof && kDefaultStripeSize == lustre::kDefaultStripeSize);

Layout layout_of(const LayoutSpec& spec) { return lustre::to_admin_layout(lustre::to_layout(spec)); }
std::string describe_layout(const Layout& layout) { return lustre::describe_layout(lustre::from_admin_layout(layout)); }
Result<uint64_t> parse_size(const std::string& text, bool allow_eof) { return lustre::parse_size(text, allow_eof); }
std::string format_size(uint64_t bytes) { return lustre::format_size(bytes); }
Status mkfs(const std::string& dir, const MkfsOptions& opts) { return lustre::make_file_system(dir, opts); }
std::string target_key_path(const std::string& dir) { return lustre::target_key_path(dir); }
Status setstripe(const std::string& path, const LayoutSpec& spec) {
  return lustre::setstripe(path, spec, lustre::Identity::process());
}
Result<StripeInfo> getstripe(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(lustre::StripeInfo info, lustre::getstripe(path));
  return lustre::to_admin_stripe_info(info);
}
Result<DfReport> df(const std::string& path) { return lustre::df(path); }
Result<FsckReport> fsck(const std::string& path, bool repair) { return lustre::fsck(path, repair); }
std::string host_path_of(const std::string& path_or_uri) { return lustre::host_path_of(path_or_uri); }

std::string format_stripe_info(const StripeInfo& info) {
  using lustre::format_size;
  std::string out = info.path + "\n";
  char line[256];
  if (info.is_dir) out += info.inherited ? "  default layout (inherited from the file system):\n" : "  default layout:\n";
  else {
    std::snprintf(line, sizeof line, "  size: %llu\n", static_cast<unsigned long long>(info.size));
    out += line;
  }
  out += "  layout driver: " + info.driver + "\n";
  for (size_t c = 0; c < info.layout.components.size(); ++c) {
    const auto& comp = info.layout.components[c];
    std::snprintf(line, sizeof line, "  component %d: extent [%s, %s) stripe_count %d stripe_size %s stripe_offset %d\n",
                  static_cast<int>(c), format_size(comp.extent_start).c_str(), format_size(comp.extent_end).c_str(),
                  comp.stripe_count, format_size(comp.stripe_size).c_str(),
                  comp.targets.empty() ? comp.stripe_offset : static_cast<int>(comp.targets[0]));
    out += line;
    bool header = false;
    for (const auto& o : info.objects) {
      if (o.component != static_cast<uint32_t>(c)) continue;
      if (!header) out += "    stripe  obdidx  object                      size\n";
      header = true;
      std::snprintf(line, sizeof line, "    %6u  %6u  %-26s  %s\n", o.stripe, o.target,
                    o.path.substr(o.path.rfind('/') + 1).c_str(),
                    o.exists ? std::to_string(o.size).c_str() : "(not allocated)");
      out += line;
    }
  }
  return out;
}

}  // namespace stor::admin
