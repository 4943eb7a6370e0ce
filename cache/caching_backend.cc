// Block cache decorator: segmented LRU of fixed-size blocks shared by every handle of a URI,
// read-ahead for sequential handles, write-back of dirty blocks. See include/stor/cache.h.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <unordered_map>

#include "stor/cache.h"
#include "stor/object_store.h"

namespace stor::cache {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

enum class Segment : uint8_t { kNone, kProbation, kProtected };

struct Object;

struct Block {
  Object* owner = nullptr;
  uint64_t index = 0;
  std::vector<char> data;           // block_size bytes; bytes past the file end are zero
  bool dirty = false;
  uint64_t dirty_lo = 0, dirty_hi = 0;  // dirty byte range within the block
  uint64_t version = 0;             // bumped by every write, so a flush knows what it wrote
  bool from_readahead = false;      // not yet touched by a demand read
  Segment segment = Segment::kNone; // kNone while dirty (dirty blocks are not evictable)
  std::list<Block*>::iterator pos;
};

struct Validator {
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  std::string etag;
  bool operator==(const Validator&) const = default;
};

// Per-URI state shared by all handles.
struct Object {
  std::string key;
  bool validated = false;
  Validator validator;
  int64_t validated_at = 0;
  uint64_t logical_size = 0;        // backend size, extended by cached writes
  uint64_t generation = 0;          // bumped on invalidation: late fills of older data are dropped
  std::map<uint64_t, std::unique_ptr<Block>> blocks;
  std::set<uint64_t> inflight;      // blocks being read from the backend
  uint64_t dirty_bytes = 0;
  int open_handles = 0;
  std::mutex flush_mu;              // one flush / truncate at a time
};

Validator validator_of(const FileInfo& info) { return {info.size, info.mtime_ns, info.etag}; }

// Copies block bytes into a caller's segments or out of them, in order.
class SegmentCopier {
 public:
  explicit SegmentCopier(std::span<const struct iovec> iov) : cursor_(iov) {}
  void fill_from(const char* src, size_t n) {
    for (const auto& v : next(n)) {
      std::memcpy(v.iov_base, src, v.iov_len);
      src += v.iov_len;
    }
  }
  void drain_to(char* dst, size_t n) {
    for (const auto& v : next(n)) {
      std::memcpy(dst, v.iov_base, v.iov_len);
      dst += v.iov_len;
    }
  }

 private:
  const std::vector<struct iovec>& next(size_t n) {
    part_.clear();
    cursor_.take(n, &part_);
    return part_;
  }
  IovCursor cursor_;
  std::vector<struct iovec> part_;
};

class Cache {
 public:
  explicit Cache(CacheOptions opts) : opts_(opts) {}
  const CacheOptions& opts() const { return opts_; }

  std::mutex mu;
  std::condition_variable filled;  // an inflight block landed (or failed)
  std::unordered_map<std::string, std::shared_ptr<Object>> objects;
  CacheStats stats;

  // ---- all below: caller holds mu ----

  void touch(Block* b) {
    if (b->dirty) return;
    if (b->segment == Segment::kProbation) {
      probation_.erase(b->pos);
      probation_bytes_ -= opts_.block_size;
      push_protected(b);
    } else if (b->segment == Segment::kProtected) {
      protected_.splice(protected_.begin(), protected_, b->pos);
    }
  }

  Block* insert(Object* o, uint64_t index, std::vector<char> data, bool readahead) {
    auto b = std::make_unique<Block>();
    b->owner = o;
    b->index = index;
    b->data = std::move(data);
    b->from_readahead = readahead;
    Block* raw = b.get();
    o->blocks[index] = std::move(b);
    stats.cached_bytes += opts_.block_size;
    push_probation(raw);
    evict(raw);
    return raw;
  }

