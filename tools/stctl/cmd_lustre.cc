// stctl commands of the Lustre-style backend: mkfs/init, setstripe, getstripe, df.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "stor/admin.h"
#include "command.h"

namespace stctl {
namespace {

namespace lu = stor::admin;

std::string json_str(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else out += c;
  }
  return out + "\"";
}

stor::Status bad_usage(const std::string& msg) { return {stor::Code::kInvalidArgument, msg}; }

stor::Result<int32_t> parse_i32(const std::string& flag, const std::string& v) {
  STOR_ASSIGN_OR_RETURN(int64_t x, parse_int(flag, v, -1, INT32_MAX));
  return static_cast<int32_t>(x);
}

// Parses lfs-style layout options: "-c N -S SIZE -i IDX", or components "-E END -c N -S SIZE ...".
// Returns the remaining positional arguments through `rest`.
stor::Result<lu::LayoutSpec> parse_layout(const std::vector<std::string>& args, std::vector<std::string>& rest,
                                          lu::StripeSpec defaults = {}) {
  lu::LayoutSpec spec;
  lu::StripeSpec cur = defaults;
  bool used_e = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> stor::Result<std::string> {
      if (i + 1 >= args.size()) return bad_usage(a + " needs a value");
      return args[++i];
    };
    if (a == "-c" || a == "--stripe-count") {
      STOR_ASSIGN_OR_RETURN(auto v, value());
      STOR_ASSIGN_OR_RETURN(cur.stripe_count, parse_i32(a, v));
    } else if (a == "-S" || a == "--stripe-size") {
      STOR_ASSIGN_OR_RETURN(auto v, value());
      STOR_ASSIGN_OR_RETURN(cur.stripe_size, parse_size(a, v));
    } else if (a == "-i" || a == "--stripe-index") {
      STOR_ASSIGN_OR_RETURN(auto v, value());
      STOR_ASSIGN_OR_RETURN(cur.stripe_offset, parse_i32(a, v));
    } else if (a == "-E" || a == "--component-end") {
      STOR_ASSIGN_OR_RETURN(auto v, value());
      if (used_e) spec.push_back(cur);  // close the previous component; the new one starts from its settings
      used_e = true;
      if (v == "-1" || v == "EOF" || v == "eof") {
        cur.extent_end = lu::kEof;
      } else {
        STOR_ASSIGN_OR_RETURN(cur.extent_end, parse_size(a, v));
      }
    } else if (!a.empty() && a[0] == '-' && a.size() > 1) {
      return bad_usage("unknown option " + a);
    } else {
      rest.push_back(a);
    }
  }
  spec.push_back(cur);
  if (spec.back().extent_end != lu::kEof)
    return bad_usage("the last component must end at EOF (-E -1)");
  return spec;
}

int cmd_mkfs(Context& ctx, const std::vector<std::string>& args) {
  lu::MkfsOptions o;
  std::vector<std::string> layout_args, pos;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    bool has_value = i + 1 < args.size();
    if ((a == "-t" || a == "--targets") && has_value) {
      auto v = parse_int(a, args[++i], 1, 65536);
      if (!v.is_ok()) return usage_error(v.status());
      o.targets = static_cast<uint32_t>(*v);
    } else if (a == "--mode" && has_value) {
      auto v = parse_uint(a, args[++i], 8);
      if (!v.is_ok()) return usage_error(v.status());
      if (*v > 07777) return usage_error(bad_usage("--mode wants octal permission bits (at most 7777), got '" + args[i] + "'"));
      o.root_mode = static_cast<uint32_t>(*v);
    } else if (a == "--fsname" && has_value) {
      o.fsname = args[++i];
    } else if (a == "--remote" && has_value) {  // one stor-target endpoint per target
      o.target_endpoints.push_back(args[++i]);
    } else if (a == "--key-file" && has_value) {  // the key the remote targets were started with
      o.key_file = args[++i];
    } else if ((a == "-c" || a == "-S" || a == "-i" || a == "-E") && has_value) {
      layout_args.push_back(a);
      layout_args.push_back(args[++i]);
    } else if (!a.empty() && a[0] == '-') {
      return 2;
    } else {
      pos.push_back(a);
    }
  }
  if (pos.size() != 1) return 2;
  if (!o.target_endpoints.empty()) o.targets = static_cast<uint32_t>(o.target_endpoints.size());
  std::vector<std::string> none;
  auto spec = parse_layout(layout_args, none);
  if (!spec.is_ok()) return usage_error(spec.status());
  o.default_layout = *spec;
  if (auto s = lu::mkfs(pos[0], o); !s.is_ok()) return fail(s);
  std::string root = lu::host_path_of(pos[0]);
  if (ctx.json)
    std::cout << "{\"root\":" << json_str(root) << ",\"targets\":" << o.targets
              << ",\"default_layout\":" << json_str(lu::describe_layout(lu::layout_of(o.default_layout)))
              << (o.target_endpoints.empty() ? std::string() : ",\"target_key\":" + json_str(lu::target_key_path(root)))
              << "}\n";
  else
    std::cout << "created file system '" << o.fsname << "' at " << root << " with " << o.targets
              << " targets; use lustre://" << root << "/... URIs\n";
  if (!o.target_endpoints.empty() && !ctx.json)
    std::cout << "target key: " << lu::target_key_path(root) << " (mode 0600; "
              << (o.key_file.empty() ? "new: restart each stor-target with --key-file " + lu::target_key_path(root)
                                     : "a copy of " + o.key_file)
              << ")\n";
  return 0;
}

