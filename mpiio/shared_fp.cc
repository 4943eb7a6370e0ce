// Shared file pointers: MPI_File_{read,write}_shared, {read,write}_ordered (and their split and
// nonblocking forms), seek_shared, get_position_shared.
//
// The pointer (in etypes of the current view, as MPI defines it) is one 64-bit integer in an MPI
// RMA window on rank 0 of the file's communicator, created at open. An independent access takes
// its offset with one MPI_Fetch_and_op(MPI_SUM) under a shared passive-target lock: atomic
// across ranks without any file lock (ROMIO keeps the pointer in a hidden file under fcntl
// locks). Ordered accesses are collective: an Allgather of the ranks' sizes gives each rank's
// place, rank 0 advances the pointer by the total, a broadcast gives the base; the data
// then moves as one collective access (ROMIO does the same with a token passed in rank order).
#include <cstring>
#include <vector>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

constexpr int kRoot = 0;  // the rank holding the pointer

MPI_Offset fetch_and_op(StorFile* f, MPI_Offset operand, MPI_Op op, int lock) {
  int64_t in = operand, out = 0;
  PMPI_Win_lock(lock, kRoot, 0, f->shared_win);
  PMPI_Fetch_and_op(&in, &out, MPI_INT64_T, kRoot, 0, op, f->shared_win);
  PMPI_Win_unlock(kRoot, f->shared_win);
  return out;
}

}  // namespace

void shared_open(StorFile* f, MPI_Offset pos) {
  MPI_Aint size = f->rank == kRoot ? static_cast<MPI_Aint>(sizeof(int64_t)) : 0;
  PMPI_Win_allocate(size, sizeof(int64_t), MPI_INFO_NULL, f->comm, &f->shared_base, &f->shared_win);
  if (f->rank == kRoot) {
    PMPI_Win_lock(MPI_LOCK_EXCLUSIVE, kRoot, 0, f->shared_win);
    *f->shared_base = pos;
    PMPI_Win_unlock(kRoot, f->shared_win);
  }
  PMPI_Barrier(f->comm);  // no rank uses the pointer before it is set
}

void shared_close(StorFile* f) {
  if (f->shared_win != MPI_WIN_NULL) PMPI_Win_free(&f->shared_win);
  f->shared_base = nullptr;
}

void shared_reset(StorFile* f, MPI_Offset pos) {
  // Called collectively after every rank's earlier accesses are done (set_view agrees first).
  if (f->rank == kRoot) fetch_and_op(f, pos, MPI_REPLACE, MPI_LOCK_EXCLUSIVE);
  PMPI_Barrier(f->comm);
}

MPI_Offset shared_fetch_add(StorFile* f, MPI_Offset n) { return fetch_and_op(f, n, MPI_SUM, MPI_LOCK_SHARED); }

MPI_Offset shared_ordered(StorFile* f, MPI_Offset n) {
  // One Allgather of the sizes gives every rank its place and the total.
  int64_t mine = n > 0 ? n : 0, before = 0, total = 0;
  std::vector<int64_t> sizes(static_cast<size_t>(f->nprocs));
  PMPI_Allgather(&mine, 1, MPI_INT64_T, sizes.data(), 1, MPI_INT64_T, f->comm);
  for (int r = 0; r < f->nprocs; ++r) {
    if (r < f->rank) before += sizes[static_cast<size_t>(r)];
    total += sizes[static_cast<size_t>(r)];
  }
  int64_t base = 0;
  if (f->rank == kRoot) base = shared_fetch_add(f, total);
  PMPI_Bcast(&base, 1, MPI_INT64_T, kRoot, f->comm);
  return base + before;
}

int64_t etypes_of(StorFile* f, MPI_Count count, MPI_Datatype type) {
  MPI_Count size = 0;
  if (count < 0 || type == MPI_DATATYPE_NULL || PMPI_Type_size_x(type, &size) != MPI_SUCCESS) return -1;
  if (f->view.external32) {  // the stream holds the converted bytes
    Ext32Plan plan;
    if (!ext32_plan(type, &plan).is_ok()) return -1;
    size = plan.ext_size;
  }
  int64_t bytes = static_cast<int64_t>(size) * count;
  if (f->view.etype_size <= 0 || bytes % f->view.etype_size != 0) return -1;
  return bytes / f->view.etype_size;
}

