#include "backends/tier/cold_tier.h"

#include <algorithm>
#include <vector>

#include "backends/tier/journal.h"
#include "stor/object_store.h"

namespace stor::tiering::internal {
namespace {

constexpr uint64_t kCopyChunk = 4ull << 20;

// Computes the CRC32 of what is written to it, in order: checksum().
class CrcSink final : public BackendFile {
 public:
  void read_async(void*, size_t, uint64_t, IoCallback done) override {
    done(Status::Unsupported("checksum sink is write-only"));
  }
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    if (offset != next_) return done(Status::Internal("checksum sink needs sequential writes"));
    crc = crc32(buf, len, crc);
    next_ += len;
    done(len);
  }
  Status sync(bool) override { return {}; }
  Status truncate(uint64_t) override { return Status::Unsupported("checksum sink"); }
  Result<FileInfo> stat() override {
    FileInfo i;
    i.size = next_;
    return i;
  }
  Status close() override { return {}; }
  uint32_t crc = 0;

 private:
  uint64_t next_ = 0;
};

// A cold root on any Backend: a directory tree.
class GenericColdTier : public ColdTier {
 public:
  GenericColdTier(std::shared_ptr<Backend> backend, Uri root) : backend_(std::move(backend)), root_(std::move(root)) {}

  Uri uri(const std::string& rel) const { return child_uri(root_, rel); }
  std::string uri_of(const std::string& rel) const override { return uri(rel).to_string(); }

  static ColdObject from_info(const std::string& rel, const FileInfo& info) {
    ColdObject o{rel, info.size, info.mtime_ns, info.etag};
    // Without ETags, size and mtime are the validator.
    if (o.etag.empty()) o.etag = std::to_string(info.size) + ":" + std::to_string(info.mtime_ns);
    return o;
  }

  Result<std::vector<ColdObject>> list_all() override {
    std::vector<ColdObject> out;
    STOR_RETURN_IF_ERROR(walk("", &out));
    return out;
  }

  Status walk(const std::string& rel_dir, std::vector<ColdObject>* out) {
    auto entries = backend_->list(uri(rel_dir));
    if (!entries.is_ok()) {
      if (entries.status().code() == Code::kNotFound && rel_dir.empty()) return {};  // nothing exported yet
      return entries.status();
    }
    for (const auto& e : *entries) {
      const std::string rel = rel_dir.empty() ? e.name : rel_dir + "/" + e.name;
      if (e.type == FileType::kDirectory) {
        STOR_RETURN_IF_ERROR(walk(rel, out));
      } else if (e.type == FileType::kRegular) {
        STOR_ASSIGN_OR_RETURN(FileInfo info, backend_->stat(uri(rel)));
        out->push_back(from_info(rel, info));
      }
    }
    return {};
  }

  Result<ColdObject> stat(const std::string& rel) override {
    STOR_ASSIGN_OR_RETURN(FileInfo info, backend_->stat(uri(rel)));
    return from_info(rel, info);
  }

  Result<size_t> read(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                      char* dst) override {
    STOR_ASSIGN_OR_RETURN(auto f, backend_->open(uri(rel), OpenOptions{kOpenRead}));
    auto info = f->stat();
    if (info.is_ok() && from_info(rel, *info).etag != known.etag) {
      (void)f->close();
      return Status::Aborted(uri_of(rel) + " changed in the cold tier (validator " + known.etag + " -> " +
                                        from_info(rel, *info).etag + "): run sync");
    }
    size_t done = 0;
    while (done < len) {
      auto n = f->read(dst + done, len - done, offset + done);
      if (!n.is_ok()) {
        (void)f->close();
        return n.status();
      }
      if (*n == 0) break;
      done += *n;
    }
    STOR_RETURN_IF_ERROR(f->close());
    return done;
  }

  Status read_piece(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                    char* dst) override {
    STOR_ASSIGN_OR_RETURN(size_t n, read(rel, known, offset, len, dst));
    if (n != len)
      return Status::IoError(uri_of(rel) + ": object ended at " + std::to_string(offset + n) + ", expected " +
                             std::to_string(known.size) + " bytes");
    return {};
  }

  Result<std::unique_ptr<BackendFile>> open_upload(const std::string& rel, const ExpectedVersion* expect) override {
    if (expect) return Status::Unsupported("conditional upload");
    if (make_parents_ && (backend_->capabilities() & kCapDirectories))
      STOR_RETURN_IF_ERROR(make_parents(*backend_, root_, rel));
    return backend_->open(uri(rel), OpenOptions{kOpenWrite | kOpenCreate | kOpenTruncate});
  }

