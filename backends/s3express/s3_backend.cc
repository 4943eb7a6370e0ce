#include "backends/s3express/s3_backend.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "backends/s3express/crypto.h"
#include "backends/s3express/read_ahead.h"
#include "backends/s3express/write_buffer.h"
#include "stor/object_store.h"
#include "stor/register_backend.h"

namespace stor::s3 {

namespace {

// A key's final '/'s as they appear in a URI ("%2F"; see bucket_and_key).
std::string key_to_uri_path(const std::string& key) {
  size_t end = key.size();
  while (end > 0 && key[end - 1] == '/') --end;
  std::string out = key.substr(0, end);
  for (size_t i = end; i < key.size(); ++i) out += "%2F";
  return out;
}

std::string describe_uri(const std::string& scheme, const std::string& bucket, const std::string& key) {
  return scheme + "://" + bucket + (key.empty() ? "" : "/" + key_to_uri_path(key));
}

// Runs fn, turning escaped exceptions (allocation failures mostly) into a Status.
template <typename Fn>
auto guarded(Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    return Status::NoSpace("s3: out of memory");
  } catch (const std::exception& e) {
    return Status::Internal(std::string("s3: ") + e.what());
  }
}

struct Shared {
  std::shared_ptr<S3Client> client;
  std::shared_ptr<WorkerPool> async_pool;  // runs read_async / write_async bodies
  std::string scheme;
};

// kOpenAppend on a directory bucket (S3 Express appendable objects): bytes written are collected
// and added at the object's end by PutObject with x-amz-write-offset-bytes = the size this handle
// last saw, once s3.part_size of them are waiting and at sync()/close(). The server refuses an
// offset that is not the object's size, so a concurrent appender (or a replacement) fails the
// append with Aborted instead of bytes landing in the wrong place; the handle then stays failed.
class Appender {
 public:
  Appender(std::shared_ptr<S3Client> client, std::string bucket, std::string key, std::string name, bool exists,
           ObjectInfo info, bool exclusive)
      : client_(std::move(client)),
        bucket_(std::move(bucket)),
        key_(std::move(key)),
        name_(std::move(name)),
        exists_(exists),
        exclusive_(exclusive),
        stored_(info.size),
        etag_(std::move(info.etag)) {}

  uint64_t size() const { return stored_ + pending_.size(); }

  Status write(const char* src, size_t len) {
    STOR_RETURN_IF_ERROR(failed_);
    pending_.append(src, len);
    if (pending_.size() >= client_->config().part_size) return flush();
    return Status::ok();
  }

  // Sends what is waiting. A file created by this open with nothing written becomes an empty
  // object (S3 refuses empty appends): PutObject If-None-Match: *, so nothing is replaced.
  Status flush() {
    STOR_RETURN_IF_ERROR(failed_);
    if (pending_.empty()) {
      if (exists_) return Status::ok();
      WriteCondition create_only;
      create_only.if_none_match = true;
      Result<std::string> made = client_->put_object_single(bucket_, key_, "", 0, {}, create_only);
      if (!made.is_ok() && (exclusive_ || made.status().code() != Code::kAlreadyExists))
        return failed_ = made.status();
      exists_ = true;
      if (made.is_ok()) etag_ = *made;
      return Status::ok();
    }
    Result<std::string> etag = client_->append_object(bucket_, key_, stored_, pending_.data(), pending_.size());
    if (!etag.is_ok()) return failed_ = etag.status();
    stored_ += pending_.size();
    etag_ = *etag;
    exists_ = true;
    pending_.clear();
    return Status::ok();
  }

