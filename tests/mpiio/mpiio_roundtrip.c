/* An ordinary MPI-IO program (it knows nothing about stor): a 3-D array of doubles is written
 * collectively through a subarray file view from ghost-celled memory (a subarray memory type),
 * two time steps, then read back collectively and independently; a record region uses an
 * indexed_block + resized view; non-interleaved collective chunks; vector, hvector of a
 * struct with a gap, hindexed and Fortran-order subarray views; set_size/get_size/sync; error
 * paths. Rank 0 finally dumps the
 * whole file to DUMP so runs through ROMIO and through libstor_mpiio can be compared byte by byte.
 *
 *   mpiexec -n 4 mpiio_roundtrip FILE DUMP BAD_NAME
 *
 * BAD_NAME must fail to open (a path in a missing directory, or a malformed stor URI).
 * Exit status 0 when every check passed. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { NX = 37, NY = 29, NZ = 23, HEADER = 256, RECORD_INTS = 4, RECORDS = 3, TAIL = 1000 };

static int nprocs;

static double value(int i, int j, int k, int step) { return step * 1e6 + i * 10000.0 + j * 100.0 + k + 0.25; }

/* Splits n over d parts: part c gets [start, start + size). */
static void split(int n, int d, int c, int* start, int* size) {
  int base = n / d, rem = n % d;
  *size = base + (c < rem);
  *start = c * base + (c < rem ? c : rem);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc != 4) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE DUMP BAD_NAME\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char* path = argv[1];
  const char* dump = argv[2];
  const char* bad = argv[3];

  /* Process grid and this rank's block of the global array. */
  int dims[3] = {0, 0, 0}, periods[3] = {0, 0, 0}, coords[3];
  MPI_Dims_create(nprocs, 3, dims);
  MPI_Comm cart;
  MPI_Cart_create(MPI_COMM_WORLD, 3, dims, periods, 0, &cart);
  MPI_Cart_coords(cart, rank, 3, coords);
  int gsizes[3] = {NX, NY, NZ}, starts[3], subs[3];
  for (int d = 0; d < 3; ++d) split(gsizes[d], dims[d], coords[d], &starts[d], &subs[d]);
  const long n_local = (long)subs[0] * subs[1] * subs[2];

  /* Memory: the block plus one ghost cell on each side. */
  int msizes[3] = {subs[0] + 2, subs[1] + 2, subs[2] + 2}, mstarts[3] = {1, 1, 1};
  const long n_mem = (long)msizes[0] * msizes[1] * msizes[2];
  MPI_Datatype memtype, filetype;
  MPI_Type_create_subarray(3, msizes, subs, mstarts, MPI_ORDER_C, MPI_DOUBLE, &memtype);
  MPI_Type_commit(&memtype);
  MPI_Type_create_subarray(3, gsizes, subs, starts, MPI_ORDER_C, MPI_DOUBLE, &filetype);
  MPI_Type_commit(&filetype);

  double* step_buf[2];
  for (int t = 0; t < 2; ++t) {
    step_buf[t] = malloc(sizeof(double) * n_mem);
    for (long x = 0; x < n_mem; ++x) step_buf[t][x] = -1.0; /* ghosts: must never reach the file */
    for (int i = 0; i < subs[0]; ++i)
      for (int j = 0; j < subs[1]; ++j)
        for (int k = 0; k < subs[2]; ++k)
          step_buf[t][((long)(i + 1) * msizes[1] + (j + 1)) * msizes[2] + (k + 1)] =
              value(starts[0] + i, starts[1] + j, starts[2] + k, t);
  }

  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "cb_nodes", "2");
  MPI_Info_set(info, "striping_factor", "2");
  MPI_Info_set(info, "striping_unit", "65536");
  MPI_Info_set(info, "cb_buffer_size", "65536"); /* several two-phase rounds per call */

  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, info, &fh), "MPI_File_open");
  if (failures) MPI_Abort(MPI_COMM_WORLD, 1);

  /* Header, independent, default (byte) view. */
  if (rank == 0) {
    char header[HEADER];
    memset(header, ' ', sizeof header);
    int n = snprintf(header, sizeof header, "mpiio_roundtrip %d x %d x %d doubles, 2 steps, %d ranks\n", NX, NY, NZ,
                     nprocs);
    header[n] = ' ';
    header[HEADER - 1] = '\n';
    MPI_Status st;
    check_rc(MPI_File_write_at(fh, 0, header, HEADER, MPI_CHAR, &st), "write_at header");
    int count = 0;
    MPI_Get_count(&st, MPI_CHAR, &count);
    CHECK(count == HEADER, "header write count %d", count);
  }

  /* The array, collectively through the subarray view; step 1 is the next filetype tile. */
  check_rc(MPI_File_set_view(fh, HEADER, MPI_DOUBLE, filetype, "native", MPI_INFO_NULL), "set_view subarray");
  for (int t = 0; t < 2; ++t) {
    MPI_Status st;
    check_rc(MPI_File_write_at_all(fh, t * n_local, step_buf[t], 1, memtype, &st), "write_at_all");
    int count = 0;
    MPI_Get_count(&st, MPI_DOUBLE, &count);
    CHECK(count == n_local, "write_at_all count %d, expected %ld", count, n_local);
  }
  check_rc(MPI_File_sync(fh), "sync");

  /* Both steps back in one collective read into a flat buffer. */
  double* back = malloc(sizeof(double) * 2 * n_local);
  check_rc(MPI_File_read_at_all(fh, 0, back, (int)(2 * n_local), MPI_DOUBLE, MPI_STATUS_IGNORE), "read_at_all");
  long bad_values = 0;
  for (int t = 0; t < 2; ++t)
    for (int i = 0; i < subs[0]; ++i)
      for (int j = 0; j < subs[1]; ++j)
        for (int k = 0; k < subs[2]; ++k) {
          double want = value(starts[0] + i, starts[1] + j, starts[2] + k, t);
          if (back[t * n_local + ((long)i * subs[1] + j) * subs[2] + k] != want) ++bad_values;
        }
  CHECK(bad_values == 0, "read_at_all: %ld wrong values", bad_values);

  /* Collective read into the ghost-celled memory type: ghosts stay untouched. */
  double* ghosted = malloc(sizeof(double) * n_mem);
  for (long x = 0; x < n_mem; ++x) ghosted[x] = -7.0;
  check_rc(MPI_File_read_at_all(fh, n_local, ghosted, 1, memtype, MPI_STATUS_IGNORE), "read_at_all memtype");
  bad_values = 0;
  for (long x = 0; x < n_mem; ++x) {
    double want = step_buf[1][x] == -1.0 ? -7.0 : step_buf[1][x];
    if (ghosted[x] != want) ++bad_values;
  }
  CHECK(bad_values == 0, "read_at_all into subarray memory: %ld wrong values", bad_values);

  /* Independent reads: element e of step 1 in this rank's stream is local (i, j, k) in C order. */
  for (long e = 0; e < n_local; e += n_local / 5 + 1) {
    double v = 0;
    MPI_Status st;
    check_rc(MPI_File_read_at(fh, n_local + e, &v, 1, MPI_DOUBLE, &st), "read_at");
    int i = (int)(e / ((long)subs[1] * subs[2])), j = (int)(e / subs[2] % subs[1]), k = (int)(e % subs[2]);
    CHECK(v == value(starts[0] + i, starts[1] + j, starts[2] + k, 1), "read_at element %ld: %f", e, v);
    int count = 0;
    MPI_Get_count(&st, MPI_DOUBLE, &count);
    CHECK(count == 1, "read_at count %d", count);
  }

  /* Records: rank r owns ints [4r, 4r+4) of every nprocs*4-int tile (indexed_block + resized). */
  const MPI_Offset array_end = HEADER + 2 * (MPI_Offset)NX * NY * NZ * sizeof(double);
  MPI_Datatype block, records;
  int displ = rank * RECORD_INTS;
  MPI_Type_create_indexed_block(1, RECORD_INTS, &displ, MPI_INT, &block);
  MPI_Type_create_resized(block, 0, (MPI_Aint)nprocs * RECORD_INTS * sizeof(int), &records);
  MPI_Type_commit(&records);
  check_rc(MPI_File_set_view(fh, array_end, MPI_INT, records, "native", MPI_INFO_NULL), "set_view records");
  int rec_out[RECORDS * RECORD_INTS], rec_in[RECORDS * RECORD_INTS];
  for (int x = 0; x < RECORDS * RECORD_INTS; ++x) rec_out[x] = rank * 1000 + x;
  check_rc(MPI_File_write_at_all(fh, 0, rec_out, RECORDS * RECORD_INTS, MPI_INT, MPI_STATUS_IGNORE), "write records");
  memset(rec_in, 0, sizeof rec_in);
  check_rc(MPI_File_read_at_all(fh, 0, rec_in, RECORDS * RECORD_INTS, MPI_INT, MPI_STATUS_IGNORE), "read records");
  CHECK(memcmp(rec_in, rec_out, sizeof rec_in) == 0, "records differ after read back");
  MPI_Offset byte_off = 0;
  check_rc(MPI_File_get_byte_offset(fh, RECORD_INTS, &byte_off), "get_byte_offset");
  CHECK(byte_off == array_end + (MPI_Offset)(nprocs + rank) * RECORD_INTS * (MPI_Offset)sizeof(int),
        "get_byte_offset %lld", (long long)byte_off);

  /* Per-rank tail chunks, collective but not interleaved (ROMIO then skips two-phase I/O). */
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "set_view bytes");
  const MPI_Offset records_end = array_end + (MPI_Offset)RECORDS * nprocs * RECORD_INTS * sizeof(int);
  char chunk[TAIL], chunk_in[TAIL];
  for (int x = 0; x < TAIL; ++x) chunk[x] = (char)('a' + (rank + x) % 26);
  check_rc(MPI_File_write_at_all(fh, records_end + (MPI_Offset)rank * TAIL, chunk, TAIL, MPI_CHAR, MPI_STATUS_IGNORE),
           "write tail chunk");
  check_rc(MPI_File_read_at_all(fh, records_end + (MPI_Offset)rank * TAIL, chunk_in, TAIL, MPI_CHAR, MPI_STATUS_IGNORE),
           "read tail chunk");
  CHECK(memcmp(chunk, chunk_in, TAIL) == 0, "tail chunk differs after read back");

  /* More filetype constructors, each writing interleaved ints collectively into its own region:
   * vector, hvector of a struct with a gap (resized), hindexed, Fortran-order subarray. */
  MPI_Offset region = records_end + (MPI_Offset)nprocs * TAIL;
  {
    const int P = nprocs;
    MPI_Datatype types[4], gap_struct, gap;
    MPI_Offset disps[4], sizes[4];
    int counts[4];
    /* vector: 3 blocks of 2 ints, stride 2P, rank r shifted by 2r ints */
    MPI_Type_vector(3, 2, 2 * P, MPI_INT, &types[0]);
    disps[0] = region + 2 * rank * (MPI_Offset)sizeof(int);
    sizes[0] = 6 * P * (MPI_Offset)sizeof(int);
    counts[0] = 6;
    /* hvector of {int @0, int @8} resized to 16 bytes: 2 copies, stride P*16, rank r at 16r */
    int one[2] = {1, 1};
    MPI_Aint gap_displs[2] = {0, 8};
    MPI_Datatype ints[2] = {MPI_INT, MPI_INT};
    MPI_Type_create_struct(2, one, gap_displs, ints, &gap_struct);
    MPI_Type_create_resized(gap_struct, 0, 16, &gap);
    MPI_Type_create_hvector(2, 1, (MPI_Aint)P * 16, gap, &types[1]);
    disps[1] = region + sizes[0] + 16 * (MPI_Offset)rank;
    sizes[1] = 32 * (MPI_Offset)P;
    counts[1] = 4;
    /* hindexed: 1 int at r, 2 ints at P + 2r */
    int hblocks[2] = {1, 2};
    MPI_Aint hdispls[2] = {(MPI_Aint)rank * 4, (MPI_Aint)(P + 2 * rank) * 4};
    MPI_Type_create_hindexed(2, hblocks, hdispls, MPI_INT, &types[2]);
    disps[2] = region + sizes[0] + sizes[1];
    sizes[2] = 12 * (MPI_Offset)P;
    counts[2] = 3;
    /* Fortran-order 2P x 3 subarray, rows 2r..2r+1 */
    int fsizes[2] = {2 * P, 3}, fsubs[2] = {2, 3}, fstarts[2] = {2 * rank, 0};
    MPI_Type_create_subarray(2, fsizes, fsubs, fstarts, MPI_ORDER_FORTRAN, MPI_INT, &types[3]);
    disps[3] = region + sizes[0] + sizes[1] + sizes[2];
    sizes[3] = 24 * (MPI_Offset)P;
    counts[3] = 6;
    /* Pre-size the file: these views leave holes, and ROMIO's two-phase read-modify-write fills
     * holes past end of file with stale collective-buffer bytes (stor leaves zeros). Inside the
     * file both read the zeros back, so the files stay comparable byte for byte. */
    check_rc(MPI_File_set_size(fh, disps[3] + sizes[3]), "set_size before constructors");
    for (int v = 0; v < 4; ++v) {
      int out[8], in[8];
      for (int x = 0; x < counts[v]; ++x) out[x] = v * 100000 + rank * 1000 + x;
      MPI_Type_commit(&types[v]);
      check_rc(MPI_File_set_view(fh, disps[v], MPI_INT, types[v], "native", MPI_INFO_NULL), "set_view constructors");
      check_rc(MPI_File_write_at_all(fh, 0, out, counts[v], MPI_INT, MPI_STATUS_IGNORE), "write constructors");
      memset(in, 0, sizeof in);
      check_rc(MPI_File_read_at_all(fh, 0, in, counts[v], MPI_INT, MPI_STATUS_IGNORE), "read constructors");
      CHECK(memcmp(in, out, counts[v] * sizeof(int)) == 0, "filetype %d: data differs after read back", v);
      MPI_Type_free(&types[v]);
    }
    MPI_Type_free(&gap_struct);
    MPI_Type_free(&gap);
    region = disps[3] + sizes[3];
    check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "set_view bytes");
  }

  /* Sizes: exact after the writes; set_size grows (zeros) and shrinks. */
  const MPI_Offset data_end = region;
  MPI_Offset size = -1;
  check_rc(MPI_File_get_size(fh, &size), "get_size");
  CHECK(size == data_end, "size %lld, expected %lld", (long long)size, (long long)data_end);
  check_rc(MPI_File_set_size(fh, data_end + 100000), "set_size grow");
  check_rc(MPI_File_get_size(fh, &size), "get_size");
  CHECK(size == data_end + 100000, "size after grow %lld", (long long)size);
  check_rc(MPI_File_set_size(fh, data_end + 4096), "set_size shrink");
  check_rc(MPI_File_get_size(fh, &size), "get_size");
  CHECK(size == data_end + 4096, "size after shrink %lld", (long long)size);
  check_rc(MPI_File_sync(fh), "sync");
  check_rc(MPI_File_close(&fh), "close");
  CHECK(fh == MPI_FILE_NULL, "close did not reset the handle");

  /* Error paths: must return an error code, not crash. */
  MPI_File bad_fh;
  int rc = MPI_File_open(MPI_COMM_WORLD, bad, MPI_MODE_RDONLY, MPI_INFO_NULL, &bad_fh);
  CHECK(rc != MPI_SUCCESS, "opening '%s' succeeded", bad);
  if (rc != MPI_SUCCESS && rank == 0) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    printf("expected error opening '%s': %s\n", bad, msg);
  }
  char missing[4096];
  snprintf(missing, sizeof missing, "%s.missing", path);
  rc = MPI_File_open(MPI_COMM_WORLD, missing, MPI_MODE_RDONLY, MPI_INFO_NULL, &bad_fh);
  int error_class = MPI_SUCCESS;
  if (rc != MPI_SUCCESS) MPI_Error_class(rc, &error_class);
  CHECK(error_class == MPI_ERR_NO_SUCH_FILE, "opening a missing file: class %d, expected MPI_ERR_NO_SUCH_FILE", error_class);
  rc = MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_RDONLY | MPI_MODE_CREATE, MPI_INFO_NULL, &bad_fh);
  error_class = MPI_SUCCESS;
  if (rc != MPI_SUCCESS) MPI_Error_class(rc, &error_class);
  CHECK(error_class == MPI_ERR_AMODE, "RDONLY|CREATE: class %d, expected MPI_ERR_AMODE", error_class);

  /* Dump the whole file for the byte comparison. */
  if (rank == 0) {
    MPI_File in;
    check_rc(MPI_File_open(MPI_COMM_SELF, path, MPI_MODE_RDONLY, MPI_INFO_NULL, &in), "open for dump");
    MPI_Offset total = 0;
    check_rc(MPI_File_get_size(in, &total), "get_size for dump");
    char* all = malloc(total > 0 ? total : 1);
    MPI_Status st;
    check_rc(MPI_File_read_at(in, 0, all, (int)total, MPI_BYTE, &st), "read_at for dump");
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    CHECK(count == total, "dump read %d of %lld bytes", count, (long long)total);
    check_rc(MPI_File_close(&in), "close dump");
    FILE* out = fopen(dump, "wb");
    CHECK(out && fwrite(all, 1, total, out) == (size_t)total && fclose(out) == 0, "writing %s", dump);
    unsigned long long h = 1469598103934665603ULL; /* FNV-1a */
    for (MPI_Offset x = 0; x < total; ++x) h = (h ^ (unsigned char)all[x]) * 1099511628211ULL;
    printf("%s: %lld bytes, fnv1a %016llx\n", path, (long long)total, h);
    free(all);
  }

  int all_failures = 0;
  MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s\n", all_failures ? "FAILED" : "OK");
  MPI_Info_free(&info);
  MPI_Type_free(&memtype);
  MPI_Type_free(&filetype);
  MPI_Type_free(&block);
  MPI_Type_free(&records);
  MPI_Comm_free(&cart);
  free(step_buf[0]);
  free(step_buf[1]);
  free(back);
  free(ghosted);
  MPI_Finalize();
  return all_failures ? 1 : 0;
}
