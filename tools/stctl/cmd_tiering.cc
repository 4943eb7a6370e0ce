// stctl commands of linked / tiered namespaces: link, sync, status, demote, promote.
// PATH arguments are local paths inside a linked directory, or the same as tier:///PATH.
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "stor/tiering.h"
#include "command.h"

namespace stctl {
namespace {

namespace tier = stor::tiering;

std::string local_path(const std::string& arg) {
  const std::string scheme = "tier://";
  return arg.compare(0, scheme.size(), scheme) == 0 ? arg.substr(scheme.size()) : arg;
}

stor::Result<std::shared_ptr<stor::Backend>> tier_backend(Context& ctx) {
  return ctx.store.backend(stor::Uri::parse("tier:///").value());
}

stor::Result<std::shared_ptr<tier::TieredStore>> namespace_of(Context& ctx, const std::string& arg, std::string* rel) {
  STOR_ASSIGN_OR_RETURN(auto backend, tier_backend(ctx));
  return tier::namespace_of(*backend, local_path(arg), rel);
}

std::string time_string(int64_t ns) {
  if (ns <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ns / 1'000'000'000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int cmd_link(Context& ctx, const std::vector<std::string>& all) {
  std::vector<std::string> args;
  std::string fast;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i] == "--fast") {
      if (i + 1 == all.size()) return 2;
      fast = all[++i];
    } else if (!all[i].empty() && all[i][0] == '-') {
      return 2;
    } else {
      args.push_back(all[i]);
    }
  }
  if (args.size() != 2) return 2;
  auto backend = tier_backend(ctx);
  if (!backend.is_ok()) return fail(backend.status());
  auto linked = tier::create_link(**backend, local_path(args[0]), args[1], fast);
  if (!linked.is_ok()) return fail(linked.status());
  const tier::TierStats s = linked->store->stats();
  print_map(ctx, {{"path", args[0]},
                  {"cold", args[1]},
                  {"fast", fast.empty() ? "nvme://" + std::filesystem::absolute(local_path(args[0])).lexically_normal().string() : fast},
                  {"imported", std::to_string(linked->imported)},
                  {"files", std::to_string(s.files)},
                  {"uri", "tier://" + std::filesystem::absolute(local_path(args[0])).lexically_normal().string()}});
  return 0;
}

int cmd_sync(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  std::string rel;
  auto ns = namespace_of(ctx, args[0], &rel);
  if (!ns.is_ok()) return fail(ns.status());
  auto report = (*ns)->sync();
  if (!report.is_ok()) return fail(report.status());
  std::vector<std::vector<std::string>> rows;
  auto add = [&](const char* action, const std::vector<std::string>& paths) {
    for (const auto& p : paths) rows.push_back({action, p});
  };
  add("exported", report->exported);
  add("imported", report->imported_new);
  add("updated", report->imported_changed);
  add("deleted", report->deleted_locally);
  add("conflict", report->conflicts);
  add("failed", report->failed);
  print_table(ctx, {"action", "path"}, rows);
  if (!ctx.json) {
    std::printf("%zu exported, %zu imported, %zu updated, %zu deleted, %zu conflicts, %zu failed\n",
                report->exported.size(), report->imported_new.size(), report->imported_changed.size(),
                report->deleted_locally.size(), report->conflicts.size(), report->failed.size());
  }
  return report->failed.empty() ? 0 : 1;
}

int cmd_status(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  std::string rel;
  auto ns = namespace_of(ctx, args[0], &rel);
  if (!ns.is_ok()) return fail(ns.status());
  auto files = (*ns)->status_all(rel);
  if (files.empty() && !rel.empty()) return fail({stor::Code::kNotFound, "no tiered file at or under " + args[0]});
  std::vector<std::vector<std::string>> rows;
  for (const auto& f : files)
    rows.push_back({tier::residency_name(f.residency), std::to_string(f.size), time_string(f.last_access_ns),
                    std::to_string(f.reads), f.path});
  print_table(ctx, {"state", "size", "last_read", "reads", "path"}, rows);
  if (!ctx.json) {
    const tier::TierStats s = (*ns)->stats();
    std::printf("%zu files shown; namespace: %llu files, %s on the fast tier\n", files.size(),
                static_cast<unsigned long long>(s.files), human_size(static_cast<double>(s.fast_bytes)).c_str());
  }
  return 0;
}

