// Parquet footer parser: the Thrift compact protocol FileMetaData, from untrusted bytes.
//
// Only the fields stor uses are decoded; every other field is skipped by type. Bounds: nesting
// depth (kMaxDepth), list sizes (each element takes at least one byte, so a list can never claim
// more elements than bytes remain), string lengths (within the input), and the decoded schema and
// row groups are checked for consistency before anything is returned.
#include <cstring>
#include <limits>

#include "stor/parquet.h"

namespace stor::parquet {

namespace {

constexpr int kMaxDepth = 64;

enum TType : uint8_t {
  kStop = 0, kTrue = 1, kFalse = 2, kByte = 3, kI16 = 4, kI32 = 5, kI64 = 6, kDouble = 7,
  kBinary = 8, kList = 9, kSet = 10, kMap = 11, kStruct = 12,
};

class Decoder {
 public:
  Decoder(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}

  Status error() const { return err_; }
  bool ok() const { return err_.is_ok(); }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }

  void fail(const std::string& what) {
    if (err_.is_ok()) err_ = Status::Corruption("parquet footer: " + what);
    p_ = end_;
  }

  uint8_t byte() {
    if (p_ >= end_) {
      fail("truncated");
      return 0;
    }
    return *p_++;
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const uint8_t b = byte();
      if (!ok()) return 0;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail("varint longer than 10 bytes");
    return 0;
  }

  int64_t zigzag() {
    const uint64_t v = varint();
    return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
  }

  int32_t i32() {
    const int64_t v = zigzag();
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
      fail("i32 out of range");
      return 0;
    }
    return static_cast<int32_t>(v);
  }

  std::string binary() {
    const uint64_t n = varint();
    if (!ok()) return {};
    if (n > remaining()) {
      fail("string longer than the footer");
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p_), static_cast<size_t>(n));
    p_ += n;
    return s;
  }

  // A list/set header: element type and count (bounded by the bytes left).
  bool list_header(uint8_t* elem_type, uint64_t* count) {
    const uint8_t h = byte();
    if (!ok()) return false;
    *elem_type = h & 0x0f;
    uint64_t n = h >> 4;
    if (n == 15) n = varint();
    if (!ok()) return false;
    if (n > remaining()) {
      fail("list of " + std::to_string(n) + " elements in " + std::to_string(remaining()) + " bytes");
      return false;
    }
    *count = n;
    return true;
  }

  // Next field header of a struct: false at STOP (or on error).
  bool field(int16_t* last_id, int16_t* id, uint8_t* type) {
    const uint8_t h = byte();
    if (!ok() || h == kStop) return false;
    *type = h & 0x0f;
    const uint8_t delta = h >> 4;
    if (delta) {
      *id = static_cast<int16_t>(*last_id + delta);
    } else {
      const int64_t v = zigzag();
      if (v < std::numeric_limits<int16_t>::min() || v > std::numeric_limits<int16_t>::max()) {
        fail("field id out of range");
        return false;
      }
      *id = static_cast<int16_t>(v);
    }
    *last_id = *id;
    return ok();
  }

  // Skips one value of `type`.
  void skip(uint8_t type, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
    switch (type) {
      case kTrue:
      case kFalse:
        return;  // the value is in the field header
      case kByte:
        (void)byte();
        return;
      case kI16:
      case kI32:
      case kI64:
        (void)varint();
        return;
      case kDouble:
        if (remaining() < 8) return fail("truncated double");
        p_ += 8;
        return;
      case kBinary: {
        const uint64_t n = varint();
        if (!ok()) return;
        if (n > remaining()) return fail("binary longer than the footer");
        p_ += n;
        return;
      }
      case kList:
      case kSet: {
        uint8_t et;
        uint64_t n;
        if (!list_header(&et, &n)) return;
        for (uint64_t i = 0; i < n && ok(); ++i) skip_element(et, depth + 1);
        return;
      }
      case kMap: {
        const uint64_t n = varint();
        if (!ok() || n == 0) return;
        if (n > remaining()) return fail("map longer than the footer");
        const uint8_t kv = byte();
        for (uint64_t i = 0; i < n && ok(); ++i) {
          skip_element(kv >> 4, depth + 1);
          skip_element(kv & 0x0f, depth + 1);
        }
        return;
      }
      case kStruct: {
        int16_t last = 0, id;
        uint8_t t;
        while (field(&last, &id, &t)) skip(t, depth + 1);
        return;
      }
      default:
        return fail("unknown field type " + std::to_string(type));
    }
  }

  // Inside a list, booleans take one byte.
  void skip_element(uint8_t type, int depth) {
    if (type == kTrue || type == kFalse) {
      (void)byte();
      return;
    }
    skip(type, depth);
  }

  // Expects `type` for a known field; skips (as unknown) a field of another type.
  bool expect(uint8_t got, uint8_t want, int depth) {
    if (got == want) return true;
    skip(got, depth);
    return false;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  Status err_;
};

bool is_int(uint8_t t) { return t == kI16 || t == kI32 || t == kI64 || t == kByte; }

