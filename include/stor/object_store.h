// Optional capability of an object-store backend: whole-namespace listings with validators, and
// reads pinned to one version of an object. Obtained with Backend::object_store(); a backend
// without it (file systems) returns nullptr and is used through the plain Backend calls.
//
// Users: the tiered store's cold tier (backends/tier/cold_tier.cc) lists a cold root with one
// request per 1000 keys instead of a directory walk plus a stat per file, and never serves bytes
// of another version than the one its record names. s3express:// and s3:// implement it; any
// other object backend (a plugin, a test fake) can, and tiering then takes the same path.
//
// Thread safety: every method may be called concurrently from any thread, on one ObjectStore
// and alongside the owning Backend's own calls; each call blocks until it is done and runs no
// callback. The object is owned by its Backend and is valid while that Backend lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stor/backend.h"
#include "stor/export.h"

namespace stor {

// One version of one object.
struct ObjectVersion {
  std::string name;      // list_objects: key relative to the listed prefix; head_object: the key
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;      // the version's validator (S3 ETag without quotes); never empty
};

// A write the server applies only if the object is still as the writer last saw it.
struct ObjectWriteCondition {
  bool if_absent = false;  // no object at the key (S3: If-None-Match: *)
  std::string if_match;    // the object's current ETag is this one (S3: If-Match), without quotes
};

class STOR_API ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Every object whose key lies under the prefix `dir` (recursively: no delimiter, all pages),
  // sorted by key, with names relative to `dir`. Keys ending in '/' (directory markers) are
  // included as they are; callers that want files only skip them. A prefix holding nothing is
  // an empty listing, not NotFound.
  virtual Result<std::vector<ObjectVersion>> list_objects(const Uri& dir) = 0;

  // The object's current version (one HEAD on S3). NotFound when there is no such object.
  virtual Result<ObjectVersion> head_object(const Uri& uri) = 0;

  // Reads [offset, offset+len) of the version `etag` into dst with one request; returns the bytes
  // read (fewer only where the object ends). Aborted (or the refused request's error) when the
  // object now holds another version: bytes of another version are never returned.
  virtual Result<size_t> read_version(const Uri& uri, const std::string& etag, uint64_t offset, size_t len,
                                      char* dst) = 0;

  // Same contract for large reads of `version` (its size and etag): the backend may split the
  // range into requests run in parallel, and may check a whole-object read against a stored
  // checksum (Corruption). Clipped to version.size. The default is one read_version.
  virtual Result<size_t> read_version_bulk(const Uri& uri, const ObjectVersion& version, uint64_t offset,
                                           size_t len, char* dst) {
    if (offset >= version.size) return size_t{0};
    if (len > version.size - offset) len = static_cast<size_t>(version.size - offset);
    return read_version(uri, version.etag, offset, len, dst);
  }

  // Opens the object for a whole rewrite (as Backend::open with kOpenWrite | kOpenCreate |
  // kOpenTruncate) that sync() / close() publish only if `cond` still holds at that moment;
  // otherwise that call fails and the object is left as it is: AlreadyExists (if_absent, an
  // object exists), Aborted (if_match, another ETag) or NotFound (if_match, no object). A server
  // that ignores the condition headers publishes unconditionally (s3rver always; Ceph RGW 16 on
  // CompleteMultipartUpload, i.e. for objects above s3.part_size). The default: Unsupported.
  virtual Result<std::unique_ptr<BackendFile>> open_for_write_if(const Uri& uri, const ObjectWriteCondition& cond) {
    (void)uri;
    (void)cond;
    return Status::Unsupported("this object store has no conditional writes");
  }
};

}  // namespace stor
