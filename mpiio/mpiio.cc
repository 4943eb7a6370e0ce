// libstor_mpiio.so: MPI-IO through stor for files named "stor:<stor uri>", e.g.
// MPI_File_open(comm, "stor:lustre:///fs/run/out.bin", ...). Every other file goes to MPICH's
// ROMIO unchanged (PMPI_ entry points). Load it with LD_PRELOAD or link it before -lmpich.
//
// A stor file's MPI_File is a pointer to our own StorFile; the handle table tells the two kinds
// apart, so a stor handle never reaches ROMIO. MPI_File_* calls implemented here are listed in
// docs/mpiio.md; all others refuse stor handles with MPI_ERR_UNSUPPORTED_OPERATION
// (refused_calls.inc).
#include <strings.h>

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "mpiio_internal.h"

#include "stor/admin.h"

namespace stor::mpiio {

namespace {

constexpr const char* kPrefix = "stor:";
constexpr int64_t kDefaultDomainUnit = 1 << 20;

std::mutex g_mu;
std::unique_ptr<stor::Store> g_store;  // one per process, created by the first stor open
std::unordered_set<StorFile*>& handles() {
  static auto* h = new std::unordered_set<StorFile*>();  // never destroyed: usable at exit
  return *h;
}

uint64_t g_open_seq = 0;  // under g_mu

// Fortran handles (MPI_File_c2f) of stor files: integers from kFortranBase up. ROMIO numbers its
// own 1, 2, ... (one per MPI_File_c2f of a new file), so the ranges never meet; 0 stays
// MPI_FILE_NULL. Under g_mu.
constexpr MPI_Fint kFortranBase = MPI_Fint{1} << 30;
constexpr MPI_Fint kFortranRange = std::numeric_limits<MPI_Fint>::max() - kFortranBase;
MPI_Fint g_next_fortran = 0;
std::unordered_map<MPI_Fint, StorFile*>& fortran_handles() {
  static auto* h = new std::unordered_map<MPI_Fint, StorFile*>();
  return *h;
}

// MPI_Finalize deletes MPI_COMM_SELF's attributes before anything else (ROMIO hangs its own
// cleanup there the same way), so files left open are closed, their shared-file-pointer windows
// freed and freed-but-running requests finished even when the program's MPI_Finalize does not
// reach ours (a PMPI tool in front of us, a direct PMPI_Finalize).
int finalize_attr_delete(MPI_Comm, int keyval, void*, void*) {
  finalize_files();
  int k = keyval;
  PMPI_Comm_free_keyval(&k);
  return MPI_SUCCESS;
}

void ensure_finalize_hook() {
  static std::once_flag once;
  std::call_once(once, [] {
    int keyval = MPI_KEYVAL_INVALID;
    if (PMPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, finalize_attr_delete, &keyval, nullptr) == MPI_SUCCESS)
      PMPI_Comm_set_attr(MPI_COMM_SELF, keyval, nullptr);
  });
}

bool is_stor_name(const char* name) { return name && std::strncmp(name, kPrefix, std::strlen(kPrefix)) == 0; }

Result<stor::Store*> store() {
  std::lock_guard lk(g_mu);
  if (!g_store) {
    auto s = stor::Store::create({});
    if (!s) return s.status();
    g_store = std::move(*s);
  }
  return g_store.get();
}

// Our own reference to a datatype kept by a view (the caller may free theirs).
MPI_Datatype keep_type(MPI_Datatype t) {
  if (is_predefined_type(t)) return t;
  MPI_Datatype dup = MPI_DATATYPE_NULL;
  PMPI_Type_dup(t, &dup);
  return dup;
}
void release_type(MPI_Datatype& t) {
  if (t != MPI_DATATYPE_NULL && !is_predefined_type(t)) PMPI_Type_free(&t);
  t = MPI_DATATYPE_NULL;
}

void release(StorFile* f) {
  release_type(f->view.etype);
  release_type(f->view.filetype);
  if (f->comm != MPI_COMM_NULL) PMPI_Comm_free(&f->comm);
  {
    std::lock_guard lk(g_mu);
    handles().erase(f);
    fortran_handles().erase(f->fint);
  }
  delete f;
}

// ---- hints (parsing and reporting: hints.cc) ----

// Aggregators: cb_nodes ranks spread evenly over the ranks that hold a handle. Default, as
// ROMIO: one per stripe (at most one per rank) on striped files, else one per node (on one node
// more aggregators only add exchange traffic: measured, see docs/mpiio.md).
void choose_aggregators(StorFile* f, int stripe_count) {
  int n_io = static_cast<int>(f->io_ranks.size());
  int want = f->hints.cb_nodes > 0 ? f->hints.cb_nodes
                                   : (stripe_count > 0 ? std::min(f->nprocs, stripe_count) : f->nodes);
  int naggs = std::clamp(want, 1, std::max(1, n_io));
  f->aggregators.clear();
  for (int i = 0; i < naggs; ++i) f->aggregators.push_back(f->io_ranks[static_cast<size_t>(i) * n_io / naggs]);
  f->hints.cb_nodes = naggs;
}

// ---- open ----

Status check_amode(int amode) {
  int access = (amode & MPI_MODE_RDONLY ? 1 : 0) + (amode & MPI_MODE_WRONLY ? 1 : 0) + (amode & MPI_MODE_RDWR ? 1 : 0);
  if (access != 1) return Status::InvalidArgument("amode needs exactly one of MPI_MODE_RDONLY, MPI_MODE_WRONLY, MPI_MODE_RDWR");
  if ((amode & MPI_MODE_RDONLY) && (amode & (MPI_MODE_CREATE | MPI_MODE_EXCL)))
    return Status::InvalidArgument("MPI_MODE_RDONLY cannot be combined with MPI_MODE_CREATE or MPI_MODE_EXCL");
  if ((amode & MPI_MODE_RDWR) && (amode & MPI_MODE_SEQUENTIAL))
    return Status::InvalidArgument("MPI_MODE_RDWR cannot be combined with MPI_MODE_SEQUENTIAL");
  return Status::ok();
}

uint32_t access_flags(int amode) {
  if (amode & MPI_MODE_RDONLY) return kOpenRead;
  if (amode & MPI_MODE_WRONLY) return kOpenWrite;
  return kOpenRead | kOpenWrite;
}

struct StripeGeometry {
  int64_t unit = 0;
  int64_t count = 0;
};

// Rank 0, before creating: striping hints become the new file's lustre layout.
Status apply_striping_hints(stor::Store& st, const Uri& uri, const std::string& text, int amode, const Hints& h) {
  if (uri.scheme != "lustre" || !(amode & MPI_MODE_CREATE) || (h.striping_factor <= 0 && h.striping_unit <= 0))
    return Status::ok();
  auto existing = st.stat(text);
  if (existing.is_ok()) return Status::ok();  // a layout is fixed at creation, as on Lustre
  admin::StripeSpec spec;
  if (h.striping_factor > 0) spec.stripe_count = h.striping_factor;
  if (h.striping_unit > 0) spec.stripe_size = static_cast<uint64_t>(h.striping_unit);
  Status s = admin::setstripe(text, admin::LayoutSpec{spec});
  if (s.code() == Code::kInvalidArgument) {
    // Hints may be ignored; a bad one must not fail the open. Say so, though.
    std::fprintf(stderr, "libstor_mpiio: ignoring striping hints for %s: %s\n", text.c_str(), s.to_string().c_str());
    return Status::ok();
  }
  return s;
}

StripeGeometry stripe_geometry(const Uri& uri, const std::string& text) {
  if (uri.scheme == "lustre") {
    auto info = admin::getstripe(text);
    if (info.is_ok() && !info->layout.components.empty()) {
      const auto& c = info->layout.components[0];
      return {static_cast<int64_t>(c.stripe_size), static_cast<int64_t>(c.targets.size())};
    }
  }
  return {};
}

int open_stor(MPI_Comm comm, const char* filename, int amode, MPI_Info info, MPI_File* fh) {
  int inter = 0;
  PMPI_Comm_test_inter(comm, &inter);
  if (inter) return mpi_error(MPI_ERR_COMM, std::string("MPI_File_open of ") + filename + " needs an intracommunicator");
  if (Status s = check_amode(amode); !s.is_ok()) return mpi_error(MPI_ERR_AMODE, s.message() + " (" + filename + ")");

  auto* f = new StorFile();
  PMPI_Comm_dup(comm, &f->comm);
  PMPI_Comm_rank(f->comm, &f->rank);
  PMPI_Comm_size(f->comm, &f->nprocs);
  f->name = filename;
  f->uri = f->name.substr(std::strlen(kPrefix));
  f->amode = amode;
  {  // the program's hints over those of the ROMIO_HINTS file; rank 0's rule if ranks differ
    MPI_Info all = with_system_hints(f->comm, info);
    read_hints(all, &f->hints);
    PMPI_Info_free(&all);
    PMPI_Bcast(&f->hints, sizeof(Hints), MPI_BYTE, 0, f->comm);
  }

  auto fail = [&](const Status& s) {
    if (f->file) (void)f->file->close();
    f->file.reset();
    int code = to_mpi_error(s);
    release(f);
    return code;
  };

  // Rank 0 creates (and applies striping hints) before anyone else opens.
  Status s;
  StripeGeometry geo;
  if (f->rank == 0) {
    auto st = store();
    auto uri = Uri::parse(f->uri);
    if (!st.is_ok()) s = st.status();
    else if (!uri.is_ok()) s = uri.status().with_suffix(" (in '" + f->name + "')");
    else s = apply_striping_hints(**st, *uri, f->uri, amode, f->hints);
    if (s.is_ok()) {
      uint32_t flags = access_flags(amode);
      if (amode & MPI_MODE_CREATE) flags |= kOpenCreate;
      if (amode & MPI_MODE_EXCL) flags |= kOpenExclusive;
      auto file = (*st)->open(f->uri, flags);
      if (file.is_ok()) f->file = std::move(*file);
      else s = file.status();
    }
    if (s.is_ok()) geo = stripe_geometry(*uri, f->uri);
  }
  s = agree(f->comm, s);
  if (!s.is_ok()) return fail(s);

  // Everyone else opens the existing file. Busy means the backend admits one process (the
  // emulated lustre mount is held by rank 0's process): that rank then does collective I/O only.
  if (f->rank != 0) {
    auto st = store();
    if (!st.is_ok()) {
      s = st.status();
    } else {
      auto file = (*st)->open(f->uri, access_flags(amode));
      if (file.is_ok()) f->file = std::move(*file);
      else if (file.status().code() != Code::kBusy) s = file.status();
    }
  }
  s = agree(f->comm, s);
  if (!s.is_ok()) return fail(s);

  {  // nodes = ranks that lead their shared-memory group
    MPI_Comm node;
    PMPI_Comm_split_type(f->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    int node_rank = 0, leader = 0;
    PMPI_Comm_rank(node, &node_rank);
    leader = node_rank == 0 ? 1 : 0;
    PMPI_Allreduce(&leader, &f->nodes, 1, MPI_INT, MPI_SUM, f->comm);
    PMPI_Comm_free(&node);
  }
  std::vector<int> has(static_cast<size_t>(f->nprocs));
  int mine = f->file ? 1 : 0;
  PMPI_Allgather(&mine, 1, MPI_INT, has.data(), 1, MPI_INT, f->comm);
  for (int r = 0; r < f->nprocs; ++r)
    if (has[static_cast<size_t>(r)]) f->io_ranks.push_back(r);

  int64_t geo_vals[2] = {geo.unit, geo.count};
  PMPI_Bcast(geo_vals, 2, MPI_INT64_T, 0, f->comm);
  geo = {geo_vals[0], geo_vals[1]};
  // File domains follow the real stripe size when the backend has one, else the hint.
  f->domain_unit = geo.unit > 0 ? geo.unit : (f->hints.striping_unit > 0 ? f->hints.striping_unit : kDefaultDomainUnit);
  f->hints.striping_unit = f->domain_unit;
  // Report striping only where the backend stripes (a hint it could not apply is not in effect).
  f->hints.striping_factor = static_cast<int>(geo.count);
  choose_aggregators(f, static_cast<int>(geo.count));

  f->view.flat.blocks = {{0, 1}};
  f->view.flat.size = f->view.flat.extent = 1;
  f->view.stream_start = {0};
  MPI_Errhandler eh = MPI_ERRORS_RETURN;
  PMPI_File_get_errhandler(MPI_FILE_NULL, &eh);  // new files inherit MPI_FILE_NULL's handler
  f->errhandler = eh;

  if (amode & MPI_MODE_APPEND) {
    // The individual pointer starts at the end (the default view counts bytes).
    int64_t size = 0;
    if (f->file) {
      auto sz = f->file->size();
      if (sz.is_ok()) size = static_cast<int64_t>(*sz);
    }
    PMPI_Bcast(&size, 1, MPI_INT64_T, f->io_ranks.front(), f->comm);
    f->position = size;
  }
  start_delegation(*f);
  shared_open(f, f->position);  // with MPI_MODE_APPEND the shared pointer starts at the end too
  {
    std::lock_guard lk(g_mu);
    f->open_seq = ++g_open_seq;
    handles().insert(f);
    do {  // a value no open stor file has (wraps after 2^30 opens)
      f->fint = kFortranBase + g_next_fortran;
      g_next_fortran = (g_next_fortran + 1) % kFortranRange;
    } while (fortran_handles().count(f->fint));
    fortran_handles()[f->fint] = f;
  }
  ensure_finalize_hook();
  *fh = reinterpret_cast<MPI_File>(f);
  return MPI_SUCCESS;
}

// ---- data access ----

Status memory_layout(MPI_Count count, MPI_Datatype type, MemoryLayout* m) {
  if (count < 0) return Status::InvalidArgument("negative count");
  if (type == MPI_DATATYPE_NULL) return Status::InvalidArgument("MPI_DATATYPE_NULL as buffer type");
  STOR_RETURN_IF_ERROR(flatten(type, &m->flat));
  m->count = count;
  m->bytes = m->flat.size * count;
  if (m->flat.contiguous()) {
    m->direct = true;
  } else if (count <= 1 && m->flat.blocks.size() <= 1) {
    m->direct = true;
    m->direct_off = m->flat.blocks.empty() ? 0 : m->flat.blocks[0].off;
  }
  return Status::ok();
}

// An external32 view: the stream is always a converted copy.
Status external32_layout(MPI_Count count, MPI_Datatype type, MemoryLayout* m) {
  if (count < 0) return Status::InvalidArgument("negative count");
  if (type == MPI_DATATYPE_NULL) return Status::InvalidArgument("MPI_DATATYPE_NULL as buffer type");
  auto plan = std::make_shared<Ext32Plan>();
  STOR_RETURN_IF_ERROR(ext32_plan(type, plan.get()));
  m->count = count;
  m->bytes = plan->ext_size * count;
  m->ext32 = std::move(plan);
  return Status::ok();
}

void pack(const MemoryLayout& m, const char* buf, char* stream) {
  for (int64_t i = 0; i < m.count; ++i)
    for (const auto& b : m.flat.blocks) {
      std::memcpy(stream, buf + i * m.flat.extent + b.off, static_cast<size_t>(b.len));
      stream += b.len;
    }
}

// Copies the first `bytes` stream bytes back into the buffer (a short read fills a prefix).
void unpack(const MemoryLayout& m, const char* stream, char* buf, int64_t bytes) {
  for (int64_t i = 0; i < m.count && bytes > 0; ++i)
    for (const auto& b : m.flat.blocks) {
      int64_t n = std::min(b.len, bytes);
      std::memcpy(buf + i * m.flat.extent + b.off, stream, static_cast<size_t>(n));
      stream += n;
      bytes -= n;
      if (bytes == 0) break;
    }
}

}  // namespace

void set_status(MPI_Status* status, int64_t bytes) {
  if (status == MPI_STATUS_IGNORE) return;
  PMPI_Status_set_elements_x(status, MPI_BYTE, bytes);
  PMPI_Status_set_cancelled(status, 0);
}

// The file size, asked of the delegate on ranks without a handle.
Result<int64_t> current_size(StorFile* f) {
  if (!f->file) return delegate(*f, DelegatedOp::kSize, {}, nullptr, 0);
  auto sz = f->file->size();
  if (!sz.is_ok()) return sz.status();
  return static_cast<int64_t>(*sz);
}

int access_error(const Status& s, bool write) {
  switch (s.code()) {
    case Code::kPermissionDenied: return mpi_error(write ? MPI_ERR_READ_ONLY : MPI_ERR_ACCESS, s.to_string());
    case Code::kInvalidArgument: return mpi_error(MPI_ERR_ARG, s.to_string());
    default: return to_mpi_error(s);
  }
}

void prepare_access(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write, Access* a) {
  Status s;
  MemoryLayout& mem = a->mem;
  if (offset < 0) s = Status::InvalidArgument("negative file offset");
  else if (write && (f->amode & MPI_MODE_RDONLY)) s = Status::PermissionDenied(f->name + " was opened MPI_MODE_RDONLY");
  else if (!write && (f->amode & MPI_MODE_WRONLY)) s = Status::PermissionDenied(f->name + " was opened MPI_MODE_WRONLY");
  else s = f->view.external32 ? external32_layout(count, type, &mem) : memory_layout(count, type, &mem);
  if (s.is_ok() && mem.bytes > 0 && f->view.flat.size == 0)
    s = Status::InvalidArgument("the file view's filetype has size 0: no data can be accessed");
  if (s.is_ok() && mem.bytes % f->view.etype_size != 0)
    s = Status::InvalidArgument("only a whole number of etypes can be accessed (" + std::to_string(mem.bytes) +
                                           " bytes, etype of " + std::to_string(f->view.etype_size) + ")");
  a->check = s;
  a->buf = buf;
  a->write = write;
  a->stream = static_cast<char*>(buf) + mem.direct_off;
  if (!s.is_ok()) return;
  f->view.map(offset * f->view.etype_size, mem.bytes, &a->segments);
  if (!mem.direct) {
    a->packed.reset(new char[static_cast<size_t>(std::max<int64_t>(mem.bytes, 1))]);
    a->stream = a->packed.get();
    if (write && mem.ext32) ext32_pack(*mem.ext32, mem.count, static_cast<const char*>(buf), a->stream);
    else if (write) pack(mem, static_cast<const char*>(buf), a->stream);
  }
}

void finish_read(const Access& a, int64_t bytes) {
  if (a.mem.ext32) ext32_unpack(*a.mem.ext32, a.mem.count, a.stream, bytes, static_cast<char*>(a.buf));
  else if (!a.mem.direct) unpack(a.mem, a.stream, static_cast<char*>(a.buf), bytes);
}

// One read or write of count x type at `offset` (etypes, relative to the view). Collective calls
// agree on errors so no rank is left waiting in a collective the others skipped.
int access(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status, bool write,
           bool collective, int64_t* moved_bytes) {
  Access a;
  prepare_access(f, offset, buf, count, type, write, &a);
  // Collective calls settle a failed check inside the exchange (every rank returns the error).
  const Status& check = a.check;
  if (!check.is_ok() && !collective) return report(f, access_error(check, write));
  const std::vector<Block>& segments = a.segments;
  char* stream = a.stream;
  Status s;
  int64_t moved = a.mem.bytes;
  // Atomic mode: independent accesses lock their extent (served ones are locked by the delegate).
  std::optional<AtomicGuard> atomic_guard;
  if (!collective && f->file && check.is_ok()) {
    atomic_guard.emplace(*f, segments, write);
    if (!atomic_guard->status().is_ok()) return report(f, to_mpi_error(atomic_guard->status()));
  }
  if (write) {
    if (collective) {
      s = collective_write(*f, segments, stream, check);
    } else {
      auto r = f->file ? write_segments(*f->file, segments, stream)
                       : delegate(*f, DelegatedOp::kWrite, segments, stream, a.mem.bytes);
      s = r.status();
    }
  } else {
    if (collective) {
      s = collective_read(*f, segments, stream, check);  // like ROMIO: reports the full count
    } else {
      auto r = f->file ? read_segments(*f->file, segments, stream)
                       : delegate(*f, DelegatedOp::kRead, segments, stream, a.mem.bytes);
      s = r.status();
      if (r.is_ok()) moved = *r;
    }
    if (s.is_ok()) finish_read(a, moved);
  }
  atomic_guard.reset();
  // Atomic mode: a collective call returns on no rank before every rank's data is in place, so
  // no independent access that follows can overlap it half-done (entry is already synchronised
  // by the collective's first exchange).
  if (collective && f->atomic.load()) PMPI_Barrier(f->comm);
  if (!s.is_ok()) return report(f, access_error(s, write));
  set_status(status, a.mem.status_bytes(moved));
  if (moved_bytes) *moved_bytes = moved;
  return MPI_SUCCESS;
}

namespace {

// Individual-file-pointer forms: access at the pointer, then advance it by what moved.
int access_at_pointer(StorFile* f, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status, bool write,
                      bool collective) {
  int64_t moved = 0;
  int rc = access(f, f->position, buf, count, type, status, write, collective, &moved);
  if (rc == MPI_SUCCESS) f->position += moved / f->view.etype_size;
  return rc;
}

int first_io_rank(const StorFile* f) { return f->io_ranks.front(); }

// A file on a multi-client lustre:// mount (non-empty authority: lustre://HOST:PORT/...), where
// every rank holds its own handle and its own idea of the size until it syncs.
bool cluster_mount(const StorFile& f) {
  auto uri = Uri::parse(f.uri);
  return uri.is_ok() && uri->scheme == "lustre" && !uri->authority.empty() && f.io_ranks.size() > 1;
}

}  // namespace

// Stream offset (bytes of view data) of the first byte at or past file offset `size`.
int64_t stream_offset_of_eof(const View& v, int64_t size) {
  int64_t rel = size - v.disp;
  if (rel <= 0 || v.flat.size == 0 || v.flat.extent <= 0) return 0;
  if (v.flat.contiguous()) return rel;
  int64_t tile = rel / v.flat.extent;
  int64_t r = rel - tile * v.flat.extent;
  int64_t stream = tile * v.flat.size;
  for (const auto& b : v.flat.blocks) stream += std::clamp<int64_t>(r - b.off, 0, b.len);
  return stream;
}

int file_type_extent(StorFile* f, MPI_Datatype type, MPI_Count* extent) {
  MPI_Count lb = 0;
  // external32: the extent in the file (ROMIO answers the memory extent, the same unless a
  // value changes size: MPI_LONG is 4 bytes here, 8 in ROMIO).
  MPI_Datatype ft = type;
  if (f->view.external32 && type != MPI_DATATYPE_NULL) {
    Status s = external32_file_type(type, &ft);
    if (!s.is_ok()) return unsupported(f, "MPI_File_get_type_extent", s.message(), MPI_ERR_UNSUPPORTED_DATAREP);
  }
  int rc = PMPI_Type_get_extent_c(ft, &lb, extent);
  if (ft != type && !is_predefined_type(ft)) PMPI_Type_free(&ft);
  return rc;
}

bool is_stor_handle(MPI_File fh) { return lookup(fh) != nullptr; }
bool is_stor_file_name(const char* name) { return is_stor_name(name); }

int large_count_access(StorFile* f, const MPI_Offset* offset, void* buf, MPI_Count count, MPI_Datatype type,
                       MPI_Status* status, bool write, bool collective) {
  return offset ? access(f, *offset, buf, count, type, status, write, collective)
                : access_at_pointer(f, buf, count, type, status, write, collective);
}

StorFile* lookup(MPI_File fh) {
  progress_detached(false);
  auto* f = reinterpret_cast<StorFile*>(fh);
  std::lock_guard lk(g_mu);
  return handles().count(f) ? f : nullptr;
}

StorFile* lookup_fortran(MPI_Fint fh) {
  if (fh < kFortranBase) return nullptr;  // ROMIO's (or MPI_FILE_NULL's)
  std::lock_guard lk(g_mu);
  auto it = fortran_handles().find(fh);
  return it == fortran_handles().end() ? nullptr : it->second;
}

// ---- the MPI entry points (bodies; the extern "C" symbols are below) ----

int file_open(MPI_Comm comm, const char* filename, int amode, MPI_Info info, MPI_File* fh) {
  if (!is_stor_name(filename)) return PMPI_File_open(comm, filename, amode, info, fh);
  if (!fh) return report(nullptr, mpi_error(MPI_ERR_ARG, "MPI_File_open: null file handle pointer"));
  *fh = MPI_FILE_NULL;
  return report(nullptr, open_stor(comm, filename, amode, info, fh));
}

int file_close(MPI_File* fh) {
  StorFile* f = fh ? lookup(*fh) : nullptr;
  if (!f) return PMPI_File_close(fh);
  drain_nonblocking(f);  // no engine callback may outlive the handle
  progress_detached(false);  // freed requests of this file are done now: release them
  // Independent requests other ranks delegated are answered before they can get here.
  PMPI_Barrier(f->comm);
  stop_delegation(*f);
  shared_close(f);
  Status s;
  if (f->file) s = f->file->close();
  f->file.reset();
  s = agree(f->comm, s);
  if (s.is_ok() && (f->amode & MPI_MODE_DELETE_ON_CLOSE)) {
    Status r;
    if (f->rank == 0) {
      auto st = store();
      r = st.is_ok() ? (*st)->remove(f->uri) : st.status();
    }
    s = agree(f->comm, r);
  }
  int code = report(f, to_mpi_error(s));
  release(f);
  *fh = MPI_FILE_NULL;
  return code;
}

int file_delete(const char* filename, MPI_Info info) {
  if (!is_stor_name(filename)) return PMPI_File_delete(filename, info);
  auto st = store();
  Status s = st.is_ok() ? (*st)->remove(filename + std::strlen(kPrefix)) : st.status();
  return report(nullptr, to_mpi_error(s));
}

int file_set_size(StorFile* f, MPI_Offset size, bool at_least) {
  Status s;
  if (size < 0) s = Status::InvalidArgument("negative file size");
  else if (f->amode & MPI_MODE_RDONLY) s = Status::PermissionDenied(f->name + " was opened MPI_MODE_RDONLY");
  s = agree(f->comm, s);
  if (!s.is_ok()) return report(f, mpi_error(s.code() == Code::kPermissionDenied ? MPI_ERR_READ_ONLY : MPI_ERR_ARG, s.message()));
  if (cluster_mount(*f)) {
    // Every rank's writes reach the MDS first, and the truncating rank then learns the whole
    // file's size (its sync after the others' pulls it): a shrink cuts exactly, preallocate
    // compares with the real size.
    if (f->file) s = f->file->sync(true);
    s = agree(f->comm, s);
    if (!s.is_ok()) return report(f, to_mpi_error(s));
    if (f->rank == first_io_rank(f)) s = f->file->sync(true);  // failing here skips the truncate
  }
  if (f->rank == first_io_rank(f) && s.is_ok()) {
    if (at_least) {  // preallocate: grow only
      auto cur = f->file->size();
      if (!cur.is_ok()) s = cur.status();
      else if (static_cast<int64_t>(*cur) < size) s = f->file->truncate(static_cast<uint64_t>(size));
    } else {
      s = f->file->truncate(static_cast<uint64_t>(size));
    }
  }
  s = agree(f->comm, s);
  // On a lustre://HOST:PORT cluster each rank's handle keeps the size it knows (the MDS merges
  // sizes at sync/close); a sync makes the others adopt the size the first rank just set.
  if (s.is_ok() && f->file && f->rank != first_io_rank(f) && cluster_mount(*f)) s = f->file->sync(true);
  if (cluster_mount(*f)) s = agree(f->comm, s);
  return report(f, to_mpi_error(s));
}

int file_get_size(StorFile* f, MPI_Offset* size) {
  auto sz = current_size(f);
  if (!sz.is_ok()) return report(f, to_mpi_error(sz.status()));
  *size = static_cast<MPI_Offset>(*sz);
  return MPI_SUCCESS;
}

int file_set_view(StorFile* f, MPI_Offset disp, MPI_Datatype etype, MPI_Datatype filetype, const char* datarep) {
  Status s;
  int cls = MPI_ERR_ARG;
  View v;
  // As ROMIO: "internal" is "native" (get_view then says "native"); external32 converts.
  const bool external32 = datarep && strcasecmp(datarep, "external32") == 0;
  if (!datarep || (strcasecmp(datarep, "native") != 0 && strcasecmp(datarep, "internal") != 0 && !external32)) {
    cls = MPI_ERR_UNSUPPORTED_DATAREP;
    s = Status::Unsupported(std::string("data representation '") + (datarep ? datarep : "(null)") +
                            "' (stor files support \"native\", \"internal\" and \"external32\"; ROMIO uses no "
                            "MPI_Register_datarep representation either)");
  } else if (disp < 0) {
    s = Status::InvalidArgument("negative displacement (MPI_DISPLACEMENT_CURRENT needs MPI_MODE_SEQUENTIAL)");
  } else {
    // external32: the view's types as they lie in the file (themselves unless a value changes
    // size, e.g. MPI_LONG), so the layout is ROMIO's wherever ROMIO's is right.
    MPI_Datatype fe = etype, ff = filetype;
    if (external32) {
      s = external32_file_type(etype, &fe);
      if (s.is_ok()) s = external32_file_type(filetype, &ff);
      if (!s.is_ok()) cls = MPI_ERR_UNSUPPORTED_DATAREP;
    }
    FlatType eflat;
    if (s.is_ok()) s = flatten(fe, &eflat);
    if (s.is_ok()) s = flatten(ff, &v.flat);
    for (MPI_Datatype* t : {&fe, &ff})
      if (*t != etype && *t != filetype && !is_predefined_type(*t)) PMPI_Type_free(t);
    if (s.is_ok()) {
      cls = MPI_ERR_TYPE;
      v.etype_size = eflat.size;
      if (eflat.size <= 0) s = Status::InvalidArgument("etype has size 0");
      else if (v.flat.size % eflat.size != 0)
        s = Status::InvalidArgument("filetype size is not a multiple of the etype size");
      for (size_t i = 0; s.is_ok() && i < v.flat.blocks.size(); ++i) {
        if (v.flat.blocks[i].off < 0 || (i > 0 && v.flat.blocks[i].off < v.flat.blocks[i - 1].off + v.flat.blocks[i - 1].len))
          s = Status::InvalidArgument("filetype displacements must be non-negative and monotonically increasing");
      }
    } else if (s.code() == Code::kUnsupported && cls != MPI_ERR_UNSUPPORTED_DATAREP) {
      cls = MPI_ERR_UNSUPPORTED_OPERATION;
    }
  }
  Status all = agree(f->comm, s);
  if (!all.is_ok()) {
    if (all.code() == Code::kUnsupported)
      return unsupported(f, "MPI_File_set_view", all.message(), s.is_ok() ? MPI_ERR_UNSUPPORTED_OPERATION : cls);
    return report(f, mpi_error(s.is_ok() ? MPI_ERR_ARG : cls, all.message()));
  }
  v.disp = disp;
  v.external32 = external32;
  v.etype = keep_type(etype);
  v.filetype = keep_type(filetype);
  int64_t pos = 0;
  for (const auto& b : v.flat.blocks) {
    v.stream_start.push_back(pos);
    pos += b.len;
  }
  release_type(f->view.etype);
  release_type(f->view.filetype);
  f->view = std::move(v);
  f->position = 0;
  return MPI_SUCCESS;
}

int file_get_view(StorFile* f, MPI_Offset* disp, MPI_Datatype* etype, MPI_Datatype* filetype, char* datarep) {
  if (disp) *disp = f->view.disp;
  if (etype) *etype = keep_type(f->view.etype);  // derived types come back as new handles
  if (filetype) *filetype = keep_type(f->view.filetype);
  if (datarep) std::strcpy(datarep, f->view.external32 ? "external32" : "native");
  return MPI_SUCCESS;
}

int file_seek(StorFile* f, MPI_Offset offset, int whence) {
  int64_t pos = 0;
  if (whence == MPI_SEEK_SET) {
    pos = offset;
  } else if (whence == MPI_SEEK_CUR) {
    pos = f->position + offset;
  } else if (whence == MPI_SEEK_END) {
    auto sz = current_size(f);
    if (!sz.is_ok()) return report(f, to_mpi_error(sz.status()));
    int64_t eof = stream_offset_of_eof(f->view, static_cast<int64_t>(*sz));
    pos = (eof + f->view.etype_size - 1) / f->view.etype_size + offset;
  } else {
    return report(f, mpi_error(MPI_ERR_ARG, "MPI_File_seek: whence must be MPI_SEEK_SET, MPI_SEEK_CUR or MPI_SEEK_END"));
  }
  if (pos < 0) return report(f, mpi_error(MPI_ERR_ARG, "MPI_File_seek: resulting position is negative"));
  f->position = pos;
  return MPI_SUCCESS;
}

int file_get_info(StorFile* f, MPI_Info* info) {
  PMPI_Info_create(info);
  put_hints(f->hints, *info);
  PMPI_Info_set(*info, "stor_uri", f->uri.c_str());
  PMPI_Info_set(*info, "stor_io_ranks", std::to_string(f->io_ranks.size()).c_str());
  return MPI_SUCCESS;
}

int file_set_info(StorFile* f, MPI_Info info) {
  // Striping is fixed at creation (as on Lustre) and romio_no_indep_rw at open (as in ROMIO);
  // the rest can change. Rank 0's values rule.
  Hints h = f->hints;
  h.cb_nodes = 0;
  read_hints(info, &h);
  h.striping_unit = f->hints.striping_unit;
  h.striping_factor = f->hints.striping_factor;
  h.no_indep_rw = f->hints.no_indep_rw;
  PMPI_Bcast(&h, sizeof(Hints), MPI_BYTE, 0, f->comm);
  const int cb = h.cb_nodes;
  h.cb_nodes = f->hints.cb_nodes;
  f->hints = h;
  if (cb > 0) {
    f->hints.cb_nodes = cb;
    choose_aggregators(f, f->hints.striping_factor);
  }
  return MPI_SUCCESS;
}

int file_sync(StorFile* f) {
  Status s;
  // ROMIO syncs read-only files without complaint; so do we (nothing to flush).
  if (f->file && !(f->amode & MPI_MODE_RDONLY)) s = f->file->sync(false);
  s = agree(f->comm, s);
  if (s.is_ok() && cluster_mount(*f)) {
    // MPI: after the (collective) sync every rank sees all ranks' earlier writes. Each handle of
    // a cluster mount knows the size it reached; now that every rank merged its size at the MDS
    // (the agree above), a second sync brings the merged size into this handle.
    if (f->file) s = f->file->sync(true);
    s = agree(f->comm, s);
  }
  return report(f, to_mpi_error(s));
}

int file_set_errhandler(StorFile* f, MPI_Errhandler eh) {
  if (eh != MPI_ERRORS_RETURN && eh != MPI_ERRORS_ARE_FATAL && eh != MPI_ERRORS_ABORT && !user_errhandler(eh))
    return unsupported(f, "MPI_File_set_errhandler",
                       "an error handler not made by MPI_File_create_errhandler after libstor_mpiio was loaded");
  f->errhandler = eh == MPI_ERRORS_ABORT ? MPI_ERRORS_ARE_FATAL : eh;
  return MPI_SUCCESS;
}

void finalize_files() {
  progress_detached(true);
  std::vector<StorFile*> open;
  {
    std::lock_guard lk(g_mu);
    open.assign(handles().begin(), handles().end());
  }
  // In open order, the same on every rank: freeing the windows is collective per file.
  std::sort(open.begin(), open.end(), [](const StorFile* a, const StorFile* b) { return a->open_seq < b->open_seq; });
  for (StorFile* f : open) {
    std::fprintf(stderr, "libstor_mpiio: %s was not closed before MPI_Finalize; closing it\n", f->name.c_str());
    drain_nonblocking(f);
    stop_delegation(*f);
    shared_close(f);
    if (f->file) (void)f->file->close();
    f->file.reset();
    release(f);
  }
  std::lock_guard lk(g_mu);
  g_store.reset();  // unmounts (the emulated lustre fs checkpoints and unlocks here)
}

}  // namespace stor::mpiio

