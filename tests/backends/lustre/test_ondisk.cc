// Nothing read from disk is trusted: CRC-valid but invalid WAL records, damaged checkpoints and
// superblocks must fail the mount with Corruption naming the record, never crash the process, and
// `fsck --repair` must make such a file system mountable again without losing the valid files.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "backends/lustre/fs.h"
#include "backends/lustre/layout.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/wal.h"
#include "test_util.h"

using namespace stor;
using namespace stor::lustre;

namespace {

const Identity kRoot{0, {0}};

bool contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

using Run = stor::test::CommandRun;

Run stctl(const std::string& args) {
  Run r = stor::test::run_command(std::string(STCTL_PATH) + " " + args + " 2>&1");
  REQUIRE(r.exit_code != -2);
  return r;
}

// A file with `size` bytes in one object on target 0 (written directly; the MDS logs the size).
uint64_t make_file(FileSystem& fs, const std::string& path, uint64_t size) {
  LayoutSpec one{StripeSpec{1, kDefaultStripeSize, 0}};
  pb::Layout tmpl = to_layout(one);
  auto o = fs.mds().open_file(kRoot, path, kOpenWrite | kOpenCreate | kOpenExclusive, 0644, &tmpl);
  REQUIRE(o.is_ok());
  uint64_t ino = o->inode->ino;
  std::string obj = fs.object_path(0, ino, 0, 0);
  std::filesystem::create_directories(std::filesystem::path(obj).parent_path());
  std::ofstream(obj, std::ios::binary) << std::string(size, 'x');
  REQUIRE(fs.mds().extend_size(*o->inode, size).is_ok());
  fs.mds().close_file(o->inode);
  return ino;
}

// mkfs + /keep and /victim with data, cleanly unmounted. Returns the root.
struct Image {
  std::string root;
  uint64_t keep = 0, victim = 0;
};
Image make_image(const stor::test::TempDir& dir) {
  Image im;
  im.root = dir.path() + "/fs";
  MkfsOptions o;
  o.targets = 2;
  REQUIRE(mkfs(im.root, o).is_ok());
  auto fs = FileSystem::mount(im.root);
  REQUIRE(fs.is_ok());
  REQUIRE((*fs)->mds().mkdir(kRoot, "/d", 0755).is_ok());
  im.keep = make_file(**fs, "/d/keep", 5000);
  im.victim = make_file(**fs, "/victim", 7000);
  return im;  // the mount goes here: checkpoint + clean marker
}

pb::Checkpoint read_checkpoint(const std::string& root) {
  auto data = read_file(root + "/mdt/checkpoint");
  REQUIRE(data.is_ok());
  pb::Checkpoint cp;
  REQUIRE(cp.ParseFromString(*data));
  return cp;
}

void write_checkpoint(const std::string& root, const pb::Checkpoint& cp) {
  REQUIRE(write_file_atomic(root + "/mdt/checkpoint", cp.SerializeAsString()).is_ok());
}

// Appends a CRC-valid frame with the WAL writer's own framing, and drops the clean marker so the
// next mount also sweeps the objects (which reaches the layout math).
void append_record(const std::string& root, const pb::WalRecord& rec) {
  const std::string wal = root + "/mdt/wal." + std::to_string(read_checkpoint(root).wal_generation());
  std::error_code ec;
  uint64_t size = std::filesystem::exists(wal) ? std::filesystem::file_size(wal) : 0;
  WalWriter w;
  REQUIRE(w.open(wal, size).is_ok());
  REQUIRE(w.append(rec.SerializeAsString()).is_ok());
  w.close();
  std::filesystem::remove(root + "/mdt/clean", ec);
}

pb::WalRecord zero_stripe_record(uint64_t ino) {
  pb::WalRecord rec;
  rec.set_op(pb::WalRecord::SET_LAYOUT);
  rec.mutable_inode()->set_ino(ino);
  auto* c = rec.mutable_inode()->mutable_layout()->add_components();
  c->set_extent_start(0);
  c->set_extent_end(kEof);
  c->set_stripe_count(1);
  c->set_stripe_size(0);
  c->add_targets(0);
  return rec;
}

// Mount fails with Corruption whose message names `what`; fsck reports it without changing
// anything; fsck --repair fixes it; then the file system mounts and /d/keep is intact.
void check_repairable(const Image& im, const std::vector<std::string>& what, const std::string& keep_path = "/d/keep") {
  {
    auto m = FileSystem::mount(im.root);
    REQUIRE_FALSE(m.is_ok());
    INFO(m.status().message());
    CHECK(m.status().code() == Code::kCorruption);
    for (const auto& w : what) CHECK(contains(m.status().message(), w));
  }
  auto report = fsck(im.root, false);
  REQUIRE(report.is_ok());
  REQUIRE_FALSE(report->problems.empty());
  std::string all;
  for (const auto& p : report->problems) all += p + "\n";
  INFO(all);
  for (const auto& w : what) CHECK(contains(all, w));
  CHECK(FileSystem::mount(im.root).status().code() == Code::kCorruption);  // a check changes nothing

  auto fixed = fsck(im.root, true);
  REQUIRE(fixed.is_ok());
  CHECK_FALSE(fixed->problems.empty());
  auto fs = FileSystem::mount(im.root);
  REQUIRE(fs.is_ok());
  auto keep = (*fs)->mds().stat(kRoot, keep_path);
  REQUIRE(keep.is_ok());
  CHECK(keep->size == 5000);
  fs->reset();
  auto again = fsck(im.root, false);
  REQUIRE(again.is_ok());
  CHECK(again->problems.empty());
}

}  // namespace

