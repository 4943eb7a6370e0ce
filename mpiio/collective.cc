// Segment I/O through stor and the two-phase collective I/O (ROMIO's design): ranks send the
// (offset, length) pieces they access to a few aggregators, each aggregator owning every
// `domain_unit`-sized file unit u with u % naggs == its index (stripe-aligned domains, as
// ROMIO's Lustre driver deals stripes); aggregators then write (or read) merged contiguous runs.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

// Requests larger than this are split: pwrite caps one call at 2 GiB, and smaller requests
// overlap better.
constexpr int64_t kMaxRequest = 16 << 20;

// A batch of asynchronous requests on one stor file; wait() returns the first error.
class IoBatch {
 public:
  explicit IoBatch(stor::File& file) : file_(file) {}

  void write(const char* data, int64_t len, int64_t off) {
    for (int64_t done = 0; done < len; done += kMaxRequest)
      submit_write(data + done, std::min(kMaxRequest, len - done), off + done);
  }
  // Adds the bytes read to *got (stops early at end of file).
  void read(char* data, int64_t len, int64_t off, int64_t* got) {
    for (int64_t done = 0; done < len; done += kMaxRequest)
      submit_read(data + done, std::min(kMaxRequest, len - done), off + done, got);
  }
  Status wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return pending_ == 0; });
    return error_;
  }

 private:
  void begin() {
    std::lock_guard lk(mu_);
    ++pending_;
  }
  void end(Status s) {
    std::lock_guard lk(mu_);
    if (!s.is_ok() && error_.is_ok()) error_ = std::move(s);
    if (--pending_ == 0) cv_.notify_all();
  }
  void submit_write(const char* data, int64_t len, int64_t off) {
    begin();
    file_.write_async(data, static_cast<size_t>(len), static_cast<uint64_t>(off), [=, this](Result<size_t> r) {
      if (!r.is_ok()) return end(r.status());
      auto n = static_cast<int64_t>(*r);
      if (n == 0) return end(Status(Code::kIoError, "write made no progress at offset " + std::to_string(off)));
      if (n < len) submit_write(data + n, len - n, off + n);  // short write: continue
      end(Status::ok());
    });
  }
  void submit_read(char* data, int64_t len, int64_t off, int64_t* got) {
    begin();
    file_.read_async(data, static_cast<size_t>(len), static_cast<uint64_t>(off), [=, this](Result<size_t> r) {
      if (!r.is_ok()) return end(r.status());
      auto n = static_cast<int64_t>(*r);
      std::atomic_ref<int64_t>(*got).fetch_add(n);
      if (n > 0 && n < len) submit_read(data + n, len - n, off + n, got);  // maybe EOF: the retry says
      end(Status::ok());
    });
  }

  stor::File& file_;
  std::mutex mu_;
  std::condition_variable cv_;
  int pending_ = 0;
  Status error_;
};

// Splits [off, off+len) at domain-unit boundaries and calls fn(aggregator index, off, len).
template <typename Fn>
void for_each_piece(const Block& seg, int64_t unit, size_t naggs, Fn&& fn) {
  int64_t off = seg.off, left = seg.len;
  while (left > 0) {
    int64_t u = off / unit;
    int64_t n = std::min(left, (u + 1) * unit - off);
    fn(static_cast<size_t>(u % static_cast<int64_t>(naggs)), off, n);
    off += n;
    left -= n;
  }
}

struct Piece {
  int64_t off, len;
  char* data;  // in the exchange buffer
};

// Groups sorted pieces into runs in which every piece starts at or before the run's end, so a
// run is one contiguous file range.
template <typename Fn>
void for_each_run(const std::vector<Piece>& sorted, Fn&& fn) {
  size_t i = 0;
  while (i < sorted.size()) {
    size_t j = i + 1;
    int64_t end = sorted[i].off + sorted[i].len;
    while (j < sorted.size() && sorted[j].off <= end) {
      end = std::max(end, sorted[j].off + sorted[j].len);
      ++j;
    }
    fn(i, j, sorted[i].off, end);
    i = j;
  }
}

// Phase one, shared by read and write: who sends what to which aggregator.
struct Exchange {
  std::vector<MPI_Count> send_pieces, send_bytes, recv_pieces, recv_bytes;
  std::vector<MPI_Aint> send_piece_displ, send_byte_displ, recv_piece_displ, recv_byte_displ;
  std::vector<int64_t> send_meta, recv_meta;  // (off, len) pairs grouped by peer
  std::vector<int64_t> send_stream_pos;       // stream position of each sent piece, same order
};

