#include "backends/s3express/worker_pool.h"

#include <atomic>
#include <memory>

namespace stor::s3 {

WorkerPool::WorkerPool(unsigned threads) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void WorkerPool::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

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
