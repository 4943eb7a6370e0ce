#include "backends/s3express/worker_pool.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <memory>

namespace stor::s3 {

namespace {

struct ForState {
  explicit ForState(size_t n, const std::function<Status(size_t)>& f) : count(n), fn(f) {}
  const size_t count;
  const std::function<Status(size_t)>& fn;  // only called for claimed items, which the caller awaits
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable cv;
  size_t finished = 0;
  Status first_error;

  void work() {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= count) return;
      const bool skipped = failed.load();
      Status s = skipped ? Status::ok() : fn(i);
      std::lock_guard<std::mutex> lock(mu);
      if (!s.is_ok()) {
        if (first_error.is_ok()) first_error = s;
        failed = true;
      }
      if (++finished == count) cv.notify_all();
    }
  }
};

}  // namespace

Status parallel_for(WorkerPool& pool, size_t count, unsigned width, const std::function<Status(size_t)>& fn) {
  if (count == 0) return Status::ok();
  if (width <= 1 || count == 1) {
    for (size_t i = 0; i < count; ++i) STOR_RETURN_IF_ERROR(fn(i));
    return Status::ok();
  }
  auto state = std::make_shared<ForState>(count, fn);
  size_t helpers = std::min<size_t>(count, width) - 1;
  for (size_t h = 0; h < helpers; ++h) pool.post([state] { state->work(); });
  state->work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->finished == state->count; });
  return state->first_error;
}

}  // namespace stor::s3
