// Streaming writes of one S3 object (a file opened for writing).
//
// The object is cut into parts by a fixed schedule (PartLayout). A part is uploaded (UploadPart,
// in the background, at most `max_in_flight` at once; the writer blocks when that many are
// running) as soon as every byte of it has been written and the file extends past it; the
// multipart upload is created when the first part goes. sync()/close() upload the remaining parts
// and complete the upload; an object that fits in one part is a single PutObject instead.
//
// Parts being filled live in memory (at most `max_memory_parts` of them); further parts being
// filled at the same time (random or sparse writers) go to an unlinked temporary file, read back a
// part at a time when they are uploaded. Memory is therefore bounded by
// (max_memory_parts + max_in_flight) parts whatever the object's size.
//
// Bytes of a part that has been uploaded are no longer held: writing or reading them through this
// handle fails with Unsupported until sync() (after which the object is re-read from S3). Bytes
// never written come from the object as it was at open (for opens without O_TRUNC), else zeros.
#pragma once

#include <condition_variable>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/s3express/s3_client.h"
#include "stor/status.h"

namespace stor::s3 {

// Part i holds [start(i), start(i) + len(i)). Parts 0..999 are part_size, 1000..1999 twice
// that, ... up to 10 x for parts 9000..9999 (S3's limit), so objects up to 55000 x part_size fit
// without knowing their size in advance. Recorded with the object (x-amz-meta-stor-part-size) so
// a reader can recompute the multipart ETag.
struct PartLayout {
  static constexpr size_t kMaxParts = 10000;
  static constexpr size_t kGroup = 1000;
  uint64_t part_size = 8ull << 20;

  uint64_t len(size_t i) const { return part_size * (1 + i / kGroup); }
  uint64_t start(size_t i) const;
  size_t index(uint64_t offset) const;  // the part holding byte `offset` (kMaxParts beyond the last)
  uint64_t max_size() const { return start(kMaxParts); }
};

// A part-sized buffer straight from mmap: freed memory goes back to the system at once (through
// malloc, freed multi-MiB blocks stay cached in per-thread arenas once glibc raises its mmap
// threshold, which roughly tripled peak RSS), and untouched pages of a sparse part cost nothing.
class PartBuffer {
 public:
  PartBuffer() = default;
  explicit PartBuffer(size_t len);  // zero-filled; throws std::bad_alloc
  ~PartBuffer();
  PartBuffer(PartBuffer&& o) noexcept : data_(o.data_), len_(o.len_) { o.data_ = nullptr, o.len_ = 0; }
  PartBuffer& operator=(PartBuffer&& o) noexcept;
  char* data() const { return data_; }
  size_t size() const { return len_; }
  bool empty() const { return len_ == 0; }

 private:
  char* data_ = nullptr;
  size_t len_ = 0;
};

// Disjoint, merged byte ranges [begin, end).
class ExtentSet {
 public:
  void add(uint64_t begin, uint64_t end);
  uint64_t covered(uint64_t begin, uint64_t end) const;  // bytes of [begin, end) in the set
  void trim(uint64_t from);                               // drops everything at or after `from`
  template <typename Fn>  // fn(b, e) for each stored range clipped to [begin, end)
  void for_each(uint64_t begin, uint64_t end, Fn&& fn) const {
    auto it = ranges_.upper_bound(begin);
    if (it != ranges_.begin()) --it;
    for (; it != ranges_.end() && it->first < end; ++it) {
      const uint64_t b = std::max(begin, it->first), e = std::min(end, it->second);
      if (b < e) fn(b, e);
    }
  }

 private:
  std::map<uint64_t, uint64_t> ranges_;  // begin -> end
};

// An unlinked temporary file addressed by object offset (sparse: only written ranges take space).
class SpillFile {
 public:
  explicit SpillFile(std::string dir) : dir_(dir.empty() ? std::string("/tmp") : std::move(dir)) {}
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  Status write(const char* src, size_t len, uint64_t offset);
  Status read(char* dst, size_t len, uint64_t offset) const;  // holes read as zeros
  void release(uint64_t offset, uint64_t len);                // frees the space (best effort)
  void reset();

