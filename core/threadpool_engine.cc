#include "core/threadpool_engine.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

namespace stor::internal {

ThreadPoolEngine::ThreadPoolEngine(const EngineOptions& opts)
    : EngineBase(opts.queue_depth), pool_(std::max(1u, opts.threads), [] { mark_completion_thread(); }) {}

ThreadPoolEngine::~ThreadPoolEngine() { drain(); }

void ThreadPoolEngine::submit(std::span<IoRequest> batch) {
  for (IoRequest& r : batch) {
    if (Status s = validate_request(r); !s.is_ok()) {
      reject(r, std::move(s));
      continue;
    }
    acquire_slot();
    auto req = std::make_shared<IoRequest>(std::move(r));
    pool_.post([this, req] { execute(*req); });
  }
}

void ThreadPoolEngine::execute(IoRequest& r) {
  if (r.op == IoOp::kFsync || r.op == IoOp::kFdatasync) {
    int rc = r.op == IoOp::kFsync ? ::fsync(r.fd) : ::fdatasync(r.fd);
    if (rc != 0) complete(r, Status::from_errno(errno, "fsync"));
    else complete(r, size_t{0});
    return;
  }
  char* buf = static_cast<char*>(r.buf);
  size_t done = 0;
  while (done < r.len) {
    ssize_t n = r.op == IoOp::kRead ? ::pread(r.fd, buf + done, r.len - done, static_cast<off_t>(r.offset + done))
                                    : ::pwrite(r.fd, buf + done, r.len - done, static_cast<off_t>(r.offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      complete(r, Status::from_errno(errno, r.op == IoOp::kRead ? "pread" : "pwrite"));
      return;
    }
    if (n == 0) {
      if (r.op == IoOp::kWrite) {
        complete(r, Status::IoError("write made no progress (device full?)"));
        return;
      }
      break;  // end of file
    }
    done += static_cast<size_t>(n);
    // Same rule as io_uring: an unaligned short read is end of file.
    if (r.op == IoOp::kRead && done < r.len && done % AlignedBuffer::kAlignment != 0) break;
  }
  complete(r, done);
}

}  // namespace stor::internal