TEST_CASE("a CRC-valid SET_LAYOUT record with stripe_size 0 fails the mount, fsck --repair fixes it",
          "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  const uint64_t gen = read_checkpoint(im.root).wal_generation();
  append_record(im.root, zero_stripe_record(im.victim));
  // Before the fix this died of SIGFPE (division by the stripe size in object_size_for, reached
  // from the object sweep of the mount).
  check_repairable(im, {"wal." + std::to_string(gen) + " record 1", "SET_LAYOUT",
                        "inode " + std::to_string(im.victim), "stripe_size"});
  // The bad record was dropped: /victim keeps its valid layout and its data.
  auto fs = FileSystem::mount(im.root);
  REQUIRE(fs.is_ok());
  auto v = (*fs)->mds().stat(kRoot, "/victim");
  REQUIRE(v.is_ok());
  CHECK(v->size == 7000);
  auto l = (*fs)->mds().get_layout(kRoot, "/victim");
  REQUIRE(l.is_ok());
  CHECK(l->first.components(0).stripe_size() == kDefaultStripeSize);
}

TEST_CASE("WAL records that break the namespace fail the mount with Corruption", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  pb::WalRecord rec;
  std::vector<std::string> what;
  SECTION("create with a '/' in the name") {
    rec.set_op(pb::WalRecord::CREATE);
    rec.set_parent(1);
    rec.set_name("a/b");
    rec.mutable_inode()->set_ino(1000);
    rec.mutable_inode()->set_type(pb::DIRECTORY);
    rec.mutable_inode()->set_mode(0755);
    what = {"record 1", "CREATE", "name"};
  }
  SECTION("create of an inode number that exists") {
    rec.set_op(pb::WalRecord::CREATE);
    rec.set_parent(1);
    rec.set_name("dup");
    rec.mutable_inode()->set_ino(im.keep);
    rec.mutable_inode()->set_type(pb::DIRECTORY);
    rec.mutable_inode()->set_mode(0755);
    what = {"record 1", "inode " + std::to_string(im.keep), "already exists"};
  }
  SECTION("size that overflows offset math") {
    rec.set_op(pb::WalRecord::SET_ATTR);
    rec.set_attr_mask(8);  // size
    rec.mutable_inode()->set_ino(im.victim);
    rec.mutable_inode()->set_size(UINT64_MAX - 5);
    what = {"record 1", "SET_ATTR", "size"};
  }
  SECTION("rename of a directory into itself") {
    rec.set_op(pb::WalRecord::RENAME);
    rec.set_parent(1);
    rec.set_name("d");
    auto st = read_checkpoint(im.root);
    uint64_t d = 0;
    for (const auto& e : st.dirents())
      if (e.name() == "d") d = e.ino();
    rec.set_new_parent(d);
    rec.set_new_name("loop");
    what = {"record 1", "RENAME", "into itself"};
  }
  SECTION("cross-MDT rename record replacing a directory") {
    rec.set_op(pb::WalRecord::CREATE);
    rec.set_parent(1);
    rec.set_name("d");
    rec.set_replace(true);
    rec.mutable_inode()->set_ino(1000);
    rec.mutable_inode()->set_type(pb::REGULAR);
    rec.mutable_inode()->set_mode(0644);
    rec.mutable_inode()->set_remote_mdt(1);
    rec.mutable_inode()->set_remote_name("1.77");
    what = {"record 1", "CREATE", "replaces an entry that is not a local file or empty directory"};
  }
  SECTION("remote file entry with a size") {
    rec.set_op(pb::WalRecord::CREATE);
    rec.set_parent(1);
    rec.set_name("remote-file");
    rec.mutable_inode()->set_ino(1000);
    rec.mutable_inode()->set_type(pb::REGULAR);
    rec.mutable_inode()->set_size(10);
    rec.mutable_inode()->set_remote_mdt(1);
    rec.mutable_inode()->set_remote_name("1.77");
    what = {"record 1", "remote file entry with a size or layout"};
  }
  SECTION("setattr of a missing inode") {
    rec.set_op(pb::WalRecord::SET_ATTR);
    rec.set_attr_mask(1);
    rec.mutable_inode()->set_ino(424242);
    rec.mutable_inode()->set_mode(0600);
    what = {"record 1", "inode 424242", "does not exist"};
  }
  append_record(im.root, rec);
  check_repairable(im, what);
}