int cmd_setstripe(Context& ctx, const std::vector<std::string>& args) {
  std::vector<std::string> pos;
  auto spec = parse_layout(args, pos);
  if (!spec.is_ok()) return usage_error(spec.status());
  if (pos.size() != 1) return 2;
  if (auto s = lu::setstripe(pos[0], *spec); !s.is_ok()) return fail(s);
  if (ctx.json) std::cout << "{\"path\":" << json_str(pos[0]) << ",\"layout\":" << json_str(lu::describe_layout(lu::layout_of(*spec))) << "}\n";
  return 0;
}

int cmd_getstripe(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto info = lu::getstripe(args[0]);
  if (!info.is_ok()) return fail(info.status());
  if (!ctx.json) {
    std::cout << lu::format_stripe_info(*info);
    return 0;
  }
  std::string out = "{\"path\":" + json_str(info->path) + ",\"type\":" + json_str(info->is_dir ? "directory" : "file") +
                    ",\"driver\":" + json_str(info->driver) + ",\"size\":" + std::to_string(info->size) +
                    ",\"layout\":" + json_str(lu::describe_layout(info->layout)) + ",\"objects\":[";
  for (size_t i = 0; i < info->objects.size(); ++i) {
    const auto& o = info->objects[i];
    out += (i ? "," : "") + std::string("{\"component\":") + std::to_string(o.component) +
           ",\"stripe\":" + std::to_string(o.stripe) + ",\"target\":" + std::to_string(o.target) +
           ",\"path\":" + json_str(o.path) + ",\"allocated\":" + (o.exists ? "true" : "false") +
           ",\"size\":" + std::to_string(o.size) + "}";
  }
  std::cout << out << "]}\n";
  return 0;
}

