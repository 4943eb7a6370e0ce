// The "external32" data representation (MPI 4.0, 14.5.2): every predefined type big-endian with
// the standard's fixed size (MPI_LONG 4 bytes, MPI_LONG_DOUBLE an IEEE binary128, ...), no
// padding. ROMIO converts with MPI_Pack_external, but MPICH 4.0.2's implementation assumes one
// basic type per datatype ("FIXME ... won't work with struct": MPI_Pack_external_size crashes on a
// struct of an int and a double), so the conversion here walks the type map's leaves itself.
#include <cstring>
#include <algorithm>
#include <string>
#include <unordered_map>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

enum class Op : uint8_t { kSwap, kSigned, kUnsigned, kFloat128 };

struct Rep {
  int ext = 0;    // external32 bytes of one part
  int parts = 1;  // complex and pair types: two values
  Op op = Op::kSwap;
};

// The sizes are MPICH's table (typerep_ext32.c, after MPI's Table 14.2); MPI_WCHAR is 2 there.
const std::unordered_map<MPI_Datatype, Rep>& reps() {
  static const auto* table = [] {
    struct Entry {
      MPI_Datatype type;
      Rep rep;
    };
    const Entry entries[] = {
        {MPI_PACKED, {1, 1, Op::kUnsigned}}, {MPI_BYTE, {1, 1, Op::kUnsigned}},
        {MPI_CHAR, {1, 1, Op::kSigned}}, {MPI_UNSIGNED_CHAR, {1, 1, Op::kUnsigned}},
        {MPI_SIGNED_CHAR, {1, 1, Op::kSigned}}, {MPI_WCHAR, {2, 1, Op::kUnsigned}},
        {MPI_SHORT, {2, 1, Op::kSigned}}, {MPI_UNSIGNED_SHORT, {2, 1, Op::kUnsigned}},
        {MPI_INT, {4, 1, Op::kSigned}}, {MPI_UNSIGNED, {4, 1, Op::kUnsigned}},
        {MPI_LONG, {4, 1, Op::kSigned}}, {MPI_UNSIGNED_LONG, {4, 1, Op::kUnsigned}},
        {MPI_LONG_LONG_INT, {8, 1, Op::kSigned}}, {MPI_LONG_LONG, {8, 1, Op::kSigned}},
        {MPI_UNSIGNED_LONG_LONG, {8, 1, Op::kUnsigned}}, {MPI_FLOAT, {4, 1, Op::kSwap}},
        {MPI_DOUBLE, {8, 1, Op::kSwap}}, {MPI_LONG_DOUBLE, {16, 1, Op::kFloat128}},
        {MPI_C_BOOL, {1, 1, Op::kUnsigned}}, {MPI_INT8_T, {1, 1, Op::kSigned}},
        {MPI_INT16_T, {2, 1, Op::kSigned}}, {MPI_INT32_T, {4, 1, Op::kSigned}},
        {MPI_INT64_T, {8, 1, Op::kSigned}}, {MPI_UINT8_T, {1, 1, Op::kUnsigned}},
        {MPI_UINT16_T, {2, 1, Op::kUnsigned}}, {MPI_UINT32_T, {4, 1, Op::kUnsigned}},
        {MPI_UINT64_T, {8, 1, Op::kUnsigned}}, {MPI_AINT, {8, 1, Op::kSigned}},
        {MPI_COUNT, {8, 1, Op::kSigned}}, {MPI_OFFSET, {8, 1, Op::kSigned}},
        {MPI_C_COMPLEX, {4, 2, Op::kSwap}}, {MPI_C_FLOAT_COMPLEX, {4, 2, Op::kSwap}},
        {MPI_C_DOUBLE_COMPLEX, {8, 2, Op::kSwap}}, {MPI_C_LONG_DOUBLE_COMPLEX, {16, 2, Op::kFloat128}},
        {MPI_CXX_BOOL, {1, 1, Op::kUnsigned}}, {MPI_CXX_FLOAT_COMPLEX, {4, 2, Op::kSwap}},
        {MPI_CXX_DOUBLE_COMPLEX, {8, 2, Op::kSwap}}, {MPI_CXX_LONG_DOUBLE_COMPLEX, {16, 2, Op::kFloat128}},
        {MPI_2INT, {4, 2, Op::kSigned}},
        // Fortran types (a C program can name them too; gfortran's REAL*16 is binary128 already)
        {MPI_CHARACTER, {1, 1, Op::kUnsigned}}, {MPI_LOGICAL, {4, 1, Op::kSigned}},
        {MPI_INTEGER, {4, 1, Op::kSigned}}, {MPI_REAL, {4, 1, Op::kSwap}},
        {MPI_DOUBLE_PRECISION, {8, 1, Op::kSwap}}, {MPI_COMPLEX, {4, 2, Op::kSwap}},
        {MPI_DOUBLE_COMPLEX, {8, 2, Op::kSwap}}, {MPI_INTEGER1, {1, 1, Op::kSigned}},
        {MPI_INTEGER2, {2, 1, Op::kSigned}}, {MPI_INTEGER4, {4, 1, Op::kSigned}},
        {MPI_INTEGER8, {8, 1, Op::kSigned}}, {MPI_REAL4, {4, 1, Op::kSwap}},
        {MPI_REAL8, {8, 1, Op::kSwap}}, {MPI_REAL16, {16, 1, Op::kSwap}},
        {MPI_COMPLEX8, {4, 2, Op::kSwap}}, {MPI_COMPLEX16, {8, 2, Op::kSwap}},
        {MPI_COMPLEX32, {16, 2, Op::kSwap}}, {MPI_2INTEGER, {4, 2, Op::kSigned}},
        {MPI_2REAL, {4, 2, Op::kSwap}}, {MPI_2DOUBLE_PRECISION, {8, 2, Op::kSwap}},
    };
    auto* m = new std::unordered_map<MPI_Datatype, Rep>();
    for (const auto& e : entries)
      if (e.type != MPI_DATATYPE_NULL) m->emplace(e.type, e.rep);
    return m;
  }();
  return *table;
}