  // Bytes already appended come from the object (If-Match the ETag of this handle's last
  // append), the waiting ones from memory.
  Result<size_t> read(char* dst, size_t len, uint64_t offset) {
    size_t done = 0;
    if (offset < stored_ && len > 0) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len, stored_ - offset));
      STOR_ASSIGN_OR_RETURN(size_t got, client_->get_range(bucket_, key_, offset, n, dst, etag_));
      if (got != n)
        return Status::IoError(name_ + ": short read of appended bytes at " + std::to_string(offset));
      done = n;
    }
    const uint64_t at = offset + done;
    if (done < len && at >= stored_ && at < size()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(len - done, size() - at));
      std::memcpy(dst + done, pending_.data() + (at - stored_), n);
      done += n;
    }
    return done;
  }

 private:
  std::shared_ptr<S3Client> client_;
  const std::string bucket_, key_, name_;
  bool exists_;
  const bool exclusive_;
  uint64_t stored_;  // the object's size as of this handle's last append (or the HEAD at open)
  std::string etag_;
  std::string pending_;  // written, not yet appended
  Status failed_;
};

class S3File final : public BackendFile {
 public:
  S3File(std::shared_ptr<Shared> shared, std::string bucket, std::string key, bool writable)
      : shared_(std::move(shared)), bucket_(std::move(bucket)), key_(std::move(key)), writable_(writable) {}

  ~S3File() override {
    if (!closed_) (void)close();
    wait_idle();
  }

  // Read-only files: the object as it was at open; `whole`: all its bytes when they were fetched at
  // open (small objects), else empty.
  void set_info(ObjectInfo info, std::string whole = {}) {
    const S3Config& c = shared_->client->config();
    whole_ = std::move(whole);
    if (!writable_ && c.readahead > 0 && info.size > c.part_size && whole_.size() != info.size)
      read_ahead_ = std::make_unique<ReadAhead>(shared_->client, bucket_, key_, info, c.readahead);
    info_ = std::move(info);
  }

  // Writable files: `base` is the content kept where nothing is written (the existing object for
  // opens without O_TRUNC, else empty); `dirty`: the object is (re)written at close even if
  // nothing is written.
  void start_writer(ObjectInfo base, bool dirty, WriteCondition cond) {
    const S3Config& c = shared_->client->config();
    ObjectWriter::Options o;
    o.condition = std::move(cond);
    o.part_size = c.part_size;
    o.max_in_flight = std::clamp(c.max_connections, 1u, 4u);
    o.max_memory_parts = static_cast<unsigned>(std::clamp<uint64_t>(c.write_buffer_memory / c.part_size, 1, 1024));
    o.tmp_dir = c.tmp_dir;
    o.describe = name();
    info_ = base;
    writer_ = std::make_unique<ObjectWriter>(shared_->client, bucket_, key_, std::move(o), std::move(base), dirty);
  }

  void start_appender(bool exists, ObjectInfo info, bool exclusive) {
    info_ = info;
    appender_ = std::make_unique<Appender>(shared_->client, bucket_, key_, name(), exists, std::move(info), exclusive);
  }

  void read_async(void* buf, size_t len, uint64_t offset, IoCallback done) override {
    start([this, buf, len, offset] { return read_now(static_cast<char*>(buf), len, offset); }, std::move(done));
  }

