#include "backends/tier/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <vector>

#include "backends/tier/tiered_store.h"

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

// Undoes escape(); false on a '%' not followed by two hex digits.
bool unescape(const std::string& s, std::string* out) {
  out->clear();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
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
  // Optional 10th field, only while an export is in flight: "SIZE:CRC32 in hex" (else empty
  // when an 11th follows); optional 11th, only while a rename is in flight: its source path.
  if (r.export_pending || !r.renamed_from.empty()) o << '\t';
  if (r.export_pending) {
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", r.export_crc);
    o << r.export_size << ':' << crc;
  }
  if (!r.renamed_from.empty()) o << '\t' << escape(r.renamed_from);
  return o.str();
}

std::string frame(const std::string& payload) {
  char crc[9];
  std::snprintf(crc, sizeof crc, "%08x", crc32(payload.data(), payload.size()));
  return std::string(crc) + ' ' + payload + '\n';
}

// Strict decimal: digits only (std::stoull would take "-1", " 7" and "12abc").
bool parse_u64(const std::string& s, uint64_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size() && s[0] != '-';
}
bool parse_i64(const std::string& s, int64_t* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// A record path as the store makes it: relative, normalized, no NUL, not the state directory.
std::string path_problem(const std::string& path) {
  if (path.empty()) return "empty path";
  if (path.size() > 4096) return "path longer than 4096 bytes";
  if (path.find('\0') != std::string::npos) return "path contains NUL";
  auto norm = normalize_path(path);
  if (!norm || *norm != path) return "path '" + path + "' is not a normalized relative path";
  return "";
}

// Parses one CRC-valid payload into *r (a put) or *erased (an erase); "" or what is wrong.
std::string parse_payload(const std::string& payload, Record* r, std::string* erased, bool* is_erase) {
  auto f = split_tabs(payload);
  if (f[0] == "E") {
    if (f.size() != 2) return "erase record has " + std::to_string(f.size()) + " fields, want 2";
    if (!unescape(f[1], erased)) return "bad %XX escape in path";
    *is_erase = true;
    return path_problem(*erased);
  }
  if (f[0] != "P") return "unknown record type '" + f[0].substr(0, 16) + "'";
  if (f.size() < 9 || f.size() > 11)
    return "put record has " + std::to_string(f.size()) + " fields, want 9 (10-11 with export / rename intents)";
  *is_erase = false;
  if (!unescape(f[1], &r->path)) return "bad %XX escape in path";
  if (std::string bad = path_problem(r->path); !bad.empty()) return bad;
  uint64_t residency = 0;
  if (!parse_u64(f[2], &residency) || residency > 3) return "residency '" + f[2] + "' is not 0..3";
  r->residency = static_cast<Residency>(residency);
  if (!parse_u64(f[3], &r->size) || r->size > static_cast<uint64_t>(INT64_MAX))
    return "size '" + f[3] + "' is not a number up to 2^63-1";
  if (!parse_i64(f[4], &r->mtime_ns)) return "mtime '" + f[4] + "' is not a number";
  if (!unescape(f[5], &r->cold_etag)) return "bad %XX escape in etag";
  if (r->cold_etag.size() > 1024) return "etag longer than 1024 bytes";
  // It is sent back in If-Match headers: control bytes could split the request.
  for (unsigned char c : r->cold_etag)
    if (c < 0x20 || c == 0x7f) return "etag contains control byte " + std::to_string(c);
  if ((r->residency == Residency::kUncached || r->residency == Residency::kDemoted) && r->cold_etag.empty())
    return std::string("a ") + residency_name(r->residency) + " file has no cold copy (empty etag)";
  if (!parse_i64(f[6], &r->cold_mtime_ns)) return "cold mtime '" + f[6] + "' is not a number";
  if (!parse_i64(f[7], &r->last_access_ns)) return "last access '" + f[7] + "' is not a number";
  if (!parse_u64(f[8], &r->reads)) return "reads '" + f[8] + "' is not a number";
  r->export_pending = f.size() >= 10 && !f[9].empty();
  if (r->export_pending) {
    const size_t colon = f[9].find(':');
    const std::string crc = colon == std::string::npos ? "" : f[9].substr(colon + 1);
    uint64_t crc_value = 0;
    auto [end, ec] = std::from_chars(crc.data(), crc.data() + crc.size(), crc_value, 16);
    if (colon == std::string::npos || !parse_u64(f[9].substr(0, colon), &r->export_size) ||
        r->export_size > static_cast<uint64_t>(INT64_MAX) || crc.size() != 8 || ec != std::errc() ||
        end != crc.data() + crc.size())
      return "export intent '" + f[9].substr(0, 40) + "' is not SIZE:CRC32 (8 hex digits)";
    r->export_crc = static_cast<uint32_t>(crc_value);
  }
  if (f.size() == 11) {
    if (!unescape(f[10], &r->renamed_from)) return "bad %XX escape in rename source";
    if (std::string bad = path_problem(r->renamed_from); !bad.empty()) return "rename source: " + bad;
    if (r->renamed_from == r->path) return "rename source is the record's own path";
  }
  return "";
}

// Whether a line carries a valid "crc32 payload" frame; *payload is then set.
bool frame_ok(std::string_view line, std::string* payload) {
  if (line.size() < 10 || line[8] != ' ') return false;
  uint32_t want = 0;
  auto [end, ec] = std::from_chars(line.data(), line.data() + 8, want, 16);
  if (ec != std::errc() || end != line.data() + 8) return false;
  payload->assign(line.substr(9));
  return crc32(payload->data(), payload->size()) == want;
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

Status replay_lines(std::string_view text, const std::string& name, bool is_journal,
                    std::map<std::string, Record>* records) {
  size_t pos = 0;
  for (uint64_t line_no = 1; pos < text.size(); ++line_no) {
    size_t nl = text.find('\n', pos);
    const bool last = nl == std::string_view::npos || nl + 1 == text.size();
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    const std::string where = name + " line " + std::to_string(line_no) + ": ";
    std::string payload;
    if (!frame_ok(line, &payload)) {
      // Only the journal's last line can be torn (appends are not atomic; checkpoints are
      // written whole and renamed into place).
      if (is_journal && last) return Status::ok();
      return Status::Corruption(where + "damaged record (checksum mismatch)" +
                                           (is_journal ? " before the last line" : ""));
    }
    Record r;
    std::string erased;
    bool is_erase = false;
    if (std::string bad = parse_payload(payload, &r, &erased, &is_erase); !bad.empty())
      return Status::Corruption(where + bad);
    if (is_erase) records->erase(erased);
    else (*records)[r.path] = std::move(r);
  }
  return Status::ok();
}

uint32_t crc32(const void* data, size_t len, uint32_t crc) {
  static const auto table = make_table();
  crc = ~crc;
  auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < len; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

namespace {

Result<std::string> read_file_from(int fd, uint64_t offset, const std::string& what) {
  std::string text;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(offset + text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::from_errno(errno, "read " + what);
    if (n == 0) return text;
    text.append(buf, static_cast<size_t>(n));
  }
}

bool same_file(int fd, const std::string& path) {
  struct stat a{}, b{};
  return fd >= 0 && ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_ino == b.st_ino &&
         a.st_dev == b.st_dev;
}

int open_lock_file(const std::string& path) {
  return ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
}

}  // namespace

FileLock& FileLock::operator=(FileLock&& o) noexcept {
  if (this != &o) {
    release();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void FileLock::release() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

uint64_t Journal::slot_of(const std::string& rel, Slot slot) {
  uint64_t h = 14695981039346656037ull;  // FNV-1a: a collision only serializes two files
  for (unsigned char c : rel) h = (h ^ c) * 1099511628211ull;
  return ((h & ((1ull << 61) - 1)) << 1) | (slot == Slot::kOpen ? 1 : 0);
}

Result<FileLock> Journal::lock_path(const std::string& rel, Slot slot, bool exclusive, bool wait) const {
  const std::string path = dir_ + "/locks";
  // A descriptor of its own per lock: OFD locks of one description do not exclude each other.
  FileLock lock(open_lock_file(path));
  if (!lock.held()) return Status::from_errno(errno, "open " + path);
  struct flock fl{};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(slot_of(rel, slot));
  fl.l_len = 1;
  for (;;) {
    if (::fcntl(lock.fd(), wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) == 0) return lock;
    if (errno == EINTR) continue;
    if (!wait && (errno == EAGAIN || errno == EACCES)) return Status::Busy(rel + " is locked by another handle");
    return Status::from_errno(errno, "lock " + path + " for " + rel);
  }
}

Status Journal::flock_journal(int op) {
  for (;;) {
    if (::flock(fd_, op) == 0) return {};
    if (errno != EINTR) return Status::from_errno(errno, "flock " + dir_ + "/journal");
  }
}

Result<std::unique_ptr<Journal>> Journal::open(const std::string& dir, std::map<std::string, Record>* records,
                                               bool* alone_out) {
  bool alone_here = false;
  bool* alone = alone_out ? alone_out : &alone_here;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Status::IoError("create tiering state directory " + dir + ": " + ec.message());
  const std::string jpath = dir + "/journal";
  int fd = ::open(jpath.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "open " + jpath);
  std::unique_ptr<Journal> j(new Journal(dir, fd));
  // dir/lock: one opener at a time, so that recovery never runs beside another instance.
  for (auto [name, out] : {std::pair{"lock", &j->open_lock_fd_}, std::pair{"users", &j->users_fd_}}) {
    *out = open_lock_file(dir + "/" + name);
    if (*out < 0) return Status::from_errno(errno, "open " + dir + "/" + name);
  }
  while (::flock(j->open_lock_fd_, LOCK_EX) != 0)
    if (errno != EINTR) return Status::from_errno(errno, "flock " + dir + "/lock");
  // dir/users: every open instance holds it shared; getting it exclusively means alone.
  *alone = ::flock(j->users_fd_, LOCK_EX | LOCK_NB) == 0;
  if (!*alone) {
    if (errno != EWOULDBLOCK) return Status::from_errno(errno, "flock " + dir + "/users");
    while (::flock(j->users_fd_, LOCK_SH) != 0)
      if (errno != EINTR) return Status::from_errno(errno, "flock " + dir + "/users");
  }
  std::lock_guard lk(j->mu_);
  STOR_RETURN_IF_ERROR(j->flock_journal(*alone ? LOCK_EX : LOCK_SH));
  Status s = j->refresh_locked(records);
  // Alone: start from a clean journal, folding what was replayed (including a torn tail).
  // Nothing is compacted over damaged state: the files stay as found for inspection.
  if (s.is_ok() && *alone) s = j->compact_locked(*records);
  (void)j->flock_journal(LOCK_UN);
  STOR_RETURN_IF_ERROR(s);
  if (!alone_out) j->opened();
  return j;
}

void Journal::opened() {
  if (open_lock_fd_ < 0) return;
  // Converting the users lock is not atomic, but nobody can open meanwhile: we hold dir/lock.
  (void)::flock(users_fd_, LOCK_SH);
  ::close(open_lock_fd_);
  open_lock_fd_ = -1;
}

Journal::~Journal() {
  for (int fd : {fd_, open_lock_fd_, users_fd_, checkpoint_fd_})
    if (fd >= 0) ::close(fd);  // releases the flocks
}

// Caller holds mu_ and a flock of the journal (no append is in progress).
Status Journal::refresh_locked(std::map<std::string, Record>* records) {
  const std::string cpath = dir_ + "/checkpoint", jpath = dir_ + "/journal";
  struct stat js{};
  if (::fstat(fd_, &js) != 0) return Status::from_errno(errno, "stat " + jpath);
  const uint64_t jsize = static_cast<uint64_t>(js.st_size);
  const bool reload = !same_file(checkpoint_fd_, cpath) || jsize < offset_;
  if (!reload && jsize == offset_) return {};
  std::map<std::string, Record> fresh;
  std::map<std::string, Record>* into = records;
  uint64_t from = offset_;
  int new_checkpoint = -1;
  if (reload) {
    // First load, or another instance compacted: the checkpoint plus the whole journal.
    new_checkpoint = ::open(cpath.c_str(), O_RDONLY | O_CLOEXEC);
    if (new_checkpoint < 0 && errno != ENOENT) return Status::from_errno(errno, "open " + cpath);
    if (new_checkpoint >= 0) {
      auto text = read_file_from(new_checkpoint, 0, cpath);
      Status s = text.is_ok() ? replay_lines(*text, cpath, false, &fresh) : text.status();
      if (!s.is_ok()) {
        ::close(new_checkpoint);
        return s;
      }
    }
    into = &fresh;
    from = 0;
  }
  auto text = read_file_from(fd_, from, jpath);
  if (!text.is_ok()) {
    if (new_checkpoint >= 0) ::close(new_checkpoint);
    return text.status();
  }
  // Whole lines only: bytes after the last newline are a crashed append's torn tail.
  const size_t nl = text->rfind('\n');
  const size_t whole = nl == std::string::npos ? 0 : nl + 1;
  // A torn tail is dropped by the next append; a complete last line failing its CRC is skipped
  // as at open (it was never acknowledged).
  Status s = replay_lines(std::string_view(*text).substr(0, whole), from ? jpath + " (from byte " + std::to_string(from) + ")" : jpath,
                          true, into);
  if (!s.is_ok()) {
    if (new_checkpoint >= 0) ::close(new_checkpoint);
    return s;
  }
  if (reload) {
    *records = std::move(fresh);
    if (checkpoint_fd_ >= 0) ::close(checkpoint_fd_);
    checkpoint_fd_ = new_checkpoint;
  }
  offset_ = from + whole;
  return {};
}

Status Journal::refresh(std::map<std::string, Record>* records) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(flock_journal(LOCK_SH));
  Status s = refresh_locked(records);
  (void)flock_journal(LOCK_UN);
  return s;
}

// Caller holds mu_ and the exclusive flock.
Status Journal::append(const std::string& lines, bool durable) {
  const std::string jpath = dir_ + "/journal";
  struct stat js{};
  if (::fstat(fd_, &js) != 0) return Status::from_errno(errno, "stat " + jpath);
  uint64_t size = static_cast<uint64_t>(js.st_size);
  if (size > 0) {
    // A process that died mid-append left a torn line: cut it, or our line would follow it and
    // turn it into damage before the end.
    char last = '\n';
    if (::pread(fd_, &last, 1, static_cast<off_t>(size - 1)) != 1) return Status::from_errno(errno, "read " + jpath);
    if (last != '\n') {
      const uint64_t from = std::min(offset_, size);
      STOR_ASSIGN_OR_RETURN(std::string tail, read_file_from(fd_, from, jpath));
      const size_t nl = tail.rfind('\n');
      const uint64_t keep = nl == std::string::npos ? from : from + nl + 1;
      if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) return Status::from_errno(errno, "truncate " + jpath);
      size = keep;
    }
  }
  const bool caught_up = offset_ == size;
  STOR_RETURN_IF_ERROR(write_all(fd_, lines, jpath));
  ++appended_;
  if (caught_up) offset_ = size + lines.size();  // nothing of others' to read before our lines
  if (durable && ::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + jpath);
  return {};
}

Status Journal::put(const Record& r, bool durable) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(flock_journal(LOCK_EX));
  Status s = append(frame(encode_put(r)), durable);
  (void)flock_journal(LOCK_UN);
  return s;
}

Status Journal::erase(const std::string& path, bool durable) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(flock_journal(LOCK_EX));
  Status s = append(frame("E\t" + escape(path)), durable);
  (void)flock_journal(LOCK_UN);
  return s;
}

Status Journal::insert_absent(std::map<std::string, Record>* records, const std::vector<Record>& candidates,
                              bool durable, std::vector<std::string>* added) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(flock_journal(LOCK_EX));
  Status s = refresh_locked(records);
  std::string lines;
  if (s.is_ok()) {
    for (const Record& r : candidates) {
      if (!records->emplace(r.path, r).second) continue;
      lines += frame(encode_put(r));
      if (added) added->push_back(r.path);
    }
    if (!lines.empty()) s = append(lines, durable);
  }
  (void)flock_journal(LOCK_UN);
  return s;
}

