// The parquet footer parser (stor::parquet::parse_metadata) against files DuckDB wrote
// (tests/fixtures/parquet, committed with DuckDB's parquet_metadata() of each as FILE.json; made by
// `node tests/fixtures/parquet_gen.js fixtures tests/fixtures/parquet`), and against malformed
// footers: truncations, bit flips, deep nesting, lists longer than the input, bad schemas.
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <filesystem>

#include "stor/parquet.h"
#include "stor/store.h"

using namespace stor;
using namespace stor::parquet;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string footer_of(const std::string& file) {
  REQUIRE(file.size() >= 12);
  REQUIRE(file.compare(file.size() - 4, 4, "PAR1") == 0);
  const auto* p = reinterpret_cast<const uint8_t*>(file.data()) + file.size() - 8;
  const uint32_t len = p[0] | (p[1] << 8) | (p[2] << 16) | (uint32_t(p[3]) << 24);
  REQUIRE(len + 8 <= file.size());
  return file.substr(file.size() - 8 - len, len);
}

// DuckDB's view of one chunk, from FILE.json (JSON.stringify(..., 1): one "key": value a line).
struct Expected {
  int row_group = 0, column = 0;
  std::string path, codec, type;
  int64_t data_page_offset = 0, dictionary_page_offset = -1, size = 0, num_values = 0;
};

std::string value_of(const std::string& line) {
  std::string v = line.substr(line.find(':') + 1);
  while (!v.empty() && (v.back() == ',' || v.back() == ' ')) v.pop_back();
  while (!v.empty() && v.front() == ' ') v.erase(v.begin());
  if (!v.empty() && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}

std::vector<Expected> expected_chunks(const std::string& json, int64_t* num_rows) {
  std::vector<Expected> out;
  std::istringstream in(json);
  std::string line;
  while (std::getline(in, line)) {
    const auto q = line.find('"');
    if (q == std::string::npos) continue;
    const std::string key = line.substr(q + 1, line.find('"', q + 1) - q - 1);
    const std::string v = value_of(line);
    if (key == "num_rows") *num_rows = std::stoll(v);
    else if (key == "row_group") out.emplace_back(), out.back().row_group = std::stoi(v);
    else if (key == "column") out.back().column = std::stoi(v);
    else if (key == "path") {
      // DuckDB joins path_in_schema with ", "; stor with ".".
      std::string p;
      for (size_t i = 0; i < v.size(); ++i) {
        if (v.compare(i, 2, ", ") == 0) p += '.', ++i;
        else p += v[i];
      }
      out.back().path = p;
    } else if (key == "data_page_offset") out.back().data_page_offset = std::stoll(v);
    else if (key == "dictionary_page_offset") out.back().dictionary_page_offset = std::stoll(v);
    else if (key == "size") out.back().size = std::stoll(v);
    else if (key == "codec") out.back().codec = v;
    else if (key == "num_values") out.back().num_values = std::stoll(v);
    else if (key == "type") out.back().type = v;
  }
  return out;
}

const std::string kDir = STOR_PARQUET_FIXTURES;

}  // namespace

TEST_CASE("parse_metadata reads DuckDB-written footers as DuckDB does") {
  for (const char* name : {"flat", "nested", "zstd", "empty"}) {
    INFO(name);
    const std::string file = slurp(kDir + "/" + name + ".parquet");
    const std::string footer = footer_of(file);
    auto md = parse_metadata(footer.data(), footer.size());
    REQUIRE(md.is_ok());
    int64_t rows = -1;
    const auto want = expected_chunks(slurp(kDir + "/" + name + ".json"), &rows);
    CHECK(md->num_rows == rows);
    CHECK(md->created_by.find("DuckDB") != std::string::npos);
    size_t seen = 0;
    int64_t sum_rows = 0;
    for (size_t g = 0; g < md->row_groups.size(); ++g) {
      sum_rows += md->row_groups[g].num_rows;
      for (size_t c = 0; c < md->row_groups[g].columns.size(); ++c) {
        const ColumnChunk& cc = md->row_groups[g].columns[c];
        REQUIRE(seen < want.size());
        const Expected& e = want[seen++];
        INFO("row group " << g << " column " << c);
        CHECK(e.row_group == static_cast<int>(g));
        CHECK(e.column == static_cast<int>(c));
        CHECK(cc.path == e.path);
        CHECK(md->columns[c] == e.path);
        CHECK(static_cast<int64_t>(cc.data_page_offset) == e.data_page_offset);
        CHECK(static_cast<int64_t>(cc.compressed_size) == e.size);
        CHECK(cc.num_values == e.num_values);
        CHECK(codec_name(cc.codec) == e.codec);
        CHECK(type_name(cc.type) == e.type);
        if (e.dictionary_page_offset > 0 && e.dictionary_page_offset < e.data_page_offset) {
          CHECK(cc.dictionary_page_offset == e.dictionary_page_offset);
          CHECK(static_cast<int64_t>(cc.offset) == e.dictionary_page_offset);
        } else {
          CHECK(cc.offset == cc.data_page_offset);
        }
        CHECK(cc.offset + cc.compressed_size <= file.size() - footer.size() - 8);
      }
    }
    CHECK(seen == want.size());
    CHECK(sum_rows == rows);
  }
  // The fixtures cover what they are meant to: several row groups, a dictionary page, nesting.
  const std::string flat = footer_of(slurp(kDir + "/flat.parquet"));
  auto md = parse_metadata(flat.data(), flat.size());
  REQUIRE(md.is_ok());
  CHECK(md->row_groups.size() == 2);
  CHECK(md->columns == std::vector<std::string>{"id", "x", "k"});
  CHECK(md->row_groups[0].columns[2].dictionary_page_offset > 0);
  const std::string nested = footer_of(slurp(kDir + "/nested.parquet"));
  auto mn = parse_metadata(nested.data(), nested.size());
  REQUIRE(mn.is_ok());
  CHECK(mn->columns == std::vector<std::string>{"id", "s.a", "s.b.list.element", "tags.list.element", "maybe"});
  CHECK(mn->schema[0].num_children == 4);
  CHECK(mn->schema[0].type == -1);
}

