#include "backends/s3express/read_ahead.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backends/s3express/crypto.h"
#include "stor/settings.h"

namespace stor::s3 {

// Chunk buffers of chunk_size_ bytes kept for reuse: a fresh mmap'd buffer costs a page fault and
// a zeroed page per 4 KiB (~12 % of the CPU of a 1 GiB `stctl cp` download). At most a window's
// worth is kept; the rest go back to the system (see PartBuffer), all of them when the file closes.
struct ReadAhead::Spares {
  std::mutex mu;
  std::vector<PartBuffer> free;
  size_t cap = 0;
};

struct ReadAhead::Chunk {
  ~Chunk() {
    if (!spares || data.empty()) return;
    std::lock_guard<std::mutex> lock(spares->mu);
    if (spares->free.size() < spares->cap) spares->free.push_back(std::move(data));
  }
  uint64_t offset = 0;
  size_t len = 0;
  std::shared_ptr<Spares> spares;
  PartBuffer data;  // chunk_size_ bytes (len used), mmap'd: see PartBuffer
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Status status;

  Status wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done; });
    return status;
  }
};

ReadAhead::ReadAhead(std::shared_ptr<S3Client> client, std::string bucket, std::string key, ObjectInfo info,
                     uint64_t window)
    : client_(std::move(client)), bucket_(std::move(bucket)), key_(std::move(key)), info_(std::move(info)),
      window_(window), chunk_size_(client_->config().part_size), spares_(std::make_shared<Spares>()) {
  spares_->cap = static_cast<size_t>(window_ / chunk_size_) + 2;
  const S3Config& config = client_->config();
  if (!config.verify_checksums) return;
  if (info_.metadata.count("stor-crc32c")) {
    check_ = Check::kCrc32c;
    return;
  }
  // The server's CRC of the whole object (kept by AWS for FULL_OBJECT uploads): hardware-fast.
  if (is_full_object_checksum(info_.checksum_crc64nvme, info_.checksum_type)) {
    check_ = Check::kServerCrc64;
    return;
  }
  if (is_full_object_checksum(info_.checksum_crc32c, info_.checksum_type)) {
    check_ = Check::kServerCrc32c;
    return;
  }
  // MD5 ETags cost ~1.5-2 CPU-s/GiB: only when asked for (s3.verify_md5).
  if (!config.verify_md5) return;
  auto is_hex = [](const std::string& s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
  };
  const std::string& etag = info_.etag;
  const size_t dash = etag.find('-');
  if (etag.size() == 32 && is_hex(etag)) {
    check_ = Check::kPlainMd5;
  } else if (dash == 32 && is_hex(etag.substr(0, 32)) && info_.metadata.count("stor-part-size")) {
    // Server-supplied: strict digits (strtoull took "-1" as 2^64-1 and leading blanks).
    if (auto part = parse_uint(info_.metadata.at("stor-part-size")); part.is_ok() && *part > 0) {
      layout_.part_size = *part;
      check_ = Check::kMultipartMd5;
    }
  }
  if ((check_ == Check::kPlainMd5 || check_ == Check::kMultipartMd5) && client_->auth_mode(bucket_) == "session")
    check_ = Check::kNone;
}

ReadAhead::~ReadAhead() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

std::shared_ptr<ReadAhead::Chunk> ReadAhead::schedule_locked(uint64_t offset, size_t len) {
  auto chunk = std::make_shared<Chunk>();
  chunk->offset = offset;
  chunk->len = len;
  chunk->spares = spares_;
  {
    std::lock_guard<std::mutex> lock(spares_->mu);
    if (!spares_->free.empty()) {
      chunk->data = std::move(spares_->free.back());
      spares_->free.pop_back();
    }
  }
  if (chunk->data.empty()) chunk->data = PartBuffer(static_cast<size_t>(chunk_size_));
  ++in_flight_;
  client_->pool().post([this, chunk] {
    Result<size_t> got = client_->get_range(bucket_, key_, chunk->offset, chunk->len, chunk->data.data(), info_.etag);
    Status s = got.status();
    if (s.is_ok() && got.value() != chunk->len) {
      s = Status::IoError("S3 GetObject s3://" + bucket_ + "/" + key_ + ": short read-ahead at offset " +
                                     std::to_string(chunk->offset));
    }
    {
      std::lock_guard<std::mutex> lock(chunk->mu);
      chunk->status = s;
      chunk->done = true;
    }
    chunk->cv.notify_all();
    std::lock_guard<std::mutex> lock(mu_);  // last touch of `this`: the destructor waits for it
    if (--in_flight_ == 0) idle_cv_.notify_all();
  });
  return chunk;
}