uint64_t Journal::appended_since_compaction() const {
  std::lock_guard lk(mu_);
  return appended_;
}

Status Journal::compact(std::map<std::string, Record>* records) {
  std::lock_guard lk(mu_);
  STOR_RETURN_IF_ERROR(flock_journal(LOCK_EX));
  // Others' lines first: the checkpoint replaces the whole journal.
  Status s = refresh_locked(records);
  if (s.is_ok()) s = compact_locked(*records);
  (void)flock_journal(LOCK_UN);
  return s;
}

// Caller holds mu_ and the exclusive flock, and `records` includes every journal line.
Status Journal::compact_locked(const std::map<std::string, Record>& records) {
  const std::string tmp = dir_ + "/checkpoint.tmp", cpath = dir_ + "/checkpoint";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);  // no planted link
  if (fd < 0) return Status::from_errno(errno, "open " + tmp);
  std::string body;
  for (const auto& [path, r] : records) body += frame(encode_put(r));
  Status s = write_all(fd, body, tmp);
  if (s.is_ok() && ::fsync(fd) != 0) s = Status::from_errno(errno, "fsync " + tmp);
  if (!s.is_ok()) {
    ::close(fd);
    return s;
  }
  if (::rename(tmp.c_str(), cpath.c_str()) != 0) {
    ::close(fd);
    return Status::from_errno(errno, "rename " + tmp + " -> checkpoint");
  }
  // Held open from now on: other instances see a checkpoint other than theirs and reload.
  if (checkpoint_fd_ >= 0) ::close(checkpoint_fd_);
  checkpoint_fd_ = fd;
  STOR_RETURN_IF_ERROR(fsync_path(dir_, true));
  // The checkpoint now holds everything: the journal can start over.
  if (::ftruncate(fd_, 0) != 0) return Status::from_errno(errno, "truncate " + dir_ + "/journal");
  if (::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + dir_ + "/journal");
  offset_ = 0;
  appended_ = 0;
  return {};
}

}  // namespace stor::tiering::internal
