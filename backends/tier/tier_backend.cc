// tier:///DIR/...: linked directories (a local fast tier plus the cold root named in
// DIR/.stor-tier/config) served as one namespace.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "backends/tier/tiered_store.h"
#include "stor/register_backend.h"
#include "stor/settings.h"
#include "stor/tiering.h"

namespace stor::tiering {
namespace {

namespace fs = std::filesystem;

// Config keys: cold, fast (optional), demote_after (seconds, or with a ms/s/m/h unit),
// high_watermark, low_watermark (bytes, or with a K/M/G/T unit), auto_export, policy_interval
// (like demote_after; 0 = only on demand), dir_markers (booleans: 0/1, true/false, ...),
// revalidate_after (like demote_after; 0 = every open checks), sync_interval (0 = no background sync).
Result<std::map<std::string, std::string>> read_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read " + path);
  std::map<std::string, std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) return Status::Corruption(path + ": malformed line '" + line + "'");
    out[line.substr(0, eq)] = line.substr(eq + 1);
  }
  if (!out.count("cold")) return Status::Corruption(path + ": no 'cold=' line");
  return out;
}

// Seconds that still fit in int64 nanoseconds.
constexpr std::chrono::milliseconds kMaxDuration{INT64_MAX / 1'000'000};
constexpr std::chrono::milliseconds kSecond{1000};

class TierBackend final : public Backend {
 public:
  explicit TierBackend(BackendContext ctx) : ctx_(std::move(ctx)) {}

  std::string_view scheme() const override { return "tier"; }
  uint32_t capabilities() const override { return kCapRead | kCapWrite | kCapRandomWrite | kCapTruncate; }

  Result<std::unique_ptr<BackendFile>> open(const Uri& uri, const OpenOptions& opts) override {
    // The journal and the export track written ranges by offset; appends would bypass that.
    if (opts.flags & kOpenAppend) return Status::Unsupported("tier: appending opens (kOpenAppend) are not supported");
    std::string rel;
    STOR_ASSIGN_OR_RETURN(auto ns, namespace_for(uri.path, &rel));
    return ns->open_file(rel, opts);
  }
  Result<FileInfo> stat(const Uri& uri) override {
    std::string rel;
    STOR_ASSIGN_OR_RETURN(auto ns, namespace_for(uri.path, &rel));
    return ns->stat(rel);
  }
  Result<std::vector<DirEntry>> list(const Uri& uri) override {
    std::string rel;
    STOR_ASSIGN_OR_RETURN(auto ns, namespace_for(uri.path, &rel));
    return ns->list(rel);
  }
  Status remove(const Uri& uri) override {
    std::string rel;
    STOR_ASSIGN_OR_RETURN(auto ns, namespace_for(uri.path, &rel));
    return ns->remove(rel);
  }
  Status rename(const Uri& from, const Uri& to) override {
    std::string from_rel, to_rel;
    STOR_ASSIGN_OR_RETURN(auto ns, namespace_for(from.path, &from_rel));
    STOR_ASSIGN_OR_RETURN(auto to_ns, namespace_for(to.path, &to_rel));
    if (ns != to_ns) return Status::Unsupported("tier: rename across linked namespaces: " + from.to_string() + " -> " + to.to_string());
    return ns->rename(from_rel, to_rel);
  }
  Status mkdir(const Uri& uri, uint32_t) override {
    return Status::Unsupported("tier: directories are implicit (a file's parents exist while it does): " + uri.to_string());
  }
  std::map<std::string, std::string> describe(const Uri& uri) override {
    std::map<std::string, std::string> out;
    std::string rel;
    auto ns = namespace_for(uri.path, &rel);
    if (!ns.is_ok()) return {{"error", ns.status().to_string()}};
    const TierStats s = (*ns)->stats();
    out["tier.files"] = std::to_string(s.files);
    out["tier.fast_bytes"] = std::to_string(s.fast_bytes);
    // "tier" is the column `stctl ls -l` shows.
    if (auto st = (*ns)->status(rel); st.is_ok()) out["tier"] = residency_name(st->residency);
    return out;
  }

  Result<std::shared_ptr<TieredStore>> namespace_for(const std::string& path, std::string* rel) {
    if (path.empty() || path[0] != '/') return Status::InvalidArgument("tier: needs an absolute path, got '" + path + "'");
    std::string norm = fs::path(path).lexically_normal().generic_string();
    // "/DIR/" and "/DIR" are one namespace: a trailing slash must not become another root key
    // (a second instance of the same state in this process).
    while (norm.size() > 1 && norm.back() == '/') norm.pop_back();
    const fs::path p(norm);
    for (fs::path dir = p;; dir = dir.parent_path()) {
      std::error_code ec;
      if (fs::exists(dir / internal::kStateDirName / "config", ec)) {
        *rel = fs::relative(p, dir).generic_string();
        if (*rel == ".") rel->clear();
        return open_root(dir.string());
      }
      if (dir == dir.root_path() || dir.empty()) break;
    }
    return Status::NotFound("tier: no linked directory (with " + std::string(internal::kStateDirName) +
                                       "/config) contains " + path + "; create one with `stctl link`");
  }