int cmd_demote(Context& ctx, const std::vector<std::string>& args) {
  bool policy = false;
  std::string path;
  for (const auto& a : args) {
    if (a == "--policy") policy = true;
    else if (!a.empty() && a[0] == '-') return 2;
    else if (path.empty()) path = a;
    else return 2;
  }
  if (path.empty()) return 2;
  std::string rel;
  auto ns = namespace_of(ctx, path, &rel);
  if (!ns.is_ok()) return fail(ns.status());
  if (!policy) {
    if (rel.empty()) return fail({stor::Code::kInvalidArgument, "demote needs a file (or --policy for the namespace)"});
    stor::Status s = (*ns)->demote(rel);
    if (!s.is_ok()) return fail(s);
    print_map(ctx, {{"path", rel}, {"state", tier::residency_name((*ns)->status(rel)->residency)}});
    return 0;
  }
  auto report = (*ns)->run_policy();
  if (!report.is_ok()) return fail(report.status());
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : report->demoted) rows.push_back({"demoted", p});
  for (const auto& p : report->failed) rows.push_back({"failed", p});
  print_table(ctx, {"action", "path"}, rows);
  return report->failed.empty() ? 0 : 1;
}

int cmd_promote(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  std::string rel;
  auto ns = namespace_of(ctx, args[0], &rel);
  if (!ns.is_ok()) return fail(ns.status());
  stor::Status s = (*ns)->promote(rel);
  if (!s.is_ok()) return fail(s);
  print_map(ctx, {{"path", rel}, {"state", tier::residency_name((*ns)->status(rel)->residency)}});
  return 0;
}

const Registrar r_link{{"link", "link [--fast FAST_URI] FS_PATH COLD_URI",
                        "Link the local directory FS_PATH to COLD_URI (s3express://bucket/prefix, or any backend "
                        "directory): the listing is imported as files (size, mtime, ETag) without reading data, and "
                        "the namespace is reachable as tier://FS_PATH/... . Data is fetched on first read and kept "
                        "in FS_PATH, or under FAST_URI (e.g. lustre:///mnt/fs/ns) with --fast. Policy settings: --set tier.demote_after=SECONDS, tier.high_watermark=BYTES, "
                        "tier.low_watermark=BYTES, tier.auto_export=1. See docs/tiering.md.",
                        cmd_link}};
const Registrar r_sync{{"sync", "sync PATH",
                        "Reconcile a linked namespace with its cold root: export new and changed local files "
                        "(multipart for large ones), import new, changed and deleted objects. When both sides "
                        "changed, the bucket's version stays at the path and the local one is exported as "
                        "PATH.stor-conflict (reported as a conflict). Exit status 1 if any file failed.",
                        cmd_sync}};
const Registrar r_status{{"status", "status PATH",
                          "Per file under PATH (a linked directory or a file in it): state (cached = on both tiers, "
                          "uncached = only in the bucket, never fetched, dirty = changed locally since the last "
                          "export, demoted = moved to the cold tier by the policy), size, last read, reads.",
                          cmd_status}};
const Registrar r_demote{{"demote", "demote [--policy] PATH",
                          "Move a file of a linked namespace to the cold tier now (copy, verify, switch, release), "
                          "or with --policy apply the age and watermark policy to the whole namespace.",
                          cmd_demote}};
const Registrar r_promote{{"promote", "promote PATH", "Fetch a cold file of a linked namespace to the fast tier.",
                           cmd_promote}};

}  // namespace
}  // namespace stctl
