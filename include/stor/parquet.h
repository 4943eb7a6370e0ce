// Parquet-aware reads on any backend (see docs/parquet.md).
//
// parse_metadata() decodes a Parquet footer (the Thrift compact-protocol FileMetaData) from
// untrusted bytes: schema, row groups, column chunks with their byte ranges, codec, path and
// page-index locations. No Arrow; lengths and nesting are bounded and every range is checked.
//
// Reader reads a Parquet object the way a query engine does, with as few bytes and requests as
// the file's layout allows:
//  - open: on an object store (Backend::object_store(): s3express://, s3://) one HEAD for size and
//    ETag, then one ranged GET for the tail (sized from the object size) and a second only when
//    the footer is longer; objects under `small_object_bytes` are fetched whole in one GET
//    instead. The parsed footer (and page index, when asked) is cached per (URI, ETag) for the
//    whole process, so other handles and later opens of the same version make no footer request.
//    Other backends (tier://, lustre://, nvme) are read through an ordinary handle, same policy.
//  - read_chunks(): the column chunks asked for become exactly the ranged GETs that cover them,
//    neighbouring chunks merged when the gap between them is at most `coalesce_gap`; run in
//    parallel.
//  - read(): any byte range (what a File opened on a ".parquet" object gets): served from the
//    footer, the whole small object, chunks already fetched; a range inside column chunks fetches
//    those chunks; other reads use a window that doubles on sequential access up to `window_max`.
//  - column prediction: the columns read from the last file of the same directory and schema are
//    fetched in the background when the next file opens (at most `predict_budget` bytes in flight
//    process-wide); what the reader does not use by close is dropped, unstarted fetches cancelled.
//
// Store::open of a name ending in ".parquet" for reading on a backend with object_store() returns
// a File served by a Reader (setting parquet.read_path: "auto" (default), "off", or "all" for
// every read-only object store open); Reader::open works on any name and backend.
//
// Thread safety: parse_metadata is pure. A Reader's methods may be called concurrently from any
// thread; each blocks until done and runs no callback. metadata() stays valid and unchanged while
// the Reader lives. Close (destroy) a Reader before the Store it was opened with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stor/export.h"
#include "stor/status.h"

namespace stor {
class Store;
}

namespace stor::parquet {

struct SchemaElement {
  std::string name;
  int32_t type = -1;            // physical type (BOOLEAN=0 ... FIXED_LEN_BYTE_ARRAY=7), -1: a group
  int32_t type_length = 0;
  int32_t repetition = -1;      // REQUIRED=0, OPTIONAL=1, REPEATED=2; -1 unset (the root)
  int32_t num_children = 0;
  int32_t converted_type = -1;  // -1 unset
};

struct ColumnChunk {
  std::string path;              // dotted path in the schema ("a.b.c")
  int32_t type = -1;             // physical type
  int32_t codec = 0;             // UNCOMPRESSED=0, SNAPPY=1, GZIP=2, LZO=3, BROTLI=4, LZ4=5, ZSTD=6, LZ4_RAW=7
  int64_t num_values = 0;
  uint64_t offset = 0;           // first byte: the dictionary page if any, else the first data page
  uint64_t compressed_size = 0;  // bytes in the file, [offset, offset + compressed_size)
  uint64_t uncompressed_size = 0;
  uint64_t data_page_offset = 0;
  int64_t dictionary_page_offset = -1;  // -1: none
  int64_t column_index_offset = -1;     // page index (-1: none)
  uint32_t column_index_length = 0;
  int64_t offset_index_offset = -1;
  uint32_t offset_index_length = 0;
};

struct RowGroup {
  int64_t num_rows = 0;
  uint64_t total_byte_size = 0;
  std::vector<ColumnChunk> columns;  // one per leaf column, in schema order
};

struct FileMetaData {
  int32_t version = 0;
  int64_t num_rows = 0;
  std::string created_by;
  std::vector<SchemaElement> schema;  // depth-first, the root first
  std::vector<std::string> columns;   // leaf columns' dotted paths, index = column index
  std::vector<RowGroup> row_groups;
};

// Decodes FileMetaData (the footer without its length and "PAR1"). Corruption for anything that
// is not a well-formed footer: truncation, a nesting deeper than 64, lists longer than the
// input, a schema whose children do not add up, row groups whose column count differs from the
// schema's leaves, negative sizes or offsets. Ranges are checked against the file by Reader.
STOR_API Result<FileMetaData> parse_metadata(const void* data, size_t len);
STOR_API const char* codec_name(int32_t codec);  // "SNAPPY", ..., "?" for unknown
STOR_API const char* type_name(int32_t type);    // "INT64", ..., "group" for -1

struct STOR_API ReaderOptions {
  uint64_t small_object_bytes = 8ull << 20;  // objects smaller than this are fetched whole at open
  uint64_t coalesce_gap = 128ull << 10;      // merge chunk ranges separated by at most this
  uint64_t window_initial = 1ull << 20;      // sequential read window, doubling up to window_max
  uint64_t window_max = 128ull << 20;
  uint64_t cache_bytes = 256ull << 20;       // chunk bytes a reader keeps for read() (LRU)
  bool predict = true;                       // column prediction
  uint64_t predict_budget = 256ull << 20;    // process-wide bytes of predicted chunks in flight/held
  bool page_index = false;                   // also fetch and cache the page index at open
  unsigned parallel = 8;                     // concurrent ranged GETs of one call

