// stor._stor: the Python binding's native half (pybind11, public headers only).
//
// What Python sees is built on top of this in python/stor/__init__.py: the io.RawIOBase file
// class, the exception classes, stat results. Here: one Store per process, open files, blocking
// I/O with the GIL released, asynchronous reads as futures, and the namespace calls.
//
// Processes: a Store owns engine and backend threads, which a fork()ed child does not have. The
// Store is therefore per process id: a child (DataLoader workers with the fork start method)
// creates its own on first use and never touches (nor destroys) its parent's, whose threads are
// gone; files the parent opened refuse to work in the child.
#include <Python.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <stor/admin.h>
#include <stor/store.h>
#include <stor/tiering.h>

namespace py = pybind11;

namespace {

// A stor error on its way to Python: translated to the matching exception class by
// stor._errors.from_status (registered below).
struct StatusError {
  stor::Code code;
  std::string message;
};

[[noreturn]] void raise(const stor::Status& s) { throw StatusError{s.code(), s.message()}; }

// Sets the Python exception for a stor error (stor._errors.from_status picks the class); used by
// the exception translator and by the plain CPython functions below. The message is decoded with
// "replace": it may carry bytes a server sent.
void set_python_error(stor::Code code, const std::string& message) {
  static PyObject* from_status = nullptr;  // looked up on first error, kept for the process
  if (from_status == nullptr) {
    PyObject* mod = PyImport_ImportModule("stor._errors");
    if (mod == nullptr) return;
    from_status = PyObject_GetAttrString(mod, "from_status");
    Py_DECREF(mod);
    if (from_status == nullptr) return;
  }
  const std::string name(stor::code_name(code));
  PyObject* msg = PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
  if (msg == nullptr) return;
  PyObject* exc = PyObject_CallFunction(from_status, "sO", name.c_str(), msg);
  Py_DECREF(msg);
  if (exc == nullptr) return;  // from_status's own error is set
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
  Py_DECREF(exc);
}
void set_python_error(const stor::Status& s) { set_python_error(s.code(), s.message()); }
void check(const stor::Status& s) {
  if (!s.is_ok()) raise(s);
}
template <typename T>
T unwrap(stor::Result<T> r) {
  if (!r.is_ok()) raise(r.status());
  return std::move(r).value();
}

// ---- the per-process Store ------------------------------------------------------------------

// This process's id, refreshed in a forked child (pthread_atfork, registered at import): every
// I/O call compares it, and getpid() is a system call.
std::atomic<pid_t> g_pid{::getpid()};
pid_t current_pid() { return g_pid.load(std::memory_order_relaxed); }

struct StoreHandle {
  std::unique_ptr<stor::Store> store;
  pid_t pid = current_pid();
  ~StoreHandle() {
    // In a forked child the Store's threads do not exist: destroying it would wait for them.
    if (current_pid() != pid) (void)store.release();
  }
};

struct Config {
  stor::StoreOptions opts;
};

// Guarded by the GIL: every function touching these holds it.
Config g_config;
std::shared_ptr<StoreHandle> g_store;

std::shared_ptr<StoreHandle> current_store() {
  if (g_store && g_store->pid != current_pid()) g_store.reset();  // inherited through fork
  if (!g_store) {
    auto h = std::make_shared<StoreHandle>();
    h->store = unwrap(stor::Store::create(g_config.opts));
    g_store = std::move(h);
  }
  return g_store;
}

void configure(const std::map<std::string, std::string>& settings, const std::string& engine,
               unsigned queue_depth, unsigned threads, const std::string& plugin_dir) {
  stor::StoreOptions opts;
  opts.settings = settings;
  if (engine == "auto") opts.engine.kind = stor::EngineKind::kAuto;
  else if (engine == "io_uring") opts.engine.kind = stor::EngineKind::kIoUring;
  else if (engine == "threadpool") opts.engine.kind = stor::EngineKind::kThreadPool;
  else raise(stor::Status::InvalidArgument("engine '" + engine + "': must be auto, io_uring or threadpool"));
  if (queue_depth > 0) opts.engine.queue_depth = queue_depth;
  if (threads > 0) opts.engine.threads = threads;
  opts.plugin_dir = plugin_dir;
  g_config.opts = std::move(opts);
  g_store.reset();  // open files keep the old Store alive until they close
}

// ---- buffers --------------------------------------------------------------------------------

// A contiguous view of a Python object's memory (bytearray, numpy array, CPU tensor, mmap ...),
// held until released: no copy is made.
class BufferView {
 public:
  BufferView(py::handle obj, bool writable) {
    const int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj.ptr(), &view_, flags) != 0) throw py::error_already_set();
    held_ = true;
  }
  ~BufferView() { release(); }
  BufferView(const BufferView&) = delete;
  BufferView& operator=(const BufferView&) = delete;
  void release() {
    if (held_) PyBuffer_Release(&view_);  // callers hold the GIL
    held_ = false;
  }
  char* data() const { return static_cast<char*>(view_.buf); }
  size_t size() const { return static_cast<size_t>(view_.len); }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

