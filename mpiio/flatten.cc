// Datatype flattening (type map -> byte blocks) and the file-view mapping built on it. The
// semantics follow ROMIO: filetype copies tile the file at disp + k * extent, block offsets are
// displacements from the type's origin (so a resized lower bound shifts nothing but the tiling).
#include <algorithm>
#include <cstddef>
#include <functional>
#include <string>
#include <type_traits>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

// Byte blocks ignore the predefined type of their bytes; leaf runs keep it (external32.cc
// converts by it), so they merge only runs of the same type.
void push_block(std::vector<Block>& out, int64_t off, int64_t len, MPI_Datatype = MPI_DATATYPE_NULL) {
  if (len <= 0) return;
  if (!out.empty() && out.back().off + out.back().len == off) {
    out.back().len += len;
    return;
  }
  out.push_back({off, len});
}
void push_block(std::vector<Leaf>& out, int64_t off, int64_t len, MPI_Datatype type) {
  if (len <= 0) return;
  if (!out.empty() && out.back().type == type && out.back().off + out.back().len == off) {
    out.back().len += len;
    return;
  }
  out.push_back({off, len, type});
}
MPI_Datatype type_of(const Block&) { return MPI_DATATYPE_NULL; }
MPI_Datatype type_of(const Leaf& l) { return l.type; }

struct TypeInfo {
  int64_t size = 0, lb = 0, extent = 0;
};

TypeInfo type_info(MPI_Datatype t) {
  MPI_Count size = 0, lb = 0, extent = 0;
  PMPI_Type_size_x(t, &size);
  PMPI_Type_get_extent_x(t, &lb, &extent);
  return {static_cast<int64_t>(size), static_cast<int64_t>(lb), static_cast<int64_t>(extent)};
}

int combiner_of(MPI_Datatype t) {
  // The _c envelope: MPI_Type_get_envelope fails (fatally by default) on types built by the
  // MPI-4 large-count constructors, the _c form answers for every type.
  MPI_Count ni = 0, na = 0, nc = 0, nd = 0;
  int combiner = MPI_COMBINER_NAMED;
  PMPI_Type_get_envelope_c(t, &ni, &na, &nc, &nd, &combiner);
  return combiner;
}

// Named types and the Fortran 90 parameterized ones: leaves of the type tree, never freed.
bool is_leaf(int combiner) {
  return combiner == MPI_COMBINER_NAMED || combiner == MPI_COMBINER_F90_REAL ||
         combiner == MPI_COMBINER_F90_COMPLEX || combiner == MPI_COMBINER_F90_INTEGER;
}

// What MPI_Type_get_contents_c reports. Types built by a large-count (_c) constructor carry
// every count and displacement in `counts` (MPICH 4.0: e.g. struct_c gives counts = {n, blocklens,
// displs}, subarray_c ints = {ndims, order} + counts = {sizes, subsizes, starts}); the classic ones
// carry counts in `ints` and byte displacements in `addrs`.
struct Contents {
  int combiner = MPI_COMBINER_NAMED;
  std::vector<int> ints;
  std::vector<MPI_Aint> addrs;
  std::vector<MPI_Count> counts;
  std::vector<MPI_Datatype> types;
  bool large() const { return !counts.empty(); }
  // Classic layout: the k-th integer; large-count layout: the k-th count.
  int64_t count(size_t k) const { return large() ? counts.at(k) : ints.at(k); }
  // A byte displacement: the k-th address (classic) or the k-th count (large-count).
  int64_t address(size_t k_addr, size_t k_count) const { return large() ? counts.at(k_count) : addrs.at(k_addr); }
  ~Contents() {
    for (auto& t : types)
      if (!is_leaf(combiner_of(t))) PMPI_Type_free(&t);
  }
};

void get_contents(MPI_Datatype type, Contents* c) {
  MPI_Count ni = 0, na = 0, nc = 0, nd = 0;
  PMPI_Type_get_envelope_c(type, &ni, &na, &nc, &nd, &c->combiner);
  c->ints.resize(static_cast<size_t>(ni));
  c->addrs.resize(static_cast<size_t>(na));
  c->counts.resize(static_cast<size_t>(nc));
  c->types.resize(static_cast<size_t>(nd));
  PMPI_Type_get_contents_c(type, ni, na, nc, nd, c->ints.data(), c->addrs.data(), c->counts.data(), c->types.data());
}

