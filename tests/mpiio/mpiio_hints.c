/* Hints: opens FILE with the program's hints (KEY VALUE pairs; the run script also sets a
 * ROMIO_HINTS file), then changes some with MPI_File_set_info, and logs what MPI_File_get_info
 * reports for the hints ROMIO and stor share. Run through ROMIO on a plain file and through
 * libstor_mpiio on a stor: file, the two logs must be identical.
 *   mpiexec -n 3 mpiio_hints FILE LOG [KEY VALUE]... */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpiio_check.h"

static const char* const keys[] = {
    "cb_buffer_size", "romio_cb_read", "romio_cb_write", "cb_nodes", "romio_no_indep_rw",
    "ind_rd_buffer_size", "ind_wr_buffer_size", "striping_unit",
    "bogus_hint", "foo", /* unknown hints are ignored: reported by neither */
};

static void log_info(FILE* out, MPI_File fh, const char* when) {
  MPI_Info used;
  check_rc(MPI_File_get_info(fh, &used), "get_info");
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k) {
    char v[MPI_MAX_INFO_VAL + 1];
    int flag = 0;
    MPI_Info_get(used, keys[k], MPI_MAX_INFO_VAL, v, &flag);
    if (out) fprintf(out, "%s: %s = %s\n", when, keys[k], flag ? v : "(absent)");
  }
  MPI_Info_free(&used);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc < 3 || argc % 2 != 1) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE LOG [KEY VALUE]...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Info info;
  MPI_Info_create(&info);
  for (int i = 3; i + 1 < argc; i += 2) MPI_Info_set(info, argv[i], argv[i + 1]);
  FILE* out = rank == 0 ? fopen(argv[2], "w") : NULL;
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, info, &fh), "open");
  if (failures) MPI_Abort(MPI_COMM_WORLD, 1);
  log_info(out, fh, "open");
  int value = rank;
  check_rc(MPI_File_write_at_all(fh, rank * (MPI_Offset)sizeof(int), &value, 1, MPI_INT, MPI_STATUS_IGNORE), "write");

  MPI_Info later;
  MPI_Info_create(&later);
  MPI_Info_set(later, "cb_buffer_size", "4194304");
  char promise[MPI_MAX_INFO_VAL + 1];
  int promised = 0;
  MPI_Info_get(info, "romio_no_indep_rw", MPI_MAX_INFO_VAL, promise, &promised);
  /* ROMIO opened the file on the aggregators only (deferred open): independent reads would fail. */
  if (!promised) MPI_Info_set(later, "romio_cb_read", "disable");
  MPI_Info_set(later, "ind_wr_buffer_size", "262144");
  MPI_Info_set(later, "foo", "baz");
  check_rc(MPI_File_set_info(fh, later), "set_info");
  log_info(out, fh, "set_info");
  int back = -1;
  check_rc(MPI_File_read_at_all(fh, rank * (MPI_Offset)sizeof(int), &back, 1, MPI_INT, MPI_STATUS_IGNORE), "read");
  CHECK(back == rank, "read back %d", back);
  check_rc(MPI_File_close(&fh), "close");
  MPI_Info_free(&later);
  MPI_Info_free(&info);
  if (out) fclose(out);
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all ? "FAILED" : "OK");
  MPI_Finalize();
  return all ? 1 : 0;
}
