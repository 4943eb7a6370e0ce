/* Nonblocking I/O, split collectives and shared file pointers: an ordinary MPI program (any
 * rank count; the test runs 3 and 4), run through ROMIO on a plain file and through
 * libstor_mpiio on a stor: file; the files must be byte-identical.
 *   mpiio_async_shared FILE DUMP SCRATCH
 * FILE gets every deterministic access; DUMP is FILE read back by rank 0 through MPI-IO; SCRATCH
 * takes concurrent write_shared appends (order varies between runs: checked here, then deleted).
 * On stor: files rank 0 also checks that a large iwrite_at is still in flight right after the
 * call while computation proceeds (MPI_Test polled between compute steps). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

static int nprocs, is_stor;

static int val(int region, int r, int i) { return region * 1000000 + r * 100000 + i; }

static void fill(int* buf, int n, int region, int r) {
  for (int i = 0; i < n; ++i) buf[i] = val(region, r, i);
}

static int count_of(MPI_Status* st, MPI_Datatype t) {
  int c = -1;
  MPI_Get_count(st, t, &c);
  return c;
}

static void check_ints(const int* got, int n, int region, int r, const char* what) {
  for (int i = 0; i < n; ++i)
    if (got[i] != val(region, r, i)) {
      CHECK(0, "%s: element %d of rank %d is %d, expected %d", what, i, r, got[i], val(region, r, i));
      return;
    }
}

/* One iwrite_at of buf, computing (and polling MPI_Test) until it completes. Returns whether
 * the request was still in flight right after the call; *steps counts compute steps. */
static int iwrite_and_compute(MPI_File fh, int* buf, int n, long* steps) {
  MPI_Request req;
  check_rc(MPI_File_iwrite_at(fh, (MPI_Offset)rank * n * sizeof(int), buf, n, MPI_INT, &req), "iwrite_at (large)");
  int flag = 0;
  MPI_Test(&req, &flag, MPI_STATUS_IGNORE);
  int in_flight = !flag;
  /* Compute while the write runs: each step is real work whose result is checked below. */
  double acc = 0;
  *steps = 0;
  while (!flag) {
    for (int k = 0; k < 20000; ++k) acc += (double)((k ^ *steps) & 7);
    ++*steps;
    MPI_Status st;
    MPI_Test(&req, &flag, &st);
    if (flag) CHECK(count_of(&st, MPI_INT) == n, "iwrite_at count %d", count_of(&st, MPI_INT));
  }
  CHECK(*steps == 0 || acc > 0, "compute result");
  return in_flight;
}

/* A large iwrite_at overlapped with computation. Returns the offset past the region. */
static MPI_Offset overlap(MPI_File fh) {
  const int n = 1 << 20; /* 4 MiB per rank */
  int* buf = malloc(sizeof(int) * n);
  fill(buf, n, 1, rank);
  long steps = 0;
  /* Rank 0 goes first, alone (on lustre it also serves the other ranks' delegated I/O, which
   * would compete with its own write). A synchronous implementation completes inside the call
   * every time; a loaded machine may deschedule us for a whole write now and then: 3 tries. */
  if (rank != 0) MPI_Barrier(MPI_COMM_WORLD);
  int in_flight = 0, tries = 0;
  do {
    in_flight = iwrite_and_compute(fh, buf, n, &steps);
  } while (!in_flight && ++tries < 3 && rank == 0);
  if (rank == 0) MPI_Barrier(MPI_COMM_WORLD);
  if (is_stor && rank == 0) {
    CHECK(in_flight, "a 4 MiB iwrite_at was complete when the call returned, %d times", tries);
    CHECK(!in_flight || steps > 0, "no computation overlapped the nonblocking write");
  }
  /* The data is on file: read it back (blocking) and compare. */
  memset(buf, 0, sizeof(int) * n);
  MPI_Status st;
  check_rc(MPI_File_read_at(fh, (MPI_Offset)rank * n * sizeof(int), buf, n, MPI_INT, &st), "read_at (large)");
  check_ints(buf, n, 1, rank, "overlapped iwrite_at");
  free(buf);
  if (rank == 0) printf("overlap: in flight after call %d, %ld compute steps before completion\n", in_flight, steps);
  return (MPI_Offset)nprocs * n * sizeof(int);
}

