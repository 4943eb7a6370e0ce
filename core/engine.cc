#include <sys/uio.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "core/engine_base.h"
#include "core/threadpool_engine.h"
#include "core/uring_engine.h"

namespace stor {
namespace internal {

namespace {
thread_local bool t_completion_thread = false;
}

void EngineBase::mark_completion_thread() { t_completion_thread = true; }

void EngineBase::acquire_slot() {
  std::unique_lock lk(mu_);
  if (!t_completion_thread) cv_.wait(lk, [this] { return in_flight_ < queue_depth_; });
  ++in_flight_;
  ++unfinished_;
  submitted_.fetch_add(1, std::memory_order_relaxed);
}

bool EngineBase::try_acquire_slot() {
  std::lock_guard lk(mu_);
  if (in_flight_ >= queue_depth_ && !t_completion_thread) return false;
  ++in_flight_;
  ++unfinished_;
  submitted_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void EngineBase::complete(IoRequest& req, Result<size_t> result) {
  if (result.is_ok()) {
    if (req.op == IoOp::kRead) bytes_read_.fetch_add(*result, std::memory_order_relaxed);
    if (req.op == IoOp::kWrite) bytes_written_.fetch_add(*result, std::memory_order_relaxed);
  } else {
    errors_.fetch_add(1, std::memory_order_relaxed);
  }
  completed_.fetch_add(1, std::memory_order_relaxed);
  IoCallback done = std::move(req.done);
  {
    std::lock_guard lk(mu_);
    --in_flight_;
  }
  cv_.notify_all();
  if (done) done(std::move(result));
  bool idle;
  {
    std::lock_guard lk(mu_);
    idle = --unfinished_ == 0;
  }
  if (idle) cv_.notify_all();
}

void EngineBase::reject(IoRequest& req, Status status) {
  errors_.fetch_add(1, std::memory_order_relaxed);
  if (req.done) req.done(std::move(status));
}

void EngineBase::drain() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return unfinished_ == 0; });
}

EngineStats EngineBase::stats() const {
  EngineStats s;
  s.submitted = submitted_.load();
  s.completed = completed_.load();
  s.errors = errors_.load();
  s.bytes_read = bytes_read_.load();
  s.bytes_written = bytes_written_.load();
  return s;
}

Status validate_request(const IoRequest& req) {
  if (req.fd < 0) return Status::InvalidArgument("I/O request on a closed or invalid file descriptor");
  if ((req.op == IoOp::kRead || req.op == IoOp::kWrite) && req.buf == nullptr && req.len > 0 && req.iov_count == 0)
    return Status::InvalidArgument("I/O request with a null buffer");
  if (req.offset > static_cast<uint64_t>(INT64_MAX) || req.len > static_cast<size_t>(INT64_MAX) - req.offset)
    return Status::InvalidArgument("I/O request offset/length overflow");
  if (req.iov_count > 0) {
    if (req.op != IoOp::kRead && req.op != IoOp::kWrite)
      return Status::InvalidArgument("only reads and writes can be vectored");
    if (req.iov == nullptr || req.buf != nullptr || req.buf_index >= 0)
      return Status::InvalidArgument("vectored I/O request needs iov, and neither buf nor a registered buffer");
    STOR_ASSIGN_OR_RETURN(size_t total, iov_total(std::span<const struct iovec>(req.iov, req.iov_count)));
    if (total != req.len)
      return Status::InvalidArgument("vectored I/O request: len " + std::to_string(req.len) +
                                     " is not the segments' total " + std::to_string(total));
  }
  return {};
}

}  // namespace internal

Result<size_t> iov_total(std::span<const struct iovec> iov) {
  size_t total = 0;
  for (const struct iovec& v : iov) {
    if (v.iov_len == 0) continue;
    if (v.iov_base == nullptr) return Status::InvalidArgument("I/O segment of " + std::to_string(v.iov_len) + " bytes has no buffer");
    if (v.iov_len > static_cast<size_t>(INT64_MAX) - total) return Status::InvalidArgument("I/O segments' total length overflows");
    total += v.iov_len;
  }
  return total;
}

size_t IovCursor::take(size_t n, std::vector<struct iovec>* out) {
  size_t got = 0;
  while (got < n && index_ < iov_.size()) {
    const struct iovec& v = iov_[index_];
    const size_t k = std::min(v.iov_len - offset_, n - got);
    if (k > 0 && out) out->push_back({static_cast<char*>(v.iov_base) + offset_, k});
    got += k;
    offset_ += k;
    if (offset_ == v.iov_len) {
      ++index_;
      offset_ = 0;
    }
  }
  return got;
}

size_t iov_slice(std::span<const struct iovec> iov, size_t skip, size_t len, std::vector<struct iovec>* out) {
  IovCursor c(iov);
  c.skip(skip);
  return c.take(len, out);
}

Result<std::unique_ptr<IoEngine>> IoEngine::create(const EngineOptions& opts) {
  EngineKind kind = opts.kind;
  if (kind == EngineKind::kAuto) {
    const char* env = std::getenv("STOR_ENGINE");
    std::string_view want = env ? env : "";
    if (want == "io_uring") kind = EngineKind::kIoUring;
    else if (want == "threadpool") kind = EngineKind::kThreadPool;
    else if (!want.empty() && want != "auto")
      return Status::InvalidArgument("STOR_ENGINE must be io_uring, threadpool or auto, not '" + std::string(want) + "'");
  }
  if (kind == EngineKind::kAuto) kind = io_uring_available() ? EngineKind::kIoUring : EngineKind::kThreadPool;
  if (opts.queue_depth == 0 || opts.queue_depth > 32768)
    return Status::InvalidArgument("queue_depth must be in 1..32768");
  if (kind == EngineKind::kIoUring) return internal::UringEngine::create(opts);
  return std::unique_ptr<IoEngine>(new internal::ThreadPoolEngine(opts));
}

namespace {
std::future<Result<size_t>> submit_with_future(IoEngine& e, IoRequest req) {
  auto promise = std::make_shared<std::promise<Result<size_t>>>();
  auto fut = promise->get_future();
  req.done = [promise](Result<size_t> r) { promise->set_value(std::move(r)); };
  e.submit(std::move(req));
  return fut;
}
}  // namespace

std::future<Result<size_t>> IoEngine::read(int fd, void* buf, size_t len, uint64_t offset) {
  return submit_with_future(*this, IoRequest{IoOp::kRead, fd, buf, len, offset, -1, {}});
}

std::future<Result<size_t>> IoEngine::write(int fd, const void* buf, size_t len, uint64_t offset) {
  return submit_with_future(*this, IoRequest{IoOp::kWrite, fd, const_cast<void*>(buf), len, offset, -1, {}});
}

std::future<Result<size_t>> IoEngine::fsync(int fd, bool data_only) {
  return submit_with_future(*this, IoRequest{data_only ? IoOp::kFdatasync : IoOp::kFsync, fd, nullptr, 0, 0, -1, {}});
}

AlignedBuffer::AlignedBuffer(size_t size) {
  size_ = (size + kAlignment - 1) / kAlignment * kAlignment;
  if (size_ == 0) return;
  void* p = nullptr;
  if (posix_memalign(&p, kAlignment, size_) != 0) std::abort();  // out of memory
  std::memset(p, 0, size_);
  data_ = static_cast<std::byte*>(p);
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

AlignedBuffer::AlignedBuffer(AlignedBuffer&& o) noexcept : data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

AlignedBuffer& AlignedBuffer::operator=(AlignedBuffer&& o) noexcept {
  if (this != &o) {
    std::free(data_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

}  // namespace stor
