// Nonblocking I/O (MPI_File_iread*/iwrite*) and split collectives (*_begin/*_end) on stor files.
//
// A request is an MPICH generalized request (MPIX_Grequest_start) whose data moves through the
// stor async engine: the call checks the arguments, packs noncontiguous memory and submits the
// file segments, then returns. MPICH calls the poll function from every MPI_Wait/Test/Waitall/
// Testany/... that includes the request, on the application's thread, so completion needs no
// particular MPI thread level and never calls MPI from an engine thread; the engine callbacks
// only count down the batch.
//
// What overlaps:
// * independent forms (iread_at, iwrite_at, iread, iwrite, iread_shared, iwrite_shared): all of
//   the I/O, on ranks holding a stor handle. Ranks without one (emulated lustre, see delegation)
//   ship the request to the delegate at the call and return a completed request.
// * collective forms (iread_all, iwrite_all, iread_at_all, iwrite_at_all, split collectives):
//   the collective exchange (one Allgather that also agrees on argument errors) happens at the
//   call, on every rank, so the ranks' calls match like any collective. When ROMIO's rule picks
//   the independent branch (ranges do not interleave, the default for block layouts), each
//   rank's own I/O then runs asynchronously. With two-phase I/O, writes do the exchanges at the
//   call and leave the aggregators' writes of the last round in flight; reads (whose data comes
//   back through an exchange after the aggregators' reads) are done at the call.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>
#include <memory>
#include <optional>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

struct Request {
  Access a;
  bool collective = false;
  std::unique_ptr<IoBatch> batch;  // I/O running after the call (none: completed at the call)
  AsyncIo io;                      // what the I/O in `batch` uses
  int64_t moved = 0;
  int code = MPI_SUCCESS;          // what MPI_Wait/Test report (query function)
  bool finished = false;
  MPI_Request req = MPI_REQUEST_NULL;
};

// On the MPI thread, once no I/O of r is running: the read's bytes into the user's buffer, then
// completion. Must not touch the StorFile: it may be closed already.
void finish(Request* r) {
  if (r->finished) return;
  r->finished = true;
  if (r->batch) {
    Status s = r->batch->error();
    if (!s.is_ok()) {
      r->code = access_error(s, r->a.write);
      r->moved = 0;
    } else if (!r->a.write && r->io.submitted) {
      int64_t total = r->a.mem.bytes;
      int64_t got = bytes_read(r->a.segments, r->io.got);
      if (r->collective && got < total) {
        // Collective reads report the full count; past end of file reads as zeros.
        std::memset(r->a.stream + got, 0, static_cast<size_t>(total - got));
        got = total;
      }
      r->moved = got;
      finish_read(r->a, got);
    }
  }
  PMPI_Grequest_complete(r->req);
}

int query_fn(void* state, MPI_Status* status) {
  auto* r = static_cast<Request*>(state);
  PMPI_Status_set_elements_x(status, MPI_BYTE, r->a.mem.status_bytes(r->moved));
  PMPI_Status_set_cancelled(status, 0);
  status->MPI_SOURCE = MPI_UNDEFINED;
  status->MPI_TAG = MPI_UNDEFINED;
  return r->code;
}

// Requests the program freed (MPI_Request_free) before their I/O finished: nothing will wait on
// them, so progress_detached() finishes and deletes them once their batch is done.
std::mutex g_detached_mu;
std::vector<Request*> g_detached;
std::atomic<size_t> g_detached_count{0};

int free_fn(void* state) {
  auto* r = static_cast<Request*>(state);
  if (r->finished) {
    delete r;
    return MPI_SUCCESS;
  }
  // MPICH calls free_fn from MPI_Request_free itself, even before MPI_Grequest_complete (MPI says
  // after both): the engine may still be writing into r's batch, so r must outlive its I/O.
  std::lock_guard lk(g_detached_mu);
  g_detached.push_back(r);
  g_detached_count.store(g_detached.size());
  return MPI_SUCCESS;
}

// Started I/O cannot be withdrawn from the engine: the request completes normally (the
// standard allows a cancel that does not take effect; the status says "not cancelled").
int cancel_fn(void*, int) { return MPI_SUCCESS; }

