// The default scatter-gather forms of BackendFile: one plain call per segment, joined.
#include <atomic>
#include <memory>
#include <vector>

#include "stor/backend.h"

namespace stor {

namespace {

// Joins the per-segment calls of one vectored request. The count is that of the leading segments
// transferred in full plus the first short one, as preadv/pwritev report it.
class SegmentJoin {
 public:
  SegmentJoin(std::vector<size_t> want, IoCallback done)
      : want_(std::move(want)), got_(want_.size(), size_t{0}), remaining_(want_.size() + 1), done_(std::move(done)) {}

  void record(size_t i, Result<size_t> r) {
    got_[i] = std::move(r);
    finish_one();
  }
  void finish_one() {  // the acq_rel decrement publishes every record() to the last finisher
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    size_t total = 0;
    for (size_t i = 0; i < want_.size(); ++i) {
      if (!got_[i]) return done_(got_[i].status());
      total += *got_[i];
      if (*got_[i] < want_[i]) break;  // end of file: later segments read nothing that counts
    }
    done_(total);
  }

 private:
  const std::vector<size_t> want_;
  std::vector<Result<size_t>> got_;
  std::atomic<size_t> remaining_;  // one per segment, plus the submitter's guard
  IoCallback done_;
};

template <typename Issue>
void per_segment(std::span<const struct iovec> iov, uint64_t offset, IoCallback done, Issue issue) {
  auto total = iov_total(iov);
  if (!total) return done(total.status());
  std::vector<struct iovec> segs;
  iov_slice(iov, 0, *total, &segs);  // drops the empty segments
  if (segs.empty()) return done(size_t{0});
  std::vector<size_t> want;
  want.reserve(segs.size());
  for (const auto& v : segs) want.push_back(v.iov_len);
  auto join = std::make_shared<SegmentJoin>(std::move(want), std::move(done));
  for (size_t i = 0; i < segs.size(); ++i) {
    issue(segs[i], offset, [join, i](Result<size_t> r) { join->record(i, std::move(r)); });
    offset += segs[i].iov_len;
  }
  join->finish_one();
}

}  // namespace

void BackendFile::readv_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  per_segment(iov, offset, std::move(done), [this](const struct iovec& v, uint64_t off, IoCallback cb) {
    read_async(v.iov_base, v.iov_len, off, std::move(cb));
  });
}

void BackendFile::writev_async(std::span<const struct iovec> iov, uint64_t offset, IoCallback done) {
  per_segment(iov, offset, std::move(done), [this](const struct iovec& v, uint64_t off, IoCallback cb) {
    write_async(v.iov_base, v.iov_len, off, std::move(cb));
  });
}

}  // namespace stor