/* Nonblocking file requests mixed with point-to-point requests in Waitall / Testany / Waitany. */
static MPI_Offset mixed(MPI_File fh, MPI_Offset base) {
  enum { N = 256 };
  int out[N], back[N], token_out = rank, token_in = -1;
  fill(out, N, 2, rank);
  MPI_Request reqs[3];
  MPI_Status sts[3];
  int right = (rank + 1) % nprocs, left = (rank + nprocs - 1) % nprocs;
  /* individual pointer: seek in bytes (default view), then iwrite */
  check_rc(MPI_File_seek(fh, base + (MPI_Offset)rank * N * sizeof(int), MPI_SEEK_SET), "seek");
  check_rc(MPI_File_iwrite(fh, out, N, MPI_INT, &reqs[0]), "iwrite");
  MPI_Irecv(&token_in, 1, MPI_INT, left, 7, MPI_COMM_WORLD, &reqs[1]);
  MPI_Isend(&token_out, 1, MPI_INT, right, 7, MPI_COMM_WORLD, &reqs[2]);
  check_rc(MPI_Waitall(3, reqs, sts), "Waitall (file + p2p)");
  CHECK(count_of(&sts[0], MPI_INT) == N, "iwrite count %d", count_of(&sts[0], MPI_INT));
  CHECK(token_in == left, "ring token %d", token_in);
  MPI_Offset pos = -1;
  MPI_File_get_position(fh, &pos);
  CHECK(pos == base + (MPI_Offset)((rank + 1) * N * sizeof(int)), "position after iwrite: %lld", (long long)pos);
  MPI_Barrier(MPI_COMM_WORLD);

  /* Testany over a read of the right neighbour's block and a ring message. */
  memset(back, 0, sizeof back);
  check_rc(MPI_File_iread_at(fh, base + (MPI_Offset)right * N * sizeof(int), back, N, MPI_INT, &reqs[0]), "iread_at");
  MPI_Irecv(&token_in, 1, MPI_INT, left, 8, MPI_COMM_WORLD, &reqs[1]);
  MPI_Send(&token_out, 1, MPI_INT, right, 8, MPI_COMM_WORLD);
  int done = 0;
  while (done < 2) {
    int idx = -1, flag = 0;
    MPI_Status st;
    MPI_Testany(2, reqs, &idx, &flag, &st);
    if (flag && idx == 0) CHECK(count_of(&st, MPI_INT) == N, "iread_at count %d", count_of(&st, MPI_INT));
    if (flag) ++done;
  }
  check_ints(back, N, 2, right, "iread_at via Testany");
  /* Waitany with a file read and a never-matching receive first in the list. */
  int never = 0;
  MPI_Irecv(&never, 1, MPI_INT, MPI_ANY_SOURCE, 99, MPI_COMM_WORLD, &reqs[0]);
  memset(back, 0, sizeof back);
  check_rc(MPI_File_iread_at(fh, base + (MPI_Offset)left * N * sizeof(int), back, N, MPI_INT, &reqs[1]), "iread_at");
  int idx = -1;
  MPI_Waitany(2, reqs, &idx, MPI_STATUS_IGNORE);
  CHECK(idx == 1, "Waitany returned %d", idx);
  check_ints(back, N, 2, left, "iread_at via Waitany");
  MPI_Cancel(&reqs[0]);
  MPI_Wait(&reqs[0], MPI_STATUS_IGNORE);
  MPI_Barrier(MPI_COMM_WORLD);
  return base + (MPI_Offset)nprocs * N * sizeof(int);
}

