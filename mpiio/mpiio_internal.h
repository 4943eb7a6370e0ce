// Internals of libstor_mpiio.so (see docs/mpiio.md): the stor file handle, file views flattened
// into byte blocks, error translation, and the two-phase collective I/O.
#pragma once

#include <mpi.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <memory>
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

// Flattens any datatype built from named types with contiguous/vector/hvector/indexed/hindexed/
// indexed_block/hindexed_block/struct/subarray/resized/dup constructors (MPI_Type_get_contents
// recursion). DARRAY and Fortran-specific types give Unsupported.
Status flatten(MPI_Datatype type, FlatType* out);

// A file view (MPI_File_set_view) and the mapping of its data stream onto file bytes.
struct View {
  MPI_Offset disp = 0;
  MPI_Datatype etype = MPI_BYTE;     // our own duplicates for derived types
  MPI_Datatype filetype = MPI_BYTE;
  int64_t etype_size = 1;
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
};

// What an MPI_File handle of a stor file points to.
struct StorFile {
  static constexpr uint64_t kMagic = 0x53544f524d50494fULL;  // "STORMPIO"
  uint64_t magic = kMagic;
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
  bool atomic = false;
};

bool is_stor_handle(MPI_File fh);
StorFile* lookup(MPI_File fh);

// stor::Status -> an MPI error code of the closest class whose MPI_Error_string is the message.
int to_mpi_error(const Status& s);
int mpi_error(int error_class, const std::string& message);
// Applies the file's error handler (fatal: message and abort) and returns the code.
int report(StorFile* f, int code);
// MPI_ERR_UNSUPPORTED_OPERATION for a stor handle in a call libstor_mpiio does not implement.
int refuse(MPI_File fh, const char* call);

// Collective agreement on success: every rank learns the first failing rank's status.
Status agree(MPI_Comm comm, Status local);

// Two-phase collective I/O over the file's view. `stream` is the caller's data in view order
// (packed); `segments` are the file segments of that data in stream order. `local` is this
// rank's argument check: if any rank's failed, all return the first failure, having done no I/O.
Status collective_write(StorFile& f, const std::vector<Block>& segments, const char* stream, Status local);
Status collective_read(StorFile& f, const std::vector<Block>& segments, char* stream, Status local);

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