  void make_dirty(Object* o, Block* b, uint64_t lo, uint64_t hi) {
    unlink(b);
    if (!b->dirty) {
      b->dirty = true;
      b->dirty_lo = lo;
      b->dirty_hi = hi;
    } else {
      o->dirty_bytes -= b->dirty_hi - b->dirty_lo;
      stats.dirty_bytes -= b->dirty_hi - b->dirty_lo;
      b->dirty_lo = std::min(b->dirty_lo, lo);
      b->dirty_hi = std::max(b->dirty_hi, hi);
    }
    o->dirty_bytes += b->dirty_hi - b->dirty_lo;
    stats.dirty_bytes += b->dirty_hi - b->dirty_lo;
    ++b->version;
  }

  void make_clean(Object* o, Block* b) {
    if (!b->dirty) return;
    o->dirty_bytes -= b->dirty_hi - b->dirty_lo;
    stats.dirty_bytes -= b->dirty_hi - b->dirty_lo;
    b->dirty = false;
    push_probation(b);
    evict();
  }

  // Drops clean blocks of o (all blocks when include_dirty).
  void drop_blocks(Object* o, bool include_dirty) {
    for (auto it = o->blocks.begin(); it != o->blocks.end();) {
      Block* b = it->second.get();
      if (b->dirty && !include_dirty) {
        ++it;
        continue;
      }
      if (b->dirty) {
        o->dirty_bytes -= b->dirty_hi - b->dirty_lo;
        stats.dirty_bytes -= b->dirty_hi - b->dirty_lo;
      }
      unlink(b);
      stats.cached_bytes -= opts_.block_size;
      it = o->blocks.erase(it);
    }
    ++o->generation;
  }

  void drop_all_clean() {
    for (auto& [key, o] : objects) drop_blocks(o.get(), false);
  }

 private:
  void push_probation(Block* b) {
    probation_.push_front(b);
    b->pos = probation_.begin();
    b->segment = Segment::kProbation;
    probation_bytes_ += opts_.block_size;
  }
  void push_protected(Block* b) {
    protected_.push_front(b);
    b->pos = protected_.begin();
    b->segment = Segment::kProtected;
    protected_bytes_ += opts_.block_size;
    const auto protected_cap = static_cast<uint64_t>(opts_.protected_fraction * static_cast<double>(opts_.capacity_bytes));
    while (protected_bytes_ > protected_cap && !protected_.empty()) {
      Block* demoted = protected_.back();
      protected_.pop_back();
      protected_bytes_ -= opts_.block_size;
      push_probation(demoted);
    }
  }
  void unlink(Block* b) {
    if (b->segment == Segment::kProbation) {
      probation_.erase(b->pos);
      probation_bytes_ -= opts_.block_size;
    } else if (b->segment == Segment::kProtected) {
      protected_.erase(b->pos);
      protected_bytes_ -= opts_.block_size;
    }
    b->segment = Segment::kNone;
  }
  // Evicts clean blocks, probation tail first, until the cache fits; never `keep` (the caller is
  // about to use it).
  void evict(const Block* keep = nullptr) {
    while (stats.cached_bytes > opts_.capacity_bytes) {
      const bool probation_usable = !probation_.empty() && probation_.back() != keep;
      std::list<Block*>& victims = probation_usable ? probation_ : protected_;
      if (victims.empty() || victims.back() == keep) return;  // the rest is dirty or in use
      Block* b = victims.back();
      unlink(b);
      stats.cached_bytes -= opts_.block_size;
      ++stats.evictions;
      b->owner->blocks.erase(b->index);
    }
  }

  CacheOptions opts_;
  std::list<Block*> probation_, protected_;
  uint64_t probation_bytes_ = 0, protected_bytes_ = 0;
};

class CachedFile final : public BackendFile {
 public:
  CachedFile(std::shared_ptr<Cache> cache, std::shared_ptr<Backend> inner_backend, Uri uri,
             std::unique_ptr<BackendFile> inner, std::shared_ptr<Object> obj, bool writable)
      : cache_(std::move(cache)), inner_backend_(std::move(inner_backend)), uri_(std::move(uri)),
        inner_(std::move(inner)), obj_(std::move(obj)), writable_(writable) {}

  ~CachedFile() override { (void)close(); }

