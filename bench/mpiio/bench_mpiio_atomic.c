/* MPI-IO bench of atomic mode (MPI_File_set_atomicity(fh, 1)): every FILE in the same run, the
 * first one is the reference for the ratios (run_bench.sh gives ROMIO on a local file first, whose
 * atomic mode takes fcntl locks; stor takes byte-range locks through its lock API: OFD locks on
 * nvme://, the extent locks of the stor-mds on a lustre://HOST:PORT cluster).
 *
 * Each rank makes OPS independent write_at calls of XFER bytes; op k of rank r starts at
 * ((k + r) mod SLOTS) * XFER / 2, so every write overlaps half of its neighbours' and the ranks
 * contend for the same bytes. Reported: MiB/s written and writes per second (median over REPS
 * passes) in atomic mode, and the same writes without it (what the locks cost on that file);
 * after each atomic pass rank 0 checks that every half slot holds one writer's bytes.
 *
 *   mpiexec -n 4 bench_mpiio_atomic [-x XFER] [-n OPS] [-s SLOTS] [-i REPS] FILE...
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_mpiio_util.h"

static int rank, nprocs;

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  long long xfer = 256 << 10;
  int ops = 64, slots = 8, reps = 3, opt;
  while ((opt = getopt(argc, argv, "x:n:s:i:")) != -1) {
    if (opt == 'x') xfer = atoll(optarg);
    else if (opt == 'n') ops = atoi(optarg);
    else if (opt == 's') slots = atoi(optarg);
    else if (opt == 'i') reps = atoi(optarg);
    else MPI_Abort(MPI_COMM_WORLD, 2);
  }
  if (optind >= argc || xfer < 2 || xfer % 2 || xfer > (1LL << 28) || ops < 1 || slots < 2 || reps < 1 || reps > 64) {
    if (rank == 0) fprintf(stderr, "usage: %s [-x XFER (even)] [-n OPS] [-s SLOTS>=2] [-i REPS<=64] FILE...\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const int nfiles = argc - optind;
  char* buf = malloc(xfer);
  memset(buf, 'A' + rank % 26, xfer);
  const long long half = xfer / 2, span = (long long)(slots + 1) * half;
  char* back = malloc(span);
  double* bw = calloc(nfiles, sizeof *bw);
  for (int f = 0; f < nfiles; ++f) {
    const char* path = argv[optind + f];
    double t[64], plain[64];
    for (int pass = 0; pass < 2 * reps; ++pass) {
      const int atomic = pass % 2, rep = pass / 2;
      MPI_File fh;
      if (rank == 0) MPI_File_delete(path, MPI_INFO_NULL); /* may not exist */
      MPI_Barrier(MPI_COMM_WORLD);
      die_on(MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open", path);
      die_on(MPI_File_set_atomicity(fh, atomic), "set_atomicity", path);
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int k = 0; k < ops; ++k) {
        const MPI_Offset off = (MPI_Offset)((k + rank) % slots) * half;
        die_on(MPI_File_write_at(fh, off, buf, (int)xfer, MPI_BYTE, MPI_STATUS_IGNORE), "write_at", path);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      (atomic ? t : plain)[rep] = MPI_Wtime() - t0;
      if (rank == 0 && atomic) {
        /* Each write covers two half slots whole: in atomic mode no half slot mixes writers. */
        die_on(MPI_File_read_at(fh, 0, back, (int)span, MPI_BYTE, MPI_STATUS_IGNORE), "read_at", path);
        long long mixed = 0;
        for (long long h = 0; h < span / half; ++h)
          for (long long i = 1; i < half; ++i) mixed += back[h * half + i] != back[h * half];
        if (mixed) {
          fprintf(stderr, "%s: %lld bytes of half slots mixed writers in atomic mode\n", path, mixed);
          MPI_Abort(MPI_COMM_WORLD, 1);
        }
      }
      die_on(MPI_File_close(&fh), "close", path);
    }
    const double m = median(t, reps), mp = median(plain, reps);
    bw[f] = (double)xfer * ops * nprocs / 1048576.0 / m;
    if (rank == 0) {
      printf("%-50s atomic %8.1f MiB/s %7.0f writes/s (non-atomic %8.1f MiB/s)", path, bw[f], ops * nprocs / m,
             (double)xfer * ops * nprocs / 1048576.0 / mp);
      if (f > 0) printf("  atomic ratio vs first: %.2f", bw[f] / bw[0]);
      printf("\n");
    }
  }
  free(buf);
  free(back);
  free(bw);
  MPI_Finalize();
  return 0;
}
