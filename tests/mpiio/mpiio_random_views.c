/* Random file views, run through ROMIO and through libstor_mpiio and compared byte for byte:
 * each round cuts a region into blocks of random lengths dealt to random ranks, every rank
 * builds an hindexed filetype of its blocks (resized to the region, so copies tile), a random
 * displacement, and a gapped vector memory type, then writes two tiles collectively (at an
 * explicit offset, or through the individual file pointer after MPI_File_seek), reads them back
 * collectively and independently, and checks the data.
 *
 *   mpiexec -n 4 mpiio_random_views FILE DUMP [SEED] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { ROUNDS = 24, REGION_INTS = 600, MAX_BLOCKS = 64 };

static int nprocs;

/* Same sequence on every rank. */
static unsigned long long rng_state;
static unsigned next_rand(void) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (unsigned)(rng_state >> 33);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 3) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE DUMP [SEED]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  rng_state = argc > 3 ? strtoull(argv[3], NULL, 10) : 12345;
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  if (failures) MPI_Abort(MPI_COMM_WORLD, 1);

  MPI_Offset base = 0;
  for (int round = 0; round < ROUNDS; ++round) {
    /* Blocks of 1..40 ints tiling the region, each owned by a random rank. */
    int block_len[MAX_BLOCKS * 2], block_start[MAX_BLOCKS * 2], owner[MAX_BLOCKS * 2], nblocks = 0, pos = 0;
    while (pos < REGION_INTS && nblocks < MAX_BLOCKS) {
      int len = 1 + (int)(next_rand() % 40);
      if (pos + len > REGION_INTS) len = REGION_INTS - pos;
      block_start[nblocks] = pos;
      block_len[nblocks] = len;
      owner[nblocks] = (int)(next_rand() % nprocs);
      pos += len;
      ++nblocks;
    }
    const int region = pos;                            /* ints covered this round */
    const int head_gap = (int)(next_rand() % 5);       /* displacement in ints past base */
    const int use_pointer = (int)(next_rand() % 2);    /* seek + write_all instead of write_at_all */
    const int mem_stride = 1 + (int)(next_rand() % 3); /* memory: every mem_stride-th int */

    int mine_len[MAX_BLOCKS], n_mine = 0, my_ints = 0;
    MPI_Aint mine_displ[MAX_BLOCKS];
    for (int b = 0; b < nblocks; ++b)
      if (owner[b] == rank) {
        mine_len[n_mine] = block_len[b];
        mine_displ[n_mine] = (MPI_Aint)block_start[b] * sizeof(int);
        my_ints += block_len[b];
        ++n_mine;
      }
    MPI_Datatype blocks, filetype, memtype;
    MPI_Type_create_hindexed(n_mine, mine_len, mine_displ, MPI_INT, &blocks);
    MPI_Type_create_resized(blocks, 0, (MPI_Aint)region * sizeof(int), &filetype);
    MPI_Type_commit(&filetype);
    MPI_Type_vector(2 * my_ints, 1, mem_stride, MPI_INT, &memtype);
    MPI_Type_commit(&memtype);

    const int n_mem = 2 * my_ints * mem_stride + 1;
    int* mem = malloc(sizeof(int) * n_mem);
    int* back = malloc(sizeof(int) * n_mem);
    for (int x = 0; x < n_mem; ++x) /* the memory type covers every mem_stride-th int of the first n_mem - 1 */
      mem[x] = (x % mem_stride == 0 && x < n_mem - 1) ? round * 1000000 + rank * 10000 + x : -1;

    const MPI_Offset disp = base + (MPI_Offset)head_gap * sizeof(int);
    /* Pre-size: the views leave no holes, but ranks without blocks make none past EOF either way. */
    check_rc(MPI_File_set_size(fh, disp + 2 * (MPI_Offset)region * sizeof(int)), "set_size");
    check_rc(MPI_File_set_view(fh, disp, MPI_INT, filetype, "native", MPI_INFO_NULL), "set_view");
    if (use_pointer) {
      check_rc(MPI_File_seek(fh, 0, MPI_SEEK_SET), "seek");
      check_rc(MPI_File_write_all(fh, mem, my_ints ? 1 : 0, memtype, MPI_STATUS_IGNORE), "write_all");
      MPI_Offset where = -1;
      check_rc(MPI_File_get_position(fh, &where), "get_position");
      CHECK(where == 2 * my_ints, "position %lld after write_all, expected %d", (long long)where, 2 * my_ints);
    } else {
      check_rc(MPI_File_write_at_all(fh, 0, mem, my_ints ? 1 : 0, memtype, MPI_STATUS_IGNORE), "write_at_all");
    }

    for (int x = 0; x < n_mem; ++x) back[x] = -1;
    check_rc(MPI_File_read_at_all(fh, 0, back, my_ints ? 1 : 0, memtype, MPI_STATUS_IGNORE), "read_at_all");
    CHECK(memcmp(back, mem, sizeof(int) * n_mem) == 0, "round %d: read_at_all differs", round);
    if (my_ints > 0) {
      /* Independent: the second tile's first int, through the individual pointer. */
      int one = -2;
      check_rc(MPI_File_seek(fh, my_ints, MPI_SEEK_SET), "seek");
      check_rc(MPI_File_read(fh, &one, 1, MPI_INT, MPI_STATUS_IGNORE), "read");
      CHECK(one == mem[my_ints * mem_stride], "round %d: read %d, expected %d", round, one, mem[my_ints * mem_stride]);
    }
    base = disp + 2 * (MPI_Offset)region * sizeof(int);
    free(mem);
    free(back);
    MPI_Type_free(&blocks);
    MPI_Type_free(&filetype);
    MPI_Type_free(&memtype);
  }
  check_rc(MPI_File_close(&fh), "close");

  return dump_and_finish(argv[1], argv[2]);
}
