// Atomic mode (MPI_File_set_atomicity): MPI's guarantee that concurrent overlapping accesses
// from different ranks see one another whole. Every independent access takes a byte-range lock
// over its extent through stor's public lock API (stor::File::lock_range: shared for reads,
// exclusive for writes) for the whole access: OFD locks on nvme://, extent locks of the metadata
// server on lustre:// (the embedded mount's Mds, or the stor-mds of a cluster mount, which grants
// them between client processes as Lustre's LDLM does). On the embedded lustre:// mount one
// process (the delegate) does all the I/O and serves the other ranks' independent calls through
// the same handle; locks of one handle conflict like any two, so the same locks order them.
// Only a backend without locks where one process does all the I/O falls back to a mutex.
#include <algorithm>
#include <chrono>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

// Does the backend of this handle grant byte-range locks? Asked with a shared lock of the
// first byte that does not wait (Timeout: held exclusively elsewhere, so supported too).
Status probe_locks(stor::File& file) {
  auto r = file.lock_range(0, 1, stor::RangeLockMode::kShared, std::chrono::milliseconds(0));
  if (r) return file.unlock_range(*r);
  if (r.status().code() == Code::kTimeout) return Status::ok();
  return r.status();
}

}  // namespace

Status set_atomicity(StorFile& f, bool on) {
  Status s;
  bool locks = false;
  if (on && f.file) {
    Status probe = probe_locks(*f.file);
    if (probe.is_ok()) {
      locks = true;
    } else if (probe.code() != Code::kUnsupported) {
      s = probe.with_context("atomic mode: byte-range lock");
    } else if (f.io_ranks.size() > 1) {
      auto uri = Uri::parse(f.uri);
      s = Status::Unsupported("atomic mode needs byte-range locks: " + std::to_string(f.io_ranks.size()) +
                              " processes hold handles and the " + (uri ? uri->scheme : f.uri) +
                              " backend offers no byte-range locks between them (nvme:// and lustre:// have them)");
    }
  }
  // Every rank must agree, or overlapping accesses of a locking rank and a non-locking one race.
  s = agree(f.comm, s);
  if (!s.is_ok()) return s;
  f.atomic_locks = locks;
  f.atomic.store(on);
  return Status::ok();
}

AtomicGuard::AtomicGuard(StorFile& f, const std::vector<Block>& segments, bool write) : f_(f) {
  if (!f.atomic.load() || segments.empty()) return;
  if (!f.atomic_locks || !f.file) {
    f.atomic_mu.lock();
    mutex_held_ = true;
    return;
  }
  int64_t lo = segments.front().off, hi = lo;
  for (const auto& b : segments) {
    lo = std::min(lo, b.off);
    hi = std::max(hi, b.off + b.len);
  }
  if (hi <= lo) return;
  // No bound of our own: nvme waits in the kernel's queue; a lustre cluster mount bounds the
  // wait by lustre.lock_timeout_ms and fails the access with Timeout.
  auto r = f.file->lock_range(static_cast<uint64_t>(lo), static_cast<uint64_t>(hi - lo),
                              write ? stor::RangeLockMode::kExclusive : stor::RangeLockMode::kShared,
                              std::chrono::milliseconds::max());
  if (r) {
    lock_id_ = *r;
    locked_ = true;
  } else {
    status_ = r.status().with_context("atomic mode: byte-range lock");
  }
}

AtomicGuard::~AtomicGuard() {
  if (locked_) (void)f_.file->unlock_range(lock_id_);
  if (mutex_held_) f_.atomic_mu.unlock();
}

}  // namespace stor::mpiio
