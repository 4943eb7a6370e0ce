/* The Fortran-77 datatype combiners MPI_COMBINER_HVECTOR_INTEGER, HINDEXED_INTEGER and
 * STRUCT_INTEGER in stor file views and memory types. MPICH 4.0.2 never reports them (its
 * Fortran MPI_TYPE_HVECTOR/HINDEXED/STRUCT give the address-sized combiners), an MPI that
 * implements the MPI-1 Fortran constructors as the standard describes does: their byte
 * displacements are INTEGERs, reported in the integer array. This program wraps
 * PMPI_Type_get_envelope_c/get_contents_c (linked -rdynamic, so libstor_mpiio's calls bind here)
 * and reports its hvector/hindexed/struct types that way: same type map, the *_INTEGER layout.
 * ROMIO sees the real types; the run script compares the files.
 *   mpiio_f77_combiners FILE UNUSED
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* mpi.h declares the PMPI_ functions hidden: ours must say they are exported. */
#define EXPORT __attribute__((visibility("default")))

static MPI_Datatype integer_form[8];
static int n_integer_form, hits;

static int reported_as_integer(MPI_Datatype t) {
  for (int i = 0; i < n_integer_form; ++i)
    if (integer_form[i] == t) return 1;
  return 0;
}

typedef int (*envelope_fn)(MPI_Datatype, MPI_Count*, MPI_Count*, MPI_Count*, MPI_Count*, int*);
typedef int (*contents_fn)(MPI_Datatype, MPI_Count, MPI_Count, MPI_Count, MPI_Count, int*, MPI_Aint*, MPI_Count*,
                           MPI_Datatype*);

static envelope_fn real_envelope(void) {
  static envelope_fn f;
  if (!f) f = (envelope_fn)dlsym(RTLD_NEXT, "PMPI_Type_get_envelope_c");
  return f;
}

EXPORT int PMPI_Type_get_envelope_c(MPI_Datatype t, MPI_Count* ni, MPI_Count* na, MPI_Count* nc, MPI_Count* nd,
                             int* combiner) {
  int rc = real_envelope()(t, ni, na, nc, nd, combiner);
  if (rc != MPI_SUCCESS || !reported_as_integer(t)) return rc;
  ++hits;
  /* The classic layout {ints..., addrs...} becomes ints followed by the addresses as integers. */
  *ni += *na;
  *na = 0;
  if (*combiner == MPI_COMBINER_HVECTOR) *combiner = MPI_COMBINER_HVECTOR_INTEGER;
  else if (*combiner == MPI_COMBINER_HINDEXED) *combiner = MPI_COMBINER_HINDEXED_INTEGER;
  else if (*combiner == MPI_COMBINER_STRUCT) *combiner = MPI_COMBINER_STRUCT_INTEGER;
  return rc;
}

EXPORT int PMPI_Type_get_contents_c(MPI_Datatype t, MPI_Count max_ints, MPI_Count max_addrs, MPI_Count max_counts,
                             MPI_Count max_types, int* ints, MPI_Aint* addrs, MPI_Count* counts, MPI_Datatype* types) {
  static contents_fn real;
  if (!real) real = (contents_fn)dlsym(RTLD_NEXT, "PMPI_Type_get_contents_c");
  if (!reported_as_integer(t)) return real(t, max_ints, max_addrs, max_counts, max_types, ints, addrs, counts, types);
  MPI_Count ni, na, nc, nd;
  int combiner;
  real_envelope()(t, &ni, &na, &nc, &nd, &combiner);
  MPI_Aint a[16];
  if (ni + na > max_ints || na > 16) return MPI_ERR_ARG;
  int rc = real(t, ni, na, nc, nd, ints, a, counts, types);
  for (MPI_Count i = 0; i < na; ++i) ints[ni + i] = (int)a[i];
  return rc;
}