/* Collective nonblocking and split collectives, interleaved (two-phase) and blocked layouts. */
static MPI_Offset collectives(MPI_File fh, MPI_Offset base) {
  enum { N = 4096, BL = 16 }; /* 2 tiles of 16 KiB per rank: several two-phase rounds (hints) */
  int out[N], back[N];
  MPI_Request req;
  MPI_Status st;
  /* interleaved: blocks of BL ints dealt round-robin over the ranks */
  MPI_Datatype vec, ftype;
  MPI_Type_vector(N / BL, BL, BL * nprocs, MPI_INT, &vec);
  MPI_Type_create_resized(vec, 0, (MPI_Aint)N * nprocs * sizeof(int), &ftype);
  MPI_Type_commit(&ftype);
  check_rc(MPI_File_set_view(fh, base + (MPI_Offset)rank * BL * sizeof(int), MPI_INT, ftype, "native", MPI_INFO_NULL), "set_view");
  fill(out, N, 3, rank);
  check_rc(MPI_File_iwrite_at_all(fh, 0, out, N, MPI_INT, &req), "iwrite_at_all");
  check_rc(MPI_Wait(&req, &st), "wait iwrite_at_all");
  CHECK(count_of(&st, MPI_INT) == N, "iwrite_at_all count %d", count_of(&st, MPI_INT));
  fill(out, N, 4, rank);
  check_rc(MPI_File_seek(fh, N, MPI_SEEK_SET), "seek");
  check_rc(MPI_File_write_all_begin(fh, out, N, MPI_INT), "write_all_begin");
  check_rc(MPI_File_write_all_end(fh, out, &st), "write_all_end");
  CHECK(count_of(&st, MPI_INT) == N, "write_all_end count %d", count_of(&st, MPI_INT));
  check_rc(MPI_File_seek(fh, 0, MPI_SEEK_SET), "seek");
  check_rc(MPI_File_iread_all(fh, back, N, MPI_INT, &req), "iread_all");
  check_rc(MPI_Wait(&req, &st), "wait iread_all");
  CHECK(count_of(&st, MPI_INT) == N, "iread_all count %d", count_of(&st, MPI_INT));
  check_ints(back, N, 3, rank, "iread_all");
  check_rc(MPI_File_read_at_all_begin(fh, 0, back, N, MPI_INT), "read_at_all_begin");
  check_rc(MPI_File_read_at_all_end(fh, back, &st), "read_at_all_end");
  check_ints(back, N, 3, rank, "read_at_all_begin/end");
  check_rc(MPI_File_seek(fh, N, MPI_SEEK_SET), "seek");
  check_rc(MPI_File_read_all_begin(fh, back, N, MPI_INT), "read_all_begin");
  check_rc(MPI_File_read_all_end(fh, back, &st), "read_all_end");
  check_ints(back, N, 4, rank, "read_all_begin/end");
  MPI_Type_free(&vec);
  MPI_Type_free(&ftype);
  MPI_Offset next = base + 2 * (MPI_Offset)N * nprocs * sizeof(int);

  /* blocked (each rank one contiguous range: ROMIO's independent branch) */
  check_rc(MPI_File_set_view(fh, next, MPI_INT, MPI_INT, "native", MPI_INFO_NULL), "set_view");
  fill(out, N, 5, rank);
  check_rc(MPI_File_seek(fh, (MPI_Offset)rank * N, MPI_SEEK_SET), "seek");
  check_rc(MPI_File_iwrite_all(fh, out, N, MPI_INT, &req), "iwrite_all");
  check_rc(MPI_Wait(&req, &st), "wait iwrite_all");
  MPI_Barrier(MPI_COMM_WORLD);
  int right = (rank + 1) % nprocs;
  check_rc(MPI_File_iread_at_all(fh, (MPI_Offset)right * N, back, N, MPI_INT, &req), "iread_at_all");
  check_rc(MPI_Wait(&req, &st), "wait iread_at_all");
  CHECK(count_of(&st, MPI_INT) == N, "iread_at_all count %d", count_of(&st, MPI_INT));
  check_ints(back, N, 5, right, "iread_at_all");
  fill(out, N, 6, rank);
  check_rc(MPI_File_write_at_all_begin(fh, (MPI_Offset)(nprocs + rank) * N, out, N, MPI_INT), "write_at_all_begin");
  check_rc(MPI_File_write_at_all_end(fh, out, &st), "write_at_all_end");
  /* one split collective at a time */
  check_rc(MPI_File_read_at_all_begin(fh, (MPI_Offset)(nprocs + rank) * N, back, N, MPI_INT), "read_at_all_begin");
  int rc = MPI_File_read_all_begin(fh, out, N, MPI_INT);
  CHECK(rc != MPI_SUCCESS, "a second split collective began while one is active");
  check_rc(MPI_File_read_at_all_end(fh, back, &st), "read_at_all_end");
  check_ints(back, N, 6, rank, "write_at_all_begin/end");
  return next + 2 * (MPI_Offset)N * nprocs * sizeof(int);
}

/* The shared pointer once every rank is done with it (ordered calls may return at different
 * times on different ranks). */
