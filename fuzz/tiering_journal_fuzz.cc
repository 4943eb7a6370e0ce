// The tiering journal (backends/tier/journal.h): dir/checkpoint and dir/journal are loaded by
// Journal::open from whatever is on disk. The input is split at the first "\n--\n" into the
// checkpoint and the journal. Bit 0 of the first byte: the harness puts the right CRC in front
// of each line (so the record parser is reached), else the bytes are written as they are.
// After a successful open the state must survive compaction and a reopen unchanged.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "backends/tier/journal.h"
#include "fuzz/fuzz_util.h"

using namespace stor::tiering::internal;

namespace {

std::string frame_lines(const std::string& text) {
  std::string out;
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
    char crc[9];
    std::snprintf(crc, sizeof crc, "%08x", crc32(line.data(), line.size()));
    out += std::string(crc) + ' ' + line;
    if (nl == std::string::npos) break;
    out += '\n';
    at = nl + 1;
  }
  return out;
}

bool same(const Record& a, const Record& b) {
  return a.path == b.path && a.residency == b.residency && a.size == b.size && a.mtime_ns == b.mtime_ns &&
         a.cold_etag == b.cold_etag && a.cold_mtime_ns == b.cold_mtime_ns && a.last_access_ns == b.last_access_ns &&
         a.reads == b.reads && a.export_pending == b.export_pending &&
         (!a.export_pending || (a.export_size == b.export_size && a.export_crc == b.export_crc)) &&
         a.renamed_from == b.renamed_from;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const bool framed = data[0] & 1;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string checkpoint, journal;
  if (size_t sep = text.find("\n--\n"); sep != std::string::npos) {
    checkpoint = text.substr(0, sep);
    journal = text.substr(sep + 4);
  } else {
    journal = text;
  }
  if (framed) {
    checkpoint = frame_lines(checkpoint);
    journal = frame_lines(journal);
  }

  const std::string dir = stor::fuzz::scratch_dir() + "/tier";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir);
  if (!checkpoint.empty()) stor::fuzz::write_file(dir + "/checkpoint", checkpoint);
  stor::fuzz::write_file(dir + "/journal", journal);

  std::map<std::string, Record> records;
  {
    auto j = Journal::open(dir, &records);
    if (!j.is_ok()) return 0;
    // Journal what we loaded again (puts and an erase), as the store does, then reopen.
    for (const auto& [path, r] : records) STOR_FUZZ_CHECK((*j)->put(r, false).is_ok(), "put failed");
    if (!records.empty()) {
      auto first = records.begin()->first;
      STOR_FUZZ_CHECK((*j)->erase(first, false).is_ok(), "erase failed");
      records.erase(first);
    }
  }
  std::map<std::string, Record> again;
  auto j2 = Journal::open(dir, &again);
  STOR_FUZZ_CHECK(j2.is_ok(), "reopen of a journal this process wrote failed: " + j2.status().to_string());
  STOR_FUZZ_CHECK(again.size() == records.size(), "record count changed across a reopen");
  for (const auto& [path, r] : records) {
    auto it = again.find(path);
    STOR_FUZZ_CHECK(it != again.end() && same(it->second, r), "record changed across a reopen");
  }
  return 0;
}
