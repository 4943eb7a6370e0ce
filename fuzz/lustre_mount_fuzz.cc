// Lustre metadata load through mount: the input becomes the metadata of a file system made by
// mkfs (its mdt/wal.N, or its mdt/checkpoint), which is then mounted through the admin API the
// backend and stctl use, walked (readdir, stat, getstripe of every entry) and unmounted cleanly;
// a clean unmount writes a checkpoint that must mount again, twice, with the same inodes.
//
// First byte: bit 0 clear: the rest is the WAL (next to mkfs's checkpoint); set: the rest is
// the checkpoint. Bit 1 (WAL only): the rest is a list of records `u16 length | payload`, and the
// harness writes them as WAL frames with correct CRCs, so the record decoder is reached. Bit 2:
// leave the "clean" marker (else mount scans the targets for orphans). Bit 3: skip the walk.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/wal.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/lustre_walk.h"

using namespace stor::lustre;
namespace fsys = std::filesystem;

namespace {

const std::string& fs_root() {
  static const std::string root = [] {
    std::string r = stor::fuzz::scratch_dir() + "/fs";
    MkfsOptions o;
    o.targets = 4;
    if (stor::Status s = mkfs(r, o); !s.is_ok()) stor::fuzz::fail("mkfs: " + s.to_string());
    return r;
  }();
  return root;
}

const std::string& mkfs_checkpoint() {
  static const std::string cp = stor::fuzz::read_file(fs_root() + "/mdt/checkpoint");
  return cp;
}

// The log mkfs's checkpoint names ("wal.<generation>").
const std::string& mkfs_wal_name() {
  static const std::string name = [] {
    pb::Checkpoint cp;
    if (!cp.ParseFromString(mkfs_checkpoint())) stor::fuzz::fail("mkfs wrote a checkpoint that does not parse");
    return "wal." + std::to_string(cp.wal_generation());
  }();
  return name;
}

void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// `u16 len | payload` records -> WAL frames `u32 len | u32 crc32c | payload`.
std::string frame_records(const uint8_t* p, size_t n) {
  std::string out;
  while (n >= 2) {
    size_t len = static_cast<size_t>(p[0] | (p[1] << 8));
    p += 2;
    n -= 2;
    if (len > n) len = n;
    put_u32(out, static_cast<uint32_t>(len));
    put_u32(out, crc32c(p, len));
    out.append(reinterpret_cast<const char*>(p), len);
    p += len;
    n -= len;
  }
  return out;
}

uint64_t walk(FileSystem& fs, const Identity& root_id) {
  return stor::fuzz::walk_namespace(fs, root_id, [&](const std::string& path) {
    (void)fs.mds().stat(root_id, path);
    (void)getstripe(fs.root() + path, root_id);
  });
}

}  // namespace

// Protobuf logs every malformed string field it parses; the status returned is what matters.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  const bool as_checkpoint = mode & 1, framed = mode & 2, clean = mode & 4, do_walk = !(mode & 8);
  const std::string& root = fs_root();
  const std::string mdt = root + "/mdt";

  // Reset the metadata to what mkfs left, then put the input in place.
  std::error_code ec;
  fsys::remove_all(mdt, ec);
  fsys::create_directories(mdt);
  if (as_checkpoint) {
    stor::fuzz::write_file(mdt + "/checkpoint", std::string_view(reinterpret_cast<const char*>(data + 1), size - 1));
  } else {
    stor::fuzz::write_file(mdt + "/checkpoint", mkfs_checkpoint());
    std::string wal = framed ? frame_records(data + 1, size - 1)
                             : std::string(reinterpret_cast<const char*>(data + 1), size - 1);
    stor::fuzz::write_file(mdt + "/" + mkfs_wal_name(), wal);
  }
  if (clean) stor::fuzz::write_file(mdt + "/clean", "");
  // A few stripe objects of the first inodes, so the orphan scan of an unclean mount (and
  // getstripe) compare real objects against the layouts the input describes.
  for (uint64_t ino = 2; ino < 6; ++ino)
    for (uint32_t stripe = 0; stripe < 2; ++stripe) {
      const std::string obj = root + "/ost" + std::to_string(stripe) + "/" + FileSystem::object_name(ino, 0, stripe);
      fsys::create_directories(fsys::path(obj).parent_path());
      stor::fuzz::write_file(obj, std::string(100 + 1000 * stripe, 'o'));
    }

  const Identity root_id{0, {0}};
  {
    auto fs = FileSystem::mount(root);
    if (!fs.is_ok()) return 0;
    if (do_walk) walk(**fs, root_id);
  }  // unmount: checkpoint + clean marker

  // What a clean unmount wrote must mount again, and be a fixed point: writing it once more
  // changes nothing. (The first checkpoint keeps only what is reachable from the root.)
  uint64_t inodes = 0;
  {
    auto again = FileSystem::mount(root);
    STOR_FUZZ_CHECK(again.is_ok(), "remount after a clean unmount failed: " + again.status().to_string());
    inodes = (*again)->mds().inode_count();
  }
  auto third = FileSystem::mount(root);
  STOR_FUZZ_CHECK(third.is_ok(), "second remount failed: " + third.status().to_string());
  STOR_FUZZ_CHECK((*third)->mds().inode_count() == inodes, "inode count changed across a clean unmount");
  return 0;
}