int shared_seek(StorFile* f, MPI_Offset offset, int whence) {
  // Collective: every rank must pass the same arguments (MPI says so; ROMIO checks it too).
  int64_t mine[2] = {offset, whence}, root[2] = {offset, whence};
  PMPI_Bcast(root, 2, MPI_INT64_T, 0, f->comm);
  Status s;
  if (root[0] != mine[0] || root[1] != mine[1])
    s = Status::InvalidArgument("MPI_File_seek_shared: offset and whence differ between ranks");
  else if (whence != MPI_SEEK_SET && whence != MPI_SEEK_CUR && whence != MPI_SEEK_END)
    s = Status::InvalidArgument("MPI_File_seek_shared: whence must be MPI_SEEK_SET, MPI_SEEK_CUR or MPI_SEEK_END");
  s = agree(f->comm, s);
  if (!s.is_ok()) return report(f, mpi_error(MPI_ERR_ARG, s.message()));
  // Rank 0 computes the new value; everyone waits until it is stored.
  int64_t pos = 0;
  if (f->rank == kRoot) {
    if (whence == MPI_SEEK_SET) {
      pos = offset;
    } else if (whence == MPI_SEEK_CUR) {
      pos = fetch_and_op(f, 0, MPI_NO_OP, MPI_LOCK_SHARED) + offset;
    } else {
      auto sz = current_size(f);
      if (!sz.is_ok()) s = sz.status();
      else pos = (stream_offset_of_eof(f->view, *sz) + f->view.etype_size - 1) / f->view.etype_size + offset;
    }
    if (s.is_ok() && pos < 0) s = Status::InvalidArgument("MPI_File_seek_shared: resulting position is negative");
    if (s.is_ok()) fetch_and_op(f, pos, MPI_REPLACE, MPI_LOCK_EXCLUSIVE);
  }
  s = agree(f->comm, s);
  if (!s.is_ok()) return report(f, s.code() == Code::kInvalidArgument ? mpi_error(MPI_ERR_ARG, s.message()) : to_mpi_error(s));
  return MPI_SUCCESS;
}

}  // namespace stor::mpiio

// ---- exported symbols ----

using stor::mpiio::lookup;
using stor::mpiio::StorFile;

namespace {

// An independent access at the shared pointer, which moves by the amount requested. Invalid
// arguments leave the pointer alone (the access reports them).
MPI_Offset take_shared(StorFile* f, MPI_Count count, MPI_Datatype type) {
  int64_t n = stor::mpiio::etypes_of(f, count, type);
  return n > 0 ? stor::mpiio::shared_fetch_add(f, n) : 0;
}

int ordered(StorFile* f, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status, bool write) {
  MPI_Offset off = stor::mpiio::shared_ordered(f, stor::mpiio::etypes_of(f, count, type));
  return stor::mpiio::access(f, off, buf, count, type, status, write, true);
}

}  // namespace

extern "C" {

int MPI_File_read_shared(MPI_File fh, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_shared(fh, buf, count, type, status));
  return stor::mpiio::access(f, take_shared(f, count, type), buf, count, type, status, false, false);
}
int MPI_File_write_shared(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_shared(fh, buf, count, type, status));
  return stor::mpiio::access(f, take_shared(f, count, type), const_cast<void*>(buf), count, type, status, true,
                             false);
}
int MPI_File_iread_shared(MPI_File fh, void* buf, int count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_shared(fh, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, take_shared(f, count, type), buf, count, type, false, false, req);
}
int MPI_File_iwrite_shared(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_shared(fh, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, take_shared(f, count, type), const_cast<void*>(buf), count, type, true,
                                        false, req);
}
int MPI_File_read_ordered(MPI_File fh, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_ordered(fh, buf, count, type, status));
  return ordered(f, buf, count, type, status, false);
}
int MPI_File_write_ordered(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_ordered(fh, buf, count, type, status));
  return ordered(f, const_cast<void*>(buf), count, type, status, true);
}
int MPI_File_seek_shared(MPI_File fh, MPI_Offset offset, int whence) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_seek_shared(fh, offset, whence));
  return stor::mpiio::shared_seek(f, offset, whence);
}
int MPI_File_get_position_shared(MPI_File fh, MPI_Offset* offset) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_position_shared(fh, offset));
  *offset = stor::mpiio::shared_fetch_add(f, 0);
  return MPI_SUCCESS;
}

// The MPI-4 large-count forms: the same, with an MPI_Count count.
int MPI_File_read_shared_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_shared_c(fh, buf, count, type, status));
  return stor::mpiio::access(f, take_shared(f, count, type), buf, count, type, status, false, false);
}
int MPI_File_write_shared_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_shared_c(fh, buf, count, type, status));
  return stor::mpiio::access(f, take_shared(f, count, type), const_cast<void*>(buf), count, type, status, true,
                             false);
}
int MPI_File_iread_shared_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iread_shared_c(fh, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, take_shared(f, count, type), buf, count, type, false, false, req);
}
int MPI_File_iwrite_shared_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPIO_Request* req) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_iwrite_shared_c(fh, buf, count, type, req));
  return stor::mpiio::start_nonblocking(f, take_shared(f, count, type), const_cast<void*>(buf), count, type, true,
                                        false, req);
}
int MPI_File_read_ordered_c(MPI_File fh, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_ordered_c(fh, buf, count, type, status));
  return ordered(f, buf, count, type, status, false);
}
int MPI_File_write_ordered_c(MPI_File fh, const void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_ordered_c(fh, buf, count, type, status));
  return ordered(f, const_cast<void*>(buf), count, type, status, true);
}

}  // extern "C"