static void check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, text, &len);
  fprintf(stderr, "FAILED %s: %s\n", what, text);
  MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, nprocs;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 2) MPI_Abort(MPI_COMM_WORLD, 2);
  const int is_stor = strncmp(argv[1], "stor:", 5) == 0;

  /* hv: 3 blocks of 2 ints every 20 bytes (extent 48). st: 2 ints at 0, hv at 8, 2 doubles at
   * 64: 48 bytes of data, extent 80. hi (memory): 1 int at 0 and 2 ints at 12 (12 bytes, extent 20). */
  MPI_Datatype hv, st, hi, ft;
  MPI_Type_create_hvector(3, 2, 20, MPI_INT, &hv);
  int blens[3] = {2, 1, 2};
  MPI_Aint disps[3] = {0, 8, 64};
  MPI_Datatype types[3] = {MPI_INT, hv, MPI_DOUBLE};
  MPI_Type_create_struct(3, blens, disps, types, &st);
  int hblens[2] = {1, 2};
  MPI_Aint hdisps[2] = {0, 12};
  MPI_Type_create_hindexed(2, hblens, hdisps, MPI_INT, &hi);
  MPI_Type_commit(&hi);
  MPI_Type_create_resized(st, 0, (MPI_Aint)80 * nprocs, &ft);
  MPI_Type_commit(&ft);
  integer_form[n_integer_form++] = hv;
  integer_form[n_integer_form++] = st;
  integer_form[n_integer_form++] = hi;

  MPI_File fh;
  check(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  MPI_File_set_errhandler(fh, MPI_ERRORS_RETURN);
  /* Holes stay inside the file (ROMIO's two-phase write fills holes past the end of file with
   * whatever its buffer held). */
  check(MPI_File_set_size(fh, (MPI_Offset)160 * nprocs), "set_size");
  check(MPI_File_set_view(fh, (MPI_Offset)80 * rank, MPI_BYTE, ft, "native", MPI_INFO_NULL), "set_view");
  /* Two filetype copies: 96 bytes, 8 elements of hi from a 160-byte buffer. */
  int mem[40], back[40];
  for (int i = 0; i < 40; ++i) mem[i] = rank * 1000 + i + 1;
  check(MPI_File_write_at_all(fh, 0, mem, 8, hi, MPI_STATUS_IGNORE), "write_at_all");
  memset(back, 0, sizeof back);
  check(MPI_File_read_at_all(fh, 0, back, 8, hi, MPI_STATUS_IGNORE), "read_at_all");
  for (int e = 0; e < 8; ++e)
    for (int k = 0; k < 5; ++k) {
      int i = e * 5 + k;
      int in_type = k == 0 || k == 3 || k == 4;
      if (back[i] != (in_type ? mem[i] : 0)) {
        fprintf(stderr, "rank %d: element %d int %d: %d, expected %d\n", rank, e, k, back[i], in_type ? mem[i] : 0);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
    }
  MPI_Offset off = 0;
  check(MPI_File_get_byte_offset(fh, 20, &off), "get_byte_offset");
  /* Stream byte 20 is the 5th byte of hv's second block (at 8 + 20): file byte 80r + 32. */
  if (off != (MPI_Offset)80 * rank + 32) {
    fprintf(stderr, "rank %d: get_byte_offset %lld\n", rank, (long long)off);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  check(MPI_File_close(&fh), "close");
  int all_hits = 0;
  MPI_Allreduce(&hits, &all_hits, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  /* Through stor the *_INTEGER forms must have been what it flattened; ROMIO does not ask. */
  if (is_stor && all_hits == 0) {
    if (rank == 0) fprintf(stderr, "FAILED: libstor_mpiio never saw the *_INTEGER combiners\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  MPI_Type_free(&hv);
  MPI_Type_free(&st);
  MPI_Type_free(&hi);
  MPI_Type_free(&ft);
  if (rank == 0) printf("mpiio_f77_combiners: OK (%d ranks, %d *_INTEGER envelopes)\n", nprocs, all_hits);
  MPI_Finalize();
  return 0;
}
