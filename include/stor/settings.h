// Typed, strict reading of "key=value" settings: what a backend factory receives
// (BackendContext::settings, from StoreOptions::settings / `stctl --set`), a tier link's config
// file, and numbers given on tool command lines.
//
// Values come from users, config files on disk and environment: nothing is trusted. Numbers are
// decimal digits only: no sign (strtoull would wrap "-1" to 2^64-1), no blanks, no "0x", no
// exponent, no trailing junk, no overflow. Every error is InvalidArgument and names the key and the
// value it refused.
//
// Thread safety: the free functions are pure. A Settings is a read-only view of a map the caller
// owns; const calls may run concurrently as long as nobody modifies the map.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {

// Unsigned integer in `base` (2..16; digits and lower/upper-case letters).
STOR_API Result<uint64_t> parse_uint(std::string_view text, int base = 10);
// A byte count: digits with an optional binary unit, any case: B; K, KB, Ki, KiB; M..; G..; T..
// (all powers of 1024, as elsewhere in stor: "64K" = 65536, "1MB" = 1048576).
STOR_API Result<uint64_t> parse_size(std::string_view text);
// 1/true/yes/on or 0/false/no/off.
STOR_API Result<bool> parse_bool(std::string_view text);
// Digits with an optional lower-case unit: ms, s, m (minutes), h. A bare number is in `unit`
// ("s3.timeout_ms=5000" is milliseconds, "tier.demote_after=3600" seconds).
STOR_API Result<std::chrono::milliseconds> parse_duration(std::string_view text, std::chrono::milliseconds unit);

// "64K", "5G", "12345": the largest binary unit that divides `bytes` exactly (for messages).
STOR_API std::string format_size(uint64_t bytes);

class STOR_API Settings {
 public:
  // A view of `values`, which must outlive it. `context` prefixes error messages ("tier config").
  explicit Settings(const std::map<std::string, std::string>& values, std::string context = {});

  bool has(std::string_view key) const;

  // The value as given (a present empty value stays empty), or `fallback` when the key is absent.
  std::string get_string(std::string_view key, std::string fallback = {}) const;
  // One of `choices`, or `fallback` when absent.
  Result<std::string> get_choice(std::string_view key, std::string fallback,
                                 std::initializer_list<std::string_view> choices) const;

  // The typed getters return `fallback` when the key is absent (unchecked: the caller's default),
  // and refuse a present value that is empty, malformed or outside [lo, hi].
  Result<uint64_t> get_uint(std::string_view key, uint64_t fallback, uint64_t lo = 0,
                            uint64_t hi = UINT64_MAX) const;
  Result<uint64_t> get_size(std::string_view key, uint64_t fallback, uint64_t lo = 0,
                            uint64_t hi = UINT64_MAX) const;
  Result<bool> get_bool(std::string_view key, bool fallback) const;
  // `unit` is what a bare number means; lo/hi bound the result.
  Result<std::chrono::milliseconds> get_duration(
      std::string_view key, std::chrono::milliseconds fallback, std::chrono::milliseconds unit,
      std::chrono::milliseconds lo = std::chrono::milliseconds(0),
      std::chrono::milliseconds hi = std::chrono::milliseconds::max()) const;
  // Comma-separated unsigned numbers, each in [lo, hi]; empty items are skipped ("1,,2" = {1, 2},
  // "" = {}). Absent: `fallback`.
  Result<std::vector<uint64_t>> get_uint_list(std::string_view key, std::vector<uint64_t> fallback,
                                              uint64_t lo = 0, uint64_t hi = UINT64_MAX) const;

 private:
  const std::string* find(std::string_view key) const;
  Status bad(std::string_view key, const std::string& value, std::string_view problem) const;

  const std::map<std::string, std::string>& values_;
  std::string context_;
};

}  // namespace stor
