// The parquet read path (include/stor/parquet.h) over s3:// and s3express:// against s3rver (and
// RGW, as parquet_s3_test.rgw), on files DuckDB writes at test time (tests/fixtures/parquet_gen.js):
// requests and bytes per open, per column read, for small objects, scans and predicted columns,
// counted by the Reader and by the S3 client itself; DuckDB decodes the chunks stor returned.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/s3express/s3_backend.h"
#include "s3_test_support.h"
#include "stor/parquet.h"
#include "stor/store.h"
#include "stor/tiering.h"

using namespace stor;
using namespace stor::s3::test;

namespace {

struct ChunkInfo {
  int row_group = 0, column = 0;
  uint64_t offset = 0, size = 0;
  std::string path;
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a command, returning its stdout; fails the test on a non-zero exit.
std::string run(const std::string& cmd) {
  FILE* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int rc = ::pclose(p);
  INFO(cmd << "\n" << out);
  REQUIRE(WIFEXITED(rc));
  REQUIRE(WEXITSTATUS(rc) == 0);
  return out;
}

std::string json_field(const std::string& line, const std::string& key) {
  const std::string k = "\"" + key + "\":";
  size_t at = line.find(k);
  REQUIRE(at != std::string::npos);
  at += k.size();
  if (line[at] == '"') return line.substr(at + 1, line.find('"', at + 1) - at - 1);
  return line.substr(at, line.find_first_of(",}", at) - at);
}

// Files written by DuckDB once per process, with its parquet_metadata per file.
struct Files {
  stor::test::TempDir dir;
  std::map<std::string, std::vector<ChunkInfo>> chunks;  // file name -> chunks (row group, column order)
  bool ok = false;

  static Files& get() {
    static Files f;
    return f;
  }
  static std::string node() { return find_in_path("node"); }

  void generate(const std::string& args, const std::string& prefix) {
    const std::string out = run(node() + " " STOR_PARQUET_GEN " write " + dir.path() + " " + args + " " + prefix);
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
      ChunkInfo c;
      c.row_group = std::stoi(json_field(line, "row_group"));
      c.column = std::stoi(json_field(line, "column"));
      c.offset = std::stoull(json_field(line, "offset"));
      c.size = std::stoull(json_field(line, "size"));
      c.path = json_field(line, "path");
      chunks[json_field(line, "file")].push_back(c);
    }
  }

 private:
  Files() {
    if (node().empty()) return;
    // 3 files x 8 columns x 3 row groups (~3 MB each) in one "table"; one with many columns and
    // row groups of tiny values, whose footer is longer than the 64 KiB tail; one small file.
    generate("3 8 60000 20480", "t-");
    generate("1 100 20480 2048", "wide- tiny");
    generate("1 4 5000 2048", "small-");
    ok = true;
  }
};

#define REQUIRE_PARQUET_FILES()                                         \
  REQUIRE_S3RVER();                                                    \
  if (Files::node().empty()) {                                         \
    WARN("skipping: node is not installed (DuckDB writes the files)"); \
    return;                                                            \
  }                                                                    \
  Files& files = Files::get();                                         \
  REQUIRE(files.ok)

struct Env {
  std::unique_ptr<Store> store;
  s3::S3Client* client = nullptr;
  std::string bucket;
  std::string scheme;

  Env(const std::string& endpoint, const std::string& scheme_, std::map<std::string, std::string> extra = {})
      : scheme(scheme_) {
    parquet::clear_caches();
    StoreOptions so;
    so.settings = s3rver_settings(endpoint);
    so.settings["s3.session"] = "off";
    so.settings["s3.readahead"] = "0";
    for (auto& [k, v] : extra) so.settings[k] = v;
    so.publish_stats = false;
    store = Store::create(so).value();
    auto b = store->backend(Uri::parse(scheme + "://b/k").value()).value();
    client = s3::s3_client_of(*b);
    REQUIRE(client);
    bucket = unique_bucket("pq");
    REQUIRE(client->create_bucket(bucket).is_ok());
  }
  std::string uri(const std::string& name) const { return scheme + "://" + bucket + "/" + name; }
  void upload(const std::string& local, const std::string& name) {
    const std::string bytes = slurp(local);
    REQUIRE(client->put_object(bucket, name, bytes.data(), bytes.size()).is_ok());
  }
  uint64_t requests() const { return client->stats().requests; }
};

parquet::ReaderOptions sparse_options() {
  parquet::ReaderOptions o;
  o.small_object_bytes = 1 << 20;  // the ~3 MB test files take the sparse path
  o.predict = false;
  o.coalesce_gap = 0;
  return o;
}

uint64_t tail_bytes(uint64_t size) { return std::min<uint64_t>(size, 64 << 10); }

}  // namespace

