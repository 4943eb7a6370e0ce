// The parquet footer cache: opening a cold "*.parquet" file reads its tail (and the rest of a
// longer footer) once per (path, ETag), so footer reads make no cold-tier request.
#include "backends/tier/tiered_store_impl.h"

#include <algorithm>
#include <cstring>

namespace stor::tiering::internal {

constexpr uint64_t kFooterTail = 64 * 1024;  // read from the end of a cold parquet file at open

Result<std::shared_ptr<const Footer>> TieredStoreImpl::parquet_footer(const Record& r) {
  {
    std::lock_guard lk(mu_);
    auto it = footers_.find(r.path);
    if (it != footers_.end() && it->second->etag == r.cold_etag) {
      ++stats_.footer_hits;
      return it->second;
    }
  }
  if (r.size < 8) return std::shared_ptr<const Footer>();
  const ColdObject known = known_of(r);
  auto footer = std::make_shared<Footer>();
  footer->etag = r.cold_etag;
  const uint64_t tail = std::min<uint64_t>(kFooterTail, r.size);
  std::string bytes(tail, '\0');
  STOR_ASSIGN_OR_RETURN(size_t n, cold_->read(r.path, known, r.size - tail, tail, bytes.data()));
  if (n != tail) return Status::IoError(cold_->uri_of(r.path) + ": short read of the parquet tail");
  footer->offset = r.size - tail;
  // Parquet ends with <footer><4-byte little-endian footer length>"PAR1".
  if (std::memcmp(bytes.data() + tail - 4, "PAR1", 4) == 0) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + tail - 8);
    const uint64_t footer_len = p[0] | (p[1] << 8) | (p[2] << 16) | (uint64_t(p[3]) << 24);
    const uint64_t needed = footer_len + 8;
    if (needed > tail && needed <= r.size) {
      std::string head(needed - tail, '\0');
      STOR_ASSIGN_OR_RETURN(size_t m, cold_->read(r.path, known, r.size - needed, head.size(), head.data()));
      if (m != head.size()) return Status::IoError(cold_->uri_of(r.path) + ": short read of the parquet footer");
      bytes = head + bytes;
      footer->offset = r.size - needed;
    }
  }
  footer->bytes = std::move(bytes);
  std::lock_guard lk(mu_);
  ++stats_.footer_prefetches;
  footers_[r.path] = footer;
  return std::shared_ptr<const Footer>(footer);
}

}  // namespace stor::tiering::internal
