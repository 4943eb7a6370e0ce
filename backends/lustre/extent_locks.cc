#include "backends/lustre/extent_locks.h"

#include <sys/random.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace stor::lustre {

namespace {

// Lock ids start at a random point: a restarted MDS must not hand out the id of a lock its
// clients replay from before the restart.
uint64_t first_lock_id() {
  uint64_t v = 0;
  if (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v))
    v = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) * 0x9e3779b97f4a7c15ull;
  return (v >> 2) + 1;
}

std::atomic<uint64_t> g_next_lock_id{first_lock_id()};

bool conflict(RangeLockMode a_mode, uint64_t a_start, uint64_t a_end, RangeLockMode b_mode, uint64_t b_start,
              uint64_t b_end) {
  if (a_mode == RangeLockMode::kShared && b_mode == RangeLockMode::kShared) return false;
  return a_start < b_end && b_start < a_end;
}

}  // namespace

void ExtentLockQueue::grant_locked() {
  bool changed = false;
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    Entry& e = **it;
    if (e.state != State::kWaiting) continue;
    bool blocked = false;
    for (auto before = queue_.begin(); before != it && !blocked; ++before)
      blocked = conflict((*before)->mode, (*before)->start, (*before)->end, e.mode, e.start, e.end);
    if (!blocked) {
      e.state = State::kGranted;
      changed = true;
    }
  }
  if (changed) cv_.notify_all();
}

Result<uint64_t> ExtentLockQueue::lock(LockOwner owner, uint64_t xid, RangeLockMode mode, uint64_t start, uint64_t end,
                                       std::chrono::steady_clock::time_point deadline,
                                       const std::function<bool()>& gone) {
  if (end <= start) return Status::InvalidArgument("lustre: extent lock of an empty range");
  std::unique_lock lk(mu_);
  std::shared_ptr<Entry> e;
  if (xid != 0) {
    for (auto& q : queue_)
      if (q->owner.client == owner.client && q->xid == xid) e = q;
  }
  if (e) {
    // A resend: the original may still be waiting (its connection broke); wait as long as the
    // later of the two asks.
    if (e->state == State::kWaiting && deadline > e->deadline) e->deadline = deadline;
  } else {
    e = std::make_shared<Entry>();
    e->id = g_next_lock_id.fetch_add(1);
    e->owner = owner;
    e->xid = xid;
    e->mode = mode;
    e->start = start;
    e->end = end;
    e->deadline = deadline;
    queue_.push_back(e);
    grant_locked();
  }
  ++e->waiters;
  while (e->state == State::kWaiting) {
    auto until = e->deadline;
    if (gone) until = std::min(until, std::chrono::steady_clock::now() + kGonePoll);
    cv_.wait_until(lk, until);
    if (e->state != State::kWaiting) break;
    if (gone && gone()) {
      // The asker hung up: nobody will take this grant. A resend on a new connection may have
      // joined it; otherwise it leaves the queue now.
      if (--e->waiters == 0) {
        e->state = State::kReleased;
        queue_.remove(e);
        grant_locked();
      }
      return Status::Aborted("extent lock request of bytes [" + std::to_string(e->start) + ", " +
                             std::to_string(e->end) + ") cancelled: the client's connection closed");
    }
    if (std::chrono::steady_clock::now() >= e->deadline) {
      e->state = State::kTimedOut;
      queue_.remove(e);
      grant_locked();  // a waiter behind this one may be free now
    }
  }
  --e->waiters;
  const std::string range = "[" + std::to_string(e->start) + ", " + std::to_string(e->end) + ")";
  switch (e->state) {
    case State::kGranted:
      return e->id;
    case State::kTimedOut:
      return Status::Timeout("extent lock of bytes " + range + " not granted in time (" +
                             std::to_string(queue_.size()) + " other locks held or queued on the file)");
    default:
      return Status::Aborted("extent lock request of bytes " + range + " cancelled: its handle was closed");
  }
}

Status ExtentLockQueue::replay(LockOwner owner, uint64_t id, RangeLockMode mode, uint64_t start, uint64_t end) {
  if (end <= start || id == 0) return Status::InvalidArgument("lustre: replayed extent lock without id or bytes");
  std::lock_guard lk(mu_);
  for (auto& q : queue_) {
    if (q->id == id) {
      if (q->owner.client == owner.client && q->owner.handle == owner.handle && q->state == State::kGranted &&
          q->mode == mode && q->start == start && q->end == end)
        return Status::ok();  // replayed before (the replay's connection broke)
      return Status::Corruption("lustre: replayed extent lock " + std::to_string(id) +
                                " has the id of another lock of the file");
    }
    if (conflict(q->mode, q->start, q->end, mode, start, end))
      return Status::Corruption("lustre: replayed extent lock " + std::to_string(id) + " of bytes [" +
                                std::to_string(start) + ", " + std::to_string(end) + ") conflicts with lock " +
                                std::to_string(q->id) + " of bytes [" + std::to_string(q->start) + ", " +
                                std::to_string(q->end) + ") of client " + std::to_string(q->owner.client) +
                                ": both cannot have been granted; refused");
  }
  auto e = std::make_shared<Entry>();
  e->id = id;
  e->owner = owner;
  e->mode = mode;
  e->start = start;
  e->end = end;
  e->state = State::kGranted;
  queue_.push_back(e);
  return Status::ok();
}

bool ExtentLockQueue::unlock(uint64_t client, uint64_t id) {
  std::lock_guard lk(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->id != id) continue;
    if ((*it)->owner.client != client || (*it)->state != State::kGranted) return false;
    (*it)->state = State::kReleased;
    queue_.erase(it);
    grant_locked();
    return true;
  }
  return false;
}

size_t ExtentLockQueue::release(LockOwner owner) {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto it = queue_.begin(); it != queue_.end();) {
    if ((*it)->owner.client == owner.client && (*it)->owner.handle == owner.handle) {
      (*it)->state = State::kReleased;
      it = queue_.erase(it);
      ++n;
    } else {
      ++it;
    }
  }
  if (n) {
    grant_locked();
    cv_.notify_all();  // the owner's own waiters end (Aborted)
  }
  return n;
}

size_t ExtentLockQueue::granted() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto& e : queue_) n += e->state == State::kGranted;
  return n;
}

size_t ExtentLockQueue::waiting() const {
  std::lock_guard lk(mu_);
  size_t n = 0;
  for (auto& e : queue_) n += e->state == State::kWaiting;
  return n;
}

}  // namespace stor::lustre
