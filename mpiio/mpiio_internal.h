// Internals of libstor_mpiio.so (see docs/mpiio.md): the stor file handle, file views flattened
// into byte blocks, error translation, and the two-phase collective I/O.
#pragma once

#include <mpi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "stor/status.h"
#include "stor/store.h"

namespace stor::mpiio {

// One contiguous byte range: of a datatype's type map, or of a file.
struct Block {
  int64_t off = 0;
  int64_t len = 0;
};

// A datatype's type map as byte blocks in type-map order, adjacent blocks merged.
struct FlatType {
  std::vector<Block> blocks;
  int64_t size = 0;    // MPI_Type_size
  int64_t lb = 0;      // MPI_Type_get_extent
  int64_t extent = 0;
  // One block starting at the origin that fills the extent: copies tile without gaps.
  bool contiguous() const {
    return size == 0 || (blocks.size() == 1 && blocks[0].off == 0 && blocks[0].len == extent);
  }
};

// Flattens any datatype built from predefined types (pair types such as MPI_SHORT_INT included)
// by the contiguous/vector/hvector/indexed/hindexed/indexed_block/hindexed_block/struct/subarray/
// darray/resized/dup constructors, classic or MPI-4 large-count (_c), and the Fortran-77
// hvector/hindexed/struct *_INTEGER combiners (MPI_Type_get_contents_c recursion).
Status flatten(MPI_Datatype type, FlatType* out);
// A run of `len` bytes at `off` holding consecutive elements of the predefined type `type`.
struct Leaf {
  int64_t off = 0;
  int64_t len = 0;
  MPI_Datatype type = MPI_DATATYPE_NULL;
};
// The type map as runs of predefined types in type-map order (pair types split into value and
// int), for data representation conversion (external32.cc).
Status flatten_leaves(MPI_Datatype type, std::vector<Leaf>* out);
// The "external32" conversion of one datatype (external32.cc): its predefined values in
// type-map order, each run converted between native and big-endian fixed-size external32.
struct Ext32Plan {
  struct Run {
    int64_t off = 0;     // from the element's origin in memory
    int64_t values = 0;  // consecutive values (parts of complex/pair types count singly)
    int native = 0, ext = 0;
    int op = 0;          // 0 byte swap, 1/2 signed/unsigned integer resize, 3 long double
  };
  std::vector<Run> runs;
  int64_t extent = 0;       // memory extent: count elements tile at this stride
  int64_t native_size = 0;  // MPI_Type_size
  int64_t ext_size = 0;     // external32 bytes of one element
  bool same_layout = true;  // every value keeps its size (no MPI_LONG, MPI_WCHAR, ...)
};
// Unsupported for leaves without an external32 representation.
Status ext32_plan(MPI_Datatype type, Ext32Plan* p);
// count elements at buf -> count * ext_size bytes at out.
void ext32_pack(const Ext32Plan& p, int64_t count, const char* buf, char* out);
// The first `bytes` external32 bytes back into count elements at buf (whole values only, so a
// short read fills a prefix); returns the native bytes filled.
int64_t ext32_unpack(const Ext32Plan& p, int64_t count, const char* in, int64_t bytes, char* buf);
// Native bytes that `bytes` external32 bytes of count elements convert to (whole values).
int64_t ext32_native_bytes(const Ext32Plan& p, int64_t count, int64_t bytes);

// `type` rebuilt by the same constructors with every predefined leaf replaced by leaf(leaf type)
// (committed; the caller frees it), or `type` itself when no leaf changes.
Status substitute_leaves(MPI_Datatype type, const std::function<Result<MPI_Datatype>(MPI_Datatype)>& leaf,
                         MPI_Datatype* out, int depth = 0);
// An external32 view's type as laid out in the file: every value at its external32 size
// (MPI_LONG -> 4 bytes), displacements of "portable" constructors scaled with it, byte
// displacements as given (MPI 4.0, 14.5). `type` itself when no value changes size.
Status external32_file_type(MPI_Datatype type, MPI_Datatype* out);

// Predefined (named or Fortran 90 parameterized) types: never duplicated or freed.
bool is_predefined_type(MPI_Datatype t);

// A file view (MPI_File_set_view) and the mapping of its data stream onto file bytes.
struct View {
  MPI_Offset disp = 0;
  MPI_Datatype etype = MPI_BYTE;     // our own duplicates for derived types
  MPI_Datatype filetype = MPI_BYTE;
  int64_t etype_size = 1;
  bool external32 = false;           // datarep "external32" (else "native"; "internal" is native)
  FlatType flat;                     // of filetype
  std::vector<int64_t> stream_start; // stream offset of each block within one filetype copy