TEST_CASE("parquet open: one HEAD and one tail GET; the footer is cached per ETag") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3");
  const std::string local = files.dir.path() + "/t-0000.parquet";
  const std::string file = slurp(local);
  env.upload(local, "t/a.parquet");
  const auto& want = files.chunks["t-0000.parquet"];

  uint64_t before = env.requests();
  auto r = parquet::Reader::open(*env.store, env.uri("t/a.parquet"), sparse_options());
  REQUIRE(r.is_ok());
  CHECK(env.requests() - before == 2);
  auto st = (*r)->stats();
  CHECK(st.requests == 2);
  CHECK(st.bytes == tail_bytes(file.size()));
  CHECK((*r)->size() == file.size());
  CHECK(!(*r)->etag().empty());
  // The footer as DuckDB reads it.
  const auto& md = (*r)->metadata();
  REQUIRE(md.row_groups.size() == 3);
  REQUIRE(md.columns.size() == 8);
  size_t i = 0;
  for (size_t g = 0; g < md.row_groups.size(); ++g)
    for (const auto& c : md.row_groups[g].columns) {
      REQUIRE(i < want.size());
      CHECK(c.offset == want[i].offset);
      CHECK(c.compressed_size == want[i].size);
      CHECK(c.path == want[i].path);
      ++i;
    }
  CHECK(i == want.size());
  // Reading the footer through read() makes no request.
  std::string tailbuf(100, '\0');
  before = env.requests();
  REQUIRE((*r)->read(tailbuf.data(), 100, file.size() - 100).value() == 100);
  CHECK(tailbuf == file.substr(file.size() - 100));
  CHECK(env.requests() == before);

  // A second open of the same version: the HEAD only.
  before = env.requests();
  auto r2 = parquet::Reader::open(*env.store, env.uri("t/a.parquet"), sparse_options());
  REQUIRE(r2.is_ok());
  CHECK(env.requests() - before == 1);
  CHECK((*r2)->stats().footer_cache_hits == 1);
  CHECK((*r2)->stats().requests == 1);

  // A new version (new ETag) is read afresh.
  env.upload(files.dir.path() + "/t-0001.parquet", "t/a.parquet");
  before = env.requests();
  auto r3 = parquet::Reader::open(*env.store, env.uri("t/a.parquet"), sparse_options());
  REQUIRE(r3.is_ok());
  CHECK(env.requests() - before == 2);
  CHECK((*r3)->stats().footer_cache_hits == 0);
  CHECK((*r3)->metadata().row_groups[0].columns[0].offset == files.chunks["t-0001.parquet"][0].offset);
}

TEST_CASE("parquet open: a footer longer than the tail costs exactly one more GET") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3express");
  const std::string local = files.dir.path() + "/wide-0000.parquet";
  const std::string file = slurp(local);
  const auto* p = reinterpret_cast<const uint8_t*>(file.data()) + file.size() - 8;
  const uint64_t footer = p[0] | (p[1] << 8) | (p[2] << 16) | (uint64_t(p[3]) << 24);
  REQUIRE(footer + 8 > tail_bytes(file.size()));  // the fixture does what it is meant to
  auto o = sparse_options();
  o.small_object_bytes = 100 << 10;
  REQUIRE(file.size() > o.small_object_bytes);
  env.upload(local, "wide.parquet");
  const uint64_t before = env.requests();
  auto r = parquet::Reader::open(*env.store, env.uri("wide.parquet"), o);
  REQUIRE(r.is_ok());
  CHECK(env.requests() - before == 3);
  CHECK((*r)->stats().bytes == footer + 8);
  CHECK((*r)->metadata().columns.size() == 100);
  CHECK((*r)->metadata().row_groups.size() == 10);
}

