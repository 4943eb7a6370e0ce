/* Helpers shared by the MPI-IO bench programs. */
#ifndef STOR_BENCH_MPIIO_UTIL_H
#define STOR_BENCH_MPIIO_UTIL_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed MPI call ends the run with the library's message. */
static inline void die_on(int rc, const char* what, const char* path) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0, me = 0;
  MPI_Error_string(rc, msg, &len);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  fprintf(stderr, "rank %d: %s %s: %s\n", me, what, path, msg);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static inline int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double median(double* v, int n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Ends the run when any rank counted wrong words in what it read back. */
static inline void abort_if_wrong(long long wrong, const char* path) {
  long long all_wrong = 0;
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  MPI_Allreduce(&wrong, &all_wrong, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
  if (!all_wrong) return;
  if (me == 0) fprintf(stderr, "%s: %lld words read back wrong\n", path, all_wrong);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

/* File f's write/read MiB/s (median over reps, total bytes per pass) into wbw[f]/rbw[f]; rank 0
 * prints them and, after the first file, the ratios against it. */
static inline void report_rates(int f, const char* path, const char* first, long long total, double* wt, double* rt,
                         int reps, double* wbw, double* rbw) {
  int me = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  wbw[f] = total / 1048576.0 / median(wt, reps);
  rbw[f] = total / 1048576.0 / median(rt, reps);
  if (me != 0) return;
  printf("%-50s write %9.1f MiB/s  read %9.1f MiB/s", path, wbw[f], rbw[f]);
  if (f > 0) printf("   ratio vs %s: write %.2f read %.2f", first, wbw[f] / wbw[0], rbw[f] / rbw[0]);
  printf("\n");
}

#endif
