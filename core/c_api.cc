// The C API: thin wrappers that turn Status into stor_code_t plus a thread-local message, and
// catch every C++ exception (bad_alloc included) so none crosses into C callers.
#include "stor/stor.h"

#include <cstring>
#include <exception>
#include <string>

#include "stor/store.h"

struct stor_store {
  std::unique_ptr<stor::Store> store;
};
struct stor_file {
  stor::File file;
};

namespace {

thread_local std::string t_last_error;

stor_code_t record(const stor::Status& s) {
  t_last_error = s.is_ok() ? std::string() : s.to_string();
  return static_cast<stor_code_t>(s.code());
}

template <typename F>
stor_code_t guarded(F&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    return record(stor::Status(stor::Code::kInternal, std::string("unexpected exception: ") + e.what()));
  } catch (...) {
    return record(stor::Status(stor::Code::kInternal, "unexpected exception"));
  }
}

stor_code_t null_arg(const char* what) {
  return record(stor::Status(stor::Code::kInvalidArgument, std::string(what) + " must not be NULL"));
}

}  // namespace

namespace {
// Runs body(segments) for a vectored C call after checking the file and the segment arguments.
template <typename Body>
stor_code_t with_segments(stor_file_t* f, const struct iovec* iov, int iovcnt, Body&& body) {
  return guarded([&] {
    if (!f) return null_arg("file");
    if (iovcnt < 0) return record(stor::Status::InvalidArgument("iovcnt must not be negative"));
    if (iovcnt > 0 && !iov) return record(stor::Status::InvalidArgument("iov must not be NULL when iovcnt > 0"));
    return body(std::span<const struct iovec>(iov, static_cast<size_t>(iovcnt)));
  });
}

// Records a blocking transfer's outcome, storing the byte count where asked.
stor_code_t transferred(const stor::Result<size_t>& r, size_t* out) {
  if (!r.is_ok()) return record(r.status());
  if (out) *out = *r;
  return record({});
}
}  // namespace