int poll_fn(void* state, MPI_Status*) {
  auto* r = static_cast<Request*>(state);
  if (!r->finished && (!r->batch || r->batch->done())) finish(r);
  return MPI_SUCCESS;
}

// Blocking wait on several of our requests (MPICH's wait hook): sleeps on the batches instead of
// spinning in poll_fn.
int wait_fn(int count, void** states, double, MPI_Status*) {
  for (int i = 0; i < count; ++i) {
    auto* r = static_cast<Request*>(states[i]);
    if (r->finished) continue;
    if (r->batch) (void)r->batch->wait();
    finish(r);
  }
  return MPI_SUCCESS;
}

}  // namespace

int start_nonblocking(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write,
                      bool collective, MPI_Request* req) {
  if (!req) return report(f, mpi_error(MPI_ERR_REQUEST, "null request pointer"));
  *req = MPI_REQUEST_NULL;
  auto r = std::make_unique<Request>();
  r->collective = collective;
  Access& a = r->a;
  prepare_access(f, offset, buf, count, type, write, &a);
  if (!a.check.is_ok() && !collective) return report(f, access_error(a.check, write));

  if (f->file) {
    {
      std::lock_guard lk(f->inflight_mu);
      ++f->inflight;
    }
    // Counted down once, when the last engine callback ends (the guard below holds it until
    // everything is submitted).
    r->batch = std::make_unique<IoBatch>(*f->file, [f] {
      std::lock_guard lk(f->inflight_mu);
      --f->inflight;
      f->inflight_cv.notify_all();
    });
    r->batch->begin();
    r->io.batch = r->batch.get();
  }
  Status s;
  std::optional<AtomicGuard> atomic_guard;
  r->moved = a.mem.bytes;
  if (collective) {
    // Every rank passes &r->io (with or without a handle), so all take the same collective path.
    if (write) s = collective_write(*f, a.segments, a.stream, a.check, &r->io);
    else s = collective_read(*f, a.segments, a.stream, a.check, &r->io);
  } else if (f->file) {
    // Atomic mode: the access keeps its byte-range lock until its I/O is done, so it completes
    // at the call (atomic.cc).
    if (f->atomic.load() && a.check.is_ok()) {
      atomic_guard.emplace(*f, a.segments, write);
      s = atomic_guard->status();
    }
    if (s.is_ok()) {
      if (write) submit_writes(*r->batch, a.segments, a.stream);
      else submit_reads(*r->batch, a.segments, a.stream, &r->io.got);
      r->io.submitted = true;
    }
  } else {
    auto moved = delegate(*f, write ? DelegatedOp::kWrite : DelegatedOp::kRead, a.segments, a.stream, a.mem.bytes);
    s = moved.status();
    if (moved.is_ok()) r->moved = *moved;
  }
  if (r->batch) r->batch->end(Status::ok());
  if (atomic_guard && r->batch) (void)r->batch->wait();  // its error is the request's
  atomic_guard.reset();
  if (collective && f->atomic.load()) {
    // Atomic mode: as for the blocking form, no rank leaves before every rank's data is in place.
    if (r->batch) (void)r->batch->wait();
    PMPI_Barrier(f->comm);
  }
  if (!s.is_ok()) {
    if (r->batch) (void)r->batch->wait();  // a failed two-phase write may have left writes in flight
    return report(f, access_error(s, write));
  }
  if (!write && !r->io.submitted) finish_read(a, r->moved);  // read at the call (two-phase, delegated)
  Request* state = r.release();
  int rc = PMPIX_Grequest_start(query_fn, free_fn, cancel_fn, poll_fn, wait_fn, state, &state->req);
  if (rc != MPI_SUCCESS) {
    if (state->batch) (void)state->batch->wait();
    delete state;
    return report(f, rc);
  }
  *req = state->req;
  if (!state->batch) finish(state);  // no handle: done at the call
  return MPI_SUCCESS;
}

void progress_detached(bool wait) {
  if (g_detached_count.load() == 0) return;
  std::vector<Request*> ready;
  {
    std::lock_guard lk(g_detached_mu);
    auto keep = std::partition(g_detached.begin(), g_detached.end(),
                               [&](Request* r) { return !(wait || !r->batch || r->batch->done()); });
    ready.assign(keep, g_detached.end());
    g_detached.erase(keep, g_detached.end());
    g_detached_count.store(g_detached.size());
  }
  for (Request* r : ready) {
    if (r->batch) (void)r->batch->wait();
    finish(r);  // a read's bytes reach the program's buffer; MPICH ran free_fn already
    delete r;
  }
}

