/* Atomic mode: every rank writes the same noncontiguous region (BLOCKS blocks of BLOCK bytes,
 * one pwrite each) at the same time (write_at, or iwrite_at + MPI_Wait), filled with its own rank byte; with
 * MPI_File_set_atomicity(fh, 1) the region must then hold one rank's bytes throughout. Readers
 * racing the writers must also see one rank's bytes. Rounds alternate explicit-offset writes and
 * a strided file view. Runs through ROMIO and through libstor_mpiio.
 *   mpiexec -n 3|4 mpiio_atomic FILE [nonatomic]   ("nonatomic": atomic mode off, to see the race) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { ROUNDS = 12, BLOCKS = 256, BLOCK = 512, STRIDE = 1024 };

/* 0 when every data byte of the region (in stream order) equals the first; else the count. */
static int mixed(const unsigned char* data, size_t n) {
  int bad = 0;
  for (size_t i = 1; i < n; ++i) bad += data[i] != data[0];
  return bad;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int nprocs;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE [nonatomic]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int atomic = !(argc > 2 && strcmp(argv[2], "nonatomic") == 0);
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  if (failures) MPI_Abort(MPI_COMM_WORLD, 1);
  check_rc(MPI_File_set_atomicity(fh, atomic), "set_atomicity");
  int flag = -1;
  check_rc(MPI_File_get_atomicity(fh, &flag), "get_atomicity");
  CHECK(flag == atomic, "get_atomicity %d after set_atomicity(%d)", flag, atomic);

  /* Memory: BLOCKS blocks at STRIDE, so even the explicit-offset form is noncontiguous in memory;
   * file: the same blocks through the view (rounds with a view) or contiguous (others). */
  MPI_Datatype blocks;
  MPI_Type_vector(BLOCKS, BLOCK, STRIDE, MPI_BYTE, &blocks);
  MPI_Type_commit(&blocks);
  const size_t span = (size_t)BLOCKS * STRIDE, data = (size_t)BLOCKS * BLOCK;
  unsigned char* mine = malloc(span);
  unsigned char* back = malloc(span);
  int total_mixed = 0, read_mixed = 0;
  for (int round = 0; round < ROUNDS; ++round) {
    const int view = round % 2;
    const MPI_Offset base = (MPI_Offset)round * span;
    memset(mine, 'A' + rank, span);
    if (view) check_rc(MPI_File_set_view(fh, base, MPI_BYTE, blocks, "native", MPI_INFO_NULL), "set_view");
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == nprocs - 1 && round > 0) {
      /* The last rank reads the region while the others write it (after its first round). */
      /* It may come first and find the region past the end of file: then it reads nothing. */
      MPI_Status st;
      int got = 0;
      memset(back, 0, span);
      check_rc(view ? MPI_File_read_at(fh, 0, back, (int)data, MPI_BYTE, &st)
                    : MPI_File_read_at(fh, base, back, 1, blocks, &st),
               "racing read");
      MPI_Get_elements(&st, MPI_BYTE, &got);
      if (!view) /* memory blocks -> one run */
        for (int b = 1; b < BLOCKS; ++b) memmove(back + (size_t)b * BLOCK, back + (size_t)b * STRIDE, BLOCK);
      read_mixed += mixed(back, (size_t)got) != 0;
    } else {
      if (round % 4 == 2) { /* the nonblocking form, in atomic mode too */
        MPI_Request req;
        check_rc(MPI_File_iwrite_at(fh, base, mine, 1, blocks, &req), "iwrite_at");
        check_rc(MPI_Wait(&req, MPI_STATUS_IGNORE), "wait");
      } else {
        check_rc(view ? MPI_File_write_at(fh, 0, mine, (int)data, MPI_BYTE, MPI_STATUS_IGNORE)
                      : MPI_File_write_at(fh, base, mine, 1, blocks, MPI_STATUS_IGNORE),
                 "write_at");
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (view) check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "reset view");
    if (rank == 0) {
      /* The file holds the data in blocks at STRIDE (view rounds) or in one run (the others). */
      memset(back, 0, span);
      check_rc(MPI_File_read_at(fh, base, back, (int)span, MPI_BYTE, MPI_STATUS_IGNORE), "read back");
      unsigned char packed[BLOCKS * BLOCK];
      for (int b = 0; b < BLOCKS; ++b) memcpy(packed + b * BLOCK, back + (size_t)b * (view ? STRIDE : BLOCK), BLOCK);
      const int bad = mixed(packed, data);
      total_mixed += bad != 0;
      if (atomic) CHECK(bad == 0, "round %d: %d bytes differ from the first ('%c')", round, bad, packed[0]);
    }
  }
  /* Racing reads are checked on stor files only: ROMIO 4.0.2's own run on the host file system
   * (the reference) saw a mixed racing read in about one run of twenty under load, so there it is
   * reported, not failed. */
  const int is_stor = strncmp(argv[1], "stor:", 5) == 0;
  if (atomic && is_stor) CHECK(read_mixed == 0, "%d racing reads saw a mix of ranks on %s", read_mixed, argv[1]);
  if (atomic && !is_stor && read_mixed)
    printf("rank %d: note: %d racing reads saw a mix of ranks on %s (ROMIO, not checked)\n", rank, read_mixed, argv[1]);
  if (rank == 0) printf("atomic=%d: %d of %d rounds mixed\n", atomic, total_mixed, ROUNDS);
  check_rc(MPI_File_close(&fh), "close");
  MPI_Type_free(&blocks);
  free(mine);
  free(back);
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all ? "FAILED" : "OK");
  MPI_Finalize();
  return all ? 1 : 0;
}
