// Administration API for tools: what stctl, mpiio and the benches need from the backends,
// in plain structs (no protobuf, no metadata-server types).
//
//   Lustre-style file systems (lustre://): mkfs, setstripe/getstripe, df, fsck.
//   S3 / S3 Express (s3://, s3express://): create a bucket, show how a bucket authenticates.
//
// Every call is synchronous and safe to call from any thread; the lustre calls mount the file
// system themselves (as the calling process's uid/gid) for the duration of the call, so they
// must not race another process's mount of the same file system (the mount lock refuses that
// with Busy). Paths are host paths or lustre:// URIs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {
class Store;
}

namespace stor::admin {

// ---- Lustre-style layouts ------------------------------------------------------------------

inline constexpr uint64_t kEof = UINT64_MAX;              // extent end "to end of file"
inline constexpr uint64_t kDefaultStripeSize = 1ull << 20;

// One component of a layout request. A LayoutSpec with several components is progressive
// (PFL): each covers the file up to its extent_end, the last one to EOF.
struct StripeSpec {
  int32_t stripe_count = 1;                   // -1: all targets
  uint64_t stripe_size = kDefaultStripeSize;  // multiple of 64 KiB
  int32_t stripe_offset = -1;                 // first target; -1: allocator's choice
  uint64_t extent_end = kEof;
};
using LayoutSpec = std::vector<StripeSpec>;

// A layout as stored: components tile [0, EOF). A file's components name their targets; a
// directory default or template may leave them empty (allocator's choice at creation).
struct LayoutComponent {
  uint64_t extent_start = 0, extent_end = kEof;
  int32_t stripe_count = 1;
  uint64_t stripe_size = kDefaultStripeSize;
  int32_t stripe_offset = -1;
  std::vector<uint32_t> targets;
};
struct Layout {
  std::vector<LayoutComponent> components;
};

// The template a spec describes (extents chained from 0); validated only against a file system.
STOR_API Layout layout_of(const LayoutSpec& spec);
// "1 component(s): [0, EOF) count=4 size=1M offset=-1 targets=0,1,2,3" style description.
STOR_API std::string describe_layout(const Layout& layout);

// Sizes as lfs writes them: "65536", "64K", "1M", "2G" (and "EOF"/"-1" as kEof where allow_eof).
STOR_API Result<uint64_t> parse_size(const std::string& text, bool allow_eof = false);
STOR_API std::string format_size(uint64_t bytes);  // 1048576 -> "1M"

struct MkfsOptions {
  uint32_t targets = 4;
  LayoutSpec default_layout{StripeSpec{}};
  uint32_t root_mode = 0755;
  std::string fsname = "stor";
  // Remote targets: one stor-target endpoint per target (targets is then the list's length and
  // no ostK directories are made). mkfs checks that each one answers.
  std::vector<std::string> target_endpoints;
  // Remote targets: the key they were started with (stor-target --key-file; make one with
  // `stor-target --make-key FILE`). mkfs checks every target authenticates with it and copies it
  // to DIR/mdt/target.key, mode 0600. Empty: mkfs makes a new key there, and only checks that each
  // target answers (they cannot hold the new key yet: restart them with --key-file on that file).
  std::string key_file;
  // Several metadata targets (DNE, remote targets only): the endpoint each stor-mds will listen
  // on, MDT 0 first (clients mount lustre://MDT0/...; it hands out this list). Two or more make
  // DIR/mdt1, DIR/mdt2, ... beside DIR/mdt; directories are then spread over the MDTs.
  std::vector<std::string> mdt_endpoints;
};
// Creates a new file system in `dir` (created if missing; must not already hold one). The root
// directory belongs to the calling process's uid/gid.
STOR_API Status mkfs(const std::string& dir, const MkfsOptions& opts);
// Where mkfs keeps a remote-target file system's key: DIR/mdt/target.key.
STOR_API std::string target_key_path(const std::string& dir);

// Sets the directory default (directory), the layout of an empty file, or creates a new empty
// file with the layout (missing path), as the calling process's uid/gid.
STOR_API Status setstripe(const std::string& path, const LayoutSpec& spec);

struct ObjectInfo {
  uint32_t component = 0, stripe = 0, target = 0;
  std::string path;
  bool exists = false;
  uint64_t size = 0;
};
struct StripeInfo {
  std::string path;
  bool is_dir = false;
  bool inherited = false;   // directory without its own default: shows the file system default
  Layout layout;
  uint64_t size = 0;
  std::vector<ObjectInfo> objects;
  std::string driver;       // "emulated" or "llapi"
};
STOR_API Result<StripeInfo> getstripe(const std::string& path);
// The lfs-getstripe style text stctl prints.
STOR_API std::string format_stripe_info(const StripeInfo& info);

struct TargetUsage {
  uint32_t index = 0;
  std::string path;
  uint64_t objects = 0;
  uint64_t used_bytes = 0;      // allocated blocks of the objects
  uint64_t apparent_bytes = 0;  // sum of object sizes (sparse files count their holes)
  uint64_t fs_total = 0, fs_avail = 0;  // of the host file system holding the target
};
// One metadata target of a cluster with several MDTs.
struct MdtUsage {
  uint32_t index = 0;
  std::string endpoint;
  uint64_t inodes = 0, wal_bytes = 0;
};
struct DfReport {
  std::string root, fsname;
  uint64_t inodes = 0;     // over every MDT
  uint64_t wal_bytes = 0;
  std::vector<TargetUsage> targets;
  std::vector<MdtUsage> mdts;  // a cluster mount of a file system with several MDTs: each one
};
STOR_API Result<DfReport> df(const std::string& path);

// Consistency check: every object must belong to a live file's layout and hold nothing past the
// file's size. With repair, orphans are deleted and overlong objects cut back. Metadata that
// does not load is listed in `problems` with what repair does about it; with repair the result
// is written as a fresh checkpoint so the file system mounts again. A bad superblock or a
// checkpoint that does not parse at all is Corruption (nothing to rebuild from).
struct FsckReport {
  uint64_t inodes = 0, objects = 0, orphans = 0;
  uint64_t overlong = 0;  // objects with bytes past their file's size (unacknowledged writes)
  std::vector<std::string> orphan_paths;
  std::vector<std::string> problems;  // metadata problems (empty when the file system mounts)
};
STOR_API Result<FsckReport> fsck(const std::string& path, bool repair = false);

// "lustre:///a/b" -> "/a/b"; host paths pass through.
STOR_API std::string host_path_of(const std::string& path_or_uri);

// ---- S3 / S3 Express -----------------------------------------------------------------------
// `uri` names a bucket (s3express://BUCKET or s3://BUCKET/...); the store's s3.* settings say
// where and with which keys. InvalidArgument when the URI is not served by the S3 backend.

// Returns the name of the bucket created.
STOR_API Result<std::string> s3_create_bucket(Store& store, const std::string& uri);

struct S3AuthInfo {
  std::string bucket;
  std::string mode;      // "session" (S3 Express CreateSession token) or "sigv4"
  std::string endpoint;
  uint64_t sessions_created = 0;
};
STOR_API Result<S3AuthInfo> s3_auth_info(Store& store, const std::string& uri);

// Counters of the client serving `uri` in `store` (shared by every bucket of that scheme).
struct S3ClientStats {
  uint64_t requests = 0;  // HTTP requests sent, retries included
  uint64_t retries = 0;
  uint64_t sessions_created = 0;
  uint64_t connections_opened = 0;
};
STOR_API Result<S3ClientStats> s3_client_stats(Store& store, const std::string& uri);

// Bucket change notifications (Ceph RGW): creates (or updates) the topic `topic` pushing to
// `push_endpoint` ("http://HOST:PORT", e.g. a tiered namespace's notify_endpoint()) and sets the
// bucket's notification configuration to send ObjectCreated:* / ObjectRemoved:* events for keys
// under `uri`'s prefix (s3express://BUCKET/PREFIX) to it. Returns the topic ARN. Replaces the
// bucket's previous notification configuration.
STOR_API Result<std::string> s3_notify(Store& store, const std::string& uri, const std::string& topic,
                                       const std::string& push_endpoint);

}  // namespace stor::admin