  // Appends the file segments holding stream bytes [stream_off, stream_off + len), in stream
  // order, merging segments that continue each other.
  void map(int64_t stream_off, int64_t len, std::vector<Block>* segments) const;
  // File offset of stream byte stream_off (MPI_File_get_byte_offset).
  int64_t byte_offset(int64_t stream_off) const;
};

enum class CollectiveBuffering { kAutomatic, kEnable, kDisable };  // romio_cb_write / romio_cb_read

// Hints in effect for one open file (MPI_File_get_info reports them).
struct Hints {
  CollectiveBuffering cb_write = CollectiveBuffering::kAutomatic;
  CollectiveBuffering cb_read = CollectiveBuffering::kAutomatic;
  int cb_nodes = 0;             // aggregators for collective I/O; 0: default
  int64_t cb_buffer_size = 16 << 20;  // bytes an aggregator handles per two-phase round
  int64_t striping_unit = 0;    // bytes; file-domain granule of collective I/O
  int striping_factor = 0;      // stripe count (lustre)
  bool no_indep_rw = false;     // romio_no_indep_rw: the program promises collective I/O only
  int64_t ind_rd_buffer_size = 4 << 20;  // ROMIO's defaults; reported (no data sieving here)
  int64_t ind_wr_buffer_size = 512 << 10;
};

// Hints from info (unknown keys and values that do not parse are ignored).
void read_hints(MPI_Info info, Hints* h);
// A new info (caller frees): `user` plus the hints of ROMIO's system hints file ($ROMIO_HINTS,
// else /etc/romio-hints) it does not set itself. Collective: rank 0 reads the file.
MPI_Info with_system_hints(MPI_Comm comm, MPI_Info user);
// The hints in effect, under ROMIO's names (MPI_File_get_info).
void put_hints(const Hints& h, MPI_Info info);

// What an MPI_File handle of a stor file points to.
struct StorFile {
  static constexpr uint64_t kMagic = 0x53544f524d50494fULL;  // "STORMPIO"
  uint64_t magic = kMagic;
  uint64_t open_seq = 0;           // this process's opens in order (finalize closes in this order)
  MPI_Fint fint = 0;               // Fortran handle (MPI_File_c2f), in a range ROMIO's never reach
  MPI_Comm comm = MPI_COMM_NULL;   // private duplicate of the open communicator
  int rank = 0, nprocs = 1;
  int nodes = 1;                   // distinct shared-memory nodes in comm
  std::string name;                // as given to MPI_File_open, "stor:..."
  std::string uri;                 // without the "stor:" prefix
  int amode = 0;
  // This process's stor handle. Empty on ranks that cannot reach the backend themselves (the
  // emulated lustre file system is mounted by one process): collective calls still work there.
  std::optional<stor::File> file;
  std::vector<int> io_ranks;       // ranks holding a handle, ascending
  // Independent I/O of ranks without a handle is delegated to io_ranks.front(), whose service
  // thread answers on service_comm (needs MPI_THREAD_MULTIPLE, requested at MPI_Init).
  MPI_Comm service_comm = MPI_COMM_NULL;
  std::thread service;
  std::atomic<bool> stop_service{false};
  std::vector<int> aggregators;    // collective-I/O aggregators, a subset of io_ranks
  int64_t domain_unit = 1 << 20;   // collective file domains: units dealt round-robin to aggregators
  Hints hints;
  View view;
  MPI_Offset position = 0;         // individual file pointer, in etypes
  MPI_Errhandler errhandler = MPI_ERRORS_RETURN;
  // Nonblocking requests whose I/O is still running (nonblocking.cc); close waits for them, so
  // no engine callback outlives the stor handle.
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  int inflight = 0;
  // The split collective begun on this handle (MPI allows one at a time), or MPI_REQUEST_NULL.
  MPI_Request split = MPI_REQUEST_NULL;
  const char* split_call = nullptr;  // its *_begin call, to match the *_end
  // Shared file pointer (shared_fp.cc): one MPI_Offset in etypes on rank 0, updated with
  // MPI_Fetch_and_op under a passive-target lock.
  MPI_Win shared_win = MPI_WIN_NULL;
  MPI_Offset* shared_base = nullptr;
  std::atomic<bool> atomic{false}; // MPI_File_set_atomicity (atomic.cc); read by the service thread
  bool atomic_locks = false;       // atomic mode through stor::File::lock_range (else atomic_mu)
  std::mutex atomic_mu;            // one-process files of a backend without locks
};

// Atomic mode (atomic.cc). Collective: every rank switches, or all return the error.
Status set_atomicity(StorFile& f, bool on);
// Holds the atomic-mode lock over the extent of an independent access's segments (nothing when
// atomic mode is off).
class AtomicGuard {
 public:
  AtomicGuard(StorFile& f, const std::vector<Block>& segments, bool write);
  ~AtomicGuard();
  AtomicGuard(const AtomicGuard&) = delete;
  AtomicGuard& operator=(const AtomicGuard&) = delete;
  const Status& status() const { return status_; }

