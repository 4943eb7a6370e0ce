/* The "external32" data representation through every kind of access: ints by write_at, doubles
 * through a noncontiguous (vector) filetype by write_all, shorts by iwrite, ints by
 * write_ordered, ints from a noncontiguous memory type by write_at_all; all read back through the
 * same view and calls and compared; rank 0 then reads the raw file through a "native" byte view
 * and compares it with a big-endian image built here independently.
 *
 *   mpiio_external32 FILE romio|stor LOG [STRUCTFILE]
 *
 * MODE "romio" is the reference run on a plain file: ROMIO 4.0.2 converts nothing in its
 * independent nonblocking calls and in read_ordered (iwrite writes native bytes into an external32
 * view), so there the program uses write/read/read_ordered_begin+end instead, and the files of both
 * runs must be byte-identical. With STRUCTFILE (stor runs) it also writes STRUCTFILE: a struct of int, double,
 * short and char (which MPICH's MPI_Pack_external cannot convert: ROMIO crashes on it), longs
 * (4 bytes in external32) and a long double (IEEE binary128), then a view of MPI_LONGs (4 bytes
 * each in the file, strides scaled), and checks the refusal of MPI_LONG_INT views. LOG gets
 * MPI_File_get_type_extent and get_view results, compared between the runs. */
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpiio_check.h"

enum { N1 = 100, N2 = 64, N3 = 50, N5 = 40, M = 30 };

static int nprocs;

static int v1(int r, int i) { return (r * 1000 + i) * (i % 2 ? -1 : 1); }
static double v2(int r, int i) { return r * 100.0 + i * 0.25 - 7.5; }
static short v3(int r, int i) { return (short)((r * 300 + i) * (i % 3 ? 1 : -1)); }
static int v4(int r, int i) { return 0x01020304 * (r + 1) + i; }
static int v5(int r, int i) { return -(r * 77 + i * 5); }

static void be(unsigned char* out, uint64_t v, int n) {
  for (int b = 0; b < n; ++b) out[b] = (unsigned char)(v >> (8 * (n - 1 - b)));
}
static uint64_t bits_of_double(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

/* Byte offsets of the sections. */
static MPI_Offset d2(void) { return (MPI_Offset)nprocs * N1 * 4; }
static MPI_Offset d3(void) { return d2() + (MPI_Offset)nprocs * N2 * 8; }
static MPI_Offset d4(void) { return d3() + (MPI_Offset)nprocs * N3 * 2; }
static int ordered_count(int r) { return 3 * (r + 1); }
static MPI_Offset d5(void) {
  MPI_Offset n = 0;
  for (int r = 0; r < nprocs; ++r) n += ordered_count(r);
  return d4() + n * 4;
}
static MPI_Offset total(void) { return d5() + (MPI_Offset)nprocs * N5 * 4; }

/* The doubles' filetype: rank r owns pairs of doubles at stride 2 * nprocs. */
static MPI_Datatype double_filetype(void) {
  MPI_Datatype t;
  MPI_Type_vector(N2 / 2, 2, 2 * nprocs, MPI_DOUBLE, &t);
  MPI_Type_commit(&t);
  return t;
}

static void set_view(MPI_File fh, MPI_Offset disp, MPI_Datatype etype, MPI_Datatype ftype) {
  check_rc(MPI_File_set_view(fh, disp, etype, ftype, "external32", MPI_INFO_NULL), "set_view external32");
}

static void write_all_sections(MPI_File fh, int romio) {
  /* 1: ints, write_at */
  int ints[N1];
  for (int i = 0; i < N1; ++i) ints[i] = v1(rank, i);
  set_view(fh, 0, MPI_INT, MPI_INT);
  check_rc(MPI_File_write_at(fh, (MPI_Offset)rank * N1, ints, N1, MPI_INT, MPI_STATUS_IGNORE), "write_at ints");
  /* 2: doubles through a vector filetype, write_all */
  double dbl[N2];
  for (int i = 0; i < N2; ++i) dbl[i] = v2(rank, i);
  MPI_Datatype ft = double_filetype();
  set_view(fh, d2() + (MPI_Offset)rank * 16, MPI_DOUBLE, ft);
  MPI_Status st;
  check_rc(MPI_File_write_all(fh, dbl, N2, MPI_DOUBLE, &st), "write_all doubles");
  int cnt = -1;
  MPI_Get_count(&st, MPI_DOUBLE, &cnt);
  CHECK(cnt == N2, "write_all count %d", cnt);
  MPI_Type_free(&ft);
  /* 3: shorts, iwrite at the individual pointer */
  short sh[N3];
  for (int i = 0; i < N3; ++i) sh[i] = v3(rank, i);
  set_view(fh, d3(), MPI_SHORT, MPI_SHORT);
  check_rc(MPI_File_seek(fh, (MPI_Offset)rank * N3, MPI_SEEK_SET), "seek");
  if (romio) {
    check_rc(MPI_File_write(fh, sh, N3, MPI_SHORT, MPI_STATUS_IGNORE), "write shorts");
  } else {
    MPI_Request req;
    check_rc(MPI_File_iwrite(fh, sh, N3, MPI_SHORT, &req), "iwrite shorts");
    check_rc(MPI_Wait(&req, &st), "wait iwrite");
    MPI_Get_count(&st, MPI_SHORT, &cnt);
    CHECK(cnt == N3, "iwrite count %d", cnt);
  }
  /* 4: ints, write_ordered */
  int ord[3 * 64];
  for (int i = 0; i < ordered_count(rank); ++i) ord[i] = v4(rank, i);
  set_view(fh, d4(), MPI_INT, MPI_INT);
  check_rc(MPI_File_write_ordered(fh, ord, ordered_count(rank), MPI_INT, MPI_STATUS_IGNORE), "write_ordered");
  /* 5: ints from every other int of memory (noncontiguous memory type), write_at_all */
  int spread[2 * N5];
  for (int i = 0; i < 2 * N5; ++i) spread[i] = i % 2 ? 12345 : v5(rank, i / 2);
  MPI_Datatype every_other;
  MPI_Type_vector(N5, 1, 2, MPI_INT, &every_other);
  MPI_Type_commit(&every_other);
  set_view(fh, d5(), MPI_INT, MPI_INT);
  check_rc(MPI_File_write_at_all(fh, (MPI_Offset)rank * N5, spread, 1, every_other, MPI_STATUS_IGNORE), "write_at_all");
  MPI_Type_free(&every_other);
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_sync(fh), "sync");
}

