// The Parquet read path (include/stor/parquet.h, docs/parquet.md): footer prefetch and the
// process-wide footer cache, column chunk reads as coalesced ranged GETs, small objects whole,
// a doubling sequential window, column prediction, and the File wrapper Store::open uses.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "core/parquet_internal.h"
#include "core/task_pool.h"
#include "stor/object_store.h"
#include "stor/parquet.h"
#include "stor/settings.h"
#include "stor/store.h"

namespace stor::parquet {

Result<ReaderOptions> ReaderOptions::from_settings(const std::map<std::string, std::string>& settings) {
  Settings s(settings);
  ReaderOptions o;
  STOR_ASSIGN_OR_RETURN(o.small_object_bytes, s.get_size("parquet.small_object", o.small_object_bytes));
  STOR_ASSIGN_OR_RETURN(o.coalesce_gap, s.get_size("parquet.coalesce_gap", o.coalesce_gap, 0, 1ull << 30));
  STOR_ASSIGN_OR_RETURN(o.window_initial, s.get_size("parquet.window_initial", o.window_initial, 4096, 1ull << 30));
  STOR_ASSIGN_OR_RETURN(o.window_max, s.get_size("parquet.window_max", o.window_max, 4096, 4ull << 30));
  STOR_ASSIGN_OR_RETURN(o.cache_bytes, s.get_size("parquet.cache_bytes", o.cache_bytes));
  STOR_ASSIGN_OR_RETURN(o.predict, s.get_bool("parquet.predict", o.predict));
  STOR_ASSIGN_OR_RETURN(o.predict_budget, s.get_size("parquet.predict_budget", o.predict_budget));
  STOR_ASSIGN_OR_RETURN(o.page_index, s.get_bool("parquet.page_index", o.page_index));
  STOR_ASSIGN_OR_RETURN(uint64_t par, s.get_uint("parquet.parallel", o.parallel, 1, 64));
  o.parallel = static_cast<unsigned>(par);
  if (o.window_max < o.window_initial) o.window_max = o.window_initial;
  return o;
}

namespace {

constexpr uint64_t kMaxFooter = 256ull << 20;  // refuse footers claiming more (untrusted length)
constexpr uint64_t kFooterCacheBytes = 256ull << 20;
constexpr size_t kMaxPredictionKeys = 4096;
constexpr size_t kBulkRead = 16ull << 20;  // ranges from here on are read with read_version_bulk

// Bytes read from the end of a large object at open: enough for the footer of most files in one
// request, growing with the object (bigger files have more row groups and longer footers).
uint64_t tail_size(uint64_t size) {
  if (size < (64ull << 20)) return 64ull << 10;
  if (size < (1ull << 30)) return 512ull << 10;
  return 1ull << 20;
}

using internal::RangeSource;

class ObjectSource final : public RangeSource {
 public:
  ObjectSource(std::shared_ptr<Backend> backend, ObjectStore* os, Uri uri)
      : backend_(std::move(backend)), os_(os), uri_(std::move(uri)) {}
  Result<size_t> read(uint64_t offset, size_t len, char* dst) override {
    // If-Match: never another version. Large ranges (scan windows) go to the bulk read, which
    // S3 splits into parallel part-sized GETs.
    if (len >= kBulkRead) return os_->read_version_bulk(uri_, ObjectVersion{uri_.path, size, 0, etag}, offset, len, dst);
    return os_->read_version(uri_, etag, offset, len, dst);
  }

 private:
  std::shared_ptr<Backend> backend_;
  ObjectStore* os_;
  Uri uri_;
};

class FileSource final : public RangeSource {
 public:
  explicit FileSource(std::unique_ptr<BackendFile> f) : f_(std::move(f)) {}
  ~FileSource() override { (void)f_->close(); }
  Result<size_t> read(uint64_t offset, size_t len, char* dst) override {
    // A backend may return short reads before the end: loop to what the file holds.
    size_t done = 0;
    while (done < len) {
      STOR_ASSIGN_OR_RETURN(size_t n, f_->read(dst + done, len - done, offset + done));
      if (n == 0) break;
      done += n;
    }
    return done;
  }

