/* libstor_mpiio specifics, run with the library preloaded on 4 ranks:
 *   mpiio_stor_errors STOR_FILE PLAIN_FILE [LUSTRE_FILE delegation|no-delegation]
 * refused calls on stor handles, atomic mode, unsupported datarep, a user error handler, a darray view, amode and
 * EXCL errors, hints in MPI_File_get_info, MPI_File_delete, a plain ROMIO file in the same run,
 * and (with LUSTRE_FILE) independent I/O of ranks that cannot mount the emulated file system:
 * delegated to rank 0, or refused when delegation is off (STOR_MPIIO_DELEGATION=0). */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpiio_check.h"

static int error_class(int rc) {
  int cls = MPI_SUCCESS;
  if (rc != MPI_SUCCESS) MPI_Error_class(rc, &cls);
  return cls;
}

static int message_has(int rc, const char* needle) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return strstr(msg, needle) != NULL;
}

static int handler_calls, handler_code;
static MPI_File handler_file;
static void my_handler(MPI_File* fh, int* code, ...) {
  ++handler_calls;
  handler_file = *fh;
  handler_code = *code;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc != 3 && argc != 5) {
    if (rank == 0) fprintf(stderr, "usage: %s STOR_FILE PLAIN_FILE [LUSTRE_FILE delegation|no-delegation]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char* stor_file = argv[1];
  const char* plain_file = argv[2];
  MPI_File fh;
  int rc;

  check_rc(MPI_File_open(MPI_COMM_WORLD, stor_file, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  int value = rank;
  check_rc(MPI_File_write_at_all(fh, rank * (MPI_Offset)sizeof(int), &value, 1, MPI_INT, MPI_STATUS_IGNORE), "write_at_all");

  /* A call libstor_mpiio does not implement must refuse the stor handle, never reach ROMIO. */
  /* The large-count (_c) forms: blocking, nonblocking, shared pointer (random_types does more). */
  int c_back = -1;
  check_rc(MPI_File_read_at_c(fh, rank * (MPI_Offset)sizeof(int), &c_back, 1, MPI_INT, MPI_STATUS_IGNORE), "read_at_c");
  CHECK(c_back == rank, "read_at_c read %d", c_back);
  MPI_Request c_req;
  int c_value = 1000 + rank;
  check_rc(MPI_File_iwrite_at_c(fh, (16 + rank) * (MPI_Offset)sizeof(int), &c_value, 1, MPI_INT, &c_req), "iwrite_at_c");
  check_rc(MPI_Wait(&c_req, MPI_STATUS_IGNORE), "wait iwrite_at_c");
  check_rc(MPI_File_read_at_c(fh, (16 + rank) * (MPI_Offset)sizeof(int), &c_back, 1, MPI_INT, MPI_STATUS_IGNORE),
           "read_at_c after iwrite_at_c");
  CHECK(c_back == c_value, "iwrite_at_c wrote %d", c_back);
  MPI_Count c_extent = 0;
  check_rc(MPI_File_get_type_extent_c(fh, MPI_DOUBLE, &c_extent), "get_type_extent_c");
  CHECK(c_extent == (MPI_Count)sizeof(double), "get_type_extent_c %lld", (long long)c_extent);
  /* Atomic mode on nvme: OFD locks (mpiio_atomic checks the guarantee). */
  check_rc(MPI_File_set_atomicity(fh, 1), "set_atomicity(1)");
  int atomic_flag = 0;
  check_rc(MPI_File_get_atomicity(fh, &atomic_flag), "get_atomicity");
  CHECK(atomic_flag == 1, "get_atomicity %d after set_atomicity(1)", atomic_flag);
  check_rc(MPI_File_set_atomicity(fh, 0), "set_atomicity(0)");
  /* A data representation neither ROMIO nor stor has (mpiio_external32 tests "external32"). */
  rc = MPI_File_set_view(fh, 0, MPI_INT, MPI_INT, "no_such_rep", MPI_INFO_NULL);
  CHECK(error_class(rc) == MPI_ERR_UNSUPPORTED_DATAREP, "no_such_rep: class %d", error_class(rc));
  /* One wording for whatever stor cannot serve: the call, the file, the reason. */
  CHECK(rc == MPI_SUCCESS || (message_has(rc, "stor cannot serve MPI_File_set_view on stor:") &&
                              message_has(rc, "no_such_rep") && !message_has(rc, "Other I/O error")),
        "no_such_rep message");
  /* PMPI_File_* bypasses the interposition: said so, for a stor handle and a stor: name. */
  MPI_Offset psize = 0;
  rc = PMPI_File_get_size(fh, &psize);
  CHECK(error_class(rc) == MPI_ERR_UNSUPPORTED_OPERATION, "PMPI_File_get_size on a stor handle: class %d", error_class(rc));
  CHECK(rc == MPI_SUCCESS || (message_has(rc, "stor cannot serve PMPI_File_get_size") && message_has(rc, "bypasses")),
        "PMPI_File_get_size message");
  MPI_File pfh;
  rc = PMPI_File_open(MPI_COMM_SELF, stor_file, MPI_MODE_RDONLY, MPI_INFO_NULL, &pfh);
  CHECK(error_class(rc) == MPI_ERR_UNSUPPORTED_OPERATION, "PMPI_File_open of a stor: name: class %d", error_class(rc));
  CHECK(rc == MPI_SUCCESS || message_has(rc, "call MPI_File_open"), "PMPI_File_open message");
  int gsizes[1] = {16}, distribs[1] = {MPI_DISTRIBUTE_BLOCK}, dargs[1] = {MPI_DISTRIBUTE_DFLT_DARG}, psizes[1] = {4};
  MPI_Datatype darray;
  MPI_Type_create_darray(4, rank, 1, gsizes, distribs, dargs, psizes, MPI_ORDER_C, MPI_INT, &darray);
  MPI_Type_commit(&darray);
  /* darray views work (mpiio_random_types compares them with ROMIO): rank r's 4 ints. */
  check_rc(MPI_File_set_view(fh, 0, MPI_INT, darray, "native", MPI_INFO_NULL), "darray view");
  MPI_Offset where = -1;
  check_rc(MPI_File_get_byte_offset(fh, 1, &where), "darray get_byte_offset");
  CHECK(where == (4 * rank + 1) * (MPI_Offset)sizeof(int), "darray byte offset %lld", (long long)where);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "byte view");
  MPI_Type_free(&darray);
  /* A pair type in memory: the short and the int, without the padding between them. */
  struct { short v; int i; } pair = {(short)(100 + rank), 7 * rank}, pair_back = {0, 0};
  char raw[6];
  check_rc(MPI_File_write_at(fh, 64 + 6 * rank, &pair, 1, MPI_SHORT_INT, MPI_STATUS_IGNORE), "write MPI_SHORT_INT");
  check_rc(MPI_File_read_at(fh, 64 + 6 * rank, raw, 6, MPI_BYTE, MPI_STATUS_IGNORE), "read pair bytes");
  CHECK(memcmp(raw, &pair.v, 2) == 0 && memcmp(raw + 2, &pair.i, 4) == 0, "MPI_SHORT_INT written with its padding");
  check_rc(MPI_File_read_at(fh, 64 + 6 * rank, &pair_back, 1, MPI_SHORT_INT, MPI_STATUS_IGNORE), "read MPI_SHORT_INT");
  CHECK(pair_back.v == pair.v && pair_back.i == pair.i, "MPI_SHORT_INT read back %d %d", pair_back.v, pair_back.i);
  MPI_Errhandler custom;
  MPI_File_create_errhandler(my_handler, &custom);
  /* A user-defined handler is called for stor files, with the file and the code. */
  check_rc(MPI_File_set_errhandler(fh, custom), "set_errhandler(custom)");
  rc = MPI_File_set_view(fh, 0, MPI_INT, MPI_INT, "no_such_rep", MPI_INFO_NULL);
  CHECK(handler_calls == 1 && handler_file == fh && handler_code == rc, "custom handler: %d calls, code %d vs %d",
        handler_calls, handler_code, rc);
  MPI_Errhandler_free(&custom);
  check_rc(MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN), "set_errhandler(MPI_ERRORS_RETURN)");

  MPI_Info used;
  check_rc(MPI_File_get_info(fh, &used), "get_info");
  char v[MPI_MAX_INFO_VAL + 1];
  int flag = 0;
  MPI_Info_get(used, "cb_nodes", MPI_MAX_INFO_VAL, v, &flag);
  CHECK(flag, "get_info has no cb_nodes");
  MPI_Info_get(used, "striping_unit", MPI_MAX_INFO_VAL, v, &flag);
  CHECK(flag, "get_info has no striping_unit");
  MPI_Info_get(used, "striping_factor", MPI_MAX_INFO_VAL, v, &flag);
  CHECK(!flag, "nvme files do not stripe, yet get_info reports striping_factor %s", v);
  MPI_Info_free(&used);
  int amode = 0;
  check_rc(MPI_File_get_amode(fh, &amode), "get_amode");
  CHECK(amode == (MPI_MODE_CREATE | MPI_MODE_RDWR), "amode %d", amode);
  check_rc(MPI_File_close(&fh), "close");

  rc = MPI_File_open(MPI_COMM_WORLD, stor_file, MPI_MODE_CREATE | MPI_MODE_EXCL | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
  CHECK(error_class(rc) == MPI_ERR_FILE_EXISTS, "EXCL on an existing file: class %d", error_class(rc));
  check_rc(MPI_File_open(MPI_COMM_WORLD, stor_file, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "open read-only");
  rc = MPI_File_write_at(fh, 0, &value, 1, MPI_INT, MPI_STATUS_IGNORE);
  CHECK(error_class(rc) == MPI_ERR_READ_ONLY, "write on a read-only file: class %d", error_class(rc));
  int back = -1;
  check_rc(MPI_File_read_at(fh, rank * (MPI_Offset)sizeof(int), &back, 1, MPI_INT, MPI_STATUS_IGNORE), "read_at");
  CHECK(back == rank, "read back %d", back);
  check_rc(MPI_File_close(&fh), "close read-only");

  /* A plain file in the same run goes to ROMIO. */
  check_rc(MPI_File_open(MPI_COMM_WORLD, plain_file, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open plain");
  check_rc(MPI_File_write_at_all(fh, rank * (MPI_Offset)sizeof(int), &value, 1, MPI_INT, MPI_STATUS_IGNORE), "plain write");
  /* A call stor refuses still works on a ROMIO file (the generated wrapper forwards it). */
  MPIO_Request plain_req;
  int plain_back = -1;
  check_rc(MPI_File_iread_at(fh, rank * (MPI_Offset)sizeof(int), &plain_back, 1, MPI_INT, &plain_req), "plain iread_at");
  check_rc(MPIO_Wait(&plain_req, MPI_STATUS_IGNORE), "plain MPIO_Wait");
  CHECK(plain_back == value, "plain iread_at read %d", plain_back);
  MPI_Offset size = 0;
  check_rc(MPI_File_get_size(fh, &size), "plain get_size");
  check_rc(MPI_File_close(&fh), "close plain");

  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0) check_rc(MPI_File_delete(stor_file, MPI_INFO_NULL), "delete");
  MPI_Barrier(MPI_COMM_WORLD);
  rc = MPI_File_open(MPI_COMM_WORLD, stor_file, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
  CHECK(error_class(rc) == MPI_ERR_NO_SUCH_FILE, "open after delete: class %d", error_class(rc));

  if (argc == 5) {
    const int delegation = strcmp(argv[4], "delegation") == 0;
    check_rc(MPI_File_open(MPI_COMM_WORLD, argv[3], MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open lustre");
    check_rc(MPI_File_write_at_all(fh, rank * (MPI_Offset)sizeof(int), &value, 1, MPI_INT, MPI_STATUS_IGNORE),
       "lustre write_at_all");
    /* The file system default layout (mkfs: 1 stripe of 1M) is what get_info reports. */
    check_rc(MPI_File_get_info(fh, &used), "lustre get_info");
    MPI_Info_get(used, "striping_factor", MPI_MAX_INFO_VAL, v, &flag);
    CHECK(flag && strcmp(v, "1") == 0, "lustre striping_factor %s", flag ? v : "(none)");
    MPI_Info_get(used, "striping_unit", MPI_MAX_INFO_VAL, v, &flag);
    CHECK(flag && strcmp(v, "1048576") == 0, "lustre striping_unit %s", flag ? v : "(none)");
    MPI_Info_free(&used);
    back = -1;
    rc = MPI_File_read_at(fh, rank * (MPI_Offset)sizeof(int), &back, 1, MPI_INT, MPI_STATUS_IGNORE);
    if (rank == 0 || delegation) {
      check_rc(rc, "lustre read_at");
      CHECK(back == rank, "lustre read back %d", back);
    } else {
      CHECK(error_class(rc) == MPI_ERR_UNSUPPORTED_OPERATION, "read_at without delegation: class %d", error_class(rc));
    }
    back = -1;
    check_rc(MPI_File_read_at_all(fh, rank * (MPI_Offset)sizeof(int), &back, 1, MPI_INT, MPI_STATUS_IGNORE),
       "lustre read_at_all");
    CHECK(back == rank, "lustre read_at_all back %d", back);
    check_rc(MPI_File_close(&fh), "close lustre");
  }

  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all ? "FAILED" : "OK");
  MPI_Finalize();
  return all ? 1 : 0;
}
