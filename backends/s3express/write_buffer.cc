#include "backends/s3express/write_buffer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>
#include <random>

#include "backends/s3express/crypto.h"

namespace stor::s3 {

// ---- PartBuffer ----

PartBuffer::PartBuffer(size_t len) {
  if (len == 0) return;
  void* p = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  data_ = static_cast<char*>(p);
  len_ = len;
}

PartBuffer::~PartBuffer() {
  if (data_) ::munmap(data_, len_);
}

PartBuffer& PartBuffer::operator=(PartBuffer&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(data_, len_);
    data_ = o.data_, len_ = o.len_;
    o.data_ = nullptr, o.len_ = 0;
  }
  return *this;
}

// ---- PartLayout ----

uint64_t PartLayout::start(size_t i) const {
  uint64_t off = 0;
  for (size_t g = 0; g * kGroup < i; ++g) {
    const size_t n = std::min(kGroup, i - g * kGroup);
    off += n * part_size * (g + 1);
  }
  return off;
}

size_t PartLayout::index(uint64_t offset) const {
  uint64_t group_start = 0;
  for (size_t g = 0; g < kMaxParts / kGroup; ++g) {
    const uint64_t psize = part_size * (g + 1);
    const uint64_t group_bytes = psize * kGroup;
    if (offset < group_start + group_bytes) return g * kGroup + static_cast<size_t>((offset - group_start) / psize);
    group_start += group_bytes;
  }
  return kMaxParts;
}

// ---- ExtentSet ----

