/* Random nested datatypes as file views and memory types, run through ROMIO and through
 * libstor_mpiio and compared byte for byte. Each round builds one random type T (the same on
 * every rank) from every constructor: contiguous, vector, hvector, indexed, hindexed,
 * indexed_block, hindexed_block, struct, subarray (C and Fortran order), darray (block, cyclic,
 * cyclic(k), none; C and Fortran order), resized, dup, each in its classic or MPI-4 large-count
 * (_c) form, nested up to three deep; I/O through the classic or the large-count (_c) calls.
 * The filetype is either T placed at rank * extent(T) and
 * resized to nprocs copies (ranks interleave copies of T), or a darray over all ranks whose
 * element is T. Memory type: T itself, or bytes. Written collectively or independently, read
 * back both ways and checked. get_byte_offset and get_type_extent values go to LOG, which must
 * also be identical between the two runs.
 *
 *   mpiexec -n 3|4 mpiio_random_types FILE DUMP LOG [SEED [classic]] */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { ROUNDS = 28, MAX_TYPE_BYTES = 6000 };

static int nprocs;

/* Same sequence on every rank. */
static unsigned long long rng_state;
static unsigned next_rand(void) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return (unsigned)(rng_state >> 33);
}
static int rnd(int n) { return (int)(next_rand() % (unsigned)n); }

/* Whether to use a large-count (_c) constructor: drawn in every run, so both runs build the same
 * type maps, but only taken with large counts on ("classic" turns them off for ROMIO: MPICH
 * 4.0.2's ROMIO aborts on _c types, its flattening calls MPI_Type_get_envelope). */
static int allow_large = 1;
static int use_c(void) { return rnd(2) && allow_large; }

static MPI_Count type_size(MPI_Datatype t) {
  MPI_Count s = 0;
  MPI_Type_size_c(t, &s);
  return s;
}
static MPI_Count type_extent(MPI_Datatype t) {
  MPI_Count lb = 0, ext = 0;
  MPI_Type_get_extent_c(t, &lb, &ext);
  return ext;
}

/* Every generated type has lb 0 and its data inside [0, extent), with the type map at increasing
 * offsets: copies at multiples of the extent never overlap, as file views need. A type with a
 * different lb is resized to lb 0 (and sometimes padded). The caller owns the result. */
static MPI_Datatype normalize(MPI_Datatype t) {
  MPI_Count lb = 0, ext = 0, tlb = 0, text = 0;
  MPI_Type_get_extent_c(t, &lb, &ext);
  MPI_Type_get_true_extent_c(t, &tlb, &text);
  MPI_Count ub = lb + ext > tlb + text ? lb + ext : tlb + text;
  int pad = rnd(3) == 0 ? 1 + rnd(8) : 0;
  if (lb == 0 && pad == 0) return t;
  MPI_Datatype r;
  if (use_c()) MPI_Type_create_resized_c(t, 0, ub + pad, &r);
  else MPI_Type_create_resized(t, 0, (MPI_Aint)(ub + pad), &r);
  MPI_Type_free(&t);
  return r;
}

static MPI_Datatype leaf(void) {
  static const MPI_Datatype leaves[] = {MPI_INT, MPI_DOUBLE, MPI_CHAR, MPI_SHORT, MPI_BYTE};
  MPI_Datatype t;
  MPI_Type_dup(leaves[rnd(5)], &t); /* dup: a derived handle we may free like the others */
  return t;
}

/* Fills a process grid of ndims dimensions whose product is p. */
static void grid(int p, int ndims, int* psizes) {
  for (int d = 0; d < ndims; ++d) psizes[d] = 1;
  int d = rnd(ndims);
  psizes[d] = p; /* p is 1..4: one dimension takes it, or 4 splits as 2 x 2 */
  if (p == 4 && ndims > 1 && rnd(2)) {
    psizes[d] = 2;
    psizes[(d + 1) % ndims] = 2;
  }
}