  // From "parquet.*" settings: small_object, coalesce_gap, window_initial, window_max,
  // cache_bytes, predict (bool), predict_budget, page_index (bool), parallel.
  static Result<ReaderOptions> from_settings(const std::map<std::string, std::string>& settings);
};

// What one Reader asked of its backend: requests are backend read calls (one ranged GET each on
// S3, but a range of 16 MiB or more, a scan window, is split into parallel part-sized GETs).
struct ReaderStats {
  uint64_t requests = 0;
  uint64_t bytes = 0;               // bytes fetched, prediction included
  uint64_t footer_cache_hits = 0;   // opens served by the process-wide footer cache
  uint64_t predicted_bytes = 0;     // fetched by column prediction
  uint64_t predicted_used = 0;      // of those, bytes later returned by read_chunks/read
};

struct Chunk {
  int row_group = 0;
  int column = 0;
  uint64_t offset = 0;
  std::string bytes;  // the column chunk, compressed_size bytes
};

class STOR_API Reader {
 public:
  // Opens `uri` through the store's backend for its scheme.
  static Result<std::unique_ptr<Reader>> open(Store& store, std::string_view uri, const ReaderOptions& options);
  // Options from the store's "parquet.*" settings.
  static Result<std::unique_ptr<Reader>> open(Store& store, std::string_view uri);
  ~Reader();

  const FileMetaData& metadata() const;
  uint64_t size() const;
  const std::string& etag() const;  // the version read (S3 ETag); empty where the backend has none
  // Leaf column index of a dotted path, NotFound if none.
  Result<int> column_index(std::string_view path) const;

  // The chunks of `columns` in `row_groups` (empty: every row group), ordered by row group then
  // column. InvalidArgument for an index out of range.
  Result<std::vector<Chunk>> read_chunks(std::span<const int> row_groups, std::span<const int> columns);
  Result<std::vector<Chunk>> read_columns(std::span<const int> row_groups, const std::vector<std::string>& names);

  // Bytes [offset, offset+len) of the object (short only at its end), under the policy above.
  Result<size_t> read(void* dst, size_t len, uint64_t offset);

  // The page index bytes (column and offset indexes, contiguous in files that write them), empty
  // when the file has none; fetched once and cached with the footer.
  Result<std::string> page_index();

  ReaderStats stats() const;

  struct Impl;  // core/parquet_reader.cc
  explicit Reader(std::shared_ptr<Impl> impl);
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

 private:
  std::shared_ptr<Impl> impl_;
};

// Drops the process-wide footer cache and column predictions (tests, benches).
STOR_API void clear_caches();

}  // namespace stor::parquet
