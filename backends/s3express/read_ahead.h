// Sequential read-ahead for objects opened read-only. Once reads run sequentially, the next
// `window` bytes are fetched in part-size chunks in the background over several connections,
// so a reader issuing one 8 MiB read at a time (stctl cp) still keeps the pool busy. While reads
// stay strictly sequential from offset 0 a running CRC is kept and checked when the last byte is
// read: against the CRC32C stored with the object, else the server's FULL_OBJECT CRC64NVME or
// CRC32C. With s3.verify_md5, objects without any (streamed multipart uploads to servers that keep
// no checksums, other writers) are checked against their ETag instead when it is an MD5: a plain
// one, or a multipart one ("md5-of-part-md5s-N") when the part layout is known
// (x-amz-meta-stor-part-size). S3 Express ETags are not MD5s: no ETag check with sessions.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/s3express/crypto.h"
#include "backends/s3express/s3_client.h"
#include "backends/s3express/write_buffer.h"

namespace stor::s3 {

class ReadAhead {
 public:
  ReadAhead(std::shared_ptr<S3Client> client, std::string bucket, std::string key, ObjectInfo info, uint64_t window);
  ~ReadAhead();  // waits for fetches still in flight
  ReadAhead(const ReadAhead&) = delete;
  ReadAhead& operator=(const ReadAhead&) = delete;

  Result<size_t> read(char* dst, size_t len, uint64_t offset);

 private:
  struct Chunk;
  struct Spares;
  std::shared_ptr<Chunk> schedule_locked(uint64_t offset, size_t len);
  Status check_crc_locked(const char* data, size_t n, uint64_t offset);

  std::shared_ptr<S3Client> client_;
  const std::string bucket_, key_;
  const ObjectInfo info_;
  const uint64_t window_;
  const uint64_t chunk_size_;
  std::shared_ptr<Spares> spares_;  // chunk buffers for reuse

  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::deque<std::shared_ptr<Chunk>> chunks_;  // ascending, contiguous
  uint64_t next_offset_ = 0;                   // where a sequential reader reads next
  unsigned sequential_reads_ = 0;
  size_t in_flight_ = 0;
  uint64_t crc_offset_ = 0;  // bytes [0, crc_offset_) are covered by running_crc_
  uint64_t running_crc_ = 0;  // CRC32C in the low half, or CRC64NVME
  enum class Check { kNone, kCrc32c, kServerCrc32c, kServerCrc64, kPlainMd5, kMultipartMd5 } check_ = Check::kNone;
  PartLayout layout_;     // kMultipartMd5: the writer's part boundaries
  Md5 md5_;               // the whole object, or the current part
  std::string part_md5s_;  // kMultipartMd5: digests of the parts done
  size_t md5_part_ = 0;
};

}  // namespace stor::s3
