#include "core/tiering/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace stor::tiering::internal {
namespace {

std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

// Paths and ETags may hold any byte but tab/newline separate fields: escape those and '%'.
std::string escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '%' || c == '\t' || c == '\n' || c == '\r') {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t t = s.find('\t', start);
    out.push_back(s.substr(start, t == std::string::npos ? std::string::npos : t - start));
    if (t == std::string::npos) return out;
    start = t + 1;
  }
}

std::string encode_put(const Record& r) {
  std::ostringstream o;
  o << "P\t" << escape(r.path) << '\t' << static_cast<int>(r.residency) << '\t' << r.size << '\t' << r.mtime_ns << '\t'
    << escape(r.cold_etag) << '\t' << r.cold_mtime_ns << '\t' << r.last_access_ns << '\t' << r.reads;
  return o.str();
}

std::string frame(const std::string& payload) {
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", crc32(payload.data(), payload.size()));
  return std::string(crc) + ' ' + payload + '\n';
}

// Applies one framed line; false when the line is torn or malformed.
bool apply_line(const std::string& line, std::map<std::string, Record>* records) {
  if (line.size() < 10 || line[8] != ' ') return false;
  const std::string payload = line.substr(9);
  uint32_t want = 0;
  try {
    want = static_cast<uint32_t>(std::stoul(line.substr(0, 8), nullptr, 16));
  } catch (...) {
    return false;
  }
  if (crc32(payload.data(), payload.size()) != want) return false;
  auto f = split_tabs(payload);
  try {
    if (f[0] == "E" && f.size() == 2) {
      records->erase(unescape(f[1]));
      return true;
    }
    if (f[0] != "P" || f.size() != 9) return false;
    Record r;
    r.path = unescape(f[1]);
    const int residency = std::stoi(f[2]);
    if (residency < 0 || residency > 3) return false;
    r.residency = static_cast<Residency>(residency);
    r.size = std::stoull(f[3]);
    r.mtime_ns = std::stoll(f[4]);
    r.cold_etag = unescape(f[5]);
    r.cold_mtime_ns = std::stoll(f[6]);
    r.last_access_ns = std::stoll(f[7]);
    r.reads = std::stoull(f[8]);
    (*records)[r.path] = std::move(r);
    return true;
  } catch (...) {
    return false;
  }
}

Status fsync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, "open " + path);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::from_errno(err, "fsync " + path);
  return {};
}

Status write_all(int fd, const std::string& data, const std::string& what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "write " + what);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

uint32_t crc32(const void* data, size_t len, uint32_t crc) {
  static const auto table = make_table();
  crc = ~crc;
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& dir, std::map<std::string, Record>* records) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status(Code::kIoError, "create tiering state directory " + dir + ": " + ec.message());
  const std::string lock_path = dir + "/lock";
  int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) return Status::from_errno(errno, "open " + lock_path);
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(lock_fd);
    if (err == EWOULDBLOCK)
      return Status(Code::kBusy, "tiered namespace state " + dir + " is in use by another process (or another open)");
    return Status::from_errno(err, "flock " + lock_path);
  }
  auto fail = [&](Status s) {
    ::close(lock_fd);
    return s;
  };
  for (const char* name : {"checkpoint", "journal"}) {
    std::ifstream in(dir + "/" + name, std::ios::binary);
    if (!in) continue;
    std::string line;
    bool torn = false;
    while (std::getline(in, line)) {
      if (torn) {
        // A bad line followed by more lines is not a torn tail: the state is damaged.
        return fail(Status(Code::kCorruption, dir + "/" + name + ": damaged record before the last line"));
      }
      if (!apply_line(line, records)) torn = true;
    }
    if (torn && std::string(name) == "checkpoint")
      return fail(Status(Code::kCorruption, dir + "/checkpoint: damaged last record (checkpoints are written whole)"));
  }
  const std::string jpath = dir + "/journal";
  int fd = ::open(jpath.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return fail(Status::from_errno(errno, "open " + jpath));
  std::unique_ptr<Journal> j(new Journal(dir, fd, lock_fd));
  // Start from a clean journal: fold what was replayed (including dropping a torn tail).
  STOR_RETURN_IF_ERROR(j->compact(*records));
  return j;
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

Status Journal::append(const std::string& payload, bool durable) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(write_all(fd_, frame(payload), dir_ + "/journal"));
  ++appended_;
  if (durable && ::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + dir_ + "/journal");
  return {};
}

Status Journal::put(const Record& r, bool durable) { return append(encode_put(r), durable); }

Status Journal::erase(const std::string& path, bool durable) { return append("E\t" + escape(path), durable); }

uint64_t Journal::appended_since_compaction() const {
  std::lock_guard lk(mu_);
  return appended_;
}

Status Journal::compact(const std::map<std::string, Record>& records) {
  std::lock_guard lk(mu_);
  const std::string tmp = dir_ + "/checkpoint.tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open " + tmp);
  std::string body;
  for (const auto& [path, r] : records) body += frame(encode_put(r));
  Status s = write_all(fd, body, tmp);
  if (s.is_ok() && ::fsync(fd) != 0) s = Status::from_errno(errno, "fsync " + tmp);
  ::close(fd);
  STOR_RETURN_IF_ERROR(s);
  if (::rename(tmp.c_str(), (dir_ + "/checkpoint").c_str()) != 0)
    return Status::from_errno(errno, "rename " + tmp + " -> checkpoint");
  STOR_RETURN_IF_ERROR(fsync_path(dir_, true));
  // The checkpoint now holds everything: the journal can start over.
  if (::ftruncate(fd_, 0) != 0) return Status::from_errno(errno, "truncate " + dir_ + "/journal");
  if (::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + dir_ + "/journal");
  appended_ = 0;
  return {};
}

}  // namespace stor::tiering::internal