TEST_CASE("parquet read_chunks: exactly the chunks' bytes, neighbours coalesced, DuckDB decodes them") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3");
  const std::string local = files.dir.path() + "/t-0002.parquet";
  const std::string file = slurp(local);
  env.upload(local, "c.parquet");
  const auto& want = files.chunks["t-0002.parquet"];
  auto r = parquet::Reader::open(*env.store, env.uri("c.parquet"), sparse_options());
  REQUIRE(r.is_ok());
  const uint64_t groups = (*r)->metadata().row_groups.size();

  // Columns 1 and 5 are apart: one GET per chunk, and not one byte more than the chunks.
  auto base = (*r)->stats();
  uint64_t before = env.requests();
  auto chunks = (*r)->read_columns({}, {"c1", "c5"});
  REQUIRE(chunks.is_ok());
  REQUIRE(chunks->size() == groups * 2);
  uint64_t need = 0;
  for (const auto& ch : *chunks) {
    const ChunkInfo& w = want[ch.row_group * 8 + ch.column];
    CHECK(ch.offset == w.offset);
    REQUIRE(ch.bytes.size() == w.size);
    CHECK(ch.bytes == file.substr(w.offset, w.size));
    need += w.size;
  }
  CHECK(env.requests() - before == groups * 2);
  CHECK((*r)->stats().requests - base.requests == groups * 2);
  CHECK((*r)->stats().bytes - base.bytes == need);

  // Columns 2 and 3 are neighbours: one GET per row group.
  before = env.requests();
  base = (*r)->stats();
  const std::vector<int> cols23 = {2, 3};
  auto adj = (*r)->read_chunks({}, cols23);
  REQUIRE(adj.is_ok());
  need = 0;
  for (const auto& ch : *adj) {
    CHECK(ch.bytes == file.substr(ch.offset, ch.bytes.size()));
    need += ch.bytes.size();
  }
  CHECK(env.requests() - before == groups);
  CHECK((*r)->stats().bytes - base.bytes == need);

  // One row group only.
  const std::vector<int> rg1 = {1}, col0 = {0};
  before = env.requests();
  auto one = (*r)->read_chunks(rg1, col0);
  REQUIRE(one.is_ok());
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].row_group == 1);
  CHECK(env.requests() - before == 1);
  const std::vector<int> bad = {8};
  CHECK((*r)->read_chunks({}, bad).status().code() == Code::kInvalidArgument);
  CHECK((*r)->read_columns({}, {"nope"}).status().code() == Code::kNotFound);

  // DuckDB reads c1 and c5 from a file holding only what stor returned (zeros elsewhere).
  std::string recon(file.size(), '\0');
  recon.replace(0, 4, "PAR1");
  const uint64_t foff = (*r)->metadata().row_groups.empty() ? 0 : file.size() - 8 -
      (uint64_t(uint8_t(file[file.size() - 8])) | uint64_t(uint8_t(file[file.size() - 7])) << 8 |
       uint64_t(uint8_t(file[file.size() - 6])) << 16 | uint64_t(uint8_t(file[file.size() - 5])) << 24);
  std::string tail(file.size() - foff, '\0');
  REQUIRE((*r)->read(tail.data(), tail.size(), foff).value() == tail.size());
  recon.replace(foff, tail.size(), tail);
  for (const auto& ch : *chunks) recon.replace(ch.offset, ch.bytes.size(), ch.bytes);
  const std::string recon_path = files.dir.path() + "/recon.parquet";
  {
    std::ofstream out(recon_path, std::ios::binary | std::ios::trunc);
    out.write(recon.data(), static_cast<std::streamsize>(recon.size()));
  }
  CHECK(run(Files::node() + " " STOR_PARQUET_GEN " check " + local + " " + recon_path + " c1,c5") == "same\n");
  // ... and the check can fail: c2's chunks were not filled in.
  CHECK(::system((Files::node() + " " STOR_PARQUET_GEN " check " + local + " " + recon_path + " c2 >/dev/null 2>&1").c_str()) != 0);
}

TEST_CASE("parquet: small objects are fetched whole in one GET") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3");
  const std::string local = files.dir.path() + "/small-0000.parquet";
  const std::string file = slurp(local);
  REQUIRE(file.size() < (8u << 20));
  env.upload(local, "s.parquet");
  parquet::ReaderOptions o;  // default: under 8 MiB is small
  uint64_t before = env.requests();
  auto r = parquet::Reader::open(*env.store, env.uri("s.parquet"), o);
  REQUIRE(r.is_ok());
  CHECK(env.requests() - before == 2);
  CHECK((*r)->stats().bytes == file.size());
  before = env.requests();
  const std::vector<int> cols = {0, 1, 2, 3};
  auto chunks = (*r)->read_chunks({}, cols);
  REQUIRE(chunks.is_ok());
  for (const auto& ch : *chunks) CHECK(ch.bytes == file.substr(ch.offset, ch.bytes.size()));
  std::string all(file.size(), '\0');
  REQUIRE((*r)->read(all.data(), all.size(), 0).value() == file.size());
  CHECK(all == file);
  CHECK(env.requests() == before);
}

