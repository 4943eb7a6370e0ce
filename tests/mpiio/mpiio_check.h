/* Checks shared by the MPI-IO test programs: a failed check is reported with the rank and
 * counted; main() turns the count into the exit status. Each program sets `rank`. */
#ifndef STOR_TESTS_MPIIO_CHECK_H
#define STOR_TESTS_MPIIO_CHECK_H

#include <mpi.h>
#include <stdio.h>

static int rank, failures;

#define CHECK(cond, ...)                                 \
  do {                                                   \
    if (!(cond)) {                                       \
      fprintf(stderr, "rank %d: FAILED: ", rank);        \
      fprintf(stderr, __VA_ARGS__);                      \
      fprintf(stderr, " (%s:%d)\n", __FILE__, __LINE__); \
      ++failures;                                        \
    }                                                    \
  } while (0)

/* Counts an MPI call that did not return MPI_SUCCESS, with the library's message. */
static void check_rc(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  fprintf(stderr, "rank %d: FAILED: %s: %s\n", rank, what, msg);
  ++failures;
}

#endif
