// Shared bookkeeping of both engines: the queue-depth bound, statistics and drain().
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "stor/engine.h"

namespace stor::internal {

// Segments one preadv/pwritev/IORING_OP_READV may carry (UIO_MAXIOV); longer vectored requests
// continue in further calls.
inline constexpr size_t kMaxSegmentsPerCall = 1024;

class EngineBase : public IoEngine {
 public:
  explicit EngineBase(unsigned queue_depth) : queue_depth_(queue_depth ? queue_depth : 1) {}
  unsigned queue_depth() const noexcept override { return queue_depth_; }
  void drain() override;
  EngineStats stats() const override;

 protected:
  // Takes one in-flight slot. Never blocks on an engine's own completion thread, which is the
  // only thread that can free slots: blocking there would deadlock, so it may overshoot.
  void acquire_slot();
  bool try_acquire_slot();
  // Frees the slot, then runs the callback (so a callback may submit again).
  void complete(IoRequest& req, Result<size_t> result);
  // Fails a request before it reached the device; the slot was never taken.
  void reject(IoRequest& req, Status status);

  // Marks the calling thread as one of this engine's completion threads.
  static void mark_completion_thread();

 private:
  const unsigned queue_depth_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  unsigned in_flight_ = 0;   // bounded by queue_depth_; released before the callback runs
  unsigned unfinished_ = 0;  // released after the callback returned: what drain() waits for
  std::atomic<uint64_t> submitted_{0}, completed_{0}, errors_{0}, bytes_read_{0}, bytes_written_{0};
};

// Fills in the request fields every engine checks before touching the device.
Status validate_request(const IoRequest& req);

}  // namespace stor::internal