// ---- exported symbols ----

using stor::mpiio::lookup;
using stor::mpiio::StorFile;

extern "C" {

int MPI_File_open(MPI_Comm comm, const char* filename, int amode, MPI_Info info, MPI_File* fh) {
  return stor::mpiio::file_open(comm, filename, amode, info, fh);
}
int MPI_File_close(MPI_File* fh) { return stor::mpiio::file_close(fh); }
int MPI_File_delete(const char* filename, MPI_Info info) { return stor::mpiio::file_delete(filename, info); }

int MPI_File_set_size(MPI_File fh, MPI_Offset size) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_set_size(fh, size));
  return stor::mpiio::file_set_size(f, size, false);
}
int MPI_File_preallocate(MPI_File fh, MPI_Offset size) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_preallocate(fh, size));
  return stor::mpiio::file_set_size(f, size, true);
}
int MPI_File_get_size(MPI_File fh, MPI_Offset* size) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_size(fh, size));
  return stor::mpiio::file_get_size(f, size);
}
int MPI_File_get_group(MPI_File fh, MPI_Group* group) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_group(fh, group));
  return PMPI_Comm_group(f->comm, group);
}
int MPI_File_get_amode(MPI_File fh, int* amode) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_amode(fh, amode));
  *amode = f->amode;
  return MPI_SUCCESS;
}
int MPI_File_set_info(MPI_File fh, MPI_Info info) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_set_info(fh, info));
  return stor::mpiio::file_set_info(f, info);
}
int MPI_File_get_info(MPI_File fh, MPI_Info* info) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_info(fh, info));
  return stor::mpiio::file_get_info(f, info);
}
int MPI_File_set_view(MPI_File fh, MPI_Offset disp, MPI_Datatype etype, MPI_Datatype filetype, const char* datarep,
                      MPI_Info info) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_set_view(fh, disp, etype, filetype, datarep, info));
  int rc = stor::mpiio::file_set_view(f, disp, etype, filetype, datarep);
  if (rc != MPI_SUCCESS) return rc;
  stor::mpiio::shared_reset(f, 0);  // set_view resets both file pointers
  return stor::mpiio::file_set_info(f, info);  // hints may come with the view, as in ROMIO
}
int MPI_File_get_view(MPI_File fh, MPI_Offset* disp, MPI_Datatype* etype, MPI_Datatype* filetype, char* datarep) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_view(fh, disp, etype, filetype, datarep));
  return stor::mpiio::file_get_view(f, disp, etype, filetype, datarep);
}

