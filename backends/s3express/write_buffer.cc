#include "backends/s3express/write_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace stor::s3 {

WriteBuffer::WriteBuffer(uint64_t memory_limit, std::string tmp_dir)
    : memory_limit_(memory_limit), tmp_dir_(tmp_dir.empty() ? std::string("/tmp") : std::move(tmp_dir)) {}

WriteBuffer::~WriteBuffer() { clear(); }

void WriteBuffer::clear() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  mem_.clear();
  mem_.shrink_to_fit();
  size_ = 0;
}

Status WriteBuffer::spill(uint64_t needed_size) {
  int fd = ::open(tmp_dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) {
    // File systems without O_TMPFILE: a named file, unlinked at once.
    std::string tmpl = tmp_dir_ + "/stor-s3-XXXXXX";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd < 0) return Status::from_errno(errno, "s3 write buffer: create temporary file in " + tmp_dir_);
    ::unlink(name.data());
  }
  size_t done = 0;
  while (done < mem_.size()) {
    ssize_t n = ::pwrite(fd, mem_.data() + done, mem_.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = Status::from_errno(n < 0 ? errno : ENOSPC, "s3 write buffer: spill to " + tmp_dir_);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd, static_cast<off_t>(std::max<uint64_t>(size_, needed_size))) != 0) {
    Status s = Status::from_errno(errno, "s3 write buffer: size temporary file");
    ::close(fd);
    return s;
  }
  fd_ = fd;
  mem_.clear();
  mem_.shrink_to_fit();
  return Status::ok();
}

Status WriteBuffer::write(const char* src, size_t len, uint64_t offset) {
  const uint64_t end = offset + len;
  if (fd_ < 0 && end > memory_limit_) STOR_RETURN_IF_ERROR(spill(end));
  if (fd_ < 0) {
    if (end > mem_.size()) {
      // Geometric growth keeps long runs of appends linear.
      if (end > mem_.capacity()) mem_.reserve(std::max<size_t>(end, mem_.capacity() * 2));
      mem_.resize(end, '\0');
    }
    std::memcpy(mem_.data() + offset, src, len);
  } else {
    size_t done = 0;
    while (done < len) {
      ssize_t n = ::pwrite(fd_, src + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Status::from_errno(n < 0 ? errno : ENOSPC, "s3 write buffer: write temporary file");
      done += static_cast<size_t>(n);
    }
  }
  size_ = std::max(size_, end);
  return Status::ok();
}

Result<size_t> WriteBuffer::read(char* dst, size_t len, uint64_t offset) const {
  if (offset >= size_) return size_t{0};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  if (fd_ < 0) {
    std::memcpy(dst, mem_.data() + offset, n);
    return n;
  }
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::from_errno(errno, "s3 write buffer: read temporary file");
    if (r == 0) {  // a sparse tail not yet materialised reads as zeros
      std::memset(dst + done, 0, n - done);
      break;
    }
    done += static_cast<size_t>(r);
  }
  return n;
}

Status WriteBuffer::resize(uint64_t size) {
  if (fd_ < 0 && size > memory_limit_) STOR_RETURN_IF_ERROR(spill(size));
  if (fd_ < 0) {
    mem_.resize(size, '\0');
  } else if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) {
    return Status::from_errno(errno, "s3 write buffer: truncate temporary file");
  }
  size_ = size;
  return Status::ok();
}

Status WriteBuffer::assign(std::string content) {
  clear();
  size_ = content.size();
  mem_ = std::move(content);
  if (size_ > memory_limit_) return spill(size_);
  return Status::ok();
}

Status WriteBuffer::with_contiguous(const std::function<Status(const char*, size_t)>& fn) const {
  if (fd_ < 0) return fn(mem_.data(), mem_.size());
  if (size_ == 0) return fn("", 0);
  void* map = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
  if (map == MAP_FAILED) return Status::from_errno(errno, "s3 write buffer: map temporary file");
  ::madvise(map, size_, MADV_SEQUENTIAL);
  Status s = fn(static_cast<const char*>(map), size_);
  ::munmap(map, size_);
  return s;
}

}  // namespace stor::s3
