#include "backends/tier/cold_tier.h"

#include <algorithm>
#include <vector>

#include "backends/tier/journal.h"

#ifdef STOR_TIERING_WITH_S3
#include "backends/s3express/s3_backend.h"
#endif

namespace stor::tiering::internal {
namespace {

constexpr uint64_t kCopyChunk = 4ull << 20;

std::string join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

// A cold root on any Backend: a directory tree.
class GenericColdTier : public ColdTier {
 public:
  GenericColdTier(std::shared_ptr<Backend> backend, Uri root) : backend_(std::move(backend)), root_(std::move(root)) {}

  Uri uri(const std::string& rel) const {
    Uri u = root_;
    u.path = join(root_.path, rel);
    return u;
  }
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
      const std::string rel = join(rel_dir, e.name);
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

  Result<ColdObject> write_from(const std::string& rel, BackendFile& src, uint64_t size, uint32_t* crc) override {
    if (make_parents_ && (backend_->capabilities() & kCapDirectories)) {
      // Parents first; AlreadyExists is the normal case.
      for (size_t slash = rel.find('/'); slash != std::string::npos; slash = rel.find('/', slash + 1)) {
        Status s = backend_->mkdir(uri(rel.substr(0, slash)), 0755);
        if (!s.is_ok() && s.code() != Code::kAlreadyExists) return s;
      }
    }
    STOR_ASSIGN_OR_RETURN(auto dst, backend_->open(uri(rel), OpenOptions{kOpenWrite | kOpenCreate | kOpenTruncate}));
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
    if (s.is_ok()) s = dst->sync(false);
    Status closed = dst->close();
    if (s.is_ok()) s = closed;
    STOR_RETURN_IF_ERROR(s);
    *crc = c;
    return stat(rel);
  }

  Status remove(const std::string& rel) override { return backend_->remove(uri(rel)); }

 protected:
  std::shared_ptr<Backend> backend_;
  Uri root_;
  // Directory backends need parents before a file; on S3 a mkdir only writes a "DIR/" marker.
  bool make_parents_ = true;
};

#ifdef STOR_TIERING_WITH_S3
// S3 root: "bucket/prefix". Listing and reads go straight to the client (exact request counts,
// If-Match on every ranged GET); uploads go through the backend's file (multipart, spilling).
class S3ColdTier final : public GenericColdTier {
 public:
  S3ColdTier(std::shared_ptr<Backend> backend, Uri root, s3::S3Client* client, std::string bucket, std::string prefix,
             bool dir_markers)
      : GenericColdTier(std::move(backend), std::move(root)), client_(client), bucket_(std::move(bucket)),
        prefix_(std::move(prefix)) {
    // Keys alone make the tree (list_all needs no markers): writing "d1/" and "d1/d2/" for
    // "d1/d2/f" leaves objects nobody wrote (and costs 3 requests each), unless asked for.
    make_parents_ = dir_markers;
  }

  std::string key(const std::string& rel) const { return join(prefix_, rel); }

  Result<std::vector<ColdObject>> list_all() override {
    const std::string list_prefix = prefix_.empty() ? "" : prefix_ + "/";
    STOR_ASSIGN_OR_RETURN(s3::ListPage page, client_->list_all(bucket_, list_prefix, "", 1000));
    std::vector<ColdObject> out;
    for (const auto& o : page.objects) {
      if (o.key.size() <= list_prefix.size() || o.key.back() == '/') continue;  // directory markers
      out.push_back({o.key.substr(list_prefix.size()), o.size, o.mtime_ns, o.etag});
    }
    return out;
  }

  Result<ColdObject> stat(const std::string& rel) override {
    STOR_ASSIGN_OR_RETURN(s3::ObjectInfo info, client_->head_object(bucket_, key(rel)));
    return ColdObject{rel, info.size, info.mtime_ns, info.etag};
  }

  Result<size_t> read(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                      char* dst) override {
    if (offset >= known.size) return size_t{0};
    len = static_cast<size_t>(std::min<uint64_t>(len, known.size - offset));
    return client_->get_range(bucket_, key(rel), offset, len, dst, known.etag);
  }

  Status fetch_chunk(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len, char* dst) {
    s3::ObjectInfo info;
    info.size = known.size;
    info.etag = known.etag;
    STOR_ASSIGN_OR_RETURN(size_t n, client_->read_object(bucket_, key(rel), info, offset, len, dst));
    if (n != len) return Status::IoError("short read of " + uri_of(rel));
    return {};
  }

 private:
  s3::S3Client* client_;
  std::string bucket_, prefix_;
  friend class ColdTier;
};
#endif

}  // namespace

Status ColdTier::fetch_into(const std::string& rel, const ColdObject& known, BackendFile& dst, uint64_t chunk,
                            uint32_t* crc) {
  std::vector<char> buf(static_cast<size_t>(std::min<uint64_t>(std::max<uint64_t>(chunk, 1), std::max<uint64_t>(known.size, 1))));
  uint32_t c = 0;
  for (uint64_t off = 0; off < known.size;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), known.size - off));
#ifdef STOR_TIERING_WITH_S3
    if (auto* s3tier = dynamic_cast<S3ColdTier*>(this)) {
      STOR_RETURN_IF_ERROR(s3tier->fetch_chunk(rel, known, off, want, buf.data()));
    } else
#endif
    {
      STOR_ASSIGN_OR_RETURN(size_t n, read(rel, known, off, want, buf.data()));
      if (n != want)
        return Status::IoError(uri_of(rel) + ": object ended at " + std::to_string(off + n) + ", expected " +
                                          std::to_string(known.size) + " bytes");
    }
    c = crc32(buf.data(), want, c);
    STOR_ASSIGN_OR_RETURN(size_t w, dst.write(buf.data(), want, off));
    if (w != want) return Status::IoError("short write to the fast tier while fetching " + rel);
    off += want;
  }
  if (crc) *crc = c;
  return {};
}

Result<std::unique_ptr<ColdTier>> ColdTier::make(std::shared_ptr<Backend> backend, const std::string& root_uri,
                                                 bool dir_markers) {
  if (!backend) return Status::InvalidArgument("tiering: no cold backend");
  STOR_ASSIGN_OR_RETURN(Uri root, Uri::parse(root_uri));
  while (root.path.size() > 1 && root.path.back() == '/') root.path.pop_back();
#ifdef STOR_TIERING_WITH_S3
  if (s3::S3Client* client = s3::s3_client_of(*backend)) {
    std::string bucket, prefix;
    STOR_RETURN_IF_ERROR(s3::bucket_and_key(root, &bucket, &prefix));
    return std::unique_ptr<ColdTier>(
        std::make_unique<S3ColdTier>(std::move(backend), root, client, std::move(bucket), std::move(prefix), dir_markers));
  }
#else
  (void)dir_markers;
#endif
  return std::unique_ptr<ColdTier>(std::make_unique<GenericColdTier>(std::move(backend), root));
}

}  // namespace stor::tiering::internal
