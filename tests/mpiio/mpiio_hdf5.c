/* Parallel HDF5 end to end: an ordinary HDF5 program (H5Pset_fapl_mpio) on every rank writes a
 * contiguous and a chunked 2-D dataset of doubles, each once with collective and once with
 * independent transfers, one hyperslab per rank; reads them back (collectively, own block, and
 * independently, whole dataset) in the same open and after reopening read-only, and checks
 * every element. Rank 0 writes the datasets' checksums to SUMS, so the ROMIO and stor runs can be
 * compared on content; object timestamps are off, so the files themselves can be compared too.
 *
 *   mpiexec -n N mpiio_hdf5 FILE SUMS      (FILE may be a stor: name with libstor_mpiio preloaded)
 */
#include <hdf5.h>
#include <stdint.h>
#include <string.h>

#include "mpiio_check.h"

enum { kRowsPerRank = 13, kCols = 29 };

/* Element (i, j) of dataset d: a misplaced or foreign element is caught. */
static double value(int d, hsize_t i, hsize_t j) { return d * 1e6 + (double)i * 1000 + (double)j + 0.25; }

/* FNV-1a over the bytes of the whole dataset. */
static uint64_t fnv1a(const void* p, size_t n) {
  const unsigned char* b = p;
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t k = 0; k < n; ++k) h = (h ^ b[k]) * 0x100000001b3ULL;
  return h;
}

#define HCHECK(expr) CHECK((expr) >= 0, "%s", #expr)

struct ds {
  const char* name;
  int chunked;
  H5FD_mpio_xfer_t xfer;
};
static const struct ds kSets[] = {
    {"contig_collective", 0, H5FD_MPIO_COLLECTIVE},
    {"contig_independent", 0, H5FD_MPIO_INDEPENDENT},
    {"chunked_collective", 1, H5FD_MPIO_COLLECTIVE},
    {"chunked_independent", 1, H5FD_MPIO_INDEPENDENT},
};
enum { kNumSets = sizeof kSets / sizeof kSets[0] };

/* Owner of element (i, j): the rank of its row block for column pairs 0-1, 4-5, ..., the rank
 * before it for pairs 2-3, 6-7, ...: each rank's selection is noncontiguous in the file and
 * interleaves with its neighbours'. */
static int owner(hsize_t i, hsize_t j, int nprocs) {
  int rb = (int)(i / kRowsPerRank);
  return (j / 2) % 2 ? (rb + nprocs - 1) % nprocs : rb;
}

/* This rank's selection in a (nprocs * kRowsPerRank) x kCols space: the union of its blocks. */
static hid_t own_selection(hid_t space, int nprocs) {
  hid_t s = H5Scopy(space);
  H5Sselect_none(s);
  for (int rb = 0; rb < nprocs; ++rb)
    for (hsize_t c = 0; c < kCols; c += 2) {
      if (owner((hsize_t)rb * kRowsPerRank, c, nprocs) != rank) continue;
      hsize_t start[2] = {(hsize_t)rb * kRowsPerRank, c}, count[2] = {1, 1};
      hsize_t block[2] = {kRowsPerRank, c + 2 <= kCols ? 2 : 1};
      HCHECK(H5Sselect_hyperslab(s, H5S_SELECT_OR, start, NULL, count, block));
    }
  return s;
}

/* Counts elements of buf (the whole dataset d) that differ from the expected value: every element
 * when all != 0, else this rank's own elements, the others must still be zero. */
static long check_buf(const double* buf, int d, int nprocs, int all) {
  long wrong = 0;
  for (hsize_t i = 0; i < (hsize_t)nprocs * kRowsPerRank; ++i)
    for (hsize_t j = 0; j < kCols; ++j) {
      double want = all || owner(i, j, nprocs) == rank ? value(d, i, j) : 0.0;
      if (memcmp(&buf[i * kCols + j], &want, sizeof want)) ++wrong;
    }
  return wrong;
}

/* Reads dataset d back: own selection collectively (other elements untouched), then the whole
 * dataset independently; checks both; returns the checksum of the whole dataset. */