static void read_all_sections(MPI_File fh, int romio) {
  int ints[N1];
  set_view(fh, 0, MPI_INT, MPI_INT);
  check_rc(MPI_File_read_at(fh, (MPI_Offset)rank * N1, ints, N1, MPI_INT, MPI_STATUS_IGNORE), "read_at ints");
  for (int i = 0; i < N1; ++i) CHECK(ints[i] == v1(rank, i), "int %d: %d", i, ints[i]);

  double dbl[N2];
  MPI_Datatype ft = double_filetype();
  set_view(fh, d2() + (MPI_Offset)rank * 16, MPI_DOUBLE, ft);
  check_rc(MPI_File_read_all(fh, dbl, N2, MPI_DOUBLE, MPI_STATUS_IGNORE), "read_all doubles");
  for (int i = 0; i < N2; ++i) CHECK(dbl[i] == v2(rank, i), "double %d: %g", i, dbl[i]);
  MPI_Type_free(&ft);

  short sh[N3];
  set_view(fh, d3(), MPI_SHORT, MPI_SHORT);
  check_rc(MPI_File_seek(fh, (MPI_Offset)rank * N3, MPI_SEEK_SET), "seek");
  MPI_Status st;
  if (romio) {
    check_rc(MPI_File_read(fh, sh, N3, MPI_SHORT, &st), "read shorts");
  } else {
    MPI_Request req;
    check_rc(MPI_File_iread(fh, sh, N3, MPI_SHORT, &req), "iread shorts");
    check_rc(MPI_Wait(&req, &st), "wait iread");
  }
  int cnt = -1;
  MPI_Get_count(&st, MPI_SHORT, &cnt);
  CHECK(cnt == N3, "read shorts count %d", cnt);
  for (int i = 0; i < N3; ++i) CHECK(sh[i] == v3(rank, i), "short %d: %d", i, sh[i]);
  MPI_Offset pos = -1;
  MPI_File_get_position(fh, &pos);
  CHECK(pos == (MPI_Offset)(rank + 1) * N3, "position after the shorts %lld", (long long)pos);

  int ord[3 * 64];
  set_view(fh, d4(), MPI_INT, MPI_INT);
  if (romio) {
    check_rc(MPI_File_read_ordered_begin(fh, ord, ordered_count(rank), MPI_INT), "read_ordered_begin");
    check_rc(MPI_File_read_ordered_end(fh, ord, MPI_STATUS_IGNORE), "read_ordered_end");
  } else {
    check_rc(MPI_File_read_ordered(fh, ord, ordered_count(rank), MPI_INT, MPI_STATUS_IGNORE), "read_ordered");
  }
  for (int i = 0; i < ordered_count(rank); ++i) CHECK(ord[i] == v4(rank, i), "ordered int %d: %d", i, ord[i]);

  int spread[2 * N5];
  for (int i = 0; i < 2 * N5; ++i) spread[i] = -1;
  MPI_Datatype every_other;
  MPI_Type_vector(N5, 1, 2, MPI_INT, &every_other);
  MPI_Type_commit(&every_other);
  set_view(fh, d5(), MPI_INT, MPI_INT);
  check_rc(MPI_File_read_at_all(fh, (MPI_Offset)rank * N5, spread, 1, every_other, MPI_STATUS_IGNORE), "read_at_all");
  for (int i = 0; i < 2 * N5; ++i)
    CHECK(spread[i] == (i % 2 ? -1 : v5(rank, i / 2)), "spread int %d: %d", i, spread[i]);
  MPI_Type_free(&every_other);
}