// ---- files ----------------------------------------------------------------------------------

// An open stor::File plus the count of its asynchronous reads in flight: close waits for them,
// and futures keep the state (so the file) alive until their read is done. The position (what
// stor.File's readinto/read/seek/tell use) and the read split are guarded by the GIL.
struct FileState {
  std::shared_ptr<StoreHandle> store;
  stor::File file;
  std::mutex mu;
  std::condition_variable idle;
  size_t in_flight = 0;
  bool closed = false;
  bool readable = false;
  uint64_t pos = 0;
  size_t pieces = 1;  // the backends fan large reads out themselves (S3 ranged GETs, lustre stripes)

  ~FileState() {
    // A parent's handle in a forked child: closing it could wait for the parent's threads.
    if (store && store->pid != current_pid()) (void)new stor::File(std::move(file));
  }

  stor::Status usable() const {
    if (closed) return stor::Status::InvalidArgument("I/O operation on closed file " + file.uri().to_string());
    if (store->pid != current_pid())
      return stor::Status::InvalidArgument("file " + file.uri().to_string() +
                                           " was opened by another process (before fork): open it again here");
    return {};
  }
  void check_usable() const { check(usable()); }
  void wait_idle() {
    std::unique_lock<std::mutex> lock(mu);
    idle.wait(lock, [&] { return in_flight == 0; });
  }
};

// One asynchronous read: the engine's callback fills in the result; Python waits on it.
struct AsyncOp {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  stor::Result<size_t> result{stor::Status::Aborted("read in flight")};
};

// Large reads are split into pieces issued at once, so a backend that serves one request on one
// thread (a pread from the page cache on the thread pool) uses several; a read is short only at
// end of file, so the pieces' counts add up.
constexpr size_t kSplitPiece = 4u << 20;

// Waits for the pieces of one blocking read. A page-cache read completes within microseconds of
// its submission, and sleeping on a condition variable adds a wake-up of the caller to the
// reaper's (about 10% of a 1 MiB read): the caller spins briefly on the count first.
class ReadJoin {
 public:
  explicit ReadJoin(size_t pieces) : left_(pieces) {}
  stor::IoCallback callback() {
    return [this](stor::Result<size_t> r) {
      std::lock_guard<std::mutex> lock(mu_);
      if (r.is_ok()) bytes_ += *r;
      else if (error_.is_ok()) error_ = r.status();
      if (left_.fetch_sub(1, std::memory_order_acq_rel) == 1) cv_.notify_all();
    };
  }
  stor::Result<size_t> wait() {
    const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (left_.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < spin_until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    // The lock also orders the callback's last use of this object before our return.
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return left_.load(std::memory_order_acquire) == 0; });
    if (!error_.is_ok()) return error_;
    return bytes_;
  }

 private:
  std::atomic<size_t> left_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t bytes_ = 0;
  stor::Status error_;
};

