// The server-stats call every stor daemon answers (stor-target, stor-mds): one opcode shared by
// their protocols, so a monitor (`stctl cluster status`) asks any server "who are you, how busy
// are you" over an authenticated connection without knowing its protocol.
//   request:  opcode kServerStatsOpcode, no control bytes, no payload
//   reply:    control = u16 role_len | role | u16 count | count x (u16 name_len | name | u64 value)
#pragma once

#include <string>
#include <string_view>

#include "stor/status.h"
#include "stor/target.h"

namespace stor::transport {

// Kept out of every protocol's own opcode range (object ops are 1..7).
inline constexpr uint16_t kServerStatsOpcode = 0xFF01;
inline constexpr size_t kMaxStatsCounters = 256;
inline constexpr size_t kMaxStatsName = 64;

std::string encode_server_stats(const ServerStats& s);
// Corruption when the bytes do not form a reply (lengths, count and names bounded as above;
// names printable ASCII).
Result<ServerStats> decode_server_stats(std::string_view bytes);

}  // namespace stor::transport