  void write_async(const void* buf, size_t len, uint64_t offset, IoCallback done) override {
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      ++pending_;
    }
    auto cb = std::make_shared<IoCallback>(std::move(done));
    shared_->async_pool->post([this, src = static_cast<const char*>(buf), len, offset, cb] {
      // A write of exactly one whole part goes up straight from the caller's buffer, which stays
      // valid until the callback runs: no copy into a part buffer. The callback then runs when
      // the part is uploaded.
      Result<bool> borrowed = guarded([&]() -> Result<bool> {
        std::lock_guard<std::mutex> lock(mu_);
        STOR_RETURN_IF_ERROR(check_open());
        if (!writable_ || appender_ || !writer_) return false;
        return writer_->write_borrowed(src, len, offset, [this, cb, len](Status s) {
          finish_async(*cb, s.is_ok() ? Result<size_t>(len) : Result<size_t>(s));
        });
      });
      if (borrowed.is_ok() && *borrowed) return;
      finish_async(*cb, borrowed.is_ok() ? write_now(src, len, offset) : Result<size_t>(borrowed.status()));
    });
  }

  Status sync(bool) override {
    return guarded([&]() -> Status {
      std::lock_guard<std::mutex> lock(mu_);
      STOR_RETURN_IF_ERROR(check_open());
      return upload_locked();
    });
  }

  Status truncate(uint64_t size) override {
    return guarded([&]() -> Status {
      std::lock_guard<std::mutex> lock(mu_);
      STOR_RETURN_IF_ERROR(check_open());
      if (!writable_) return Status::InvalidArgument(name() + ": truncate on a file not opened for writing");
      if (appender_) return Status::Unsupported(name() + ": truncate on a file opened for appending");
      return writer_->truncate(size);
    });
  }

  Result<FileInfo> stat() override {
    std::lock_guard<std::mutex> lock(mu_);
    STOR_RETURN_IF_ERROR(check_open());
    FileInfo fi;
    fi.path = "/" + key_;
    fi.type = FileType::kRegular;
    fi.size = appender_ ? appender_->size() : writable_ ? writer_->size() : info_.size;
    fi.mtime_ns = info_.mtime_ns;
    fi.etag = info_.etag;
    fi.mode = 0644;
    return fi;
  }

  Status close() override {
    wait_idle();
    return guarded([&]() -> Status {
      std::lock_guard<std::mutex> lock(mu_);
      if (closed_) return Status::ok();
      Status s = upload_locked();
      closed_ = true;
      writer_.reset();  // aborts a multipart upload left unfinished by an error
      appender_.reset();
      read_ahead_.reset();  // waits for its fetches
      return s;
    });
  }

  Status abort() override {
    wait_idle();
    return guarded([&]() -> Status {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      writer_.reset();  // uploads nothing more; aborts a multipart upload already started
      appender_.reset();  // appends already sent stay: an object store cannot take them back
      read_ahead_.reset();
      return Status::ok();
    });
  }

 private:
  std::string name() const { return describe_uri(shared_->scheme, bucket_, key_); }

  Status check_open() const {
    return closed_ ? Status::InvalidArgument(name() + ": file is closed") : Status::ok();
  }

  Status upload_locked() {
    if (!writable_) return Status::ok();
    if (appender_) return appender_->flush();
    STOR_ASSIGN_OR_RETURN(info_, writer_->finish());
    return Status::ok();
  }

  Result<size_t> read_now(char* dst, size_t len, uint64_t offset) {
    return guarded([&]() -> Result<size_t> {
      {
        std::lock_guard<std::mutex> lock(mu_);
        STOR_RETURN_IF_ERROR(check_open());
        if (appender_) return appender_->read(dst, len, offset);
        if (writable_) return writer_->read(dst, len, offset);
      }
      // Read-only: info_ never changes, so concurrent reads run in parallel without the lock.
      if (whole_.size() == info_.size) {  // fetched at open: no request
        if (offset >= whole_.size()) return size_t{0};
        const size_t n = static_cast<size_t>(std::min<uint64_t>(len, whole_.size() - offset));
        std::memcpy(dst, whole_.data() + offset, n);
        return n;
      }
      if (read_ahead_) return read_ahead_->read(dst, len, offset);
      return shared_->client->read_object(bucket_, key_, info_, offset, len, dst);
    });
  }

  Result<size_t> write_now(const char* src, size_t len, uint64_t offset) {
    return guarded([&]() -> Result<size_t> {
      std::lock_guard<std::mutex> lock(mu_);
      STOR_RETURN_IF_ERROR(check_open());
      if (!writable_) return Status::InvalidArgument(name() + ": file not opened for writing");
      if (appender_) {  // O_APPEND: the offset is ignored
        STOR_RETURN_IF_ERROR(appender_->write(src, len));
        return len;
      }
      STOR_RETURN_IF_ERROR(writer_->write(src, len, offset));
      return len;
    });
  }

  // Runs op on the async pool, keeping the file alive (close/destructor wait for it).
  void start(std::function<Result<size_t>()> op, IoCallback done) {
    {
      std::lock_guard<std::mutex> lock(pending_mu_);
      ++pending_;
    }
    shared_->async_pool->post([this, op = std::move(op), done = std::move(done)]() mutable {
      finish_async(done, op());
    });
  }

  // Runs an async call's callback and ends its pending count (the last touch of `this`).
  void finish_async(IoCallback& done, Result<size_t> r) {
    done(std::move(r));
    std::lock_guard<std::mutex> lock(pending_mu_);
    if (--pending_ == 0) pending_cv_.notify_all();
  }

  void wait_idle() {
    std::unique_lock<std::mutex> lock(pending_mu_);
    pending_cv_.wait(lock, [&] { return pending_ == 0; });
  }

  std::shared_ptr<Shared> shared_;
  const std::string bucket_, key_;
  const bool writable_;

  std::mutex mu_;
  bool closed_ = false;
  ObjectInfo info_;
  std::string whole_;  // read-only files of up to s3.small_object_size: the object's bytes
  std::unique_ptr<ObjectWriter> writer_;  // writable files only, not appending
  std::unique_ptr<Appender> appender_;     // files opened with kOpenAppend
  std::unique_ptr<ReadAhead> read_ahead_;  // large read-only files only

  std::mutex pending_mu_;
  std::condition_variable pending_cv_;
  size_t pending_ = 0;
};