TEST_CASE("a damaged checkpoint fails the mount, fsck --repair quarantines what it cannot place",
          "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  pb::Checkpoint cp = read_checkpoint(im.root);
  std::vector<std::string> what;
  std::string quarantined;  // an entry expected in /lost+found after the repair
  std::string keep_path = "/d/keep";
  SECTION("entry whose parent is missing") {
    for (auto& d : *cp.mutable_dirents())
      if (d.ino() == im.victim) d.set_parent(9999);
    what = {"inode " + std::to_string(im.victim), "parent 9999"};
    quarantined = "#" + std::to_string(im.victim);
  }
  SECTION("duplicate inode") {
    *cp.add_inodes() = cp.inodes(cp.inodes_size() - 1);
    what = {"inode " + std::to_string(cp.inodes(cp.inodes_size() - 1).ino()), "duplicate"};
  }
  SECTION("name with a '/'") {
    for (auto& d : *cp.mutable_dirents())
      if (d.ino() == im.victim) d.set_name("x/y");
    what = {"inode " + std::to_string(im.victim), "name"};
    quarantined = "#" + std::to_string(im.victim);
  }
  SECTION("next inode number not above every inode") {
    cp.set_next_ino(2);
    what = {"next_ino"};
  }
  SECTION("file layout with stripe_size 0") {
    for (auto& in : *cp.mutable_inodes())
      if (in.ino() == im.victim) in.mutable_layout()->mutable_components(0)->set_stripe_size(0);
    what = {"inode " + std::to_string(im.victim), "stripe_size"};
  }
  SECTION("directory cycle detached from the root") {
    // d/keep's directory d is re-parented under itself: unreachable from the root.
    uint64_t d = 0;
    for (const auto& e : cp.dirents())
      if (e.name() == "d") d = e.ino();
    for (auto& e : *cp.mutable_dirents())
      if (e.name() == "d") e.set_parent(d);
    what = {"inode " + std::to_string(d), "not reachable"};
    quarantined = "#" + std::to_string(d);
    keep_path = "/lost+found/" + quarantined + "/keep";
  }
  write_checkpoint(im.root, cp);
  check_repairable(im, what, keep_path);
  if (!quarantined.empty()) {
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    CHECK((*fs)->mds().stat(kRoot, "/lost+found/" + quarantined).is_ok());
  }
}