TEST_CASE("parquet: Store::open of a .parquet object reads through the parquet path; scans double the window") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3express",
          {{"parquet.small_object", "1M"}, {"parquet.window_initial", "256K"}, {"parquet.predict", "0"}});
  const std::string local = files.dir.path() + "/t-0000.parquet";
  const std::string file = slurp(local);
  env.upload(local, "scan.parquet");
  env.upload(local, "scan.bin");

  uint64_t before = env.requests();
  auto f = env.store->open(env.uri("scan.parquet"));
  REQUIRE(f.is_ok());
  CHECK(env.requests() - before == 2);  // HEAD + tail
  // A whole-file scan in 64 KiB reads: windows of 256K, 512K, 1M, 2M... not one GET per read.
  before = env.requests();
  std::string got(file.size(), '\0');
  for (uint64_t off = 0; off < file.size(); off += 64 << 10) {
    const size_t len = std::min<uint64_t>(64 << 10, file.size() - off);
    REQUIRE(f->read(got.data() + off, len, off).value() == len);
  }
  CHECK(got == file);
  const uint64_t scan_requests = env.requests() - before;
  CHECK(scan_requests <= 5);  // 256K + 512K + 1M + 2M > the ~3 MB before the footer
  CHECK(scan_requests >= 2);
  auto st = f->stat();
  REQUIRE(st.is_ok());
  CHECK(st->size == file.size());
  auto head = env.store->stat(env.uri("scan.parquet"));
  REQUIRE(head.is_ok());
  CHECK(st->mtime_ns == head->mtime_ns);
  CHECK(st->etag == head->etag);
  CHECK_FALSE(f->write("x", 1, 0).is_ok());
  REQUIRE(f->close().is_ok());

  // Without the suffix the S3 backend reads as before: one GET per read.
  auto plain = env.store->open(env.uri("scan.bin"));
  REQUIRE(plain.is_ok());
  before = env.requests();
  std::string buf(64 << 10, '\0');
  for (int i = 0; i < 4; ++i) REQUIRE(plain->read(buf.data(), buf.size(), i * buf.size()).is_ok());
  CHECK(env.requests() - before == 4);

  // parquet.read_path=off turns it off.
  Env off(server.endpoint(), "s3", {{"parquet.read_path", "off"}});
  off.upload(local, "x.parquet");
  auto g = off.store->open(off.uri("x.parquet"));
  REQUIRE(g.is_ok());
  before = off.requests();
  REQUIRE(g->read(buf.data(), 100, file.size() - 100).is_ok());
  CHECK(off.requests() - before == 1);
  // Invalid settings are refused at open.
  Env badenv(server.endpoint(), "s3", {{"parquet.coalesce_gap", "lots"}});
  badenv.upload(local, "y.parquet");
  CHECK(badenv.store->open(badenv.uri("y.parquet")).status().code() == Code::kInvalidArgument);
}

TEST_CASE("parquet: the columns read from one file are prefetched when the next file of the table opens") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3");
  for (int i = 0; i < 3; ++i)
    env.upload(files.dir.path() + "/t-000" + std::to_string(i) + ".parquet", "tbl/f" + std::to_string(i) + ".parquet");
  auto opts = sparse_options();
  opts.predict = true;
  const std::vector<int> cols = {0, 4};
  {
    auto r0 = parquet::Reader::open(*env.store, env.uri("tbl/f0.parquet"), opts);
    REQUIRE(r0.is_ok());
    CHECK((*r0)->stats().predicted_bytes == 0);  // nothing read before
    REQUIRE((*r0)->read_chunks({}, cols).is_ok());
  }
  uint64_t need = 0;
  for (const auto& c : files.chunks["t-0001.parquet"])
    if (c.column == 0 || c.column == 4) need += c.size;
  const uint64_t before = env.requests();
  auto r1 = parquet::Reader::open(*env.store, env.uri("tbl/f1.parquet"), opts);
  REQUIRE(r1.is_ok());
  auto chunks = (*r1)->read_chunks({}, cols);
  REQUIRE(chunks.is_ok());
  const std::string f1 = slurp(files.dir.path() + "/t-0001.parquet");
  for (const auto& ch : *chunks) CHECK(ch.bytes == f1.substr(ch.offset, ch.bytes.size()));
  auto st = (*r1)->stats();
  CHECK(st.predicted_bytes == need);
  CHECK(st.predicted_used == need);
  CHECK(st.bytes == tail_bytes(f1.size()) + need);  // nothing fetched twice
  // HEAD + tail + one GET per predicted chunk (columns 0 and 4 are apart), none on demand.
  CHECK(env.requests() - before == 2 + 2 * (*r1)->metadata().row_groups.size());
  r1->reset();

  // A budget smaller than one chunk: no prediction.
  auto tight = opts;
  tight.predict_budget = 1000;
  auto r2 = parquet::Reader::open(*env.store, env.uri("tbl/f2.parquet"), tight);
  REQUIRE(r2.is_ok());
  REQUIRE((*r2)->read_chunks({}, cols).is_ok());
  CHECK((*r2)->stats().predicted_bytes == 0);

  // A wrong guess: a file read for column 1 only gets columns 0 and 4 prefetched and unused; the
  // next file is predicted from what that one read (column 1 alone).
  r2->reset();
  {
    auto wrong = parquet::Reader::open(*env.store, env.uri("tbl/f0.parquet"), opts);
    REQUIRE(wrong.is_ok());
    const std::vector<int> col1 = {1};
    REQUIRE((*wrong)->read_chunks({}, col1).is_ok());
    CHECK((*wrong)->stats().predicted_used == 0);
  }
  uint64_t need1 = 0;
  for (const auto& c : files.chunks["t-0002.parquet"])
    if (c.column == 1) need1 += c.size;
  auto next = parquet::Reader::open(*env.store, env.uri("tbl/f2.parquet"), opts);
  REQUIRE(next.is_ok());
  const std::vector<int> col1 = {1};
  REQUIRE((*next)->read_chunks({}, col1).is_ok());
  CHECK((*next)->stats().predicted_bytes == need1);
  CHECK((*next)->stats().predicted_used == need1);

  // Another directory (another table): no prediction.
  env.upload(files.dir.path() + "/t-0001.parquet", "other/f.parquet");
  auto r3 = parquet::Reader::open(*env.store, env.uri("other/f.parquet"), opts);
  REQUIRE(r3.is_ok());
  REQUIRE((*r3)->read_chunks({}, cols).is_ok());
  CHECK((*r3)->stats().predicted_bytes == 0);
}

