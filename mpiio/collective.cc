// Segment I/O through stor and the two-phase collective I/O (ROMIO's design): ranks send the
// (offset, length) pieces they access to a few aggregators, each aggregator owning every
// `domain_unit`-sized file unit u with u % naggs == its index (stripe-aligned domains, as
// ROMIO's Lustre driver deals stripes); aggregators then write (or read) merged contiguous runs.
#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "mpiio_internal.h"

namespace stor::mpiio {

namespace {

// Requests larger than this are split: pwrite caps one call at 2 GiB, and smaller requests
// overlap better.
constexpr int64_t kMaxRequest = 16 << 20;

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
  std::vector<MPI_Aint> send_piece_displ;
  std::vector<int64_t> send_meta;        // (off, len) pairs grouped by peer
  std::vector<int64_t> send_stream_pos;  // stream position of each sent piece, same order
};

// The caller's segments with their stream positions, cut into rounds of the file range so an
// aggregator holds at most cb_buffer_size bytes at a time (ROMIO's two-phase cycles likewise).
struct Segments {
  const std::vector<Block>& blocks;
  std::vector<int64_t> stream_start;
  explicit Segments(const std::vector<Block>& b) : blocks(b), stream_start(b.size()) {
    int64_t pos = 0;
    for (size_t i = 0; i < b.size(); ++i) {
      stream_start[i] = pos;
      pos += b[i].len;
    }
  }
  // Calls fn(clipped block, stream position) for the parts inside [lo, hi).
  template <typename Fn>
  void clipped(int64_t lo, int64_t hi, Fn&& fn) const {
    // A view's segments ascend without overlapping: skip to the first one ending after lo.
    auto first = std::partition_point(blocks.begin(), blocks.end(), [&](const Block& b) { return b.off + b.len <= lo; });
    for (size_t i = static_cast<size_t>(first - blocks.begin()); i < blocks.size() && blocks[i].off < hi; ++i) {
      int64_t a = std::max(lo, blocks[i].off), b = std::min(hi, blocks[i].off + blocks[i].len);
      if (a < b) fn(Block{a, b - a}, stream_start[i] + (a - blocks[i].off));
    }
  }
};

void plan(const StorFile& f, const Segments& segs, int64_t lo, int64_t hi, Exchange& x) {
  const int P = f.nprocs;
  const size_t naggs = f.aggregators.size();
  x.send_pieces.assign(P, 0);
  x.send_bytes.assign(P, 0);
  segs.clipped(lo, hi, [&](const Block& seg, int64_t) {
    for_each_piece(seg, f.domain_unit, naggs, [&](size_t a, int64_t, int64_t n) {
      ++x.send_pieces[f.aggregators[a]];
      x.send_bytes[f.aggregators[a]] += n;
    });
  });
  x.send_piece_displ.assign(P, 0);
  for (int r = 1; r < P; ++r) x.send_piece_displ[r] = x.send_piece_displ[r - 1] + x.send_pieces[r - 1];
  const int64_t total_pieces = x.send_piece_displ[P - 1] + x.send_pieces[P - 1];
  x.send_meta.resize(2 * total_pieces);
  x.send_stream_pos.resize(total_pieces);
  std::vector<MPI_Aint> next = x.send_piece_displ;
  segs.clipped(lo, hi, [&](const Block& seg, int64_t stream_pos) {
    for_each_piece(seg, f.domain_unit, naggs, [&](size_t a, int64_t off, int64_t n) {
      MPI_Aint k = next[f.aggregators[a]]++;
      x.send_meta[2 * k] = off;
      x.send_meta[2 * k + 1] = n;
      x.send_stream_pos[k] = stream_pos;
      stream_pos += n;
    });
  });
}

// Piece and byte counts to every peer, with a failure flag riding along, so the ranks agree on
// a local error (bad arguments on one rank) without a collective of its own. Returns true when
// some rank failed (the same answer everywhere).
bool exchange_counts(const StorFile& f, Exchange& x, bool failed) {
  const int P = f.nprocs;
  std::vector<int64_t> out(3 * P), in(3 * P);
  for (int r = 0; r < P; ++r) {
    out[3 * r] = x.send_pieces[r];
    out[3 * r + 1] = x.send_bytes[r];
    out[3 * r + 2] = failed ? 1 : 0;
  }
  PMPI_Alltoall(out.data(), 3, MPI_INT64_T, in.data(), 3, MPI_INT64_T, f.comm);
  x.recv_pieces.resize(P);
  x.recv_bytes.resize(P);
  bool any = false;
  for (int r = 0; r < P; ++r) {
    x.recv_pieces[r] = in[3 * r];
    x.recv_bytes[r] = in[3 * r + 1];
    any = any || in[3 * r + 2] != 0;
  }
  return any;
}

int64_t load_i64(const char* p) {
  int64_t v;
  std::memcpy(&v, p, sizeof v);  // the exchange buffer packs them at any alignment
  return v;
}

// Sorts by file offset (ties: lower rank first, so overlapping writes resolve the same way
// every time).
void sort_pieces(std::vector<Piece>& pieces) {
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.off < b.off; });
}