Status plan_exchange(StorFile& f, const std::vector<Block>& segments, Exchange& x) {
  const int P = f.nprocs;
  const size_t naggs = f.aggregators.size();
  x.send_pieces.assign(P, 0);
  x.send_bytes.assign(P, 0);
  for (const auto& seg : segments)
    for_each_piece(seg, f.domain_unit, naggs, [&](size_t a, int64_t, int64_t n) {
      ++x.send_pieces[f.aggregators[a]];
      x.send_bytes[f.aggregators[a]] += n;
    });
  x.send_piece_displ.assign(P, 0);
  x.send_byte_displ.assign(P, 0);
  for (int r = 1; r < P; ++r) {
    x.send_piece_displ[r] = x.send_piece_displ[r - 1] + x.send_pieces[r - 1];
    x.send_byte_displ[r] = x.send_byte_displ[r - 1] + x.send_bytes[r - 1];
  }
  const int64_t total_pieces = x.send_piece_displ[P - 1] + x.send_pieces[P - 1];
  x.send_meta.resize(2 * total_pieces);
  x.send_stream_pos.resize(total_pieces);
  std::vector<MPI_Aint> next = x.send_piece_displ;
  int64_t stream_pos = 0;
  for (const auto& seg : segments)
    for_each_piece(seg, f.domain_unit, naggs, [&](size_t a, int64_t off, int64_t n) {
      MPI_Aint k = next[f.aggregators[a]]++;
      x.send_meta[2 * k] = off;
      x.send_meta[2 * k + 1] = n;
      x.send_stream_pos[k] = stream_pos;
      stream_pos += n;
    });

  // Counts, then the piece lists.
  std::vector<int64_t> counts_out(2 * P), counts_in(2 * P);
  for (int r = 0; r < P; ++r) {
    counts_out[2 * r] = x.send_pieces[r];
    counts_out[2 * r + 1] = x.send_bytes[r];
  }
  int rc = PMPI_Alltoall(counts_out.data(), 2, MPI_INT64_T, counts_in.data(), 2, MPI_INT64_T, f.comm);
  if (rc != MPI_SUCCESS) return {Code::kIoError, "collective I/O: MPI_Alltoall of piece counts failed"};
  x.recv_pieces.resize(P);
  x.recv_bytes.resize(P);
  x.recv_piece_displ.assign(P, 0);
  x.recv_byte_displ.assign(P, 0);
  for (int r = 0; r < P; ++r) {
    x.recv_pieces[r] = counts_in[2 * r];
    x.recv_bytes[r] = counts_in[2 * r + 1];
    if (r > 0) {
      x.recv_piece_displ[r] = x.recv_piece_displ[r - 1] + x.recv_pieces[r - 1];
      x.recv_byte_displ[r] = x.recv_byte_displ[r - 1] + x.recv_bytes[r - 1];
    }
  }
  const int64_t recv_total = x.recv_piece_displ[P - 1] + x.recv_pieces[P - 1];
  x.recv_meta.resize(2 * recv_total);
  std::vector<MPI_Count> sc(P), rcnt(P);
  std::vector<MPI_Aint> sd(P), rd(P);
  for (int r = 0; r < P; ++r) {
    sc[r] = 2 * x.send_pieces[r];
    sd[r] = 2 * x.send_piece_displ[r];
    rcnt[r] = 2 * x.recv_pieces[r];
    rd[r] = 2 * x.recv_piece_displ[r];
  }
  rc = PMPI_Alltoallv_c(x.send_meta.data(), sc.data(), sd.data(), MPI_INT64_T, x.recv_meta.data(), rcnt.data(),
                        rd.data(), MPI_INT64_T, f.comm);
  if (rc != MPI_SUCCESS) return {Code::kIoError, "collective I/O: MPI_Alltoallv of piece lists failed"};
  return Status::ok();
}

// The received pieces, sorted by file offset (ties: lower rank first, so overlapping writes
// resolve the same way every time).
std::vector<Piece> received_pieces(const Exchange& x, char* data) {
  std::vector<Piece> pieces(x.recv_meta.size() / 2);
  int64_t pos = 0;
  for (size_t k = 0; k < pieces.size(); ++k) {
    pieces[k] = {x.recv_meta[2 * k], x.recv_meta[2 * k + 1], data + pos};
    pos += pieces[k].len;
  }
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.off < b.off; });
  return pieces;
}

Status no_handle(const StorFile& f) {
  return {Code::kInternal, "collective I/O: aggregator rank " + std::to_string(f.rank) + " has no handle on " + f.uri};
}

}  // namespace

Result<int64_t> write_segments(stor::File& file, const std::vector<Block>& segments, const char* stream) {
  IoBatch batch(file);
  int64_t pos = 0;
  for (const auto& s : segments) {
    batch.write(stream + pos, s.len, s.off);
    pos += s.len;
  }
  STOR_RETURN_IF_ERROR(batch.wait());
  return pos;
}

Result<int64_t> read_segments(stor::File& file, const std::vector<Block>& segments, char* stream) {
  IoBatch batch(file);
  std::vector<int64_t> got(segments.size(), 0);
  int64_t pos = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    batch.read(stream + pos, segments[i].len, segments[i].off, &got[i]);
    pos += segments[i].len;
  }
  STOR_RETURN_IF_ERROR(batch.wait());
  int64_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    total += got[i];
    if (got[i] < segments[i].len) break;  // end of file
  }
  return total;
}

