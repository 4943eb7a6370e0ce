// IoEngine: the asynchronous I/O core every local backend submits through.
//
// Two implementations share this interface and one test suite:
//   - io_uring (liburing): batched submission, registered buffers, fixed files, optional SQPOLL;
//   - a thread pool doing pread/pwrite, chosen when io_uring is unavailable (seccomp, old kernel)
//     or when asked for (EngineKind::kThreadPool, or STOR_ENGINE=threadpool in the environment).
//
// Completion callbacks run on the engine's completion thread; they must not block on other
// requests of the same engine (submitting new ones from a callback is fine).
//
// Thread safety: see IoEngine.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {

// Bytes transferred, or the error. Short transfers (EOF on read) are not errors. Called exactly
// once per request, on a thread the engine or backend picks (see IoEngine, BackendFile).
using IoCallback = std::function<void(Result<size_t>)>;

enum class IoOp : uint8_t { kRead, kWrite, kFsync, kFdatasync };

struct IoRequest {
  IoOp op = IoOp::kRead;
  int fd = -1;
  void* buf = nullptr;      // for writes the engine only reads from it
  size_t len = 0;
  uint64_t offset = 0;
  int buf_index = -1;       // >= 0: index from register_buffers(); buf must lie inside it
  IoCallback done;
  int file_slot = -1;       // >= 0: slot from register_file(fd) for this fd; saves a file lookup
  // Scatter-gather: iov_count > 0 makes a read or write vectored over iov[0, iov_count), in
  // order (preadv/pwritev, IORING_OP_READV/WRITEV). Then buf must be null, buf_index -1 and len
  // the segments' total. The engine copies the array during submit(); the memory it points to
  // must stay valid until the callback runs.
  const struct iovec* iov = nullptr;
  size_t iov_count = 0;
};

// Total bytes of a segment list, or InvalidArgument when a segment with bytes has no address or
// the total overflows. Zero-length segments are allowed (and skipped by every consumer).
STOR_API Result<size_t> iov_total(std::span<const struct iovec> iov);

// Walks a segment list front to back, handing out the pieces of it that hold the next n bytes:
// how one vectored request is split over stripes, cache blocks or continuations without copies.
class STOR_API IovCursor {
 public:
  explicit IovCursor(std::span<const struct iovec> iov) : iov_(iov) {}
  // Appends (when out is not null) the segments, without zero-length ones, that hold the next n
  // bytes and moves past them. Returns how many bytes that was: less than n only at the end.
  size_t take(size_t n, std::vector<struct iovec>* out);
  size_t skip(size_t n) { return take(n, nullptr); }

 private:
  std::span<const struct iovec> iov_;
  size_t index_ = 0, offset_ = 0;  // position: segment, and bytes into it
};

// The segments holding bytes [skip, skip + len) of the concatenation of iov, appended to *out;
// returns how many bytes they hold.
STOR_API size_t iov_slice(std::span<const struct iovec> iov, size_t skip, size_t len, std::vector<struct iovec>* out);

enum class EngineKind { kAuto, kIoUring, kThreadPool };

struct EngineOptions {
  EngineKind kind = EngineKind::kAuto;  // kAuto honours STOR_ENGINE=io_uring|threadpool
  unsigned queue_depth = 128;           // max requests in flight; submit() waits beyond it
  bool sqpoll = false;                  // io_uring only: kernel-side submission polling
  unsigned threads = 4;                 // thread-pool engine only
};

struct EngineStats {
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

// Thread safety:
//  - submit(), the future conveniences, register_file/unregister_file, stats() and drain() may be
//    called from any number of threads at once.
//  - Callbacks: io_uring runs every callback on its one completion thread, so callbacks of one
//    engine never run concurrently with each other there; the thread pool runs them on any of its
//    worker threads, concurrently. A request refused before it reaches the device (validation
//    failure: bad fd, null buffer, misplaced fixed buffer, malformed segments) completes on the
//    submitting thread, inside submit(). Either way exactly once.
//  - A callback may submit; it must not wait for another request of the same engine (a future's
//    get(), drain(), a blocking backend read): on io_uring nothing else can complete it.
//  - register_buffers replaces the registration for requests submitted after it; do not
//    unregister or free memory that requests in flight still use. unregister_file may run while
//    requests on that slot are in flight (they hold their own reference to the file).
//  - Destroying the engine drains it first; nothing may submit concurrently with or after that,
//    and it must not be destroyed from one of its own callbacks.
class STOR_API IoEngine {
 public:
  virtual ~IoEngine() = default;

  // Creates the engine named by opts (kAuto: io_uring if the kernel allows, else thread pool).
  static Result<std::unique_ptr<IoEngine>> create(const EngineOptions& opts = {});

  virtual EngineKind kind() const noexcept = 0;
  const char* name() const noexcept { return kind() == EngineKind::kIoUring ? "io_uring" : "threadpool"; }
  virtual unsigned queue_depth() const noexcept = 0;

  // Queues every request and submits them in one go. Each request's callback is called exactly
  // once, also when the submission itself fails. Blocks while queue_depth requests are in flight.
  virtual void submit(std::span<IoRequest> batch) = 0;
  void submit(IoRequest req) { submit(std::span<IoRequest>(&req, 1)); }

  // Future-returning conveniences over submit().
  std::future<Result<size_t>> read(int fd, void* buf, size_t len, uint64_t offset);
  std::future<Result<size_t>> write(int fd, const void* buf, size_t len, uint64_t offset);
  std::future<Result<size_t>> fsync(int fd, bool data_only = false);

  // Registers memory for zero-copy fixed-buffer I/O. Replaces any earlier registration; an empty
  // span unregisters. The thread-pool engine accepts and ignores it.
  virtual Status register_buffers(std::span<const struct iovec> bufs) = 0;

  // Enters fd in the engine's fixed-file table and returns its slot, for IoRequest::file_slot.
  // Unsupported where the engine has no such table (thread pool, kernels without sparse tables).
  virtual Result<int> register_file(int fd) {
    (void)fd;
    return Status::Unsupported(std::string(name()) + " engine has no fixed-file table");
  }
  virtual void unregister_file(int slot) { (void)slot; }

  // Waits until every submitted request has completed and its callback has returned. Must not be
  // called from a completion callback (it would wait for itself).
  virtual void drain() = 0;

  virtual EngineStats stats() const = 0;
};

// Whether io_uring can be set up in this process (false under seccomp filters, old kernels).
STOR_API bool io_uring_available();

// Page-aligned heap buffer, as O_DIRECT needs: address, length and file offset must all be
// multiples of the logical block size; 4096 covers every device we target. Not synchronized: a
// plain owning buffer (its bytes may be shared by requests in flight as any memory can).
class STOR_API AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 4096;
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);  // rounded up to kAlignment, zero-filled
  ~AlignedBuffer();
  AlignedBuffer(AlignedBuffer&& o) noexcept;
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept;
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() noexcept { return data_; }
  const std::byte* data() const noexcept { return data_; }
  size_t size() const noexcept { return size_; }

 private:
  std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace stor