enum class Path { kFailed, kIndependent, kTwoPhase };

// ROMIO's rule for romio_cb_write / romio_cb_read = automatic: collective buffering only pays
// when the ranks' file ranges interleave; otherwise each rank accesses its own range directly.
// Ranks without a handle always need aggregators. One Allgather also settles failed checks.
Path choose_path(const StorFile& f, const std::vector<Block>& segments, bool failed, CollectiveBuffering mode,
                 Block* global) {
  int64_t start = INT64_MAX, end = 0;
  for (const auto& b : segments) {
    start = std::min(start, b.off);
    end = std::max(end, b.off + b.len);
  }
  int64_t mine[4] = {start, end, failed ? 1 : 0, (!segments.empty() && !f.file) ? 1 : 0};
  std::vector<int64_t> all(static_cast<size_t>(4 * f.nprocs));
  PMPI_Allgather(mine, 4, MPI_INT64_T, all.data(), 4, MPI_INT64_T, f.comm);
  bool needs_aggregator = false;
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t lo = INT64_MAX, hi = 0;
  for (int r = 0; r < f.nprocs; ++r) {
    const int64_t* e = &all[static_cast<size_t>(4 * r)];
    if (e[2]) return Path::kFailed;
    needs_aggregator = needs_aggregator || e[3];
    if (e[1] > e[0]) {
      ranges.emplace_back(e[0], e[1]);
      lo = std::min(lo, e[0]);
      hi = std::max(hi, e[1]);
    }
  }
  *global = ranges.empty() ? Block{0, 0} : Block{lo, hi - lo};
  if (mode == CollectiveBuffering::kEnable || needs_aggregator) return Path::kTwoPhase;
  if (mode == CollectiveBuffering::kDisable) return Path::kIndependent;
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) return Path::kTwoPhase;
  return Path::kIndependent;
}

Status no_handle(const StorFile& f) {
  return Status::Internal("collective I/O: aggregator rank " + std::to_string(f.rank) + " has no handle on " + f.uri);
}

}  // namespace


// ---- IoBatch ----

void IoBatch::write(const char* data, int64_t len, int64_t off) {
  for (int64_t done = 0; done < len; done += kMaxRequest)
    submit_write(data + done, std::min(kMaxRequest, len - done), off + done);
}

void IoBatch::read(char* data, int64_t len, int64_t off, int64_t* got) {
  for (int64_t done = 0; done < len; done += kMaxRequest)
    submit_read(data + done, std::min(kMaxRequest, len - done), off + done, got);
}

Status IoBatch::wait() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return pending_ == 0; });
  return error_;
}

bool IoBatch::done() {
  std::lock_guard lk(mu_);
  return pending_ == 0;
}

Status IoBatch::error() {
  std::lock_guard lk(mu_);
  return error_;
}

void IoBatch::begin() {
  std::lock_guard lk(mu_);
  ++pending_;
}

void IoBatch::end(Status s) {
  std::lock_guard lk(mu_);
  if (!s.is_ok() && error_.is_ok()) error_ = std::move(s);
  if (--pending_ == 0) {
    // Under the lock: whoever sees done() may free the batch right after.
    if (on_idle_) on_idle_();
    cv_.notify_all();
  }
}

void IoBatch::submit_write(const char* data, int64_t len, int64_t off) {
  begin();
  file_.write_async(data, static_cast<size_t>(len), static_cast<uint64_t>(off), [=, this](Result<size_t> r) {
    if (!r.is_ok()) return end(r.status());
    auto n = static_cast<int64_t>(*r);
    if (n == 0) return end(Status::IoError("write made no progress at offset " + std::to_string(off)));
    if (n < len) submit_write(data + n, len - n, off + n);  // short write: continue
    end(Status::ok());
  });
}

