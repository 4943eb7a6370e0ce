// The frame header every transport message starts with, and its validation. Everything read
// from the wire goes through decode_frame_header() before any length in it is trusted.
//
//   off size field
//     0    4 magic           "STRT" (0x54525453 little-endian)
//     4    2 version         1
//     6    2 opcode
//     8    2 flags           kFrameReply on replies
//    10    2 reserved        0
//    12    4 control_len     <= kMaxControlBytes
//    16    8 request_id      echoed by the reply
//    24    4 status          replies: stor::Code; requests: 0
//    28    4 checksum        FNV-1a of the 48 header bytes with this field zeroed
//    32    8 payload_len     bulk bytes (TCP: following the control bytes) <= kMaxPayloadLimit
//    40    8 reply_capacity  requests: bulk bytes the caller accepts back <= kMaxPayloadLimit
// All integers little-endian.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "stor/status.h"

namespace stor::transport {

inline constexpr uint32_t kFrameMagic = 0x54525453;
inline constexpr uint16_t kFrameVersion = 1;
inline constexpr size_t kFrameHeaderSize = 48;
inline constexpr uint16_t kFrameReply = 1;

struct FrameHeader {
  uint16_t opcode = 0;
  uint16_t flags = 0;
  uint32_t control_len = 0;
  uint64_t request_id = 0;
  uint32_t status = 0;
  uint64_t payload_len = 0;
  uint64_t reply_capacity = 0;
};

using FrameBytes = std::array<std::byte, kFrameHeaderSize>;

FrameBytes encode_frame_header(const FrameHeader& h);
// Corruption (with `peer` in the message) on a bad magic, version, checksum, reserved bits,
// unknown status code or an out-of-bounds length.
Result<FrameHeader> decode_frame_header(const FrameBytes& bytes, const std::string& peer);

// Little-endian helpers for control-byte encodings.
void put_u16(std::string& out, uint16_t v);
void put_u32(std::string& out, uint32_t v);
void put_u64(std::string& out, uint64_t v);
uint16_t get_u16(const void* p);
uint32_t get_u32(const void* p);
uint64_t get_u64(const void* p);

}  // namespace stor::transport