/* Rank 0: the raw bytes through a native view against the big-endian image built here. */
static void check_raw(MPI_File fh) {
  MPI_Offset n = total();
  unsigned char* want = calloc((size_t)n, 1);
  unsigned char* got = calloc((size_t)n, 1);
  for (int r = 0; r < nprocs; ++r) {
    for (int i = 0; i < N1; ++i) be(want + (r * N1 + i) * 4, (uint32_t)v1(r, i), 4);
    for (int i = 0; i < N2; ++i)
      be(want + d2() + ((MPI_Offset)(i / 2) * 2 * nprocs + r * 2 + i % 2) * 8, bits_of_double(v2(r, i)), 8);
    for (int i = 0; i < N3; ++i) be(want + d3() + (r * N3 + i) * 2, (uint16_t)v3(r, i), 2);
    for (int i = 0; i < N5; ++i) be(want + d5() + (r * N5 + i) * 4, (uint32_t)v5(r, i), 4);
  }
  MPI_Offset at = d4();
  for (int r = 0; r < nprocs; ++r)
    for (int i = 0; i < ordered_count(r); ++i, at += 4) be(want + at, (uint32_t)v4(r, i), 4);
  check_rc(MPI_File_read_at(fh, 0, got, (int)n, MPI_BYTE, MPI_STATUS_IGNORE), "raw read");
  for (MPI_Offset i = 0; i < n; ++i)
    if (want[i] != got[i]) {
      CHECK(0, "raw byte %lld: 0x%02x, want 0x%02x (big-endian)", (long long)i, got[i], want[i]);
      break;
    }
  MPI_Offset size = 0;
  MPI_File_get_size(fh, &size);
  CHECK(size == n, "file size %lld, want %lld", (long long)size, (long long)n);
  free(want);
  free(got);
}

struct S {
  int a;
  double b;
  short c;
  char d;
};
enum { kStructExt = 4 + 8 + 2 + 1 };

static struct S sval(int r, int i) {
  struct S s = {r * 10 - i, r + i / 8.0, (short)(i - r * 3), (char)('A' + (r + i) % 26)};
  return s;
}

/* Constructor k over `base` (every constructor, classic and _c). */
static MPI_Datatype build(int k, MPI_Datatype base) {
  MPI_Datatype t = MPI_DATATYPE_NULL, inner;
  int bl[3] = {2, 1, 3}, idx[3] = {0, 3, 7};
  MPI_Aint hd[3] = {0, 24, 64};
  MPI_Count cbl[3] = {2, 1, 3}, cidx[3] = {1, 4, 9}, chd[3] = {8, 40, 80};
  int sizes[2] = {5, 6}, subs[2] = {2, 3}, starts[2] = {1, 2};
  MPI_Count csizes[2] = {5, 6}, csubs[2] = {3, 2}, cstarts[2] = {2, 1};
  int gs[2] = {6, 8}, dist[2] = {MPI_DISTRIBUTE_CYCLIC, MPI_DISTRIBUTE_BLOCK}, darg[2] = {2, MPI_DISTRIBUTE_DFLT_DARG},
      ps[2] = {2, 2};
  MPI_Count cgs[2] = {7, 5};
  switch (k) {
    case 0: MPI_Type_contiguous(5, base, &t); break;
    case 1: MPI_Type_vector(3, 2, 5, base, &t); break;
    case 2: MPI_Type_create_hvector(3, 2, 40, base, &t); break;
    case 3: MPI_Type_indexed(3, bl, idx, base, &t); break;
    case 4: MPI_Type_create_hindexed(3, bl, hd, base, &t); break;
    case 5: MPI_Type_create_indexed_block(3, 2, idx, base, &t); break;
    case 6: MPI_Type_create_hindexed_block(3, 2, hd, base, &t); break;
    case 7: {
      MPI_Datatype ts[3] = {base, base, base};
      MPI_Type_create_struct(3, bl, hd, ts, &t);
      break;
    }
    case 8: MPI_Type_create_subarray(2, sizes, subs, starts, MPI_ORDER_C, base, &t); break;
    case 9: MPI_Type_create_darray(4, 3, 2, gs, dist, darg, ps, MPI_ORDER_FORTRAN, base, &t); break;
    case 10:
      MPI_Type_vector(2, 1, 3, base, &inner);
      MPI_Type_create_resized(inner, 0, 64, &t);
      MPI_Type_free(&inner);
      break;
    case 11:
      MPI_Type_dup(base, &inner);
      MPI_Type_vector_c(2, 2, 3, inner, &t);
      MPI_Type_free(&inner);
      break;
    case 12: MPI_Type_indexed_c(3, cbl, cidx, base, &t); break;
    case 13: MPI_Type_create_hindexed_c(3, cbl, chd, base, &t); break;
    case 14: MPI_Type_create_subarray_c(2, csizes, csubs, cstarts, MPI_ORDER_FORTRAN, base, &t); break;
    case 15: MPI_Type_create_darray_c(4, 1, 2, cgs, dist, darg, ps, MPI_ORDER_C, base, &t); break;
    case 16: {
      MPI_Datatype ts[3] = {base, base, base};
      MPI_Type_create_struct_c(3, cbl, chd, ts, &t);
      break;
    }
    case 17:
      MPI_Type_contiguous_c(2, base, &inner);
      MPI_Type_create_resized_c(inner, 0, 32, &t);
      MPI_Type_free(&inner);
      break;
    default: return MPI_DATATYPE_NULL;
  }
  MPI_Type_commit(&t);
  return t;
}