template <typename Item>
Status append(MPI_Datatype type, int64_t base, std::vector<Item>& out, int depth);

// Appends `count` copies of `type` placed at base + i * stride.
template <typename Item>
Status append_copies(MPI_Datatype type, int64_t base, int64_t count, int64_t stride, std::vector<Item>& out,
                     int depth) {
  if (count <= 0) return Status::ok();
  std::vector<Item> one;
  STOR_RETURN_IF_ERROR(append(type, 0, one, depth + 1));
  // A gap-free element repeated at its own size is one block: no per-element work (a vector of
  // a million bytes stays cheap).
  if (one.size() == 1 && one[0].len == stride) {
    push_block(out, base + one[0].off, one[0].len * count, type_of(one[0]));
    return Status::ok();
  }
  for (int64_t i = 0; i < count; ++i)
    for (const auto& b : one) push_block(out, base + i * stride + b.off, b.len, type_of(b));
  return Status::ok();
}

// Runs of consecutive indices [start, start + len) of one array dimension.
using Runs = std::vector<Block>;

// An n-dimensional array of `old` (dimension sizes `sizes`, C or Fortran order) of which the
// elements whose index in dimension d lies in runs[d] belong to the type: subarray and darray.
// Elements come in array order (increasing offset), as in the constructors' type maps.
template <typename Item>
Status append_grid(const std::vector<int64_t>& sizes, const std::vector<Runs>& runs, int order, MPI_Datatype old,
                   int64_t base, std::vector<Item>& out, int depth) {
  const int ndims = static_cast<int>(sizes.size());
  if (ndims == 0) return Status::ok();
  const int64_t ext = type_info(old).extent;
  // Dimension index from slowest to fastest varying.
  std::vector<int> dims(static_cast<size_t>(ndims));
  for (int i = 0; i < ndims; ++i) dims[i] = order == MPI_ORDER_C ? i : ndims - 1 - i;
  std::vector<int64_t> stride(static_cast<size_t>(ndims));  // in elements, per dims[] position
  int64_t s = 1;
  for (int i = ndims - 1; i >= 0; --i) {
    stride[i] = s;
    s *= sizes[dims[i]];
  }
  // Every index of the slower dimensions, as (run, position in run) odometers.
  std::vector<std::vector<int64_t>> indices(static_cast<size_t>(ndims));
  for (int i = 0; i < ndims - 1; ++i) {
    for (const auto& r : runs[dims[i]])
      for (int64_t x = r.off; x < r.off + r.len; ++x) indices[i].push_back(x);
    if (indices[i].empty()) return Status::ok();
  }
  const Runs& fastest = runs[dims[ndims - 1]];
  std::vector<size_t> idx(static_cast<size_t>(ndims), 0);
  while (true) {
    int64_t row = 0;
    for (int i = 0; i < ndims - 1; ++i) row += indices[i][idx[i]] * stride[i];
    for (const auto& r : fastest)
      STOR_RETURN_IF_ERROR(append_copies(old, base + (row + r.off * stride[ndims - 1]) * ext, r.len, ext, out, depth));
    int i = ndims - 2;
    for (; i >= 0; --i) {
      if (++idx[i] < indices[i].size()) break;
      idx[i] = 0;
    }
    if (i < 0) break;
  }
  return Status::ok();
}

template <typename Item>
Status append_subarray(const Contents& c, int64_t base, std::vector<Item>& out, int depth) {
  // classic ints: ndims, sizes[n], subsizes[n], starts[n], order; large: ints ndims, order,
  // counts sizes[n], subsizes[n], starts[n].
  const int n = c.ints.at(0);
  const int order = c.large() ? c.ints.at(1) : c.ints.at(1 + 3 * static_cast<size_t>(n));
  const size_t first = c.large() ? 0 : 1;
  std::vector<int64_t> sizes(static_cast<size_t>(n));
  std::vector<Runs> runs(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) {
    sizes[d] = c.count(first + d);
    runs[d] = {{c.count(first + 2 * n + d), c.count(first + n + d)}};
    if (runs[d][0].len <= 0) return Status::ok();
  }
  return append_grid(sizes, runs, order, c.types.at(0), base, out, depth);
}

