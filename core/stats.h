// The shared-memory layout behind include/stor/stats.h. Writers bump relaxed atomics; readers in
// other processes map the same file read-only and may see counters mid-update, which is fine for
// rates.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "stor/stats.h"

namespace stor::internal {

struct SchemeCounters {
  char scheme[24];  // NUL-terminated; empty = unused slot
  std::atomic<uint64_t> read_ops, write_ops, read_bytes, write_bytes, errors;
};

struct StatsPage {
  static constexpr uint32_t kMagic = 0x53544f52;  // "STOR"
  static constexpr uint32_t kVersion = 1;
  static constexpr unsigned kSlots = 32;
  uint32_t magic;
  uint32_t version;
  int32_t pid;
  uint32_t slots_used;
  SchemeCounters slots[kSlots];
};

// One Store's counters: in a shared-memory file when publishing, else in private memory.
class StatsRegistry {
 public:
  static std::shared_ptr<StatsRegistry> create(bool publish, const std::string& dir = "/dev/shm");
  ~StatsRegistry();
  // The counters for a scheme, allocated on first use; a shared overflow slot past kSlots.
  SchemeCounters* counters(const std::string& scheme);
  std::vector<BackendStats> snapshot() const;
  const std::string& path() const { return path_; }

 private:
  StatsRegistry() = default;
  std::mutex mu_;
  StatsPage* page_ = nullptr;
  bool mapped_ = false;
  std::string path_;
};

std::vector<BackendStats> snapshot_page(const StatsPage& page);

}  // namespace stor::internal