 private:
  StorFile& f_;
  uint64_t lock_id_ = 0;
  bool locked_ = false, mutex_held_ = false;
  Status status_;
};

bool is_stor_handle(MPI_File fh);
StorFile* lookup(MPI_File fh);
// The stor file behind a Fortran handle (MPI_File_f2c), or null.
StorFile* lookup_fortran(MPI_Fint fh);

// stor::Status -> an MPI error code of the closest class whose MPI_Error_string is the message.
int to_mpi_error(const Status& s);
int mpi_error(int error_class, const std::string& message);
// Applies the file's error handler (fatal: message and abort; a user handler is called) and
// returns the code.
int report(StorFile* f, int code);
// The function of a file error handler made by MPI_File_create_errhandler; null for others.
// *fortran: made through MPICH's Fortran bindings (called with Fortran integer arguments).
MPI_File_errhandler_function* user_errhandler(MPI_Errhandler eh, bool* fortran = nullptr);
// MPI_File_create_errhandler (MPICH's), recording the function for user_errhandler.
int create_errhandler(MPI_File_errhandler_function* fn, MPI_Errhandler* eh, bool fortran);
// A call stor cannot serve, in one wording: "stor cannot serve <call> on <file>: <reason>"
// (class MPI_ERR_UNSUPPORTED_OPERATION unless given), through the file's error handler.
// Unsupported statuses without a call at hand read "stor cannot serve this call: <reason>".
int unsupported(StorFile* f, const char* call, const std::string& reason,
                int error_class = MPI_ERR_UNSUPPORTED_OPERATION);
// unsupported() for a stor handle in a call libstor_mpiio does not implement.
int refuse(MPI_File fh, const char* call);
// A PMPI_File_* call on a stor handle (f) or a "stor:" name: unsupported(), saying that the PMPI_
// entry point bypasses the interposition (pmpi_guard.cc).
int bypassed(StorFile* f, const char* name, const char* call);
bool is_stor_file_name(const char* name);
// True when the function that called a PMPI_File_x / MPI_File_x entry point (whose return
// address is given) is MPICH's Fortran binding of that call (libmpichfort: mpif.h, use mpi,
// use mpi_f08). The f08 binding calls PMPI_File_* itself for the calls that move no data.
bool called_by_fortran_binding(void* return_address, const char* call);
// libstor_mpiio's own definition of an exported symbol (not a tool's that comes first).
void* own_definition_of(const char* symbol);
template <typename Fn>
Fn own_definition(const char* symbol) {
  return reinterpret_cast<Fn>(own_definition_of(symbol));
}
// MPICH's definition of a symbol we also define (the next one in lookup order).
void* next_definition_of(const char* symbol);
template <typename Fn>
Fn next_definition(const char* symbol) {
  return reinterpret_cast<Fn>(next_definition_of(symbol));
}

// A batch of asynchronous requests on one stor file. Blocking callers wait(); nonblocking ones
// poll done(). begin()/end() bracket a submission so a batch is not done half-submitted. With
// `on_idle`, it runs (under the batch's lock) each time the last pending request ends.
class IoBatch {
 public:
  explicit IoBatch(stor::File& file, std::function<void()> on_idle = {}) : file_(file), on_idle_(std::move(on_idle)) {}
  void write(const char* data, int64_t len, int64_t off);
  // Adds the bytes read to *got (stops early at end of file).
  void read(char* data, int64_t len, int64_t off, int64_t* got);
  Status wait();
  bool done();
  Status error();
  void begin();
  void end(Status s);