// The indices of one dimension a darray process owns (MPI 4.0, 5.1.4): block (default block size
// ceil(gsize / psize)), cyclic(k) (default k = 1), or none.
Result<Runs> darray_runs(int64_t gsize, int distrib, int64_t darg, int64_t psize, int64_t coord) {
  Runs r;
  if (distrib == MPI_DISTRIBUTE_NONE) {
    if (gsize > 0) r.push_back({0, gsize});
    return r;
  }
  if (psize <= 0) return Status::InvalidArgument("darray with a process grid dimension of size 0");
  if (distrib == MPI_DISTRIBUTE_BLOCK) {
    const int64_t b = darg == MPI_DISTRIBUTE_DFLT_DARG ? (gsize + psize - 1) / psize : darg;
    if (b <= 0) return Status::InvalidArgument("darray block size " + std::to_string(b));
    const int64_t lo = coord * b, hi = std::min(gsize, lo + b);
    if (hi > lo) r.push_back({lo, hi - lo});
    return r;
  }
  if (distrib == MPI_DISTRIBUTE_CYCLIC) {
    const int64_t k = darg == MPI_DISTRIBUTE_DFLT_DARG ? 1 : darg;
    if (k <= 0) return Status::InvalidArgument("darray cyclic block size " + std::to_string(k));
    for (int64_t lo = coord * k; lo < gsize; lo += psize * k) r.push_back({lo, std::min(k, gsize - lo)});
    return r;
  }
  return Status::InvalidArgument("darray distribution " + std::to_string(distrib));
}

template <typename Item>
Status append_darray(const Contents& c, int64_t base, std::vector<Item>& out, int depth) {
  // classic ints: size, rank, ndims, gsizes[n], distribs[n], dargs[n], psizes[n], order;
  // large: the same without gsizes, which are counts[n].
  const int rank = c.ints.at(1), n = c.ints.at(2);
  const size_t distribs = c.large() ? 3 : 3 + static_cast<size_t>(n);
  const size_t dargs = distribs + n, psizes = dargs + n, order_at = psizes + n;
  std::vector<int64_t> gsizes(static_cast<size_t>(n)), coords(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) gsizes[d] = c.large() ? c.counts.at(d) : c.ints.at(3 + static_cast<size_t>(d));
  // The process grid is row-major whatever the array order (as for Cartesian topologies).
  int64_t r = rank;
  for (int d = n - 1; d >= 0; --d) {
    const int64_t p = c.ints.at(psizes + d);
    if (p <= 0) return Status::InvalidArgument("darray process grid size " + std::to_string(p));
    coords[d] = r % p;
    r /= p;
  }
  std::vector<Runs> runs(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) {
    auto owned = darray_runs(gsizes[d], c.ints.at(distribs + d), c.ints.at(dargs + d), c.ints.at(psizes + d), coords[d]);
    if (!owned.is_ok()) return owned.status();
    if (owned->empty()) return Status::ok();
    runs[d] = std::move(*owned);
  }
  return append_grid(gsizes, runs, c.ints.at(order_at), c.types.at(0), base, out, depth);
}

// Predefined pair types (MPI_SHORT_INT, ...) are a value and an int laid out as the C struct
// {T value; int index;}: two blocks, with the padding between them left out.
template <typename Item>
bool append_pair(MPI_Datatype type, int64_t base, int64_t size, std::vector<Item>& out) {
  struct Pair {
    MPI_Datatype type, value;
    int64_t value_len, index_off;
  };
  struct ShortInt { short v; int i; };
  struct LongInt { long v; int i; };
  struct FloatInt { float v; int i; };
  struct DoubleInt { double v; int i; };
  struct LongDoubleInt { long double v; int i; };
  static const Pair pairs[] = {
      {MPI_SHORT_INT, MPI_SHORT, sizeof(short), offsetof(ShortInt, i)},
      {MPI_LONG_INT, MPI_LONG, sizeof(long), offsetof(LongInt, i)},
      {MPI_FLOAT_INT, MPI_FLOAT, sizeof(float), offsetof(FloatInt, i)},
      {MPI_DOUBLE_INT, MPI_DOUBLE, sizeof(double), offsetof(DoubleInt, i)},
      {MPI_LONG_DOUBLE_INT, MPI_LONG_DOUBLE, sizeof(long double), offsetof(LongDoubleInt, i)},
  };
  for (const auto& p : pairs)
    if (p.type == type && p.value_len + static_cast<int64_t>(sizeof(int)) == size) {
      push_block(out, base, p.value_len, p.value);
      push_block(out, base + p.index_off, sizeof(int), MPI_INT);
      return true;
    }
  return false;
}