void drain_nonblocking(StorFile* f) {
  std::unique_lock lk(f->inflight_mu);
  f->inflight_cv.wait(lk, [&] { return f->inflight == 0; });
}

int split_begin(StorFile* f, const char* call, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write,
                bool ordered) {
  if (f->split != MPI_REQUEST_NULL)
    return report(f, mpi_error(MPI_ERR_OTHER, std::string(call) + ": " + f->split_call +
                                                  " is still active on this file (one split collective at a time)"));
  if (ordered) offset = shared_ordered(f, etypes_of(f, count, type));
  int rc = start_nonblocking(f, offset, buf, count, type, write, true, &f->split);
  if (rc == MPI_SUCCESS) f->split_call = call;
  return rc;
}

int split_end(StorFile* f, const char* call, MPI_Status* status) {
  if (f->split == MPI_REQUEST_NULL)
    return report(f, mpi_error(MPI_ERR_OTHER, std::string(call) + ": no split collective was begun on this file"));
  f->split_call = nullptr;
  return PMPI_Wait(&f->split, status);
}

}  // namespace stor::mpiio

// ---- exported symbols ----

using stor::mpiio::lookup;
using stor::mpiio::StorFile;

namespace {

// Individual-file-pointer forms: the pointer moves by the amount requested, at the call.
int start_at_pointer(StorFile* f, void* buf, MPI_Count count, MPI_Datatype type, bool write, bool collective,
                     MPI_Request* req) {
  int64_t n = stor::mpiio::etypes_of(f, count, type);
  int rc = stor::mpiio::start_nonblocking(f, f->position, buf, count, type, write, collective, req);
  if (rc == MPI_SUCCESS && n > 0) f->position += n;
  return rc;
}

int begin_at_pointer(StorFile* f, const char* call, void* buf, MPI_Count count, MPI_Datatype type, bool write) {
  int64_t n = stor::mpiio::etypes_of(f, count, type);
  int rc = stor::mpiio::split_begin(f, call, f->position, buf, count, type, write, false);
  if (rc == MPI_SUCCESS && n > 0) f->position += n;
  return rc;
}

}  // namespace

extern "C" {

int MPI_File_iread_at(MPI_File fh, MPI_Offset offset, void* buf, int count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_at(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, buf, count, type, false, false, req);
}
int MPI_File_iwrite_at(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type,
                       MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_at(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, const_cast<void*>(buf), count, type, true, false, req);
}
int MPI_File_iread_at_all(MPI_File fh, MPI_Offset offset, void* buf, int count, MPI_Datatype type,
                          MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_at_all(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, buf, count, type, false, true, req);
}
int MPI_File_iwrite_at_all(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type,
                           MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_at_all(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, const_cast<void*>(buf), count, type, true, true, req);
}
int MPI_File_iread(MPI_File fh, void* buf, int count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread(fh, buf, count, type, req));
  return start_at_pointer(f, buf, count, type, false, false, req);
}
int MPI_File_iwrite(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite(fh, buf, count, type, req));
  return start_at_pointer(f, const_cast<void*>(buf), count, type, true, false, req);
}
int MPI_File_iread_all(MPI_File fh, void* buf, int count, MPI_Datatype type, MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_all(fh, buf, count, type, req));
  return start_at_pointer(f, buf, count, type, false, true, req);
}
int MPI_File_iwrite_all(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_all(fh, buf, count, type, req));
  return start_at_pointer(f, const_cast<void*>(buf), count, type, true, true, req);
}

