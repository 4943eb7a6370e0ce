// Per-backend I/O counters. Every Store counts the I/O of its files per URI scheme and, unless
// StoreOptions::publish_stats is false, publishes the counters in a small shared-memory file
// (/dev/shm/stor-stats.<pid>.<n>) that `stctl top` samples from another process.
// Thread safety: counters are updated with relaxed atomics from any thread; Store::stats() and
// read_published_stats() may run concurrently with I/O and return a snapshot (fields of one
// snapshot may be from slightly different instants). A vectored call counts as one operation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {

struct BackendStats {
  std::string scheme;
  uint64_t read_ops = 0, write_ops = 0;
  uint64_t read_bytes = 0, write_bytes = 0;
  uint64_t errors = 0;
};

struct ProcessStats {
  int pid = 0;
  std::string source;  // the shared-memory file it came from
  std::vector<BackendStats> backends;
};

// Reads every live published stats file (files of processes that are gone are removed).
STOR_API Result<std::vector<ProcessStats>> read_published_stats(const std::string& dir = "/dev/shm");

}  // namespace stor