 private:
  void submit_write(const char* data, int64_t len, int64_t off);
  void submit_read(char* data, int64_t len, int64_t off, int64_t* got);

  stor::File& file_;
  std::function<void()> on_idle_;
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  Status error_;
};

// Segment I/O submitted to a batch: the stream is consecutive segments' bytes. For reads,
// got[i] collects segment i's bytes; bytes_read() then counts up to the first short segment.
void submit_writes(IoBatch& batch, const std::vector<Block>& segments, const char* stream);
void submit_reads(IoBatch& batch, const std::vector<Block>& segments, char* stream, std::vector<int64_t>* got);
int64_t bytes_read(const std::vector<Block>& segments, const std::vector<int64_t>& got);

// The caller's memory buffer (count x datatype) as a byte stream.
struct MemoryLayout {
  FlatType flat;
  int64_t count = 0;
  int64_t bytes = 0;
  bool direct = false;  // the stream is the buffer itself (at offset `direct_off`)
  int64_t direct_off = 0;
  // external32 view: the stream is the buffer converted (bytes = count * ext_size).
  std::shared_ptr<const Ext32Plan> ext32;
  // What MPI_Get_count sees: stream bytes moved, in native bytes of the buffer.
  int64_t status_bytes(int64_t moved) const { return ext32 ? ext32_native_bytes(*ext32, count, moved) : moved; }
};

// One data access prepared for I/O: arguments checked (`check`), the file segments of the
// stream, and the stream itself (the caller's buffer, or a packed copy for noncontiguous memory).
struct Access {
  Status check;
  MemoryLayout mem;
  std::vector<Block> segments;
  std::unique_ptr<char[]> packed;
  char* stream = nullptr;
  void* buf = nullptr;
  bool write = false;
};
// `offset` in etypes relative to the view.
void prepare_access(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write, Access* a);
// After a read: copies the first `bytes` stream bytes into a noncontiguous buffer.
void finish_read(const Access& a, int64_t bytes);
// The MPI error code of a failed access.
int access_error(const Status& s, bool write);
void set_status(MPI_Status* status, int64_t bytes);
// The blocking data access behind MPI_File_{read,write}[_at][_all] (mpiio.cc).
int access(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, MPI_Status* status, bool write,
           bool collective, int64_t* moved_bytes = nullptr);

// Nonblocking I/O (nonblocking.cc): starts count x type at `offset` (etypes) and returns an MPI
// generalized request in *req that MPI_Wait/Test/... complete. Collective forms do their
// exchange at the call; see the file for what overlaps.
int start_nonblocking(StorFile* f, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write,
                      bool collective, MPI_Request* req);
// Split collectives: *_begin starts the nonblocking collective, *_end waits for it.
int split_begin(StorFile* f, const char* call, MPI_Offset offset, void* buf, MPI_Count count, MPI_Datatype type, bool write,
                bool ordered);
int split_end(StorFile* f, const char* call, MPI_Status* status);
// Waits until no nonblocking I/O of f is running (before close).
void drain_nonblocking(StorFile* f);
// Finishes requests freed by MPI_Request_free before completion once their I/O is done (wait:
// waits for it), releasing their memory; called at every stor call, at close and finalize.
void progress_detached(bool wait);
// Closes the files left open (in open order), frees their windows, drops the Store: from
// MPI_Finalize, or from the delete callback of MPI_COMM_SELF's attribute. Idempotent.
void finalize_files();

// Shared file pointer (shared_fp.cc). Collective: create/free the window; reset to `pos`.
void shared_open(StorFile* f, MPI_Offset pos);
void shared_close(StorFile* f);
void shared_reset(StorFile* f, MPI_Offset pos);
// Atomically advances the shared pointer by `n` etypes; returns its previous value.
MPI_Offset shared_fetch_add(StorFile* f, MPI_Offset n);
// Collective: this rank's offset for an ordered access of `n` etypes (rank order), the pointer
// advanced past all ranks' data.
MPI_Offset shared_ordered(StorFile* f, MPI_Offset n);
int shared_seek(StorFile* f, MPI_Offset offset, int whence);
// Etypes of count x type (a whole number, else an argument error that the access reports).
int64_t etypes_of(StorFile* f, MPI_Count count, MPI_Datatype type);
// Stream offset (bytes of view data) of the first byte at or past file offset `size`.
int64_t stream_offset_of_eof(const View& v, int64_t size);
Result<int64_t> current_size(StorFile* f);

// MPI_File_get_type_extent(_c): the extent of type in the file's data representation.
int file_type_extent(StorFile* f, MPI_Datatype type, MPI_Count* extent);

// The blocking large-count (MPI_File_*_c) calls (large_count.cc): at *offset (etypes), or at
// the individual file pointer when offset is null.
int large_count_access(StorFile* f, const MPI_Offset* offset, void* buf, MPI_Count count, MPI_Datatype type,
                       MPI_Status* status, bool write, bool collective);

// Collective agreement on success: every rank learns the first failing rank's status.
Status agree(MPI_Comm comm, Status local);

// Two-phase collective I/O over the file's view. `stream` is the caller's data in view order
// (packed); `segments` are the file segments of that data in stream order. `local` is this
// rank's argument check: if any rank's failed, all return the first failure, having done no I/O.
// Where a nonblocking collective leaves the I/O it does not wait for: submitted to `batch`
// (null on ranks without a stor handle, which then never submit), the buffers that I/O uses kept
// alive in `buffers`, bytes read per segment in `got`.
struct AsyncIo {
  IoBatch* batch = nullptr;
  std::vector<std::unique_ptr<char[]>> buffers;
  std::vector<int64_t> got;
  bool submitted = false;  // this rank's own segments went to `batch` (independent branch)
};
// With `async` (which must be given on every rank or on none): on the independent branch this
// rank's I/O is only submitted; a two-phase write does its exchanges at the call and leaves the
// aggregators' writes of the last round in flight (their errors are the aggregators' own, not
// agreed on); a two-phase read is done in full.
Status collective_write(StorFile& f, const std::vector<Block>& segments, const char* stream, Status local,
                        AsyncIo* async = nullptr);
Status collective_read(StorFile& f, const std::vector<Block>& segments, char* stream, Status local,
                       AsyncIo* async = nullptr);

// Independent I/O of segments through this process's stor handle. Reads return bytes read up
// to the first short segment (end of file).
Result<int64_t> write_segments(stor::File& file, const std::vector<Block>& segments, const char* stream);
Result<int64_t> read_segments(stor::File& file, const std::vector<Block>& segments, char* stream);

// Delegation (delegate.cc): true when MPI runs with MPI_THREAD_MULTIPLE (see MPI_Init below).
bool delegation_available();
void set_delegation_available(bool on);
// Collective, after the io ranks are known: creates service_comm and starts the service thread
// on the delegate when some rank has no handle.
void start_delegation(StorFile& f);
// Collective part of close: stops and joins the service thread, frees service_comm.
void stop_delegation(StorFile& f);
enum class DelegatedOp : int64_t { kRead = 1, kWrite = 2, kSize = 3 };
// Runs op on the delegate: bytes moved (read/write) or the file size.
Result<int64_t> delegate(StorFile& f, DelegatedOp op, const std::vector<Block>& segments, char* stream, int64_t bytes);

}  // namespace stor::mpiio

// The body of an exported MPI_File_* wrapper: `f` is the stor file behind fh, or the call goes
// to MPICH (ROMIO) as `forward`.
#define STOR_FILE_OR_FORWARD(fh, forward)        \
  stor::mpiio::StorFile* f = stor::mpiio::lookup(fh); \
  if (!f) return forward;
