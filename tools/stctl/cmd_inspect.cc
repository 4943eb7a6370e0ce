// stctl stat, ls and top: looking at files and at live I/O.
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "stor/admin.h"
#include "stor/stats.h"
#include "stor/target.h"
#include "command.h"

namespace stctl {
namespace {

std::string type_name(stor::FileType t) {
  switch (t) {
    case stor::FileType::kRegular: return "file";
    case stor::FileType::kDirectory: return "directory";
    case stor::FileType::kBlockDevice: return "block-device";
    case stor::FileType::kOther: return "other";
  }
  return "other";
}

std::string mode_string(stor::FileType t, uint32_t mode) {
  std::string s(10, '-');
  s[0] = t == stor::FileType::kDirectory ? 'd' : t == stor::FileType::kBlockDevice ? 'b' : '-';
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i)
    if (mode & (1u << (8 - i))) s[static_cast<size_t>(i) + 1] = rwx[i];
  return s;
}

std::string time_string(int64_t ns) {
  if (ns == 0) return "-";
  time_t secs = static_cast<time_t>(ns / 1000000000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string child_uri(const std::string& dir, const std::string& name) {
  return !dir.empty() && dir.back() == '/' ? dir + name : dir + "/" + name;
}

// A backend's describe() may carry "layout" and "tier"; other backends show "-".
std::string described(const std::map<std::string, std::string>& d, const char* key) {
  auto it = d.find(key);
  return it == d.end() || it->second.empty() ? "-" : it->second;
}

int cmd_stat(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto st = ctx.store.stat(args[0]);
  if (!st.is_ok()) return fail(st.status());
  auto m = ctx.store.describe(args[0]);
  m.erase("error");
  m["uri"] = args[0];
  m["type"] = type_name(st->type);
  m["size"] = std::to_string(st->size);
  char mode[16];
  std::snprintf(mode, sizeof mode, "%04o", st->mode);
  m["mode"] = mode;
  m["uid"] = std::to_string(st->uid);
  m["gid"] = std::to_string(st->gid);
  m["mtime"] = time_string(st->mtime_ns);
  if (!st->etag.empty()) m["etag"] = st->etag;
  print_map(ctx, m);
  return 0;
}

int cmd_ls(Context& ctx, const std::vector<std::string>& args) {
  bool long_form = false;
  std::string uri;
  for (auto& a : args) {
    if (a == "-l") long_form = true;
    else if (!a.empty() && a[0] == '-') return 2;
    else if (uri.empty()) uri = a;
    else return 2;
  }
  if (uri.empty()) return 2;
  auto entries = ctx.store.list(uri);
  if (!entries.is_ok()) return fail(entries.status());
  std::vector<std::vector<std::string>> rows;
  for (auto& e : *entries) {
    if (!long_form) {
      rows.push_back({e.name + (e.type == stor::FileType::kDirectory ? "/" : "")});
      continue;
    }
    std::string child = child_uri(uri, e.name);
    auto st = ctx.store.stat(child);
    auto d = ctx.store.describe(child);
    rows.push_back({st.is_ok() ? mode_string(e.type, st->mode) : mode_string(e.type, 0), std::to_string(e.size),
                    st.is_ok() ? time_string(st->mtime_ns) : "-", described(d, "layout"), described(d, "tier"),
                    e.name + (e.type == stor::FileType::kDirectory ? "/" : "")});
  }
  if (long_form) print_table(ctx, {"mode", "size", "mtime", "layout", "tier", "name"}, rows);
  else if (ctx.json) print_table(ctx, {"name"}, rows);
  else
    for (auto& r : rows) std::cout << r[0] << "\n";
  return 0;
}

int cmd_top(Context& ctx, const std::vector<std::string>& args) {
  double interval = 1.0;
  long count = isatty(STDOUT_FILENO) ? -1 : 1;  // on a terminal: until interrupted
  std::string dir = "/dev/shm", cluster;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--interval" && i + 1 < args.size()) {
      auto v = parse_seconds(args[i], args[i + 1]);
      if (!v.is_ok()) return usage_error(v.status());
      interval = *v;
      ++i;
    } else if (args[i] == "--count" && i + 1 < args.size()) {
      auto v = parse_int(args[i], args[i + 1], 1, INT32_MAX);
      if (!v.is_ok()) return usage_error(v.status());
      count = static_cast<long>(*v);
      ++i;
    } else if (args[i] == "--dir" && i + 1 < args.size()) dir = args[++i];
    else if (!args[i].empty() && args[i][0] != '-' && cluster.empty()) cluster = args[i];
    else return 2;
  }
  // A cluster URI (lustre://HOST:PORT/...): its servers' load too, from their stats calls.
  std::vector<std::string> servers;
  if (!cluster.empty()) {
    const std::string prefix = "lustre://";
    if (cluster.rfind(prefix, 0) != 0 || cluster.size() == prefix.size() || cluster[prefix.size()] == '/')
      return usage_error({stor::Code::kInvalidArgument, "top takes a cluster URI (lustre://HOST:PORT/), got '" + cluster + "'"});
    const size_t slash = cluster.find('/', prefix.size());
    servers.push_back("tcp://" + cluster.substr(prefix.size(), slash == std::string::npos ? std::string::npos : slash - prefix.size()));
    auto df = stor::admin::df(cluster);
    if (!df.is_ok()) return fail(df.status());
    for (const auto& t : df->targets) servers.push_back(t.path);  // remote targets: their endpoints
    for (const auto& m : df->mdts)  // several MDTs: the others (MDT 0 is the URI's)
      if (m.index > 0) servers.push_back(m.endpoint);
  }
  stor::ServerQueryOptions query;
  if (const char* k = std::getenv("STOR_LUSTRE_KEY_FILE")) query.key_file = k;
  auto sample_servers = [&]() {
    std::vector<stor::Result<stor::ServerStats>> out;
    for (const auto& ep : servers) out.push_back(stor::query_server_stats(ep, query));
    return out;
  };
  auto servers_before = sample_servers();
  auto key = [](int pid, const std::string& scheme) { return std::to_string(pid) + "/" + scheme; };
  auto before = stor::read_published_stats(dir);
  if (!before.is_ok()) return fail(before.status());
  for (long round = 0; count < 0 || round < count; ++round) {
    std::this_thread::sleep_for(std::chrono::duration<double>(interval));
    auto after = stor::read_published_stats(dir);
    if (!after.is_ok()) return fail(after.status());
    std::map<std::string, stor::BackendStats> prev;
    for (auto& p : *before)
      for (auto& b : p.backends) prev[key(p.pid, b.scheme)] = b;
    std::vector<std::vector<std::string>> rows;
    char buf[64];
    for (auto& p : *after) {
      if (p.pid == ::getpid()) continue;  // stctl's own store
      for (auto& b : p.backends) {
        stor::BackendStats o = prev.count(key(p.pid, b.scheme)) ? prev[key(p.pid, b.scheme)] : stor::BackendStats{};
        auto rate = [&](uint64_t now, uint64_t then) { return static_cast<double>(now - std::min(now, then)) / interval; };
        std::vector<std::string> row{std::to_string(p.pid), b.scheme};
        std::snprintf(buf, sizeof buf, "%.0f", rate(b.read_ops, o.read_ops));
        row.push_back(buf);
        std::snprintf(buf, sizeof buf, "%.1f", rate(b.read_bytes, o.read_bytes) / (1 << 20));
        row.push_back(buf);
        std::snprintf(buf, sizeof buf, "%.0f", rate(b.write_ops, o.write_ops));
        row.push_back(buf);
        std::snprintf(buf, sizeof buf, "%.1f", rate(b.write_bytes, o.write_bytes) / (1 << 20));
        row.push_back(buf);
        row.push_back(std::to_string(b.errors));
        rows.push_back(std::move(row));
      }
    }
    if (!ctx.json && count != 1 && isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";
    print_table(ctx, {"pid", "backend", "read_ops_s", "read_mib_s", "write_ops_s", "write_mib_s", "errors"}, rows);
    if (!servers.empty()) {
      auto servers_after = sample_servers();
      std::vector<std::vector<std::string>> srows;
      for (size_t k = 0; k < servers.size(); ++k) {
        const auto& a = servers_after[k];
        const auto& b = servers_before[k];
        if (!a.is_ok()) {
          srows.push_back({servers[k], "-", a.status().code() == stor::Code::kPermissionDenied ? "key refused" : "unreachable",
                           "-", "-", "-", "-"});
          continue;
        }
        auto rate = [&](const char* key) {
          const uint64_t now = a->get(key), then = b.is_ok() ? b->get(key) : now;
          return static_cast<double>(now - std::min(now, then)) / interval;
        };
        std::vector<std::string> row{servers[k], a->role, "ok"};
        std::snprintf(buf, sizeof buf, "%.0f", rate("requests"));
        row.push_back(buf);
        std::snprintf(buf, sizeof buf, "%.1f", rate("read_bytes") / (1 << 20));
        row.push_back(buf);
        std::snprintf(buf, sizeof buf, "%.1f", rate("write_bytes") / (1 << 20));
        row.push_back(buf);
        row.push_back(std::to_string(a->get("errors")));
        srows.push_back(std::move(row));
      }
      if (!ctx.json) std::cout << "\n";
      print_table(ctx, {"server", "role", "health", "req_s", "read_mib_s", "write_mib_s", "errors"}, srows);
      servers_before = std::move(servers_after);
    }
    std::cout.flush();
    before = std::move(after);
  }
  return 0;
}

// ---- mkdir / rm / mv ----
int cmd_mkdir(Context& ctx, const std::vector<std::string>& args) {
  std::string uri, mdt;
  uint32_t mode = 0755;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "-i" && i + 1 < args.size()) {
      auto k = parse_int(args[i], args[i + 1], 0, 255);
      if (!k.is_ok()) return usage_error(k.status());
      mdt = args[++i];
    } else if (args[i] == "-m" && i + 1 < args.size()) {
      mode = static_cast<uint32_t>(std::strtoul(args[++i].c_str(), nullptr, 8)) & 07777;
    } else if (!args[i].empty() && args[i][0] != '-' && uri.empty()) {
      uri = args[i];
    } else {
      return 2;
    }
  }
  if (uri.empty()) return 2;
  if (mdt.empty()) {
    if (auto s = ctx.store.mkdir(uri, mode); !s.is_ok()) return fail(s);
    return 0;
  }
  // As `lfs mkdir -i K`: a store of its own whose lustre mounts place new directories on MDT K.
  stor::StoreOptions o;
  o.settings = ctx.store.settings();
  o.settings["lustre.mkdir_mdt"] = mdt;
  auto placed = stor::Store::create(o);
  if (!placed.is_ok()) return fail(placed.status());
  if (auto s = (*placed)->mkdir(uri, mode); !s.is_ok()) return fail(s);
  return 0;
}