stor::Result<size_t> read_split(stor::File& file, char* dst, size_t len, uint64_t offset, size_t pieces_max) {
  const size_t pieces = std::max<size_t>(1, std::min(pieces_max, (len + kSplitPiece - 1) / kSplitPiece));
  if (pieces == 1) return file.read(dst, len, offset);  // the backend may serve it inline (nvme: page cache)
  const size_t piece = (len + pieces - 1) / pieces;
  ReadJoin join(pieces);
  for (size_t i = 0; i < pieces; ++i) {
    const size_t off = i * piece;
    file.read_async(dst + off, std::min(piece, len - off), offset + off, join.callback());
  }
  return join.wait();
}

// stor.File.readinto(b) for a readable file: fills b at the file's position and advances it. A
// plain CPython function (METH_O) bound to a capsule holding the file's state, which stor.File
// instances use as their readinto attribute: a 1 MiB page-cache read evicts the CPU caches, so
// each call runs the binding's code cold, and a Python method frame plus pybind11's generic
// dispatch (argument casters, overload records) around it measured ~5% of such a read.
constexpr const char* kStateCapsule = "stor._stor.FileState";

PyObject* readinto_at_position(PyObject* capsule, PyObject* buffer) {
  auto* held = static_cast<std::shared_ptr<FileState>*>(PyCapsule_GetPointer(capsule, kStateCapsule));
  if (held == nullptr) return nullptr;
  FileState& st = **held;
  stor::Status usable = st.usable();
  if (usable.is_ok() && !st.readable) usable = stor::Status::Unsupported("File not open for reading");
  if (!usable.is_ok()) {
    set_python_error(usable);
    return nullptr;
  }
  Py_buffer view;
  if (PyObject_GetBuffer(buffer, &view, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) != 0) return nullptr;
  stor::Result<size_t> r = size_t{0};
  Py_BEGIN_ALLOW_THREADS
  r = read_split(st.file, static_cast<char*>(view.buf), static_cast<size_t>(view.len), st.pos, st.pieces);
  Py_END_ALLOW_THREADS
  PyBuffer_Release(&view);
  if (!r.is_ok()) {
    set_python_error(r.status());
    return nullptr;
  }
  st.pos += *r;
  return PyLong_FromSize_t(*r);
}

PyMethodDef g_readinto_def = {"readinto", readinto_at_position, METH_O,
                              "readinto(b): fills b at the file's position, advances it, returns the count"};

class PyFuture;

class PyFile {
 public:
  PyFile(std::shared_ptr<StoreHandle> store, stor::File file, bool readable) : st_(std::make_shared<FileState>()) {
    st_->store = std::move(store);
    st_->file = std::move(file);
    st_->readable = readable;
  }
  ~PyFile() {
    if (!st_->closed && st_->store->pid == current_pid()) {
      py::gil_scoped_release nogil;
      st_->wait_idle();
      (void)st_->file.close();  // errors are lost here, as with io's __del__: close() reports them
    }
    st_->closed = true;  // a readinto function may outlive this object
  }

  // readinto_at_position bound to this file (it keeps the state alive, not this object).
  py::object readinto_function() {
    auto* held = new std::shared_ptr<FileState>(st_);
    PyObject* capsule = PyCapsule_New(held, kStateCapsule, [](PyObject* c) {
      delete static_cast<std::shared_ptr<FileState>*>(PyCapsule_GetPointer(c, kStateCapsule));
    });
    if (capsule == nullptr) {
      delete held;
      throw py::error_already_set();
    }
    PyObject* fn = PyCFunction_NewEx(&g_readinto_def, capsule, nullptr);
    Py_DECREF(capsule);
    if (fn == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(fn);
  }
  uint64_t pos() const { return st_->pos; }
  void set_pos(uint64_t pos) { st_->pos = pos; }

  std::string uri() const { return st_->file.uri().to_string(); }
  bool closed() const { return st_->closed; }

  size_t readinto(py::handle buffer, uint64_t offset) {
    st_->check_usable();
    BufferView view(buffer, true);
    stor::Result<size_t> r = size_t{0};
    {
      py::gil_scoped_release nogil;
      r = read_split(st_->file, view.data(), view.size(), offset, st_->pieces);
    }
    return unwrap(std::move(r));
  }

  // A new bytes object of at most `length` bytes read at `offset` (one allocation, no copy).
  py::bytes pread(uint64_t offset, size_t length) {
    st_->check_usable();
    PyObject* raw = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(length));
    if (raw == nullptr) throw py::error_already_set();
    py::object out = py::reinterpret_steal<py::object>(raw);
    stor::Result<size_t> r = size_t{0};
    {
      py::gil_scoped_release nogil;
      r = read_split(st_->file, PyBytes_AS_STRING(raw), length, offset, st_->pieces);
    }
    const size_t n = unwrap(std::move(r));
    if (n != length && _PyBytes_Resize(&raw, static_cast<Py_ssize_t>(n)) != 0) {
      out.release();  // _PyBytes_Resize freed it
      throw py::error_already_set();
    }
    out.release();
    return py::reinterpret_steal<py::bytes>(raw);
  }

