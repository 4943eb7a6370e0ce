// Datatype flattening (type map -> byte blocks) and the file-view mapping built on it. The
// semantics follow ROMIO: filetype copies tile the file at disp + k * extent, block offsets are
// displacements from the type's origin (so a resized lower bound shifts nothing but the tiling).
#include <algorithm>
#include <string>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

void push_block(std::vector<Block>& out, int64_t off, int64_t len) {
  if (len <= 0) return;
  if (!out.empty() && out.back().off + out.back().len == off) {
    out.back().len += len;
    return;
  }
  out.push_back({off, len});
}

struct TypeInfo {
  int64_t size = 0, lb = 0, extent = 0;
};

TypeInfo type_info(MPI_Datatype t) {
  MPI_Count size = 0, lb = 0, extent = 0;
  PMPI_Type_size_x(t, &size);
  PMPI_Type_get_extent_x(t, &lb, &extent);
  return {static_cast<int64_t>(size), static_cast<int64_t>(lb), static_cast<int64_t>(extent)};
}

// Frees the derived datatypes MPI_Type_get_contents handed out.
void free_contents_types(std::vector<MPI_Datatype>& types) {
  for (auto& t : types) {
    int ni, na, nd, combiner;
    PMPI_Type_get_envelope(t, &ni, &na, &nd, &combiner);
    if (combiner != MPI_COMBINER_NAMED) PMPI_Type_free(&t);
  }
}

Status append(MPI_Datatype type, int64_t base, std::vector<Block>& out, int depth);

// Appends `count` copies of `type` placed at base + i * stride.
Status append_copies(MPI_Datatype type, int64_t base, int64_t count, int64_t stride, std::vector<Block>& out,
                     int depth) {
  if (count <= 0) return Status::ok();
  std::vector<Block> one;
  STOR_RETURN_IF_ERROR(append(type, 0, one, depth + 1));
  // A gap-free element repeated at its own size is one block: no per-element work (a vector of
  // a million bytes stays cheap).
  if (one.size() == 1 && one[0].len == stride) {
    push_block(out, base + one[0].off, one[0].len * count);
    return Status::ok();
  }
  for (int64_t i = 0; i < count; ++i)
    for (const auto& b : one) push_block(out, base + i * stride + b.off, b.len);
  return Status::ok();
}

Status append_subarray(int ndims, const int* sizes, const int* subsizes, const int* starts, int order,
                       MPI_Datatype old, int64_t base, std::vector<Block>& out, int depth) {
  const int64_t ext = type_info(old).extent;
  // Dimension index from slowest to fastest varying.
  std::vector<int> dims(ndims);
  for (int i = 0; i < ndims; ++i) dims[i] = order == MPI_ORDER_C ? i : ndims - 1 - i;
  std::vector<int64_t> stride(ndims);  // in elements, per dims[] position
  int64_t s = 1;
  for (int i = ndims - 1; i >= 0; --i) {
    stride[i] = s;
    s *= sizes[dims[i]];
  }
  for (int i = 0; i < ndims; ++i)
    if (subsizes[dims[i]] <= 0) return Status::ok();
  // Walk every row of the fastest dimension; each row is subsizes[fastest] consecutive elements.
  const int fastest = dims[ndims - 1];
  std::vector<int64_t> idx(ndims, 0);
  while (true) {
    int64_t elem = 0;
    for (int i = 0; i < ndims; ++i) elem += (starts[dims[i]] + idx[i]) * stride[i];
    STOR_RETURN_IF_ERROR(append_copies(old, base + elem * ext, subsizes[fastest], ext, out, depth));
    int i = ndims - 2;
    for (; i >= 0; --i) {
      if (++idx[i] < subsizes[dims[i]]) break;
      idx[i] = 0;
    }
    if (i < 0) break;
  }
  return Status::ok();
}