 private:
  std::unique_ptr<BackendFile> f_;
};

// ---- process-wide footer cache, per (URI, validator) ----

struct CachedFooter {
  FileMetaData md;
  uint64_t offset = 0;  // where the footer bytes start (the thrift FileMetaData)
  std::string bytes;    // [offset, size): the footer, its length and "PAR1"
  std::mutex mu;        // page_index below
  bool page_index_loaded = false;
  uint64_t page_index_offset = 0;
  std::string page_index;
};

class FooterCache {
 public:
  static FooterCache& get() {
    static FooterCache* c = new FooterCache;  // never destroyed: readers may outlive statics
    return *c;
  }
  std::shared_ptr<CachedFooter> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second.second);
    return it->second.first;
  }
  void put(const std::string& key, std::shared_ptr<CachedFooter> f) {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.count(key)) return;
    bytes_ += f->bytes.size();
    lru_.push_front(key);
    map_.emplace(key, std::make_pair(std::move(f), lru_.begin()));
    while (bytes_ > kFooterCacheBytes && lru_.size() > 1) {
      auto victim = map_.find(lru_.back());
      bytes_ -= victim->second.first->bytes.size();
      map_.erase(victim);
      lru_.pop_back();
    }
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
    lru_.clear();
    bytes_ = 0;
  }

 private:
  std::mutex mu_;
  std::list<std::string> lru_;
  std::map<std::string, std::pair<std::shared_ptr<CachedFooter>, std::list<std::string>::iterator>> map_;
  uint64_t bytes_ = 0;
};

// ---- column prediction: the columns read from the last file of a (directory, schema) ----

class Predictions {
 public:
  static Predictions& get() {
    static Predictions* p = new Predictions;
    return *p;
  }
  std::vector<int> find(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    return it == map_.end() ? std::vector<int>{} : it->second;
  }
  // merge: add to the prediction (a reader still reading: files opening meanwhile should not see
  // only the columns it got to so far); else replace it (a reader closing: a column it did not
  // read leaves the prediction).
  void set(const std::string& key, const std::set<int>& cols, bool merge) {
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kMaxPredictionKeys && !map_.count(key)) map_.erase(map_.begin());
    std::vector<int>& v = map_[key];
    std::set<int> all(cols);
    if (merge) all.insert(v.begin(), v.end());
    v.assign(all.begin(), all.end());
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
  }
  // Process-wide bytes of predicted chunks fetched or being fetched.
  bool reserve(uint64_t n, uint64_t budget) {
    uint64_t cur = used_.load();
    do {
      if (cur + n > budget) return false;
    } while (!used_.compare_exchange_weak(cur, cur + n));
    return true;
  }
  void release(uint64_t n) { used_.fetch_sub(n); }

 private:
  std::mutex mu_;
  std::map<std::string, std::vector<int>> map_;
  std::atomic<uint64_t> used_{0};
};

std::string parent_of(const Uri& uri) {
  const size_t slash = uri.path.rfind('/');
  return uri.scheme + "://" + uri.authority + (slash == std::string::npos ? "" : uri.path.substr(0, slash));
}

std::string schema_key(const FileMetaData& md) {
  std::string k;
  for (size_t i = 0; i < md.columns.size(); ++i) {
    k += md.columns[i];
    k += ':';
    k += std::to_string(md.row_groups.empty() ? -2 : md.row_groups[0].columns[i].type);
    k += ';';
  }
  return k;
}

struct Range {
  uint64_t offset = 0, len = 0;
};