  size_t write(py::handle buffer, uint64_t offset) {
    st_->check_usable();
    BufferView view(buffer, false);
    stor::Result<size_t> r = size_t{0};
    {
      py::gil_scoped_release nogil;
      r = st_->file.write(view.data(), view.size(), offset);
    }
    return unwrap(std::move(r));
  }

  uint64_t size() {
    st_->check_usable();
    py::gil_scoped_release nogil;
    return unwrap(st_->file.size());
  }
  void sync(bool data_only) {
    st_->check_usable();
    py::gil_scoped_release nogil;
    check(st_->file.sync(data_only));
  }
  void truncate(uint64_t size) {
    st_->check_usable();
    py::gil_scoped_release nogil;
    check(st_->file.truncate(size));
  }
  bool direct() const { return st_->file.direct(); }
  // The split of large reads (1: one request per read).
  void set_read_pieces(size_t n) { st_->pieces = std::max<size_t>(1, n); }

  void close(bool abort) {
    if (st_->closed) return;
    if (st_->store->pid != current_pid()) {  // the parent's handle: not ours to close
      st_->closed = true;
      return;
    }
    stor::Status s;
    {
      py::gil_scoped_release nogil;
      st_->wait_idle();
      s = abort ? st_->file.abort() : st_->file.close();
    }
    st_->closed = true;
    check(s);
  }

  std::unique_ptr<PyFuture> read_async(uint64_t offset, size_t length);
  std::unique_ptr<PyFuture> readinto_async(py::handle buffer, uint64_t offset);

 private:
  std::shared_ptr<FileState> st_;
};

// What read_async/readinto_async return: result(timeout=None) waits (without the GIL) and gives
// the bytes (read_async) or the count (readinto_async), or raises the read's error.
class PyFuture {
 public:
  PyFuture(std::shared_ptr<FileState> file, py::object owner, bool return_bytes)
      : file_(std::move(file)), op_(std::make_shared<AsyncOp>()), owner_(std::move(owner)),
        return_bytes_(return_bytes) {}
  ~PyFuture() {
    // The engine may still write into the buffer: wait for it before letting it go.
    py::gil_scoped_release nogil;
    wait_done(-1);
  }

  void start(char* dst, size_t len, uint64_t offset, std::unique_ptr<BufferView> view) {
    view_ = std::move(view);
    {
      std::lock_guard<std::mutex> lock(file_->mu);
      ++file_->in_flight;
    }
    auto op = op_;
    auto st = file_;
    py::gil_scoped_release nogil;  // read_async may block while the engine's queue is full
    file_->file.read_async(dst, len, offset, [op, st](stor::Result<size_t> r) {
      {
        std::lock_guard<std::mutex> lock(op->mu);
        op->result = std::move(r);
        op->done = true;
      }
      op->cv.notify_all();
      std::lock_guard<std::mutex> lock(st->mu);
      if (--st->in_flight == 0) st->idle.notify_all();
    });
  }

  bool done() {
    std::lock_guard<std::mutex> lock(op_->mu);
    return op_->done;
  }

