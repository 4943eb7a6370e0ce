// Access to the cold root of a tiered namespace. Any Backend works (list + stat, file reads);
// a backend with the ObjectStore capability (stor/object_store.h: s3express://, s3://, any other
// object backend) is listed and read through it, so that on S3 a listing is one ListObjectsV2
// per 1000 keys (with ETags, no HEADs) and a ranged read is exactly one GET pinned to its ETag.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stor/backend.h"

namespace stor::tiering::internal {

struct ColdObject {
  std::string path;  // relative to the cold root
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;  // "" when the backend has none: then "size:mtime" stands in
};

// What an upload expects to replace: no object, or the version with this ETag. An upload that
// finds anything else is refused rather than overwrite another client's change.
struct ExpectedVersion {
  bool absent = false;
  std::string etag;
};

// Path helpers shared by the fast and the cold side of a tiered namespace.
// A root URI ("nvme:///a/b/", "s3express://bucket/prefix") without trailing slashes.
Result<Uri> parse_root(const std::string& text);
// root with rel ("d/f", no leading '/') appended to its path; "" gives root itself.
Uri child_uri(const Uri& root, const std::string& rel);
// mkdir of every parent directory of rel under root, outermost first; AlreadyExists is fine.
Status make_parents(Backend& backend, const Uri& root, const std::string& rel);

class ColdTier {
 public:
  virtual ~ColdTier() = default;
  // dir_markers: on S3, also write an empty "DIR/" object for each parent of an uploaded file.
  static Result<std::unique_ptr<ColdTier>> make(std::shared_ptr<Backend> backend, const std::string& root_uri,
                                                bool dir_markers = false);

  virtual Result<std::vector<ColdObject>> list_all() = 0;
  virtual Result<ColdObject> stat(const std::string& rel) = 0;
  // Reads [offset, offset+len) of the object as described by `known`; fails if it has changed.
  virtual Result<size_t> read(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                              char* dst) = 0;
  // Copies the whole object into dst (from offset 0) in pieces of `chunk` bytes. On an object
  // store each piece is one read_version_bulk (for S3: s3.part_size ranged GETs in parallel).
  Status fetch_into(const std::string& rel, const ColdObject& known, BackendFile& dst, uint64_t chunk, uint32_t* crc);
  // The CRC32 of the whole version `known`, read as fetch_into reads it (nothing is stored).
  Result<uint32_t> checksum(const std::string& rel, const ColdObject& known, uint64_t chunk);
  // Uploads `size` bytes from src (offset 0 on); returns the new object's description. The CRC32
  // of the bytes sent is stored in *crc. Only over `expect`: on an object store as a conditional
  // write (S3 If-None-Match / If-Match, checked by the server when the object is published); on
  // other backends (and object stores without conditional writes) by a stat just before, which
  // leaves a window of one upload. A refused upload sets *refused and fails with Aborted.
  Result<ColdObject> write_from(const std::string& rel, BackendFile& src, uint64_t size, uint32_t* crc,
                                const ExpectedVersion& expect, bool* refused);
  virtual Status remove(const std::string& rel) = 0;
  // Moves the object (S3: server-side copy, then delete of the source; directories: rename).
  virtual Status rename(const std::string& from, const std::string& to) = 0;
  virtual std::string uri_of(const std::string& rel) const = 0;
  // The path under the root of the object `key` of `bucket` (bucket notifications); nullopt
  // when it lies outside the root, or the cold tier is not an object store.
  virtual std::optional<std::string> rel_of_key(const std::string& bucket, const std::string& key) const {
    (void)bucket;
    (void)key;
    return std::nullopt;
  }

 protected:
  // Opens rel for the upload: with `expect`, a conditional write (Unsupported where the backend
  // has none); without, a plain one.
  virtual Result<std::unique_ptr<BackendFile>> open_upload(const std::string& rel, const ExpectedVersion* expect) = 0;
  // One piece of fetch_into: exactly len bytes at offset of the version `known`, else an error.
  virtual Status read_piece(const std::string& rel, const ColdObject& known, uint64_t offset, size_t len,
                            char* dst) = 0;
};

}  // namespace stor::tiering::internal
