// stctl parquet URI: the footer of a Parquet object (schema, row groups, column chunks with their
// byte ranges, sizes and codecs), read with stor's own parser through the parquet read path
// (include/stor/parquet.h): on an object store one HEAD and one tail GET (two for long footers).
#include <cstdio>
#include <string>
#include <vector>

#include "stor/parquet.h"
#include "command.h"

namespace stctl {
namespace {

const char* repetition_name(int32_t r) {
  switch (r) {
    case 0: return "required";
    case 1: return "optional";
    case 2: return "repeated";
    default: return "-";
  }
}

int cmd_parquet(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto opts = stor::parquet::ReaderOptions::from_settings(ctx.store.settings());
  if (!opts.is_ok()) return usage_error(opts.status());
  opts->small_object_bytes = 0;  // the footer is all this needs, whatever the size
  opts->predict = false;
  auto reader = stor::parquet::Reader::open(ctx.store, args[0], *opts);
  if (!reader.is_ok()) return fail(reader.status());
  const stor::parquet::FileMetaData& md = (*reader)->metadata();
  const auto st = (*reader)->stats();

  if (ctx.json) {
    std::printf("{\"uri\":\"%s\",\"size\":%llu,\"etag\":\"%s\",\"num_rows\":%lld,\"created_by\":\"%s\",\"requests\":%llu,"
                "\"schema\":[",
                json_escape(args[0]).c_str(), static_cast<unsigned long long>((*reader)->size()),
                json_escape((*reader)->etag()).c_str(), static_cast<long long>(md.num_rows),
                json_escape(md.created_by).c_str(), static_cast<unsigned long long>(st.requests));
    for (size_t i = 0; i < md.schema.size(); ++i) {
      const auto& e = md.schema[i];
      std::printf("%s{\"name\":\"%s\",\"type\":\"%s\",\"repetition\":\"%s\",\"children\":%d}", i ? "," : "",
                  json_escape(e.name).c_str(), stor::parquet::type_name(e.type), repetition_name(e.repetition),
                  e.num_children);
    }
    std::printf("],\"row_groups\":[");
    for (size_t g = 0; g < md.row_groups.size(); ++g) {
      const auto& rg = md.row_groups[g];
      std::printf("%s{\"num_rows\":%lld,\"columns\":[", g ? "," : "", static_cast<long long>(rg.num_rows));
      for (size_t c = 0; c < rg.columns.size(); ++c) {
        const auto& cc = rg.columns[c];
        std::printf("%s{\"path\":\"%s\",\"type\":\"%s\",\"codec\":\"%s\",\"offset\":%llu,\"compressed\":%llu,"
                    "\"uncompressed\":%llu,\"values\":%lld}",
                    c ? "," : "", json_escape(cc.path).c_str(), stor::parquet::type_name(cc.type),
                    stor::parquet::codec_name(cc.codec), static_cast<unsigned long long>(cc.offset),
                    static_cast<unsigned long long>(cc.compressed_size),
                    static_cast<unsigned long long>(cc.uncompressed_size), static_cast<long long>(cc.num_values));
      }
      std::printf("]}");
    }
    std::printf("]}\n");
    return 0;
  }

  std::printf("%s: %s, %lld rows, %zu row groups, %zu columns, written by %s\n", args[0].c_str(),
              human_size(static_cast<double>((*reader)->size())).c_str(), static_cast<long long>(md.num_rows),
              md.row_groups.size(), md.columns.size(), md.created_by.empty() ? "?" : md.created_by.c_str());
  std::printf("footer read with %llu request(s), %s\n\nschema:\n", static_cast<unsigned long long>(st.requests),
              human_size(static_cast<double>(st.bytes)).c_str());
  // Indent by depth: each group's children follow it.
  std::vector<int32_t> left;  // children still to print per open group
  for (const auto& e : md.schema) {
    std::printf("  %*s%s  %s%s\n", static_cast<int>(2 * left.size()), "", e.name.c_str(),
                e.num_children ? "group" : stor::parquet::type_name(e.type),
                e.repetition >= 0 ? (std::string(" ") + repetition_name(e.repetition)).c_str() : "");
    if (!left.empty()) --left.back();
    if (e.num_children > 0) left.push_back(e.num_children);
    while (!left.empty() && left.back() == 0) left.pop_back();
  }
  std::printf("\n");
  std::vector<std::vector<std::string>> rows;
  for (size_t g = 0; g < md.row_groups.size(); ++g)
    for (const auto& cc : md.row_groups[g].columns)
      rows.push_back({std::to_string(g), cc.path, stor::parquet::type_name(cc.type), stor::parquet::codec_name(cc.codec),
                      std::to_string(cc.offset), std::to_string(cc.compressed_size), std::to_string(cc.uncompressed_size),
                      std::to_string(cc.num_values)});
  print_table(ctx, {"row_group", "column", "type", "codec", "offset", "compressed", "uncompressed", "values"}, rows);
  std::printf("\nrow groups:\n");
  for (size_t g = 0; g < md.row_groups.size(); ++g) {
    uint64_t bytes = 0;
    for (const auto& cc : md.row_groups[g].columns) bytes += cc.compressed_size;
    std::printf("  %zu: %lld rows, %s in %zu column chunks\n", g, static_cast<long long>(md.row_groups[g].num_rows),
                human_size(static_cast<double>(bytes)).c_str(), md.row_groups[g].columns.size());
  }
  return 0;
}

const Registrar r_parquet{{"parquet", "parquet URI",
                           "Print the footer of a Parquet file on any backend, read with stor's own parser: schema, "
                           "every column chunk (row group, path, type, codec, offset, compressed and uncompressed "
                           "bytes, values) and per-row-group totals. On an object store this costs one HEAD and one "
                           "ranged GET of the tail (a second for footers longer than the tail).",
                           cmd_parquet}};

}  // namespace
}  // namespace stctl
