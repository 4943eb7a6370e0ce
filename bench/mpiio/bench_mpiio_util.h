/* Helpers shared by the MPI-IO bench programs. */
#ifndef STOR_BENCH_MPIIO_UTIL_H
#define STOR_BENCH_MPIIO_UTIL_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

/* A failed MPI call ends the run with the library's message. */
static void die_on(int rc, const char* what, const char* path) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0, me = 0;
  MPI_Error_string(rc, msg, &len);
  MPI_Comm_rank(MPI_COMM_WORLD, &me);
  fprintf(stderr, "rank %d: %s %s: %s\n", me, what, path, msg);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* Sorts v. */
static double median(double* v, int n) {
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