  // Served on the calling thread: the callback runs before these return. The vectored forms copy
  // between the blocks and the caller's segments directly, like the plain ones.
  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    const struct iovec one{buf, len};
    done(read_blocking(std::span<const struct iovec>(&one, 1), offset));
  }
  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    const struct iovec one{const_cast<void*>(buf), len};
    done(write_blocking(std::span<const struct iovec>(&one, 1), offset));
  }
  void readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) override {
    done(read_blocking(iov, offset));
  }
  void writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) override {
    done(write_blocking(iov, offset));
  }

  Status sync(bool data_only) override {
    STOR_RETURN_IF_ERROR(check_open());
    STOR_RETURN_IF_ERROR(flush());
    STOR_RETURN_IF_ERROR(inner_->sync(data_only));
    return revalidate_after_flush();
  }

  Status truncate(uint64_t size) override {
    STOR_RETURN_IF_ERROR(check_open());
    std::lock_guard flush_lock(obj_->flush_mu);
    STOR_RETURN_IF_ERROR(flush_locked());
    STOR_RETURN_IF_ERROR(inner_->truncate(size));
    {
      std::lock_guard lk(cache_->mu);
      cache_->drop_blocks(obj_.get(), true);
      obj_->logical_size = size;
    }
    wrote_ = true;
    return revalidate_after_flush();
  }

  Result<FileInfo> stat() override {
    STOR_RETURN_IF_ERROR(check_open());
    STOR_ASSIGN_OR_RETURN(FileInfo info, inner_->stat());
    std::lock_guard lk(cache_->mu);
    if (obj_->dirty_bytes > 0) info.size = std::max(info.size, obj_->logical_size);
    return info;
  }

  Status close() override {
    if (!inner_) return {};
    wait_readahead();
    Status flushed = writable_ ? flush() : Status::ok();
    Status closed = inner_->close();
    inner_.reset();
    if (wrote_ && flushed.is_ok() && closed.is_ok()) {
      // Our own upload changed the backend's validator: record it so it does not look foreign.
      auto info = inner_backend_->stat(uri_);
      std::lock_guard lk(cache_->mu);
      if (info.is_ok() && obj_->dirty_bytes == 0) {
        obj_->validator = validator_of(*info);
        obj_->logical_size = info->size;
      }
    }
    {
      std::lock_guard lk(cache_->mu);
      --obj_->open_handles;
    }
    return flushed.is_ok() ? closed : flushed;
  }

  // Dirty blocks belong to the object, not to one handle: only the last handle may drop them.
  // With others open, their writes are kept and this is a close.
  Status abort() override {
    if (!inner_) return {};
    {
      std::lock_guard lk(cache_->mu);
      if (obj_->open_handles > 1) return close();
    }
    wait_readahead();
    Status aborted = inner_->abort();
    inner_.reset();
    std::lock_guard lk(cache_->mu);
    cache_->drop_blocks(obj_.get(), true);
    obj_->validated = false;  // the next open takes size and validator from the backend again
    --obj_->open_handles;
    return aborted;
  }

  bool direct() const override { return false; }

 private:
  Status check_open() const {
    if (!inner_) return Status::InvalidArgument("cached file " + uri_.to_string() + " is closed");
    return {};
  }

  Status maybe_revalidate() {
    const int64_t every = cache_->opts().revalidate_after_ns;
    if (every <= 0) return {};
    {
      std::lock_guard lk(cache_->mu);
      if (obj_->dirty_bytes > 0 || now_ns() - obj_->validated_at < every) return {};
    }
    STOR_ASSIGN_OR_RETURN(FileInfo info, inner_->stat());
    std::lock_guard lk(cache_->mu);
    if (obj_->dirty_bytes > 0) return {};
    if (validator_of(info) != obj_->validator) {
      cache_->drop_blocks(obj_.get(), false);
      ++cache_->stats.invalidations;
      obj_->validator = validator_of(info);
      obj_->logical_size = info.size;
    }
    obj_->validated_at = now_ns();
    return {};
  }

  // Returns the block, reading it from the backend when missing. Called with lk held; may drop
  // and retake it. nullptr + status on a backend error.
  Result<Block*> get_block(std::unique_lock<std::mutex>& lk, uint64_t index, bool count_stats) {
    const uint64_t bs = cache_->opts().block_size;
    for (;;) {
      auto it = obj_->blocks.find(index);
      if (it != obj_->blocks.end()) {
        Block* b = it->second.get();
        if (count_stats) {
          ++cache_->stats.hits;
          if (b->from_readahead) ++cache_->stats.readahead_hits;
        }
        b->from_readahead = false;
        cache_->touch(b);
        return b;
      }
      if (obj_->inflight.count(index)) {
        cache_->filled.wait(lk);
        continue;
      }
      obj_->inflight.insert(index);
      const uint64_t gen = obj_->generation;
      lk.unlock();
      std::vector<char> data(bs, 0);
      auto n = inner_->read(data.data(), bs, index * bs);
      lk.lock();
      obj_->inflight.erase(index);
      cache_->filled.notify_all();
      if (!n.is_ok()) return n.status();
      if (obj_->generation != gen) continue;  // invalidated meanwhile: read again
      if (count_stats) ++cache_->stats.misses;
      return cache_->insert(obj_.get(), index, std::move(data), false);
    }
  }

  // Reads the blocks of [first, last] that are neither cached nor being read with one vectored
  // backend read per run of consecutive such blocks, each block its own segment (a k-block miss
  // is one backend request, not k). Blocks filled here go into *filled (counted as misses).
  Status fill_missing(std::unique_lock<std::mutex>& lk, uint64_t first, uint64_t last, std::set<uint64_t>* filled) {
    const uint64_t bs = cache_->opts().block_size;
    std::vector<std::pair<uint64_t, uint64_t>> runs;  // [begin, end) block indices
    for (uint64_t i = first; i <= last; ++i) {
      if (obj_->blocks.count(i) || obj_->inflight.count(i)) continue;
      if (!runs.empty() && runs.back().second == i) ++runs.back().second;
      else runs.emplace_back(i, i + 1);
      obj_->inflight.insert(i);
    }
    if (runs.empty()) return {};
    const uint64_t gen = obj_->generation;
    lk.unlock();
    std::map<uint64_t, std::vector<char>> data;
    Status error;
    for (const auto& [begin, end] : runs) {
      std::vector<struct iovec> iov;
      for (uint64_t i = begin; i < end; ++i) {
        auto& d = data[i];
        d.assign(bs, 0);  // bytes past the end of the file stay zero
        iov.push_back({d.data(), bs});
      }
      auto n = inner_->readv(iov, begin * bs);
      if (!n.is_ok()) {
        error = n.status();
        break;
      }
    }
    lk.lock();
    for (const auto& [begin, end] : runs)
      for (uint64_t i = begin; i < end; ++i) obj_->inflight.erase(i);
    cache_->filled.notify_all();
    if (!error.is_ok()) return error;
    if (obj_->generation != gen) return {};  // invalidated meanwhile: get_block reads again
    for (auto& [i, bytes] : data) {
      if (obj_->blocks.count(i)) continue;
      ++cache_->stats.misses;
      cache_->insert(obj_.get(), i, std::move(bytes), false);
      filled->insert(i);
    }
    return {};
  }

  Result<size_t> read_blocking(std::span<const struct iovec> iov, uint64_t offset) {
    STOR_RETURN_IF_ERROR(check_open());
    STOR_ASSIGN_OR_RETURN(const size_t len, iov_total(iov));
    STOR_RETURN_IF_ERROR(maybe_revalidate());
    const uint64_t bs = cache_->opts().block_size;
    std::unique_lock lk(cache_->mu);
    const uint64_t size = obj_->logical_size;
    if (offset >= size || len == 0) return size_t{0};
    const uint64_t end = std::min<uint64_t>(size, offset + len);
    // Misses are filled a window at a time, at most half the cache, so a window's blocks are not
    // evicted by the window itself before they are copied out.
    const uint64_t window = std::max<uint64_t>(1, cache_->opts().capacity_bytes / bs / 2);
    SegmentCopier out(iov);
    std::set<uint64_t> filled;
    uint64_t pos = offset;
    while (pos < end) {
      const uint64_t last = std::min((end - 1) / bs, pos / bs + window - 1);
      STOR_RETURN_IF_ERROR(fill_missing(lk, pos / bs, last, &filled));
      for (; pos < end && pos / bs <= last;) {
        // A block this read just filled is used as is: touching it would promote a one-time
        // read to the protected segment (a first access is not a re-use).
        Block* b = nullptr;
        if (filled.count(pos / bs))
          if (auto it = obj_->blocks.find(pos / bs); it != obj_->blocks.end()) b = it->second.get();
        if (!b) {
          STOR_ASSIGN_OR_RETURN(b, get_block(lk, pos / bs, !filled.count(pos / bs)));
        }
        const uint64_t in_block = pos % bs;
        const uint64_t n = std::min<uint64_t>(bs - in_block, end - pos);
        out.fill_from(b->data.data() + in_block, n);
        pos += n;
      }
    }
    // Sequential stream detection: this read starts where the last one ended.
    const bool sequential = offset == next_expected_;
    next_expected_ = end;
    streak_ = sequential ? streak_ + 1 : 0;
    if (streak_ >= 1 && cache_->opts().readahead_blocks > 0) start_readahead(lk, end);
    return static_cast<size_t>(end - offset);
  }

  void start_readahead(std::unique_lock<std::mutex>& lk, uint64_t from) {
    const uint64_t bs = cache_->opts().block_size;
    const uint64_t first = (from + bs - 1) / bs;
    const uint64_t last_block = obj_->logical_size == 0 ? 0 : (obj_->logical_size - 1) / bs;
    for (uint64_t i = first; i < first + cache_->opts().readahead_blocks && i <= last_block; ++i) {
      if (obj_->blocks.count(i) || obj_->inflight.count(i)) continue;
      obj_->inflight.insert(i);
      ++cache_->stats.readahead_blocks;
      {
        std::lock_guard ra(ra_mu_);
        ++ra_outstanding_;
      }
      auto data = std::make_shared<std::vector<char>>(bs, 0);
      const uint64_t gen = obj_->generation;
      auto cache = cache_;
      auto obj = obj_;
      lk.unlock();
      inner_->read_async(data->data(), bs, i * bs, [this, cache, obj, data, gen, i](Result<size_t> r) {
        {
          std::lock_guard g(cache->mu);
          obj->inflight.erase(i);
          if (r.is_ok() && obj->generation == gen && !obj->blocks.count(i))
            cache->insert(obj.get(), i, std::move(*data), true);
          cache->filled.notify_all();
        }
        std::lock_guard ra(ra_mu_);
        --ra_outstanding_;
        ra_done_.notify_all();
      });
      lk.lock();
    }
  }

  void wait_readahead() {
    std::unique_lock ra(ra_mu_);
    ra_done_.wait(ra, [&] { return ra_outstanding_ == 0; });
  }

  Result<size_t> write_blocking(std::span<const struct iovec> iov, uint64_t offset) {
    STOR_RETURN_IF_ERROR(check_open());
    if (!writable_) return Status::PermissionDenied(uri_.to_string() + " was not opened for writing");
    STOR_ASSIGN_OR_RETURN(const size_t len, iov_total(iov));
    if (offset > static_cast<uint64_t>(INT64_MAX) - len)
      return Status::InvalidArgument(uri_.to_string() + ": write past the largest offset");
    if (len == 0) return size_t{0};  // as pwrite: an empty write does not extend the file
    const uint64_t bs = cache_->opts().block_size;
    SegmentCopier in(iov);
    bool need_flush = false;
    {
      std::unique_lock lk(cache_->mu);
      uint64_t pos = offset;
      const uint64_t end = offset + len;
      while (pos < end) {
        const uint64_t index = pos / bs;
        const uint64_t in_block = pos % bs;
        const uint64_t n = std::min<uint64_t>(bs - in_block, end - pos);
        Block* b = nullptr;
        auto it = obj_->blocks.find(index);
        if (it != obj_->blocks.end()) {
          b = it->second.get();
        } else if ((in_block == 0 && n == bs) || index * bs >= obj_->logical_size) {
          b = cache_->insert(obj_.get(), index, std::vector<char>(bs, 0), false);  // nothing to preserve
        } else {
          STOR_ASSIGN_OR_RETURN(b, get_block(lk, index, false));  // read-modify-write
        }
        in.drain_to(b->data.data() + in_block, n);
        cache_->make_dirty(obj_.get(), b, in_block, in_block + n);
        pos += n;
      }
      obj_->logical_size = std::max(obj_->logical_size, end);
      need_flush = obj_->dirty_bytes > cache_->opts().max_dirty_bytes;
    }
    wrote_ = true;
    if (need_flush) STOR_RETURN_IF_ERROR(flush());
    return len;
  }

  Status flush() {
    std::lock_guard flush_lock(obj_->flush_mu);
    return flush_locked();
  }

  // Writes every dirty block of the object through this handle. Blocks rewritten during the flush
  // stay dirty. A failed write leaves its block dirty, so nothing is dropped silently.
  Status flush_locked() {
    struct Piece {
      Block* block;
      uint64_t version;
      uint64_t offset;
      std::vector<char> bytes;
    };
    std::vector<Piece> pieces;
    uint64_t size = 0;
    {
      std::lock_guard lk(cache_->mu);
      if (obj_->dirty_bytes == 0) return {};
      size = obj_->logical_size;
      const uint64_t bs = cache_->opts().block_size;
      for (auto& [index, b] : obj_->blocks) {
        if (!b->dirty) continue;
        const uint64_t start = index * bs + b->dirty_lo;
        const uint64_t stop = std::min<uint64_t>(index * bs + b->dirty_hi, size);
        if (stop <= start) continue;
        pieces.push_back({b.get(), b->version, start,
                          std::vector<char>(b->data.begin() + b->dirty_lo, b->data.begin() + b->dirty_lo + (stop - start))});
      }
    }
    if (!writable_)
      return Status::PermissionDenied(uri_.to_string() + ": dirty cached blocks need a handle opened for writing");
    Status first_error;
    std::vector<Piece*> written;
    // Pieces that continue each other (a run of dirty blocks) go to the backend as one vectored
    // write: one request per run instead of one per block.
    for (size_t i = 0; i < pieces.size();) {
      size_t j = i + 1;
      while (j < pieces.size() && pieces[j].offset == pieces[j - 1].offset + pieces[j - 1].bytes.size()) ++j;
      std::vector<struct iovec> iov;
      size_t run_bytes = 0;
      for (size_t k = i; k < j; ++k) {
        iov.push_back({pieces[k].bytes.data(), pieces[k].bytes.size()});
        run_bytes += pieces[k].bytes.size();
      }
      auto n = inner_->writev(iov, pieces[i].offset);
      if (!n.is_ok() || *n != run_bytes) {
        if (first_error.is_ok())
          first_error = n.is_ok() ? Status::IoError("short write-back to " + uri_.to_string()) : n.status();
      } else {
        for (size_t k = i; k < j; ++k) written.push_back(&pieces[k]);
      }
      i = j;
    }
    std::lock_guard lk(cache_->mu);
    for (Piece* p : written) {
      cache_->stats.writeback_bytes += p->bytes.size();
      if (p->block->version == p->version) cache_->make_clean(obj_.get(), p->block);
    }
    return first_error;
  }

  Status revalidate_after_flush() {
    auto info = inner_->stat();
    if (!info.is_ok()) return info.status();
    std::lock_guard lk(cache_->mu);
    if (obj_->dirty_bytes == 0) {
      obj_->validator = validator_of(*info);
      obj_->validated_at = now_ns();
    }
    return {};
  }

  std::shared_ptr<Cache> cache_;
  std::shared_ptr<Backend> inner_backend_;
  Uri uri_;
  std::unique_ptr<BackendFile> inner_;
  std::shared_ptr<Object> obj_;
  bool writable_;
  std::atomic<bool> wrote_{false};  // set by concurrent writers
  uint64_t next_expected_ = UINT64_MAX;
  unsigned streak_ = 0;
  std::mutex ra_mu_;
  std::condition_variable ra_done_;
  unsigned ra_outstanding_ = 0;
};

