// Internal construction of the tiered store (the tier:// backend builds instances from
// .stor-tier/config).
#pragma once

#include "stor/tiering.h"

namespace stor::tiering::internal {

// Normalizes "a//b/./c/" -> "a/b/c"; InvalidArgument for "..", empty, or a ".stor-tier" path.
Result<std::string> normalize_path(const std::string& path);

constexpr const char* kStateDirName = ".stor-tier";
constexpr const char* kConflictSuffix = ".stor-conflict";

}  // namespace stor::tiering::internal
