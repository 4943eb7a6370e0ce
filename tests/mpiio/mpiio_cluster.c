/* MPI-IO on a multi-client lustre:// mount (stor-mds + stor-targets, `stctl cluster start`):
 * every rank opens the file itself. Run with STOR_MPIIO_DELEGATION=0, so an independent call on a
 * rank without its own handle would fail: everything below works only if every rank mounted.
 *   1. per-rank files through MPI_COMM_SELF: write, close, reopen, read back; then each rank
 *      reads its neighbour's file (another process's data after close: close-to-open);
 *   2. one shared file: independent interleaved 47,008-byte writes (IOR-hard's transfer) from
 *      every rank, sync-barrier-sync, every rank reads every block back and sees the full size;
 *      then a collective write_at_all / read_at_all round over the same file;
 *   3. set_atomicity(1) works (extent locks of the stor-mds), get_atomicity agrees, I/O goes on in
 *      atomic mode and after switching back (mpiio_atomic checks the guarantee itself);
 *   4. MPI_File_delete of the per-rank files.
 *   mpiexec -n 4 mpiio_cluster stor:lustre://HOST:PORT/DIR
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { XFER = 47008, BLOCKS = 12, PRIVATE_BYTES = 3 << 20 };

static int nprocs;

static unsigned char byte_at(int writer, long long off) { return (unsigned char)((off * 7 + writer * 31) & 0xff); }

static void fill(unsigned char* buf, size_t n, int writer, long long off) {
  for (size_t i = 0; i < n; ++i) buf[i] = byte_at(writer, off + (long long)i);
}

static int check(const unsigned char* buf, size_t n, int writer, long long off) {
  for (size_t i = 0; i < n; ++i)
    if (buf[i] != byte_at(writer, off + (long long)i)) return (int)i;
  return -1;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc != 2) {
    if (rank == 0) fprintf(stderr, "usage: %s stor:lustre://HOST:PORT/DIR\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  char mine[4096], theirs[4096], shared[4096];
  snprintf(mine, sizeof mine, "%s/rank.%d", argv[1], rank);
  snprintf(theirs, sizeof theirs, "%s/rank.%d", argv[1], (rank + 1) % nprocs);
  snprintf(shared, sizeof shared, "%s/shared.bin", argv[1]);
  unsigned char* buf = malloc(PRIVATE_BYTES);
  MPI_File fh;

  /* 1. per-rank files, MPI_COMM_SELF */
  fill(buf, PRIVATE_BYTES, rank, 0);
  check_rc(MPI_File_open(MPI_COMM_SELF, mine, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh), "open own file");
  check_rc(MPI_File_write_at(fh, 0, buf, PRIVATE_BYTES, MPI_BYTE, MPI_STATUS_IGNORE), "write own file");
  check_rc(MPI_File_close(&fh), "close own file");
  memset(buf, 0, PRIVATE_BYTES);
  check_rc(MPI_File_open(MPI_COMM_SELF, mine, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "reopen own file");
  check_rc(MPI_File_read_at(fh, 0, buf, PRIVATE_BYTES, MPI_BYTE, MPI_STATUS_IGNORE), "read own file");
  check_rc(MPI_File_close(&fh), "close own file");
  CHECK(check(buf, PRIVATE_BYTES, rank, 0) < 0, "own file differs at byte %d", check(buf, PRIVATE_BYTES, rank, 0));
  MPI_Barrier(MPI_COMM_WORLD);
  memset(buf, 0, PRIVATE_BYTES);
  MPI_Offset size = -1;
  check_rc(MPI_File_open(MPI_COMM_SELF, theirs, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh), "open neighbour's file");
  check_rc(MPI_File_get_size(fh, &size), "get_size neighbour");
  CHECK(size == PRIVATE_BYTES, "neighbour's file has %lld bytes, want %d", (long long)size, PRIVATE_BYTES);
  check_rc(MPI_File_read_at(fh, 0, buf, PRIVATE_BYTES, MPI_BYTE, MPI_STATUS_IGNORE), "read neighbour's file");
  check_rc(MPI_File_close(&fh), "close neighbour's file");
  CHECK(check(buf, PRIVATE_BYTES, (rank + 1) % nprocs, 0) < 0, "neighbour's file differs");

  /* 2. one shared file, independent interleaved writes */
  check_rc(MPI_File_open(MPI_COMM_WORLD, shared, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open shared");
  for (int b = 0; b < BLOCKS; ++b) {
    const long long off = ((long long)b * nprocs + rank) * XFER;
    fill(buf, XFER, rank, off);
    check_rc(MPI_File_write_at(fh, off, buf, XFER, MPI_BYTE, MPI_STATUS_IGNORE), "independent write_at");
  }
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_sync(fh), "sync");
  size = -1;
  check_rc(MPI_File_get_size(fh, &size), "get_size shared");
  CHECK(size == (MPI_Offset)BLOCKS * nprocs * XFER, "shared file has %lld bytes, want %lld", (long long)size,
        (long long)BLOCKS * nprocs * XFER);
  for (int b = 0; b < BLOCKS * nprocs; ++b) {
    const long long off = (long long)b * XFER;
    memset(buf, 0, XFER);
    MPI_Status st;
    int got = 0;
    check_rc(MPI_File_read_at(fh, off, buf, XFER, MPI_BYTE, &st), "independent read_at");
    MPI_Get_count(&st, MPI_BYTE, &got);
    CHECK(got == XFER && check(buf, XFER, b % nprocs, off) < 0, "shared block %d (writer %d) differs or is short (%d)", b,
          b % nprocs, got);
  }
  /* collective round over the first blocks: rank r rewrites block r with its own bytes + 1 */
  MPI_Barrier(MPI_COMM_WORLD);
  const long long coff = (long long)rank * XFER;
  fill(buf, XFER, rank + 100, coff);
  check_rc(MPI_File_write_at_all(fh, coff, buf, XFER, MPI_BYTE, MPI_STATUS_IGNORE), "write_at_all");
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_sync(fh), "sync");
  const long long roff = (long long)((rank + 1) % nprocs) * XFER;
  memset(buf, 0, XFER);
  check_rc(MPI_File_read_at_all(fh, roff, buf, XFER, MPI_BYTE, MPI_STATUS_IGNORE), "read_at_all");
  CHECK(check(buf, XFER, (rank + 1) % nprocs + 100, roff) < 0, "collective block of rank %d differs", (rank + 1) % nprocs);

  /* 3. atomic mode (extent locks served by the stor-mds); I/O goes on in it and after it */
  int flag = -1;
  check_rc(MPI_File_set_atomicity(fh, 1), "set_atomicity(1)");
  check_rc(MPI_File_get_atomicity(fh, &flag), "get_atomicity");
  CHECK(flag == 1, "get_atomicity says %d after set_atomicity(1)", flag);
  memset(buf, 0, XFER);
  check_rc(MPI_File_read_at(fh, coff, buf, XFER, MPI_BYTE, MPI_STATUS_IGNORE), "read in atomic mode");
  CHECK(check(buf, XFER, rank + 100, coff) < 0, "own collective block differs in atomic mode");
  check_rc(MPI_File_set_atomicity(fh, 0), "set_atomicity(0)");
  check_rc(MPI_File_get_atomicity(fh, &flag), "get_atomicity");
  CHECK(flag == 0, "get_atomicity says %d after set_atomicity(0)", flag);
  memset(buf, 0, XFER);
  check_rc(MPI_File_read_at(fh, coff, buf, XFER, MPI_BYTE, MPI_STATUS_IGNORE), "read after atomic mode");
  CHECK(check(buf, XFER, rank + 100, coff) < 0, "own collective block differs");
  check_rc(MPI_File_close(&fh), "close shared");

  /* 4. delete */
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_delete(mine, MPI_INFO_NULL), "delete own file");
  MPI_Barrier(MPI_COMM_WORLD);
  int err = MPI_File_open(MPI_COMM_SELF, theirs, MPI_MODE_RDONLY, MPI_INFO_NULL, &fh);
  CHECK(err != MPI_SUCCESS, "neighbour's file still opens after delete");
  if (err == MPI_SUCCESS) MPI_File_close(&fh);

  free(buf);
  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all ? "FAILED" : "OK");
  MPI_Finalize();
  return all ? 1 : 0;
}
