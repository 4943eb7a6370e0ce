#pragma once

#include <liburing.h>

#include <mutex>
#include <thread>
#include <vector>

#include "core/engine_base.h"

namespace stor::internal {

// io_uring engine: callers fill and submit SQEs under a mutex; one completion thread reaps CQEs,
// continues short transfers, and runs callbacks.
class UringEngine final : public EngineBase {
 public:
  static Result<std::unique_ptr<IoEngine>> create(const EngineOptions& opts);
  ~UringEngine() override;

  EngineKind kind() const noexcept override { return EngineKind::kIoUring; }
  void submit(std::span<IoRequest> batch) override;
  Status register_buffers(std::span<const struct iovec> bufs) override;
  Result<int> register_file(int fd) override;
  void unregister_file(int slot) override;
  bool sqpoll() const noexcept { return sqpoll_; }

 private:
  struct Op;
  explicit UringEngine(const EngineOptions& opts) : EngineBase(opts.queue_depth) {}
  // Caller holds sq_mu_.
  void prepare_locked(Op* op);
  void flush_locked();
  void reap();
  void finish(Op* op, int res);

  io_uring ring_{};
  bool sqpoll_ = false;
  std::mutex sq_mu_;
  unsigned unsubmitted_ = 0;  // SQEs prepared but not yet handed to the kernel
  std::vector<struct iovec> registered_;
  static constexpr unsigned kFileSlots = 4096;
  bool file_table_ = false;        // sparse fixed-file table registered at setup
  std::vector<int> free_slots_;    // guarded by sq_mu_
  std::thread reaper_;
};

}  // namespace stor::internal