int MPI_File_read_at(MPI_File fh, MPI_Offset offset, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_at(fh, offset, buf, count, type, status));
  return stor::mpiio::access(f, offset, buf, count, type, status, false, false);
}
int MPI_File_write_at(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type,
                      MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_at(fh, offset, buf, count, type, status));
  return stor::mpiio::access(f, offset, const_cast<void*>(buf), count, type, status, true, false);
}
int MPI_File_read_at_all(MPI_File fh, MPI_Offset offset, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_at_all(fh, offset, buf, count, type, status));
  return stor::mpiio::access(f, offset, buf, count, type, status, false, true);
}
int MPI_File_write_at_all(MPI_File fh, MPI_Offset offset, const void* buf, int count, MPI_Datatype type,
                          MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_at_all(fh, offset, buf, count, type, status));
  return stor::mpiio::access(f, offset, const_cast<void*>(buf), count, type, status, true, true);
}
int MPI_File_read(MPI_File fh, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read(fh, buf, count, type, status));
  return stor::mpiio::access_at_pointer(f, buf, count, type, status, false, false);
}
int MPI_File_write(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write(fh, buf, count, type, status));
  return stor::mpiio::access_at_pointer(f, const_cast<void*>(buf), count, type, status, true, false);
}
int MPI_File_read_all(MPI_File fh, void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_read_all(fh, buf, count, type, status));
  return stor::mpiio::access_at_pointer(f, buf, count, type, status, false, true);
}
int MPI_File_write_all(MPI_File fh, const void* buf, int count, MPI_Datatype type, MPI_Status* status) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_write_all(fh, buf, count, type, status));
  return stor::mpiio::access_at_pointer(f, const_cast<void*>(buf), count, type, status, true, true);
}