  Result<std::shared_ptr<TieredStore>> open_root(const std::string& root) {
    std::lock_guard lk(mu_);
    if (auto it = namespaces_.find(root); it != namespaces_.end()) return it->second;
    STOR_ASSIGN_OR_RETURN(auto config, read_config(root + "/" + internal::kStateDirName + "/config"));
    STOR_ASSIGN_OR_RETURN(auto ns, open_locked(root, std::move(config)));
    namespaces_[root] = ns;
    return ns;
  }

  // For create_link: the namespace `config` would give `root`, opened without reading or
  // writing the config file and not yet shared; adopt() shares it once the config is written.
  Result<std::shared_ptr<TieredStore>> open_unlinked(const std::string& root, std::map<std::string, std::string> config) {
    std::lock_guard lk(mu_);
    if (namespaces_.count(root)) return Status::AlreadyExists(root + " is already linked");
    return open_locked(root, std::move(config));
  }
  void adopt(const std::string& root, std::shared_ptr<TieredStore> ns) {
    std::lock_guard lk(mu_);
    namespaces_.emplace(root, std::move(ns));
  }

 private:
  Result<std::shared_ptr<TieredStore>> open_locked(const std::string& root, std::map<std::string, std::string> config) {
    const std::string state_dir = root + "/" + internal::kStateDirName;
    // Settings given to the store override the directory's config.
    for (const char* key :
         {"demote_after", "high_watermark", "low_watermark", "auto_export", "policy_interval", "dir_markers",
          "revalidate_after", "sync_interval", "notify_listen"})
      if (auto it = ctx_.settings.find(std::string("tier.") + key); it != ctx_.settings.end()) config[key] = it->second;
    TierOptions o;
    // The fast tier is the linked directory itself unless the config names another root
    // (e.g. fast=lustre:///mnt/fs/ns); the state stays in the linked directory.
    o.fast_root = config.count("fast") ? config["fast"] : "nvme://" + root;
    STOR_ASSIGN_OR_RETURN(Uri fast_uri, Uri::parse(o.fast_root));
    STOR_ASSIGN_OR_RETURN(o.fast, backend_locked(fast_uri.scheme));
    o.cold_root = config["cold"];
    STOR_ASSIGN_OR_RETURN(Uri cold_uri, Uri::parse(o.cold_root));
    STOR_ASSIGN_OR_RETURN(o.cold, backend_locked(cold_uri.scheme));
    o.state_dir = state_dir;
    // Strict numbers (std::stoull took "-1" as 2^64-1: a negative demote_after then demoted
    // everything at once); durations must fit in int64 nanoseconds.
    const Settings s(config, "tier link " + root);
    STOR_ASSIGN_OR_RETURN(auto demote_after, s.get_duration("demote_after",
                                   std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(o.demote_after_ns)),
                                   kSecond, std::chrono::milliseconds(0), kMaxDuration));
    o.demote_after_ns = std::chrono::nanoseconds(demote_after).count();
    STOR_ASSIGN_OR_RETURN(o.high_watermark_bytes, s.get_size("high_watermark", o.high_watermark_bytes));
    STOR_ASSIGN_OR_RETURN(o.low_watermark_bytes, s.get_size("low_watermark", o.low_watermark_bytes));
    STOR_ASSIGN_OR_RETURN(o.auto_export, s.get_bool("auto_export", false));
    STOR_ASSIGN_OR_RETURN(o.cold_dir_markers, s.get_bool("dir_markers", false));
    // Cold data moves on its own in long-lived processes; `stctl` runs are too short to notice.
    STOR_ASSIGN_OR_RETURN(auto policy_interval, s.get_duration("policy_interval", std::chrono::minutes(5), kSecond,
                                                               std::chrono::milliseconds(0), kMaxDuration));
    o.policy_interval_ns = std::chrono::nanoseconds(policy_interval).count();
    STOR_ASSIGN_OR_RETURN(auto revalidate_after, s.get_duration("revalidate_after", std::chrono::minutes(1), kSecond,
                                                                std::chrono::milliseconds(0), kMaxDuration));
    o.revalidate_after_ns = std::chrono::nanoseconds(revalidate_after).count();
    STOR_ASSIGN_OR_RETURN(auto sync_interval, s.get_duration("sync_interval", std::chrono::milliseconds(0), kSecond,
                                                             std::chrono::milliseconds(0), kMaxDuration));
    o.sync_interval_ns = std::chrono::nanoseconds(sync_interval).count();
    STOR_ASSIGN_OR_RETURN(o.parquet_sparse_min, Settings(ctx_.settings).get_size("parquet.small_object", o.parquet_sparse_min));
    if (config.count("notify_listen")) o.notify_listen = config["notify_listen"];
    return TieredStore::open(std::move(o));
  }

  Result<std::shared_ptr<Backend>> backend_locked(const std::string& scheme) {
    if (scheme == "tier") return Status::InvalidArgument("tier: a cold tier cannot itself be tier://");
    if (auto it = backends_.find(scheme); it != backends_.end()) return it->second;
    STOR_ASSIGN_OR_RETURN(BackendFactory factory, BackendRegistry::global().find(scheme));
    STOR_ASSIGN_OR_RETURN(std::shared_ptr<Backend> b, factory(ctx_));
    backends_[scheme] = b;
    return b;
  }

  BackendContext ctx_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Backend>> backends_;
  std::map<std::string, std::shared_ptr<TieredStore>> namespaces_;
};

