/* What a program leaves to MPI-IO: requests freed with MPI_Request_free before they completed,
 * and files never closed. This program wraps the PMPI calls libstor_mpiio makes for them (it is
 * linked with -rdynamic, so libstor_mpiio's calls bind to these) and counts:
 *   - every generalized request started must be completed (its memory and its stor state are
 *     released then): a 4 MiB iwrite_at and a noncontiguous iread_at, both freed at once, finish
 *     once the file is closed, the read's bytes land in the buffer, the write's in the file;
 *   - every RMA window allocated (shared file pointers) must be freed by the end of MPI_Finalize,
 *     also for two files (one on MPI_COMM_WORLD, one on MPI_COMM_SELF) never closed, and also
 *     when the program ends with PMPI_Finalize, which bypasses libstor_mpiio's MPI_Finalize
 *     (the cleanup hangs on MPI_COMM_SELF's attributes, as ROMIO's does).
 *   mpiexec -n N mpiio_leftovers DIR_URI (finalize|pmpi_finalize)   e.g. stor:nvme:///tmp/x */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

static int win_allocs, win_frees, greq_starts, greq_completes;

/* The build hides symbols by default; these must bind libstor_mpiio's calls. */
#define EXPORT __attribute__((visibility("default")))
#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

EXPORT int PMPI_Win_allocate(MPI_Aint size, int disp_unit, MPI_Info info, MPI_Comm comm, void* base, MPI_Win* win) {
  ++win_allocs;
  return NEXT(PMPI_Win_allocate)(size, disp_unit, info, comm, base, win);
}
EXPORT int PMPI_Win_free(MPI_Win* win) {
  ++win_frees;
  return NEXT(PMPI_Win_free)(win);
}
EXPORT int PMPIX_Grequest_start(MPI_Grequest_query_function* q, MPI_Grequest_free_function* f,
                         MPI_Grequest_cancel_function* c, MPIX_Grequest_poll_function* p,
                         MPIX_Grequest_wait_function* w, void* state, MPI_Request* req) {
  ++greq_starts;
  return NEXT(PMPIX_Grequest_start)(q, f, c, p, w, state, req);
}
EXPORT int PMPI_Grequest_complete(MPI_Request req) {
  ++greq_completes;
  return NEXT(PMPI_Grequest_complete)(req);
}

enum { BIG = 4 << 20, BLOCKS = 64, BLOCK = 1000, STRIDE = 1500 };

static unsigned char byte_at(long long off) { return (unsigned char)(off * 7 + off / 4093); }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int nprocs;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 3) {
    if (rank == 0) fprintf(stderr, "usage: %s DIR_URI finalize|pmpi_finalize\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int pmpi = strcmp(argv[2], "pmpi_finalize") == 0;
  char name[4096];

  /* 1. Requests freed before completion. */
  snprintf(name, sizeof name, "%s/requests.bin", argv[1]);
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  const long long base = (long long)rank * (BIG + BLOCKS * BLOCK);
  unsigned char* big = malloc(BIG);
  unsigned char* small = malloc(BLOCKS * BLOCK);
  for (long long i = 0; i < BIG; ++i) big[i] = byte_at(base + i);
  for (long long i = 0; i < BLOCKS * BLOCK; ++i) small[i] = byte_at(base + BIG + i);
  check_rc(MPI_File_write_at(fh, base + BIG, small, BLOCKS * BLOCK, MPI_BYTE, MPI_STATUS_IGNORE), "write_at");
  MPI_Datatype spread;
  MPI_Type_vector(BLOCKS, BLOCK, STRIDE, MPI_BYTE, &spread);
  MPI_Type_commit(&spread);
  unsigned char* back = calloc((size_t)BLOCKS * STRIDE, 1);
  const int before = greq_starts;
  MPI_Request w, r;
  check_rc(MPI_File_iwrite_at(fh, base, big, BIG, MPI_BYTE, &w), "iwrite_at");
  check_rc(MPI_File_iread_at(fh, base + BIG, back, 1, spread, &r), "iread_at (noncontiguous memory)");
  check_rc(MPI_Request_free(&w), "request_free (write)");
  check_rc(MPI_Request_free(&r), "request_free (read)");
  CHECK(w == MPI_REQUEST_NULL && r == MPI_REQUEST_NULL, "MPI_Request_free left a handle");
  CHECK(greq_starts - before == 2, "%d generalized requests started, want 2", greq_starts - before);
  check_rc(MPI_File_close(&fh), "close");  /* every request of the file is done after close */
  CHECK(greq_completes == greq_starts, "%d of %d generalized requests completed after close", greq_completes,
        greq_starts);
  int bad = 0;
  for (int b = 0; b < BLOCKS; ++b)
    for (int i = 0; i < BLOCK; ++i) bad += back[(size_t)b * STRIDE + i] != byte_at(base + BIG + b * BLOCK + i);
  CHECK(bad == 0, "%d bytes of the freed read differ", bad);
  check_rc(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "reopen");
  memset(big, 0, BIG);
  check_rc(MPI_File_read_at(fh, base, big, BIG, MPI_BYTE, MPI_STATUS_IGNORE), "read back");
  bad = 0;
  for (long long i = 0; i < BIG; ++i) bad += big[i] != byte_at(base + i);
  CHECK(bad == 0, "%d bytes of the freed write differ", bad);
  check_rc(MPI_File_close(&fh), "close");
  MPI_Type_free(&spread);

  /* 2. Files left open, one with a shared file pointer in use. */
  MPI_File left, mine;
  snprintf(name, sizeof name, "%s/left-open.bin", argv[1]);
  check_rc(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &left), "open left");
  check_rc(MPI_File_write_shared(left, small, 100, MPI_BYTE, MPI_STATUS_IGNORE), "write_shared");
  snprintf(name, sizeof name, "%s/left-open.%d.bin", argv[1], rank);
  check_rc(MPI_File_open(MPI_COMM_SELF, name, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &mine), "open own");
  check_rc(MPI_File_write_shared(mine, small, 100, MPI_BYTE, MPI_STATUS_IGNORE), "write_shared own");
  CHECK(win_allocs >= 2, "only %d windows allocated for shared file pointers", win_allocs);
  free(big);
  free(small);
  free(back);
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  const int allocs = win_allocs;
  if (pmpi) PMPI_Finalize();
  else MPI_Finalize();
  if (win_frees != allocs) {
    fprintf(stderr, "rank %d: FAILED: %d of %d shared-file-pointer windows freed by %s\n", rank, win_frees, allocs,
            pmpi ? "PMPI_Finalize" : "MPI_Finalize");
    ++all;
  }
  if (rank == 0) printf("%s: windows %d allocated / %d freed; generalized requests %d started / %d completed\n",
                        all ? "FAILED" : "OK", allocs, win_frees, greq_starts, greq_completes);
  return all ? 1 : 0;
}
