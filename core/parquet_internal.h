// Internal entry points of the parquet read path (core/parquet_reader.cc) for Store::open.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "stor/backend.h"
#include "stor/parquet.h"

namespace stor::parquet::internal {

// Where a Reader's bytes come from: one read() is one backend request (a ranged GET).
class RangeSource {
 public:
  virtual ~RangeSource() = default;
  virtual Result<size_t> read(uint64_t offset, size_t len, char* dst) = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string validator;  // keys the footer cache with the URI: "etag:...", or size and mtime
  std::string etag;
};

// A Reader over any source (the tiered store's pinned cold versions). `seed`, when not empty,
// holds the object's bytes from seed_offset to its end, fetched by the caller (and counted in
// requests_made): the footer is then parsed from it without a request.
Result<std::shared_ptr<Reader::Impl>> open_source(std::unique_ptr<RangeSource> src, const Uri& uri,
                                                  const ReaderOptions& options, std::string seed, uint64_t seed_offset,
                                                  uint64_t requests_made);
// Reader::read on an Impl.
Result<size_t> read(Reader::Impl& impl, char* dst, size_t len, uint64_t offset);

Result<std::shared_ptr<Reader::Impl>> open_impl(Store& store, const Uri& uri, const ReaderOptions& options);

// A File body served by a Reader when `uri` is opened read-only on an object store and
// parquet.read_path selects it ("auto": names ending in ".parquet"); a null pointer when not.
Result<std::unique_ptr<BackendFile>> maybe_open_parquet(Store& store, Backend& backend, const Uri& uri, uint32_t flags,
                                                        const std::map<std::string, std::string>& settings);

}  // namespace stor::parquet::internal
