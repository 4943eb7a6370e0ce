#include "core/threadpool_engine.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <vector>

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
    // Vectored: the engine's own copy of the segments (the caller's array need not outlive submit).
    std::vector<struct iovec> iov(req->iov, req->iov + req->iov_count);
    req->iov = nullptr;
    pool_.post([this, req, iov = std::move(iov)] { execute(*req, iov); });
  }
}

void ThreadPoolEngine::execute(IoRequest& r, std::span<const struct iovec> iov) {
  if (r.op == IoOp::kFsync || r.op == IoOp::kFdatasync) {
    int rc = r.op == IoOp::kFsync ? ::fsync(r.fd) : ::fdatasync(r.fd);
    if (rc != 0) complete(r, Status::from_errno(errno, "fsync"));
    else complete(r, size_t{0});
    return;
  }
  const bool vectored = r.iov_count > 0;
  char* buf = static_cast<char*>(r.buf);
  std::vector<struct iovec> cur;
  size_t done = 0;
  while (done < r.len) {
    ssize_t n;
    size_t chunk = r.len - done;
    if (vectored) {
      cur.clear();
      iov_slice(iov, done, r.len - done, &cur);
      if (cur.size() > kMaxSegmentsPerCall) cur.resize(kMaxSegmentsPerCall);
      chunk = 0;
      for (const auto& v : cur) chunk += v.iov_len;
      const auto off = static_cast<off_t>(r.offset + done);
      const int cnt = static_cast<int>(cur.size());
      n = r.op == IoOp::kRead ? ::preadv(r.fd, cur.data(), cnt, off) : ::pwritev(r.fd, cur.data(), cnt, off);
    } else {
      n = r.op == IoOp::kRead ? ::pread(r.fd, buf + done, chunk, static_cast<off_t>(r.offset + done))
                              : ::pwrite(r.fd, buf + done, chunk, static_cast<off_t>(r.offset + done));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      const char* what = r.op == IoOp::kRead ? (vectored ? "preadv" : "pread") : (vectored ? "pwritev" : "pwrite");
      complete(r, Status::from_errno(errno, what));
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
    // Same rule as io_uring: an unaligned short read is end of file (a full chunk is not short).
    if (r.op == IoOp::kRead && static_cast<size_t>(n) < chunk && done % AlignedBuffer::kAlignment != 0) break;
  }
  complete(r, done);
}

}  // namespace stor::internal
