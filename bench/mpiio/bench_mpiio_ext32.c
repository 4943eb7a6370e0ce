/* MPI-IO bench of the "external32" data representation: what the conversion costs against a
 * "native" view, on every FILE in the same run (run_bench.sh gives ROMIO on a local file first,
 * the reference for the stor/ROMIO ratios).
 *
 * Each rank writes its own BLOCK bytes of doubles (contiguous per rank, in XFER-byte
 * write_at_all calls), then reads them back with read_at_all and checks every value; each pass
 * is done once through a native view and once through an external32 view (alternating, REPS
 * times each). Reported: MiB/s (median) native and external32, and external32/native.
 *
 *   mpiexec -n 4 bench_mpiio_ext32 [-b BLOCK] [-t XFER] [-i REPS] FILE...
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_mpiio_util.h"

static int rank, nprocs;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  long long block = 16 << 20, xfer = 1 << 20;
  int reps = 3, opt;
  while ((opt = getopt(argc, argv, "b:t:i:")) != -1) {
    if (opt == 'b') block = atoll(optarg);
    else if (opt == 't') xfer = atoll(optarg);
    else if (opt == 'i') reps = atoi(optarg);
    else MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (optind >= argc || xfer < 8 || xfer % 8 || block % xfer || xfer > (1LL << 28) || reps < 1 || reps > 32) {
    if (rank == 0) fprintf(stderr, "usage: %s [-b BLOCK] [-t XFER (multiple of 8)] [-i REPS<=32] FILE...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int nfiles = argc - optind;
  const long long n = xfer / 8, calls = block / xfer;
  double* buf = malloc(xfer);
  double* back = malloc(xfer);
  double(*w)[2] = calloc(nfiles, sizeof *w), (*r)[2] = calloc(nfiles, sizeof *r);
  const double total = (double)block * nprocs / 1048576.0;
  for (int f = 0; f < nfiles; ++f) {
    const char* path = argv[optind + f];
    double wt[2][32], rt[2][32];
    for (int pass = 0; pass < 2 * reps; ++pass) {
      const int ext = pass % 2, rep = pass / 2;
      MPI_File fh;
      if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL); /* may not exist */
      MPI_Barrier(MPI_COMM_WORLD);
      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open", path);
      die_on(MPI_File_set_view(fh, 0, MPI_DOUBLE, MPI_DOUBLE, ext ? "external32" : "native", MPI_INFO_NULL), "set_view",
             path);
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      for (long long c = 0; c < calls; ++c) {
        const MPI_Offset at = ((MPI_Offset)rank * calls + c) * n;
        for (long long i = 0; i < n; ++i) buf[i] = (double)(at + i) * 0.5;
        die_on(MPI_File_write_at_all(fh, at, buf, (int)n, MPI_DOUBLE, MPI_STATUS_IGNORE), "write_at_all", path);
      }
      die_on(MPI_File_sync(fh), "sync", path);
      MPI_Barrier(MPI_COMM_WORLD);
      wt[ext][rep] = MPI_Wtime() - t0;
      t0 = MPI_Wtime();
      long long wrong = 0;
      for (long long c = 0; c < calls; ++c) {
        const MPI_Offset at = ((MPI_Offset)rank * calls + c) * n;
        die_on(MPI_File_read_at_all(fh, at, back, (int)n, MPI_DOUBLE, MPI_STATUS_IGNORE), "read_at_all", path);
        for (long long i = 0; i < n; ++i) wrong += back[i] != (double)(at + i) * 0.5;
      }
      MPI_Barrier(MPI_COMM_WORLD);
      rt[ext][rep] = MPI_Wtime() - t0;
      abort_if_wrong(wrong, path);
      die_on(MPI_File_close(&fh), "close", path);
    }
    for (int e = 0; e < 2; ++e) {
      w[f][e] = total / median(wt[e], reps);
      r[f][e] = total / median(rt[e], reps);
    }
    if (rank == 0) {
      printf("%-50s native write %8.1f read %8.1f MiB/s; external32 write %8.1f read %8.1f MiB/s;"
             " external32/native write %.2f read %.2f",
             path, w[f][0], r[f][0], w[f][1], r[f][1], w[f][1] / w[f][0], r[f][1] / r[f][0]);
      if (f > 0)
        printf("; external32 vs first: write %.2f read %.2f", w[f][1] / w[0][1], r[f][1] / r[0][1]);
      printf("\n");
    }
  }
  free(buf);
  free(back);
  free(w);
  free(r);
  MPI_Finalize();
  return 0;
}