void IoBatch::submit_read(char* data, int64_t len, int64_t off, int64_t* got) {
  begin();
  file_.read_async(data, static_cast<size_t>(len), static_cast<uint64_t>(off), [=, this](Result<size_t> r) {
    if (!r.is_ok()) return end(r.status());
    auto n = static_cast<int64_t>(*r);
    std::atomic_ref<int64_t>(*got).fetch_add(n);
    if (n > 0 && n < len) submit_read(data + n, len - n, off + n, got);  // maybe EOF: the retry says
    end(Status::ok());
  });
}

void submit_writes(IoBatch& batch, const std::vector<Block>& segments, const char* stream) {
  int64_t pos = 0;
  for (const auto& s : segments) {
    batch.write(stream + pos, s.len, s.off);
    pos += s.len;
  }
}

void submit_reads(IoBatch& batch, const std::vector<Block>& segments, char* stream, std::vector<int64_t>* got) {
  got->assign(segments.size(), 0);
  int64_t pos = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    batch.read(stream + pos, segments[i].len, segments[i].off, &(*got)[i]);
    pos += segments[i].len;
  }
}

int64_t bytes_read(const std::vector<Block>& segments, const std::vector<int64_t>& got) {
  int64_t total = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    total += got[i];
    if (got[i] < segments[i].len) break;  // end of file
  }
  return total;
}

Result<int64_t> write_segments(stor::File& file, const std::vector<Block>& segments, const char* stream) {
  IoBatch batch(file);
  submit_writes(batch, segments, stream);
  STOR_RETURN_IF_ERROR(batch.wait());
  int64_t total = 0;
  for (const auto& b : segments) total += b.len;
  return total;
}

Result<int64_t> read_segments(stor::File& file, const std::vector<Block>& segments, char* stream) {
  IoBatch batch(file);
  std::vector<int64_t> got;
  submit_reads(batch, segments, stream, &got);
  STOR_RETURN_IF_ERROR(batch.wait());
  return bytes_read(segments, got);
}

// The file range [lo, hi) of one collective call, in rounds of cb_buffer_size per aggregator;
// rounds start at multiples of the round size, so unit ownership stays the same.
template <typename Fn>
Status for_each_round(const StorFile& f, const Block& global, Fn&& fn) {
  const int64_t unit = f.domain_unit;
  const int64_t per_agg = std::max(unit, f.hints.cb_buffer_size / unit * unit);
  const int64_t round = per_agg * static_cast<int64_t>(f.aggregators.size());
  Status first_error;
  for (int64_t lo = global.off / round * round; lo < global.off + global.len; lo += round) {
    Status s = fn(lo, lo + round);
    if (!s.is_ok() && first_error.is_ok()) first_error = s;
  }
  return first_error;
}