// Also the backend's ObjectStore capability (stor/object_store.h): the tiered store's cold tier
// lists and reads through it.
class S3Backend final : public Backend, public ObjectStore {
 public:
  explicit S3Backend(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  S3Client& client() { return *shared_->client; }
  std::string_view scheme() const override { return shared_->scheme; }
  uint32_t capabilities() const override { return kCapRead | kCapWrite | kCapDirectories | kCapTruncate | kCapRename; }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) override {
    return guarded([&]() -> Result<std::unique_ptr<BackendFile>> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      const std::string name = describe_uri(shared_->scheme, bucket, key);
      if (key.empty() || (!uri.path.empty() && uri.path.back() == '/'))
        return Status::IsADirectory(name + ": is a prefix (directory), not an object");
      S3Client& client = *shared_->client;
      const bool writable = (opts.flags & kOpenWrite) != 0;
      if (opts.flags & kOpenAppend) {
        // Refused before any request: a server without appends would store the appended bytes
        // as the whole object, and a full rewrite per append is not what O_APPEND promises.
        if (!writable) return Status::InvalidArgument(name + ": kOpenAppend needs kOpenWrite");
        if (!is_directory_bucket(bucket))
          return Status::Unsupported(name + ": appending (kOpenAppend) needs an S3 Express directory bucket "
                                     "(name ending in --x-s3); general purpose buckets can only rewrite whole objects");
        if (opts.flags & kOpenTruncate)
          return Status::Unsupported(name + ": kOpenAppend with kOpenTruncate; truncate with one open, append with "
                                     "another");
      }
      const uint64_t small = client.config().small_object_size;
      // Read-only: one GET of the first s3.small_object_size bytes instead of a HEAD, so a small
      // object costs one request in all; a larger one's bytes are dropped (memory stays bounded).
      std::string whole;
      Result<ObjectInfo> head = Status::NotFound(name);
      if (!writable && small > 0) {
        whole.resize(static_cast<size_t>(small));
        Result<S3Client::Fetched> got = client.get_object_start(bucket, key, 0, whole.size(), whole.data());
        if (got.is_ok()) {
          whole.resize(got->info.size <= small ? got->bytes : 0);
          whole.shrink_to_fit();
          head = std::move(got->info);
        } else {
          head = got.status();
        }
      } else {
        head = client.head_object(bucket, key);
      }
      const bool exists = head.is_ok();
      if (!exists && head.status().code() != Code::kNotFound) return head.status();

      if (!writable) {
        if (!exists) {
          if (is_prefix(bucket, key)) return Status::IsADirectory(name + ": is a prefix (directory)");
          return Status::NotFound(name + ": no such object");
        }
        auto file = std::make_unique<S3File>(shared_, bucket, key, false);
        file->set_info(std::move(head).value(), std::move(whole));
        return std::unique_ptr<BackendFile>(std::move(file));
      }

      if (exists && (opts.flags & kOpenCreate) && (opts.flags & kOpenExclusive))
        return Status::AlreadyExists(name + ": object exists");
      if (!exists && !(opts.flags & kOpenCreate)) return Status::NotFound(name + ": no such object");
      if (!exists && is_prefix(bucket, key)) return Status::IsADirectory(name + ": is a prefix (directory)");
      auto file = std::make_unique<S3File>(shared_, bucket, key, true);
      if (opts.flags & kOpenAppend) {
        file->start_appender(exists, exists ? std::move(head).value() : ObjectInfo{},
                             (opts.flags & kOpenCreate) && (opts.flags & kOpenExclusive));
        return std::unique_ptr<BackendFile>(std::move(file));
      }
      // The HEAD above only gives an early answer: the server checks the condition again when
      // the object is written (If-None-Match: *), so of two exclusive creators one fails.
      WriteCondition cond;
      cond.if_none_match = (opts.flags & kOpenCreate) && (opts.flags & kOpenExclusive);
      if (exists && !(opts.flags & kOpenTruncate)) {
        // Objects are rewritten whole: bytes not written come from the current object (fetched a
        // part at a time at close, If-Match its ETag), and the rewrite replaces only that version
        // (If-Match again), so a concurrent writer's object is never overwritten silently.
        cond.if_match = head->etag;
        file->start_writer(std::move(head).value(), false, std::move(cond));
      } else {
        // A new or truncated object exists once closed.
        file->start_writer(ObjectInfo{}, true, std::move(cond));
      }
      return std::unique_ptr<BackendFile>(std::move(file));
    });
  }

  Result<FileInfo> stat(const Uri& uri) override {
    return guarded([&]() -> Result<FileInfo> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      FileInfo fi;
      fi.path = key.empty() ? "/" : "/" + key;
      fi.type = FileType::kDirectory;
      fi.mode = 0755;
      if (key.empty()) return fi;
      Result<ObjectInfo> head = shared_->client->head_object(bucket, key);
      if (head.is_ok()) {
        fi.type = FileType::kRegular;
        fi.mode = 0644;
        fi.size = head->size;
        fi.mtime_ns = head->mtime_ns;
        fi.etag = head->etag;
        return fi;
      }
      if (head.status().code() != Code::kNotFound) return head.status();
      // A key ending in '/' names an object only (its prefix is reached without the "%2F").
      if (key.back() != '/' && is_prefix(bucket, key)) return fi;
      return Status::NotFound(describe_uri(shared_->scheme, bucket, key) + ": no such object or prefix");
    });
  }

  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    return guarded([&]() -> Result<std::vector<DirEntry>> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      const std::string prefix = key.empty() ? "" : key + "/";
      STOR_ASSIGN_OR_RETURN(ListPage page, shared_->client->list_all(bucket, prefix, "/"));
      std::vector<DirEntry> out;
      for (const auto& p : page.common_prefixes) {
        std::string name = p.substr(prefix.size());
        if (!name.empty() && name.back() == '/') name.pop_back();
        if (!name.empty()) out.push_back({name, FileType::kDirectory, 0});
      }
      // A key "dir/sub/" is rolled up into the prefix "sub/" but may itself hold bytes: then it
      // is listed as the object "sub%2F" too (the name that opens it). Empty ones are directory
      // markers. One HEAD per prefix, run in parallel.
      std::vector<Result<ObjectInfo>> heads(page.common_prefixes.size(), Status::NotFound(""));
      STOR_RETURN_IF_ERROR(parallel_for(shared_->client->pool(), heads.size(), shared_->client->config().max_connections,
                                        [&](size_t i) -> Status {
                                          heads[i] = shared_->client->head_object(bucket, page.common_prefixes[i]);
                                          if (heads[i].is_ok() || heads[i].status().code() == Code::kNotFound)
                                            return Status::ok();
                                          return heads[i].status();
                                        }));
      for (size_t i = 0; i < heads.size(); ++i) {
        const std::string& p = page.common_prefixes[i];
        if (heads[i].is_ok() && heads[i]->size > 0 && p.size() > prefix.size())
          out.push_back({key_to_uri_path(p.substr(prefix.size())), FileType::kRegular, heads[i]->size});
      }
      for (const auto& o : page.objects) {
        std::string name = o.key.substr(prefix.size());
        if (!name.empty()) out.push_back({name, FileType::kRegular, o.size});  // "" is the directory marker
      }
      if (page.objects.empty() && page.common_prefixes.empty() && !key.empty()) {
        const std::string name = describe_uri(shared_->scheme, bucket, key);
        Result<ObjectInfo> head = shared_->client->head_object(bucket, key);
        if (head.is_ok()) return Status::NotADirectory(name + ": is an object, not a prefix");
        return Status::NotFound(name + ": no such prefix");
      }
      std::sort(out.begin(), out.end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
      return out;
    });
  }

  Status remove(const Uri& uri) override {
    return guarded([&]() -> Status {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      const std::string name = describe_uri(shared_->scheme, bucket, key);
      if (key.empty()) return Status::InvalidArgument(name + ": refusing to remove a bucket root");
      S3Client& client = *shared_->client;
      Result<ObjectInfo> head = client.head_object(bucket, key);
      if (head.is_ok()) return client.delete_object(bucket, key);
      if (head.status().code() != Code::kNotFound) return head.status();
      // A directory: only an empty one (nothing but its marker) may go.
      STOR_ASSIGN_OR_RETURN(ListPage page, client.list_objects_v2(bucket, key + "/", "/", "", 2));
      bool has_marker = false, has_children = !page.common_prefixes.empty();
      for (const auto& o : page.objects) {
        if (o.key == key + "/" && o.size > 0)
          return Status::NotEmpty(name + ": prefix holds the object " + describe_uri(shared_->scheme, bucket, o.key));
        if (o.key == key + "/") has_marker = true;
        else has_children = true;
      }
      if (has_children) return Status::NotEmpty(name + ": prefix is not empty");
      if (has_marker) return client.delete_object(bucket, key + "/");
      return Status::NotFound(name + ": no such object or prefix");
    });
  }

  Status mkdir(const Uri& uri, uint32_t) override {
    return guarded([&]() -> Status {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      const std::string name = describe_uri(shared_->scheme, bucket, key);
      if (key.empty()) return Status::AlreadyExists(name + ": bucket root exists");
      S3Client& client = *shared_->client;
      Result<ObjectInfo> head = client.head_object(bucket, key);
      if (head.is_ok()) return Status::AlreadyExists(name + ": an object has this name");
      if (head.status().code() != Code::kNotFound) return head.status();
      if (is_prefix(bucket, key)) return Status::AlreadyExists(name + ": prefix exists");
      // Prefixes exist implicitly; an empty "key/" marker object makes an empty one visible.
      return client.put_object_single(bucket, key + "/", "", 0).status();
    });
  }

  Status rename(const Uri& from, const Uri& to) override {
    return guarded([&]() -> Status {
      std::string src_bucket, src_key, dst_bucket, dst_key;
      STOR_RETURN_IF_ERROR(bucket_and_key(from, &src_bucket, &src_key));
      STOR_RETURN_IF_ERROR(bucket_and_key(to, &dst_bucket, &dst_key));
      const std::string name = describe_uri(shared_->scheme, src_bucket, src_key);
      if (src_key.empty() || dst_key.empty()) return Status::InvalidArgument(name + ": cannot rename a bucket root");
      S3Client& client = *shared_->client;
      Result<ObjectInfo> head = client.head_object(src_bucket, src_key);
      if (!head.is_ok()) {
        if (head.status().code() == Code::kNotFound && is_prefix(src_bucket, src_key))
          return Status::Unsupported(name + ": renaming a prefix is not supported");
        return head.status();
      }
      if (is_directory_bucket(src_bucket) && src_bucket == dst_bucket) {
        // S3 Express: one atomic RenameObject, whatever the size.
        return client.rename_object(src_bucket, src_key, dst_key);
      }
      // Other object stores have no rename: copy server-side, then delete the source.
      STOR_RETURN_IF_ERROR(client.copy_object(src_bucket, src_key, dst_bucket, dst_key).status());
      return client.delete_object(src_bucket, src_key);
    });
  }

  std::vector<Result<size_t>> read_many(std::span<const ReadRequest> reads) override {
    std::vector<Result<size_t>> out(reads.size(), Result<size_t>(size_t{0}));
    S3Client& client = *shared_->client;
    // One ranged GET per item (a whole small object is checked against its checksum), up to
    // s3.max_connections in flight; an item's failure is its own result only.
    (void)parallel_for(client.pool(), reads.size(), client.config().max_connections, [&](size_t i) -> Status {
      out[i] = guarded([&]() -> Result<size_t> {
        const ReadRequest& r = reads[i];
        std::string bucket, key;
        STOR_RETURN_IF_ERROR(bucket_and_key(r.uri, &bucket, &key));
        const std::string name = describe_uri(shared_->scheme, bucket, key);
        if (key.empty() || (!r.uri.path.empty() && r.uri.path.back() == '/'))
          return Status::IsADirectory(name + ": is a prefix (directory), not an object");
        if (r.len == 0) return size_t{0};
        Result<S3Client::Fetched> got =
            client.get_object_start(bucket, key, r.offset, r.len, static_cast<char*>(r.buf));
        if (!got.is_ok()) {
          if (got.status().code() == Code::kNotFound && is_prefix(bucket, key))
            return Status::IsADirectory(name + ": is a prefix (directory)");
          return got.status();
        }
        return got->bytes;
      });
      return Status::ok();
    });
    return out;
  }

  ObjectStore* object_store() override { return this; }

  Result<std::unique_ptr<BackendFile>> open_for_write_if(const Uri& uri, const ObjectWriteCondition& c) override {
    return guarded([&]() -> Result<std::unique_ptr<BackendFile>> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      if (key.empty() || key.back() == '/')
        return Status::IsADirectory(describe_uri(shared_->scheme, bucket, key) + ": is a prefix, not an object");
      // No HEAD: the server checks the condition when the object is written.
      auto file = std::make_unique<S3File>(shared_, bucket, key, true);
      WriteCondition cond;
      cond.if_none_match = c.if_absent;
      cond.if_match = c.if_match;
      file->start_writer(ObjectInfo{}, true, std::move(cond));
      return std::unique_ptr<BackendFile>(std::move(file));
    });
  }

  // ---- ObjectStore ----

  Result<std::vector<ObjectVersion>> list_objects(const Uri& dir) override {
    return guarded([&]() -> Result<std::vector<ObjectVersion>> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(dir, &bucket, &key));
      const std::string prefix = key.empty() ? "" : key + "/";
      // One ListObjectsV2 per 1000 keys, ETags included: no HEAD per object.
      STOR_ASSIGN_OR_RETURN(ListPage page, shared_->client->list_all(bucket, prefix, "", 1000));
      std::vector<ObjectVersion> out;
      out.reserve(page.objects.size());
      for (auto& o : page.objects) {
        if (o.key.size() <= prefix.size()) continue;  // the prefix's own marker
        out.push_back({o.key.substr(prefix.size()), o.size, o.mtime_ns, std::move(o.etag)});
      }
      return out;
    });
  }

  Result<ObjectVersion> head_object(const Uri& uri) override {
    return guarded([&]() -> Result<ObjectVersion> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      STOR_ASSIGN_OR_RETURN(ObjectInfo info, shared_->client->head_object(bucket, key));
      return ObjectVersion{key, info.size, info.mtime_ns, info.etag};
    });
  }

  Result<size_t> read_version(const Uri& uri, const std::string& etag, uint64_t offset, size_t len,
                              char* dst) override {
    return guarded([&]() -> Result<size_t> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      return shared_->client->get_range(bucket, key, offset, len, dst, etag);  // If-Match etag
    });
  }

  Result<size_t> read_version_bulk(const Uri& uri, const ObjectVersion& version, uint64_t offset, size_t len,
                                   char* dst) override {
    return guarded([&]() -> Result<size_t> {
      std::string bucket, key;
      STOR_RETURN_IF_ERROR(bucket_and_key(uri, &bucket, &key));
      ObjectInfo info;
      info.size = version.size;
      info.etag = version.etag;
      // s3.part_size ranged GETs in parallel, each If-Match the version's ETag.
      return shared_->client->read_object(bucket, key, info, offset, len, dst);
    });
  }

  std::map<std::string, std::string> describe(const Uri& uri) override {
    std::map<std::string, std::string> out;
    const S3Config& c = shared_->client->config();
    out["endpoint"] = c.endpoint;
    out["region"] = c.region;
    out["addressing"] = c.path_style ? "path" : "virtual-host";
    out["part_size"] = std::to_string(c.part_size);
    out["max_connections"] = std::to_string(c.max_connections);
    out["session"] = c.session == SessionMode::kOn ? "on" : c.session == SessionMode::kOff ? "off" : "auto";
    std::string bucket, key;
    if (bucket_and_key(uri, &bucket, &key).is_ok()) {
      out["bucket"] = bucket;
      out["auth"] = shared_->client->auth_mode(bucket);
    }
    return out;
  }

 private:
  bool is_prefix(const std::string& bucket, const std::string& key) {
    Result<ListPage> page = shared_->client->list_objects_v2(bucket, key + "/", "/", "", 1);
    return page.is_ok() && (!page->objects.empty() || !page->common_prefixes.empty());
  }

  std::shared_ptr<Shared> shared_;
};

}  // namespace