Status ReadAhead::check_crc_locked(const char* data, size_t n, uint64_t offset) {
  if (check_ == Check::kNone || offset != crc_offset_ || n == 0) return Status::ok();
  const std::string what = "S3 GetObject s3://" + bucket_ + "/" + key_;
  switch (check_) {
    case Check::kCrc32c:
    case Check::kServerCrc32c:
      running_crc_ = crc32c(static_cast<uint32_t>(running_crc_), data, n);
      break;
    case Check::kServerCrc64:
      running_crc_ = crc64nvme(running_crc_, data, n);
      break;
    case Check::kPlainMd5:
      md5_.update(data, n);
      break;
    case Check::kMultipartMd5:
      // Feed each part's bytes to its own digest; the ETag is MD5 over the parts' digests.
      for (uint64_t pos = offset; pos < offset + n;) {
        const uint64_t part_end = std::min(info_.size, layout_.start(md5_part_) + layout_.len(md5_part_));
        const uint64_t take = std::min(offset + n, part_end) - pos;
        md5_.update(data + (pos - offset), static_cast<size_t>(take));
        pos += take;
        if (pos == part_end) {
          part_md5s_ += md5_.finish();
          ++md5_part_;
        }
      }
      break;
    case Check::kNone:
      break;
  }
  crc_offset_ += n;
  if (crc_offset_ != info_.size) return Status::ok();
  if (check_ == Check::kServerCrc32c || check_ == Check::kServerCrc64) {
    const bool crc64 = check_ == Check::kServerCrc64;
    const std::string& server = crc64 ? info_.checksum_crc64nvme : info_.checksum_crc32c;
    const std::string actual =
        checksum_base64(crc64 ? ChecksumAlgorithm::kCrc64Nvme : ChecksumAlgorithm::kCrc32c, running_crc_);
    if (server != actual)
      return Status::Corruption(what + (crc64 ? ": CRC64NVME" : ": CRC32C") + " mismatch (server " + server +
                                ", read " + actual + ")");
    return Status::ok();
  }
  if (check_ == Check::kCrc32c) {
    const std::string& stored = info_.metadata.at("stor-crc32c");
    char actual[16];
    std::snprintf(actual, sizeof actual, "%08x", static_cast<uint32_t>(running_crc_));
    if (stored != actual)
      return Status::Corruption(what + ": CRC32C mismatch (stored " + stored + ", read " + actual + ")");
    return Status::ok();
  }
  std::string actual;
  if (check_ == Check::kPlainMd5) {
    const std::string raw = md5_.finish();
    actual = to_hex(raw.data(), raw.size());
  } else {
    const std::string raw = md5(part_md5s_.data(), part_md5s_.size());
    actual = to_hex(raw.data(), raw.size()) + "-" + std::to_string(md5_part_);
  }
  if (actual != info_.etag)
    return Status::Corruption(what + ": MD5 mismatch (ETag " + info_.etag + ", read " + actual + ")");
  return Status::ok();
}

Result<size_t> ReadAhead::read(char* dst, size_t len, uint64_t offset) {
  if (offset >= info_.size || len == 0) return size_t{0};
  len = static_cast<size_t>(std::min<uint64_t>(len, info_.size - offset));
  const uint64_t end = offset + len;

  std::vector<std::shared_ptr<Chunk>> needed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const bool in_window = !chunks_.empty() && offset >= chunks_.front()->offset &&
                           offset <= chunks_.back()->offset + chunks_.back()->len;
    const bool sequential = offset == next_offset_ || in_window;
    next_offset_ = end;
    sequential_reads_ = sequential ? sequential_reads_ + 1 : 0;
    if (!sequential) chunks_.clear();  // a seek: in-flight chunks finish on their own
    if (sequential_reads_ >= 2) {
      while (!chunks_.empty() && chunks_.front()->offset + chunks_.front()->len <= offset) chunks_.pop_front();
      uint64_t from = chunks_.empty() ? offset / chunk_size_ * chunk_size_ : chunks_.back()->offset + chunks_.back()->len;
      const uint64_t target = std::min<uint64_t>(info_.size, end + window_);
      while (from < target) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(chunk_size_, info_.size - from));
        chunks_.push_back(schedule_locked(from, n));
        from += n;
      }
      for (const auto& c : chunks_) {
        if (c->offset >= end) break;
        if (c->offset + c->len > offset) needed.push_back(c);
      }
    }
  }

  if (needed.empty()) {
    // Random access (or the first read): plain parallel ranged GETs.
    STOR_ASSIGN_OR_RETURN(size_t n, client_->read_object(bucket_, key_, info_, offset, len, dst));
    std::lock_guard<std::mutex> lock(mu_);
    STOR_RETURN_IF_ERROR(check_crc_locked(dst, n, offset));
    return n;
  }
  for (const auto& c : needed) {
    Status s = c->wait();
    if (!s.is_ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      chunks_.clear();  // refetch on the next read
      return s;
    }
    const uint64_t from = std::max(offset, c->offset);
    const uint64_t to = std::min(end, c->offset + c->len);
    std::memcpy(dst + (from - offset), c->data.data() + (from - c->offset), static_cast<size_t>(to - from));
  }
  std::lock_guard<std::mutex> lock(mu_);
  STOR_RETURN_IF_ERROR(check_crc_locked(dst, len, offset));
  return len;
}

}  // namespace stor::s3
