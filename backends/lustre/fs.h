// A mounted Lustre-style file system: superblock, metadata service and object targets.
//
// On-disk (host) layout made by mkfs:
//   ROOT/.stor-lustre           Superblock (protobuf)
//   ROOT/mdt/checkpoint, wal.N  metadata checkpoint + write-ahead log; mdt/lock is flock()ed
//   ROOT/ostK/XX/INO.C.S        object of stripe S of component C of inode INO (XX = INO % 256,
//                               made on first use)
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/lustre/lustre.pb.h"
#include "backends/lustre/mds.h"
#include "backends/lustre/metadata.h"
#include "core/task_pool.h"
#include "net/remote_object.h"
#include "stor/status.h"

namespace stor::lustre {

inline constexpr const char* kMarkerName = ".stor-lustre";

// The key a file system with remote targets authenticates to them with (net/auth.h): written
// by mkfs with mode 0600 beside the metadata.
inline constexpr const char* kTargetKeyName = "mdt/target.key";

// Several MDTs (DNE): at most this many; MDT k keeps its metadata in ROOT/mdt_dir_name(k) and
// numbers its inodes from first_ino_of_mdt(k), so object names never collide across MDTs.
inline constexpr uint32_t kMaxMdts = 256;
inline constexpr int kMdtInoShift = 48;
inline std::string mdt_dir_name(uint32_t k) { return k == 0 ? "mdt" : "mdt" + std::to_string(k); }
inline uint64_t first_ino_of_mdt(uint32_t k) { return k == 0 ? 2 : static_cast<uint64_t>(k) << kMdtInoShift; }
inline uint32_t mdt_of_ino(uint64_t ino) { return static_cast<uint32_t>(ino >> kMdtInoShift); }
inline uint32_t mdt_count(const pb::Superblock& sb) {
  return sb.mdt_endpoints_size() > 1 ? static_cast<uint32_t>(sb.mdt_endpoints_size()) : 1;
}

struct MountOptions {
  MdsOptions mds;  // mds.recover / mds.read_only: a private (uncached) recovery mount for fsck
  // Remote targets: the key file to authenticate with; empty: ROOT/mdt/target.key.
  std::string key_file;
  // The mount-time sweep after an unclean shutdown cuts objects back to their file's size. A
  // stor-mds must not: in cluster mode writers merge sizes only at sync/close, so bytes past
  // the size at the MDS may be acknowledged writes of files still open on some client.
  bool cut_overlong = true;
  // Remote targets: how long a call to a target that went away keeps reconnecting (0: fail at
  // once). A stor-mds waits for restarting targets instead of leaving orphans.
  std::chrono::milliseconds reconnect_timeout{0};
  // Delete the objects of unlinked files on background threads instead of in the unlink (a
  // stor-mds: the unlink reply does not wait for a round trip to every target, as Lustre's
  // MDS destroys OST objects after the unlink). A crash first leaves orphans, which the mount
  // after an unclean shutdown sweeps.
  bool async_reap = false;
  // Several MDTs: the MDT this mount serves (ROOT/mdt_dir_name(k)). Its object sweep touches
  // only objects of its own inodes.
  uint32_t mdt_index = 0;
};

// Cluster mode (lustre://HOST:PORT/...): how a client reaches the stor-mds and the targets.
struct ClusterOptions {
  std::string key_file;  // lustre.key_file, else $STOR_LUSTRE_KEY_FILE; empty: no handshake
  // How long a call keeps reconnecting and resending after the MDS or a target went away
  // (lustre.reconnect_timeout_ms), before it fails with Unavailable.
  std::chrono::milliseconds reconnect_timeout{60000};
  // The longest an extent lock request waits at the MDS before failing with Timeout
  // (lustre.lock_timeout_ms; BackendFile::lock_range's timeout is capped by it).
  std::chrono::milliseconds lock_timeout{60000};
  // Several MDTs: new directories go to this MDT (lustre.mkdir_mdt, as `lfs mkdir -i`); -1: the
  // MDS places them (hash of parent and name).
  int mkdir_mdt = -1;
};

// The remote targets' key for the file system at root: key_file, or ROOT/mdt/target.key. Null
// when key_file is empty and the file system has no key (made before keys existed: only targets
// started with --insecure-no-auth serve it). A key file others may read is refused.
Result<std::shared_ptr<const transport::AuthKey>> target_key(const std::string& root, const std::string& key_file);

// Parses and validates the superblock: format version, 1..kMaxTargets targets, a valid default
// layout, one endpoint per target (or none). `where` names the file in errors.
Result<pb::Superblock> parse_superblock(std::string_view data, const std::string& where);

class FileSystem {
 public:
  // Returns the process-wide instance for root_dir, mounting it on first use. The mount holds an
  // flock on mdt/lock, so a second process gets Busy instead of corrupting the log. Any bytes in
  // .stor-lustre, mdt/checkpoint or mdt/wal.N give a Status (Corruption naming the bad record),
  // never a crash. With opts.mds.recover the instance is private to the caller (fsck): it loads
  // what is valid and, unless opts.mds.read_only, writes a fresh checkpoint of it at once.
  static Result<std::shared_ptr<FileSystem>> mount(const std::string& root_dir, const MountOptions& opts = {});
  // Finds the file system holding host_path by walking up to the nearest directory with the
  // marker. Returns {root, in-fs path ("/" for the root)}. Rejects ".." components.
  static Result<std::pair<std::string, std::string>> locate(const std::string& host_path);
  // Cluster mode: connects to the stor-mds at authority ("HOST:PORT"), takes the configuration
  // (superblock) it hands out and connects to the targets it names. One instance per authority
  // and key file in this process; any number of processes connect at once. root() is
  // "lustre://HOST:PORT".
  static Result<std::shared_ptr<FileSystem>> connect(const std::string& authority, const ClusterOptions& opts);