// Sorted, merged ranges: neighbours whose gap is at most `gap` become one.
std::vector<Range> coalesce(std::vector<Range> in, uint64_t gap) {
  std::sort(in.begin(), in.end(), [](const Range& a, const Range& b) { return a.offset < b.offset; });
  std::vector<Range> out;
  for (const Range& r : in) {
    if (r.len == 0) continue;
    if (!out.empty() && r.offset <= out.back().offset + out.back().len + gap) {
      const uint64_t end = std::max(out.back().offset + out.back().len, r.offset + r.len);
      out.back().len = end - out.back().offset;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

// A fetched range of the object.
struct Block {
  uint64_t offset = 0;
  std::shared_ptr<const std::string> bytes;
  uint64_t tick = 0;
  bool contains(uint64_t off, uint64_t len) const { return off >= offset && off + len <= offset + bytes->size(); }
};

// A predicted range fetched in the background.
struct Prefetch {
  Range range;
  enum State { kQueued, kRunning, kDone, kFailed, kCancelled } state = kQueued;
  std::shared_ptr<const std::string> bytes;
};

}  // namespace

struct Reader::Impl {
  ReaderOptions opts;
  Uri uri;
  std::unique_ptr<RangeSource> src;
  std::string seed;  // end of the object known before open (a caller's own footer prefetch)
  uint64_t seed_offset = 0;
  std::shared_ptr<CachedFooter> footer;
  std::string whole;  // small objects
  bool have_whole = false;
  std::string predict_key;

  mutable std::mutex mu;
  std::condition_variable cv;
  std::vector<Block> blocks;  // guarded by mu
  uint64_t block_bytes = 0, tick = 0;
  uint64_t seq_end = UINT64_MAX, window = 0, streak = 0;
  std::set<int> columns_read;
  std::vector<Prefetch> prefetch;
  uint64_t prefetch_reserved = 0;
  bool cancel = false;
  std::vector<std::thread> prefetchers;

  std::atomic<uint64_t> requests{0}, bytes{0}, footer_hits{0}, predicted_bytes{0}, predicted_used{0};

  ~Impl() {
    // What this file was read for is the prediction for the next one.
    if (!predict_key.empty() && !columns_read.empty()) Predictions::get().set(predict_key, columns_read, false);
    {
      std::lock_guard<std::mutex> lock(mu);
      cancel = true;
      for (auto& p : prefetch)
        if (p.state == Prefetch::kQueued) p.state = Prefetch::kCancelled;
    }
    cv.notify_all();
    for (auto& t : prefetchers) t.join();
    if (prefetch_reserved) Predictions::get().release(prefetch_reserved);
  }

  // One counted backend request; exactly len bytes or an error (ranges are within the object).
  Result<std::shared_ptr<const std::string>> fetch(uint64_t offset, uint64_t len) {
    auto buf = std::make_shared<std::string>(static_cast<size_t>(len), '\0');
    requests.fetch_add(1);
    STOR_ASSIGN_OR_RETURN(size_t n, src->read(offset, static_cast<size_t>(len), buf->data()));
    bytes.fetch_add(n);
    if (n != len)
      return Status::IoError(uri.to_string() + ": short read of " + std::to_string(len) + " bytes at " +
                             std::to_string(offset) + " (got " + std::to_string(n) + "): the object changed?");
    return std::shared_ptr<const std::string>(std::move(buf));
  }

  // Fetches ranges, up to opts.parallel at once; results in the ranges' order.
  Result<std::vector<std::shared_ptr<const std::string>>> fetch_all(const std::vector<Range>& ranges) {
    std::vector<std::shared_ptr<const std::string>> out(ranges.size());
    std::vector<Status> errs(ranges.size());
    std::atomic<size_t> next{0};
    auto work = [&] {
      for (size_t i; (i = next.fetch_add(1)) < ranges.size();) {
        auto r = fetch(ranges[i].offset, ranges[i].len);
        if (r.is_ok()) out[i] = std::move(r).value();
        else errs[i] = r.status();
      }
    };
    const size_t threads = std::min<size_t>(opts.parallel, ranges.size());
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    for (auto& e : errs)
      if (!e.is_ok()) return e;
    return out;
  }

  Status open_footer() {
    const uint64_t size = src->size;
    const std::string name = uri.to_string();
    if (size < 12) return Status::Corruption(name + ": " + std::to_string(size) + " bytes is too small for parquet");
    const std::string key = name + '\n' + src->validator;
    footer = FooterCache::get().find(key);
    if (footer) footer_hits.fetch_add(1);
    std::shared_ptr<const std::string> tail;
    uint64_t tail_off;
    if (size < opts.small_object_bytes) {
      STOR_ASSIGN_OR_RETURN(tail, fetch(0, size));
      whole = *tail;
      have_whole = true;
      if (whole.compare(0, 4, "PAR1") != 0) return Status::Corruption(name + ": no PAR1 magic at the start");
      tail_off = 0;
    } else if (footer) {
      return Status::ok();
    } else if (seed.size() >= 12 && seed_offset + seed.size() == size) {
      tail_off = seed_offset;
      tail = std::make_shared<const std::string>(std::move(seed));
    } else {
      tail_off = size - std::min(tail_size(size), size);
      STOR_ASSIGN_OR_RETURN(tail, fetch(tail_off, size - tail_off));
    }
    if (footer) return Status::ok();
    const auto* t = reinterpret_cast<const uint8_t*>(tail->data()) + tail->size() - 8;
    if (std::memcmp(t + 4, "PAR1", 4) != 0) return Status::Corruption(name + ": no PAR1 magic at the end (not parquet, or encrypted)");
    const uint64_t flen = t[0] | (t[1] << 8) | (t[2] << 16) | (uint64_t(t[3]) << 24);
    if (flen + 12 > size || flen > kMaxFooter)
      return Status::Corruption(name + ": footer length " + std::to_string(flen) + " does not fit the object");
    auto f = std::make_shared<CachedFooter>();
    f->offset = size - 8 - flen;
    if (f->offset >= tail_off) {
      f->bytes = tail->substr(static_cast<size_t>(f->offset - tail_off));
    } else {
      // The footer is longer than the tail: one more request for the rest.
      STOR_ASSIGN_OR_RETURN(auto head, fetch(f->offset, tail_off - f->offset));
      f->bytes = *head + *tail;
    }
    if (!have_whole && tail_off > f->offset) tail_off = f->offset;
    STOR_ASSIGN_OR_RETURN(f->md, parse_metadata(f->bytes.data(), f->bytes.size() - 8));
    for (size_t g = 0; g < f->md.row_groups.size(); ++g)
      for (const ColumnChunk& c : f->md.row_groups[g].columns)
        if (c.offset < 4 || c.offset + c.compressed_size > f->offset)
          return Status::Corruption(name + ": column chunk '" + c.path + "' of row group " + std::to_string(g) +
                                    " lies outside the data (" + std::to_string(c.offset) + "+" +
                                    std::to_string(c.compressed_size) + ", footer at " + std::to_string(f->offset) + ")");
    footer = f;
    FooterCache::get().put(key, f);
    // The data bytes of the tail serve later reads of the last chunks.
    if (!have_whole && f->offset > tail_off) add_block(tail_off, std::make_shared<std::string>(tail->substr(0, f->offset - tail_off)));
    return Status::ok();
  }

  void start_prediction() {
    if (!opts.predict || have_whole) return;
    const FileMetaData& md = footer->md;
    predict_key = parent_of(uri) + '\n' + schema_key(md);
    std::vector<int> cols = Predictions::get().find(predict_key);
    if (cols.empty()) return;
    std::vector<Range> want;
    for (const RowGroup& rg : md.row_groups)
      for (int c : cols)
        if (c >= 0 && static_cast<size_t>(c) < rg.columns.size())
          want.push_back({rg.columns[c].offset, rg.columns[c].compressed_size});
    for (const Range& r : coalesce(std::move(want), opts.coalesce_gap)) {
      if (!Predictions::get().reserve(r.len, opts.predict_budget)) break;  // over budget: the rest on demand
      prefetch_reserved += r.len;
      Prefetch p;
      p.range = r;
      prefetch.push_back(std::move(p));
    }
    if (prefetch.empty()) return;
    const size_t threads = std::min<size_t>(opts.parallel, prefetch.size());
    for (size_t t = 0; t < threads; ++t) prefetchers.emplace_back([this] { run_prefetch(); });
  }

  void run_prefetch() {
    for (;;) {
      size_t i;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (cancel) return;
        auto it = std::find_if(prefetch.begin(), prefetch.end(), [](const Prefetch& p) { return p.state == Prefetch::kQueued; });
        if (it == prefetch.end()) return;
        it->state = Prefetch::kRunning;
        i = static_cast<size_t>(it - prefetch.begin());
      }
      const Range r = prefetch[i].range;  // ranges never change after start_prediction
      auto got = fetch(r.offset, r.len);
      if (got.is_ok()) predicted_bytes.fetch_add(r.len);
      {
        std::lock_guard<std::mutex> lock(mu);
        if (got.is_ok()) {
          prefetch[i].bytes = std::move(got).value();
          prefetch[i].state = Prefetch::kDone;
        } else {
          prefetch[i].state = Prefetch::kFailed;  // read on demand instead
        }
      }
      cv.notify_all();
    }
  }

  void add_block(uint64_t offset, std::shared_ptr<const std::string> b) {
    // Caller holds no lock.
    std::lock_guard<std::mutex> lock(mu);
    add_block_locked(offset, std::move(b));
  }
  void add_block_locked(uint64_t offset, std::shared_ptr<const std::string> b) {
    if (b->size() > opts.cache_bytes) return;
    block_bytes += b->size();
    blocks.push_back({offset, std::move(b), ++tick});
    while (block_bytes > opts.cache_bytes) {
      auto victim = std::min_element(blocks.begin(), blocks.end(), [](const Block& a, const Block& c) { return a.tick < c.tick; });
      block_bytes -= victim->bytes->size();
      blocks.erase(victim);
    }
  }

  // Copies [off, off+len) from memory when the footer, held blocks and predicted ranges (waiting
  // for one being fetched) cover it, piece by piece. Lock held.
  bool from_memory_locked(std::unique_lock<std::mutex>& lock, uint64_t off, uint64_t len, char* dst) {
    if (have_whole) {
      std::memcpy(dst, whole.data() + off, len);
      return true;
    }
    const uint64_t end = off + len;
    uint64_t pos = off;
    while (pos < end) {
      const char* from = nullptr;
      uint64_t avail = 0;
      bool predicted = false;
      if (pos >= footer->offset) {
        from = footer->bytes.data() + (pos - footer->offset);
        avail = footer->offset + footer->bytes.size() - pos;
      }
      for (size_t i = 0; !from && i < blocks.size(); ++i) {
        Block& b = blocks[i];
        if (pos < b.offset || pos >= b.offset + b.bytes->size()) continue;
        from = b.bytes->data() + (pos - b.offset);
        avail = b.offset + b.bytes->size() - pos;
        b.tick = ++tick;
      }
      for (size_t i = 0; !from && i < prefetch.size(); ++i) {
        const Range r = prefetch[i].range;
        if (pos < r.offset || pos >= r.offset + r.len) continue;
        cv.wait(lock, [&] { return prefetch[i].state != Prefetch::kQueued && prefetch[i].state != Prefetch::kRunning; });
        if (prefetch[i].state != Prefetch::kDone) break;
        from = prefetch[i].bytes->data() + (pos - r.offset);
        avail = r.offset + r.len - pos;
        predicted = true;
      }
      if (!from) return false;
      const uint64_t n = std::min(avail, end - pos);
      std::memcpy(dst + (pos - off), from, n);
      if (predicted) predicted_used.fetch_add(n);
      pos += n;
    }
    return true;
  }

  void note_columns(const std::set<int>& cols) {
    if (!opts.predict || have_whole || predict_key.empty() || cols.empty()) return;
    std::set<int> now;
    {
      std::lock_guard<std::mutex> lock(mu);
      const size_t before = columns_read.size();
      columns_read.insert(cols.begin(), cols.end());
      if (columns_read.size() == before) return;
      now = columns_read;
    }
    Predictions::get().set(predict_key, now, true);
  }

  Result<std::vector<Chunk>> read_chunks(std::span<const int> rgs, std::span<const int> cols) {
    const FileMetaData& md = footer->md;
    std::vector<int> groups(rgs.begin(), rgs.end());
    if (groups.empty())
      for (size_t g = 0; g < md.row_groups.size(); ++g) groups.push_back(static_cast<int>(g));
    std::vector<Chunk> out;
    for (int g : groups) {
      if (g < 0 || static_cast<size_t>(g) >= md.row_groups.size())
        return Status::InvalidArgument(uri.to_string() + ": no row group " + std::to_string(g));
      for (int c : cols) {
        if (c < 0 || static_cast<size_t>(c) >= md.columns.size())
          return Status::InvalidArgument(uri.to_string() + ": no column " + std::to_string(c));
        const ColumnChunk& cc = md.row_groups[g].columns[c];
        out.push_back({g, c, cc.offset, std::string(static_cast<size_t>(cc.compressed_size), '\0')});
      }
    }
    note_columns(std::set<int>(cols.begin(), cols.end()));
    std::vector<size_t> missing;
    {
      std::unique_lock<std::mutex> lock(mu);
      for (size_t i = 0; i < out.size(); ++i)
        if (!from_memory_locked(lock, out[i].offset, out[i].bytes.size(), out[i].bytes.data())) missing.push_back(i);
    }
    if (missing.empty()) return out;
    std::vector<Range> want;
    for (size_t i : missing) want.push_back({out[i].offset, out[i].bytes.size()});
    const std::vector<Range> ranges = coalesce(std::move(want), opts.coalesce_gap);
    STOR_ASSIGN_OR_RETURN(auto got, fetch_all(ranges));
    for (size_t i : missing) {
      Chunk& ch = out[i];
      const auto r = std::upper_bound(ranges.begin(), ranges.end(), ch.offset,
                                      [](uint64_t off, const Range& x) { return off < x.offset; }) - 1;
      const auto& b = got[static_cast<size_t>(r - ranges.begin())];
      std::memcpy(ch.bytes.data(), b->data() + (ch.offset - r->offset), ch.bytes.size());
    }
    return out;
  }

  Result<size_t> read(char* dst, size_t len, uint64_t off) {
    const uint64_t size = src->size;
    if (off >= size || len == 0) return size_t{0};
    if (len > size - off) len = static_cast<size_t>(size - off);
    bool scan;
    {
      std::unique_lock<std::mutex> lock(mu);
      streak = off == seq_end ? streak + 1 : 0;
      seq_end = off + len;
      if (from_memory_locked(lock, off, len, dst)) return len;
      // Two reads in a row that continue each other: a scan, served by a growing window.
      scan = streak >= 2;
    }
    std::vector<Range> ranges;
    if (!scan) {
      // Inside column chunks: fetch exactly the chunks the range touches.
      const FileMetaData& md = footer->md;
      std::vector<Range> chunks;
      std::set<int> cols;
      uint64_t covered = 0;
      for (const RowGroup& rg : md.row_groups)
        for (size_t c = 0; c < rg.columns.size(); ++c) {
          const ColumnChunk& cc = rg.columns[c];
          const uint64_t lo = std::max(off, cc.offset), hi = std::min(off + len, cc.offset + cc.compressed_size);
          if (lo >= hi) continue;
          chunks.push_back({cc.offset, cc.compressed_size});
          cols.insert(static_cast<int>(c));
          covered += hi - lo;
        }
      if (!chunks.empty() && covered == len) {
        ranges = coalesce(std::move(chunks), opts.coalesce_gap);
        note_columns(cols);
      }
    }
    if (ranges.empty()) {
      // A scan, or bytes outside the column chunks: a window from `off`, doubling while the scan
      // goes on, up to window_max; it stops at the footer (held already).
      std::lock_guard<std::mutex> lock(mu);
      window = scan ? std::min(std::max(window * 2, opts.window_initial), opts.window_max) : opts.window_initial;
      const uint64_t limit = off < footer->offset ? footer->offset : size;
      const uint64_t end = std::max(off + len, std::min(limit, off + window));
      ranges.push_back({off, end - off});
    }
    STOR_ASSIGN_OR_RETURN(auto got, fetch_all(ranges));
    std::unique_lock<std::mutex> lock(mu);
    for (size_t i = 0; i < ranges.size(); ++i) add_block_locked(ranges[i].offset, got[i]);
    // The ranges cover [off, off+len) without holes (chunks back to back, or one window) unless
    // chunks are apart by more than the gap: then copy piecewise.
    size_t done = 0;
    for (size_t i = 0; i < ranges.size(); ++i) {
      const uint64_t lo = std::max(off, ranges[i].offset), hi = std::min(off + len, ranges[i].offset + ranges[i].len);
      if (lo >= hi) continue;
      std::memcpy(dst + (lo - off), got[i]->data() + (lo - ranges[i].offset), hi - lo);
      done += hi - lo;
    }
    if (done != len) return Status::Internal(uri.to_string() + ": parquet read left a hole");
    return len;
  }

  Result<std::string> page_index() {
    std::lock_guard<std::mutex> lock(footer->mu);
    if (footer->page_index_loaded) return footer->page_index;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const RowGroup& rg : footer->md.row_groups)
      for (const ColumnChunk& c : rg.columns) {
        if (c.column_index_offset >= 0 && c.column_index_length) {
          lo = std::min<uint64_t>(lo, c.column_index_offset);
          hi = std::max<uint64_t>(hi, c.column_index_offset + c.column_index_length);
        }
        if (c.offset_index_offset >= 0 && c.offset_index_length) {
          lo = std::min<uint64_t>(lo, c.offset_index_offset);
          hi = std::max<uint64_t>(hi, c.offset_index_offset + c.offset_index_length);
        }
      }
    std::string out;
    if (lo < hi) {
      if (hi > footer->offset) return Status::Corruption(uri.to_string() + ": page index overlaps the footer");
      out.resize(static_cast<size_t>(hi - lo));
      bool have = false;
      {
        std::unique_lock<std::mutex> l2(mu);
        have = from_memory_locked(l2, lo, hi - lo, out.data());
      }
      if (!have) {
        STOR_ASSIGN_OR_RETURN(auto b, fetch(lo, hi - lo));
        out = *b;
      }
      footer->page_index_offset = lo;
    }
    footer->page_index = out;
    footer->page_index_loaded = true;
    return out;
  }
};

