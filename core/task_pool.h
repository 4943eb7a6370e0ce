// A fixed set of worker threads running queued tasks in FIFO order. Backs the thread-pool engine
// and the plugin adapter, whose plugin calls are synchronous.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace stor::internal {

class TaskPool {
 public:
  // on_start runs first on every worker thread (e.g. to set thread-local state).
  explicit TaskPool(unsigned threads, std::function<void()> on_start = {});
  ~TaskPool();  // runs the tasks already queued, then joins
  TaskPool(const TaskPool&) = delete;
  TaskPool& operator=(const TaskPool&) = delete;

  void post(std::function<void()> task);
  // Blocks until every task posted before the call has finished.
  void drain();
  unsigned size() const noexcept { return static_cast<unsigned>(workers_.size()); }

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::condition_variable idle_cv_;
  size_t running_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace stor::internal