template <typename Item>
Status append(MPI_Datatype type, int64_t base, std::vector<Item>& out, int depth) {
  if (depth > 64) return Status::Unsupported("datatype nesting deeper than 64 levels");
  const int combiner = combiner_of(type);
  if (is_leaf(combiner)) {
    TypeInfo info = type_info(type);
    MPI_Count tlb = 0, textent = 0;
    PMPI_Type_get_true_extent_x(type, &tlb, &textent);
    // Leaf runs split every pair type (its value and int convert apart), padded or not.
    if constexpr (std::is_same_v<Item, Leaf>)
      if (append_pair(type, base + tlb, info.size, out)) return Status::ok();
    if (info.size == textent) {
      push_block(out, base + tlb, info.size, type);
      return Status::ok();
    }
    if (append_pair(type, base + tlb, info.size, out)) return Status::ok();
    return Status::Unsupported("predefined datatype with interior padding of unknown layout (size " +
                               std::to_string(info.size) + ", true extent " + std::to_string(textent) + ")");
  }
  Contents c;
  get_contents(type, &c);
  switch (combiner) {
    case MPI_COMBINER_DUP:
    case MPI_COMBINER_RESIZED:  // same type map; only lb/extent (the tiling) change
      return append(c.types.at(0), base, out, depth + 1);
    case MPI_COMBINER_CONTIGUOUS:
      return append_copies(c.types.at(0), base, c.count(0), type_info(c.types[0]).extent, out, depth);
    case MPI_COMBINER_VECTOR:
    case MPI_COMBINER_HVECTOR:
    case MPI_COMBINER_HVECTOR_INTEGER: {
      // The Fortran-77 *_INTEGER forms (MPI-1's MPI_TYPE_HVECTOR etc. with INTEGER byte
      // displacements) carry every value in `ints`: {count, blocklength, stride}.
      const int64_t ext = type_info(c.types.at(0)).extent;
      const int64_t stride = combiner == MPI_COMBINER_VECTOR           ? c.count(2) * ext
                             : combiner == MPI_COMBINER_HVECTOR_INTEGER ? c.count(2)
                                                                         : c.address(0, 2);
      for (int64_t i = 0; i < c.count(0); ++i)
        STOR_RETURN_IF_ERROR(append_copies(c.types[0], base + i * stride, c.count(1), ext, out, depth));
      return Status::ok();
    }
    case MPI_COMBINER_INDEXED:
    case MPI_COMBINER_HINDEXED:
    case MPI_COMBINER_HINDEXED_INTEGER: {
      // {n, blocklens[n], displs[n]}; classic hindexed has its displacements in addrs,
      // hindexed_integer its byte displacements in ints.
      const int64_t ext = type_info(c.types.at(0)).extent;
      const int64_t n = c.count(0);
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = static_cast<size_t>(1 + n + i);
        const int64_t disp = combiner == MPI_COMBINER_INDEXED           ? c.count(k) * ext
                             : combiner == MPI_COMBINER_HINDEXED_INTEGER ? c.count(k)
                                                                         : c.address(static_cast<size_t>(i), k);
        STOR_RETURN_IF_ERROR(append_copies(c.types[0], base + disp, c.count(static_cast<size_t>(1 + i)), ext, out, depth));
      }
      return Status::ok();
    }
    case MPI_COMBINER_INDEXED_BLOCK:
    case MPI_COMBINER_HINDEXED_BLOCK: {
      // {n, blocklen, displs[n]}
      const int64_t ext = type_info(c.types.at(0)).extent;
      const int64_t n = c.count(0);
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = static_cast<size_t>(2 + i);
        const int64_t disp =
            combiner == MPI_COMBINER_INDEXED_BLOCK ? c.count(k) * ext : c.address(static_cast<size_t>(i), k);
        STOR_RETURN_IF_ERROR(append_copies(c.types[0], base + disp, c.count(1), ext, out, depth));
      }
      return Status::ok();
    }
    case MPI_COMBINER_STRUCT:
    case MPI_COMBINER_STRUCT_INTEGER: {
      // {n, blocklens[n], displs[n]} with one type per block (struct_integer: displs in ints).
      const int64_t n = c.count(0);
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = static_cast<size_t>(i), kd = static_cast<size_t>(1 + n + i);
        const int64_t disp = combiner == MPI_COMBINER_STRUCT_INTEGER ? c.count(kd) : c.address(k, kd);
        STOR_RETURN_IF_ERROR(append_copies(c.types.at(k), base + disp, c.count(1 + k), type_info(c.types[k]).extent,
                                           out, depth));
      }
      return Status::ok();
    }
    case MPI_COMBINER_SUBARRAY:
      return append_subarray(c, base, out, depth);
    case MPI_COMBINER_DARRAY:
      return append_darray(c, base, out, depth);
    default:
      // Every combiner of MPI 4.0 is handled above; a newer MPI's would land here.
      return Status::Unsupported("datatype combiner " + std::to_string(combiner) +
                                 " (unknown to libstor_mpiio) in a stor file view or buffer");
  }
}