TEST_CASE("a superblock with no targets or a bad default layout is Corruption", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  auto data = read_file(im.root + "/" + kMarkerName);
  REQUIRE(data.is_ok());
  pb::Superblock sb;
  REQUIRE(sb.ParseFromString(*data));
  std::string what;
  SECTION("0 targets") {
    sb.set_target_count(0);
    what = "target";
  }
  SECTION("absurd target count") {
    sb.set_target_count(1u << 30);
    what = "target";
  }
  SECTION("default layout with stripe_size 0") {
    sb.mutable_default_layout()->mutable_components(0)->set_stripe_size(0);
    what = "stripe_size";
  }
  SECTION("default layout wider than the file system") {
    sb.mutable_default_layout()->mutable_components(0)->set_stripe_count(7);
    what = "stripe_count";
  }
  REQUIRE(write_file_atomic(im.root + "/" + kMarkerName, sb.SerializeAsString()).is_ok());
  auto m = FileSystem::mount(im.root);
  REQUIRE_FALSE(m.is_ok());
  INFO(m.status().message());
  CHECK(m.status().code() == Code::kCorruption);
  CHECK(contains(m.status().message(), what));
  CHECK(contains(m.status().message(), kMarkerName));
  auto r = fsck(im.root, true);  // fsck cannot guess a superblock: it reports, changes nothing
  CHECK(r.status().code() == Code::kCorruption);
}

TEST_CASE("layout math does not divide by zero or overflow on a bad layout", "[lustre][ondisk]") {
  pb::Layout l = zero_stripe_record(5).inode().layout();
  CHECK_FALSE(object_size_for(l, 0, 0, 12345).is_ok());
  CHECK(map_range(l, 0, 4096).empty());
  pb::Layout none = make_layout(1, kDefaultStripeSize);  // a template: no targets
  CHECK_FALSE(object_size_for(none, 0, 0, 12345).is_ok());
  CHECK(map_range(none, 0, 4096).empty());
  CHECK_FALSE(object_size_for(none, 3, 0, 12345).is_ok());
  pb::Layout ok = resolve_layout(make_layout(2, kMaxStripeSize), 4, 0);
  auto big = object_size_for(ok, 0, 1, kMaxFileSize);
  REQUIRE(big.is_ok());
  CHECK(*big <= kMaxFileSize);
  // Resolved layouts must name distinct, existing targets.
  pb::Layout dup = resolve_layout(make_layout(2, kDefaultStripeSize), 4, 0);
  dup.mutable_components(0)->set_targets(1, 0);
  CHECK(validate_layout(dup, 4, LayoutKind::kResolved).code() == Code::kInvalidArgument);
  CHECK(validate_layout(make_layout(1, kDefaultStripeSize), 4, LayoutKind::kResolved).code() ==
        Code::kInvalidArgument);
}

TEST_CASE("stctl fsck, getstripe and cp on a file system with a stripe_size 0 record", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  append_record(im.root, zero_stripe_record(im.victim));
  // Before the fix every one of these died of SIGFPE (exit status -1 here).
  Run gs = stctl("getstripe " + im.root + "/d/keep");
  INFO(gs.out);
  CHECK(gs.exit_code > 0);
  CHECK(contains(gs.out, "Corruption"));
  Run cp = stctl("cp lustre://" + im.root + "/d/keep " + dir.path() + "/out.bin");
  INFO(cp.out);
  CHECK(cp.exit_code > 0);
  Run check = stctl("fsck " + im.root);
  INFO(check.out);
  CHECK(check.exit_code == 1);
  CHECK(contains(check.out, "SET_LAYOUT"));
  CHECK(contains(check.out, "stripe_size"));
  Run repair = stctl("fsck --repair " + im.root);
  INFO(repair.out);
  CHECK(repair.exit_code == 0);
  Run gs2 = stctl("getstripe " + im.root + "/victim");
  INFO(gs2.out);
  CHECK(gs2.exit_code == 0);
  CHECK(contains(gs2.out, "stripe_size 1M"));
  Run cp2 = stctl("cp lustre://" + im.root + "/d/keep " + dir.path() + "/out.bin");
  INFO(cp2.out);
  CHECK(cp2.exit_code == 0);
  CHECK(std::filesystem::file_size(dir.path() + "/out.bin") == 5000);
  CHECK(stctl("fsck " + im.root).exit_code == 0);
}

