/* Collective I/O through a darray view: a G x G x G array of doubles distributed block-cyclic,
 * CYCLIC(k) on the first two dimensions over a 2-D process grid, the third not distributed (C
 * order), the way a simulation describes its distributed array. Every rank writes its part with
 * MPI_File_write_all through the darray view, then reads it back with MPI_File_read_all and
 * checks every element. Each FILE is measured in the same run (the first is the reference for
 * the ratios; run_bench.sh gives ROMIO on a local file first).
 *
 *   mpiexec -n 4 bench_mpiio_darray [-g G] [-k K] [-i REPS] FILE...
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench_mpiio_util.h"

int main(int argc, char** argv) {
  int rank, nprocs;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  int g = 128, k = 4, reps = 3, opt;
  while ((opt = getopt(argc, argv, "g:k:i:")) != -1) {
    if (opt == 'g') g = atoi(optarg);
    else if (opt == 'k') k = atoi(optarg);
    else if (opt == 'i') reps = atoi(optarg);
    else MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (optind >= argc || g < 1 || g > 1024 || k < 1 || reps < 1 || reps > 64) {
    if (rank == 0) fprintf(stderr, "usage: %s [-g G<=1024] [-k K] [-i REPS<=64] FILE...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int nfiles = argc - optind;
  int psizes[3] = {0, 0, 1};
  MPI_Dims_create(nprocs, 2, psizes);
  const int gsizes[3] = {g, g, g};
  const int distribs[3] = {MPI_DISTRIBUTE_CYCLIC, MPI_DISTRIBUTE_CYCLIC, MPI_DISTRIBUTE_NONE};
  const int dargs[3] = {k, k, MPI_DISTRIBUTE_DFLT_DARG};
  MPI_Datatype view;
  MPI_Type_create_darray(nprocs, rank, 3, gsizes, distribs, dargs, psizes, MPI_ORDER_C, MPI_DOUBLE, &view);
  MPI_Type_commit(&view);
  int bytes = 0;
  MPI_Type_size(view, &bytes);
  const long long local = bytes / 8, total = (long long)g * g * g * 8;

  /* The process grid is row-major over ranks; CYCLIC(k) maps global index i to the process
   * (i / k) % P of that dimension, and the local array keeps the global order. */
  const int c0 = rank / psizes[1], c1 = rank % psizes[1];
  uint64_t* want = malloc(local * 8 + 8);
  uint64_t* buf = malloc(local * 8 + 8);
  long long n = 0;
  for (int i = 0; i < g; ++i) {
    if ((i / k) % psizes[0] != c0) continue;
    for (int j = 0; j < g; ++j) {
      if ((j / k) % psizes[1] != c1) continue;
      for (int z = 0; z < g; ++z) want[n++] = (((uint64_t)i * g + j) * g + z) * 8; /* file offset */
    }
  }
  if (n != local) {
    fprintf(stderr, "rank %d: darray holds %lld elements, expected %lld\n", rank, local, n);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  double wbw[16], rbw[16];
  if (rank == 0)
    printf("bench_mpiio_darray: %d ranks (grid %dx%d), %d^3 doubles CYCLIC(%d) x CYCLIC(%d) x NONE: %.1f MiB per pass, median of %d\n",
           nprocs, psizes[0], psizes[1], g, k, k, total / 1048576.0, reps);
  for (int f = 0; f < nfiles && f < 16; ++f) {
    const char* path = argv[optind + f];
    double wt[64], rt[64];
    for (int r = 0; r < reps; ++r) {
      const uint64_t seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(r + 1);
      for (long long e = 0; e < local; ++e) buf[e] = want[e] ^ seed;
      MPI_File fh;
      if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL); /* may not exist */
      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh), "open", path);
      die_on(MPI_File_set_view(fh, 0, MPI_DOUBLE, view, "native", MPI_INFO_NULL), "set_view", path);
      MPI_Barrier(MPI_COMM_WORLD); /* timed as bench_mpiio: write + sync + close */
      double t0 = MPI_Wtime();
      die_on(MPI_File_write_all(fh, buf, (int)local, MPI_DOUBLE, MPI_STATUS_IGNORE), "write_all", path);
      die_on(MPI_File_sync(fh), "sync", path);
      die_on(MPI_File_close(&fh), "close", path);
      MPI_Barrier(MPI_COMM_WORLD);
      wt[r] = MPI_Wtime() - t0;

      for (long long e = 0; e < local; ++e) buf[e] = 0;
      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "open", path);
      die_on(MPI_File_set_view(fh, 0, MPI_DOUBLE, view, "native", MPI_INFO_NULL), "set_view", path);
      MPI_Barrier(MPI_COMM_WORLD);
      t0 = MPI_Wtime();
      die_on(MPI_File_read_all(fh, buf, (int)local, MPI_DOUBLE, MPI_STATUS_IGNORE), "read_all", path);
      die_on(MPI_File_close(&fh), "close", path);
      MPI_Barrier(MPI_COMM_WORLD);
      rt[r] = MPI_Wtime() - t0;
      long long wrong = 0;
      for (long long e = 0; e < local; ++e) wrong += buf[e] != (want[e] ^ seed);
      if (r == 0 && rank == 0) { /* untimed: the file itself, read flat, holds offset ^ seed */
        uint64_t* flat = malloc(total);
        die_on(MPI_File_open(MPI_COMM_SELF, path, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "open", path);
        die_on(MPI_File_read_at(fh, 0, flat, (int)(total / 8), MPI_UINT64_T, MPI_STATUS_IGNORE), "read_at", path);
        die_on(MPI_File_close(&fh), "close", path);
        for (long long w = 0; w < total / 8; ++w) wrong += flat[w] != (((uint64_t)w * 8) ^ seed);
        free(flat);
      }
      abort_if_wrong(wrong, path);
    }
    report_rates(f, path, argv[optind], total, wt, rt, reps, wbw, rbw);
    if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
  }
  MPI_Type_free(&view);
  free(want);
  free(buf);
  MPI_Finalize();
  return 0;
}