Reader::Reader(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Reader::~Reader() = default;

namespace internal {

Result<std::shared_ptr<Reader::Impl>> open_source(std::unique_ptr<RangeSource> src, const Uri& uri,
                                                  const ReaderOptions& options, std::string seed, uint64_t seed_offset,
                                                  uint64_t requests_made) {
  auto impl = std::make_shared<Reader::Impl>();
  impl->opts = options;
  impl->uri = uri;
  impl->src = std::move(src);
  impl->seed = std::move(seed);
  impl->seed_offset = seed_offset;
  impl->requests.fetch_add(requests_made);
  STOR_RETURN_IF_ERROR(impl->open_footer());
  if (options.page_index) STOR_RETURN_IF_ERROR(impl->page_index().status());
  impl->start_prediction();
  return impl;
}

Result<size_t> read(Reader::Impl& impl, char* dst, size_t len, uint64_t offset) { return impl.read(dst, len, offset); }

Result<std::shared_ptr<Reader::Impl>> open_impl(Store& store, const Uri& uri, const ReaderOptions& options) {
  STOR_ASSIGN_OR_RETURN(auto backend, store.backend(uri));
  if (ObjectStore* os = backend->object_store()) {
    STOR_ASSIGN_OR_RETURN(ObjectVersion v, os->head_object(uri));
    auto src = std::make_unique<ObjectSource>(backend, os, uri);
    src->size = v.size;
    src->mtime_ns = v.mtime_ns;
    src->etag = v.etag;
    src->validator = "etag:" + v.etag;
    return open_source(std::move(src), uri, options, {}, 0, 1);  // the HEAD: size and ETag
  }
  STOR_ASSIGN_OR_RETURN(auto f, backend->open(uri, OpenOptions{kOpenRead, 0}));
  STOR_ASSIGN_OR_RETURN(FileInfo fi, f->stat());
  auto src = std::make_unique<FileSource>(std::move(f));
  src->size = fi.size;
  src->mtime_ns = fi.mtime_ns;
  src->etag = fi.etag;
  src->validator = fi.etag.empty() ? "size:" + std::to_string(fi.size) + ",mtime:" + std::to_string(fi.mtime_ns)
                                   : "etag:" + fi.etag;
  return open_source(std::move(src), uri, options, {}, 0, 0);
}

namespace {

// What Store::open returns for a parquet object: reads go through the Reader's policy, run on a
// small process-wide pool (the Reader's calls block).
class ParquetFile final : public BackendFile {
 public:
  explicit ParquetFile(std::shared_ptr<Reader::Impl> impl) : impl_(std::move(impl)) {}
  ~ParquetFile() override { wait_idle(); }

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return done(Status::InvalidArgument(impl_->uri.to_string() + ": file is closed"));
      ++pending_;
    }
    pool().post([this, buf, len, offset, done = std::move(done)] {
      done(impl_->read(static_cast<char*>(buf), len, offset));
      std::lock_guard<std::mutex> lock(mu_);
      if (--pending_ == 0) cv_.notify_all();
    });
  }
  void write_async(const void*, size_t, uint64_t, IoCallback done) override {
    done(Status::InvalidArgument(impl_->uri.to_string() + ": parquet file opened for reading"));
  }
  Status sync(bool) override { return Status::ok(); }
  Status truncate(uint64_t) override {
    return Status::InvalidArgument(impl_->uri.to_string() + ": parquet file opened for reading");
  }
  Result<FileInfo> stat() override {
    FileInfo fi;
    fi.path = impl_->uri.path;
    fi.size = impl_->src->size;
    fi.mtime_ns = impl_->src->mtime_ns;
    fi.etag = impl_->src->etag;
    fi.mode = 0644;
    return fi;
  }
  Status close() override {
    wait_idle();
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    return Status::ok();
  }

 private:
  static ::stor::internal::TaskPool& pool() {
    static auto* p = new ::stor::internal::TaskPool(8);  // process-wide, never destroyed (files may close late)
    return *p;
  }
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return pending_ == 0; });
  }
  std::shared_ptr<Reader::Impl> impl_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t pending_ = 0;
  bool closed_ = false;
};

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Result<std::unique_ptr<BackendFile>> maybe_open_parquet(Store& store, Backend& backend, const Uri& uri, uint32_t flags,
                                                        const std::map<std::string, std::string>& settings) {
  if ((flags & ~kOpenRead) != 0 || backend.object_store() == nullptr) return std::unique_ptr<BackendFile>();
  STOR_ASSIGN_OR_RETURN(std::string mode,
                        Settings(settings).get_choice("parquet.read_path", "auto", {"auto", "off", "all"}));
  if (mode == "off" || (mode == "auto" && !ends_with(uri.path, ".parquet"))) return std::unique_ptr<BackendFile>();
  STOR_ASSIGN_OR_RETURN(ReaderOptions o, ReaderOptions::from_settings(settings));
  STOR_ASSIGN_OR_RETURN(auto impl, open_impl(store, uri, o));
  return std::unique_ptr<BackendFile>(std::make_unique<ParquetFile>(std::move(impl)));
}

}  // namespace internal