int64_t read_int(Decoder& d, uint8_t t) { return t == kByte ? static_cast<int8_t>(d.byte()) : d.zigzag(); }

// Reads a list of structs with `each(d, depth)` per element.
template <typename Fn>
void read_struct_list(Decoder& d, uint8_t type, int depth, Fn each) {
  if (!d.expect(type, kList, depth)) return;
  uint8_t et;
  uint64_t n;
  if (!d.list_header(&et, &n)) return;
  for (uint64_t i = 0; i < n && d.ok(); ++i) {
    if (et != kStruct) {
      d.skip_element(et, depth + 1);
      continue;
    }
    each(d, depth + 1);
  }
}

void read_schema_element(Decoder& d, int depth, SchemaElement* e) {
  if (depth > kMaxDepth) return d.fail("nesting too deep");
  int16_t last = 0, id;
  uint8_t t;
  while (d.field(&last, &id, &t)) {
    if (id >= 1 && id <= 7 && id != 4 && is_int(t)) {
      const int64_t v = read_int(d, t);
      if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max())
        return d.fail("schema value out of range");
      const auto v32 = static_cast<int32_t>(v);
      if (id == 1) e->type = v32;
      else if (id == 2) e->type_length = v32;
      else if (id == 3) e->repetition = v32;
      else if (id == 5) e->num_children = v32;
      else if (id == 6) e->converted_type = v32;
    } else if (id == 4 && t == kBinary) {
      e->name = d.binary();
    } else {
      d.skip(t, depth + 1);
    }
  }
}

void read_column_meta(Decoder& d, int depth, ColumnChunk* c, bool* has_meta) {
  if (depth > kMaxDepth) return d.fail("nesting too deep");
  *has_meta = true;
  int16_t last = 0, id;
  uint8_t t;
  bool have_dict = false;
  int64_t dict = 0, data = -1, csize = -1, usize = 0;
  while (d.field(&last, &id, &t)) {
    if (id == 3 && t == kList) {
      uint8_t et;
      uint64_t n;
      if (!d.list_header(&et, &n)) return;
      std::string path;
      for (uint64_t i = 0; i < n && d.ok(); ++i) {
        if (et != kBinary) {
          d.skip_element(et, depth + 1);
          continue;
        }
        if (i) path += '.';
        path += d.binary();
      }
      c->path = std::move(path);
    } else if ((id == 1 || id == 4) && is_int(t)) {
      const int32_t v = static_cast<int32_t>(std::max<int64_t>(std::min<int64_t>(read_int(d, t), INT32_MAX), INT32_MIN));
      if (id == 1) c->type = v;
      else c->codec = v;
    } else if ((id == 5 || id == 6 || id == 7 || id == 9 || id == 11) && is_int(t)) {
      const int64_t v = read_int(d, t);
      if (id == 5) c->num_values = v;
      else if (id == 6) usize = v;
      else if (id == 7) csize = v;
      else if (id == 9) data = v;
      else {
        dict = v;
        have_dict = true;
      }
    } else {
      d.skip(t, depth + 1);
    }
  }
  if (!d.ok()) return;
  if (data < 0 || csize < 0 || usize < 0 || c->num_values < 0)
    return d.fail("column chunk '" + c->path + "' without a valid data page offset or size");
  c->data_page_offset = static_cast<uint64_t>(data);
  c->compressed_size = static_cast<uint64_t>(csize);
  c->uncompressed_size = static_cast<uint64_t>(usize);
  c->offset = c->data_page_offset;
  // Some writers store 0 for "no dictionary"; a dictionary page comes before the data pages.
  if (have_dict && dict > 0 && dict < data) {
    c->dictionary_page_offset = dict;
    c->offset = static_cast<uint64_t>(dict);
  }
  if (c->offset > UINT64_MAX - c->compressed_size) return d.fail("column chunk range overflows");
}

void read_column_chunk(Decoder& d, int depth, ColumnChunk* c) {
  if (depth > kMaxDepth) return d.fail("nesting too deep");
  int16_t last = 0, id;
  uint8_t t;
  bool has_meta = false;
  while (d.field(&last, &id, &t)) {
    if (id == 3 && t == kStruct) {
      read_column_meta(d, depth + 1, c, &has_meta);
    } else if ((id == 4 || id == 6) && is_int(t)) {
      const int64_t v = read_int(d, t);
      if (v < 0) return d.fail("negative page index offset");
      (id == 4 ? c->offset_index_offset : c->column_index_offset) = v;
    } else if ((id == 5 || id == 7) && is_int(t)) {
      const int64_t v = read_int(d, t);
      if (v < 0 || v > INT32_MAX) return d.fail("bad page index length");
      (id == 5 ? c->offset_index_length : c->column_index_length) = static_cast<uint32_t>(v);
    } else if (id == 1 && t == kBinary) {
      // A chunk stored in another file: stor reads single files only.
      (void)d.binary();
      return d.fail("column chunk stored in another file (file_path)");
    } else {
      d.skip(t, depth + 1);
    }
  }
  if (d.ok() && !has_meta) d.fail("column chunk without metadata (encrypted footers are not supported)");
}