// One round of two-phase write; returns this rank's (aggregator's) error, if any.
// With `async`, the aggregator's writes are left in flight in async->batch, their buffers in
// async->buffers.
Status write_round(StorFile& f, const Segments& segs, const char* stream, int64_t lo, int64_t hi,
                   AsyncIo* async = nullptr) {
  const int P = f.nprocs;
  Exchange x;
  plan(f, segs, lo, hi, x);
  exchange_counts(f, x, false);

  // Phase one, one Alltoallv: to each aggregator its (offset, length) list, then the bytes.
  std::vector<MPI_Count> sc(P), rc(P);
  std::vector<MPI_Aint> sd(P), rd(P);
  MPI_Aint send_total = 0, recv_total = 0;
  for (int r = 0; r < P; ++r) {
    sc[r] = 16 * x.send_pieces[r] + x.send_bytes[r];
    rc[r] = 16 * x.recv_pieces[r] + x.recv_bytes[r];
    sd[r] = send_total;
    rd[r] = recv_total;
    send_total += sc[r];
    recv_total += rc[r];
  }
  std::unique_ptr<char[]> send(new char[static_cast<size_t>(std::max<MPI_Aint>(send_total, 1))]);
  for (int r = 0; r < P; ++r) {
    char* out = send.get() + sd[r];
    const MPI_Aint first = x.send_piece_displ[r];
    if (x.send_pieces[r] > 0)  // send_meta may be empty (data() null): memcpy wants valid pointers
      std::memcpy(out, x.send_meta.data() + 2 * first, static_cast<size_t>(16 * x.send_pieces[r]));
    out += 16 * x.send_pieces[r];
    for (MPI_Aint k = first; k < first + x.send_pieces[r]; ++k) {
      std::memcpy(out, stream + x.send_stream_pos[k], static_cast<size_t>(x.send_meta[2 * k + 1]));
      out += x.send_meta[2 * k + 1];
    }
  }
  std::unique_ptr<char[]> recv(new char[static_cast<size_t>(std::max<MPI_Aint>(recv_total, 1))]);
  PMPI_Alltoallv_c(send.get(), sc.data(), sd.data(), MPI_BYTE, recv.get(), rc.data(), rd.data(), MPI_BYTE, f.comm);
  send.reset();

  std::vector<Piece> pieces;
  for (int r = 0; r < P; ++r) {
    const char* meta = recv.get() + rd[r];
    char* data = recv.get() + rd[r] + 16 * x.recv_pieces[r];
    for (MPI_Count k = 0; k < x.recv_pieces[r]; ++k) {
      Piece p{load_i64(meta + 16 * k), load_i64(meta + 16 * k + 8), data};
      data += p.len;
      pieces.push_back(p);
    }
  }
  sort_pieces(pieces);

  // Phase two: aggregators write merged runs.
  Status s;
  if (!pieces.empty()) {
    if (!f.file) {
      s = no_handle(f);
    } else {
      std::optional<IoBatch> own;
      IoBatch& batch = async ? *async->batch : own.emplace(*f.file);
      std::vector<std::unique_ptr<char[]>> staging;
      for_each_run(pieces, [&](size_t i, size_t j, int64_t start, int64_t end) {
        if (j == i + 1) return batch.write(pieces[i].data, pieces[i].len, start);
        char* buf = staging.emplace_back(new char[static_cast<size_t>(end - start)]).get();
        for (size_t k = i; k < j; ++k)
          std::memcpy(buf + (pieces[k].off - start), pieces[k].data, static_cast<size_t>(pieces[k].len));
        batch.write(buf, end - start, start);
      });
      if (!async) return batch.wait();
      async->buffers.push_back(std::move(recv));
      for (auto& b : staging) async->buffers.push_back(std::move(b));
    }
  }
  return s;
}

Status collective_write(StorFile& f, const std::vector<Block>& segments, const char* stream, Status local,
                        AsyncIo* async) {
  Block global;
  switch (choose_path(f, local.is_ok() ? segments : std::vector<Block>{}, !local.is_ok(), f.hints.cb_write, &global)) {
    case Path::kFailed: return agree(f.comm, local);
    case Path::kIndependent:
      // Like ROMIO's independent branch: no closing agreement, an error is this rank's own.
      if (segments.empty()) return Status::ok();
      if (async) {
        submit_writes(*async->batch, segments, stream);
        async->submitted = true;
        return Status::ok();
      }
      return write_segments(*f.file, segments, stream).status();
    case Path::kTwoPhase: break;
  }
  Segments segs(segments);
  if (async) {
    // All rounds' exchanges now; only the last round's writes stay in flight (earlier rounds
    // wait, so aggregator memory stays bounded by cb_buffer_size).
    const int64_t unit = f.domain_unit;
    const int64_t round = std::max(unit, f.hints.cb_buffer_size / unit * unit) * static_cast<int64_t>(f.aggregators.size());
    const int64_t last = (global.off + global.len - 1) / round * round;
    Status first_error;
    for (int64_t lo = global.off / round * round; lo < global.off + global.len; lo += round) {
      Status s = write_round(f, segs, stream, lo, lo + round, lo == last ? async : nullptr);
      if (!s.is_ok() && first_error.is_ok()) first_error = s;
    }
    return first_error;
  }
  // Aggregators keep writing the later rounds after an error; every rank learns it at the end.
  Status s = for_each_round(f, global, [&](int64_t lo, int64_t hi) { return write_round(f, segs, stream, lo, hi); });
  return agree(f.comm, s);
}

// One round of two-phase read. A failure is known to every rank (status words) and returned
// agreed, so all ranks stop together.
Status read_round(StorFile& f, const Segments& segs, char* stream, int64_t lo, int64_t hi);