TEST_CASE("parquet: a cold tier:// parquet file is read by column chunks, not fetched whole") {
  REQUIRE_PARQUET_FILES();
  Env env(server.endpoint(), "s3express");
  const std::string local = files.dir.path() + "/t-0001.parquet";
  const std::string file = slurp(local);
  env.upload(local, "data/t.parquet");
  env.upload(local, "data/whole.parquet");
  stor::test::TempDir fast;
  tiering::TierOptions o;
  o.fast = env.store->backend(Uri::parse("nvme:///").value()).value();
  o.fast_root = "nvme://" + fast.path();
  o.cold = env.store->backend(Uri::parse("s3express://" + env.bucket).value()).value();
  o.cold_root = "s3express://" + env.bucket + "/data";
  o.state_dir = fast.path() + "/.stor-tier";
  o.parquet_sparse_min = 1 << 20;
  auto t = tiering::TieredStore::open(o);
  REQUIRE(t.is_ok());
  REQUIRE((*t)->import_listing().value() == 2);

  uint64_t before = env.requests();
  auto f = (*t)->open_file("t.parquet", {kOpenRead});
  REQUIRE(f.is_ok());
  CHECK(env.requests() - before == 1);  // the tail (the footer fits)
  // A query engine's reads of two column chunks: one ranged GET each, the bytes of the object.
  const auto& want = files.chunks["t-0001.parquet"];
  for (const ChunkInfo* c : {&want[1], &want[2 * 8 + 5]}) {
    before = env.requests();
    std::string buf(c->size, '\0');
    REQUIRE((*f)->read(buf.data(), buf.size(), c->offset).value() == c->size);
    CHECK(buf == file.substr(c->offset, c->size));
    CHECK(env.requests() - before == 1);
    // Re-reading part of it is served from memory.
    REQUIRE((*f)->read(buf.data(), 1000, c->offset + 10).value() == 1000);
    CHECK(env.requests() - before == 1);
  }
  REQUIRE((*f)->close().is_ok());
  CHECK((*t)->status("t.parquet")->residency == tiering::Residency::kUncached);  // never fetched

  // Under the threshold (here: everything, with parquet_sparse_min = 0 in another namespace) the
  // first data read fetches the file, as before.
  (*t).reset();
  o.parquet_sparse_min = 0;
  auto t2 = tiering::TieredStore::open(o);
  REQUIRE(t2.is_ok());
  auto g = (*t2)->open_file("whole.parquet", {kOpenRead});
  REQUIRE(g.is_ok());
  std::string buf(want[1].size, '\0');
  REQUIRE((*g)->read(buf.data(), buf.size(), want[1].offset).value() == want[1].size);
  CHECK(buf == file.substr(want[1].offset, want[1].size));
  REQUIRE((*g)->close().is_ok());
  CHECK((*t2)->status("whole.parquet")->residency == tiering::Residency::kCached);
}