void read_row_group(Decoder& d, int depth, RowGroup* rg) {
  if (depth > kMaxDepth) return d.fail("nesting too deep");
  int16_t last = 0, id;
  uint8_t t;
  while (d.field(&last, &id, &t)) {
    if (id == 1) {
      read_struct_list(d, t, depth + 1, [&](Decoder& dd, int dep) {
        rg->columns.emplace_back();
        read_column_chunk(dd, dep, &rg->columns.back());
      });
    } else if ((id == 2 || id == 3) && is_int(t)) {
      const int64_t v = read_int(d, t);
      if (v < 0) return d.fail("negative row group size");
      if (id == 2) rg->total_byte_size = static_cast<uint64_t>(v);
      else rg->num_rows = v;
    } else {
      d.skip(t, depth + 1);
    }
  }
}

// Leaf paths of the schema (depth-first, children counted by num_children); false when the
// counts do not add up.
bool leaves(const std::vector<SchemaElement>& schema, size_t* at, const std::string& prefix, int depth,
            std::vector<std::string>* out, std::vector<int32_t>* types) {
  if (depth > kMaxDepth || *at >= schema.size()) return false;
  const SchemaElement& e = schema[(*at)++];
  const std::string path = depth == 0 ? "" : prefix.empty() ? e.name : prefix + "." + e.name;
  if (e.num_children < 0) return false;
  if (e.num_children == 0) {
    if (depth == 0) return true;  // a root without columns
    out->push_back(path);
    types->push_back(e.type);
    return true;
  }
  // Each child takes at least one element: a count beyond what is left cannot add up.
  if (static_cast<size_t>(e.num_children) > schema.size() - *at) return false;
  for (int32_t i = 0; i < e.num_children; ++i)
    if (!leaves(schema, at, path, depth + 1, out, types)) return false;
  return true;
}

}  // namespace

Result<FileMetaData> parse_metadata(const void* data, size_t len) {
  if (!data && len) return Status::InvalidArgument("parquet footer: null buffer");
  Decoder d(static_cast<const uint8_t*>(data), len);
  FileMetaData md;
  bool have_schema = false, have_rows = false, have_groups = false;
  int16_t last = 0, id;
  uint8_t t;
  while (d.field(&last, &id, &t)) {
    if (id == 1 && is_int(t)) {
      md.version = static_cast<int32_t>(std::max<int64_t>(std::min<int64_t>(read_int(d, t), INT32_MAX), INT32_MIN));
    } else if (id == 2 && t == kList) {
      have_schema = true;
      read_struct_list(d, t, 1, [&](Decoder& dd, int dep) {
        md.schema.emplace_back();
        read_schema_element(dd, dep, &md.schema.back());
      });
    } else if (id == 3 && is_int(t)) {
      md.num_rows = read_int(d, t);
      have_rows = true;
    } else if (id == 4 && t == kList) {
      have_groups = true;
      read_struct_list(d, t, 1, [&](Decoder& dd, int dep) {
        md.row_groups.emplace_back();
        read_row_group(dd, dep, &md.row_groups.back());
      });
    } else if (id == 6 && t == kBinary) {
      md.created_by = d.binary();
    } else {
      d.skip(t, 1);
    }
  }
  if (!d.ok()) return d.error();
  if (!have_schema || !have_rows || !have_groups)
    return Status::Corruption("parquet footer: schema, num_rows or row_groups missing");
  if (md.schema.empty()) return Status::Corruption("parquet footer: empty schema");
  if (md.num_rows < 0) return Status::Corruption("parquet footer: negative row count");
  size_t at = 0;
  std::vector<int32_t> types;
  if (!leaves(md.schema, &at, "", 0, &md.columns, &types) || at != md.schema.size())
    return Status::Corruption("parquet footer: schema children do not add up to the schema's elements");
  for (size_t g = 0; g < md.row_groups.size(); ++g) {
    const RowGroup& rg = md.row_groups[g];
    if (rg.columns.size() != md.columns.size())
      return Status::Corruption("parquet footer: row group " + std::to_string(g) + " has " +
                                std::to_string(rg.columns.size()) + " column chunks for " +
                                std::to_string(md.columns.size()) + " columns");
    for (size_t c = 0; c < rg.columns.size(); ++c)
      if (rg.columns[c].path != md.columns[c])
        return Status::Corruption("parquet footer: row group " + std::to_string(g) + " column " + std::to_string(c) +
                                  " is '" + rg.columns[c].path + "', the schema says '" + md.columns[c] + "'");
  }
  return md;
}

const char* codec_name(int32_t codec) {
  static const char* const names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO", "BROTLI", "LZ4", "ZSTD", "LZ4_RAW"};
  return codec >= 0 && codec < 8 ? names[codec] : "?";
}

const char* type_name(int32_t type) {
  static const char* const names[] = {"BOOLEAN", "INT32", "INT64", "INT96", "FLOAT", "DOUBLE", "BYTE_ARRAY",
                                      "FIXED_LEN_BYTE_ARRAY"};
  if (type == -1) return "group";
  return type >= 0 && type < 8 ? names[type] : "?";
}

}  // namespace stor::parquet