int MPI_File_read_at_all_begin(MPI_File fh, MPI_Offset offset, void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_at_all_begin(fh, offset, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_read_at_all_begin", offset, buf, count, type, false, false);
}
int MPI_File_read_at_all_end(MPI_File fh, void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_at_all_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_read_at_all_end", status);
}
int MPI_File_write_at_all_begin(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_at_all_begin(fh, offset, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_write_at_all_begin", offset, const_cast<void*>(buf), count, type,
                                  true, false);
}
int MPI_File_write_at_all_end(MPI_File fh, const void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_at_all_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_write_at_all_end", status);
}
int MPI_File_read_all_begin(MPI_File fh, void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_all_begin(fh, buf, count, type));
  return begin_at_pointer(f, "MPI_File_read_all_begin", buf, count, type, false);
}
int MPI_File_read_all_end(MPI_File fh, void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_all_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_read_all_end", status);
}
int MPI_File_write_all_begin(MPI_File fh, const void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_all_begin(fh, buf, count, type));
  return begin_at_pointer(f, "MPI_File_write_all_begin", const_cast<void*>(buf), count, type, true);
}
int MPI_File_write_all_end(MPI_File fh, const void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_all_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_write_all_end", status);
}
int MPI_File_read_ordered_begin(MPI_File fh, void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_ordered_begin(fh, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_read_ordered_begin", 0, buf, count, type, false, true);
}
int MPI_File_read_ordered_end(MPI_File fh, void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_ordered_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_read_ordered_end", status);
}
int MPI_File_write_ordered_begin(MPI_File fh, const void* buf, int count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_ordered_begin(fh, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_write_ordered_begin", 0, const_cast<void*>(buf), count, type, true,
                                  true);
}
int MPI_File_write_ordered_end(MPI_File fh, const void* buf, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_ordered_end(fh, buf, status));
  return stor::mpiio::split_end(f, "MPI_File_write_ordered_end", status);
}

// The MPI-4 large-count forms: the same, with an MPI_Count count.
int MPI_File_iread_at_c(MPI_File fh, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_at_c(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, buf, count, type, false, false, req);
}
int MPI_File_iwrite_at_c(MPI_File fh, MPI_Offset offset, const void* buf, MPI_Count count, MPI_Datatype type,
                       MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_at_c(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, const_cast<void*>(buf), count, type, true, false, req);
}
int MPI_File_iread_at_all_c(MPI_File fh, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type,
                          MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_at_all_c(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, buf, count, type, false, true, req);
}
int MPI_File_iwrite_at_all_c(MPI_File fh, MPI_Offset offset, const void* buf, MPI_Count count, MPI_Datatype type,
                           MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_at_all_c(fh, offset, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, offset, const_cast<void*>(buf), count, type, true, true, req);
}
int MPI_File_iread_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_c(fh, buf, count, type, req));
  return start_at_pointer(f, buf, count, type, false, false, req);
}
int MPI_File_iwrite_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_c(fh, buf, count, type, req));
  return start_at_pointer(f, const_cast<void*>(buf), count, type, true, false, req);
}
int MPI_File_iread_all_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_all_c(fh, buf, count, type, req));
  return start_at_pointer(f, buf, count, type, false, true, req);
}
int MPI_File_iwrite_all_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPI_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_all_c(fh, buf, count, type, req));
  return start_at_pointer(f, const_cast<void*>(buf), count, type, true, true, req);
}
int MPI_File_read_at_all_begin_c(MPI_File fh, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_at_all_begin_c(fh, offset, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_read_at_all_begin_c", offset, buf, count, type, false, false);
}
int MPI_File_write_at_all_begin_c(MPI_File fh, MPI_Offset offset, const void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_at_all_begin_c(fh, offset, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_write_at_all_begin_c", offset, const_cast<void*>(buf), count, type,
                                  true, false);
}
int MPI_File_read_all_begin_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_all_begin_c(fh, buf, count, type));
  return begin_at_pointer(f, "MPI_File_read_all_begin_c", buf, count, type, false);
}
int MPI_File_write_all_begin_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_all_begin_c(fh, buf, count, type));
  return begin_at_pointer(f, "MPI_File_write_all_begin_c", const_cast<void*>(buf), count, type, true);
}
int MPI_File_read_ordered_begin_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_ordered_begin_c(fh, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_read_ordered_begin_c", 0, buf, count, type, false, true);
}
int MPI_File_write_ordered_begin_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_ordered_begin_c(fh, buf, count, type));
  return stor::mpiio::split_begin(f, "MPI_File_write_ordered_begin_c", 0, const_cast<void*>(buf), count, type, true,
                                  true);
}

}  // extern "C"
