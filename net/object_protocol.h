// The object-target protocol spoken between RemoteObjectTarget and stor-target, on top of a
// transport Channel. Control bytes of every request:
//   u64 offset | u64 length | u32 flags | u16 name_len | name (name_len bytes)
// Reply control bytes: empty, except stat (u64 size | i64 mtime_ns). Read data is the reply
// payload; write data is the request payload.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stor/status.h"

namespace stor::transport {

enum class ObjectOp : uint16_t {
  kRead = 1,      // offset, length -> payload (short at end of object)
  kWrite = 2,     // offset, payload: all bytes are written or the call fails
  kSync = 3,      // flags & kSyncDataOnly: fdatasync
  kTruncate = 4,  // length = new size (creates the object when missing)
  kStat = 5,      // -> size, mtime
  kRemove = 6,
  kList = 7,      // name empty; offset = entries to skip -> payload: entries (see below), in name order
};

// kList reply payload: repeated `u16 name_len | name | u64 size`, as many whole entries as fit the
// caller's reply capacity; fewer than asked for (or none) means the end of the listing.
struct ObjectEntry {
  std::string name;
  uint64_t size = 0;
};
Result<std::vector<ObjectEntry>> decode_object_entries(std::string_view bytes);

inline constexpr uint32_t kSyncDataOnly = 1;
inline constexpr size_t kMaxObjectName = 1024;

struct ObjectCall {
  std::string name;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint32_t flags = 0;
};

std::string encode_object_call(const ObjectCall& c);
// Corruption when the bytes do not form a call (the name itself is checked separately).
Result<ObjectCall> decode_object_call(std::string_view bytes);

// A relative path of 1..kMaxObjectName bytes: components separated by '/', none empty, "." or
// "..", no NUL. InvalidArgument otherwise, so a name never escapes the target's directory.
Status validate_object_name(std::string_view name);

struct ObjectInfo {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};
std::string encode_object_info(const ObjectInfo& i);
Result<ObjectInfo> decode_object_info(std::string_view bytes);

}  // namespace stor::transport