Status bucket_and_key(const Uri& uri, std::string* bucket, std::string* key) {
  if (uri.authority.empty())
    return Status::InvalidArgument("'" + uri.to_string() + "': an S3 URI needs a bucket (scheme://bucket/key)");
  *bucket = uri.authority;
  std::string k = uri.path;
  while (!k.empty() && k.front() == '/') k.erase(k.begin());
  // "dir/obj%2F" names the key "dir/obj/" (S3 allows keys ending in '/'); a plain trailing '/'
  // names the prefix, as in "dir/obj/", and is dropped. Only a final "%2F" is decoded: keys are
  // otherwise taken literally.
  size_t encoded = 0;
  while (k.size() >= 3 && k[k.size() - 3] == '%' && k[k.size() - 2] == '2' && (k.back() == 'F' || k.back() == 'f')) {
    k.resize(k.size() - 3);
    ++encoded;
  }
  if (encoded > 0) {
    if (k.empty()) return Status::InvalidArgument("'" + uri.to_string() + "': an S3 key cannot be only '/'");
    k.append(encoded, '/');
  } else {
    while (!k.empty() && k.back() == '/') k.pop_back();
  }
  *key = k;
  return Status::ok();
}

S3Client* s3_client_of(Backend& backend) {
  auto* s3 = dynamic_cast<S3Backend*>(&backend);
  return s3 ? &s3->client() : nullptr;
}

Result<std::shared_ptr<Backend>> make_s3_backend(const std::string& scheme, const BackendContext& ctx) {
  return guarded([&]() -> Result<std::shared_ptr<Backend>> {
    STOR_ASSIGN_OR_RETURN(S3Config config, S3Config::from_settings(ctx.settings, scheme == "s3express"));
    STOR_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> client, S3Client::create(std::move(config)));
    auto shared = std::make_shared<Shared>();
    shared->client = std::move(client);
    // One thread per connection: each async request holds a thread for its (blocking) exchange.
    shared->async_pool = std::make_shared<WorkerPool>(std::max(4u, shared->client->config().max_connections));
    shared->scheme = scheme;
    return std::shared_ptr<Backend>(std::make_shared<S3Backend>(std::move(shared)));
  });
}

STOR_REGISTER_BACKEND("s3express", [](const BackendContext& ctx) { return make_s3_backend("s3express", ctx); });
STOR_REGISTER_BACKEND("s3", [](const BackendContext& ctx) { return make_s3_backend("s3", ctx); });

}  // namespace stor::s3