  ~FileSystem();

  const std::string& root() const { return root_; }
  const pb::Superblock& superblock() const { return sb_; }
  uint32_t target_count() const { return sb_.target_count(); }
  // Embedded mounts only (the MDS itself, fsck): the in-process metadata service.
  Mds& mds() { return *mds_; }
  bool has_mds() const { return mds_ != nullptr; }
  // Every namespace call goes through this: the embedded Mds, or the stor-mds of a cluster.
  MetadataClient& meta() { return *meta_; }
  bool cluster() const { return !mds_; }
  uint32_t mdt_index() const { return mdt_index_; }
  std::string mdt_dir() const { return root_ + "/" + mdt_dir_name(mdt_index_); }

  std::string target_dir(uint32_t target) const;
  // Remote targets (superblock target_endpoints): objects live on stor-target servers, reached
  // through one RemoteObjectTarget per target, connected at mount.
  bool remote() const { return !remote_targets_.empty(); }
  transport::RemoteObjectTarget& remote_target(uint32_t target) const { return *remote_targets_.at(target); }
  // An object's name on its target, "XX/INO.C.S" (the local path without ROOT/ostK/).
  static std::string object_name(uint64_t ino, uint32_t component, uint32_t stripe);
  std::string object_path(uint32_t target, uint64_t ino, uint32_t component, uint32_t stripe) const;
  // Deletes every object of a file (unlinked, or re-laid-out while empty).
  void remove_objects(uint64_t ino, const pb::Layout& layout) const;

  struct ObjectScan {
    uint64_t objects = 0;
    uint64_t orphans = 0;  // objects no live file's layout names
    uint64_t overlong = 0; // objects holding bytes beyond their file's size
    std::vector<std::string> orphan_paths;
  };
  // Walks every target. With repair, deletes orphans (left by a crash between an unlink's log
  // record and its object deletion, or by files unlinked while open) and cuts objects back to
  // their file's size (bytes of writes that were never acknowledged, so that a later write past
  // them cannot expose them instead of zeros).
  // cut_overlong false: overlong objects are counted, not cut (MountOptions::cut_overlong).
  Result<ObjectScan> scan_objects(bool repair, bool cut_overlong = true);

 private:
  FileSystem() = default;
  Result<ObjectScan> scan_remote_objects(bool repair, bool cut_overlong);
  std::string root_;
  pb::Superblock sb_;
  std::unique_ptr<Mds> mds_;
  std::unique_ptr<MetadataClient> meta_;  // declared after mds_: destroyed before it
  std::vector<std::shared_ptr<transport::RemoteObjectTarget>> remote_targets_;
  std::unique_ptr<internal::TaskPool> reaper_;  // async_reap: drained before the MDS is closed
  uint32_t mdt_index_ = 0;
  int lock_fd_ = -1;
  bool read_only_ = false;
};

}  // namespace stor::lustre