Result<std::unique_ptr<Reader>> Reader::open(Store& store, std::string_view text, const ReaderOptions& options) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto impl, internal::open_impl(store, uri, options));
  return std::make_unique<Reader>(std::move(impl));
}

Result<std::unique_ptr<Reader>> Reader::open(Store& store, std::string_view uri) {
  STOR_ASSIGN_OR_RETURN(ReaderOptions o, ReaderOptions::from_settings(store.settings()));
  return open(store, uri, o);
}

const FileMetaData& Reader::metadata() const { return impl_->footer->md; }
uint64_t Reader::size() const { return impl_->src->size; }
const std::string& Reader::etag() const { return impl_->src->etag; }

Result<int> Reader::column_index(std::string_view path) const {
  const auto& cols = impl_->footer->md.columns;
  for (size_t i = 0; i < cols.size(); ++i)
    if (cols[i] == path) return static_cast<int>(i);
  return Status::NotFound(impl_->uri.to_string() + ": no column '" + std::string(path) + "'");
}

Result<std::vector<Chunk>> Reader::read_chunks(std::span<const int> row_groups, std::span<const int> columns) {
  return impl_->read_chunks(row_groups, columns);
}

Result<std::vector<Chunk>> Reader::read_columns(std::span<const int> row_groups, const std::vector<std::string>& names) {
  std::vector<int> cols;
  for (const auto& n : names) {
    STOR_ASSIGN_OR_RETURN(int c, column_index(n));
    cols.push_back(c);
  }
  return impl_->read_chunks(row_groups, cols);
}

Result<size_t> Reader::read(void* dst, size_t len, uint64_t offset) {
  return impl_->read(static_cast<char*>(dst), len, offset);
}

Result<std::string> Reader::page_index() { return impl_->page_index(); }

ReaderStats Reader::stats() const {
  ReaderStats s;
  s.requests = impl_->requests.load();
  s.bytes = impl_->bytes.load();
  s.footer_cache_hits = impl_->footer_hits.load();
  s.predicted_bytes = impl_->predicted_bytes.load();
  s.predicted_used = impl_->predicted_used.load();
  return s;
}

void clear_caches() {
  FooterCache::get().clear();
  Predictions::get().clear();
}

}  // namespace stor::parquet