class CachingBackendImpl;

// The inner backend's ObjectStore seen through the cache (so a tiered namespace, for one, lists
// and reads a cached object store as an object store, not as a directory tree). Listings and
// version-pinned reads go to the inner store: they name a version, the cached blocks do not. A
// conditional write drops the object's blocks first, and is refused while this cache holds
// unflushed writes of it (they would be flushed over it).
class CachedObjectStore final : public ObjectStore {
 public:
  CachedObjectStore(CachingBackendImpl* owner, ObjectStore* inner) : owner_(owner), inner_(inner) {}
  Result<std::vector<ObjectVersion>> list_objects(const Uri& dir) override { return inner_->list_objects(dir); }
  Result<ObjectVersion> head_object(const Uri& uri) override { return inner_->head_object(uri); }
  Result<size_t> read_version(const Uri& uri, const std::string& etag, uint64_t offset, size_t len,
                              char* dst) override {
    return inner_->read_version(uri, etag, offset, len, dst);
  }
  Result<size_t> read_version_bulk(const Uri& uri, const ObjectVersion& version, uint64_t offset, size_t len,
                                   char* dst) override {
    return inner_->read_version_bulk(uri, version, offset, len, dst);
  }
  Result<std::unique_ptr<BackendFile>> open_for_write_if(const Uri& uri, const ObjectWriteCondition& cond) override;

