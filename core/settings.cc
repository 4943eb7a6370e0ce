#include "stor/settings.h"

#include <algorithm>
#include <cctype>

namespace stor {

namespace {

constexpr std::string_view kSizeExample = "e.g. 4096, 64K, 1M, 2GiB";

// Splits "123abc" into its leading digits (only '0'..'9') and the rest.
std::pair<std::string_view, std::string_view> split_digits(std::string_view text) {
  size_t n = 0;
  while (n < text.size() && text[n] >= '0' && text[n] <= '9') ++n;
  return {text.substr(0, n), text.substr(n)};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string format_ms(std::chrono::milliseconds d) {
  const int64_t ms = d.count();
  if (ms != 0 && ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms != 0 && ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

// "must be 4K..5G", "must be at least 1K", "must be at most 100".
template <typename T, typename Fmt>
std::string range_text(T lo, T hi, T min, T max, Fmt fmt) {
  if (lo != min && hi != max) return "must be " + fmt(lo) + ".." + fmt(hi);
  if (lo != min) return "must be at least " + fmt(lo);
  return "must be at most " + fmt(hi);
}

}  // namespace

Result<uint64_t> parse_uint(std::string_view text, int base) {
  if (base < 2 || base > 16) return Status::InvalidArgument("parse_uint: base must be 2..16");
  const std::string want = base == 10 ? "a non-negative integer" : base == 8 ? "an octal number" : "a number in base " + std::to_string(base);
  if (text.empty()) return Status::InvalidArgument("empty value (want " + want + ")");
  uint64_t v = 0;
  for (char c : text) {
    int d = -1;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    if (d < 0 || d >= base) return Status::InvalidArgument(quoted(text) + " is not " + want);
    const auto b = static_cast<uint64_t>(base), du = static_cast<uint64_t>(d);
    if (v > (UINT64_MAX - du) / b) return Status::InvalidArgument(quoted(text) + " does not fit in 64 bits");
    v = v * b + du;
  }
  return v;
}

Result<uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("empty value (want a size, " + std::string(kSizeExample) + ")");
  auto [digits, unit_text] = split_digits(text);
  if (digits.empty())
    return Status::InvalidArgument(quoted(text) + " is not a size (" + std::string(kSizeExample) + ")");
  STOR_ASSIGN_OR_RETURN(uint64_t v, parse_uint(digits));
  // Accepted units: "" or "b", then k/m/g/t optionally followed by "i", "b" or "ib".
  const std::string unit = lower(unit_text);
  int shift = 0;
  if (!unit.empty() && unit != "b") {
    const size_t at = std::string_view("kmgt").find(unit[0]);
    const std::string tail = unit.substr(1);
    if (at == std::string_view::npos || !(tail.empty() || tail == "b" || tail == "i" || tail == "ib"))
      return Status::InvalidArgument("bad size unit in " + quoted(text) + " (want K, M, G or T; " +
                                     std::string(kSizeExample) + ")");
    shift = 10 * static_cast<int>(at + 1);
  }
  if (v > (UINT64_MAX >> shift)) return Status::InvalidArgument("size " + quoted(text) + " does not fit in 64 bits");
  return v << shift;
}

Result<bool> parse_bool(std::string_view text) {
  const std::string v = lower(text);
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  return Status::InvalidArgument(quoted(text) + " is not a boolean (want true/false, 1/0, yes/no, on/off)");
}

Result<std::chrono::milliseconds> parse_duration(std::string_view text, std::chrono::milliseconds unit) {
  const std::string unit_name = unit == std::chrono::milliseconds(1)      ? "milliseconds"
                                : unit == std::chrono::milliseconds(1000) ? "seconds"
                                                                          : "units of " + format_ms(unit);
  const std::string want = "a duration (e.g. 500ms, 30s, 5m, 2h; a bare number is in " + unit_name + ")";
  if (text.empty()) return Status::InvalidArgument("empty value (want " + want + ")");
  auto [digits, unit_text] = split_digits(text);
  if (digits.empty()) return Status::InvalidArgument(quoted(text) + " is not " + want);
  STOR_ASSIGN_OR_RETURN(uint64_t v, parse_uint(digits));
  int64_t mult = unit.count();
  // Lower case only: "5M" meant 5 MiB milliseconds to the size parser durations used before.
  const std::string_view u = unit_text;
  if (u == "ms") mult = 1;
  else if (u == "s") mult = 1000;
  else if (u == "m") mult = 60'000;
  else if (u == "h") mult = 3'600'000;
  else if (!u.empty()) return Status::InvalidArgument("bad duration unit in " + quoted(text) + " (want " + want + ")");
  if (mult <= 0) return Status::InvalidArgument("parse_duration: the unit must be positive");
  if (v > static_cast<uint64_t>(INT64_MAX / mult))
    return Status::InvalidArgument("duration " + quoted(text) + " is too long");
  return std::chrono::milliseconds(static_cast<int64_t>(v) * mult);
}

std::string format_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T"};
  int u = 0;
  while (u < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++u;
  }
  return std::to_string(bytes) + kUnits[u];
}

// ---------------------------------------------------------------------------------------------

Settings::Settings(const std::map<std::string, std::string>& values, std::string context)
    : values_(values), context_(std::move(context)) {}

const std::string* Settings::find(std::string_view key) const {
  auto it = values_.find(std::string(key));
  return it == values_.end() ? nullptr : &it->second;
}

bool Settings::has(std::string_view key) const { return find(key) != nullptr; }

Status Settings::bad(std::string_view key, const std::string& value, std::string_view problem) const {
  std::string msg = std::string(key) + "=" + quoted(value) + ": " + std::string(problem);
  return context_.empty() ? Status::InvalidArgument(std::move(msg))
                          : Status::InvalidArgument(std::move(msg)).with_context(context_);
}

std::string Settings::get_string(std::string_view key, std::string fallback) const {
  const std::string* v = find(key);
  return v ? *v : std::move(fallback);
}

Result<std::string> Settings::get_choice(std::string_view key, std::string fallback,
                                         std::initializer_list<std::string_view> choices) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  if (std::find(choices.begin(), choices.end(), *v) != choices.end()) return *v;
  std::string want;
  for (auto c : choices) want += (want.empty() ? "" : ", ") + std::string(c);
  return bad(key, *v, "want one of " + want);
}

Result<uint64_t> Settings::get_uint(std::string_view key, uint64_t fallback, uint64_t lo, uint64_t hi) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto n = parse_uint(*v);
  if (!n.is_ok()) return bad(key, *v, n.status().message());
  if (*n < lo || *n > hi)
    return bad(key, *v, range_text<uint64_t>(lo, hi, 0, UINT64_MAX, [](uint64_t x) { return std::to_string(x); }));
  return *n;
}