TierBackend* as_tier(Backend& b) { return dynamic_cast<TierBackend*>(&b); }

STOR_REGISTER_BACKEND("tier", [](const BackendContext& ctx) -> Result<std::shared_ptr<Backend>> {
  return std::shared_ptr<Backend>(std::make_shared<TierBackend>(ctx));
});

}  // namespace

Result<LinkResult> create_link(Backend& tier_backend, const std::string& fast_dir, const std::string& cold_root,
                               const std::string& fast_root) {
  TierBackend* tb = as_tier(tier_backend);
  if (!tb) return Status::InvalidArgument("create_link needs the tier:// backend");
  STOR_ASSIGN_OR_RETURN(Uri cold, Uri::parse(cold_root));
  if (cold.scheme == "tier") return Status::InvalidArgument("cannot link to a tier:// URI");
  if (!fast_root.empty()) {
    STOR_ASSIGN_OR_RETURN(Uri fast, Uri::parse(fast_root));
    if (fast.scheme == "tier") return Status::InvalidArgument("the fast tier cannot be a tier:// URI");
  }
  std::error_code ec;
  const fs::path root = fs::absolute(fs::path(fast_dir), ec).lexically_normal();
  if (ec) return Status::InvalidArgument("link: bad path " + fast_dir + ": " + ec.message());
  std::string root_s = root.string();
  while (root_s.size() > 1 && root_s.back() == '/') root_s.pop_back();
  const fs::path state = fs::path(root_s) / internal::kStateDirName;
  const fs::path config = state / "config";
  if (fs::exists(config, ec)) {
    STOR_ASSIGN_OR_RETURN(auto existing, read_config(config.string()));
    if (existing["cold"] != cold_root || (!fast_root.empty() && existing["fast"] != fast_root))
      return Status::AlreadyExists(root_s + " is already linked to " + existing["cold"] +
                                              (existing.count("fast") ? " (fast tier " + existing["fast"] + ")" : ""));
    STOR_ASSIGN_OR_RETURN(auto ns, tb->open_root(root_s));
    STOR_ASSIGN_OR_RETURN(size_t imported, ns->import_listing());
    return LinkResult{ns, imported};
  }

  // A new link is set up whole or not at all. The config file is what makes the directory a
  // linked one (namespace_for looks for it), so everything that can fail comes first: both
  // schemes resolve to backends, the state opens, the cold root lists (a missing bucket, a
  // refused connection). The config is written last (temporary file, then rename); on failure
  // the directories this call created are removed again.
  fs::path created;  // the outermost directory that did not exist before
  for (fs::path p = state; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    created = p;
    if (p == p.root_path()) break;
  }
  fs::create_directories(state, ec);
  if (ec) return Status::IoError("link: create " + state.string() + ": " + ec.message());
  std::map<std::string, std::string> settings{{"cold", cold_root}};
  if (!fast_root.empty()) settings["fast"] = fast_root;
  std::shared_ptr<TieredStore> ns;
  size_t imported = 0;
  Status s = [&]() -> Status {
    STOR_ASSIGN_OR_RETURN(ns, tb->open_unlinked(root_s, settings));
    STOR_ASSIGN_OR_RETURN(imported, ns->import_listing());
    const fs::path tmp = state / ("config.tmp." + std::to_string(::getpid()));
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << "# stor tiered namespace (docs/tiering.md)\ncold=" << cold_root << "\n";
      if (!fast_root.empty()) out << "fast=" << fast_root << "\n";
      if (!out.flush()) {
        fs::remove(tmp, ec);
        return Status::IoError("link: write " + tmp.string());
      }
    }
    std::error_code rec;
    fs::rename(tmp, config, rec);
    if (rec) {
      fs::remove(tmp, ec);
      return Status::IoError("link: rename " + tmp.string() + ": " + rec.message());
    }
    return Status::ok();
  }();
  if (!s.is_ok()) {
    ns.reset();  // releases the state's locks and stops the policy thread before the state goes
    if (!created.empty()) fs::remove_all(created, ec);
    return s;
  }
  tb->adopt(root_s, ns);
  return LinkResult{ns, imported};
}

Result<std::shared_ptr<TieredStore>> namespace_of(Backend& tier_backend, const std::string& path, std::string* rel) {
  TierBackend* tb = as_tier(tier_backend);
  if (!tb) return Status::InvalidArgument("namespace_of needs the tier:// backend");
  std::error_code ec;
  const std::string abs = fs::absolute(fs::path(path), ec).lexically_normal().string();
  if (ec) return Status::InvalidArgument("bad path " + path + ": " + ec.message());
  return tb->namespace_for(abs, rel);
}

}  // namespace stor::tiering
