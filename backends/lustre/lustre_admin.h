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
#include "backends/lustre/fs.h"
#include "backends/lustre/mds.h"
#include "stor/admin.h"
#include "stor/backend.h"
#include "stor/engine.h"
#include "stor/status.h"

namespace stor::lustre {

// The plain request and report structs are the public ones (include/stor/admin.h); this header
// adds what tools must not see: protobuf layouts, identities and the metadata server's options.
using admin::LayoutSpec;
using admin::StripeSpec;

// Builds the layout template (extents chained from 0); validation happens against a file system.
pb::Layout to_layout(const LayoutSpec& spec);

// mkfs and setstripe as the calling process are the public admin::mkfs/admin::setstripe (one
// function each, so unqualified calls that find them by argument-dependent lookup agree).
using admin::MkfsOptions;
using admin::mkfs;
using admin::setstripe;
// Where mkfs keeps a remote-target file system's key: DIR/mdt/target.key.
std::string target_key_path(const std::string& dir);

// The directory default (directory), the layout of an empty file, or a new empty file with the
// layout (missing path), as `id`. Path is a host path or lustre:// URI.
Status setstripe(const std::string& path, const LayoutSpec& spec, const Identity& id);

using admin::ObjectInfo;
// getstripe as tests and the fuzzers see it: the protobuf layout, as any identity.
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

// The plain (public) form of a protobuf layout and of a StripeInfo, and back.
admin::Layout to_admin_layout(const pb::Layout& layout);
pb::Layout from_admin_layout(const admin::Layout& layout);
admin::StripeInfo to_admin_stripe_info(const StripeInfo& info);

using admin::DfReport;
using admin::TargetUsage;
Result<DfReport> df(const std::string& path);

// Consistency check: every object must belong to a live file's layout and hold nothing past the
// file's size. With repair, orphans are deleted and overlong objects cut back.
// When the metadata does not load (an invalid checkpoint entry or WAL record), fsck loads what is
// valid instead and lists each problem and what repair does about it (record dropped, inode
// dropped, entry moved to /lost+found/#INO); without repair nothing is written. With repair the
// result is written as a fresh checkpoint, so the file system mounts again. A bad superblock or
// a checkpoint that does not parse at all is reported as Corruption (nothing to rebuild from).
using admin::FsckReport;
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
  // lustre://HOST:PORT/... mounts: key (lustre.key_file, else $STOR_LUSTRE_KEY_FILE) and
  // reconnect timeout (lustre.reconnect_timeout_ms).
  ClusterOptions cluster;
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