int cmd_rm(Context& ctx, const std::vector<std::string>& args) {
  if (args.empty()) return 2;
  for (const auto& uri : args)
    if (auto s = ctx.store.remove(uri); !s.is_ok()) return fail(s);
  return 0;
}

int cmd_mv(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 2) return 2;
  if (auto s = ctx.store.rename(args[0], args[1]); !s.is_ok()) return fail(s);
  return 0;
}

const Registrar r_mkdir{{"mkdir", "mkdir [-i MDT] [-m MODE] URI",
                         "Make a directory. -i MDT (lustre:// cluster with several MDTs, as `lfs mkdir -i`): on "
                         "that metadata target; by default the MDS spreads new directories over the MDTs.",
                         cmd_mkdir}};
const Registrar r_rm{{"rm", "rm URI...", "Remove files or empty directories.", cmd_rm}};
const Registrar r_mv{{"mv", "mv FROM TO", "Rename within one file system (replaces TO).", cmd_mv}};

const Registrar r_stat{{"stat", "stat URI",
                        "Show one file's metadata: type, size, mode, owner, mtime, ETag for objects, and what the "
                        "backend reports about it (layout, tier, capabilities).",
                        cmd_stat}};
const Registrar r_ls{{"ls", "ls [-l] URI",
                      "List a directory (or an object prefix). With -l: mode, size, mtime, layout and tier columns; "
                      "backends without striping or tiering show '-' there.",
                      cmd_ls}};
const Registrar r_top{{"top", "top [--interval SEC] [--count N] [--dir DIR] [lustre://HOST:PORT/]",
                       "Live ops/s and MiB/s per process and backend, read from the counters every stor process "
                       "publishes in /dev/shm (stor-stats.<pid>.<n>). Refreshes every SEC seconds (default 1) until "
                       "interrupted on a terminal; N rounds otherwise (default 1). Files of dead processes are removed. "
                       "With a cluster URI, also every server of that cluster (the MDS and its targets): requests/s "
                       "and MiB/s from their stats calls, authenticated with STOR_LUSTRE_KEY_FILE (or --set "
                       "lustre.key_file=FILE).",
                       cmd_top}};

}  // namespace
}  // namespace stctl