// Arbitrary bytes in every metadata file: the mount returns a Status, whatever they are.
TEST_CASE("mounting arbitrary metadata bytes never crashes", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  const pb::Checkpoint good = read_checkpoint(im.root);
  const std::string good_cp = good.SerializeAsString();
  std::mt19937_64 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::string cp = good_cp;
    for (int flips = 1 + static_cast<int>(rng() % 4); flips-- > 0;)
      cp[rng() % cp.size()] = static_cast<char>(rng());
    REQUIRE(write_file_atomic(im.root + "/mdt/checkpoint", cp).is_ok());
    std::error_code ec;
    std::filesystem::remove(im.root + "/mdt/clean", ec);
    auto m = FileSystem::mount(im.root);
    if (m.is_ok()) m->reset();
    (void)fsck(im.root, false);
    auto image = verify_metadata_image(*read_file(im.root + "/" + kMarkerName), cp, std::string(), true);
    (void)image;
  }
}

// The same in memory, with CRC-valid WAL frames around mutated records, so the mutations reach
// the record validation (strict and recovering).
TEST_CASE("verify_metadata_image on mutated CRC-valid WAL records never crashes", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  const std::string root = dir.path() + "/fs";
  MkfsOptions o;
  o.targets = 3;
  REQUIRE(mkfs(root, o).is_ok());
  std::string sb_bytes, cp_bytes, wal_bytes;
  {
    auto fs = FileSystem::mount(root);
    REQUIRE(fs.is_ok());
    Mds& m = (*fs)->mds();
    REQUIRE(m.mkdir(kRoot, "/a", 0755).is_ok());
    REQUIRE(m.mkdir(kRoot, "/a/b", 0755).is_ok());
    make_file(**fs, "/a/f", 100);
    REQUIRE(m.set_layout(kRoot, "/a/b", to_layout({StripeSpec{2, 2 * kDefaultStripeSize, -1}})).is_ok());
    REQUIRE(m.rename(kRoot, "/a/f", "/a/b/g").is_ok());
    REQUIRE(m.chmod(kRoot, "/a/b/g", 0600).is_ok());
    make_file(**fs, "/a/h", 10);
    REQUIRE(m.remove(kRoot, "/a/h").is_ok());
    sb_bytes = *read_file(root + "/" + kMarkerName);
    cp_bytes = *read_file(root + "/mdt/checkpoint");
    wal_bytes = *read_file(root + "/mdt/wal." + std::to_string(read_checkpoint(root).wal_generation()));
  }
  auto base = verify_metadata_image(sb_bytes, cp_bytes, wal_bytes);
  INFO(base.status().message());
  REQUIRE(base.is_ok());
  CHECK(base->inodes == 4);  // root, a, b, g (h was unlinked)
  std::vector<std::string> payloads;
  REQUIRE(replay_wal_data(wal_bytes, [&](std::string_view p) {
            payloads.emplace_back(p);
            return Status::ok();
          }).is_ok());
  REQUIRE(payloads.size() >= 8);
  std::mt19937_64 rng(3);
  int rejected = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string wal;
    for (auto p : payloads) {
      if (rng() % 3 == 0) p[rng() % p.size()] = static_cast<char>(rng());
      uint32_t len = static_cast<uint32_t>(p.size()), crc = crc32c(p.data(), p.size());
      wal.append(reinterpret_cast<const char*>(&len), 4).append(reinterpret_cast<const char*>(&crc), 4).append(p);
    }
    auto strict = verify_metadata_image(sb_bytes, cp_bytes, wal, false);
    if (!strict) {
      ++rejected;
      CHECK(strict.status().code() == Code::kCorruption);
      CHECK(contains(strict.status().message(), " record "));
    }
    auto lenient = verify_metadata_image(sb_bytes, cp_bytes, wal, true);
    REQUIRE(lenient.is_ok());  // recovery always gets somewhere from a parsable checkpoint
    if (!strict) CHECK_FALSE(lenient->problems.empty());
  }
  CHECK(rejected > 0);
  // A log full of bad records lists the first 1000 and counts the rest.
  {
    pb::WalRecord bad;
    bad.set_op(pb::WalRecord::SET_ATTR);
    bad.set_attr_mask(1);
    bad.mutable_inode()->set_ino(777777);
    std::string wal;
    const std::string p = bad.SerializeAsString();
    for (int i = 0; i < 1500; ++i) {
      uint32_t len = static_cast<uint32_t>(p.size()), crc = crc32c(p.data(), p.size());
      wal.append(reinterpret_cast<const char*>(&len), 4).append(reinterpret_cast<const char*>(&crc), 4).append(p);
    }
    auto r = verify_metadata_image(sb_bytes, cp_bytes, wal, true);
    REQUIRE(r.is_ok());
    REQUIRE(r->problems.size() == 1001);
    CHECK(contains(r->problems.back(), "500 more"));
  }
  // Arbitrary superblock bytes.
  for (int round = 0; round < 500; ++round) {
    std::string sb = sb_bytes;
    sb[rng() % sb.size()] = static_cast<char>(rng());
    (void)verify_metadata_image(sb, cp_bytes, wal_bytes, true);
  }
}

