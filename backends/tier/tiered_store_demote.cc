// Demotion (copy, verify by reading back, switch the durable record, release the fast copy) and
// the policy that picks files by age and by the fast tier's watermarks, on demand or in a thread.
#include "backends/tier/tiered_store_impl.h"

#include <algorithm>
#include <chrono>

namespace stor::tiering::internal {

// The background policy: every policy_interval_ns, or when kicked by a full fast tier.
void TieredStoreImpl::start_policy_thread() {
  if (opts_.policy_interval_ns <= 0) return;
  policy_thread_ = std::thread([this] {
    std::unique_lock lk(policy_mu_);
    while (!stopping_) {
      policy_cv_.wait_for(lk, std::chrono::nanoseconds(opts_.policy_interval_ns), [&] { return stopping_ || kicked_; });
      if (stopping_) break;
      kicked_ = false;
      lk.unlock();
      (void)run_policy();  // a file that fails to move stays where it was; the next run retries it
      lk.lock();
    }
  });
}

// Caller holds mu_.
void TieredStoreImpl::kick_policy_if_full() {
  if (opts_.policy_interval_ns <= 0 || opts_.high_watermark_bytes == 0) return;
  uint64_t fast_bytes = 0;
  for (auto& [p, r] : records_)
    if (fast_resident(r.residency)) fast_bytes += r.size;
  if (fast_bytes <= opts_.high_watermark_bytes) return;
  {
    std::lock_guard lk(policy_mu_);
    kicked_ = true;
  }
  policy_cv_.notify_all();
}

Result<PolicyReport> TieredStoreImpl::run_policy() {
  const int64_t now = opts_.clock();
  struct Candidate {
    std::string path;
    int64_t last_access;
    uint64_t size;
  };
  std::vector<Candidate> candidates;
  uint64_t fast_bytes = 0;
  {
    std::lock_guard lk(mu_);
    STOR_RETURN_IF_ERROR(journal_->refresh(&records_));
    for (auto& [p, r] : records_) {
      if (!fast_resident(r.residency)) continue;
      fast_bytes += r.size;
      if (open_handles_.count(p)) continue;
      candidates.push_back({p, r.last_access_ns, r.size});
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const Candidate& a, const Candidate& b) { return a.last_access < b.last_access; });
  PolicyReport report;
  const uint64_t low = opts_.low_watermark_bytes ? opts_.low_watermark_bytes : opts_.high_watermark_bytes;
  const bool over_high = opts_.high_watermark_bytes > 0 && fast_bytes > opts_.high_watermark_bytes;
  for (const auto& c : candidates) {
    const bool aged = now - c.last_access >= opts_.demote_after_ns;
    const bool evict = over_high && fast_bytes > low;
    if (!aged && !evict) continue;
    Status s = demote(c.path);
    if (s.is_ok()) {
      report.demoted.push_back(c.path);
      fast_bytes -= std::min(fast_bytes, c.size);
    } else {
      report.failed.push_back(c.path + ": " + s.to_string());
    }
  }
  return report;
}

Status TieredStoreImpl::demote(const std::string& path) {
  STOR_ASSIGN_OR_RETURN(std::string rel, normalize_path(path));
  STOR_ASSIGN_OR_RETURN(OpGuard g, lock_op(rel));
  return demote_locked(rel);
}

void TieredStoreImpl::hook(const std::string& rel, const char* step) {
  if (opts_.step_hook) opts_.step_hook(rel, step);
}

// Caller holds the op lock of rel. Copy, verify, switch, release.
Status TieredStoreImpl::demote_locked(const std::string& rel) {
  std::optional<Record> r = find(rel);
  if (!r) return Status::NotFound("no such tiered file: " + rel);
  if (!fast_resident(r->residency)) return {};
  {
    std::lock_guard lk(mu_);
    if (is_open(rel)) return Status::Busy(rel + " is open");
  }
  ColdObject target;
  bool need_copy = r->residency == Residency::kDirty;
  ExpectedVersion expect = expected_of(*r);
  if (!r->cold_etag.empty()) {
    auto current = cold_->stat(rel);
    if (current.is_ok() && current->etag != r->cold_etag)
      return Status::Aborted(cold_->uri_of(rel) + " changed in the cold tier since the last sync: run sync first");
    if (!current.is_ok() && current.status().code() != Code::kNotFound) return current.status();
    if (!current.is_ok()) {
      need_copy = true;  // the cold copy vanished: copy again
      expect = ExpectedVersion{true, ""};
    } else {
      target = *current;
    }
  }
  if (need_copy) {
    bool refused = false;
    auto uploaded = upload_fast_copy(rel, expect, &refused);
    if (!uploaded.is_ok()) {
      if (refused)
        return Status::Aborted(uploaded.status().message() + ": run sync first (the conflict rule keeps both versions)");
      return uploaded.status();
    }
    Upload up = std::move(uploaded).value();
    hook(rel, "copied");
    // Verify by reading the cold copy back before anything depends on it.
    if (up.object.size != up.size)
      return Status::Corruption(cold_->uri_of(rel) + ": cold copy has " + std::to_string(up.object.size) +
                                     " bytes, expected " + std::to_string(up.size));
    STOR_ASSIGN_OR_RETURN(uint32_t crc, cold_->checksum(rel, up.object, opts_.fetch_chunk));
    if (crc != up.crc)
      return Status::Corruption(cold_->uri_of(rel) + ": cold copy does not read back as written (CRC mismatch)");
    hook(rel, "verified");
    target = up.object;
  }
  {
    std::lock_guard lk(mu_);
    Record& cur = records_[rel];
    cur.residency = Residency::kDemoted;
    cur.export_pending = false;
    cur.size = target.size;
    cur.cold_etag = target.etag;
    cur.cold_mtime_ns = target.mtime_ns;
    validated(rel);
    STOR_RETURN_IF_ERROR(journal_->put(cur, true));  // the switch: durable before the release
    ++stats_.demotions;
    stats_.demoted_bytes += target.size;
  }
  hook(rel, "switched");
  Status s = opts_.fast->remove(fast_uri(rel));
  if (!s.is_ok() && s.code() != Code::kNotFound) return s;  // retried by recovery at the next open
  hook(rel, "released");
  return {};
}

}  // namespace stor::tiering::internal
