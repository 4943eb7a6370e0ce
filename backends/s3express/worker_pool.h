// Fixed-size thread pool plus a deadlock-free parallel_for: the calling thread works through the
// items too, so nested use (a pool task that itself fans out) always makes progress.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "stor/status.h"

namespace stor::s3 {

class WorkerPool {
 public:
  explicit WorkerPool(unsigned threads);
  ~WorkerPool();  // finishes queued tasks, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void post(std::function<void()> task);
  unsigned size() const noexcept { return static_cast<unsigned>(threads_.size()); }

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// Runs fn(0..count-1) with at most `width` running at once (the caller is one of them). Once an
// item fails, items not yet started are skipped. Returns the first failure.
Status parallel_for(WorkerPool& pool, size_t count, unsigned width, const std::function<Status(size_t)>& fn);

}  // namespace stor::s3