  py::object result(py::object timeout) {
    if (!collected_) {
      const double seconds = timeout.is_none() ? -1.0 : timeout.cast<double>();
      bool finished;
      {
        py::gil_scoped_release nogil;
        finished = wait_done(seconds);
      }
      if (!finished) {
        PyErr_SetString(PyExc_TimeoutError, "stor read still in flight");
        throw py::error_already_set();
      }
      collected_ = true;
      if (view_) view_->release();
      if (op_->result.is_ok() && return_bytes_) {
        const size_t n = *op_->result;
        if (static_cast<Py_ssize_t>(n) != PyByteArray_GET_SIZE(owner_.ptr()) &&
            PyByteArray_Resize(owner_.ptr(), static_cast<Py_ssize_t>(n)) != 0)
          throw py::error_already_set();
      }
    }
    if (!op_->result.is_ok()) raise(op_->result.status());
    if (return_bytes_) return owner_;
    return py::int_(*op_->result);
  }

 private:
  bool wait_done(double seconds) {
    std::unique_lock<std::mutex> lock(op_->mu);
    if (seconds < 0) {
      op_->cv.wait(lock, [&] { return op_->done; });
      return true;
    }
    return op_->cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return op_->done; });
  }

  std::shared_ptr<FileState> file_;
  std::shared_ptr<AsyncOp> op_;
  py::object owner_;  // the bytearray being filled, or the caller's buffer object
  std::unique_ptr<BufferView> view_;
  bool return_bytes_;
  bool collected_ = false;
};

std::unique_ptr<PyFuture> PyFile::read_async(uint64_t offset, size_t length) {
  st_->check_usable();
  PyObject* raw = PyByteArray_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(length));
  if (raw == nullptr) throw py::error_already_set();
  py::object owner = py::reinterpret_steal<py::object>(raw);
  auto f = std::make_unique<PyFuture>(st_, owner, true);
  f->start(PyByteArray_AS_STRING(raw), length, offset, nullptr);
  return f;
}

std::unique_ptr<PyFuture> PyFile::readinto_async(py::handle buffer, uint64_t offset) {
  st_->check_usable();
  auto view = std::make_unique<BufferView>(buffer, true);
  char* dst = view->data();
  const size_t len = view->size();
  auto f = std::make_unique<PyFuture>(st_, py::reinterpret_borrow<py::object>(buffer), false);
  f->start(dst, len, offset, std::move(view));
  return f;
}

// ---- namespace calls ------------------------------------------------------------------------

uint32_t open_flags(const std::string& mode) {
  // Python's binary modes; the text modes are io.TextIOWrapper's business (stor/__init__.py).
  if (mode == "rb") return stor::kOpenRead;
  if (mode == "wb") return stor::kOpenWrite | stor::kOpenCreate | stor::kOpenTruncate;
  if (mode == "xb") return stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive;
  if (mode == "r+b") return stor::kOpenRead | stor::kOpenWrite;
  if (mode == "w+b") return stor::kOpenRead | stor::kOpenWrite | stor::kOpenCreate | stor::kOpenTruncate;
  raise(stor::Status::InvalidArgument("mode '" + mode + "': must be rb, wb, xb, r+b or w+b"));
}

std::unique_ptr<PyFile> open_file(const std::string& uri, const std::string& mode, bool direct, uint32_t perm) {
  uint32_t flags = open_flags(mode) | (direct ? uint32_t{stor::kOpenDirect} : 0u);
  auto store = current_store();
  stor::Result<stor::File> f = stor::Status::Internal("not opened");
  {
    py::gil_scoped_release nogil;
    f = store->store->open(uri, flags, perm);
  }
  return std::make_unique<PyFile>(store, unwrap(std::move(f)), (flags & stor::kOpenRead) != 0);
}

const char* type_name(stor::FileType t) {
  switch (t) {
    case stor::FileType::kRegular: return "file";
    case stor::FileType::kDirectory: return "dir";
    case stor::FileType::kBlockDevice: return "block";
    default: return "other";
  }
}

py::tuple stat_tuple(const stor::FileInfo& i) {
  return py::make_tuple(i.path, type_name(i.type), i.size, i.mode, i.uid, i.gid, i.mtime_ns, i.etag);
}

py::tuple stat_uri(const std::string& uri) {
  auto store = current_store();
  stor::Result<stor::FileInfo> r = stor::Status::Internal("no stat");
  {
    py::gil_scoped_release nogil;
    r = store->store->stat(uri);
  }
  return stat_tuple(unwrap(std::move(r)));
}

