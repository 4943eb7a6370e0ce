// The parquet footer (stor::parquet::parse_metadata, core/parquet_meta.cc), read from objects
// nobody vouches for. Byte 0 picks the mode: even, the rest is a FileMetaData given straight to
// the parser; odd, the rest is a whole file opened with parquet::Reader on nvme:// (footer length,
// magic, tail/second read, chunk ranges against the file) and every column chunk is read.
// Seeds: the footers and files of tests/fixtures/parquet, written by DuckDB.
#include <cstdint>
#include <memory>
#include <string>

#include "fuzz/fuzz_util.h"
#include "stor/parquet.h"
#include "stor/store.h"

using namespace stor;

namespace {

void check_metadata(const parquet::FileMetaData& md) {
  for (const auto& rg : md.row_groups) {
    STOR_FUZZ_CHECK(rg.columns.size() == md.columns.size(), "row group column count");
    for (size_t c = 0; c < rg.columns.size(); ++c) {
      STOR_FUZZ_CHECK(rg.columns[c].path == md.columns[c], "column path");
      STOR_FUZZ_CHECK(rg.columns[c].offset + rg.columns[c].compressed_size >= rg.columns[c].offset, "range overflow");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  if ((data[0] & 1) == 0) {
    auto md = parquet::parse_metadata(body.data(), body.size());
    if (md.is_ok()) check_metadata(*md);
    else STOR_FUZZ_CHECK(md.status().code() == Code::kCorruption, md.status().to_string());
    return 0;
  }
  static std::unique_ptr<Store> store = [] {
    StoreOptions o;
    o.publish_stats = false;
    o.engine.kind = EngineKind::kThreadPool;
    return Store::create(o).value();
  }();
  const std::string path = stor::fuzz::scratch_dir() + "/f.parquet";
  stor::fuzz::write_file(path, body);
  parquet::clear_caches();  // the file changes at every input; its mtime may not
  parquet::ReaderOptions opts;
  opts.small_object_bytes = (data[0] & 2) ? 0 : 1 << 20;  // both the whole-object and the tail path
  opts.predict = false;
  auto reader = parquet::Reader::open(*store, "nvme://" + path, opts);
  if (!reader.is_ok()) return 0;
  const auto& md = (*reader)->metadata();
  check_metadata(md);
  std::vector<int> cols;
  for (size_t c = 0; c < md.columns.size() && c < 64; ++c) cols.push_back(static_cast<int>(c));
  if (md.row_groups.size() <= 64) {
    auto chunks = (*reader)->read_chunks({}, cols);
    STOR_FUZZ_CHECK(chunks.is_ok(), chunks.status().to_string());
    for (const auto& ch : *chunks)
      STOR_FUZZ_CHECK(body.compare(ch.offset, ch.bytes.size(), ch.bytes) == 0, "chunk bytes differ from the file");
  }
  char buf[64];
  auto n = (*reader)->read(buf, sizeof buf, body.size() > 100 ? body.size() - 100 : 0);
  STOR_FUZZ_CHECK(n.is_ok(), n.status().to_string());
  return 0;
}