std::string type_name(MPI_Datatype t) {
  char name[MPI_MAX_OBJECT_NAME] = {};
  int len = 0;
  PMPI_Type_get_name(t, name, &len);
  return len > 0 ? std::string(name, static_cast<size_t>(len)) : "a predefined type";
}

void reverse_copy(const char* src, char* dst, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[n - 1 - i];
}

uint16_t bswap(uint16_t v) { return __builtin_bswap16(v); }
uint32_t bswap(uint32_t v) { return __builtin_bswap32(v); }
uint64_t bswap(uint64_t v) { return __builtin_bswap64(v); }

// n values of U reversed byte by byte (a loop the compiler vectorizes).
template <typename U>
void swap_values(const char* src, char* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    U v;
    std::memcpy(&v, src + sizeof(U) * i, sizeof(U));
    v = bswap(v);
    std::memcpy(dst + sizeof(U) * i, &v, sizeof(U));
  }
}

// n values of one run, native -> external32.
void to_ext(const Ext32Plan::Run& r, int64_t n, const char* src, char* dst) {
  const int in = r.native, out = r.ext;
  switch (r.op) {
    case 0:  // same size: byte order only
      if (in == 1) {
        std::memcpy(dst, src, static_cast<size_t>(n));
      } else if (in == 2) {
        swap_values<uint16_t>(src, dst, n);
      } else if (in == 4) {
        swap_values<uint32_t>(src, dst, n);
      } else if (in == 8) {
        swap_values<uint64_t>(src, dst, n);
      } else {
        for (int64_t i = 0; i < n; ++i) reverse_copy(src + in * i, dst + out * i, in);
      }
      return;
    case 1:  // integer of another size: the low `out` bytes (as a C conversion would), big-endian
    case 2:
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = 0;
        std::memcpy(&v, src + in * i, static_cast<size_t>(in));  // little-endian host
        for (int b = 0; b < out; ++b) dst[out * i + b] = static_cast<char>(v >> (8 * (out - 1 - b)));
      }
      return;
    default:  // x87 long double -> IEEE binary128, big-endian
      for (int64_t i = 0; i < n; ++i) {
        long double v;
        std::memcpy(&v, src + in * i, sizeof v);
        __float128 q = v;
        reverse_copy(reinterpret_cast<const char*>(&q), dst + out * i, 16);
      }
      return;
  }
}

// n values of one run, external32 -> native.
void from_ext(const Ext32Plan::Run& r, int64_t n, const char* src, char* dst) {
  const int in = r.ext, out = r.native;
  switch (r.op) {
    case 0:
      to_ext(r, n, src, dst);  // a byte swap is its own inverse
      return;
    case 1:
    case 2:
      for (int64_t i = 0; i < n; ++i) {
        uint64_t v = 0;
        for (int b = 0; b < in; ++b) v = (v << 8) | static_cast<unsigned char>(src[in * i + b]);
        if (r.op == 1 && in < 8 && (v >> (8 * in - 1)) & 1) v |= ~uint64_t{0} << (8 * in);  // sign-extend
        std::memcpy(dst + out * i, &v, static_cast<size_t>(out));
      }
      return;
    default: {
      for (int64_t i = 0; i < n; ++i) {
        __float128 q;
        reverse_copy(src + in * i, reinterpret_cast<char*>(&q), 16);
        long double v = static_cast<long double>(q);
        std::memcpy(dst + out * i, &v, static_cast<size_t>(out));
      }
      return;
    }
  }
}

}  // namespace

