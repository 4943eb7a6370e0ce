#include "backends/lustre/wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace stor::lustre {

namespace {

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;  // Castagnoli
    t[i] = c;
  }
  return t;
}

Status write_all(int fd, const char* p, size_t n, const std::string& what) {
  while (n) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "write " + what);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::ok();
}

}  // namespace

uint32_t crc32c(const void* data, size_t len, uint32_t crc) {
  static const auto table = make_crc_table();
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < len; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

WalWriter::~WalWriter() { close(); }

Status WalWriter::open(const std::string& path, uint64_t valid_length) {
  close();
  // O_NOFOLLOW: a symlink planted as the log must not aim the truncation and appends elsewhere.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open WAL " + path);
  // Cut off a torn tail so new records follow the last intact one.
  if (::ftruncate(fd, static_cast<off_t>(valid_length)) != 0) {
    int e = errno;
    ::close(fd);
    return Status::from_errno(e, "truncate WAL " + path);
  }
  {
    // A fresh log: nothing is broken or pending, and syncs waiting on the old one stop waiting.
    std::lock_guard lk(written_mu_);
    path_ = path;
    next_offset_ = valid_length;
    written_prefix_ = valid_length;
    done_.clear();
    broken_ = false;
    broken_at_ = 0;
    broken_why_.clear();
    ++epoch_;
    fd_ = fd;
  }
  written_cv_.notify_all();
  return Status::ok();
}

Status WalWriter::append(std::string_view payload) {
  if (payload.empty()) return Status::Internal("empty WAL record");
  std::string frame(8 + payload.size(), '\0');
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = crc32c(payload.data(), payload.size());
  std::memcpy(frame.data(), &len, 4);
  std::memcpy(frame.data() + 4, &crc, 4);
  std::memcpy(frame.data() + 8, payload.data(), payload.size());
  int fd = fd_.load();
  if (fd < 0) return Status::Internal("WAL is closed");
  if (broken_.load()) {
    std::lock_guard lk(written_mu_);
    if (broken_) return broken_status();
  }
  const uint64_t start = next_offset_.fetch_add(frame.size());
  const uint64_t end = start + frame.size();
  uint64_t off = start;
  const char* p = frame.data();
  size_t n = frame.size();
  int injected = before_write_ ? before_write_(off, n) : 0;
  while (n) {
    ssize_t w;
    if (injected) {
      errno = std::exchange(injected, 0);
      w = -1;
    } else {
      w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    }
    if (w < 0) {
      if (errno == EINTR) continue;
      // The reserved range stays a zero gap or a torn frame that replay stops at: the operation
      // is not acknowledged, and neither is anything logged after it (the log is broken).
      Status s = Status::from_errno(errno, "write WAL " + path_);
      mark_broken(start, s);
      return s;
    }
    p += w;
    n -= static_cast<size_t>(w);
    off += static_cast<uint64_t>(w);
  }
  return mark_written(start, end);
}

Status WalWriter::mark_written(uint64_t off, uint64_t end) {
  {
    std::lock_guard lk(written_mu_);
    // Behind a failed append: replay may never reach this record, so it is not acknowledged.
    if (broken_ && off >= broken_at_) return broken_status();
    if (off != written_prefix_) {
      done_.emplace(off, end);
      return Status::ok();
    }
    written_prefix_ = end;
    for (auto it = done_.begin(); it != done_.end() && it->first == written_prefix_; it = done_.erase(it))
      written_prefix_ = it->second;
  }
  written_cv_.notify_all();
  return Status::ok();
}

void WalWriter::mark_broken(uint64_t off, const Status& why) {
  {
    std::lock_guard lk(written_mu_);
    if (!broken_ || off < broken_at_) {
      broken_at_ = off;
      broken_why_ = why.message();
    }
    broken_ = true;
  }
  written_cv_.notify_all();
}

Status WalWriter::broken_status() const {
  return Status::IoError("lustre: WAL " + path_ + " is broken at offset " + std::to_string(broken_at_) +
                                    " (" + broken_why_ +
                                    "); nothing logged after it is acknowledged until the metadata service "
                                    "checkpoints (File::sync, unmount) or is remounted");
}

Status WalWriter::sync() {
  // Everything reserved before this call (the caller's own record included) must be written
  // before the fdatasync that acknowledges it: a record written but not yet reachable by replay
  // (an earlier one is still being written) must not be acknowledged.
  uint64_t epoch, target;
  {
    std::unique_lock lk(written_mu_);
    epoch = epoch_;
    target = next_offset_.load();
    written_cv_.wait(lk, [&] { return broken_ || epoch_ != epoch || written_prefix_ >= target; });
    if (broken_) return broken_status();
    if (epoch_ != epoch) return Status::ok();  // replaced by open()/close(): see wal.h
  }
  std::lock_guard sk(sync_mu_);
  uint64_t covering;
  int fd;
  {
    std::lock_guard lk(written_mu_);
    if (broken_) return broken_status();
    if (epoch_ != epoch) return Status::ok();
    // Group commit: a flush that started after our bytes were written covered them.
    if (synced_epoch_ == epoch && synced_to_ >= target) return Status::ok();
    covering = written_prefix_;
    fd = fd_.load();
  }
  if (fd >= 0 && ::fdatasync(fd) != 0) {
    // After a failed fdatasync the kernel may have dropped the dirty pages and a retry can
    // report success: treat the log as broken.
    Status s = Status::from_errno(errno, "fdatasync WAL " + path_);
    mark_broken(0, s);
    return s;
  }
  synced_epoch_ = epoch;
  synced_to_ = covering;
  return Status::ok();
}

void WalWriter::close() {
  {
    // Not under a running fdatasync (a checkpoint rotates the log while File::sync may run):
    // it would fail on the closed descriptor and break the fresh log.
    std::lock_guard sk(sync_mu_);
    int fd = fd_.exchange(-1);
    if (fd >= 0) ::close(fd);
  }
  {
    std::lock_guard lk(written_mu_);
    ++epoch_;
  }
  written_cv_.notify_all();
}

Result<std::string> read_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, "open " + path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      return Status::from_errno(e, "read " + path);
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  ::close(fd);
  return out;
}