/* A darray of `old` for process `prank` of `psize`; sizes kept small. */
static MPI_Datatype darray(int psize, int prank, MPI_Datatype old, int max_elems) {
  int ndims = 1 + rnd(3), psizes[3], distribs[3], dargs[3];
  MPI_Count gsizes[3];
  int gsizes_i[3];
  grid(psize, ndims, psizes);
  int per_dim = ndims == 1 ? max_elems : ndims == 2 ? 12 : 5;
  for (int d = 0; d < ndims; ++d) {
    gsizes[d] = gsizes_i[d] = 1 + rnd(per_dim);
    int kind = rnd(4);
    if (psizes[d] == 1 && kind == 3) {
      distribs[d] = MPI_DISTRIBUTE_NONE;
      dargs[d] = MPI_DISTRIBUTE_DFLT_DARG;
    } else if (kind == 0) {
      distribs[d] = MPI_DISTRIBUTE_BLOCK;
      dargs[d] = MPI_DISTRIBUTE_DFLT_DARG;
    } else if (kind == 1) { /* block with an explicit size: at least ceil(g / p) */
      distribs[d] = MPI_DISTRIBUTE_BLOCK;
      dargs[d] = (gsizes_i[d] + psizes[d] - 1) / psizes[d] + rnd(3);
    } else {
      distribs[d] = MPI_DISTRIBUTE_CYCLIC;
      dargs[d] = rnd(2) ? MPI_DISTRIBUTE_DFLT_DARG : 1 + rnd(3);
    }
  }
  int order = rnd(2) ? MPI_ORDER_C : MPI_ORDER_FORTRAN;
  MPI_Datatype t;
  if (use_c()) MPI_Type_create_darray_c(psize, prank, ndims, gsizes, distribs, dargs, psizes, order, old, &t);
  else MPI_Type_create_darray(psize, prank, ndims, gsizes_i, distribs, dargs, psizes, order, old, &t);
  return t;
}

static MPI_Datatype random_type(int depth);

