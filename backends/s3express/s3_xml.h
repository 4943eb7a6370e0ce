// Parsing of S3 XML responses (Boost.PropertyTree) and building of request bodies.
// Every parse_* function takes the raw response body and trusts nothing in it: documents nesting
// deeper than 32 levels or holding more than 200000 elements/attributes are refused before the
// (recursive) XML parser runs, numbers and timestamps are range-checked. Each is a direct fuzz
// entry point (bytes in, Result out, no I/O).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stor/status.h"

namespace stor::s3 {

struct ErrorDoc {
  std::string code;      // "NoSuchKey"
  std::string message;
  std::string request_id;
};
// False when the body is not an <Error> document.
bool parse_error(const std::string& body, ErrorDoc* out);

struct ObjectEntry {
  std::string key;
  uint64_t size = 0;
  std::string etag;
  int64_t mtime_ns = 0;
};

struct ListPage {
  std::vector<ObjectEntry> objects;
  std::vector<std::string> common_prefixes;
  bool truncated = false;
  std::string next_continuation_token;
};
// Every <Contents> must have a non-empty <Key> and a <Size> of 0..INT64_MAX.
Result<ListPage> parse_list_objects_v2(const std::string& body);

Result<std::string> parse_initiate_multipart_upload(const std::string& body);  // UploadId
Result<std::string> parse_complete_multipart_upload(const std::string& body);  // ETag
Result<std::string> parse_copy_object(const std::string& body);                // ETag

struct DeleteFailure {
  std::string key, code, message;
};
Result<std::vector<DeleteFailure>> parse_delete_result(const std::string& body);

struct SessionCredentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;
  std::chrono::system_clock::time_point expiration;
};
Result<SessionCredentials> parse_create_session(const std::string& body);

std::string xml_escape(const std::string& s);
// Parts 1..N; checksums (base64 CRCs of `algorithm`, "CRC32C" or "CRC64NVME": the element is
// Checksum<algorithm>) may be empty or hold one per part.
std::string build_complete_multipart_upload(const std::vector<std::string>& part_etags,
                                            const std::vector<std::string>& part_checksums = {},
                                            const std::string& algorithm = "CRC32C");
std::string build_delete_objects(const std::vector<std::string>& keys, bool quiet);

// "2024-01-02T03:04:05.678Z" (also "+HH:MM" offsets, no zone = UTC) -> time point. Every field
// is range-checked; times a nanosecond system_clock cannot hold (before 1677-09-21 or after
// 2262-04-11) are an error, never a wrapped value.
Result<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text);
// Nanoseconds since the Unix epoch of a UTC calendar time minus offset_seconds; fields are
// validated (month 1..12, day within the month, hour 0..23, minute 0..59, second 0..60).
// A decimal object size (ListObjectsV2 <Size>, HEAD Content-Length): digits only, 0..INT64_MAX,
// which is what a file size (off_t) can hold.
Result<uint64_t> parse_object_size(std::string_view text);
// An HTTP Last-Modified value ("Sun, 06 Nov 1994 08:49:37 GMT") -> ns since the epoch, with
// the same range checks.
Result<int64_t> parse_http_date_ns(std::string_view text);
Result<int64_t> civil_to_unix_ns(unsigned year, unsigned month, unsigned day, unsigned hour, unsigned minute,
                                 unsigned second, unsigned nanos, int64_t offset_seconds = 0);

}  // namespace stor::s3
