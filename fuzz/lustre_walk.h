// The lustre fuzz targets' walk of a mounted namespace (lustre_mount, mds_request).
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <utility>

#include "backends/lustre/fs.h"

namespace stor::fuzz {

// visit(path) for every entry under "/", breadth first, bounded (a damaged tree may be huge or
// cyclic); returns how many were visited.
template <typename Visit>
uint64_t walk_namespace(lustre::FileSystem& fs, const lustre::Identity& id, Visit&& visit) {
  uint64_t seen = 0;
  std::deque<std::pair<std::string, int>> todo{{"/", 0}};
  while (!todo.empty() && seen < 256) {
    auto [path, depth] = todo.front();
    todo.pop_front();
    ++seen;
    visit(path);
    auto entries = fs.mds().readdir(id, path);
    if (!entries.is_ok() || depth >= 16) continue;
    for (const auto& e : *entries) todo.emplace_back((path == "/" ? "" : path) + "/" + e.name, depth + 1);
  }
  return seen;
}

}  // namespace stor::fuzz