  Status remove(const std::string& rel) override { return backend_->remove(uri(rel)); }

  Status rename(const std::string& from, const std::string& to) override {
    if (make_parents_ && (backend_->capabilities() & kCapDirectories))
      STOR_RETURN_IF_ERROR(make_parents(*backend_, root_, to));
    return backend_->rename(uri(from), uri(to));
  }

 protected:
  std::shared_ptr<Backend> backend_;
  Uri root_;
  // Directory backends need parents before a file; on S3 a mkdir only writes a "DIR/" marker.
  bool make_parents_ = true;
};

// A root on an object store (stor/object_store.h): listing and reads go through the capability
// (exact request counts; every read pinned to the record's ETag); uploads go through the
// backend's file (for S3: multipart, spilling).
class ObjectColdTier final : public GenericColdTier {
 public:
  ObjectColdTier(std::shared_ptr<Backend> backend, Uri root, ObjectStore* store, bool dir_markers)
      : GenericColdTier(std::move(backend), std::move(root)), store_(store) {
    // Keys alone make the tree (list_all needs no markers): writing "d1/" and "d1/d2/" for
    // "d1/d2/f" leaves objects nobody wrote (and costs 3 requests each), unless asked for.
    make_parents_ = dir_markers;
  }

  Result<std::vector<ColdObject>> list_all() override {
    STOR_ASSIGN_OR_RETURN(std::vector<ObjectVersion> listed, store_->list_objects(root_));
    std::vector<ColdObject> out;
    out.reserve(listed.size());
    for (auto& o : listed) {
      if (o.name.empty() || o.name.back() == '/') continue;  // directory markers
      out.push_back({std::move(o.name), o.size, o.mtime_ns, std::move(o.etag)});
    }
    return out;
  }

  Result<std::unique_ptr<BackendFile>> open_upload(const std::string& rel, const ExpectedVersion* expect) override {
    if (!expect) return GenericColdTier::open_upload(rel, nullptr);
    ObjectWriteCondition cond;
    cond.if_absent = expect->absent;
    cond.if_match = expect->absent ? "" : expect->etag;
    auto f = store_->open_for_write_if(uri(rel), cond);
    if (f.is_ok() && make_parents_ && (backend_->capabilities() & kCapDirectories))
      STOR_RETURN_IF_ERROR(make_parents(*backend_, root_, rel));
    return f;
  }

  std::optional<std::string> rel_of_key(const std::string& bucket, const std::string& key) const override {
    if (bucket != root_.authority) return std::nullopt;
    std::string prefix = root_.path;
    while (!prefix.empty() && prefix.front() == '/') prefix.erase(prefix.begin());
    if (prefix.empty()) return key;
    if (key.size() <= prefix.size() + 1 || key.compare(0, prefix.size(), prefix) != 0 || key[prefix.size()] != '/')
      return std::nullopt;
    return key.substr(prefix.size() + 1);
  }

  Result<ColdObject> stat(const std::string& rel) override {
    STOR_ASSIGN_OR_RETURN(ObjectVersion v, store_->head_object(uri(rel)));
    return ColdObject{rel, v.size, v.mtime_ns, v.etag};
  }

  Result<size_t> read(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                      char* dst) override {
    if (offset >= known.size) return size_t{0};
    len = static_cast<size_t>(std::min<uint64_t>(len, known.size - offset));
    return store_->read_version(uri(rel), known.etag, offset, len, dst);
  }

 protected:
  Status read_piece(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                    char* dst) override {
    const ObjectVersion version{rel, known.size, known.mtime_ns, known.etag};
    STOR_ASSIGN_OR_RETURN(size_t n, store_->read_version_bulk(uri(rel), version, offset, len, dst));
    if (n != len) return Status::IoError("short read of " + uri_of(rel));
    return {};
  }

 private:
  ObjectStore* store_;  // owned by backend_
};

}  // namespace

Result<Uri> parse_root(const std::string& text) {
  STOR_ASSIGN_OR_RETURN(Uri root, Uri::parse(text));
  while (root.path.size() > 1 && root.path.back() == '/') root.path.pop_back();
  return root;
}

Uri child_uri(const Uri& root, const std::string& rel) {
  Uri u = root;
  if (!rel.empty()) u.path = (u.path.empty() || u.path.back() == '/' ? u.path : u.path + "/") + rel;
  return u;
}

