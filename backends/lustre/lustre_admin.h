// Administration API of the Lustre-style backend (`lustre://` scheme), used by stctl and tests:
// mkfs, setstripe/getstripe, df, and opening the backend as a chosen identity.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/lustre/layout.h"
#include "backends/lustre/lustre.pb.h"
#include "backends/lustre/mds.h"
#include "stor/backend.h"
#include "stor/engine.h"
#include "stor/status.h"

namespace stor::lustre {

// One component of a layout request. A LayoutSpec with several components is progressive
// (PFL): each covers the file up to its extent_end, the last one to EOF.
struct StripeSpec {
  int32_t stripe_count = 1;                 // -1: all targets
  uint64_t stripe_size = kDefaultStripeSize;  // multiple of 64 KiB
  int32_t stripe_offset = -1;               // first target; -1: allocator's choice
  uint64_t extent_end = kEof;
};
using LayoutSpec = std::vector<StripeSpec>;

// Builds the layout template (extents chained from 0); validation happens against a file system.
pb::Layout to_layout(const LayoutSpec& spec);

struct MkfsOptions {
  uint32_t targets = 4;
  LayoutSpec default_layout{StripeSpec{}};
  uint32_t root_mode = 0755;
  std::string fsname = "stor";
  // Remote targets: one stor-target endpoint per target (targets is then the list's length and
  // no ostK directories are made). mkfs checks that each one answers.
  std::vector<std::string> target_endpoints;
  // Remote targets: the key they were started with (stor-target --key-file; make one with
  // `stor-target --make-key FILE`). mkfs checks every target authenticates
  // with it and copies it to target_key_path(dir), mode 0600. Empty: mkfs makes a new key there,
  // and only checks that each target answers (they cannot hold the new key yet: restart them with
  // --key-file target_key_path(dir)).
  std::string key_file;
};
// Where mkfs keeps a remote-target file system's key: DIR/mdt/target.key.
std::string target_key_path(const std::string& dir);
// Creates a new file system in `dir` (created if missing; must not already hold one) with
// `targets` object targets. The root directory belongs to the calling process's uid/gid.
Status mkfs(const std::string& dir, const MkfsOptions& opts);

// The directory default (directory), the layout of an empty file, or a new empty file with the
// layout (missing path). Path is a host path or lustre:// URI.
Status setstripe(const std::string& path, const LayoutSpec& spec, const Identity& id = Identity::process());

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
  pb::Layout layout;
  uint64_t size = 0;
  std::vector<ObjectInfo> objects;
  std::string driver;       // "emulated" or "llapi"
};
Result<StripeInfo> getstripe(const std::string& path, const Identity& id = Identity::process());
std::string format_stripe_info(const StripeInfo& info);

struct TargetUsage {
  uint32_t index = 0;
  std::string path;
  uint64_t objects = 0;
  uint64_t used_bytes = 0;      // allocated blocks of the objects
  uint64_t apparent_bytes = 0;  // sum of object sizes (sparse files count their holes)
  uint64_t fs_total = 0, fs_avail = 0;  // of the host file system holding the target
};
struct DfReport {
  std::string root, fsname;
  uint64_t inodes = 0;
  uint64_t wal_bytes = 0;
  std::vector<TargetUsage> targets;
};
Result<DfReport> df(const std::string& path);

// Consistency check: every object must belong to a live file's layout and hold nothing past the
// file's size. With repair, orphans are deleted and overlong objects cut back.
// When the metadata does not load (an invalid checkpoint entry or WAL record), fsck loads what is
// valid instead and lists each problem and what repair does about it (record dropped, inode
// dropped, entry moved to /lost+found/#INO); without repair nothing is written. With repair the
// result is written as a fresh checkpoint, so the file system mounts again. A bad superblock or
// a checkpoint that does not parse at all is reported as Corruption (nothing to rebuild from).
struct FsckReport {
  uint64_t inodes = 0, objects = 0, orphans = 0;
  uint64_t overlong = 0;  // objects with bytes past their file's size (unacknowledged writes)
  std::vector<std::string> orphan_paths;
  std::vector<std::string> problems;  // metadata problems (empty when the file system mounts)
};
Result<FsckReport> fsck(const std::string& path, bool repair = false);

// Loads a metadata image held in memory (the bytes of .stor-lustre, mdt/checkpoint and the
// mdt/wal.N that checkpoint names) as mount would, touching no disk, and returns what it found:
// Corruption naming the first bad record, or with recover the fsck problem list. Any bytes give
// a Status, never a crash (for fuzzing and offline checks).
struct ImageReport {
  uint64_t inodes = 0;
  std::vector<std::string> problems;
};
Result<ImageReport> verify_metadata_image(std::string_view superblock, std::string_view checkpoint,
                                          std::string_view wal, bool recover = false);

struct BackendOptions {
  Identity identity = Identity::process();
  MdsOptions mds;
  std::string key_file;  // remote targets' key (lustre.key_file); empty: ROOT/mdt/target.key
};
// Settings: lustre.uid, lustre.gids ("100,27", first is primary), lustre.checkpoint_bytes,
// lustre.sync_metadata ("1": fdatasync the metadata log before acknowledging each operation),
// lustre.key_file (the remote targets' key file, when not ROOT/mdt/target.key).
Result<BackendOptions> backend_options_from_settings(const std::map<std::string, std::string>& settings);
// A lustre:// backend acting as opts.identity (tests use it to check EACCES as non-root).
Result<std::shared_ptr<Backend>> make_backend(IoEngine* engine, const BackendOptions& opts);

// Which layout driver serves a host path ("emulated" or "llapi") and why.
struct DriverInfo {
  std::string driver;
  std::string reason;
};
DriverInfo layout_driver_for(const std::string& path);

// "lustre:///a/b" -> "/a/b"; host paths pass through.
std::string host_path_of(const std::string& path_or_uri);

}  // namespace stor::lustre