std::vector<py::tuple> list_dir(const std::string& uri) {
  auto store = current_store();
  stor::Result<std::vector<stor::DirEntry>> r = stor::Status::Internal("no list");
  {
    py::gil_scoped_release nogil;
    r = store->store->list(uri);
  }
  std::vector<py::tuple> out;
  for (const auto& e : unwrap(std::move(r))) out.push_back(py::make_tuple(e.name, type_name(e.type), e.size));
  return out;
}

template <typename Fn>
void nogil_status(Fn fn) {
  stor::Status s;
  {
    py::gil_scoped_release nogil;
    s = fn();
  }
  check(s);
}

// Copies src to dst with the next chunk's read in flight while the current one is written. An
// object-store destination is published only when whole (a failed copy aborts the upload, so
// the object keeps its old bytes); a file system destination is written in place.
stor::Status copy_data(stor::Store& store, const std::string& src_uri, const std::string& dst_uri, uint64_t* copied) {
  constexpr size_t kChunk = 8u << 20;
  STOR_ASSIGN_OR_RETURN(stor::File src, store.open(src_uri, stor::kOpenRead));
  STOR_ASSIGN_OR_RETURN(uint64_t size, src.size());
  STOR_ASSIGN_OR_RETURN(stor::File dst,
                        store.open(dst_uri, stor::kOpenWrite | stor::kOpenCreate | stor::kOpenTruncate));
  std::vector<char> bufs[2] = {std::vector<char>(kChunk), std::vector<char>(kChunk)};
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    bool done = true;
    stor::Result<size_t> r = size_t{0};
  } pending;
  auto start_read = [&](int slot, uint64_t off) {
    {
      std::lock_guard<std::mutex> lock(pending.mu);
      pending.done = false;
    }
    src.read_async(bufs[slot].data(), static_cast<size_t>(std::min<uint64_t>(kChunk, size - off)), off,
                   [&pending](stor::Result<size_t> r) {
                     std::lock_guard<std::mutex> lock(pending.mu);
                     pending.r = std::move(r);
                     pending.done = true;
                     pending.cv.notify_all();
                   });
  };
  auto wait_read = [&]() -> stor::Result<size_t> {
    std::unique_lock<std::mutex> lock(pending.mu);
    pending.cv.wait(lock, [&] { return pending.done; });
    return pending.r;
  };
  stor::Status s;
  uint64_t off = 0;
  int slot = 0;
  if (size > 0) start_read(slot, 0);
  while (off < size) {
    stor::Result<size_t> got = wait_read();
    if (!got.is_ok()) {
      s = got.status();
      break;
    }
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kChunk, size - off));
    if (*got != want) {
      s = stor::Status::IoError(src_uri + " shrank while being copied");
      break;
    }
    if (off + want < size) start_read(slot ^ 1, off + want);
    stor::Status w = dst.write(bufs[slot].data(), want, off).status();
    if (!w.is_ok()) {
      s = w;
      (void)wait_read();  // the read in flight uses bufs
      break;
    }
    off += want;
    slot ^= 1;
  }
  stor::Status closed_src = src.close();
  if (s.is_ok()) s = dst.close();
  if (s.is_ok()) s = closed_src;
  if (!s.is_ok()) {
    (void)dst.abort();
    return s.with_context("copy " + src_uri + " to " + dst_uri);
  }
  *copied = off;
  return s;
}

}  // namespace

