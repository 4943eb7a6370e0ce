#include "net/object_protocol.h"

#include "net/wire.h"

namespace stor::transport {

std::string encode_object_call(const ObjectCall& c) {
  std::string out;
  out.reserve(22 + c.name.size());
  put_u64(out, c.offset);
  put_u64(out, c.length);
  put_u32(out, c.flags);
  put_u16(out, static_cast<uint16_t>(c.name.size()));
  out += c.name;
  return out;
}

Result<ObjectCall> decode_object_call(std::string_view b) {
  if (b.size() < 22) return Status::Corruption("object call of " + std::to_string(b.size()) + " bytes is too short");
  ObjectCall c;
  c.offset = get_u64(b.data());
  c.length = get_u64(b.data() + 8);
  c.flags = get_u32(b.data() + 16);
  size_t name_len = get_u16(b.data() + 20);
  if (b.size() != 22 + name_len)
    return Status::Corruption("object call names a " + std::to_string(name_len) + "-byte name but carries " +
                                         std::to_string(b.size() - 22));
  c.name.assign(b.substr(22));
  return c;
}

Status validate_object_name(std::string_view name) {
  auto bad = [&](const char* why) {
    std::string shown(name.substr(0, 100));
    for (char& ch : shown)
      if (static_cast<unsigned char>(ch) < 0x20) ch = '?';
    return Status::InvalidArgument("object name '" + shown + "' " + why);
  };
  if (name.empty()) return bad("is empty");
  if (name.size() > kMaxObjectName) return bad("is longer than 1024 bytes");
  if (name.find('\0') != std::string_view::npos) return bad("contains a NUL byte");
  if (name.front() == '/') return bad("is absolute");
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view comp = name.substr(i, j - i);
    if (comp.empty()) return bad("has an empty path component");
    if (comp == "." || comp == "..") return bad("has a '.' or '..' component");
    i = j + 1;
  }
  return {};
}

Result<std::vector<ObjectEntry>> decode_object_entries(std::string_view b) {
  std::vector<ObjectEntry> out;
  size_t at = 0;
  while (at < b.size()) {
    if (b.size() - at < 2) return Status::Corruption("object listing ends inside an entry");
    size_t n = get_u16(b.data() + at);
    if (b.size() - at < 2 + n + 8) return Status::Corruption("object listing ends inside an entry");
    ObjectEntry e;
    e.name.assign(b.substr(at + 2, n));
    e.size = get_u64(b.data() + at + 2 + n);
    STOR_RETURN_IF_ERROR(validate_object_name(e.name));
    out.push_back(std::move(e));
    at += 2 + n + 8;
  }
  return out;
}

std::string encode_object_info(const ObjectInfo& i) {
  std::string out;
  put_u64(out, i.size);
  put_u64(out, static_cast<uint64_t>(i.mtime_ns));
  return out;
}

Result<ObjectInfo> decode_object_info(std::string_view b) {
  if (b.size() != 16) return Status::Corruption("stat reply of " + std::to_string(b.size()) + " bytes (want 16)");
  return ObjectInfo{get_u64(b.data()), static_cast<int64_t>(get_u64(b.data() + 8))};
}

}  // namespace stor::transport