/* Every constructor over MPI_LONG in an external32 view lays out like the same constructor over
 * MPI_INT32_T: the same file extent, and longs written through the one read back as the same
 * values through the other. */
static void long_views(MPI_File fh, MPI_Offset disp) {
  for (int k = 0;; ++k) {
    MPI_Datatype tl = build(k, MPI_LONG);
    if (tl == MPI_DATATYPE_NULL) break;
    MPI_Datatype ti = build(k, MPI_INT32_T);
    check_rc(MPI_File_set_view(fh, disp, MPI_BYTE, tl, "external32", MPI_INFO_NULL), "external32 view over MPI_LONG");
    MPI_Aint fext = 0, lb = 0, iext = 0;
    check_rc(MPI_File_get_type_extent(fh, tl, &fext), "get_type_extent");
    MPI_Type_get_extent(ti, &lb, &iext);
    CHECK(fext == iext, "constructor %d: external32 extent over MPI_LONG %ld, over MPI_INT32_T %ld", k, (long)fext,
          (long)iext);
    MPI_Count n = 0;
    MPI_Type_size_c(ti, &n);
    n /= 4;
    MPI_Aint tlb = 0, text = 0, ilb = 0, itext = 0;
    MPI_Type_get_true_extent(tl, &tlb, &text);
    MPI_Type_get_true_extent(ti, &ilb, &itext);
    const size_t lsize = (size_t)(tlb + text), isize = (size_t)(ilb + itext);
    long* lmem = calloc(lsize / 8 + 1, 8);
    for (size_t i = 0; i < lsize / 8 + 1; ++i) lmem[i] = 0x01000000L * (k + 1) + (long)i;
    if (rank == 0)
      check_rc(MPI_File_write_at(fh, 0, lmem, 1, tl, MPI_STATUS_IGNORE), "write through the MPI_LONG view");
    MPI_Barrier(MPI_COMM_WORLD);
    check_rc(MPI_File_set_view(fh, disp, MPI_BYTE, ti, "external32", MPI_INFO_NULL), "external32 view over int32");
    if (rank == 0) {
      char* imem = calloc(isize + 4, 1);
      check_rc(MPI_File_read_at(fh, 0, imem, 1, ti, MPI_STATUS_IGNORE), "read through the int32 view");
      /* Both type maps in order, natively packed: n longs and n int32s. */
      long* lv = calloc((size_t)n + 1, sizeof(long));
      int32_t* iv = calloc((size_t)n + 1, sizeof(int32_t));
      int p1 = 0, p2 = 0;
      MPI_Pack(lmem, 1, tl, lv, (int)(n * 8), &p1, MPI_COMM_SELF);
      MPI_Pack(imem, 1, ti, iv, (int)(n * 4), &p2, MPI_COMM_SELF);
      for (MPI_Count i = 0; i < n; ++i)
        if ((int32_t)lv[i] != iv[i]) {
          CHECK(0, "constructor %d value %lld: %d through the int32 view, %ld written", k, (long long)i, iv[i], lv[i]);
          break;
        }
      free(lv);
      free(iv);
      free(imem);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    free(lmem);
    MPI_Type_free(&tl);
    MPI_Type_free(&ti);
  }
}

/* Types of one basic type, where MPICH's MPI_Pack_external is right: stor's file bytes are
 * its bytes, and read back they are the values written. */
static void against_pack_external(MPI_File fh, MPI_Offset disp) {
  MPI_Datatype vec, idx, res;
  MPI_Type_vector(3, 2, 4, MPI_SHORT, &vec);
  int bl[2] = {2, 1}, dd[2] = {3, 0};
  MPI_Type_indexed(2, bl, dd, MPI_DOUBLE, &idx);
  MPI_Type_create_resized(vec, -4, 40, &res);
  MPI_Type_commit(&vec);
  MPI_Type_commit(&idx);
  MPI_Type_commit(&res);
  MPI_Datatype types[] = {MPI_CHAR, MPI_SIGNED_CHAR, MPI_UNSIGNED_CHAR, MPI_BYTE, MPI_SHORT, MPI_UNSIGNED_SHORT,
                          MPI_INT, MPI_UNSIGNED, MPI_LONG, MPI_UNSIGNED_LONG, MPI_LONG_LONG, MPI_UNSIGNED_LONG_LONG,
                          MPI_FLOAT, MPI_DOUBLE, MPI_LONG_DOUBLE, MPI_C_BOOL, MPI_INT8_T, MPI_INT16_T, MPI_INT32_T,
                          MPI_INT64_T, MPI_UINT8_T, MPI_UINT16_T, MPI_UINT32_T, MPI_UINT64_T, MPI_AINT, MPI_COUNT,
                          MPI_OFFSET, MPI_C_FLOAT_COMPLEX, MPI_C_DOUBLE_COMPLEX, MPI_C_LONG_DOUBLE_COMPLEX,
                          vec, idx, res};  /* (MPI_2INT: MPICH's MPI_Pack_external asserts) */
  const int count = 3;
  for (size_t k = 0; k < sizeof types / sizeof types[0]; ++k) {
    MPI_Datatype t = types[k];
    MPI_Aint lb = 0, ext = 0, tlb = 0, text = 0;
    MPI_Type_get_extent(t, &lb, &ext);
    MPI_Type_get_true_extent(t, &tlb, &text);
    const size_t span = (size_t)((count - 1) * ext + tlb + text + 16);
    unsigned char* mem = malloc(span);
    unsigned char* back = calloc(span, 1);
    const int is_ld = t == MPI_LONG_DOUBLE || t == MPI_C_LONG_DOUBLE_COMPLEX;
    for (size_t i = 0; i < span; ++i) mem[i] = (unsigned char)(i * 37 + k * 11 + 5);
    if (is_ld)  /* real values (an x87 bit pattern need not be one) */
      for (size_t i = 0; i + sizeof(long double) <= span; i += sizeof(long double)) {
        long double v = -1.25L * (long double)(i + k) / 3.0L;
        memcpy(mem + i, &v, sizeof v);
      }
    if (t == MPI_LONG || t == MPI_UNSIGNED_LONG)  /* values that fit external32's 4 bytes */
      for (size_t i = 0; i + 8 <= span; i += 8) {
        long v = t == MPI_LONG ? -(long)(i * 1000 + k) : (long)(i * 1000 + k);
        memcpy(mem + i, &v, 8);
      }
    if (t == MPI_C_BOOL)
      for (size_t i = 0; i < span; ++i) mem[i] &= 1;
    MPI_Aint psize = 0, ppos = 0;
    MPI_Pack_external_size("external32", count, t, &psize);
    unsigned char* packed = malloc((size_t)psize + 1);
    unsigned char* raw = calloc((size_t)psize + 1, 1);
    MPI_Pack_external("external32", mem, count, t, packed, psize, &ppos);
    check_rc(MPI_File_set_view(fh, disp, MPI_BYTE, MPI_BYTE, "external32", MPI_INFO_NULL), "external32 byte view");
    MPI_Status st;
    if (rank == 0) {
      check_rc(MPI_File_write_at(fh, 0, mem, count, t, MPI_STATUS_IGNORE), "write basic-type data");
      check_rc(MPI_File_read_at(fh, 0, back, count, t, &st), "read basic-type data");
      int got = -1;
      MPI_Get_count(&st, t, &got);
      CHECK(got == count, "type %zu: count %d", k, got);
    }
    check_rc(MPI_File_set_view(fh, disp, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "native byte view");
    if (rank == 0) {
      check_rc(MPI_File_read_at(fh, 0, raw, (int)psize, MPI_BYTE, MPI_STATUS_IGNORE), "raw basic-type data");
      CHECK(ppos == psize && memcmp(raw, packed, (size_t)psize) == 0, "type %zu: file bytes differ from MPI_Pack_external",
            k);
      /* The values read back: compare the type's bytes (natively packed) with what was written. */
      int nsz = 0;
      MPI_Type_size(t, &nsz);
      int n1 = 0, n2 = 0;
      unsigned char* a = malloc((size_t)nsz * count + 1);
      unsigned char* b = malloc((size_t)nsz * count + 1);
      MPI_Pack(mem, count, t, a, nsz * count, &n1, MPI_COMM_SELF);
      MPI_Pack(back, count, t, b, nsz * count, &n2, MPI_COMM_SELF);
      /* x87 long doubles keep 10 meaningful bytes of their 16. */
      int same = 1;
      const int ldsz = (int)sizeof(long double);
      for (int i = 0; i < n1 && same; ++i) same = is_ld && i % ldsz >= 10 ? 1 : a[i] == b[i];
      CHECK(n1 == n2 && same, "type %zu: values read back differ", k);
      free(a);
      free(b);
    }
    free(mem);
    free(back);
    free(packed);
    free(raw);
  }
  MPI_Type_free(&vec);
  MPI_Type_free(&idx);
  MPI_Type_free(&res);
}

/* Mixed-member structs, longs and a long double in memory, bytes in the file. */
static void struct_file(const char* name) {
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open struct file");
  int bl[4] = {1, 1, 1, 1};
  MPI_Aint disp[4] = {offsetof(struct S, a), offsetof(struct S, b), offsetof(struct S, c), offsetof(struct S, d)};
  MPI_Datatype types[4] = {MPI_INT, MPI_DOUBLE, MPI_SHORT, MPI_CHAR}, st;
  MPI_Type_create_struct(4, bl, disp, types, &st);
  MPI_Type_commit(&st);
  struct S out[M], in[M];
  for (int i = 0; i < M; ++i) out[i] = sval(rank, i);
  memset(in, 0, sizeof in);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "external32", MPI_INFO_NULL), "set_view struct");
  const MPI_Offset base = (MPI_Offset)rank * M * kStructExt;
  check_rc(MPI_File_write_at_all(fh, base, out, M, st, MPI_STATUS_IGNORE), "write_at_all structs");
  long longs[4] = {rank, -rank - 1, 0x7fffffffL, -0x80000000L};
  const MPI_Offset lbase = (MPI_Offset)nprocs * M * kStructExt + rank * (16 + 16);
  MPI_Request req;
  check_rc(MPI_File_iwrite_at(fh, lbase, longs, 4, MPI_LONG, &req), "iwrite_at longs");
  check_rc(MPI_Wait(&req, MPI_STATUS_IGNORE), "wait");
  long double ld = 1.5L * (rank + 1);
  check_rc(MPI_File_write_at(fh, lbase + 16, &ld, 1, MPI_LONG_DOUBLE, MPI_STATUS_IGNORE), "write_at long double");
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Status status;
  check_rc(MPI_File_read_at(fh, base, in, M, st, &status), "read_at structs");
  int cnt = -1;
  MPI_Get_count(&status, st, &cnt);
  CHECK(cnt == M, "struct count %d", cnt);
  for (int i = 0; i < M; ++i) {
    struct S w = sval(rank, i);
    CHECK(in[i].a == w.a && in[i].b == w.b && in[i].c == w.c && in[i].d == w.d, "struct %d: %d %g %d %c", i, in[i].a,
          in[i].b, in[i].c, in[i].d);
  }
  long lin[4] = {0};
  check_rc(MPI_File_read_at(fh, lbase, lin, 4, MPI_LONG, &status), "read_at longs");
  MPI_Get_count(&status, MPI_LONG, &cnt);
  CHECK(cnt == 4, "long count %d", cnt);
  for (int i = 0; i < 4; ++i) CHECK(lin[i] == longs[i], "long %d: %ld, want %ld", i, lin[i], longs[i]);
  long double ldin = 0;
  check_rc(MPI_File_read_at(fh, lbase + 16, &ldin, 1, MPI_LONG_DOUBLE, MPI_STATUS_IGNORE), "read long double");
  CHECK(ldin == ld, "long double %Lg", ldin);
  MPI_Aint ext = 0;
  check_rc(MPI_File_get_type_extent(fh, MPI_LONG, &ext), "get_type_extent MPI_LONG");
  CHECK(ext == 4, "external32 extent of MPI_LONG %ld", (long)ext);

  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "native view");
  if (rank == 0) {  /* raw bytes: rank 1's structs (or rank 0's), longs, long double */
    const int r = nprocs > 1 ? 1 : 0;
    unsigned char raw[M * kStructExt], want[M * kStructExt];
    for (int i = 0; i < M; ++i) {
      struct S w = sval(r, i);
      unsigned char* p = want + i * kStructExt;
      be(p, (uint32_t)w.a, 4);
      be(p + 4, bits_of_double(w.b), 8);
      be(p + 12, (uint16_t)w.c, 2);
      p[14] = (unsigned char)w.d;
    }
    check_rc(MPI_File_read_at(fh, (MPI_Offset)r * M * kStructExt, raw, sizeof raw, MPI_BYTE, MPI_STATUS_IGNORE), "raw");
    CHECK(memcmp(raw, want, sizeof raw) == 0, "raw struct bytes are not external32");
    unsigned char lraw[32], lwant[32] = {0};
    long wl[4] = {r, -r - 1, 0x7fffffffL, -0x80000000L};
    for (int i = 0; i < 4; ++i) be(lwant + 4 * i, (uint32_t)wl[i], 4);
    /* 1.5 * (r + 1) as big-endian binary128: 1.5 = 0x3fff8000..., 3.0 = 0x40008000... */
    lwant[16] = r == 0 ? 0x3f : 0x40;
    lwant[17] = r == 0 ? 0xff : 0x00;
    lwant[18] = 0x80;
    check_rc(MPI_File_read_at(fh, (MPI_Offset)nprocs * M * kStructExt + r * 32, lraw, 32, MPI_BYTE, MPI_STATUS_IGNORE),
             "raw longs");
    CHECK(memcmp(lraw, lwant, 32) == 0, "raw long / long double bytes are not external32");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  /* A view of longs: 4 bytes each in the file, the vector's stride scaled with them. */
  const MPI_Offset vbase = (MPI_Offset)nprocs * (M * kStructExt + 32);
  MPI_Datatype lvec;
  MPI_Type_vector(3, 1, nprocs, MPI_LONG, &lvec);
  MPI_Type_commit(&lvec);
  check_rc(MPI_File_set_view(fh, vbase + rank * 4, MPI_LONG, lvec, "external32", MPI_INFO_NULL), "MPI_LONG view");
  check_rc(MPI_File_get_type_extent(fh, lvec, &ext), "get_type_extent vector of MPI_LONG");
  CHECK(ext == (2 * nprocs + 1) * 4, "external32 extent of the MPI_LONG vector %ld", (long)ext);
  long lv[3] = {-rank - 10, rank * 1000, 0x12345678L}, lvin[3] = {0};
  check_rc(MPI_File_write_all(fh, lv, 3, MPI_LONG, MPI_STATUS_IGNORE), "write_all MPI_LONG view");
  check_rc(MPI_File_sync(fh), "sync");
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_sync(fh), "sync");
  check_rc(MPI_File_read_at_all(fh, 0, lvin, 3, MPI_LONG, MPI_STATUS_IGNORE), "read_at_all MPI_LONG view");
  for (int i = 0; i < 3; ++i) CHECK(lvin[i] == lv[i], "MPI_LONG view value %d: %ld", i, lvin[i]);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "native view");
  if (rank == 0) {
    unsigned char vraw[3 * 64 * 4], vwant[3 * 64 * 4];
    const int n = 3 * nprocs * 4;
    for (int r = 0; r < nprocs; ++r) {
      long w[3] = {-r - 10, r * 1000, 0x12345678L};
      for (int j = 0; j < 3; ++j) be(vwant + (j * nprocs + r) * 4, (uint32_t)w[j], 4);
    }
    check_rc(MPI_File_read_at(fh, vbase, vraw, n, MPI_BYTE, MPI_STATUS_IGNORE), "raw MPI_LONG view");
    CHECK(memcmp(vraw, vwant, (size_t)n) == 0, "MPI_LONG view bytes are not 4-byte big-endian at the scaled stride");
  }
  MPI_Type_free(&lvec);
  long_views(fh, vbase + 3 * nprocs * 4);
  /* A pair type whose value changes size: MPI_LONG_INT is 4 + 4 packed bytes in the file. */
  const MPI_Offset pbase = vbase + 3 * nprocs * 4 + 4096;
  check_rc(MPI_File_set_view(fh, pbase, MPI_LONG_INT, MPI_LONG_INT, "external32", MPI_INFO_NULL), "MPI_LONG_INT view");
  check_rc(MPI_File_get_type_extent(fh, MPI_LONG_INT, &ext), "get_type_extent MPI_LONG_INT");
  CHECK(ext == 8, "external32 extent of MPI_LONG_INT %ld", (long)ext);
  struct { long v; int i; } pairs[2] = {{-5L - rank, rank}, {70000L, -rank - 1}}, pin[2];
  memset(pin, 0, sizeof pin);
  check_rc(MPI_File_write_at_all(fh, 2 * rank, pairs, 2, MPI_LONG_INT, MPI_STATUS_IGNORE), "write MPI_LONG_INT");
  check_rc(MPI_File_read_at_all(fh, 2 * rank, pin, 2, MPI_LONG_INT, MPI_STATUS_IGNORE), "read MPI_LONG_INT");
  for (int i = 0; i < 2; ++i)
    CHECK(pin[i].v == pairs[i].v && pin[i].i == pairs[i].i, "MPI_LONG_INT %d: %ld %d", i, pin[i].v, pin[i].i);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "native view");
  if (rank == 0) {
    unsigned char praw[16], pwant[16];
    be(pwant, (uint32_t)-5L, 4);
    be(pwant + 4, 0, 4);
    be(pwant + 8, 70000, 4);
    be(pwant + 12, (uint32_t)-1, 4);
    check_rc(MPI_File_read_at(fh, pbase, praw, 16, MPI_BYTE, MPI_STATUS_IGNORE), "raw MPI_LONG_INT");
    CHECK(memcmp(praw, pwant, 16) == 0, "MPI_LONG_INT bytes are not 4 + 4 big-endian");
  }
  MPI_Barrier(MPI_COMM_WORLD);
  against_pack_external(fh, pbase + 16 * nprocs + 4096);
  MPI_Type_free(&st);
  check_rc(MPI_File_close(&fh), "close struct file");
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nprocs);
  if (argc < 4) {
    if (rank == 0) fprintf(stderr, "usage: %s FILE romio|stor LOG [STRUCTFILE]\n", argv[0]);
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  const char* name = argv[1];
  const int romio = strcmp(argv[2], "romio") == 0;
  MPI_File fh;
  check_rc(MPI_File_open(MPI_COMM_WORLD, name, MPI_MODE_CREATE | MPI_MODE_RDWR, MPI_INFO_NULL, &fh), "open");
  write_all_sections(fh, romio);
  read_all_sections(fh, romio);

  /* get_view, "internal", get_type_extent, a registered but unusable representation. */
  FILE* log = NULL;
  if (rank == 0) log = fopen(argv[3], "w");
  char rep[MPI_MAX_DATAREP_STRING + 1];
  MPI_Offset disp;
  MPI_Datatype et, ft;
  set_view(fh, 8, MPI_INT, MPI_INT);
  MPI_File_get_view(fh, &disp, &et, &ft, rep);
  CHECK(strcmp(rep, "external32") == 0, "get_view datarep %s", rep);
  if (log) fprintf(log, "external32 view: %s\n", rep);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "internal", MPI_INFO_NULL), "set_view internal");
  MPI_File_get_view(fh, &disp, &et, &ft, rep);
  if (log) fprintf(log, "internal view: %s\n", rep);
  set_view(fh, 0, MPI_BYTE, MPI_BYTE);
  {
    int bl[3] = {1, 1, 1};
    MPI_Aint dd[3] = {0, 8, 16};
    MPI_Datatype tt[3] = {MPI_INT, MPI_DOUBLE, MPI_SHORT}, stype, vec, sub;
    MPI_Type_create_struct(3, bl, dd, tt, &stype);
    MPI_Type_vector(3, 2, 5, MPI_DOUBLE, &vec);
    int sizes[2] = {6, 7}, subs[2] = {2, 3}, starts[2] = {1, 2};
    MPI_Type_create_subarray(2, sizes, subs, starts, MPI_ORDER_C, MPI_SHORT, &sub);
    MPI_Type_commit(&stype);
    MPI_Type_commit(&vec);
    MPI_Type_commit(&sub);
    MPI_Datatype all[] = {MPI_INT, MPI_DOUBLE, MPI_SHORT, MPI_FLOAT, MPI_CHAR, MPI_LONG_LONG, stype, vec, sub};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) {
      MPI_Aint ext = -1;
      check_rc(MPI_File_get_type_extent(fh, all[i], &ext), "get_type_extent");
      if (log) fprintf(log, "type %zu extent %ld\n", i, (long)ext);
    }
    MPI_Type_free(&stype);
    MPI_Type_free(&vec);
    MPI_Type_free(&sub);
  }
  int rc = MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "no_such_rep", MPI_INFO_NULL);
  int cls = MPI_SUCCESS;
  MPI_Error_class(rc, &cls);
  CHECK(cls == MPI_ERR_UNSUPPORTED_DATAREP, "unknown data representation: class %d", cls);
  if (log) fprintf(log, "unknown datarep class ok: %d\n", cls == MPI_ERR_UNSUPPORTED_DATAREP);
  check_rc(MPI_File_set_view(fh, 0, MPI_BYTE, MPI_BYTE, "native", MPI_INFO_NULL), "set_view native");
  if (rank == 0) check_raw(fh);
  MPI_Barrier(MPI_COMM_WORLD);
  check_rc(MPI_File_close(&fh), "close");
  if (log) fclose(log);
  if (argc > 4) struct_file(argv[4]);

  int all = 0;
  MPI_Allreduce(&failures, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) printf("%s: %s\n", name, all ? "FAILED" : "OK");
  MPI_Finalize();
  return all ? 1 : 0;
}
