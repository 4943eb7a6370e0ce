/* Checks shared by the MPI-IO test programs: a failed check is reported with the rank and
 * counted; main() turns the count into the exit status. Each program sets `rank`. */
#ifndef STOR_TESTS_MPIIO_CHECK_H
#define STOR_TESTS_MPIIO_CHECK_H

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

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

/* Rank 0 copies FILE (read through MPI-IO, so a stor: name works too) to the local file DUMP,
 * then every rank turns the failure count into the exit status (after MPI_Finalize). */
static inline int dump_and_finish(const char* file, const char* dump) {
  if (rank == 0) {
    MPI_File in;
    check_rc(MPI_File_open(MPI_COMM_SELF, file, MPI_MODE_RDONLY, MPI_INFO_NULL, &in), "open for dump");
    MPI_Offset total = 0;
    check_rc(MPI_File_get_size(in, &total), "get_size");
    char* all = malloc(total > 0 ? total : 1);
    check_rc(MPI_File_read_at(in, 0, all, (int)total, MPI_BYTE, MPI_STATUS_IGNORE), "read for dump");
    check_rc(MPI_File_close(&in), "close dump");
    FILE* out = fopen(dump, "wb");
    CHECK(out && fwrite(all, 1, total, out) == (size_t)total && fclose(out) == 0, "writing %s", dump);
    printf("%s: %lld bytes\n", file, (long long)total);
    free(all);
  }
  int all_failures = 0;
  MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all_failures ? "FAILED" : "OK");
  MPI_Finalize();
  return all_failures ? 1 : 0;
}

#endif