Status collective_read(StorFile& f, const std::vector<Block>& segments, char* stream, Status local,
                       AsyncIo* async) {
  Block global;
  switch (choose_path(f, local.is_ok() ? segments : std::vector<Block>{}, !local.is_ok(), f.hints.cb_read, &global)) {
    case Path::kFailed: return agree(f.comm, local);
    case Path::kIndependent: {
      if (async && !segments.empty()) {  // the caller zero-fills past end of file, as below
        submit_reads(*async->batch, segments, stream, &async->got);
        async->submitted = true;
        return Status::ok();
      }
      Status s;
      if (!segments.empty()) {
        auto got = read_segments(*f.file, segments, stream);
        s = got.status();
        int64_t total = 0;
        for (const auto& b : segments) total += b.len;
        // Past end of file reads as zeros, as on the two-phase path.
        if (got.is_ok() && *got < total) std::memset(stream + *got, 0, static_cast<size_t>(total - *got));
      }
      return s;  // no closing agreement, as ROMIO
    }
    case Path::kTwoPhase: break;
  }
  Segments segs(segments);
  const int64_t unit = f.domain_unit;
  const int64_t round = std::max(unit, f.hints.cb_buffer_size / unit * unit) * static_cast<int64_t>(f.aggregators.size());
  for (int64_t lo = global.off / round * round; lo < global.off + global.len; lo += round) {
    Status s = read_round(f, segs, stream, lo, lo + round);
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

Status read_round(StorFile& f, const Segments& segs, char* stream, int64_t lo, int64_t hi) {
  const int P = f.nprocs;
  Exchange x;
  plan(f, segs, lo, hi, x);
  exchange_counts(f, x, false);

  // The piece lists to the aggregators.
  std::vector<MPI_Count> sc(P), rc(P);
  std::vector<MPI_Aint> sd(P), rd(P);
  MPI_Aint recv_pieces_total = 0;
  for (int r = 0; r < P; ++r) {
    sc[r] = 2 * x.send_pieces[r];
    sd[r] = 2 * x.send_piece_displ[r];
    rc[r] = 2 * x.recv_pieces[r];
    rd[r] = 2 * recv_pieces_total;
    recv_pieces_total += x.recv_pieces[r];
  }
  std::vector<int64_t> recv_meta(static_cast<size_t>(2 * recv_pieces_total));
  PMPI_Alltoallv_c(x.send_meta.data(), sc.data(), sd.data(), MPI_INT64_T, recv_meta.data(), rc.data(), rd.data(),
                   MPI_INT64_T, f.comm);

  // The reply to each peer: an 8-byte status word (every peer gets one, so all ranks learn
  // whether any aggregator failed), then the requested bytes in request order.
  std::vector<MPI_Count> reply_count(P), mine_count(P);
  std::vector<MPI_Aint> reply_displ(P), mine_displ(P);
  MPI_Aint reply_total = 0, mine_total = 0;
  for (int r = 0; r < P; ++r) {
    reply_count[r] = 8 + x.recv_bytes[r];
    mine_count[r] = 8 + x.send_bytes[r];
    reply_displ[r] = reply_total;
    mine_displ[r] = mine_total;
    reply_total += reply_count[r];
    mine_total += mine_count[r];
  }
  std::unique_ptr<char[]> reply(new char[static_cast<size_t>(reply_total)]);
  std::vector<Piece> pieces;
  pieces.reserve(static_cast<size_t>(recv_pieces_total));
  for (int r = 0, k = 0; r < P; ++r) {
    char* data = reply.get() + reply_displ[r] + 8;
    for (MPI_Count i = 0; i < x.recv_pieces[r]; ++i, ++k) {
      pieces.push_back({recv_meta[2 * k], recv_meta[2 * k + 1], data});
      data += recv_meta[2 * k + 1];
    }
  }
  sort_pieces(pieces);

  Status s;
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
  const int64_t status_word = s.is_ok() ? 0 : 1;
  for (int r = 0; r < P; ++r) std::memcpy(reply.get() + reply_displ[r], &status_word, 8);
  std::unique_ptr<char[]> mine(new char[static_cast<size_t>(mine_total)]);
  PMPI_Alltoallv_c(reply.get(), reply_count.data(), reply_displ.data(), MPI_BYTE, mine.get(), mine_count.data(),
                   mine_displ.data(), MPI_BYTE, f.comm);
  bool failed = false;
  for (int r = 0; r < P; ++r) failed = failed || load_i64(mine.get() + mine_displ[r]) != 0;
  if (failed) return agree(f.comm, s);

  for (int r = 0; r < P; ++r) {
    const char* in = mine.get() + mine_displ[r] + 8;
    for (MPI_Aint k = x.send_piece_displ[r]; k < x.send_piece_displ[r] + x.send_pieces[r]; ++k) {
      std::memcpy(stream + x.send_stream_pos[k], in, static_cast<size_t>(x.send_meta[2 * k + 1]));
      in += x.send_meta[2 * k + 1];
    }
  }
  return Status::ok();
}

}  // namespace stor::mpiio