// POSIX names are bytes: a name that is not UTF-8 must survive the log and the checkpoint.
TEST_CASE("entry names that are not UTF-8 survive a remount", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  const std::string root = dir.path() + "/fs";
  REQUIRE(mkfs(root, MkfsOptions{}).is_ok());
  const std::string name = "/caf\xe9";
  {
    auto fs = FileSystem::mount(root);
    REQUIRE(fs.is_ok());
    REQUIRE((*fs)->mds().mkdir(kRoot, name, 0755).is_ok());
    REQUIRE((*fs)->mds().mkdir(kRoot, "/d", 0755).is_ok());
    REQUIRE((*fs)->mds().rename(kRoot, "/d", "/d\xff").is_ok());
    std::error_code ec;
    std::filesystem::remove(root + "/mdt/clean", ec);
  }
  for (int round = 0; round < 2; ++round) {  // from the WAL, then from the checkpoint
    auto fs = FileSystem::mount(root);
    INFO(fs.status().message());
    REQUIRE(fs.is_ok());
    CHECK((*fs)->mds().stat(kRoot, name).is_ok());
    CHECK((*fs)->mds().stat(kRoot, "/d\xff").is_ok());
  }
}

// Object names on the targets are read from disk too: only the exact name object_path() makes,
// in its own subdirectory, belongs to a file; anything else is an orphan (not cut as "overlong").
TEST_CASE("object names that only resemble a file's object are orphans", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  std::string real;
  {
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    real = (*fs)->object_path(0, im.victim, 0, 0);
  }
  const std::string sub = std::filesystem::path(real).parent_path().string();
  const std::string ino = std::to_string(im.victim);
  std::vector<std::string> fakes = {sub + "/0" + ino + ".0.0", sub + "/+" + ino + ".0.0",
                                    sub + "/" + ino + ".0.0.bak", sub + "/" + ino + ".00.0",
                                    sub + "/99999999999999999999999.0.0", im.root + "/ost0/" + ino + ".0.0"};
  for (const auto& f : fakes) std::ofstream(f, std::ios::binary) << std::string(9000, 'y');
  auto r = fsck(im.root, false);
  REQUIRE(r.is_ok());
  std::string all;
  for (const auto& p : r->orphan_paths) all += p + "\n";
  INFO(all);
  CHECK(r->orphans == fakes.size());
  CHECK(r->overlong == 0);
  for (const auto& f : fakes) CHECK(contains(all, f));
  REQUIRE(fsck(im.root, true).is_ok());
  for (const auto& f : fakes) CHECK_FALSE(std::filesystem::exists(f));
  CHECK(std::filesystem::file_size(real) == 7000);
}

