// Delegated independent I/O. Some backends admit one process per file system (the emulated
// lustre:// backend holds an exclusive mount lock), so after a collective open only some ranks
// hold a stor handle. Collective calls never notice (only handle holders aggregate), but an
// independent MPI_File_read_at / write_at / get_size on another rank must be served by a rank
// that holds one: the delegate (the first such rank) runs a service thread that answers
// requests on a private communicator. This needs MPI_THREAD_MULTIPLE, which MPI_Init asks for
// when libstor_mpiio is loaded (STOR_MPIIO_DELEGATION=0 turns that off).
#include <unistd.h>

#include <cstring>
#include <memory>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

constexpr int kRequestTag = 1, kSegmentsTag = 2, kDataTag = 3, kReplyTag = 4, kReplyDataTag = 5;
bool g_delegation = false;

Result<int64_t> serve(StorFile& f, DelegatedOp op, const std::vector<Block>& segments, char* data) {
  AtomicGuard atomic(f, segments, op == DelegatedOp::kWrite);  // atomic mode (atomic.cc)
  if (!atomic.status().is_ok()) return atomic.status();
  switch (op) {
    case DelegatedOp::kRead: return read_segments(*f.file, segments, data);
    case DelegatedOp::kWrite: return write_segments(*f.file, segments, data);
    case DelegatedOp::kSize: {
      auto sz = f.file->size();
      if (!sz.is_ok()) return sz.status();
      return static_cast<int64_t>(*sz);
    }
  }
  return Status::InvalidArgument("unknown delegated operation");
}

void service_loop(StorFile* f) {
  unsigned idle_us = 10;
  while (!f->stop_service.load()) {
    int flag = 0;
    MPI_Status st;
    PMPI_Iprobe(MPI_ANY_SOURCE, kRequestTag, f->service_comm, &flag, &st);
    if (!flag) {
      // Back off while idle: a busy loop would steal a core from the ranks doing the work.
      ::usleep(idle_us);
      idle_us = std::min(idle_us * 2, 1000u);
      continue;
    }
    idle_us = 10;
    const int src = st.MPI_SOURCE;
    int64_t hdr[3];
    PMPI_Recv(hdr, 3, MPI_INT64_T, src, kRequestTag, f->service_comm, MPI_STATUS_IGNORE);
    auto op = static_cast<DelegatedOp>(hdr[0]);
    std::vector<Block> segments(static_cast<size_t>(hdr[1]));
    PMPI_Recv(segments.data(), 2 * hdr[1], MPI_INT64_T, src, kSegmentsTag, f->service_comm, MPI_STATUS_IGNORE);
    std::unique_ptr<char[]> data(new char[static_cast<size_t>(std::max<int64_t>(hdr[2], 1))]);
    if (op == DelegatedOp::kWrite)
      PMPI_Recv_c(data.get(), hdr[2], MPI_BYTE, src, kDataTag, f->service_comm, MPI_STATUS_IGNORE);
    auto r = serve(*f, op, segments, data.get());
    std::string msg = r.is_ok() ? std::string() : r.status().message();
    int64_t reply[3] = {static_cast<int64_t>(r.status().code()), r.is_ok() ? *r : 0, static_cast<int64_t>(msg.size())};
    PMPI_Send(reply, 3, MPI_INT64_T, src, kReplyTag, f->service_comm);
    if (!msg.empty()) PMPI_Send(msg.data(), static_cast<int>(msg.size()), MPI_CHAR, src, kReplyTag, f->service_comm);
    if (r.is_ok() && op == DelegatedOp::kRead)
      PMPI_Send_c(data.get(), *r, MPI_BYTE, src, kReplyDataTag, f->service_comm);
  }
}

}  // namespace

bool delegation_available() { return g_delegation; }
void set_delegation_available(bool on) { g_delegation = on; }

void start_delegation(StorFile& f) {
  if (!g_delegation || static_cast<int>(f.io_ranks.size()) == f.nprocs || f.io_ranks.empty()) return;
  PMPI_Comm_dup(f.comm, &f.service_comm);
  if (f.rank == f.io_ranks.front()) f.service = std::thread(service_loop, &f);
}

void stop_delegation(StorFile& f) {
  if (f.service.joinable()) {
    f.stop_service.store(true);
    f.service.join();
  }
  if (f.service_comm != MPI_COMM_NULL) PMPI_Comm_free(&f.service_comm);
}

Result<int64_t> delegate(StorFile& f, DelegatedOp op, const std::vector<Block>& segments, char* stream, int64_t bytes) {
  if (f.service_comm == MPI_COMM_NULL)
    return Status::Unsupported("rank " + std::to_string(f.rank) + " has no handle on " + f.uri +
                      " (the backend admits one process per file system, here rank " +
                      std::to_string(f.io_ranks.front()) +
                      ") and delegation is off (MPI is not MPI_THREAD_MULTIPLE or STOR_MPIIO_DELEGATION=0); "
                      "use the collective calls (MPI_File_*_all) on this rank");
  const int target = f.io_ranks.front();
  int64_t hdr[3] = {static_cast<int64_t>(op), static_cast<int64_t>(segments.size()), bytes};
  PMPI_Send(hdr, 3, MPI_INT64_T, target, kRequestTag, f.service_comm);
  PMPI_Send(segments.data(), static_cast<int>(2 * segments.size()), MPI_INT64_T, target, kSegmentsTag, f.service_comm);
  if (op == DelegatedOp::kWrite) PMPI_Send_c(stream, bytes, MPI_BYTE, target, kDataTag, f.service_comm);
  int64_t reply[3];
  PMPI_Recv(reply, 3, MPI_INT64_T, target, kReplyTag, f.service_comm, MPI_STATUS_IGNORE);
  if (reply[0] != 0) {
    std::string msg(static_cast<size_t>(reply[2]), '\0');
    if (reply[2] > 0)
      PMPI_Recv(msg.data(), static_cast<int>(reply[2]), MPI_CHAR, target, kReplyTag, f.service_comm, MPI_STATUS_IGNORE);
    return Status(static_cast<Code>(reply[0]), msg + " (delegated to rank " + std::to_string(target) + ")");
  }
  if (op == DelegatedOp::kRead) PMPI_Recv_c(stream, reply[1], MPI_BYTE, target, kReplyDataTag, f.service_comm, MPI_STATUS_IGNORE);
  return reply[1];
}

}  // namespace stor::mpiio