std::string human(uint64_t b) {
  const char* units[] = {"B", "K", "M", "G", "T", "P"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f%s" : "%.0f%s", v, units[u]);
  return buf;
}

int cmd_df(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto r = lu::df(args[0]);
  if (!r.is_ok()) return fail(r.status());
  if (ctx.json) {
    std::string out = "{\"root\":" + json_str(r->root) + ",\"fsname\":" + json_str(r->fsname) +
                      ",\"inodes\":" + std::to_string(r->inodes) + ",\"wal_bytes\":" + std::to_string(r->wal_bytes) +
                      ",\"targets\":[";
    for (size_t i = 0; i < r->targets.size(); ++i) {
      const auto& t = r->targets[i];
      out += (i ? "," : "") + std::string("{\"index\":") + std::to_string(t.index) + ",\"path\":" + json_str(t.path) +
             ",\"objects\":" + std::to_string(t.objects) + ",\"used_bytes\":" + std::to_string(t.used_bytes) +
             ",\"apparent_bytes\":" + std::to_string(t.apparent_bytes) + ",\"fs_total\":" + std::to_string(t.fs_total) +
             ",\"fs_avail\":" + std::to_string(t.fs_avail) + "}";
    }
    out += "],\"mdts\":[";
    for (size_t i = 0; i < r->mdts.size(); ++i) {
      const auto& m = r->mdts[i];
      out += (i ? "," : "") + std::string("{\"index\":") + std::to_string(m.index) + ",\"endpoint\":" +
             json_str(m.endpoint) + ",\"inodes\":" + std::to_string(m.inodes) +
             ",\"wal_bytes\":" + std::to_string(m.wal_bytes) + "}";
    }
    std::cout << out << "]}\n";
    return 0;
  }
  std::printf("%-20s %10s %10s %10s %10s %10s\n", "TARGET", "OBJECTS", "USED", "APPARENT", "HOST-SIZE", "HOST-AVAIL");
  uint64_t objs = 0, used = 0, app = 0;
  for (const auto& t : r->targets) {
    std::string name = r->fsname + "-OST" + std::to_string(t.index);
    std::printf("%-20s %10llu %10s %10s %10s %10s\n", name.c_str(), static_cast<unsigned long long>(t.objects),
                human(t.used_bytes).c_str(), human(t.apparent_bytes).c_str(), human(t.fs_total).c_str(),
                human(t.fs_avail).c_str());
    objs += t.objects, used += t.used_bytes, app += t.apparent_bytes;
  }
  std::printf("%-20s %10llu %10s %10s\n", "total", static_cast<unsigned long long>(objs), human(used).c_str(),
              human(app).c_str());
  std::printf("metadata: %llu inodes, %s write-ahead log, root %s\n", static_cast<unsigned long long>(r->inodes),
              human(r->wal_bytes).c_str(), r->root.c_str());
  for (const auto& m : r->mdts) {
    std::string name = r->fsname + "-MDT" + std::to_string(m.index);
    std::printf("%-20s %10llu inodes %10s log  %s\n", name.c_str(), static_cast<unsigned long long>(m.inodes),
                human(m.wal_bytes).c_str(), m.endpoint.c_str());
  }
  return 0;
}

int cmd_fsck(Context& ctx, const std::vector<std::string>& args) {
  bool repair = false;
  std::vector<std::string> pos;
  for (const auto& a : args) {
    if (a == "--repair") repair = true;
    else if (!a.empty() && a[0] == '-') return 2;
    else pos.push_back(a);
  }
  if (pos.size() != 1) return 2;
  // A cluster's metadata is held (and locked) by its running stor-mds: fsck works offline on the
  // file system root, on the MDS host, with the MDS stopped.
  const std::string prefix = "lustre://";
  if (pos[0].rfind(prefix, 0) == 0 && pos[0].size() > prefix.size() && pos[0][prefix.size()] != '/')
    return fail(stor::Status::Unsupported(
        "fsck of a cluster (" + pos[0] + ") is offline: its stor-mds holds ROOT/mdt/lock while it serves; stop it "
        "and run stctl fsck ROOT on the MDS host with the targets up (for a local cluster: stctl cluster fsck DIR)"));
  auto r = lu::fsck(pos[0], repair);
  if (!r.is_ok()) return fail(r.status());
  if (ctx.json) {
    std::cout << "{\"inodes\":" << r->inodes << ",\"objects\":" << r->objects << ",\"orphans\":" << r->orphans
              << ",\"overlong\":" << r->overlong << ",\"metadata_problems\":" << r->problems.size()
              << ",\"repaired\":" << (repair ? "true" : "false") << "}\n";
  } else {
    for (const auto& p : r->problems) std::cout << (repair ? "repaired metadata: " : "metadata: ") << p << "\n";
    for (const auto& p : r->orphan_paths) std::cout << (repair ? "removed orphan " : "orphan ") << p << "\n";
    std::cout << r->inodes << " inodes, " << r->objects << " objects, " << r->orphans << " orphan(s), " << r->overlong
              << " object(s) longer than their file" << (repair && (r->orphans || r->overlong) ? " (repaired)" : "")
              << "\n";
  }
  return (r->orphans || r->overlong || !r->problems.empty()) && !repair ? 1 : 0;
}

}  // namespace