Result<uint64_t> Settings::get_size(std::string_view key, uint64_t fallback, uint64_t lo, uint64_t hi) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto n = parse_size(*v);
  if (!n.is_ok()) return bad(key, *v, n.status().message());
  if (*n < lo || *n > hi) return bad(key, *v, range_text<uint64_t>(lo, hi, 0, UINT64_MAX, format_size));
  return *n;
}

Result<bool> Settings::get_bool(std::string_view key, bool fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto b = parse_bool(*v);
  if (!b.is_ok()) return bad(key, *v, b.status().message());
  return *b;
}

Result<std::chrono::milliseconds> Settings::get_duration(std::string_view key, std::chrono::milliseconds fallback,
                                                         std::chrono::milliseconds unit, std::chrono::milliseconds lo,
                                                         std::chrono::milliseconds hi) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto d = parse_duration(*v, unit);
  if (!d.is_ok()) return bad(key, *v, d.status().message());
  if (*d < lo || *d > hi)
    return bad(key, *v, range_text(lo, hi, std::chrono::milliseconds(0), std::chrono::milliseconds::max(), format_ms));
  return *d;
}

Result<std::vector<uint64_t>> Settings::get_uint_list(std::string_view key, std::vector<uint64_t> fallback,
                                                      uint64_t lo, uint64_t hi) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  std::vector<uint64_t> out;
  std::string_view rest = *v;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    auto n = parse_uint(item);
    if (!n.is_ok()) return bad(key, *v, n.status().message());
    if (*n < lo || *n > hi)
      return bad(key, *v, quoted(item) + " " +
                              range_text<uint64_t>(lo, hi, 0, UINT64_MAX, [](uint64_t x) { return std::to_string(x); }));
    out.push_back(*n);
  }
  return out;
}

}  // namespace stor
