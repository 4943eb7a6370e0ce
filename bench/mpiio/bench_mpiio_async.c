/* MPI-IO bench of nonblocking I/O and the shared file pointer, every FILE in the same run (the
 * first FILE is the reference for the ratios; run_bench.sh gives ROMIO on a local file first):
 *
 * overlap:  each rank writes BYTES at its own offset and computes for about as long as the
 *           write takes (calibrated once on the first FILE, the same work for every FILE):
 *           blocking = write_at, then compute; nonblocking = iwrite_at, compute, MPI_Wait.
 *           overlap ratio = nonblocking / blocking time: 1.0 means nothing overlapped, 0.5 is
 *           perfect overlap of equal parts.
 * ordered:  every rank appends RECORDS records of RECSIZE bytes with MPI_File_write_ordered
 *           (shared file pointer), MiB/s.
 *
 *   mpiexec -n 4 bench_mpiio_async [-w BYTES] [-r RECORDS] [-z RECSIZE] [-i REPS] FILE...
 */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_mpiio_util.h"

static int rank, nprocs;
static volatile double sink;

/* One unit of computation that touches no memory the I/O uses. */
static void compute(long units) {
  double acc = 0;
  for (long u = 0; u < units; ++u)
    for (int k = 0; k < 1000; ++k) acc += (double)((k ^ u) & 7) * 0.5;
  sink = acc;
}

static MPI_File open_fresh(const char* path, int amode) {
  MPI_File fh;
  if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL); /* may not exist */
  MPI_Barrier(MPI_COMM_WORLD);
  die_on(MPI_File_open(MPI_COMM_WORLD, path, amode, MPI_INFO_NULL, &fh), "open", path);
  return fh;
}

/* Seconds for one write (+ compute) of `bytes` per rank; nonblocking overlaps the two. */
static double write_and_compute(const char* path, char* buf, long long bytes, long units, int nonblocking) {
  MPI_File fh = open_fresh(path, MPI_MODE_CREATE | MPI_MODE_WRONLY);
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = MPI_Wtime();
  MPI_Offset off = (MPI_Offset)rank * bytes;
  if (nonblocking) {
    MPI_Request req;
    die_on(MPI_File_iwrite_at(fh, off, buf, (int)bytes, MPI_BYTE, &req), "iwrite_at", path);
    compute(units);
    die_on(MPI_Wait(&req, MPI_STATUS_IGNORE), "wait", path);
  } else {
    die_on(MPI_File_write_at(fh, off, buf, (int)bytes, MPI_BYTE, MPI_STATUS_IGNORE), "write_at", path);
    compute(units);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  double t = MPI_Wtime() - t0;
  die_on(MPI_File_close(&fh), "close", path);
  return t;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  long long bytes = 16 << 20, recsize = 64 << 10;
  int records = 64, reps = 3, opt;
  while ((opt = getopt(argc, argv, "w:r:z:i:")) != -1) {
    if (opt == 'w') bytes = atoll(optarg);
    else if (opt == 'r') records = atoi(optarg);
    else if (opt == 'z') recsize = atoll(optarg);
    else if (opt == 'i') reps = atoi(optarg);
    else MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (optind >= argc || bytes <= 0 || bytes > (1LL << 30) || recsize <= 0 || recsize > (1LL << 30) || records < 1 ||
      reps < 1 || reps > 64) {
    if (rank == 0) fprintf(stderr, "usage: %s [-w BYTES] [-r RECORDS] [-z RECSIZE] [-i REPS<=64] FILE...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int nfiles = argc - optind;
  char* buf = malloc((size_t)bytes);
  char* rec = malloc((size_t)recsize);
  for (long long i = 0; i < bytes; ++i) buf[i] = (char)(i * 131 + rank);
  memset(rec, 'a' + rank % 26, (size_t)recsize);

  /* Calibrate: compute units that take about as long as the blocking write on the first FILE. */
  const char* first = argv[optind];
  double tw = write_and_compute(first, buf, bytes, 0, 0);
  double t0 = MPI_Wtime();
  compute(1000);
  double per_unit = (MPI_Wtime() - t0) / 1000;
  long units = (long)(tw / per_unit);
  MPI_Bcast(&units, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  if (rank == 0)
    printf("bench_mpiio_async: %d ranks; overlap: %.1f MiB per rank, compute %ld units (~%.0f ms); ordered: %d x %lld B "
           "per rank; median of %d\n",
           nprocs, bytes / 1048576.0, units, units * per_unit * 1e3, records, recsize, reps);

  double ordered_bw[16];
  for (int f = 0; f < nfiles && f < 16; ++f) {
    const char* path = argv[optind + f];
    double tb[64], tn[64], to[64];
    for (int r = 0; r < reps; ++r) {
      tb[r] = write_and_compute(path, buf, bytes, units, 0);
      tn[r] = write_and_compute(path, buf, bytes, units, 1);
      MPI_File fh = open_fresh(path, MPI_MODE_CREATE | MPI_MODE_WRONLY);
      MPI_Barrier(MPI_COMM_WORLD);
      double s = MPI_Wtime();
      for (int k = 0; k < records; ++k)
        die_on(MPI_File_write_ordered(fh, rec, (int)recsize, MPI_BYTE, MPI_STATUS_IGNORE), "write_ordered", path);
      MPI_Barrier(MPI_COMM_WORLD);
      to[r] = MPI_Wtime() - s;
      MPI_Offset size = 0;
      MPI_File_get_size(fh, &size);
      if (size != (MPI_Offset)records * recsize * nprocs) {
        if (rank == 0) fprintf(stderr, "%s: ordered appends left %lld bytes\n", path, (long long)size);
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      die_on(MPI_File_close(&fh), "close", path);
    }
    double b = median(tb, reps), n = median(tn, reps);
    ordered_bw[f] = (double)records * recsize * nprocs / 1048576.0 / median(to, reps);
    if (rank == 0) {
      printf("%-50s blocking %7.1f ms  nonblocking %7.1f ms  overlap ratio %.2f   write_ordered %8.1f MiB/s", path,
             b * 1e3, n * 1e3, n / b, ordered_bw[f]);
      if (f > 0) printf("  ratio vs %s: %.2f", first, ordered_bw[f] / ordered_bw[0]);
      printf("\n");
    }
    if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL);
  }
  free(buf);
  free(rec);
  MPI_Finalize();
  return 0;
}
