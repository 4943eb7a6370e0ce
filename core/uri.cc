#include <string>

#include "stor/backend.h"

namespace stor {

Result<Uri> Uri::parse(std::string_view text) {
  if (text.empty()) return Status::InvalidArgument("empty URI");
  if (text.find('\0') != std::string_view::npos)
    return Status::InvalidArgument("URI contains a NUL byte");
  Uri u;
  auto colon = text.find(':');
  bool has_scheme = colon != std::string_view::npos && colon > 0 &&
                    text.find('/') > colon;  // "a/b:c" is a path, not a scheme
  if (!has_scheme) {
    u.scheme = "nvme";
    u.path = std::string(text);
    return u;
  }
  std::string_view scheme = text.substr(0, colon);
  for (char c : scheme) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.';
    if (!ok) return Status::InvalidArgument("bad URI scheme '" + std::string(scheme) + "'");
  }
  std::string_view rest = text.substr(colon + 1);
  if (rest.substr(0, 2) != "//")
    return Status::InvalidArgument("URI '" + std::string(text) + "' lacks '//' after the scheme (want scheme://authority/path)");
  rest.remove_prefix(2);
  auto slash = rest.find('/');
  u.scheme = std::string(scheme);
  for (auto& c : u.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (slash == std::string_view::npos) {
    u.authority = std::string(rest);
    u.path = "";
  } else {
    u.authority = std::string(rest.substr(0, slash));
    u.path = std::string(rest.substr(slash));  // keeps the leading '/'
  }
  if (u.authority.empty() && u.path.empty())
    return Status::InvalidArgument("URI '" + std::string(text) + "' has no path");
  return u;
}

std::string Uri::to_string() const { return scheme + "://" + authority + path; }

std::string capabilities_to_string(uint32_t caps) {
  static const std::pair<uint32_t, const char*> names[] = {
      {kCapRead, "read"},           {kCapWrite, "write"},   {kCapRandomWrite, "random-write"},
      {kCapDirectIo, "direct-io"},  {kCapDirectories, "directories"},
      {kCapTruncate, "truncate"},   {kCapStriping, "striping"},
      {kCapPermissions, "permissions"}, {kCapRename, "rename"}};
  std::string out;
  for (auto& [bit, name] : names) {
    if (!(caps & bit)) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

}  // namespace stor