stor::Status copy_layout(const std::string& like, const std::string& path) {
  STOR_ASSIGN_OR_RETURN(lu::StripeInfo info, lu::getstripe(like));
  if (info.is_dir) return {stor::Code::kIsADirectory, like + " is a directory"};
  lu::LayoutSpec spec;
  for (const auto& c : info.layout.components) {
    lu::StripeSpec s;
    s.stripe_count = c.stripe_count;
    s.stripe_size = c.stripe_size;
    // The resolved targets start at targets[0]; asking for that offset gives the same placement.
    s.stripe_offset = c.targets.empty() ? c.stripe_offset : static_cast<int32_t>(c.targets[0]);
    s.extent_end = c.extent_end;
    spec.push_back(s);
  }
  if (spec.empty()) return {stor::Code::kCorruption, like + " has no layout components"};
  return lu::setstripe(path, spec);
}

namespace {

const char* kMkfsHelp =
    "Create a Lustre-style file system in DIR with N object targets (ost0..ostN-1, default 4), a metadata\n"
    "target (mdt/: write-ahead log + checkpoint) and the .stor-lustre superblock. -c/-S/-i/-E set the\n"
    "file system's default layout (default: 1 stripe of 1M). Files are then reached as lustre://DIR/...\n"
    "--remote ENDPOINT (repeated, e.g. --remote tcp://127.0.0.1:7001) puts each target on a stor-target\n"
    "daemon instead of a local ostK directory; the count of --remote options is the target count.\n"
    "--key-file FILE: the key those targets were started with (stor-target --key-file FILE; make one with\n"
    "stor-target --make-key FILE); mkfs checks each target authenticates with it. Without it mkfs makes a new\n"
    "key. Either way the key is kept in DIR/mdt/target.key (mode 0600) and every mount authenticates with it.";

const Registrar r_mkfs{{"mkfs", "mkfs [-t N | --remote ENDPOINT... [--key-file FILE]] [-c COUNT] [-S SIZE] [--mode OCTAL] [--fsname NAME] DIR", kMkfsHelp, cmd_mkfs}};
const Registrar r_init{{"init", "init [-t N | --remote ENDPOINT... [--key-file FILE]] [-c COUNT] [-S SIZE] [--mode OCTAL] [--fsname NAME] DIR",
                        std::string("Same as mkfs.\n") + kMkfsHelp, cmd_mkfs}};
const Registrar r_setstripe{{"setstripe", "setstripe [-c N] [-S SIZE] [-i INDEX] | [-E END -c N -S SIZE]... PATH",
                             "Set the layout of a lustre:// path: a directory's default for new files, an empty file's\n"
                             "layout, or create PATH as an empty file with it. -c -1 stripes over all targets; SIZE is a\n"
                             "multiple of 64K (K/M/G suffixes). Repeat -E END ... for a progressive layout, e.g.\n"
                             "  stctl setstripe -E 64M -c 1 -E -1 -c -1 /fs/dir   (first 64 MiB on 1 target, the rest on all)",
                             cmd_setstripe}};
const Registrar r_getstripe{{"getstripe", "getstripe PATH",
                             "Show the layout of a lustre:// file (components, and per stripe the target and object with\n"
                             "its size) or the default layout of a directory, and which layout driver serves it.",
                             cmd_getstripe}};
const Registrar r_fsck{{"fsck", "fsck [--repair] PATH",
                        "Check that every object on the targets of the Lustre-style file system holding PATH belongs\n"
                        "to a live file's layout and holds nothing past the file's size; --repair deletes orphans and cuts\n"
                        "overlong objects back. Metadata that does not load (invalid WAL records or checkpoint\n"
                        "entries) is listed with what --repair does: drop the record, or move the inode to /lost+found;\n"
                        "--repair then writes a fresh checkpoint so the file system mounts again. Exit status 1 when\n"
                        "problems remain.",
                        cmd_fsck}};
const Registrar r_df{{"df", "df PATH",
                      "Per-target usage of the Lustre-style file system holding PATH: objects, allocated and apparent\n"
                      "bytes, and the host file system's size and free space.",
                      cmd_df}};

}  // namespace
}  // namespace stctl