TEST_CASE("parse_metadata refuses every truncation and survives bit flips") {
  for (const char* name : {"flat", "nested", "zstd"}) {
    INFO(name);
    const std::string footer = footer_of(slurp(kDir + "/" + name + ".parquet"));
    for (size_t n = 0; n < footer.size(); ++n) {
      auto r = parse_metadata(footer.data(), n);
      INFO("prefix of " << n << " bytes");
      REQUIRE_FALSE(r.is_ok());
      CHECK(r.status().code() == Code::kCorruption);
    }
    std::mt19937 rng(7);
    for (int i = 0; i < 3000; ++i) {
      std::string f = footer;
      for (int k = 0; k < 1 + i % 4; ++k) f[rng() % f.size()] ^= static_cast<char>(1u << (rng() % 8));
      auto r = parse_metadata(f.data(), f.size());
      if (!r.is_ok()) {
        CHECK(r.status().code() == Code::kCorruption);
        continue;
      }
      // Whatever parses is self-consistent.
      for (const auto& rg : r->row_groups) CHECK(rg.columns.size() == r->columns.size());
    }
  }
}

TEST_CASE("parse_metadata bounds nesting, list sizes and the schema") {
  // 200 nested structs in an unknown field: refused, not a stack overflow.
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += '\x1c';  // field delta 1, type struct
  deep += std::string(200, '\0');
  auto r = parse_metadata(deep.data(), deep.size());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("nesting") != std::string::npos);

  // A list claiming 2^60 elements in a few bytes: refused before any allocation.
  std::string huge = "\x29\xfc";  // field 2 (schema), list; header: size 15 (varint follows), type struct
  huge += "\x80\x80\x80\x80\x80\x80\x80\x80\x10";
  r = parse_metadata(huge.data(), huge.size());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("list of") != std::string::npos);

  // Schema root claiming 3 children with 1 element after it.
  // FileMetaData{1: version=1, 2: [root{4:"r", 5:3}, leaf{1:2, 4:"a"}], 3: num_rows=0, 4: []}
  // (Built with sizeof: the bytes hold NULs, the struct STOP markers.)
  const char kBad[] =
      "\x15\x02"                  // field 1 i32 = 1
      "\x19\x2c"                  // field 2 list of 2 structs
      "\x48\x01r\x15\x06\x00"     // {4: "r", 5: 3}
      "\x15\x04\x38\x01" "a\x00"  // {1: 2 (INT64), 4: "a"}
      "\x16\x00"                  // field 3 i64 = 0
      "\x19\x0c"                  // field 4 empty list of structs
      "\x00";                     // STOP
  std::string bad(kBad, sizeof kBad - 1);
  r = parse_metadata(bad.data(), bad.size());
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("schema children") != std::string::npos);
  // The same with num_children = 1 is a valid one-column file without row groups.
  std::string good = bad;
  good[good.find("\x15\x06")+1] = '\x02';
  auto ok = parse_metadata(good.data(), good.size());
  REQUIRE(ok.is_ok());
  CHECK(ok->columns == std::vector<std::string>{"a"});
  CHECK(ok->row_groups.empty());

  CHECK_FALSE(parse_metadata(nullptr, 0).is_ok());
  CHECK(std::string(codec_name(6)) == "ZSTD");
  CHECK(std::string(codec_name(99)) == "?");
}

