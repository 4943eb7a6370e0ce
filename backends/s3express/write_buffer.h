// The content of an object opened for writing. Object stores take whole objects, so writes are
// collected here and uploaded on sync/close: in memory up to a threshold, then in an unlinked
// temporary file, so multi-GiB objects need no more RAM than the threshold.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "stor/status.h"

namespace stor::s3 {

class WriteBuffer {
 public:
  WriteBuffer(uint64_t memory_limit, std::string tmp_dir);
  ~WriteBuffer();
  WriteBuffer(const WriteBuffer&) = delete;
  WriteBuffer& operator=(const WriteBuffer&) = delete;

  uint64_t size() const noexcept { return size_; }
  bool spilled() const noexcept { return fd_ >= 0; }

  Status write(const char* src, size_t len, uint64_t offset);  // zero-fills any gap
  Result<size_t> read(char* dst, size_t len, uint64_t offset) const;
  Status resize(uint64_t size);
  Status assign(std::string content);
  // Calls fn with the whole content as one contiguous range (a read-only mapping once spilled).
  Status with_contiguous(const std::function<Status(const char* data, size_t len)>& fn) const;
  void clear();

 private:
  Status spill(uint64_t needed_size);
  uint64_t memory_limit_;
  std::string tmp_dir_;
  std::string mem_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace stor::s3
