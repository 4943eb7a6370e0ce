// Client block cache: a Backend decorator that keeps file blocks in memory.
//
//   auto cached = stor::cache::make_caching_backend(store->backend(uri).value(), {});
//   auto f = cached->open(uri, {stor::kOpenRead}).value();
//
// Replacement: segmented LRU. A block enters the probation segment; a second hit moves it to the
// protected segment (at most protected_fraction of the capacity). Eviction takes the probation
// tail first, so a one-pass scan of a large file cannot flush a re-used working set.
//
// Read-ahead: a handle whose reads continue where the previous one ended is a sequential stream;
// from the second such read on, the next readahead_blocks blocks are fetched in the background.
//
// Write-back: writes land in cached blocks marked dirty (a partial block is first filled from the
// backend). Dirty blocks are never evicted; they reach the backend on sync(), close(), truncate(),
// or when a file's dirty bytes pass max_dirty_bytes. Nothing is durable before sync() returns OK.
//
// Consistency rule (tested in tests/cache):
//  - Within one caching backend (one process), all handles of the same URI share the same blocks:
//    a write through one handle is visible to a read through any other handle as soon as the
//    write call returns, before any flush.
//  - Against other writers (other processes, the bucket itself) the cache is validated on every
//    open(): the backend's size, mtime and ETag are compared with those seen when the blocks were
//    cached; any difference drops the file's clean blocks. With revalidate_after_ns > 0, reads
//    through an already open handle also re-check after that interval (close-to-open otherwise).
//  - A file with dirty blocks is not revalidated (the local writes win until they are flushed).
//
// Thread safety: the caching backend and its stats()/drop_clean() may be used from any thread;
// one mutex guards the blocks of all files. Cached handles follow BackendFile's rules (many
// threads on one handle, close after every callback), and their I/O is synchronous: read_async,
// write_async and the vectored forms do the work on the calling thread (a miss or a flush blocks
// it on the backend) and call the callback before returning. Hence, like every blocking call,
// they must not be made from an engine completion callback of the same Store. Read-ahead runs
// on the backend's threads; close() waits for it.
#pragma once

#include <cstdint>
#include <memory>

#include "stor/export.h"
#include "stor/backend.h"

namespace stor::cache {

struct CacheOptions {
  uint64_t capacity_bytes = 256ull << 20;
  uint64_t block_size = 1ull << 20;
  double protected_fraction = 0.8;
  unsigned readahead_blocks = 4;        // 0: no read-ahead
  uint64_t max_dirty_bytes = 64ull << 20;  // per file; a writer flushes beyond this
  int64_t revalidate_after_ns = 0;      // 0: validate on open only
};

struct CacheStats {
  uint64_t hits = 0;             // block lookups served from memory
  uint64_t misses = 0;           // blocks read from the backend on demand
  uint64_t readahead_blocks = 0; // blocks fetched ahead
  uint64_t readahead_hits = 0;   // demand lookups served by a read-ahead block
  uint64_t evictions = 0;
  uint64_t invalidations = 0;    // files whose blocks were dropped because the backend changed
  uint64_t writeback_bytes = 0;
  uint64_t cached_bytes = 0;
  uint64_t dirty_bytes = 0;
};

class STOR_API CachingBackend : public Backend {
 public:
  virtual CacheStats stats() const = 0;
  // Drops every clean block (dirty ones stay until flushed).
  virtual void drop_clean() = 0;
};

// Wraps `inner`; the result serves the same scheme and URIs.
STOR_API Result<std::shared_ptr<CachingBackend>> make_caching_backend(std::shared_ptr<Backend> inner, CacheOptions opts = {});

}  // namespace stor::cache