Status ext32_plan(MPI_Datatype type, Ext32Plan* p) {
  std::vector<Leaf> leaves;
  STOR_RETURN_IF_ERROR(flatten_leaves(type, &leaves));
  MPI_Count size = 0, lb = 0, extent = 0;
  PMPI_Type_size_x(type, &size);
  PMPI_Type_get_extent_x(type, &lb, &extent);
  p->runs.clear();
  p->extent = extent;
  p->native_size = size;
  p->ext_size = 0;
  p->same_layout = true;
  const auto& table = reps();
  for (const auto& l : leaves) {
    auto it = table.find(l.type);
    MPI_Count tsize = 0;
    PMPI_Type_size_x(l.type, &tsize);
    if (it == table.end() || tsize <= 0 || tsize % it->second.parts != 0)
      return Status::Unsupported("no external32 representation for " + type_name(l.type));
    const Rep& rep = it->second;
    const int native = static_cast<int>(tsize / rep.parts);
    int op = rep.op == Op::kSwap ? 0 : rep.op == Op::kSigned ? 1 : rep.op == Op::kUnsigned ? 2 : 3;
    if (op == 3 && native != static_cast<int>(sizeof(long double)))
      return Status::Unsupported("no external32 conversion for " + type_name(l.type) + " of " + std::to_string(native) + " bytes");
    if ((op == 1 || op == 2) && native == rep.ext) op = 0;
    if (op == 0 && native != rep.ext)
      return Status::Unsupported("no external32 conversion for " + type_name(l.type) + " of " + std::to_string(native) + " bytes");
    if (native > 8 && (op == 1 || op == 2))
      return Status::Unsupported("no external32 conversion for " + type_name(l.type) + " of " + std::to_string(native) + " bytes");
    const int64_t values = l.len / native;
    if (native != rep.ext) p->same_layout = false;
    p->runs.push_back({l.off, values, native, rep.ext, op});
    p->ext_size += values * rep.ext;
  }
  return Status::ok();
}

Status external32_file_type(MPI_Datatype type, MPI_Datatype* out) {
  return substitute_leaves(
      type,
      [](MPI_Datatype leaf) -> Result<MPI_Datatype> {
        Ext32Plan plan;
        STOR_RETURN_IF_ERROR(ext32_plan(leaf, &plan));
        if (plan.same_layout) return leaf;
        // An integer of another size (MPI_LONG, MPI_UNSIGNED_LONG, MPI_WCHAR): the fixed-size
        // integer of its external32 size stands for it in the file.
        if (plan.runs.size() == 1 && (plan.runs[0].op == 1 || plan.runs[0].op == 2)) {
          const bool is_signed = plan.runs[0].op == 1;
          switch (plan.runs[0].ext) {
            case 1: return is_signed ? MPI_INT8_T : MPI_UINT8_T;
            case 2: return is_signed ? MPI_INT16_T : MPI_UINT16_T;
            case 4: return is_signed ? MPI_INT32_T : MPI_UINT32_T;
            default: break;
          }
        }
        // A pair type whose value changes size (MPI_LONG_INT): its external32 bytes, packed.
        MPI_Datatype packed = MPI_DATATYPE_NULL;
        if (PMPI_Type_contiguous_c(plan.ext_size, MPI_BYTE, &packed) != MPI_SUCCESS || PMPI_Type_commit(&packed) != MPI_SUCCESS)
          return Status::Internal("no external32 file layout for " + type_name(leaf));
        return packed;
      },
      out);
}

void ext32_pack(const Ext32Plan& p, int64_t count, const char* buf, char* out) {
  for (int64_t i = 0; i < count; ++i)
    for (const auto& r : p.runs) {
      to_ext(r, r.values, buf + i * p.extent + r.off, out);
      out += r.values * r.ext;
    }
}

int64_t ext32_unpack(const Ext32Plan& p, int64_t count, const char* in, int64_t bytes, char* buf) {
  int64_t native = 0;
  for (int64_t i = 0; i < count && bytes > 0; ++i)
    for (const auto& r : p.runs) {
      const int64_t n = std::min(r.values, bytes / r.ext);  // whole values only
      from_ext(r, n, in, buf + i * p.extent + r.off);
      in += n * r.ext;
      bytes -= n * r.ext;
      native += n * r.native;
      if (n < r.values) return native;
    }
  return native;
}

int64_t ext32_native_bytes(const Ext32Plan& p, int64_t count, int64_t bytes) {
  if (p.ext_size <= 0) return 0;
  const int64_t whole = std::min(count, bytes / p.ext_size);
  int64_t native = whole * p.native_size;
  bytes -= whole * p.ext_size;
  for (const auto& r : p.runs) {
    const int64_t n = std::min(r.values, bytes / r.ext);
    native += n * r.native;
    bytes -= n * r.ext;
    if (n < r.values) break;
  }
  return native;
}

}  // namespace stor::mpiio
