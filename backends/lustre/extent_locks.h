// Extent (byte-range) locks of one file, as Lustre's LDLM grants them: the lock queue of an
// inode (Inode::locks), used by the embedded mount's handles and by stor-mds for its clients'
// LOCK/UNLOCK requests (docs/lustre.md "Extent locks").
//
// A request is granted when it conflicts with no lock queued before it, granted or still
// waiting (shared + shared is the only compatible pair): first come, first served, so a
// stream of readers cannot starve a writer, and a reader behind a waiting writer waits too.
// Every lock is its own owner (two of one handle conflict like any two); the owner (client,
// handle) scopes release on close and on a client's death.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>

#include "stor/backend.h"
#include "stor/status.h"

namespace stor::lustre {

struct LockOwner {
  uint64_t client = 0;  // cluster: the client's mount (MdsRequest client_id); embedded: 0
  uint64_t handle = 0;  // the open handle
};

class ExtentLockQueue {
 public:
  // Waits until [start, end) is granted or deadline passes (Timeout). xid != 0 identifies the
  // request of `owner.client`: a resend of it (after a reconnect) joins the original instead of
  // queueing twice, and gets the same lock id. Aborted when the owner's locks are released
  // while it waits (its handle closed, its client gone), and when `gone` (polled every
  // kGonePoll while waiting) says the asker hung up: the request leaves the queue at once unless
  // a resend joined it, so the requests behind a dead client's move on.
  static constexpr std::chrono::milliseconds kGonePoll{20};
  Result<uint64_t> lock(LockOwner owner, uint64_t xid, RangeLockMode mode, uint64_t start, uint64_t end,
                        std::chrono::steady_clock::time_point deadline, const std::function<bool()>& gone = {});
  // Recovery (docs/lustre.md "Lock replay"): grants lock `id` of `owner` as it was granted
  // before an MDS restart, without queueing. Idempotent for the same owner and id. Corruption
  // when it conflicts with a lock already in the queue (two replays that cannot both have been
  // granted): never granted twice.
  Status replay(LockOwner owner, uint64_t id, RangeLockMode mode, uint64_t start, uint64_t end);
  // Releases lock `id` of client; false when it is not held (by that client).
  bool unlock(uint64_t client, uint64_t id);
  // Releases every lock of the owner and fails its waiting requests; returns how many.
  size_t release(LockOwner owner);
  size_t granted() const;
  size_t waiting() const;

 private:
  enum class State { kWaiting, kGranted, kTimedOut, kReleased };
  struct Entry {
    uint64_t id = 0;
    LockOwner owner;
    uint64_t xid = 0;
    RangeLockMode mode = RangeLockMode::kShared;
    uint64_t start = 0, end = 0;
    State state = State::kWaiting;
    std::chrono::steady_clock::time_point deadline;
    int waiters = 0;  // calls waiting for it (an original and its resends)
  };
  // Grants every waiting entry that no earlier entry blocks; caller holds mu_.
  void grant_locked();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::shared_ptr<Entry>> queue_;  // granted and waiting, in arrival order
};

}  // namespace stor::lustre