// The same constructor over `olds` (the rebuilt inner types), from the contents of the original.
int rebuild_with(const Contents& c, const std::vector<MPI_Datatype>& olds, MPI_Datatype* out) {
  auto counts = [&](size_t first, size_t n) {
    std::vector<MPI_Count> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = c.count(first + i);
    return v;
  };
  auto addresses = [&](size_t first_addr, size_t first_count, size_t n) {
    std::vector<MPI_Count> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = c.address(first_addr + i, first_count + i);
    return v;
  };
  const MPI_Datatype old = olds.at(0);
  switch (c.combiner) {
    case MPI_COMBINER_DUP:
      return PMPI_Type_dup(old, out);
    case MPI_COMBINER_CONTIGUOUS:
      return PMPI_Type_contiguous_c(c.count(0), old, out);
    case MPI_COMBINER_VECTOR:
      return PMPI_Type_vector_c(c.count(0), c.count(1), c.count(2), old, out);
    case MPI_COMBINER_HVECTOR:
      return PMPI_Type_create_hvector_c(c.count(0), c.count(1), c.address(0, 2), old, out);
    case MPI_COMBINER_INDEXED:
    case MPI_COMBINER_HINDEXED: {
      const size_t n = static_cast<size_t>(c.count(0));
      auto bl = counts(1, n);
      if (c.combiner == MPI_COMBINER_INDEXED)
        return PMPI_Type_indexed_c(c.count(0), bl.data(), counts(1 + n, n).data(), old, out);
      return PMPI_Type_create_hindexed_c(c.count(0), bl.data(), addresses(0, 1 + n, n).data(), old, out);
    }
    case MPI_COMBINER_INDEXED_BLOCK:
      return PMPI_Type_create_indexed_block_c(c.count(0), c.count(1), counts(2, static_cast<size_t>(c.count(0))).data(),
                                              old, out);
    case MPI_COMBINER_HINDEXED_BLOCK:
      return PMPI_Type_create_hindexed_block_c(c.count(0), c.count(1),
                                               addresses(0, 2, static_cast<size_t>(c.count(0))).data(), old, out);
    case MPI_COMBINER_STRUCT: {
      const size_t n = static_cast<size_t>(c.count(0));
      return PMPI_Type_create_struct_c(c.count(0), counts(1, n).data(), addresses(0, 1 + n, n).data(),
                                       const_cast<MPI_Datatype*>(olds.data()), out);
    }
    case MPI_COMBINER_SUBARRAY: {
      const int n = c.ints.at(0);
      const int order = c.large() ? c.ints.at(1) : c.ints.at(1 + 3 * static_cast<size_t>(n));
      const size_t first = c.large() ? 0 : 1, un = static_cast<size_t>(n);
      return PMPI_Type_create_subarray_c(n, counts(first, un).data(), counts(first + un, un).data(),
                                         counts(first + 2 * un, un).data(), order, old, out);
    }
    case MPI_COMBINER_DARRAY: {
      const int n = c.ints.at(2);
      const size_t un = static_cast<size_t>(n), distribs = c.large() ? 3 : 3 + un;
      std::vector<MPI_Count> gsizes(un);
      for (size_t d = 0; d < un; ++d) gsizes[d] = c.large() ? c.counts.at(d) : c.ints.at(3 + d);
      return PMPI_Type_create_darray_c(c.ints.at(0), c.ints.at(1), n, gsizes.data(), &c.ints.at(distribs),
                                       &c.ints.at(distribs + un), &c.ints.at(distribs + 2 * un),
                                       c.ints.at(distribs + 3 * un), old, out);
    }
    case MPI_COMBINER_RESIZED:
      return PMPI_Type_create_resized_c(old, c.address(0, 0), c.address(1, 1), out);
    default:
      return MPI_ERR_TYPE;
  }
}

}  // namespace