 private:
  std::string dir_;
  int fd_ = -1;
};

class ObjectWriter {
 public:
  struct Options {
    uint64_t part_size = 8ull << 20;
    unsigned max_in_flight = 4;     // parts being uploaded at once
    unsigned max_memory_parts = 4;  // parts being filled held in memory; the rest spill
    std::string tmp_dir;
    std::string describe;  // "s3express://bucket/key", for messages
    // Checked by the server when finish() makes the object visible. After a finish() that
    // succeeded, a non-empty condition becomes If-Match the ETag just written, so later rewrites
    // through this handle still replace only our own version.
    WriteCondition condition;
  };
  // `base`: the object's content at open (size 0 for new or truncated objects). `dirty`: the
  // object must be written on finish() even if nothing is written (a new or truncated object).
  ObjectWriter(std::shared_ptr<S3Client> client, std::string bucket, std::string key, Options opts, ObjectInfo base,
               bool dirty);
  ~ObjectWriter();  // waits for uploads in flight; aborts a multipart upload never completed
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  Status write(const char* src, size_t len, uint64_t offset);
  // Zero-copy write of exactly one whole part i >= 1 (so the object is multipart anyway) of which
  // nothing is held yet: the part is uploaded straight from `src`, which the caller keeps valid
  // until `done` runs (on an upload thread, with the part's result). False, with nothing done,
  // when the write does not qualify (then use write()).
  Result<bool> write_borrowed(const char* src, size_t len, uint64_t offset, std::function<void(Status)> done);
  Result<size_t> read(char* dst, size_t len, uint64_t offset);
  Status truncate(uint64_t size);
  uint64_t size() const;
  // Uploads what is left and completes the object. Afterwards the writer continues from the new
  // object as its base. On failure the multipart upload is aborted and the error sticks.
  Result<ObjectInfo> finish();

 private:
  enum class PartState { kFilling, kUploading, kDone };
  struct Part {
    PartState state = PartState::kFilling;
    PartBuffer mem;         // len(i) bytes when held in memory
    bool spilled = false;   // written bytes are in spill_
    ExtentSet written;      // absolute offsets
    S3Client::UploadedPart uploaded;
  };

  Part& part_locked(size_t i);
  Status check_writable_locked(uint64_t begin, uint64_t end) const;
  // Fills dst with bytes [begin, end) of part i as they stand: written bytes over the base
  // object's (or zeros).
  Status assemble_locked(std::unique_lock<std::mutex>& lock, size_t i, uint64_t begin, uint64_t end, char* dst);
  Status submit_ready_locked(std::unique_lock<std::mutex>& lock);
  Status submit_locked(std::unique_lock<std::mutex>& lock, size_t i, uint64_t len);
  Status ensure_upload_locked(std::unique_lock<std::mutex>& lock);
  void wait_idle_locked(std::unique_lock<std::mutex>& lock);
  void abort_locked(std::unique_lock<std::mutex>& lock);
  void reset_locked(ObjectInfo base);
  // A buffer of len bytes for a part: a spare one of the same size when there is one (fresh
  // mmap'd pages cost a page fault and a zeroed page per 4 KiB: ~30 % of the CPU of a large
  // upload), else a new one. Contents are undefined: parts track the bytes written (`written`).
  PartBuffer take_buffer_locked(size_t len);
  void give_back_locked(PartBuffer buf);
  // Records an upload's result (part i done, or the writer failed) and frees its in-flight slot.
  void part_uploaded_locked(size_t i, Result<S3Client::UploadedPart> r);

  const std::shared_ptr<S3Client> client_;
  const std::string bucket_, key_;
  const Options opts_;
  WriteCondition condition_;  // opts_.condition, then If-Match our last write
  const PartLayout layout_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  ObjectInfo base_;
  uint64_t base_limit_ = 0;  // bytes of base_ still part of the file (truncation lowers it)
  uint64_t size_ = 0;
  bool dirty_ = false;
  std::map<size_t, Part> parts_;  // parts touched since the last finish()
  unsigned memory_parts_ = 0;
  unsigned in_flight_ = 0;
  std::string upload_id_;
  std::string write_id_;  // x-amz-meta-stor-write-id: recognises our object after a lost Complete answer
  Status failed_;
  SpillFile spill_;
  std::vector<PartBuffer> spares_;  // at most max_in_flight + 1, dropped by finish()
};

}  // namespace stor::s3