Result<uint64_t> replay_wal(const std::string& path, const std::function<Status(std::string_view)>& apply) {
  auto data = read_file(path);
  if (!data) {
    if (data.status().code() == Code::kNotFound) return uint64_t{0};
    return data.status();
  }
  return replay_wal_data(*data, apply);
}

Result<uint64_t> replay_wal_data(std::string_view d, const std::function<Status(std::string_view)>& apply) {
  auto frame_at = [&](size_t pos, std::string_view* payload) {
    if (pos + 8 > d.size()) return false;
    uint32_t len, crc;
    std::memcpy(&len, d.data() + pos, 4);
    std::memcpy(&crc, d.data() + pos + 4, 4);
    if (len == 0 || len > d.size() - pos - 8) return false;
    *payload = std::string_view(d.data() + pos + 8, len);
    return crc32c(payload->data(), payload->size()) == crc;
  };
  size_t pos = 0, valid_end = 0;
  while (pos < d.size()) {
    std::string_view payload;
    if (frame_at(pos, &payload)) {
      STOR_RETURN_IF_ERROR(apply(payload));
      pos += 8 + payload.size();
      valid_end = pos;
      continue;
    }
    // A zero run is the reservation of a record whose writer died before writing it: skip to
    // the next intact frame, if any. Anything else is a torn or corrupt tail.
    if (d[pos] != '\0') break;
    size_t z = pos;
    while (z < d.size() && d[z] == '\0') ++z;
    // A frame may itself start with zero bytes (its length's high bytes): try each start.
    size_t next = std::string_view::npos;
    for (size_t cand = pos + 1; cand <= z && cand < d.size(); ++cand) {
      std::string_view p2;
      if (frame_at(cand, &p2)) {
        next = cand;
        break;
      }
    }
    if (next == std::string_view::npos) break;
    pos = next;
  }
  return static_cast<uint64_t>(valid_end);
}

Status fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, "open directory " + dir);
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno(e, "fsync directory " + dir);
  return Status::ok();
}

Status write_file_atomic(const std::string& path, std::string_view data) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);  // no planted link
  if (fd < 0) return Status::from_errno(errno, "create " + tmp);
  Status s = write_all(fd, data.data(), data.size(), tmp);
  if (s && ::fsync(fd) != 0) s = Status::from_errno(errno, "fsync " + tmp);
  ::close(fd);
  if (!s) return s;
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Status::from_errno(errno, "rename " + tmp);
  auto slash = path.rfind('/');
  return fsync_dir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash)));
}

}  // namespace stor::lustre