Status substitute_leaves(MPI_Datatype type, const std::function<Result<MPI_Datatype>(MPI_Datatype)>& leaf,
                         MPI_Datatype* out, int depth) {
  if (depth > 64) return Status::Unsupported("datatype nesting deeper than 64 levels");
  const int combiner = combiner_of(type);
  if (is_leaf(combiner)) {
    auto r = leaf(type);
    if (!r.is_ok()) return r.status();
    *out = *r;
    return Status::ok();
  }
  Contents c;
  get_contents(type, &c);
  std::vector<MPI_Datatype> olds(c.types.size(), MPI_DATATYPE_NULL);
  bool changed = false;
  Status s;
  for (size_t i = 0; i < c.types.size() && s.is_ok(); ++i) {
    s = substitute_leaves(c.types[i], leaf, &olds[i], depth + 1);
    if (s.is_ok() && olds[i] != c.types[i]) changed = true;
  }
  if (s.is_ok() && !changed) {
    *out = type;
  } else if (s.is_ok()) {
    MPI_Datatype t = MPI_DATATYPE_NULL;
    if (olds.empty() || rebuild_with(c, olds, &t) != MPI_SUCCESS)
      s = Status::Unsupported("datatype combiner " + std::to_string(combiner) + " cannot be rebuilt");
    else if (PMPI_Type_commit(&t) != MPI_SUCCESS)
      s = Status::Internal("MPI_Type_commit of a rebuilt datatype failed");
    *out = t;
  }
  for (size_t i = 0; i < olds.size(); ++i)
    if (olds[i] != c.types[i] && olds[i] != MPI_DATATYPE_NULL && !is_leaf(combiner_of(olds[i]))) PMPI_Type_free(&olds[i]);
  return s;
}

bool is_predefined_type(MPI_Datatype t) { return t != MPI_DATATYPE_NULL && is_leaf(combiner_of(t)); }

Status flatten(MPI_Datatype type, FlatType* out) {
  if (type == MPI_DATATYPE_NULL) return Status::InvalidArgument("MPI_DATATYPE_NULL");
  TypeInfo info = type_info(type);
  out->blocks.clear();
  out->size = info.size;
  out->lb = info.lb;
  out->extent = info.extent;
  return append(type, 0, out->blocks, 0);
}

Status flatten_leaves(MPI_Datatype type, std::vector<Leaf>* out) {
  if (type == MPI_DATATYPE_NULL) return Status::InvalidArgument("MPI_DATATYPE_NULL");
  out->clear();
  return append(type, 0, *out, 0);
}

void View::map(int64_t stream_off, int64_t len, std::vector<Block>* segments) const {
  if (len <= 0) return;
  auto& out = *segments;
  if (flat.contiguous()) {
    push_block(out, disp + stream_off, len);
    return;
  }
  const int64_t tile_size = flat.size;
  int64_t tile = stream_off / tile_size;
  int64_t within = stream_off % tile_size;
  // The block holding stream byte `within` of a tile.
  size_t b = static_cast<size_t>(std::upper_bound(stream_start.begin(), stream_start.end(), within) -
                                 stream_start.begin()) - 1;
  while (len > 0) {
    const Block& blk = flat.blocks[b];
    int64_t skip = within - stream_start[b];
    int64_t n = std::min(len, blk.len - skip);
    push_block(out, disp + tile * flat.extent + blk.off + skip, n);
    len -= n;
    within += n;
    if (++b == flat.blocks.size()) {
      b = 0;
      within = 0;
      ++tile;
    }
  }
}

int64_t View::byte_offset(int64_t stream_off) const {
  if (flat.contiguous()) return disp + stream_off;
  std::vector<Block> seg;
  map(stream_off, 1, &seg);
  return seg.front().off;
}

}  // namespace stor::mpiio