static uint64_t read_and_check(hid_t file, int d, int nprocs, double* buf, const char* when) {
  const size_t n = (size_t)nprocs * kRowsPerRank * kCols;
  hid_t dset = H5Dopen2(file, kSets[d].name, H5P_DEFAULT);
  HCHECK(dset);
  hid_t space = H5Dget_space(dset), sel = own_selection(space, nprocs);
  hid_t coll = H5Pcreate(H5P_DATASET_XFER), ind = H5Pcreate(H5P_DATASET_XFER);
  HCHECK(H5Pset_dxpl_mpio(coll, H5FD_MPIO_COLLECTIVE));
  HCHECK(H5Pset_dxpl_mpio(ind, H5FD_MPIO_INDEPENDENT));
  memset(buf, 0, n * sizeof *buf);
  HCHECK(H5Dread(dset, H5T_NATIVE_DOUBLE, sel, sel, coll, buf));
  long wrong = check_buf(buf, d, nprocs, 0);
  CHECK(wrong == 0, "%s %s: collective read of own block: %ld elements wrong", when, kSets[d].name, wrong);
  memset(buf, 0, n * sizeof *buf);
  HCHECK(H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, ind, buf));
  wrong = check_buf(buf, d, nprocs, 1);
  CHECK(wrong == 0, "%s %s: independent read of the whole dataset: %ld elements wrong", when, kSets[d].name, wrong);
  H5Pclose(coll), H5Pclose(ind), H5Sclose(sel), H5Sclose(space);
  HCHECK(H5Dclose(dset));
  return fnv1a(buf, n * sizeof *buf);
}

int main(int argc, char** argv) {
  int nprocs;
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc != 3) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE SUMS\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char *path = argv[1], *sums_path = argv[2];
  const hsize_t dims[2] = {(hsize_t)nprocs * kRowsPerRank, kCols};
  const size_t n = (size_t)dims[0] * kCols;
  double* buf = malloc(n * sizeof *buf);
  uint64_t sums[kNumSets][2];

  /* Small two-phase buffer: collective transfers take several rounds. */
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "cb_buffer_size", "4096");
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  HCHECK(H5Pset_fapl_mpio(fapl, MPI_COMM_WORLD, info));
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  HCHECK(file);
  hid_t space = H5Screate_simple(2, dims, NULL);
  hid_t sel = own_selection(space, nprocs);
  for (int d = 0; d < kNumSets; ++d) {
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* No modification times in object headers: the file is then the same on every run. */
    HCHECK(H5Pset_obj_track_times(dcpl, 0));
    if (kSets[d].chunked) {
      const hsize_t chunk[2] = {5, 7}; /* straddles the ranks' row blocks and column pairs */
      HCHECK(H5Pset_chunk(dcpl, 2, chunk));
    }
    hid_t dset = H5Dcreate2(file, kSets[d].name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    HCHECK(dset);
    for (hsize_t i = 0; i < dims[0]; ++i)
      for (hsize_t j = 0; j < kCols; ++j) buf[i * kCols + j] = owner(i, j, nprocs) == rank ? value(d, i, j) : -1.0;
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    HCHECK(H5Pset_dxpl_mpio(dxpl, kSets[d].xfer));
    HCHECK(H5Dwrite(dset, H5T_NATIVE_DOUBLE, sel, sel, dxpl, buf));
    H5Pclose(dxpl), H5Pclose(dcpl);
    HCHECK(H5Dclose(dset));
  }
  HCHECK(H5Fflush(file, H5F_SCOPE_GLOBAL));
  MPI_Barrier(MPI_COMM_WORLD); /* independent writes of the other ranks are in the file */
  for (int d = 0; d < kNumSets; ++d) sums[d][0] = read_and_check(file, d, nprocs, buf, "same open");
  HCHECK(H5Fclose(file));

  file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  HCHECK(file);
  for (int d = 0; d < kNumSets; ++d) {
    sums[d][1] = read_and_check(file, d, nprocs, buf, "reopened");
    CHECK(sums[d][0] == sums[d][1], "%s: checksum changed after reopen", kSets[d].name);
  }
  HCHECK(H5Fclose(file));

  if (rank == 0) {
    FILE* out = fopen(sums_path, "w");
    CHECK(out != NULL, "open %s", sums_path);
    if (out) {
      for (int d = 0; d < kNumSets; ++d)
        fprintf(out, "%s %llux%d %016llx\n", kSets[d].name, (unsigned long long)dims[0], kCols,
                (unsigned long long)sums[d][1]);
      CHECK(fclose(out) == 0, "close %s", sums_path);
    }
  }
  H5Sclose(sel), H5Sclose(space), H5Pclose(fapl);
  MPI_Info_free(&info);
  free(buf);
  int all_failures = 0;
  MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s: %s\n", path, all_failures ? "FAILED" : "OK");
  MPI_Finalize();
  return all_failures ? 1 : 0;
}
