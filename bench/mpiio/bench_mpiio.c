/* IOR-style MPI-IO bench: every rank writes, then reads back, its blocks of an IOR "segmented"
 * file (segment s holds one block per rank, block = transfers of -t bytes) with collective
 * MPI_File_write_at_all / MPI_File_read_at_all through a strided file view, and checks every
 * byte. Each FILE is measured in the same run, so with libstor_mpiio preloaded one run compares
 * a plain path (ROMIO) with a stor: path; the first FILE is the reference for the ratios.
 *
 *   mpiexec -n 4 bench_mpiio [-b BLOCK] [-t XFER] [-s SEGMENTS] [-i REPS] [-c] FILE...
 *
 * -c sets romio_cb_write/romio_cb_read=enable: two-phase I/O even though IOR's blocks do not
 * interleave (by default ROMIO, and stor, then let every rank write its own range).
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_mpiio_util.h"

static int rank, nprocs;

/* Word w of the file holds (file offset of w) ^ seed: a misplaced byte is caught. */
static void fill(uint64_t* buf, size_t words, uint64_t file_off, uint64_t seed) {
  for (size_t w = 0; w < words; ++w) buf[w] = (file_off + 8 * w) ^ seed;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  long long block = 4 << 20, xfer = 1 << 20;
  int segments = 8, reps = 3, force_cb = 0, opt;
  while ((opt = getopt(argc, argv, "b:t:s:i:c")) != -1) {
    if (opt == 'b') block = atoll(optarg);
    else if (opt == 't') xfer = atoll(optarg);
    else if (opt == 's') segments = atoi(optarg);
    else if (opt == 'i') reps = atoi(optarg);
    else if (opt == 'c') force_cb = 1;
    else MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (optind >= argc || xfer <= 0 || block % xfer || xfer % 8 || reps < 1 || reps > 64) {
    if (rank == 0) fprintf(stderr, "usage: %s [-b BLOCK] [-t XFER (divides BLOCK, multiple of 8)] [-s SEGMENTS] [-i REPS<=64] [-c] FILE...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int nfiles = argc - optind;
  const long long per_rank = block * segments, total = per_rank * nprocs;
  const long long xfers = per_rank / xfer;

  /* View: this rank's block of every segment. */
  MPI_Datatype one, view;
  MPI_Aint displ = (MPI_Aint)rank * block;
  MPI_Type_create_hindexed_block(1, (int)block, &displ, MPI_BYTE, &one);
  MPI_Type_create_resized(one, 0, (MPI_Aint)nprocs * block, &view);
  MPI_Type_commit(&view);
  uint64_t* buf = malloc(xfer);
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "striping_unit", "1048576");
  MPI_Info_set(info, "striping_factor", "4");
  if (force_cb) {
    MPI_Info_set(info, "romio_cb_write", "enable");
    MPI_Info_set(info, "romio_cb_read", "enable");
  }

  double wbw[16], rbw[16];
  if (rank == 0)
    printf("bench_mpiio: %d ranks, block %lld, transfer %lld, %d segments: %.1f MiB per pass, median of %d%s\n",
           nprocs, block, xfer, segments, total / 1048576.0, reps, force_cb ? ", collective buffering forced" : "");
  for (int f = 0; f < nfiles && f < 16; ++f) {
    const char* path = argv[optind + f];
    double wt[64], rt[64];
    for (int r = 0; r < reps; ++r) {
      const uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(r + 1);
      MPI_File fh;
      if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL); /* may not exist */
      MPI_Barrier(MPI_COMM_WORLD);
      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, info, &fh), "open", path);
      die_on(MPI_File_set_view(fh, 0, MPI_BYTE, view, "native", MPI_INFO_NULL), "set_view", path);
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      for (long long x = 0; x < xfers; ++x) {
        long long stream = x * xfer;
        long long file_off = (stream / block * nprocs + rank) * block + stream % block;
        fill(buf, xfer / 8, (uint64_t)file_off, seed);
        die_on(MPI_File_write_at_all(fh, stream, buf, (int)xfer, MPI_BYTE, MPI_STATUS_IGNORE), "write_at_all", path);
      }
      die_on(MPI_File_sync(fh), "sync", path);
      die_on(MPI_File_close(&fh), "close", path);
      MPI_Barrier(MPI_COMM_WORLD);
      wt[r] = MPI_Wtime() - t0;

      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_RDONLY, info, &fh), "open", path);
      die_on(MPI_File_set_view(fh, 0, MPI_BYTE, view, "native", MPI_INFO_NULL), "set_view", path);
      long long wrong = 0;
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = MPI_Wtime();
      for (long long x = 0; x < xfers; ++x) {
        long long stream = x * xfer;
        long long file_off = (stream / block * nprocs + rank) * block + stream % block;
        die_on(MPI_File_read_at_all(fh, stream, buf, (int)xfer, MPI_BYTE, MPI_STATUS_IGNORE), "read_at_all", path);
        for (long long w = 0; w < xfer / 8; ++w)
          if (buf[w] != (((uint64_t)file_off + 8 * w) ^ seed)) ++wrong;
      }
      die_on(MPI_File_close(&fh), "close", path);
      MPI_Barrier(MPI_COMM_WORLD);
      rt[r] = MPI_Wtime() - t0;
      abort_if_wrong(wrong, path);
    }
    report_rates(f, path, argv[optind], total, wt, rt, reps, wbw, rbw);
    if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
  }
  MPI_Info_free(&info);
  MPI_Type_free(&one);
  MPI_Type_free(&view);
  free(buf);
  MPI_Finalize();
  return 0;
}