/* One constructor applied to a random inner type. */
static MPI_Datatype compose(int depth) {
  MPI_Datatype in = random_type(depth + 1), t;
  const MPI_Count ext = type_extent(in);
  const int large = use_c();
  switch (rnd(11)) {
    case 0: {
      int n = 1 + rnd(4);
      if (large) MPI_Type_contiguous_c(n, in, &t);
      else MPI_Type_contiguous(n, in, &t);
      break;
    }
    case 1: {
      int count = 1 + rnd(4), bl = 1 + rnd(3), stride = bl + rnd(3);
      if (large) MPI_Type_vector_c(count, bl, stride, in, &t);
      else MPI_Type_vector(count, bl, stride, in, &t);
      break;
    }
    case 2: {
      int count = 1 + rnd(4), bl = 1 + rnd(3);
      MPI_Count stride = bl * ext + rnd(9);
      if (large) MPI_Type_create_hvector_c(count, bl, stride, in, &t);
      else MPI_Type_create_hvector(count, bl, (MPI_Aint)stride, in, &t);
      break;
    }
    case 3:
    case 4: { /* indexed / hindexed, increasing and disjoint */
      int n = 1 + rnd(4), bl[4], d[4];
      MPI_Count blc[4], dc[4];
      MPI_Aint da[4];
      int pos = rnd(3);
      for (int i = 0; i < n; ++i) {
        bl[i] = 1 + rnd(3); /* no zero-length blocks: ROMIO counts their displacement in its monotonicity check */
        d[i] = pos;
        pos += bl[i] + rnd(3);
        blc[i] = bl[i];
        dc[i] = d[i];
        da[i] = (MPI_Aint)d[i] * (MPI_Aint)ext;
      }
      if (rnd(2)) { /* indexed (element displacements) */
        if (large) MPI_Type_indexed_c(n, blc, dc, in, &t);
        else MPI_Type_indexed(n, bl, d, in, &t);
      } else {
        for (int i = 0; i < n; ++i) dc[i] = da[i];
        if (large) MPI_Type_create_hindexed_c(n, blc, dc, in, &t);
        else MPI_Type_create_hindexed(n, bl, da, in, &t);
      }
      break;
    }
    case 5: { /* indexed_block / hindexed_block */
      int n = 1 + rnd(4), bl = 1 + rnd(3), d[4];
      MPI_Count dc[4];
      MPI_Aint da[4];
      int pos = rnd(3);
      for (int i = 0; i < n; ++i) {
        d[i] = pos;
        pos += bl + rnd(3);
        dc[i] = d[i];
        da[i] = (MPI_Aint)d[i] * (MPI_Aint)ext;
      }
      if (rnd(2)) {
        if (large) MPI_Type_create_indexed_block_c(n, bl, dc, in, &t);
        else MPI_Type_create_indexed_block(n, bl, d, in, &t);
      } else {
        for (int i = 0; i < n; ++i) dc[i] = da[i];
        if (large) MPI_Type_create_hindexed_block_c(n, bl, dc, in, &t);
        else MPI_Type_create_hindexed_block(n, bl, da, in, &t);
      }
      break;
    }
    case 6: { /* struct of the inner type and a second random one */
      MPI_Datatype second = depth + 1 < 3 ? random_type(depth + 1) : leaf();
      MPI_Datatype types[2] = {in, second};
      int bl[2] = {1 + rnd(2), 1 + rnd(2)};
      MPI_Count blc[2] = {bl[0], bl[1]}, dc[2];
      MPI_Aint da[2];
      da[0] = rnd(5);
      da[1] = da[0] + bl[0] * (MPI_Aint)ext + rnd(5);
      dc[0] = da[0];
      dc[1] = da[1];
      if (large) MPI_Type_create_struct_c(2, blc, dc, types, &t);
      else MPI_Type_create_struct(2, bl, da, types, &t);
      MPI_Type_free(&second);
      break;
    }
    case 7: { /* subarray */
      int ndims = 1 + rnd(3), sizes[3], subs[3], starts[3];
      MPI_Count sc[3], subc[3], stc[3];
      for (int d = 0; d < ndims; ++d) {
        sizes[d] = 1 + rnd(ndims == 1 ? 10 : 5);
        subs[d] = 1 + rnd(sizes[d]);
        starts[d] = rnd(sizes[d] - subs[d] + 1);
        sc[d] = sizes[d];
        subc[d] = subs[d];
        stc[d] = starts[d];
      }
      int order = rnd(2) ? MPI_ORDER_C : MPI_ORDER_FORTRAN;
      if (large) MPI_Type_create_subarray_c(ndims, sc, subc, stc, order, in, &t);
      else MPI_Type_create_subarray(ndims, sizes, subs, starts, order, in, &t);
      break;
    }
    case 8: { /* darray of any process count: one process's piece of a distributed array */
      int p = 1 + rnd(4);
      t = darray(p, rnd(p), in, 10);
      break;
    }
    case 9: { /* resized with padding after the data */
      MPI_Count lb = 0, e = 0;
      MPI_Type_get_extent_c(in, &lb, &e);
      if (large) MPI_Type_create_resized_c(in, 0, e + 1 + rnd(8), &t);
      else MPI_Type_create_resized(in, 0, (MPI_Aint)(e + 1 + rnd(8)), &t);
      break;
    }
    default:
      MPI_Type_dup(in, &t);
      break;
  }
  MPI_Type_free(&in);
  return normalize(t);
}

static MPI_Datatype random_type(int depth) {
  if (depth >= 3 || rnd(4) == 0) return leaf();
  for (;;) { /* keep the type small; try again with fresh draws when it is not */
    MPI_Datatype t = compose(depth);
    if (type_size(t) > 0 && type_extent(t) <= MAX_TYPE_BYTES) return t;
    MPI_Type_free(&t);
  }
}