void ExtentSet::add(uint64_t begin, uint64_t end) {
  if (begin >= end) return;
  auto it = ranges_.upper_bound(begin);
  if (it != ranges_.begin() && std::prev(it)->second >= begin) --it;
  while (it != ranges_.end() && it->first <= end) {
    begin = std::min(begin, it->first);
    end = std::max(end, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(begin, end);
}

uint64_t ExtentSet::covered(uint64_t begin, uint64_t end) const {
  uint64_t n = 0;
  for_each(begin, end, [&](uint64_t b, uint64_t e) { n += e - b; });
  return n;
}

void ExtentSet::trim(uint64_t from) {
  auto it = ranges_.lower_bound(from);
  ranges_.erase(it, ranges_.end());
  if (!ranges_.empty() && ranges_.rbegin()->second > from) ranges_.rbegin()->second = from;
}

// ---- SpillFile ----

SpillFile::~SpillFile() { reset(); }

void SpillFile::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status SpillFile::write(const char* src, size_t len, uint64_t offset) {
  if (fd_ < 0) {
    int fd = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      // File systems without O_TMPFILE: a named file, unlinked at once.
      std::string tmpl = dir_ + "/stor-s3-XXXXXX";
      std::vector<char> name(tmpl.begin(), tmpl.end());
      name.push_back('\0');
      fd = ::mkostemp(name.data(), O_CLOEXEC);
      if (fd < 0) return Status::from_errno(errno, "s3 write buffer: create temporary file in " + dir_);
      ::unlink(name.data());
    }
    fd_ = fd;
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, src + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::from_errno(n < 0 ? errno : ENOSPC, "s3 write buffer: write temporary file in " + dir_);
    done += static_cast<size_t>(n);
  }
  return Status::ok();
}

Status SpillFile::read(char* dst, size_t len, uint64_t offset) const {
  size_t done = 0;
  while (fd_ >= 0 && done < len) {
    ssize_t r = ::pread(fd_, dst + done, len - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::from_errno(errno, "s3 write buffer: read temporary file");
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  if (done < len) std::memset(dst + done, 0, len - done);  // beyond the file's end: a hole
  return Status::ok();
}

void SpillFile::release(uint64_t offset, uint64_t len) {
  if (fd_ >= 0) (void)::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                                  static_cast<off_t>(len));
}

// ---- ObjectWriter ----

ObjectWriter::ObjectWriter(std::shared_ptr<S3Client> client, std::string bucket, std::string key, Options opts,
                           ObjectInfo base, bool dirty)
    : client_(std::move(client)), bucket_(std::move(bucket)), key_(std::move(key)), opts_(std::move(opts)), condition_(opts_.condition),
      layout_{std::max<uint64_t>(opts_.part_size, 1)}, spill_(opts_.tmp_dir) {
  reset_locked(std::move(base));
  dirty_ = dirty;
}

ObjectWriter::~ObjectWriter() {
  std::unique_lock<std::mutex> lock(mu_);
  wait_idle_locked(lock);
  if (!upload_id_.empty()) abort_locked(lock);
}

void ObjectWriter::reset_locked(ObjectInfo base) {
  base_ = std::move(base);
  base_limit_ = size_ = base_.size;
  dirty_ = false;
  parts_.clear();
  memory_parts_ = 0;
  upload_id_.clear();
  spill_.reset();
  spares_.clear();  // an idle handle holds no part memory
}

PartBuffer ObjectWriter::take_buffer_locked(size_t len) {
  for (auto it = spares_.begin(); it != spares_.end(); ++it) {
    if (it->size() != len) continue;
    PartBuffer buf = std::move(*it);
    spares_.erase(it);
    return buf;
  }
  return PartBuffer(len);
}

void ObjectWriter::give_back_locked(PartBuffer buf) {
  if (buf.empty() || spares_.size() > opts_.max_in_flight) return;  // freed here
  spares_.push_back(std::move(buf));
}

uint64_t ObjectWriter::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

ObjectWriter::Part& ObjectWriter::part_locked(size_t i) { return parts_[i]; }

Status ObjectWriter::check_writable_locked(uint64_t begin, uint64_t end) const {
  if (begin >= end) return Status::ok();
  for (auto it = parts_.lower_bound(layout_.index(begin)); it != parts_.end() && layout_.start(it->first) < end; ++it) {
    if (it->second.state != PartState::kFilling) {
      const uint64_t s = layout_.start(it->first);
      return Status::Unsupported(opts_.describe + ": bytes [" + std::to_string(s) + ", " + std::to_string(s + layout_.len(it->first)) +
                        ") were already streamed to S3 as part " + std::to_string(it->first + 1) +
                        " and are no longer held; sync() first to rewrite or re-read them");
    }
  }
  return Status::ok();
}

Status ObjectWriter::write(const char* src, size_t len, uint64_t offset) {
  std::unique_lock<std::mutex> lock(mu_);
  STOR_RETURN_IF_ERROR(failed_);
  if (len == 0) return Status::ok();
  const uint64_t end = offset + len;
  if (end < offset || end > layout_.max_size())
    return Status::NoSpace(opts_.describe + ": write beyond the largest object a multipart upload of " +
                                      std::to_string(layout_.part_size) + "-byte parts can hold (" +
                                      std::to_string(layout_.max_size()) + " bytes); raise s3.part_size");
  STOR_RETURN_IF_ERROR(check_writable_locked(offset, end));
  for (size_t i = layout_.index(offset); i < PartLayout::kMaxParts && layout_.start(i) < end; ++i) {
    const uint64_t ps = layout_.start(i), pe = ps + layout_.len(i);
    const uint64_t b = std::max(offset, ps), e = std::min(end, pe);
    Part& p = part_locked(i);
    if (p.mem.empty() && !p.spilled) {
      if (memory_parts_ < opts_.max_memory_parts) {
        p.mem = take_buffer_locked(static_cast<size_t>(layout_.len(i)));
        ++memory_parts_;
      } else {
        p.spilled = true;  // too many parts being filled at once: this one goes to disk
      }
    }
    if (p.spilled) STOR_RETURN_IF_ERROR(spill_.write(src + (b - offset), static_cast<size_t>(e - b), b));
    else std::memcpy(p.mem.data() + (b - ps), src + (b - offset), static_cast<size_t>(e - b));
    p.written.add(b, e);
  }
  size_ = std::max(size_, end);
  dirty_ = true;
  return submit_ready_locked(lock);
}

Result<bool> ObjectWriter::write_borrowed(const char* src, size_t len, uint64_t offset,
                                          std::function<void(Status)> done) {
  std::unique_lock<std::mutex> lock(mu_);
  STOR_RETURN_IF_ERROR(failed_);
  const size_t i = layout_.index(offset);
  auto qualifies = [&] {
    return i > 0 && i < PartLayout::kMaxParts && layout_.start(i) == offset && layout_.len(i) == len &&
           parts_.count(i) == 0;
  };
  if (!qualifies()) return false;
  // Back-pressure as for copied parts.
  cv_.wait(lock, [&] { return in_flight_ < std::max(1u, opts_.max_in_flight); });
  STOR_RETURN_IF_ERROR(failed_);
  if (!qualifies()) return false;  // another write got there while this one waited
  STOR_RETURN_IF_ERROR(ensure_upload_locked(lock));
  Part& p = parts_[i];
  p.written.add(offset, offset + len);
  p.state = PartState::kUploading;
  size_ = std::max<uint64_t>(size_, offset + len);
  dirty_ = true;
  ++in_flight_;
  const std::string upload_id = upload_id_;
  client_->pool().post([this, i, upload_id, src, len, done = std::move(done)] {
    Result<S3Client::UploadedPart> r = client_->upload_part(bucket_, key_, upload_id, static_cast<int>(i + 1), src, len);
    const Status st = r.status();
    {
      std::lock_guard<std::mutex> guard(mu_);
      part_uploaded_locked(i, std::move(r));
    }
    done(st);  // after the last use of src; `this` may go once in_flight_ is 0 and done has run
  });
  // The part before may now be complete and no longer the last one.
  STOR_RETURN_IF_ERROR(submit_ready_locked(lock));
  return true;
}

Status ObjectWriter::submit_ready_locked(std::unique_lock<std::mutex>& lock) {
  // A part goes once fully written and not the last one (so a one-part object stays a PutObject).
  for (auto it = parts_.begin(); it != parts_.end(); ++it) {
    const size_t i = it->first;
    const uint64_t ps = layout_.start(i), len = layout_.len(i);
    if (ps + len >= size_) break;
    Part& p = it->second;
    if (p.state == PartState::kFilling && p.written.covered(ps, ps + len) == len)
      STOR_RETURN_IF_ERROR(submit_locked(lock, i, len));
  }
  return Status::ok();
}

Status ObjectWriter::ensure_upload_locked(std::unique_lock<std::mutex>&) {
  if (!upload_id_.empty()) return Status::ok();
  if (write_id_.empty()) {
    std::random_device rd;
    uint32_t raw[4] = {rd(), rd(), rd(), rd()};
    write_id_ = to_hex(raw, sizeof raw);
  }
  std::map<std::string, std::string> meta{{"stor-part-size", std::to_string(layout_.part_size)},
                                          {"stor-write-id", write_id_}};
  Result<std::string> id = client_->create_multipart_upload(bucket_, key_, meta);
  if (!id.is_ok()) {
    failed_ = id.status();
    return failed_;
  }
  upload_id_ = std::move(id).value();
  return Status::ok();
}

Status ObjectWriter::submit_locked(std::unique_lock<std::mutex>& lock, size_t i, uint64_t len) {
  // Back-pressure: the writer waits while max_in_flight parts are on their way.
  cv_.wait(lock, [&] { return in_flight_ < std::max(1u, opts_.max_in_flight); });
  STOR_RETURN_IF_ERROR(failed_);
  STOR_RETURN_IF_ERROR(ensure_upload_locked(lock));
  Part& p = parts_[i];
  PartBuffer buf;
  const uint64_t ps = layout_.start(i);
  const bool in_memory = !p.mem.empty();
  if (!p.mem.empty() && len == p.mem.size() && p.written.covered(ps, ps + len) == len) {
    buf = std::move(p.mem);  // the common case: a full in-memory part, no copy
  } else {
    buf = take_buffer_locked(static_cast<size_t>(len));
    STOR_RETURN_IF_ERROR(assemble_locked(lock, i, ps, ps + len, buf.data()));  // every byte
  }
  if (in_memory) --memory_parts_;
  give_back_locked(std::move(p.mem));
  if (p.spilled) spill_.release(ps, len);
  p.state = PartState::kUploading;
  ++in_flight_;
  const std::string upload_id = upload_id_;
  auto shared_buf = std::make_shared<PartBuffer>(std::move(buf));
  client_->pool().post([this, i, upload_id, shared_buf] {
    Result<S3Client::UploadedPart> r = client_->upload_part(bucket_, key_, upload_id, static_cast<int>(i + 1),
                                                            shared_buf->data(), shared_buf->size());
    std::lock_guard<std::mutex> guard(mu_);
    give_back_locked(std::move(*shared_buf));  // spare or freed before the slot is: the memory bound holds
    part_uploaded_locked(i, std::move(r));
  });
  return Status::ok();
}

void ObjectWriter::part_uploaded_locked(size_t i, Result<S3Client::UploadedPart> r) {
  auto it = parts_.find(i);
  if (r.is_ok() && it != parts_.end()) {
    it->second.uploaded = std::move(r).value();
    it->second.state = PartState::kDone;
  } else if (!r.is_ok() && failed_.is_ok()) {
    failed_ = r.status();
  }
  --in_flight_;
  cv_.notify_all();
}

Status ObjectWriter::assemble_locked(std::unique_lock<std::mutex>&, size_t i, uint64_t begin, uint64_t end,
                                     char* dst) {
  const size_t n = static_cast<size_t>(end - begin);
  // Underneath: the object as it was at open, then zeros. Base bytes that are all overwritten
  // are not fetched (a GET for nothing, and a rewrite must not depend on the old version).
  size_t from_base = 0;
  auto written = parts_.find(i);
  if (begin < base_limit_) {
    from_base = static_cast<size_t>(std::min<uint64_t>(end, base_limit_) - begin);
    if (written != parts_.end() && written->second.written.covered(begin, begin + from_base) == from_base)
      from_base = 0;
  }
  if (from_base > 0) {
    STOR_ASSIGN_OR_RETURN(size_t got, client_->read_object(bucket_, key_, base_, begin, from_base, dst));
    if (got != from_base)
      return Status::IoError(opts_.describe + ": object shrank while being rewritten (read " +
                                        std::to_string(got) + " of " + std::to_string(from_base) + " bytes at " +
                                        std::to_string(begin) + ")");
  }
  std::memset(dst + from_base, 0, n - from_base);
  if (written == parts_.end()) return Status::ok();
  const Part& p = written->second;
  const uint64_t ps = layout_.start(i);
  Status st;
  p.written.for_each(begin, end, [&](uint64_t b, uint64_t e) {
    if (!st.is_ok()) return;
    if (p.spilled) st = spill_.read(dst + (b - begin), static_cast<size_t>(e - b), b);
    else std::memcpy(dst + (b - begin), p.mem.data() + (b - ps), static_cast<size_t>(e - b));
  });
  return st;
}

Result<size_t> ObjectWriter::read(char* dst, size_t len, uint64_t offset) {
  std::unique_lock<std::mutex> lock(mu_);
  if (offset >= size_ || len == 0) return size_t{0};
  const uint64_t end = std::min<uint64_t>(size_, offset + len);
  STOR_RETURN_IF_ERROR(check_writable_locked(offset, end));
  for (size_t i = layout_.index(offset); i < PartLayout::kMaxParts && layout_.start(i) < end; ++i) {
    const uint64_t ps = layout_.start(i);
    const uint64_t b = std::max(offset, ps), e = std::min(end, ps + layout_.len(i));
    STOR_RETURN_IF_ERROR(assemble_locked(lock, i, b, e, dst + (b - offset)));
  }
  return static_cast<size_t>(end - offset);
}

Status ObjectWriter::truncate(uint64_t size) {
  std::unique_lock<std::mutex> lock(mu_);
  STOR_RETURN_IF_ERROR(failed_);
  if (size > layout_.max_size())
    return Status::NoSpace(opts_.describe + ": size beyond the largest object a multipart upload can hold");
  if (size < size_) {
    wait_idle_locked(lock);
    STOR_RETURN_IF_ERROR(failed_);
    if (layout_.index(size) < PartLayout::kMaxParts && layout_.start(layout_.index(size)) < size)
      STOR_RETURN_IF_ERROR(check_writable_locked(size, size + 1));
    // Uploaded parts wholly beyond the new end are simply left out of the completed object; one
    // the new end cuts through cannot be rewritten.
    for (auto it = parts_.lower_bound(layout_.index(size)); it != parts_.end();) {
      const uint64_t ps = layout_.start(it->first);
      Part& p = it->second;
      if (ps >= size) {
        if (!p.mem.empty()) --memory_parts_;
        if (p.spilled) spill_.release(ps, layout_.len(it->first));
        it = parts_.erase(it);
        continue;
      }
      p.written.trim(size);
      if (!p.mem.empty()) {
        // Zero the cut tail (and give its pages back): a later extension must read zeros.
        const size_t keep = static_cast<size_t>(size - ps);
        std::memset(p.mem.data() + keep, 0, p.mem.size() - keep);
      }
      ++it;
    }
    base_limit_ = std::min(base_limit_, size);
  }
  size_ = size;
  dirty_ = true;
  return submit_ready_locked(lock);
}

void ObjectWriter::wait_idle_locked(std::unique_lock<std::mutex>& lock) {
  cv_.wait(lock, [&] { return in_flight_ == 0; });
}

void ObjectWriter::abort_locked(std::unique_lock<std::mutex>& lock) {
  wait_idle_locked(lock);
  if (!upload_id_.empty()) {
    // Parts of an unfinished upload are billed and never become an object. Some servers (s3rver)
    // lack AbortMultipartUpload; the error is then already the one being reported.
    (void)client_->abort_multipart_upload(bucket_, key_, upload_id_);
    upload_id_.clear();
  }
}

Result<ObjectInfo> ObjectWriter::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  wait_idle_locked(lock);
  auto fail = [&](Status s) -> Status {
    if (failed_.is_ok()) failed_ = s;
    abort_locked(lock);
    return failed_;
  };
  if (!failed_.is_ok()) return fail(failed_);
  if (!dirty_) return base_;

  ObjectInfo out;
  out.size = size_;
  const bool any_uploaded = std::any_of(parts_.begin(), parts_.end(),
                                        [](const auto& kv) { return kv.second.state != PartState::kFilling; });
  if (!any_uploaded && size_ <= layout_.len(0)) {
    // Parts uploaded earlier were all truncated away: drop that upload.
    if (!upload_id_.empty()) abort_locked(lock);
    // Small enough for one part: a single PutObject (which also stores the whole CRC32C).
    PartBuffer buf(static_cast<size_t>(size_));
    if (size_ > 0) {
      Status s = assemble_locked(lock, 0, 0, size_, buf.data());
      if (!s.is_ok()) return fail(s);
    }
    Result<std::string> etag = client_->put_object(bucket_, key_, size_ ? buf.data() : "", buf.size(), condition_);
    if (!etag.is_ok()) return fail(etag.status());
    out.etag = std::move(etag).value();
  } else {
    const size_t count = size_ == 0 ? 1 : layout_.index(size_ - 1) + 1;
    for (size_t i = 0; i < count; ++i) {
      auto it = parts_.find(i);
      if (it != parts_.end() && it->second.state != PartState::kFilling) continue;
      const uint64_t len = std::min<uint64_t>(layout_.len(i), size_ - layout_.start(i));
      Status s = submit_locked(lock, i, len);
      if (!s.is_ok()) return fail(s);
    }
    wait_idle_locked(lock);
    if (!failed_.is_ok()) return fail(failed_);
    std::vector<S3Client::UploadedPart> done;
    for (size_t i = 0; i < count; ++i) done.push_back(parts_.at(i).uploaded);
    Result<std::string> etag = client_->complete_multipart_upload(bucket_, key_, upload_id_, done, condition_);
    if (!etag.is_ok()) {
      // The answer to a Complete that did succeed can be lost; its retry then fails. Our object
      // is recognised by its size and the write id it carries.
      Result<ObjectInfo> head = client_->head_object(bucket_, key_);
      auto id = head.is_ok() ? head->metadata.find("stor-write-id") : std::map<std::string, std::string>::iterator{};
      if (!head.is_ok() || head->size != size_ || id == head->metadata.end() || id->second != write_id_)
        return fail(etag.status());
      etag = head->etag;
    }
    out.etag = std::move(etag).value();
    out.metadata = {{"stor-part-size", std::to_string(layout_.part_size)}, {"stor-write-id", write_id_}};
    upload_id_.clear();
  }
  write_id_.clear();
  if (!condition_.empty()) condition_ = WriteCondition{false, out.etag};
  // Later writes through this handle start over from the object just written.
  reset_locked(out);
  return out;
}

}  // namespace stor::s3
