#pragma once

#include "core/engine_base.h"
#include "core/task_pool.h"

namespace stor::internal {

// Portable engine: each request runs as blocking pread/pwrite/fsync on a worker thread.
class ThreadPoolEngine final : public EngineBase {
 public:
  explicit ThreadPoolEngine(const EngineOptions& opts);
  ~ThreadPoolEngine() override;
  EngineKind kind() const noexcept override { return EngineKind::kThreadPool; }
  void submit(std::span<IoRequest> batch) override;
  Status register_buffers(std::span<const struct iovec>) override { return {}; }

 private:
  void execute(IoRequest& req, std::span<const struct iovec> iov);
  TaskPool pool_;
};

}  // namespace stor::internal