Status collective_write(StorFile& f, const std::vector<Block>& segments, const char* stream) {
  Exchange x;
  Status s = plan_exchange(f, segments, x);
  if (!s.is_ok()) return agree(f.comm, s);
  // Phase one: the data, in piece order, to the aggregators.
  std::unique_ptr<char[]> send_data(new char[static_cast<size_t>(x.send_byte_displ.back() + x.send_bytes.back())]);
  {  // pieces are laid out peer by peer in send_meta order; their bytes follow the same order
    int64_t out = 0;
    for (size_t k = 0; k < x.send_stream_pos.size(); ++k) {
      std::memcpy(send_data.get() + out, stream + x.send_stream_pos[k], static_cast<size_t>(x.send_meta[2 * k + 1]));
      out += x.send_meta[2 * k + 1];
    }
  }
  std::unique_ptr<char[]> recv_data(new char[static_cast<size_t>(x.recv_byte_displ.back() + x.recv_bytes.back())]);
  int rc = PMPI_Alltoallv_c(send_data.get(), x.send_bytes.data(), x.send_byte_displ.data(), MPI_BYTE,
                            recv_data.get(), x.recv_bytes.data(), x.recv_byte_displ.data(), MPI_BYTE, f.comm);
  if (rc != MPI_SUCCESS) return agree(f.comm, Status(Code::kIoError, "collective write: MPI_Alltoallv of data failed"));
  send_data.reset();

  // Phase two: aggregators write merged runs.
  auto pieces = received_pieces(x, recv_data.get());
  if (!pieces.empty()) {
    if (!f.file) {
      s = no_handle(f);
    } else {
      IoBatch batch(*f.file);
      std::vector<std::unique_ptr<char[]>> staging;
      for_each_run(pieces, [&](size_t i, size_t j, int64_t start, int64_t end) {
        if (j == i + 1) return batch.write(pieces[i].data, pieces[i].len, start);
        char* buf = staging.emplace_back(new char[static_cast<size_t>(end - start)]).get();
        for (size_t k = i; k < j; ++k)
          std::memcpy(buf + (pieces[k].off - start), pieces[k].data, static_cast<size_t>(pieces[k].len));
        batch.write(buf, end - start, start);
      });
      s = batch.wait();
    }
  }
  return agree(f.comm, s);
}

Status collective_read(StorFile& f, const std::vector<Block>& segments, char* stream) {
  Exchange x;
  Status s = plan_exchange(f, segments, x);
  if (!s.is_ok()) return agree(f.comm, s);
  // Aggregators read the merged runs into a buffer laid out like the reply (pieces in received
  // order); bytes past end of file read as zeros.
  std::unique_ptr<char[]> reply(new char[static_cast<size_t>(x.recv_byte_displ.back() + x.recv_bytes.back())]);
  auto pieces = received_pieces(x, reply.get());
  if (!pieces.empty()) {
    if (!f.file) {
      s = no_handle(f);
    } else {
      // A run of one piece is read straight into the reply; longer runs (pieces that touch or
      // overlap) are read once into a staging buffer and copied out.
      struct Run {
        size_t first, last;
        int64_t start, len;
        char* dest;
        std::unique_ptr<char[]> staging;
        int64_t got = 0;
      };
      std::vector<Run> runs;
      runs.reserve(pieces.size());
      IoBatch batch(*f.file);
      for_each_run(pieces, [&](size_t i, size_t j, int64_t start, int64_t end) {
        Run& run = runs.emplace_back(Run{i, j, start, end - start, pieces[i].data, nullptr});
        if (j != i + 1) {
          run.staging.reset(new char[static_cast<size_t>(run.len)]);
          run.dest = run.staging.get();
        }
        batch.read(run.dest, run.len, start, &run.got);
      });
      s = batch.wait();
      for (auto& run : runs) {
        if (!s.is_ok()) break;
        // Past end of file reads as zeros (the requests of a collective read always complete).
        if (run.got < run.len) std::memset(run.dest + run.got, 0, static_cast<size_t>(run.len - run.got));
        if (!run.staging) continue;
        for (size_t k = run.first; k < run.last; ++k)
          std::memcpy(pieces[k].data, run.dest + (pieces[k].off - run.start), static_cast<size_t>(pieces[k].len));
      }
    }
  }
  s = agree(f.comm, s);
  if (!s.is_ok()) return s;
  std::unique_ptr<char[]> mine(new char[static_cast<size_t>(x.send_byte_displ.back() + x.send_bytes.back())]);
  int rc = PMPI_Alltoallv_c(reply.get(), x.recv_bytes.data(), x.recv_byte_displ.data(), MPI_BYTE, mine.get(),
                            x.send_bytes.data(), x.send_byte_displ.data(), MPI_BYTE, f.comm);
  if (rc != MPI_SUCCESS) return {Code::kIoError, "collective read: MPI_Alltoallv of data failed"};
  int64_t in = 0;
  for (size_t k = 0; k < x.send_stream_pos.size(); ++k) {
    std::memcpy(stream + x.send_stream_pos[k], mine.get() + in, static_cast<size_t>(x.send_meta[2 * k + 1]));
    in += x.send_meta[2 * k + 1];
  }
  return Status::ok();
}

}  // namespace stor::mpiio
