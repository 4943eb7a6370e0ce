#include "net/wire.h"

#include <cstdio>
#include <cstring>

#include "net/transport.h"

namespace stor::transport {

namespace {

void store16(std::byte* p, uint16_t v) {
  for (int i = 0; i < 2; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void store32(std::byte* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void store64(std::byte* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}

uint32_t fnv1a(const FrameBytes& b) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < b.size(); ++i) {
    // The checksum field itself counts as zeros.
    uint8_t c = (i >= 28 && i < 32) ? 0 : static_cast<uint8_t>(b[i]);
    h = (h ^ c) * 16777619u;
  }
  return h;
}

}  // namespace

uint16_t get_u16(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}
uint32_t get_u32(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}
uint64_t get_u64(const void* p) {
  auto b = static_cast<const unsigned char*>(p);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}
void put_u16(std::string& out, uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

FrameBytes encode_frame_header(const FrameHeader& h) {
  FrameBytes b{};
  store32(&b[0], kFrameMagic);
  store16(&b[4], kFrameVersion);
  store16(&b[6], h.opcode);
  store16(&b[8], h.flags);
  store16(&b[10], 0);
  store32(&b[12], h.control_len);
  store64(&b[16], h.request_id);
  store32(&b[24], h.status);
  store64(&b[32], h.payload_len);
  store64(&b[40], h.reply_capacity);
  store32(&b[28], fnv1a(b));
  return b;
}

Result<FrameHeader> decode_frame_header(const FrameBytes& b, const std::string& peer) {
  auto bad = [&](const std::string& what) {
    return Status::Corruption("transport: bad frame from " + peer + ": " + what);
  };
  uint32_t magic = get_u32(&b[0]);
  if (magic != kFrameMagic) {
    char hex[16];
    std::snprintf(hex, sizeof hex, "0x%08x", magic);
    return bad(std::string("magic ") + hex + " is not STRT");
  }
  uint16_t version = get_u16(&b[4]);
  if (version != kFrameVersion) return bad("protocol version " + std::to_string(version) + " (this side speaks 1)");
  if (get_u32(&b[28]) != fnv1a(b)) return bad("header checksum mismatch");
  FrameHeader h;
  h.opcode = get_u16(&b[6]);
  h.flags = get_u16(&b[8]);
  if (get_u16(&b[10]) != 0 || (h.flags & ~kFrameReply) != 0) return bad("reserved bits set");
  h.control_len = get_u32(&b[12]);
  h.request_id = get_u64(&b[16]);
  h.status = get_u32(&b[24]);
  h.payload_len = get_u64(&b[32]);
  h.reply_capacity = get_u64(&b[40]);
  if (h.control_len > kMaxControlBytes)
    return bad("control length " + std::to_string(h.control_len) + " exceeds " + std::to_string(kMaxControlBytes));
  if (h.payload_len > kMaxPayloadLimit)
    return bad("payload length " + std::to_string(h.payload_len) + " exceeds " + std::to_string(kMaxPayloadLimit));
  if (h.reply_capacity > kMaxPayloadLimit)
    return bad("reply capacity " + std::to_string(h.reply_capacity) + " exceeds " + std::to_string(kMaxPayloadLimit));
  if (h.status > static_cast<uint32_t>(Code::kInternal)) return bad("unknown status code " + std::to_string(h.status));
  if (!(h.flags & kFrameReply) && h.status != 0) return bad("request carries a status");
  return h;
}

}  // namespace stor::transport