int MPI_File_seek(MPI_File fh, MPI_Offset offset, int whence) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_seek(fh, offset, whence));
  return stor::mpiio::file_seek(f, offset, whence);
}
int MPI_File_get_position(MPI_File fh, MPI_Offset* offset) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_position(fh, offset));
  *offset = f->position;
  return MPI_SUCCESS;
}
int MPI_File_get_byte_offset(MPI_File fh, MPI_Offset offset, MPI_Offset* disp) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_byte_offset(fh, offset, disp));
  if (offset < 0) return stor::mpiio::report(f, stor::mpiio::mpi_error(MPI_ERR_ARG, "negative offset"));
  *disp = f->view.byte_offset(offset * f->view.etype_size);
  return MPI_SUCCESS;
}
int MPI_File_get_type_extent(MPI_File fh, MPI_Datatype type, MPI_Aint* extent) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_type_extent(fh, type, extent));
  MPI_Count e = 0;
  int rc = stor::mpiio::file_type_extent(f, type, &e);
  if (rc == MPI_SUCCESS) *extent = static_cast<MPI_Aint>(e);
  return rc;
}
int MPI_File_set_atomicity(MPI_File fh, int flag) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_set_atomicity(fh, flag));
  stor::Status s = stor::mpiio::set_atomicity(*f, flag != 0);
  if (s.code() == stor::Code::kUnsupported) return stor::mpiio::unsupported(f, "MPI_File_set_atomicity", s.message());
  return stor::mpiio::report(f, stor::mpiio::to_mpi_error(s));
}
int MPI_File_get_atomicity(MPI_File fh, int* flag) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_atomicity(fh, flag));
  *flag = f->atomic ? 1 : 0;
  return MPI_SUCCESS;
}
int MPI_File_sync(MPI_File fh) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_sync(fh));
  return stor::mpiio::file_sync(f);
}
int MPI_File_set_errhandler(MPI_File fh, MPI_Errhandler eh) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_set_errhandler(fh, eh));
  return stor::mpiio::file_set_errhandler(f, eh);
}
int MPI_File_get_errhandler(MPI_File fh, MPI_Errhandler* eh) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_get_errhandler(fh, eh));
  *eh = f->errhandler;
  return MPI_SUCCESS;
}
int MPI_File_call_errhandler(MPI_File fh, int code) {
  STOR_FILE_OR_FORWARD(fh, PMPI_File_call_errhandler(fh, code));
  stor::mpiio::report(f, code);
  return MPI_SUCCESS;
}
// Fortran bindings turn handles into integers and back through these (MPICH's mpif.h/`use mpi`
// and `use mpi_f08` wrappers both call MPI_File_c2f/MPI_File_f2c, not the PMPI_ forms).
MPI_Fint MPI_File_c2f(MPI_File fh) {
  StorFile* f = lookup(fh);
  if (!f) return PMPI_File_c2f(fh);
  return f->fint;
}
MPI_File MPI_File_f2c(MPI_Fint fh) {
  if (StorFile* f = stor::mpiio::lookup_fortran(fh)) return reinterpret_cast<MPI_File>(f);
  return PMPI_File_f2c(fh);
}

// Delegated independent I/O needs a service thread, hence MPI_THREAD_MULTIPLE (a higher level
// than asked for is allowed by the standard).
static int init_thread(int* argc, char*** argv, int required, int* provided) {
  const char* env = std::getenv("STOR_MPIIO_DELEGATION");
  bool want = !(env && std::strcmp(env, "0") == 0);
  int got = MPI_THREAD_SINGLE;
  int rc = PMPI_Init_thread(argc, argv, want ? std::max(required, static_cast<int>(MPI_THREAD_MULTIPLE)) : required, &got);
  stor::mpiio::set_delegation_available(rc == MPI_SUCCESS && got == MPI_THREAD_MULTIPLE);
  if (provided) *provided = got;
  return rc;
}
int MPI_Init(int* argc, char*** argv) { return init_thread(argc, argv, MPI_THREAD_SINGLE, nullptr); }
int MPI_Init_thread(int* argc, char*** argv, int required, int* provided) {
  return init_thread(argc, argv, required, provided);
}

int MPI_Finalize(void) {
  stor::mpiio::finalize_files();
  return PMPI_Finalize();
}

}  // extern "C"

#include "refused_calls.inc"