namespace {

// A minimal Thrift compact encoder for hand-made footers.
struct Enc {
  std::string out;
  void byte(uint8_t b) { out += static_cast<char>(b); }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      byte(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    byte(static_cast<uint8_t>(v));
  }
  void zz(int64_t v) { varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  void field(int delta, uint8_t type) { byte(static_cast<uint8_t>(delta << 4 | type)); }
  void i32(int delta, int32_t v) { field(delta, 5), zz(v); }
  void i64(int delta, int64_t v) { field(delta, 6), zz(v); }
  void str(int delta, const std::string& s) { field(delta, 8), varint(s.size()), out += s; }
  void list(int delta, uint8_t elem, int n) { field(delta, 9), byte(static_cast<uint8_t>(n << 4 | elem)); }
  void stop() { byte(0); }
};

// "PAR1", 100 data bytes (one INT32 column chunk), a column index (20 bytes) and an offset index
// (16 bytes) after the data, the footer, its length, "PAR1".
std::string file_with_page_index() {
  std::string data(100, 'd'), column_index(20, 'c'), offset_index(16, 'o');
  Enc e;
  e.i32(1, 1);             // version
  e.list(1, 12, 2);        // schema
  e.str(4, "r"), e.i32(1, 1), e.stop();
  e.i32(1, 1), e.i32(2, 0), e.str(1, "a"), e.stop();
  e.i64(1, 10);            // num_rows
  e.list(1, 12, 1);        // row_groups
  e.list(1, 12, 1);        //   columns
  e.i64(2, 4);             //     file_offset
  e.field(1, 12);          //     meta_data
  e.i32(1, 1);             //       type INT32
  e.list(1, 5, 1), e.zz(0);  //     encodings
  e.list(1, 8, 1), e.varint(1), e.out += "a";  // path_in_schema
  e.i32(1, 0);             //       codec
  e.i64(1, 10), e.i64(1, 100), e.i64(1, 100);  // num_values, uncompressed, compressed
  e.i64(2, 4);             //       data_page_offset
  e.stop();
  e.i64(1, 124), e.i32(1, 16);  //  offset index at 124, 16 bytes
  e.i64(1, 104), e.i32(1, 20);  //  column index at 104, 20 bytes
  e.stop();
  e.i64(1, 100), e.i64(1, 10);  //   total_byte_size, num_rows
  e.stop();
  e.stop();
  std::string f = "PAR1" + data + column_index + offset_index + e.out;
  for (int i = 0; i < 4; ++i) f += static_cast<char>((e.out.size() >> (8 * i)) & 0xff);
  return f + "PAR1";
}

}  // namespace

TEST_CASE("page index locations are decoded, and Reader::page_index fetches them once") {
  const std::string file = file_with_page_index();
  const std::string footer = footer_of(file);
  auto md = parse_metadata(footer.data(), footer.size());
  REQUIRE(md.is_ok());
  const ColumnChunk& c = md->row_groups.at(0).columns.at(0);
  CHECK(c.column_index_offset == 104);
  CHECK(c.column_index_length == 20);
  CHECK(c.offset_index_offset == 124);
  CHECK(c.offset_index_length == 16);
  CHECK(c.offset == 4);
  CHECK(c.compressed_size == 100);

  // Through the read path on an nvme file: the page index is the bytes between data and footer.
  char tmpl[] = "/tmp/stor-parquet-XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  const std::string path = std::string(tmpl) + "/pi.parquet";
  std::ofstream(path, std::ios::binary) << file;
  {
    StoreOptions so;
    so.publish_stats = false;
    auto store = Store::create(so).value();
    clear_caches();
    ReaderOptions o;
    o.small_object_bytes = 0;
    o.page_index = true;
    auto r = Reader::open(*store, "nvme://" + path, o);
    REQUIRE(r.is_ok());
    CHECK((*r)->stats().requests == 1);  // the tail holds the whole (small) file: index included
    auto pi = (*r)->page_index();
    REQUIRE(pi.is_ok());
    CHECK(*pi == std::string(20, 'c') + std::string(16, 'o'));
    // A second Reader of the same version gets footer and index from the process-wide cache.
    auto r2 = Reader::open(*store, "nvme://" + path, o);
    REQUIRE(r2.is_ok());
    CHECK((*r2)->stats().requests == 0);
    CHECK((*r2)->stats().footer_cache_hits == 1);
    CHECK((*r2)->page_index().value() == *pi);
    std::string chunk(100, '\0');
    auto chunks = (*r2)->read_chunks({}, std::vector<int>{0});
    REQUIRE(chunks.is_ok());
    CHECK((*chunks)[0].bytes == std::string(100, 'd'));
    CHECK((*r2)->stats().requests == 1);
  }
  std::filesystem::remove_all(tmpl);
}