static MPI_Offset shared_position(MPI_File fh) {
  MPI_Offset pos = -1;
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_get_position_shared(fh, &pos), "get_position_shared");
  MPI_Barrier(MPI_COMM_WORLD);
  return pos;
}

/* Shared file pointer: ordered (+ split) forms, token-ordered shared forms, seek/position. */
static MPI_Offset shared(MPI_File fh, MPI_Offset base) {
  enum { N = 40 };
  int out[N + 8], back[N + 8];
  MPI_Status st;
  MPI_Offset pos = -1;
  check_rc(MPI_File_set_view(fh, base, MPI_INT, MPI_INT, "native", MPI_INFO_NULL), "set_view");
  pos = shared_position(fh);
  CHECK(pos == 0, "shared pointer after set_view: %lld", (long long)pos);
  const int n = N - rank * 3; /* different sizes per rank */
  MPI_Offset total = 0;
  for (int r = 0; r < nprocs; ++r) total += N - r * 3;
  fill(out, n, 7, rank);
  check_rc(MPI_File_write_ordered(fh, out, n, MPI_INT, &st), "write_ordered");
  CHECK(count_of(&st, MPI_INT) == n, "write_ordered count %d", count_of(&st, MPI_INT));
  pos = shared_position(fh);
  CHECK(pos == total, "shared pointer after write_ordered: %lld, expected %lld", (long long)pos, (long long)total);
  fill(out, n, 8, rank);
  check_rc(MPI_File_write_ordered_begin(fh, out, n, MPI_INT), "write_ordered_begin");
  check_rc(MPI_File_write_ordered_end(fh, out, &st), "write_ordered_end");
  /* independent write_shared, one rank at a time (last rank first) so the order is fixed */
  for (int turn = nprocs - 1; turn >= 0; --turn) {
    if (turn == rank) {
      fill(out, 5 + rank, 9, rank);
      check_rc(MPI_File_write_shared(fh, out, 5 + rank, MPI_INT, &st), "write_shared");
      MPI_Request req;
      fill(out, 3, 10, rank);
      check_rc(MPI_File_iwrite_shared(fh, out, 3, MPI_INT, &req), "iwrite_shared");
      check_rc(MPI_Wait(&req, &st), "wait iwrite_shared");
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  MPI_Offset end_expected = 2 * total;
  for (int r = 0; r < nprocs; ++r) end_expected += 8 + r;
  pos = shared_position(fh);
  CHECK(pos == end_expected, "shared pointer after write_shared: %lld, expected %lld", (long long)pos, (long long)end_expected);
  check_rc(MPI_File_sync(fh), "sync");

  /* read back: seek_shared to 0, read_ordered twice (plain and split) */
  check_rc(MPI_File_seek_shared(fh, 0, MPI_SEEK_SET), "seek_shared");
  memset(back, 0, sizeof back);
  check_rc(MPI_File_read_ordered(fh, back, n, MPI_INT, &st), "read_ordered");
  check_ints(back, n, 7, rank, "read_ordered");
  check_rc(MPI_File_read_ordered_begin(fh, back, n, MPI_INT), "read_ordered_begin");
  check_rc(MPI_File_read_ordered_end(fh, back, &st), "read_ordered_end");
  check_ints(back, n, 8, rank, "read_ordered_begin/end");
  for (int turn = nprocs - 1; turn >= 0; --turn) {
    if (turn == rank) {
      check_rc(MPI_File_read_shared(fh, back, 5 + rank, MPI_INT, &st), "read_shared");
      check_ints(back, 5 + rank, 9, rank, "read_shared");
      MPI_Request req;
      check_rc(MPI_File_iread_shared(fh, back, 3, MPI_INT, &req), "iread_shared");
      check_rc(MPI_Wait(&req, &st), "wait iread_shared");
      check_ints(back, 3, 10, rank, "iread_shared");
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  check_rc(MPI_File_seek_shared(fh, -2, MPI_SEEK_CUR), "seek_shared CUR");
  pos = shared_position(fh);
  CHECK(pos == end_expected - 2, "seek_shared(CUR -2): %lld", (long long)pos);
  check_rc(MPI_File_seek_shared(fh, 0, MPI_SEEK_END), "seek_shared END");
  pos = shared_position(fh);
  CHECK(pos == end_expected, "seek_shared(END): %lld, expected %lld", (long long)pos, (long long)end_expected);
  if (is_stor) { /* ranks disagree: an error on every rank (ROMIO leaves rank 0 in a barrier) */
    int rc = MPI_File_seek_shared(fh, rank, MPI_SEEK_SET);
    CHECK(nprocs == 1 || rc != MPI_SUCCESS, "seek_shared with different offsets succeeded");
  }
  return base + end_expected * (MPI_Offset)sizeof(int);
}

/* Concurrent appends through write_shared: every record lands exactly once. */
static void concurrent_appends(const char* scratch) {
  enum { K = 50 };
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, scratch, MPI_MODE_CREATE | MPI_MODE_RDWR | MPI_MODE_DELETE_ON_CLOSE,
                         MPI_INFO_NULL, &fh), "open scratch");
  for (int k = 0; k < K; ++k) {
    int rec[2] = {rank, k};
    check_rc(MPI_File_write_shared(fh, rec, 2, MPI_INT, MPI_STATUS_IGNORE), "write_shared (concurrent)");
  }
  MPI_File_sync(fh);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_File_sync(fh);
  MPI_Offset pos = -1;
  pos = shared_position(fh);
  CHECK(pos == (MPI_Offset)(nprocs * K * 2 * sizeof(int)), "shared pointer after appends: %lld", (long long)pos);
  if (rank == 0) {
    int* all = calloc((size_t)nprocs * K * 2, sizeof(int));
    char* seen = calloc((size_t)nprocs * K, 1);
    MPI_Status st;
    check_rc(MPI_File_read_at(fh, 0, all, nprocs * K * 2, MPI_INT, &st), "read appends");
    for (int i = 0; i < nprocs * K; ++i) {
      int r = all[2 * i], k = all[2 * i + 1];
      if (r < 0 || r >= nprocs || k < 0 || k >= K || seen[r * K + k]) {
        CHECK(0, "record %d is (%d, %d): lost or duplicated append", i, r, k);
        break;
      }
      seen[r * K + k] = 1;
    }
    free(all);
    free(seen);
  }
  check_rc(MPI_File_close(&fh), "close scratch");
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc != 4) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE DUMP SCRATCH\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  is_stor = strncmp(argv[1], "stor:", 5) == 0;
  MPI_File fh;
  /* Small two-phase rounds (64 KiB file domains and collective buffer), so the interleaved
   * nonblocking write has rounds done at the call and a last round left in flight. */
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "striping_unit", "65536");
  MPI_Info_set(info, "cb_buffer_size", "65536");
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, info, &fh), "open");
  MPI_Info_free(&info);
  MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
  MPI_Offset off = overlap(fh);
  MPI_Barrier(MPI_COMM_WORLD);
  off = mixed(fh, off);
  off = collectives(fh, off);
  off = shared(fh, off);
  check_rc(MPI_File_sync(fh), "sync");
  check_rc(MPI_File_close(&fh), "close");
  concurrent_appends(argv[3]);

  /* DUMP: the file as read back through MPI-IO by rank 0 */
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "reopen");
  MPI_Offset size = 0;
  MPI_File_get_size(fh, &size);
  MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
  { /* errors at the call: a nonblocking write on a read-only file, an _end without a _begin */
    MPI_Request req;
    int one = 1;
    CHECK(MPI_File_iwrite_at(fh, 0, &one, 1, MPI_INT, &req) != MPI_SUCCESS, "iwrite_at on a read-only file succeeded");
    CHECK(MPI_File_read_all_end(fh, &one, MPI_STATUS_IGNORE) != MPI_SUCCESS, "read_all_end without a begin succeeded");
  }
  CHECK(size == off, "file size %lld, expected %lld", (long long)size, (long long)off);
  if (rank == 0) {
    char* data = malloc((size_t)size);
    MPI_Status st;
    check_rc(MPI_File_read_at(fh, 0, data, (int)size, MPI_BYTE, &st), "read dump");
    FILE* out = fopen(argv[2], "wb");
    CHECK(out && fwrite(data, 1, (size_t)size, out) == (size_t)size, "write %s", argv[2]);
    if (out) fclose(out);
    free(data);
  }
  check_rc(MPI_File_close(&fh), "close");
  int total = 0;
  MPI_Allreduce(&failures, &total, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s: %d failures\n", argv[1], total);
  MPI_Finalize();
  return total ? 1 : 0;
}