PYBIND11_MODULE(_stor, m) {
  m.doc() = "Native half of the stor Python binding (use the stor package)";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      set_python_error(e.code, e.message);
    }
  });
  ::pthread_atfork(nullptr, nullptr, [] { g_pid.store(::getpid(), std::memory_order_relaxed); });

  m.def("version", [] { return std::string(stor::version()); });
  m.def("configure", &configure, py::arg("settings"), py::arg("engine") = "auto", py::arg("queue_depth") = 0,
        py::arg("threads") = 0, py::arg("plugin_dir") = "");
  m.def("engine_name", [] { return std::string(current_store()->store->engine().name()); });

  py::class_<PyFuture>(m, "Future")
      .def("done", &PyFuture::done)
      .def("result", &PyFuture::result, py::arg("timeout") = py::none());

  py::class_<PyFile>(m, "File")
      .def_property_readonly("uri", &PyFile::uri)
      .def_property_readonly("closed", &PyFile::closed)
      .def("readinto", &PyFile::readinto, py::arg("buffer"), py::arg("offset"))
      .def("readinto_function", &PyFile::readinto_function)
      .def_property("pos", &PyFile::pos, &PyFile::set_pos)
      .def("pread", &PyFile::pread, py::arg("offset"), py::arg("length"))
      .def("write", &PyFile::write, py::arg("buffer"), py::arg("offset"))
      .def("read_async", &PyFile::read_async, py::arg("offset"), py::arg("length"))
      .def("readinto_async", &PyFile::readinto_async, py::arg("buffer"), py::arg("offset"))
      .def("size", &PyFile::size)
      .def("sync", &PyFile::sync, py::arg("data_only") = false)
      .def("truncate", &PyFile::truncate, py::arg("size"))
      .def("direct", &PyFile::direct)
      .def("set_read_pieces", &PyFile::set_read_pieces)
      .def("close", &PyFile::close, py::arg("abort") = false);

  m.def("open", &open_file, py::arg("uri"), py::arg("mode"), py::arg("direct") = false, py::arg("perm") = 0644);
  m.def("stat", &stat_uri, py::arg("uri"));
  m.def("list", &list_dir, py::arg("uri"));
  m.def("remove", [](const std::string& uri) {
    auto store = current_store();
    nogil_status([&] { return store->store->remove(uri); });
  });
  m.def("mkdir", [](const std::string& uri, uint32_t mode) {
    auto store = current_store();
    nogil_status([&] { return store->store->mkdir(uri, mode); });
  }, py::arg("uri"), py::arg("mode") = 0755);
  m.def("rename", [](const std::string& from, const std::string& to) {
    auto store = current_store();
    nogil_status([&] { return store->store->rename(from, to); });
  });
  m.def("copy", [](const std::string& src, const std::string& dst) {
    auto store = current_store();
    uint64_t copied = 0;
    nogil_status([&] { return copy_data(*store->store, src, dst, &copied); });
    return copied;
  });

  // Administration the Python side needs to set a namespace up (tests, notebooks).
  m.def("mkfs", [](const std::string& dir, uint32_t targets, uint64_t stripe_size, int32_t stripe_count) {
    stor::admin::MkfsOptions o;
    o.targets = targets;
    o.default_layout = {stor::admin::StripeSpec{stripe_count, stripe_size, -1, stor::admin::kEof}};
    nogil_status([&] { return stor::admin::mkfs(dir, o); });
  }, py::arg("dir"), py::arg("targets") = 4, py::arg("stripe_size") = stor::admin::kDefaultStripeSize,
     py::arg("stripe_count") = 1);
  m.def("create_bucket", [](const std::string& uri) {
    auto store = current_store();
    stor::Result<std::string> r = stor::Status::Internal("no bucket");
    {
      py::gil_scoped_release nogil;
      r = stor::admin::s3_create_bucket(*store->store, uri);
    }
    return unwrap(std::move(r));
  });
  m.def("link", [](const std::string& fast_dir, const std::string& cold_uri, const std::string& fast_root) {
    auto store = current_store();
    stor::Result<size_t> r = stor::Status::Internal("no link");
    {
      py::gil_scoped_release nogil;
      r = [&]() -> stor::Result<size_t> {
        STOR_ASSIGN_OR_RETURN(auto uri, stor::Uri::parse("tier:///"));
        STOR_ASSIGN_OR_RETURN(auto backend, store->store->backend(uri));
        STOR_ASSIGN_OR_RETURN(auto linked, stor::tiering::create_link(*backend, fast_dir, cold_uri, fast_root));
        return linked.imported;
      }();
    }
    return unwrap(std::move(r));
  }, py::arg("fast_dir"), py::arg("cold_uri"), py::arg("fast_root") = "");
  m.def("_shutdown", [] { g_store.reset(); });
}