// An object path that is a symlink must never lead the sweep, fsck or the data path to a file
// outside the target (fsck often runs as root).
TEST_CASE("a symlink in place of an object is an orphan, never followed", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  const std::string outside = dir / "outside.bin";
  std::ofstream(outside, std::ios::binary) << std::string(9000, 'o');
  std::string real;
  {
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    real = (*fs)->object_path(0, im.victim, 0, 0);
  }
  std::filesystem::remove(real);
  std::filesystem::create_symlink(outside, real);
  auto r = fsck(im.root, false);
  REQUIRE(r.is_ok());
  CHECK(r->orphans == 1);
  CHECK(r->overlong == 0);
  {
    // The data path refuses it instead of reading or writing through it.
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    auto engine = IoEngine::create();
    REQUIRE(engine.is_ok());
    auto backend = make_backend(engine->get(), BackendOptions{kRoot, {}, {}, {}});
    REQUIRE(backend.is_ok());
    OpenOptions oo;
    oo.flags = kOpenRead | kOpenWrite;
    auto f = (*backend)->open(Uri::parse("lustre://" + im.root + "/victim").value(), oo);
    REQUIRE(f.is_ok());
    std::vector<char> buf(100);
    CHECK_FALSE((*f)->read(buf.data(), buf.size(), 0).is_ok());
    CHECK((*f)->truncate(10).code() != Code::kOk);
    (void)(*f)->close();
  }
  CHECK(std::filesystem::file_size(outside) == 9000);
  REQUIRE(fsck(im.root, true).is_ok());
  CHECK(std::filesystem::file_size(outside) == 9000);  // the link went, not its target
  CHECK_FALSE(std::filesystem::is_symlink(real));
}

TEST_CASE("a symlink in place of an object subdirectory is an orphan, never followed", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  std::string real;
  {
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    real = (*fs)->object_path(0, im.victim, 0, 0);
  }
  const std::filesystem::path sub = std::filesystem::path(real).parent_path();
  const std::string elsewhere = dir / "elsewhere";
  std::filesystem::create_directories(elsewhere);
  const std::string outside = elsewhere + "/" + std::filesystem::path(real).filename().string();
  std::ofstream(outside, std::ios::binary) << std::string(9000, 'o');
  std::filesystem::remove_all(sub);
  std::filesystem::create_directory_symlink(elsewhere, sub);
  {
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    auto engine = IoEngine::create();
    REQUIRE(engine.is_ok());
    auto backend = make_backend(engine->get(), BackendOptions{kRoot, {}, {}, {}});
    REQUIRE(backend.is_ok());
    OpenOptions oo;
    oo.flags = kOpenRead | kOpenWrite;
    auto f = (*backend)->open(Uri::parse("lustre://" + im.root + "/victim").value(), oo);
    REQUIRE(f.is_ok());
    std::vector<char> buf(100);
    auto r = (*f)->read(buf.data(), buf.size(), 0);
    INFO(r.status().message());
    CHECK(r.status().code() == Code::kCorruption);
    CHECK((*f)->truncate(10).code() == Code::kCorruption);
    (void)(*f)->close();
  }
  auto check = fsck(im.root, false);
  REQUIRE(check.is_ok());
  CHECK(check->orphans == 1);
  {
    // Unlinking the file removes its objects: not the look-alike behind the link.
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    REQUIRE((*fs)->mds().remove(kRoot, "/victim").is_ok());
  }
  CHECK(std::filesystem::exists(outside));
  REQUIRE(fsck(im.root, true).is_ok());
  CHECK(std::filesystem::file_size(outside) == 9000);
  CHECK_FALSE(std::filesystem::exists(sub));
}

// The metadata files are written through temp files and a log the mount opens: symlinks planted
// there must not redirect those writes.
TEST_CASE("symlinks planted as mdt/checkpoint.tmp or the WAL are not written through", "[lustre][ondisk]") {
  stor::test::TempDir dir;
  Image im = make_image(dir);
  const std::string outside = dir / "outside.txt";
  const std::string content(5000, 'k');
  std::ofstream(outside, std::ios::binary) << content;
  SECTION("checkpoint temp file") {
    std::filesystem::create_symlink(outside, im.root + "/mdt/checkpoint.tmp");
    auto fs = FileSystem::mount(im.root);
    REQUIRE(fs.is_ok());
    CHECK_FALSE((*fs)->mds().checkpoint().is_ok());
  }
  SECTION("the WAL the checkpoint names") {
    const std::string wal = im.root + "/mdt/wal." + std::to_string(read_checkpoint(im.root).wal_generation());
    std::filesystem::remove(wal);
    std::filesystem::create_symlink(outside, wal);
    auto fs = FileSystem::mount(im.root);
    CHECK_FALSE(fs.is_ok());
  }
  CHECK(std::filesystem::file_size(outside) == content.size());
}
