// Hints (MPI_Info keys) of stor files: parsed from the open/set_info/set_view info and from
// ROMIO's system hints file, reported back by MPI_File_get_info with the values in use.
#include <fcntl.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

// Copies hint `key` into value; false when info does not have it.
bool info_value(MPI_Info info, const char* key, char (&value)[MPI_MAX_INFO_VAL + 1]) {
  if (info == MPI_INFO_NULL) return false;
  int flag = 0;
  PMPI_Info_get(info, key, MPI_MAX_INFO_VAL, value, &flag);
  return flag != 0;
}

// A hint that does not parse (or is not positive) is ignored, as hints may be.
int64_t info_int(MPI_Info info, const char* key, int64_t fallback) {
  char value[MPI_MAX_INFO_VAL + 1];
  if (!info_value(info, key, value)) return fallback;
  char* end = nullptr;
  long long v = std::strtoll(value, &end, 10);
  if (end == value || v <= 0) return fallback;
  return v;
}

CollectiveBuffering info_cb(MPI_Info info, const char* key, CollectiveBuffering fallback) {
  char value[MPI_MAX_INFO_VAL + 1];
  if (!info_value(info, key, value)) return fallback;
  if (strcasecmp(value, "enable") == 0) return CollectiveBuffering::kEnable;
  if (strcasecmp(value, "disable") == 0) return CollectiveBuffering::kDisable;
  if (strcasecmp(value, "automatic") == 0) return CollectiveBuffering::kAutomatic;
  return fallback;
}

bool info_bool(MPI_Info info, const char* key, bool fallback) {
  char value[MPI_MAX_INFO_VAL + 1];
  if (!info_value(info, key, value)) return fallback;
  if (strcasecmp(value, "true") == 0) return true;
  if (strcasecmp(value, "false") == 0) return false;
  return fallback;
}

const char* cb_name(CollectiveBuffering m) {
  return m == CollectiveBuffering::kEnable ? "enable" : m == CollectiveBuffering::kDisable ? "disable" : "automatic";
}

constexpr const char* kSystemHintsDefault = "/etc/romio-hints";  // ROMIO's default file
constexpr int64_t kSystemHintsMax = 1 << 20;                     // a hints file is a few lines

// Rank 0's view of the hints file: $ROMIO_HINTS, else /etc/romio-hints (as ROMIO's find_file).
std::string read_system_hints_file() {
  int fd = -1;
  if (const char* env = std::getenv("ROMIO_HINTS")) fd = ::open(env, O_RDONLY | O_CLOEXEC);
  if (fd < 0) fd = ::open(kSystemHintsDefault, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 && static_cast<int64_t>(text.size()) < kSystemHintsMax)
    text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  if (static_cast<int64_t>(text.size()) > kSystemHintsMax) text.resize(kSystemHintsMax);
  return text;
}

}  // namespace

void read_hints(MPI_Info info, Hints* h) {
  h->cb_write = info_cb(info, "romio_cb_write", h->cb_write);
  h->cb_read = info_cb(info, "romio_cb_read", h->cb_read);
  h->cb_nodes = static_cast<int>(info_int(info, "cb_nodes", h->cb_nodes));
  h->cb_buffer_size = info_int(info, "cb_buffer_size", h->cb_buffer_size);
  h->striping_unit = info_int(info, "striping_unit", h->striping_unit);
  h->striping_factor = static_cast<int>(info_int(info, "striping_factor", h->striping_factor));
  h->ind_rd_buffer_size = info_int(info, "ind_rd_buffer_size", h->ind_rd_buffer_size);
  h->ind_wr_buffer_size = info_int(info, "ind_wr_buffer_size", h->ind_wr_buffer_size);
  h->no_indep_rw = info_bool(info, "romio_no_indep_rw", h->no_indep_rw);
  // As ROMIO: a program that promises collective I/O only gets collective buffering throughout.
  if (h->no_indep_rw) h->cb_read = h->cb_write = CollectiveBuffering::kEnable;
}

MPI_Info with_system_hints(MPI_Comm comm, MPI_Info user) {
  int rank = 0;
  PMPI_Comm_rank(comm, &rank);
  std::string text = rank == 0 ? read_system_hints_file() : std::string();
  int64_t len = static_cast<int64_t>(text.size());
  PMPI_Bcast(&len, 1, MPI_INT64_T, 0, comm);  // rank 0 reads, everyone parses the same bytes
  text.resize(static_cast<size_t>(len));
  if (len > 0) PMPI_Bcast_c(text.data(), len, MPI_CHAR, 0, comm);
  MPI_Info merged = MPI_INFO_NULL;
  if (user != MPI_INFO_NULL) PMPI_Info_dup(user, &merged);
  else PMPI_Info_create(&merged);
  // ROMIO's format: lines "key value"; '#' in the first column comments a line out; a line
  // without a value or with more than two words is skipped; the program's own hints win.
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> words;
    size_t w = 0;
    while ((w = line.find_first_not_of(" \t", w)) != std::string::npos) {
      size_t end = line.find_first_of(" \t", w);
      words.push_back(line.substr(w, end == std::string::npos ? std::string::npos : end - w));
      w = end;
    }
    if (words.size() != 2 || words[0].size() > MPI_MAX_INFO_KEY || words[1].size() > MPI_MAX_INFO_VAL) continue;
    char value[MPI_MAX_INFO_VAL + 1];
    if (info_value(merged, words[0].c_str(), value)) continue;
    PMPI_Info_set(merged, words[0].c_str(), words[1].c_str());
  }
  return merged;
}

void put_hints(const Hints& h, MPI_Info info) {
  auto put = [&](const char* k, const std::string& v) { PMPI_Info_set(info, k, v.c_str()); };
  put("cb_buffer_size", std::to_string(h.cb_buffer_size));
  put("romio_cb_read", cb_name(h.cb_read));
  put("romio_cb_write", cb_name(h.cb_write));
  put("cb_nodes", std::to_string(h.cb_nodes));
  put("romio_no_indep_rw", h.no_indep_rw ? "true" : "false");
  put("ind_rd_buffer_size", std::to_string(h.ind_rd_buffer_size));
  put("ind_wr_buffer_size", std::to_string(h.ind_wr_buffer_size));
  // Independent I/O goes straight to the segments through the asynchronous engine: no data
  // sieving, whatever was asked (the ind_*_buffer_size values would size its buffers).
  put("romio_ds_read", "disable");
  put("romio_ds_write", "disable");
  put("striping_unit", std::to_string(h.striping_unit));
  if (h.striping_factor > 0) put("striping_factor", std::to_string(h.striping_factor));
}

}  // namespace stor::mpiio
