#include "backends/lustre/wal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

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
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open WAL " + path);
  // Cut off a torn tail so new records follow the last intact one.
  if (::ftruncate(fd, static_cast<off_t>(valid_length)) != 0 ||
      ::lseek(fd, static_cast<off_t>(valid_length), SEEK_SET) < 0) {
    int e = errno;
    ::close(fd);
    return Status::from_errno(e, "truncate WAL " + path);
  }
  std::lock_guard lk(mu_);
  fd_ = fd;
  path_ = path;
  size_ = valid_length;
  return Status::ok();
}

Status WalWriter::append(std::string_view payload) {
  std::string frame(8 + payload.size(), '\0');
  uint32_t len = static_cast<uint32_t>(payload.size());
  uint32_t crc = crc32c(payload.data(), payload.size());
  std::memcpy(frame.data(), &len, 4);
  std::memcpy(frame.data() + 4, &crc, 4);
  std::memcpy(frame.data() + 8, payload.data(), payload.size());
  std::lock_guard lk(mu_);
  if (fd_ < 0) return Status(Code::kInternal, "WAL is closed");
  Status s = write_all(fd_, frame.data(), frame.size(), "WAL " + path_);
  if (!s) {
    // Leave no partial frame behind: later records must follow an intact prefix.
    if (::ftruncate(fd_, static_cast<off_t>(size_)) == 0) (void)::lseek(fd_, static_cast<off_t>(size_), SEEK_SET);
    return s;
  }
  size_ += frame.size();
  ++appended_seq_;
  return Status::ok();
}

Status WalWriter::sync() {
  uint64_t want;
  int fd;
  {
    std::lock_guard lk(mu_);
    want = appended_seq_;
    fd = fd_;
  }
  std::lock_guard sk(sync_mu_);
  if (synced_seq_ >= want) return Status::ok();  // someone else's flush covered us
  uint64_t covering;
  {
    std::lock_guard lk(mu_);
    covering = appended_seq_;
  }
  if (fd >= 0 && ::fdatasync(fd) != 0) return Status::from_errno(errno, "fdatasync WAL " + path_);
  synced_seq_ = covering;
  return Status::ok();
}

uint64_t WalWriter::size() const {
  std::lock_guard lk(mu_);
  return size_;
}

void WalWriter::close() {
  std::lock_guard lk(mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
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
  const std::string& d = *data;
  size_t pos = 0;
  while (pos + 8 <= d.size()) {
    uint32_t len, crc;
    std::memcpy(&len, d.data() + pos, 4);
    std::memcpy(&crc, d.data() + pos + 4, 4);
    if (len > d.size() - pos - 8) break;  // torn tail
    std::string_view payload(d.data() + pos + 8, len);
    if (crc32c(payload.data(), payload.size()) != crc) break;  // torn or corrupt tail
    STOR_RETURN_IF_ERROR(apply(payload));
    pos += 8 + len;
  }
  return static_cast<uint64_t>(pos);
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
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