 private:
  CachingBackendImpl* owner_;  // owns this
  ObjectStore* inner_;         // owned by the inner backend, which the owner keeps alive
};

class CachingBackendImpl final : public CachingBackend {
 public:
  CachingBackendImpl(std::shared_ptr<Backend> inner, CacheOptions opts)
      : inner_(std::move(inner)), cache_(std::make_shared<Cache>(opts)) {
    if (ObjectStore* store = inner_->object_store()) object_store_ = std::make_unique<CachedObjectStore>(this, store);
  }

  std::string_view scheme() const override { return inner_->scheme(); }
  uint32_t capabilities() const override { return inner_->capabilities() & ~kCapDirectIo; }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) override {
    // Cached blocks are keyed by offset: an append lands where the cache cannot know.
    if (opts.flags & kOpenAppend)
      return Status::Unsupported("cache: appending opens (kOpenAppend) are not supported on a cached " +
                                 std::string(inner_->scheme()) + " backend");
    OpenOptions inner_opts = opts;
    inner_opts.flags &= ~kOpenDirect;  // the cache is the buffer
    const bool writable = opts.flags & kOpenWrite;
    if (writable) inner_opts.flags |= kOpenRead;  // partial-block writes read the rest first
    STOR_ASSIGN_OR_RETURN(auto inner_file, inner_->open(uri, inner_opts));
    auto info = inner_file->stat();
    if (!info.is_ok()) {
      (void)inner_file->close();
      return info.status();
    }
    const std::string key = uri.to_string();
    std::shared_ptr<Object> obj;
    {
      std::lock_guard lk(cache_->mu);
      auto& slot = cache_->objects[key];
      if (!slot) {
        slot = std::make_shared<Object>();
        slot->key = key;
      }
      obj = slot;
      if (obj->dirty_bytes == 0) {
        const Validator v = validator_of(*info);
        if (obj->validated && v != obj->validator) {
          cache_->drop_blocks(obj.get(), false);
          ++cache_->stats.invalidations;
        }
        if (opts.flags & kOpenTruncate) cache_->drop_blocks(obj.get(), false);
        obj->validator = v;
        obj->validated = true;
        obj->validated_at = now_ns();
        obj->logical_size = info->size;
      } else if (opts.flags & kOpenTruncate) {
        cache_->drop_blocks(obj.get(), true);
        obj->logical_size = 0;
      }
      ++obj->open_handles;
    }
    return std::unique_ptr<BackendFile>(
        std::make_unique<CachedFile>(cache_, inner_, uri, std::move(inner_file), std::move(obj), writable));
  }

  Result<FileInfo> stat(const Uri& uri) override {
    STOR_ASSIGN_OR_RETURN(FileInfo info, inner_->stat(uri));
    std::lock_guard lk(cache_->mu);
    auto it = cache_->objects.find(uri.to_string());
    if (it != cache_->objects.end() && it->second->dirty_bytes > 0)
      info.size = std::max(info.size, it->second->logical_size);
    return info;
  }
  Result<std::vector<DirEntry>> list(const Uri& uri) override { return inner_->list(uri); }
  Status remove(const Uri& uri) override {
    forget(uri);
    return inner_->remove(uri);
  }
  Status mkdir(const Uri& uri, uint32_t mode) override { return inner_->mkdir(uri, mode); }
  Status rename(const Uri& from, const Uri& to) override {
    forget(from);
    forget(to);
    return inner_->rename(from, to);
  }
  std::map<std::string, std::string> describe(const Uri& uri) override {
    auto out = inner_->describe(uri);
    const CacheStats s = stats();
    out["cache.capacity"] = std::to_string(cache_->opts().capacity_bytes);
    out["cache.cached_bytes"] = std::to_string(s.cached_bytes);
    out["cache.dirty_bytes"] = std::to_string(s.dirty_bytes);
    return out;
  }

  ObjectStore* object_store() override { return object_store_.get(); }

  CacheStats stats() const override {
    std::lock_guard lk(cache_->mu);
    return cache_->stats;
  }

  // Before an object is written behind the blocks (CachedObjectStore::open_for_write_if).
  Status forget_for_object_write(const Uri& uri) {
    {
      std::lock_guard lk(cache_->mu);
      auto it = cache_->objects.find(uri.to_string());
      if (it != cache_->objects.end() && it->second->dirty_bytes > 0)
        return Status::Busy(uri.to_string() + ": the cache holds unflushed writes of it; sync or close them first");
    }
    forget(uri);
    return {};
  }
  void drop_clean() override {
    std::lock_guard lk(cache_->mu);
    cache_->drop_all_clean();
  }

 private:
  // Removed or renamed: the blocks describe a file that no longer exists under that name.
  void forget(const Uri& uri) {
    std::lock_guard lk(cache_->mu);
    auto it = cache_->objects.find(uri.to_string());
    if (it == cache_->objects.end()) return;
    cache_->drop_blocks(it->second.get(), true);
    it->second->validated = false;
    if (it->second->open_handles == 0) cache_->objects.erase(it);
  }

  std::shared_ptr<Backend> inner_;
  std::shared_ptr<Cache> cache_;
  std::unique_ptr<CachedObjectStore> object_store_;  // when inner_ is an object store
};

Result<std::unique_ptr<BackendFile>> CachedObjectStore::open_for_write_if(const Uri& uri,
                                                                         const ObjectWriteCondition& cond) {
  STOR_RETURN_IF_ERROR(owner_->forget_for_object_write(uri));
  return inner_->open_for_write_if(uri, cond);
}

}  // namespace

Result<std::shared_ptr<CachingBackend>> make_caching_backend(std::shared_ptr<Backend> inner, CacheOptions opts) {
  if (!inner) return Status::InvalidArgument("caching backend: no inner backend");
  if (opts.block_size == 0 || opts.capacity_bytes < opts.block_size)
    return Status::InvalidArgument("caching backend: capacity_bytes must hold at least one block (block_size " +
                                              std::to_string(opts.block_size) + ")");
  if (opts.protected_fraction < 0 || opts.protected_fraction > 1)
    return Status::InvalidArgument("caching backend: protected_fraction must be within [0, 1]");
  return std::shared_ptr<CachingBackend>(std::make_shared<CachingBackendImpl>(std::move(inner), opts));
}

}  // namespace stor::cache