/* Rank 0 appends one line to the log (every rank's values gathered). */
static FILE* logf;
static void log_values(const char* what, long long* mine, int n) {
  long long* all = malloc(sizeof(long long) * n * nprocs);
  MPI_Gather(mine, n, MPI_LONG_LONG, all, n, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    fprintf(logf, "%s:", what);
    for (int i = 0; i < n * nprocs; ++i) fprintf(logf, " %lld", all[i]);
    fprintf(logf, "\n");
  }
  free(all);
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 4) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE DUMP LOG [SEED [classic]]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  rng_state = argc > 4 ? strtoull(argv[4], NULL, 10) : 4242;
  allow_large = !(argc > 5 && strcmp(argv[5], "classic") == 0);
  if (rank == 0) {
    logf = fopen(argv[3], "w");
    CHECK(logf != NULL, "cannot write %s", argv[3]);
  }
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, argv[1], MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  if (failures) MPI_Abort(MPI_COMM_WORLD, 1);

  MPI_Offset base = 0;
  for (int round = 0; round < ROUNDS; ++round) {
    MPI_Datatype t = random_type(0);
    const MPI_Count size = type_size(t), ext = type_extent(t);
    MPI_Datatype filetype;
    MPI_Count tile_extent; /* file bytes one filetype copy spans */
    int tiles;             /* filetype copies each rank accesses */
    if (rnd(3) == 0) {
      /* The classic use: a darray over all ranks (element T), as a 1-3-D distributed array. */
      filetype = darray(nprocs, rank, t, 24);
      tiles = 1;
    } else {
      /* Copy of T at rank * ext within a span of nprocs copies. */
      MPI_Datatype placed, types[1] = {t};
      MPI_Count one = 1, at = rank * ext;
      int one_i = 1;
      MPI_Aint at_a = (MPI_Aint)at;
      if (use_c()) MPI_Type_create_struct_c(1, &one, &at, types, &placed);
      else MPI_Type_create_struct(1, &one_i, &at_a, types, &placed);
      if (use_c()) MPI_Type_create_resized_c(placed, 0, nprocs * ext, &filetype);
      else MPI_Type_create_resized(placed, 0, (MPI_Aint)(nprocs * ext), &filetype);
      MPI_Type_free(&placed);
      tiles = 1 + rnd(3);
    }
    MPI_Type_commit(&filetype);
    tile_extent = type_extent(filetype);
    const MPI_Count fsize = type_size(filetype); /* may be 0: a darray piece can be empty */
    MPI_Type_commit(&t);

    /* Memory: `tiles * fsize` bytes, as T (when they make whole copies of T) or as bytes. */
    const MPI_Count bytes = tiles * fsize;
    const int mem_as_t = bytes % size == 0 && rnd(2);
    const MPI_Count mem_count = mem_as_t ? bytes / size : bytes;
    const MPI_Datatype memtype = mem_as_t ? t : MPI_BYTE;
    const size_t mem_len = (size_t)(mem_as_t ? mem_count * ext : bytes) + 1;
    unsigned char* mem = malloc(mem_len);
    unsigned char* back = malloc(mem_len);
    for (size_t x = 0; x < mem_len; ++x) mem[x] = (unsigned char)(round * 31 + rank * 7 + x * 13 + 1);

    const MPI_Offset disp = base + rnd(16);
    const MPI_Offset span = tiles * (MPI_Offset)tile_extent;
    check_rc(MPI_File_set_size(fh, disp + span), "set_size");
    check_rc(MPI_File_set_view(fh, disp, MPI_BYTE, filetype, "native", MPI_INFO_NULL), "set_view");
    const int how = rnd(3), io_c = use_c(); /* the large-count I/O calls too */
    if (how == 0) {
      check_rc(io_c ? MPI_File_write_at_all_c(fh, 0, mem, mem_count, memtype, MPI_STATUS_IGNORE)
                    : MPI_File_write_at_all(fh, 0, mem, (int)mem_count, memtype, MPI_STATUS_IGNORE),
               "write_at_all");
    } else if (how == 1) {
      check_rc(MPI_File_seek(fh, 0, MPI_SEEK_SET), "seek");
      check_rc(io_c ? MPI_File_write_all_c(fh, mem, mem_count, memtype, MPI_STATUS_IGNORE)
                    : MPI_File_write_all(fh, mem, (int)mem_count, memtype, MPI_STATUS_IGNORE),
               "write_all");
    } else {
      check_rc(io_c ? MPI_File_write_at_c(fh, 0, mem, mem_count, memtype, MPI_STATUS_IGNORE)
                    : MPI_File_write_at(fh, 0, mem, (int)mem_count, memtype, MPI_STATUS_IGNORE),
               "write_at");
    }
    MPI_Barrier(MPI_COMM_WORLD);

    /* Read back collectively and independently; compare the packed data. */
    for (int pass = 0; pass < 2; ++pass) {
      memset(back, 0, mem_len);
      if (pass == 0)
        check_rc(io_c ? MPI_File_read_at_all_c(fh, 0, back, mem_count, memtype, MPI_STATUS_IGNORE)
                      : MPI_File_read_at_all(fh, 0, back, (int)mem_count, memtype, MPI_STATUS_IGNORE),
                 "read_at_all");
      else if (io_c) /* through the individual pointer, large-count */
        check_rc(MPI_File_seek(fh, 0, MPI_SEEK_SET) || MPI_File_read_c(fh, back, mem_count, memtype, MPI_STATUS_IGNORE),
                 "read_c");
      else
        check_rc(MPI_File_read_at(fh, 0, back, (int)mem_count, memtype, MPI_STATUS_IGNORE), "read_at");
      MPI_Count packed_len = 0;
      MPI_Pack_size_c(mem_count, memtype, MPI_COMM_SELF, &packed_len);
      char* p1 = malloc((size_t)packed_len + 1);
      char* p2 = malloc((size_t)packed_len + 1);
      MPI_Count at1 = 0, at2 = 0;
      MPI_Pack_c(mem, mem_count, memtype, p1, packed_len, &at1, MPI_COMM_SELF);
      MPI_Pack_c(back, mem_count, memtype, p2, packed_len, &at2, MPI_COMM_SELF);
      CHECK(at1 == at2 && memcmp(p1, p2, (size_t)at1) == 0, "round %d: %s differs", round,
            pass ? "read_at" : "read_at_all");
      free(p1);
      free(p2);
    }

    /* get_byte_offset at a few stream offsets, get_type_extent of T and of the filetype. */
    long long vals[6];
    for (int k = 0; k < 4; ++k) {
      /* Every rank draws (the sequence stays shared); a filetype without data has no offsets. */
      MPI_Offset off = (MPI_Offset)(next_rand() % (unsigned)(bytes > 0 ? bytes : 1)), where = -1;
      if (fsize > 0) check_rc(MPI_File_get_byte_offset(fh, off, &where), "get_byte_offset");
      vals[k] = (long long)where;
    }
    MPI_Aint te = 0;
    check_rc(MPI_File_get_type_extent(fh, t, &te), "get_type_extent");
    vals[4] = te;
    if (io_c) {
      MPI_Count te_c = 0;
      check_rc(MPI_File_get_type_extent_c(fh, filetype, &te_c), "get_type_extent_c");
      vals[5] = te_c;
    } else {
      check_rc(MPI_File_get_type_extent(fh, filetype, &te), "get_type_extent");
      vals[5] = te;
    }
    log_values("offsets+extents", vals, 6);
    if (rank == 0) fprintf(logf, "round %d: size %lld extent %lld tiles %d how %d\n", round, (long long)size,
                           (long long)ext, tiles, how);

    base = disp + span;
    free(mem);
    free(back);
    MPI_Type_free(&t);
    MPI_Type_free(&filetype);
  }
  check_rc(MPI_File_close(&fh), "close");
  if (rank == 0) fclose(logf);

  return dump_and_finish(argv[1], argv[2]);
}