Status append(MPI_Datatype type, int64_t base, std::vector<Block>& out, int depth) {
  if (depth > 64) return Status::Unsupported("datatype nesting deeper than 64 levels");
  int ni = 0, na = 0, nd = 0, combiner = 0;
  PMPI_Type_get_envelope(type, &ni, &na, &nd, &combiner);
  if (combiner == MPI_COMBINER_NAMED) {
    TypeInfo info = type_info(type);
    MPI_Count tlb = 0, textent = 0;
    PMPI_Type_get_true_extent_x(type, &tlb, &textent);
    // Pair types such as MPI_SHORT_INT have interior padding we cannot see from here.
    if (info.size != textent)
      return Status::Unsupported("predefined datatype with interior padding (e.g. MPI_SHORT_INT) in a file view");
    push_block(out, base + tlb, info.size);
    return Status::ok();
  }
  std::vector<int> ints(ni);
  std::vector<MPI_Aint> addrs(na);
  std::vector<MPI_Datatype> types(nd);
  PMPI_Type_get_contents(type, ni, na, nd, ints.data(), addrs.data(), types.data());
  Status s;
  switch (combiner) {
    case MPI_COMBINER_DUP:
    case MPI_COMBINER_RESIZED:  // same type map; only lb/extent (the tiling) change
      s = append(types[0], base, out, depth + 1);
      break;
    case MPI_COMBINER_CONTIGUOUS:
      s = append_copies(types[0], base, ints[0], type_info(types[0]).extent, out, depth);
      break;
    case MPI_COMBINER_VECTOR:
    case MPI_COMBINER_HVECTOR: {
      const int64_t ext = type_info(types[0]).extent;
      const int64_t stride = combiner == MPI_COMBINER_VECTOR ? ints[2] * ext : addrs[0];
      for (int64_t i = 0; i < ints[0] && s.is_ok(); ++i)
        s = append_copies(types[0], base + i * stride, ints[1], ext, out, depth);
      break;
    }
    case MPI_COMBINER_INDEXED:
    case MPI_COMBINER_HINDEXED: {
      const int64_t ext = type_info(types[0]).extent;
      const int count = ints[0];
      for (int i = 0; i < count && s.is_ok(); ++i) {
        int64_t disp = combiner == MPI_COMBINER_INDEXED ? ints[1 + count + i] * ext : addrs[i];
        s = append_copies(types[0], base + disp, ints[1 + i], ext, out, depth);
      }
      break;
    }
    case MPI_COMBINER_INDEXED_BLOCK:
    case MPI_COMBINER_HINDEXED_BLOCK: {
      const int64_t ext = type_info(types[0]).extent;
      const int count = ints[0];
      for (int i = 0; i < count && s.is_ok(); ++i) {
        int64_t disp = combiner == MPI_COMBINER_INDEXED_BLOCK ? ints[2 + i] * ext : addrs[i];
        s = append_copies(types[0], base + disp, ints[1], ext, out, depth);
      }
      break;
    }
    case MPI_COMBINER_STRUCT: {
      const int count = ints[0];
      for (int i = 0; i < count && s.is_ok(); ++i)
        s = append_copies(types[i], base + addrs[i], ints[1 + i], type_info(types[i]).extent, out, depth);
      break;
    }
    case MPI_COMBINER_SUBARRAY: {
      const int n = ints[0];
      s = append_subarray(n, &ints[1], &ints[1 + n], &ints[1 + 2 * n], ints[1 + 3 * n], types[0], base, out, depth);
      break;
    }
    default:
      s = Status::Unsupported("datatype constructor " + std::to_string(combiner) +
                                         " (e.g. MPI_Type_create_darray) is not supported in stor file views");
  }
  free_contents_types(types);
  return s;
}

}  // namespace

Status flatten(MPI_Datatype type, FlatType* out) {
  if (type == MPI_DATATYPE_NULL) return Status::InvalidArgument("MPI_DATATYPE_NULL");
  TypeInfo info = type_info(type);
  out->blocks.clear();
  out->size = info.size;
  out->lb = info.lb;
  out->extent = info.extent;
  return append(type, 0, out->blocks, 0);
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