Status make_parents(Backend& backend, const Uri& root, const std::string& rel) {
  for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
    Status s = backend.mkdir(child_uri(root, rel.substr(0, slash)), 0755);
    if (!s.is_ok() && s.code() != Code::kAlreadyExists) return s;
  }
  return {};
}

Status ColdTier::fetch_into(const std::string& rel, const ColdObject& known, BackendFile& dst, uint64_t chunk,
                            uint32_t* crc) {
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(chunk, 1), std::max<uint64_t>(known.size, 1))));
  uint32_t c = 0;
  for (uint64_t off = 0; off < known.size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), known.size - off));
    STOR_RETURN_IF_ERROR(read_piece(rel, known, off, want, buf.data()));
    c = crc32(buf.data(), want, c);
    STOR_ASSIGN_OR_RETURN(size_t w, dst.write(buf.data(), want, off));
    if (w != want) return Status::IoError("short write to the fast tier while fetching " + rel);
    off += want;
  }
  if (crc) *crc = c;
  return {};
}

Result<ColdObject> ColdTier::write_from(const std::string& rel, BackendFile& src, uint64_t size, uint32_t* crc,
                                       const ExpectedVersion& expect, bool* refused) {
  *refused = false;
  auto refuse = [&](const std::string& now) {
    *refused = true;
    return Status::Aborted(uri_of(rel) + " is not the version this file was last synced with (" +
                           (expect.absent ? std::string("expected no object") : "expected ETag " + expect.etag) +
                           ", found " + now + "): another client changed it; not overwritten");
  };
  auto opened = open_upload(rel, &expect);
  const bool checked = opened.is_ok() || opened.status().code() != Code::kUnsupported;
  if (!checked) {
    // No server-side condition: compare just before writing (before the open, which truncates).
    auto current = stat(rel);
    if (!current.is_ok() && current.status().code() != Code::kNotFound) return current.status();
    const bool exists = current.is_ok();
    if (expect.absent ? exists : (!exists || current->etag != expect.etag))
      return refuse(exists ? "ETag " + current->etag : "no object");
    opened = open_upload(rel, nullptr);
  }
  STOR_ASSIGN_OR_RETURN(auto dst, std::move(opened));
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(kCopyChunk, std::max<uint64_t>(size, 1))));
  uint32_t c = 0;
  Status s;
  for (uint64_t off = 0; off < size && s.is_ok();) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    auto n = src.read(buf.data(), want, off);
    if (!n.is_ok()) { s = n.status(); break; }
    if (*n != want) { s = Status::IoError("short read of the fast copy while exporting " + rel); break; }
    c = crc32(buf.data(), want, c);
    auto w = dst->write(buf.data(), want, off);
    if (!w.is_ok()) { s = w.status(); break; }
    if (*w != want) { s = Status::IoError("short write to " + uri_of(rel)); break; }
    off += want;
  }
  if (s.is_ok()) s = dst->sync(false);  // publishes the object (S3: where the condition is checked)
  Status closed = s.is_ok() ? dst->close() : dst->abort();
  if (s.is_ok()) s = closed;
  if (!s.is_ok()) {
    const Code code = s.code();
    if (checked && (expect.absent ? code == Code::kAlreadyExists : (code == Code::kAborted || code == Code::kNotFound)))
      return refuse(s.message());
    return s;
  }
  *crc = c;
  return stat(rel);
}

Result<uint32_t> ColdTier::checksum(const std::string& rel, const ColdObject& known, uint64_t chunk) {
  CrcSink sink;
  STOR_RETURN_IF_ERROR(fetch_into(rel, known, sink, chunk, nullptr));
  return sink.crc;
}

Result<std::unique_ptr<ColdTier>> ColdTier::make(std::shared_ptr<Backend> backend, const std::string& root_uri,
                                                 bool dir_markers) {
  if (!backend) return Status::InvalidArgument("tiering: no cold backend");
  STOR_ASSIGN_OR_RETURN(Uri root, parse_root(root_uri));
  if (ObjectStore* store = backend->object_store())
    return std::unique_ptr<ColdTier>(std::make_unique<ObjectColdTier>(std::move(backend), root, store, dir_markers));
  return std::unique_ptr<ColdTier>(std::make_unique<GenericColdTier>(std::move(backend), root));
}

}  // namespace stor::tiering::internal
