#include "net/server_stats.h"

#include <chrono>

#include "net/transport.h"
#include "net/wire.h"

namespace stor::transport {
namespace {

void put_name(std::string& out, std::string_view name) {
  name = name.substr(0, kMaxStatsName);
  put_u16(out, static_cast<uint16_t>(name.size()));
  out += name;
}

bool printable(std::string_view s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

std::string encode_server_stats(const ServerStats& s) {
  std::string out;
  put_name(out, s.role);
  const size_t n = std::min(s.counters.size(), kMaxStatsCounters);
  put_u16(out, static_cast<uint16_t>(n));
  for (size_t i = 0; i < n; ++i) {
    put_name(out, s.counters[i].first);
    put_u64(out, s.counters[i].second);
  }
  return out;
}

Result<ServerStats> decode_server_stats(std::string_view b) {
  auto bad = [](const std::string& why) { return Status::Corruption("server stats reply: " + why); };
  size_t at = 0;
  auto name = [&](std::string& out) -> Status {
    if (b.size() - at < 2) return bad("ends inside a name length");
    const size_t n = get_u16(b.data() + at);
    at += 2;
    if (n > kMaxStatsName) return bad("name of " + std::to_string(n) + " bytes (at most " + std::to_string(kMaxStatsName) + ")");
    if (b.size() - at < n) return bad("ends inside a name");
    out.assign(b.substr(at, n));
    at += n;
    if (!printable(out)) return bad("name is not printable ASCII");
    return {};
  };
  ServerStats s;
  STOR_RETURN_IF_ERROR(name(s.role));
  if (b.size() - at < 2) return bad("ends before the counter count");
  const size_t count = get_u16(b.data() + at);
  at += 2;
  if (count > kMaxStatsCounters) return bad(std::to_string(count) + " counters (at most " + std::to_string(kMaxStatsCounters) + ")");
  for (size_t i = 0; i < count; ++i) {
    std::string key;
    STOR_RETURN_IF_ERROR(name(key));
    if (b.size() - at < 8) return bad("ends inside counter '" + key + "'");
    s.counters.emplace_back(std::move(key), get_u64(b.data() + at));
    at += 8;
  }
  if (at != b.size()) return bad(std::to_string(b.size() - at) + " trailing bytes");
  return s;
}

}  // namespace stor::transport

namespace stor {

uint64_t ServerStats::get(std::string_view name, uint64_t fallback) const {
  for (const auto& [k, v] : counters)
    if (k == name) return v;
  return fallback;
}

}  // namespace stor