extern "C" {

const char* stor_version(void) { return stor::version(); }
const char* stor_last_error(void) { return t_last_error.c_str(); }

const char* stor_code_name(stor_code_t code) {
  // A C caller may pass any int. In C++ an enum object holding a value outside the enumerators'
  // range may not even be read (UB), so look at its bytes as the int they are.
  int value = 0;
  static_assert(sizeof(code) == sizeof(value));
  std::memcpy(&value, &code, sizeof value);
  if (value < STOR_OK || value > STOR_EINTERNAL) return "Unknown";
  return stor::code_name(static_cast<stor::Code>(value)).data();  // names are literals: NUL-terminated
}

stor_code_t stor_store_open(const stor_options_t* opts, stor_store_t** out) {
  return guarded([&] {
    if (!out) return null_arg("out");
    *out = nullptr;
    stor::StoreOptions o;
    if (opts) {
      std::string engine = opts->engine ? opts->engine : "auto";
      if (engine == "io_uring") o.engine.kind = stor::EngineKind::kIoUring;
      else if (engine == "threadpool") o.engine.kind = stor::EngineKind::kThreadPool;
      else if (engine != "auto")
        return record(stor::Status(stor::Code::kInvalidArgument, "engine must be auto, io_uring or threadpool"));
      if (opts->queue_depth) o.engine.queue_depth = opts->queue_depth;
      if (opts->plugin_dir) o.plugin_dir = opts->plugin_dir;
    }
    auto store = stor::Store::create(o);
    if (!store.is_ok()) return record(store.status());
    *out = new stor_store{std::move(store).value()};
    return record({});
  });
}

void stor_store_close(stor_store_t* store) {
  try {
    delete store;
  } catch (...) {
  }
}

const char* stor_store_engine(const stor_store_t* store) {
  return store ? const_cast<stor_store_t*>(store)->store->engine().name() : "";
}

// The C flags are the C++ ones, passed through unchanged.
static constexpr bool same_flag(uint32_t c, uint32_t cxx) { return c == cxx; }
static_assert(same_flag(STOR_O_READ, stor::kOpenRead) && same_flag(STOR_O_WRITE, stor::kOpenWrite) &&
              same_flag(STOR_O_CREATE, stor::kOpenCreate) && same_flag(STOR_O_TRUNC, stor::kOpenTruncate) &&
              same_flag(STOR_O_EXCL, stor::kOpenExclusive) && same_flag(STOR_O_DIRECT, stor::kOpenDirect) &&
              same_flag(STOR_O_APPEND, stor::kOpenAppend));

stor_code_t stor_file_open(stor_store_t* store, const char* uri, uint32_t flags, uint32_t mode, stor_file_t** out) {
  return guarded([&] {
    if (!store) return null_arg("store");
    if (!uri) return null_arg("uri");
    if (!out) return null_arg("out");
    *out = nullptr;
    auto f = store->store->open(uri, flags, mode);
    if (!f.is_ok()) return record(f.status());
    *out = new stor_file{std::move(f).value()};
    return record({});
  });
}

stor_code_t stor_file_read(stor_file_t* f, void* buf, size_t len, uint64_t off, size_t* nread) {
  return guarded([&] {
    if (!f) return null_arg("file");
    auto r = f->file.read(buf, len, off);
    if (!r.is_ok()) return record(r.status());
    if (nread) *nread = *r;
    return record({});
  });
}

stor_code_t stor_file_write(stor_file_t* f, const void* buf, size_t len, uint64_t off, size_t* nwritten) {
  return guarded([&] {
    if (!f) return null_arg("file");
    auto r = f->file.write(buf, len, off);
    if (!r.is_ok()) return record(r.status());
    if (nwritten) *nwritten = *r;
    return record({});
  });
}

static stor::IoCallback c_callback(stor_io_cb cb, void* ctx) {
  return [cb, ctx](stor::Result<size_t> r) {
    if (r.is_ok()) cb(ctx, STOR_OK, *r);
    else cb(ctx, static_cast<stor_code_t>(r.status().code()), 0);
  };
}

stor_code_t stor_file_read_async(stor_file_t* f, void* buf, size_t len, uint64_t off, stor_io_cb cb, void* ctx) {
  return guarded([&] {
    if (!f) return null_arg("file");
    if (!cb) return null_arg("callback");
    f->file.read_async(buf, len, off, c_callback(cb, ctx));
    return record({});
  });
}

stor_code_t stor_file_write_async(stor_file_t* f, const void* buf, size_t len, uint64_t off, stor_io_cb cb,
                                  void* ctx) {
  return guarded([&] {
    if (!f) return null_arg("file");
    if (!cb) return null_arg("callback");
    f->file.write_async(buf, len, off, c_callback(cb, ctx));
    return record({});
  });
}

stor_code_t stor_file_readv(stor_file_t* f, const struct iovec* iov, int iovcnt, uint64_t off, size_t* nread) {
  return with_segments(f, iov, iovcnt, [&](auto segs) { return transferred(f->file.readv(segs, off), nread); });
}

stor_code_t stor_file_writev(stor_file_t* f, const struct iovec* iov, int iovcnt, uint64_t off, size_t* nwritten) {
  return with_segments(f, iov, iovcnt, [&](auto segs) { return transferred(f->file.writev(segs, off), nwritten); });
}

stor_code_t stor_file_readv_async(stor_file_t* f, const struct iovec* iov, int iovcnt, uint64_t off, stor_io_cb cb,
                                  void* ctx) {
  return with_segments(f, iov, iovcnt, [&](auto segs) {
    if (!cb) return null_arg("callback");
    f->file.readv_async(segs, off, c_callback(cb, ctx));
    return record({});
  });
}

stor_code_t stor_file_writev_async(stor_file_t* f, const struct iovec* iov, int iovcnt, uint64_t off, stor_io_cb cb,
                                   void* ctx) {
  return with_segments(f, iov, iovcnt, [&](auto segs) {
    if (!cb) return null_arg("callback");
    f->file.writev_async(segs, off, c_callback(cb, ctx));
    return record({});
  });
}

stor_code_t stor_file_sync(stor_file_t* f, int data_only) {
  return guarded([&] { return f ? record(f->file.sync(data_only != 0)) : null_arg("file"); });
}

stor_code_t stor_file_truncate(stor_file_t* f, uint64_t size) {
  return guarded([&] { return f ? record(f->file.truncate(size)) : null_arg("file"); });
}

stor_code_t stor_file_size(stor_file_t* f, uint64_t* size) {
  return guarded([&] {
    if (!f) return null_arg("file");
    if (!size) return null_arg("size");
    auto r = f->file.size();
    if (!r.is_ok()) return record(r.status());
    *size = *r;
    return record({});
  });
}

namespace {
// Ends f with `end` (close or abort) and frees it whatever the outcome.
stor_code_t end_file(stor_file_t* f, stor::Status (stor::File::*end)()) {
  return guarded([&] {
    if (!f) return null_arg("file");
    stor::Status s = (f->file.*end)();
    delete f;
    return record(s);
  });
}
}  // namespace

stor_code_t stor_file_close(stor_file_t* f) { return end_file(f, &stor::File::close); }
stor_code_t stor_file_abort(stor_file_t* f) { return end_file(f, &stor::File::abort); }

stor_code_t stor_stat_size(stor_store_t* store, const char* uri, uint64_t* size) {
  return guarded([&] {
    if (!store) return null_arg("store");
    if (!uri) return null_arg("uri");
    if (!size) return null_arg("size");
    auto r = store->store->stat(uri);
    if (!r.is_ok()) return record(r.status());
    *size = r->size;
    return record({});
  });
}

stor_code_t stor_remove(stor_store_t* store, const char* uri) {
  return guarded([&] {
    if (!store) return null_arg("store");
    if (!uri) return null_arg("uri");
    return record(store->store->remove(uri));
  });
}

stor_code_t stor_mkdir(stor_store_t* store, const char* uri, uint32_t mode) {
  return guarded([&] {
    if (!store) return null_arg("store");
    if (!uri) return null_arg("uri");
    return record(store->store->mkdir(uri, mode));
  });
}

}  // extern "C"
