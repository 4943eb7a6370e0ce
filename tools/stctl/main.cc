// stctl: inspect and exercise stor stores from the shell.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>

#include "stor/settings.h"
#include "command.h"

namespace stctl {

std::map<std::string, Command>& commands() {
  static std::map<std::string, Command> c;
  return c;
}

int fail(const stor::Status& s) {
  std::fprintf(stderr, "stctl: %s\n", s.to_string().c_str());
  return 1;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

void print_map(const Context& ctx, const std::map<std::string, std::string>& m) {
  if (ctx.json) {
    std::string out = "{";
    for (auto& [k, v] : m) out += (out.size() > 1 ? "," : "") + ("\"" + json_escape(k) + "\":\"" + json_escape(v) + "\"");
    std::cout << out << "}\n";
  } else {
    size_t w = 0;
    for (auto& [k, v] : m) w = std::max(w, k.size());
    for (auto& [k, v] : m) std::cout << k << std::string(w - k.size() + 2, ' ') << v << "\n";
  }
}

namespace {
stor::Status bad_value(const std::string& option, const std::string& text, const std::string& want) {
  return {stor::Code::kInvalidArgument, option + " wants " + want + ", got '" + text + "'"};
}
}  // namespace

int usage_error(const stor::Status& s) {
  std::fprintf(stderr, "stctl: %s\n", s.message().c_str());
  return 2;
}

// The strict parsers of stor/settings.h ("-1", blanks, "0x" and overflow refused), with stctl's
// "OPTION wants ..., got '...'" messages.
stor::Result<uint64_t> parse_uint(const std::string& option, const std::string& text, int base) {
  auto v = stor::parse_uint(text, base);
  if (!v.is_ok()) return bad_value(option, text, base == 8 ? "an octal number" : "a non-negative integer below 2^64");
  return v;
}

stor::Result<uint64_t> parse_size(const std::string& option, const std::string& text) {
  auto v = stor::parse_size(text);
  if (!v.is_ok()) return bad_value(option, text, "a size below 2^64 bytes (e.g. 4096, 4k, 1M, 2GiB)");
  return v;
}

stor::Result<int64_t> parse_int(const std::string& option, const std::string& text, int64_t min, int64_t max) {
  const std::string want = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const bool negative = !text.empty() && text[0] == '-';
  auto mag = parse_uint(option, negative ? text.substr(1) : text);
  if (!mag.is_ok() || *mag > static_cast<uint64_t>(INT64_MAX)) return bad_value(option, text, want);
  const int64_t v = negative ? -static_cast<int64_t>(*mag) : static_cast<int64_t>(*mag);
  if (v < min || v > max) return bad_value(option, text, want);
  return v;
}

stor::Result<double> parse_seconds(const std::string& option, const std::string& text) {
  const std::string want = "seconds (e.g. 0.5, 10), more than 0 and at most a year";
  // Plain decimals only: no sign, exponent, "inf" or "nan" (strtod takes all of those).
  bool dot = false, digit = false;
  for (char c : text) {
    if (c == '.' && !dot) dot = true;
    else if (c >= '0' && c <= '9') digit = true;
    else return bad_value(option, text, want);
  }
  if (!digit) return bad_value(option, text, want);
  const double v = std::strtod(text.c_str(), nullptr);
  if (!(v > 0) || v > 366.0 * 24 * 3600) return bad_value(option, text, want);
  return v;
}

std::string human_size(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", bytes, units[u]);
  return buf;
}

void print_table(const Context& ctx, const std::vector<std::string>& columns,
                 const std::vector<std::vector<std::string>>& rows) {
  if (ctx.json) {
    std::string out = "[";
    for (size_t r = 0; r < rows.size(); ++r) {
      out += r ? ",{" : "{";
      for (size_t c = 0; c < columns.size() && c < rows[r].size(); ++c)
        out += (c ? ",\"" : "\"") + json_escape(columns[c]) + "\":\"" + json_escape(rows[r][c]) + "\"";
      out += "}";
    }
    std::cout << out << "]\n";
    return;
  }
  std::vector<size_t> width(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) width[c] = columns[c].size();
  for (auto& row : rows)
    for (size_t c = 0; c < columns.size() && c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < columns.size(); ++c) {
      std::string cell = c < cells.size() ? cells[c] : "";
      out += cell;
      if (c + 1 < columns.size()) out += std::string(width[c] - cell.size() + 2, ' ');
    }
    std::cout << out << "\n";
  };
  std::vector<std::string> header;
  for (auto& c : columns) {
    std::string h = c;
    for (auto& ch : h) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    header.push_back(h);
  }
  line(header);
  for (auto& row : rows) line(row);
}

namespace {

// ---- version ----
int cmd_version(Context& ctx, const std::vector<std::string>&) {
  std::map<std::string, std::string> m{{"version", stor::version()}, {"engine", ctx.store.engine().name()}};
  std::string schemes;
  for (auto& s : stor::BackendRegistry::global().schemes()) schemes += (schemes.empty() ? "" : ",") + s;
  m["backends"] = schemes;
  if (ctx.json) print_map(ctx, m);
  else std::cout << "stctl " << stor::version() << " (engine " << ctx.store.engine().name() << ", backends " << schemes << ")\n";
  return 0;
}

// ---- info ----
int cmd_info(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto st = ctx.store.stat(args[0]);
  if (!st.is_ok()) return fail(st.status());
  auto m = ctx.store.describe(args[0]);
  m["uri"] = args[0];
  m["size"] = std::to_string(st->size);
  m["type"] = st->type == stor::FileType::kDirectory ? "directory"
              : st->type == stor::FileType::kBlockDevice ? "block-device"
                                                         : "file";
  if (st->mode) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "%04o", st->mode);
    m["mode"] = mode;
  }
  if (!st->etag.empty()) m["etag"] = st->etag;
  print_map(ctx, m);
  return 0;
}

// ---- cp ----
class Progress {
 public:
  Progress(uint64_t total, bool enabled) : total_(total), enabled_(enabled), start_(std::chrono::steady_clock::now()) {}
  void update(uint64_t done, bool final = false) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - start_).count();
    double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
    int width = 30, filled = static_cast<int>(frac * width);
    std::fprintf(stderr, "\r[%s%s] %3d%% %s/s ", std::string(filled, '#').c_str(), std::string(width - filled, ' ').c_str(),
                 static_cast<int>(frac * 100), human_size(secs > 0 ? static_cast<double>(done) / secs : 0).c_str());
    if (final) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  uint64_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_, last_{};
};

// Copies all of src (expected_size bytes) into dst and syncs it; does not close dst.
stor::Status copy_data(stor::File& src, uint64_t expected_size, stor::File& dst, const std::string& src_name,
                       const std::string& dst_name, uint64_t* copied) {
  // Reads fill a ring of 8 MiB buffers while up to kDepth - 1 earlier ones are being written:
  // an object store taking a whole part straight from the buffer (s3) keeps several uploads
  // going without copying the bytes into part buffers of its own.
  const size_t chunk = 8u << 20;
  constexpr size_t kDepth = 4;
  struct Slot {
    std::vector<char> buf;
    std::future<stor::Result<size_t>> wrote;
    size_t have = 0;
    bool busy = false;
  };
  std::vector<Slot> slots(kDepth);
  for (auto& s : slots) s.buf.resize(chunk);
  // Waits for a slot's write; every write is waited for before returning (they use the buffers).
  auto settle = [&](Slot& s) -> stor::Status {
    if (!s.busy) return stor::Status::ok();
    s.busy = false;
    auto w = s.wrote.get();
    if (!w.is_ok()) return w.status();
    if (*w != s.have) return {stor::Code::kIoError, "short write to " + dst_name};
    return stor::Status::ok();
  };
  auto settle_all = [&](stor::Status first) {
    for (auto& s : slots) {
      stor::Status st = settle(s);
      if (first.is_ok()) first = st;
    }
    return first;
  };
  Progress progress(expected_size, isatty(STDERR_FILENO));
  uint64_t off = 0;
  for (size_t i = 0;; i = (i + 1) % kDepth) {
    Slot& s = slots[i];
    if (stor::Status st = settle(s); !st.is_ok()) return settle_all(st);
    auto got = src.read(s.buf.data(), chunk, off);
    if (!got.is_ok()) return settle_all(got.status());
    if (*got == 0) break;
    auto done = std::make_shared<std::promise<stor::Result<size_t>>>();
    s.wrote = done->get_future();
    s.have = *got;
    s.busy = true;
    dst.write_async(s.buf.data(), s.have, off, [done](stor::Result<size_t> r) { done->set_value(std::move(r)); });
    off += s.have;
    progress.update(off);
  }
  STOR_RETURN_IF_ERROR(settle_all(stor::Status::ok()));
  if (off != expected_size)
    return {stor::Code::kIoError, src_name + " changed size during the copy (" + std::to_string(expected_size) +
                                      " -> " + std::to_string(off) + ")"};
  STOR_RETURN_IF_ERROR(dst.sync(false));
  progress.update(off, true);
  *copied = off;
  return stor::Status::ok();
}

// "dir/name" -> "dir/.name.stctl-PID-N.tmp": beside the destination, so the rename stays in one
// directory (and one file system or namespace).
std::string temp_name_beside(const std::string& dst) {
  static std::atomic<unsigned> counter{0};
  const size_t slash = dst.rfind('/');
  const size_t at = slash == std::string::npos ? 0 : slash + 1;
  return dst.substr(0, at) + "." + dst.substr(at) + ".stctl-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1)) + ".tmp";
}

int cmd_cp(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 2) return 2;
  std::string dst_name = args[1];
  auto st = ctx.store.stat(args[0]);
  if (!st.is_ok()) return fail(st.status());
  if (st->type == stor::FileType::kDirectory)
    return fail({stor::Code::kIsADirectory, args[0] + " is a directory: stctl cp copies single files"});
  auto dst_uri = stor::Uri::parse(dst_name);
  if (!dst_uri.is_ok()) return fail(dst_uri.status());
  struct stat lst {};
  if (dst_uri->scheme == "nvme" && ::lstat(dst_uri->path.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    // Like cp(1), a symlink at DST is written through: the rename below replaces its target.
    std::error_code ec;
    const auto real = std::filesystem::canonical(dst_uri->path, ec);
    if (ec) return fail({stor::Code::kNotFound, dst_name + " is a symlink to a missing file: " + ec.message()});
    dst_name = "nvme://" + real.string();
    dst_uri = stor::Uri::parse(dst_name);
    if (!dst_uri.is_ok()) return fail(dst_uri.status());
  }
  auto dst_backend = ctx.store.backend(*dst_uri);
  if (!dst_backend.is_ok()) return fail(dst_backend.status());
  auto old = ctx.store.stat(dst_name);
  if (old.is_ok() && old->type == stor::FileType::kDirectory)
    return fail({stor::Code::kIsADirectory, dst_name + " is a directory: give the destination file's name"});
  const bool existed = old.is_ok();
  auto src = ctx.store.open(args[0], stor::kOpenRead);
  if (!src.is_ok()) return fail(src.status());

  // File systems (rename and in-place writes): copy into a temporary file beside DST and rename
  // it over DST only after the copy and its sync succeeded, so a failed copy leaves DST as it
  // was. Object stores publish an object only when it is uploaded whole, so DST is written
  // directly there.
  const uint32_t caps = (*dst_backend)->capabilities();
  const bool via_temp = (caps & stor::kCapRename) && (caps & stor::kCapRandomWrite);
  const std::string target = via_temp ? temp_name_beside(dst_name) : dst_name;
  const uint32_t mode = existed && old->mode ? (old->mode & 07777) : 0644;
  uint32_t flags = stor::kOpenWrite | stor::kOpenCreate |
                   (via_temp ? uint32_t{stor::kOpenExclusive} : uint32_t{stor::kOpenTruncate});
  if (via_temp && existed && dst_uri->scheme == "lustre") {
    // A file given a layout with setstripe keeps it: the (still empty) temporary file gets the
    // same one before any data is written.
    auto made = ctx.store.open(target, flags, mode);
    if (!made.is_ok()) return fail(made.status());
    stor::Status s = made->close();
    if (s.is_ok()) s = copy_layout(dst_name, target);
    if (!s.is_ok()) {
      (void)ctx.store.remove(target);
      return fail(s);
    }
    flags = stor::kOpenWrite;
  }
  auto dst = ctx.store.open(target, flags, mode);
  if (!dst.is_ok()) {
    if (flags == stor::kOpenWrite) (void)ctx.store.remove(target);  // the temporary file made above
    return fail(dst.status());
  }
  uint64_t copied = 0;
  stor::Status s = copy_data(*src, st->size, *dst, args[0], dst_name, &copied);
  if (s.is_ok()) s = dst->close();
  if (s.is_ok() && via_temp && existed && dst_uri->scheme == "nvme" &&
      (old->uid != ::geteuid() || old->gid != ::getegid())) {
    // Keep DST's owner where we may (root); otherwise the copy is ours, as with rsync.
    auto tmp_uri = stor::Uri::parse(target);
    if (tmp_uri.is_ok() && ::chown(tmp_uri->path.c_str(), old->uid, old->gid) != 0 && errno != EPERM)
      s = stor::Status::from_errno(errno, "chown " + tmp_uri->path);
  }
  if (s.is_ok() && via_temp) s = ctx.store.rename(target, dst_name);
  if (!s.is_ok()) {
    // Nothing of a failed copy stays behind: the temporary file is removed; an object store's
    // upload is aborted, so its object keeps its old bytes (or is never created).
    (void)dst->abort();
    if (via_temp) (void)ctx.store.remove(target);
    return fail(s);
  }
  if (ctx.json) print_map(ctx, {{"src", args[0]}, {"dst", dst_name}, {"bytes", std::to_string(copied)}});
  return 0;
}

// ---- cat ----
int cmd_cat(Context& ctx, const std::vector<std::string>& args) {
  uint64_t offset = 0, length = UINT64_MAX;  // default: to end of file
  std::string uri;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--offset" || a == "--length") {
      if (i + 1 >= args.size()) return usage_error({stor::Code::kInvalidArgument, a + " needs a value"});
      auto n = parse_size(a, args[++i]);
      if (!n.is_ok()) return usage_error(n.status());
      (a == "--offset" ? offset : length) = *n;
    } else if (a.size() > 1 && a[0] == '-') {
      return usage_error({stor::Code::kInvalidArgument, "unknown option " + a});
    } else if (uri.empty()) {
      uri = a;
    } else {
      return 2;
    }
  }
  if (uri.empty()) return 2;
  auto file = ctx.store.open(uri, stor::kOpenRead);
  if (!file.is_ok()) return fail(file.status());
  std::vector<char> buf(4u << 20);
  uint64_t done = 0;
  while (done < length && offset <= UINT64_MAX - done) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), length - done));
    auto n = file->read(buf.data(), want, offset + done);
    // Like dd: a range past the end of the file yields what is there (possibly nothing).
    if (!n.is_ok() && n.status().code() == stor::Code::kOutOfRange) break;
    if (!n.is_ok()) return fail(n.status());
    if (*n == 0) break;
    for (size_t put = 0; put < *n;) {
      ssize_t w = ::write(STDOUT_FILENO, buf.data() + put, *n - put);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return fail(stor::Status::from_errno(errno, "write to stdout"));
      put += static_cast<size_t>(w);
    }
    done += *n;
  }
  if (auto s = file->close(); !s.is_ok()) return fail(s);
  return 0;
}

// ---- bench ----
struct BenchSpec {
  std::string rw = "randread";  // read | write | randread | randwrite
  uint64_t bs = 4096;
  unsigned qd = 32;
  uint64_t size = 256ull << 20;
  double runtime = 5;
  bool direct = true;
};

int cmd_bench(Context& ctx, const std::vector<std::string>& args) {
  BenchSpec spec;
  std::string uri;
  for (size_t i = 0; i < args.size(); ++i) {
    auto need = [&](const char* name) -> const std::string* {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "stctl bench: %s needs a value\n", name);
        return nullptr;
      }
      return &args[++i];
    };
    const std::string& a = args[i];
    if (a == "--rw") {
      auto v = need("--rw");
      if (!v) return 2;
      spec.rw = *v;
    } else if (a == "--bs" || a == "--size") {
      auto v = need(a.c_str());
      if (!v) return 2;
      auto n = parse_size(a, *v);
      if (!n.is_ok()) return usage_error(n.status());
      (a == "--bs" ? spec.bs : spec.size) = *n;
    } else if (a == "--qd") {
      auto v = need("--qd");
      if (!v) return 2;
      auto n = parse_int(a, *v, 1, ctx.store.engine().queue_depth());
      if (!n.is_ok()) return usage_error(n.status());
      spec.qd = static_cast<unsigned>(*n);
    } else if (a == "--runtime") {
      auto v = need("--runtime");
      if (!v) return 2;
      auto n = parse_seconds(a, *v);
      if (!n.is_ok()) return usage_error(n.status());
      spec.runtime = *n;
    } else if (a == "--buffered") {
      spec.direct = false;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "stctl bench: unknown option %s\n", a.c_str());
      return 2;
    } else {
      uri = a;
    }
  }
  bool random = spec.rw == "randread" || spec.rw == "randwrite";
  bool writing = spec.rw == "write" || spec.rw == "randwrite";
  if (uri.empty() || (spec.rw != "read" && spec.rw != "write" && !random)) return 2;
  if (spec.bs == 0 || spec.size < spec.bs || spec.bs > (1ull << 30))
    return fail({stor::Code::kInvalidArgument, "bench needs 0 < bs <= 1G and size >= bs"});
  spec.size -= spec.size % spec.bs;

  // A read bench never writes into an existing file: it reads what is there. Only a file it
  // creates itself (exclusively, so a file appearing meanwhile is not touched) is laid out.
  if (!writing) {
    auto existing = ctx.store.stat(uri);
    if (existing.is_ok()) {
      if (existing->type == stor::FileType::kDirectory)
        return fail({stor::Code::kIsADirectory, uri + " is a directory"});
      if (existing->size < spec.size) {
        const uint64_t have = existing->size - existing->size % spec.bs;
        if (have == 0)
          return fail({stor::Code::kOutOfRange, uri + " holds " + std::to_string(existing->size) +
                                                    " bytes, less than one block of " + std::to_string(spec.bs) +
                                                    "; a read bench does not write into existing files"});
        std::fprintf(stderr, "stctl bench: %s holds %llu bytes; reading the first %llu (not laying out more)\n",
                     uri.c_str(), static_cast<unsigned long long>(existing->size),
                     static_cast<unsigned long long>(have));
        spec.size = have;
      }
    } else if (existing.status().code() == stor::Code::kNotFound) {
      auto f = ctx.store.open(uri, stor::kOpenWrite | stor::kOpenCreate | stor::kOpenExclusive);
      if (!f.is_ok()) return fail(f.status());
      std::vector<char> fill(std::min<uint64_t>(spec.size, 8u << 20), 'x');
      stor::Status s;
      for (uint64_t off = 0; off < spec.size && s.is_ok(); off += fill.size()) {
        auto w = f->write(fill.data(), std::min<uint64_t>(fill.size(), spec.size - off), off);
        if (!w.is_ok()) s = w.status();
      }
      if (s.is_ok()) s = f->sync(false);
      if (stor::Status c = f->close(); s.is_ok()) s = c;
      if (!s.is_ok()) {
        (void)ctx.store.remove(uri);  // ours alone: do not leave a half laid-out file (e.g. disk full)
        return fail(s);
      }
    } else {
      return fail(existing.status());
    }
  }
  uint32_t flags = writing ? uint32_t{stor::kOpenWrite | stor::kOpenCreate} : uint32_t{stor::kOpenRead};
  if (spec.direct) flags |= stor::kOpenDirect;
  auto file = ctx.store.open(uri, flags);
  if (!file.is_ok()) return fail(file.status());

  std::vector<stor::AlignedBuffer> bufs;
  for (unsigned i = 0; i < spec.qd; ++i) bufs.emplace_back(spec.bs);
  const uint64_t blocks = spec.size / spec.bs;
  std::mutex mu;
  std::condition_variable cv;
  unsigned outstanding = 0;
  uint64_t ops = 0, next_block = 0;
  stor::Status error;
  std::mt19937_64 rng(42);
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                              std::chrono::duration<double>(spec.runtime));

  // Each slot keeps one request in flight; its callback issues the slot's next request.
  std::function<void(unsigned)> issue = [&](unsigned slot) {
    uint64_t block;
    {
      std::lock_guard lk(mu);
      block = random ? rng() % blocks : next_block++ % blocks;
    }
    auto cb = [&, slot](stor::Result<size_t> r) {
      bool again;
      {
        std::lock_guard lk(mu);
        if (!r.is_ok() && error.is_ok()) error = r.status();
        else if (r.is_ok()) ++ops;
        again = error.is_ok() && std::chrono::steady_clock::now() < deadline;
        if (!again) --outstanding;
      }
      if (again) issue(slot);
      else cv.notify_all();
    };
    if (writing) file->write_async(bufs[slot].data(), spec.bs, block * spec.bs, cb);
    else file->read_async(bufs[slot].data(), spec.bs, block * spec.bs, cb);
  };
  outstanding = spec.qd;
  for (unsigned i = 0; i < spec.qd; ++i) issue(i);
  {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return outstanding == 0; });
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!error.is_ok()) return fail(error);
  double iops = static_cast<double>(ops) / secs;
  double mbps = iops * static_cast<double>(spec.bs) / (1024.0 * 1024.0);
  std::map<std::string, std::string> m{{"rw", spec.rw},
                                       {"bs", std::to_string(spec.bs)},
                                       {"qd", std::to_string(spec.qd)},
                                       {"engine", ctx.store.engine().name()},
                                       {"direct", file->direct() ? "true" : "false"},
                                       {"seconds", std::to_string(secs)},
                                       {"ops", std::to_string(ops)},
                                       {"iops", std::to_string(static_cast<uint64_t>(iops))},
                                       {"mib_per_s", std::to_string(mbps)}};
  if (ctx.json) print_map(ctx, m);
  else
    std::printf("%s bs=%s qd=%u engine=%s direct=%s: %.0f IOPS, %.1f MiB/s (%.1f s)\n", spec.rw.c_str(),
                human_size(static_cast<double>(spec.bs)).c_str(), spec.qd, ctx.store.engine().name(),
                file->direct() ? "yes" : "no", iops, mbps, secs);
  return 0;
}

const Registrar r_version{{"version", "version", "Print the library version, the engine in use and the known URI schemes.", cmd_version}};
const Registrar r_info{{"info", "info URI",
                        "Show what stor knows about URI: backend, size, type, capabilities, layout and backend-specific details.",
                        cmd_info}};
const Registrar r_cp{{"cp", "cp SRC DST",
                      "Copy one file between any two backends (e.g. nvme:///a s3express://bucket/a), 8 MiB at a time, reading "
                      "ahead while writing. Shows a progress bar when stderr is a terminal. DST is created or truncated and "
                      "synced before stctl reports success.",
                      cmd_cp}};
const Registrar r_cat{{"cat", "cat [--offset N] [--length N] URI",
                       "Write LENGTH bytes of URI starting at OFFSET (default: all of it) to stdout, on any backend "
                       "(a ranged read for objects). N takes K/M/G/T suffixes. A range reaching past the end of the "
                       "file yields the bytes that are there, none when OFFSET is at or past the end (like dd).",
                       cmd_cat}};
const Registrar r_bench{{"bench", "bench [--rw read|write|randread|randwrite] [--bs SIZE] [--qd N] [--size SIZE] [--runtime SEC] [--buffered] URI",
                         "Run a fio-style load on URI through the stor API: QD requests kept in flight with the async API, "
                         "block size BS over the first SIZE bytes (default randread, 4k, qd 32, 256M, 5 s, O_DIRECT). "
                         "A read bench never writes into an existing file: on a file shorter than SIZE it reads "
                         "what is there; a missing file is created (exclusively) and laid out first. Prints IOPS "
                         "and MiB/s.",
                         cmd_bench}};

// Man-page style: `stctl --help`.
void usage() {
  std::printf(
      "NAME\n"
      "    stctl - inspect and exercise stor storage: files, layouts, stripes, cache and tier state, live I/O\n\n"
      "SYNOPSIS\n"
      "    stctl [--json] [--engine auto|io_uring|threadpool] [--qd N] [--plugins DIR] [--set KEY=VALUE]...\n"
      "          COMMAND [ARGS]\n\n"
      "DESCRIPTION\n"
      "    Every command takes stor URIs: nvme:///path (or a plain path), lustre:///fsroot/path,\n"
      "    s3express://bucket/key, or a plugin's scheme. stctl opens one stor::Store for the run.\n\n"
      "COMMANDS\n");
  for (auto& [name, c] : commands()) std::printf("    %s\n", c.synopsis.c_str());
  std::printf(
      "\n    `stctl help COMMAND` (or `stctl COMMAND --help`) describes one command.\n\n"
      "OPTIONS\n"
      "    --json            machine-readable output (one JSON object or array) on every command\n"
      "    --engine KIND     I/O engine: auto (io_uring when the kernel allows), io_uring, threadpool\n"
      "    --qd N            engine queue depth (default 128)\n"
      "    --plugins DIR     load backend plugins (lib*.so exporting stor_plugin_init) from DIR\n"
      "    --set KEY=VALUE   backend setting, e.g. --set s3.endpoint=http://127.0.0.1:9000\n\n"
      "ENVIRONMENT\n"
      "    STOR_ENGINE       io_uring | threadpool | auto, when --engine is not given\n"
      "    STOR_PLUGIN_DIR   plugin directory, when --plugins is not given\n"
      "    AWS_*             credentials, region and endpoint for s3express:// URIs\n\n"
      "EXIT STATUS\n"
      "    0 success, 1 the operation failed (the message says why), 2 usage error\n\n"
      "EXAMPLES\n"
      "    stctl cp /data/train.bin s3express://bucket/train.bin\n"
      "    stctl --json bench --rw randread --bs 4k --qd 32 /data/file\n"
      "    stctl cat --offset 1M --length 4k s3express://bucket/train.bin | xxd\n"
      "    stctl ls -l lustre:///mnt/fs/run1\n");
}

}  // namespace
}  // namespace stctl

int main(int argc, char** argv) {
  using namespace stctl;
  std::vector<std::string> args(argv + 1, argv + argc);
  stor::StoreOptions opts;
  bool json = false;
  size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-'; ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> std::string { return i + 1 < args.size() ? args[++i] : std::string(); };
    if (a == "--json") json = true;
    else if (a == "--engine") {
      std::string v = value();
      if (v == "io_uring") opts.engine.kind = stor::EngineKind::kIoUring;
      else if (v == "threadpool") opts.engine.kind = stor::EngineKind::kThreadPool;
      else if (v != "auto") return std::fprintf(stderr, "stctl: --engine wants auto, io_uring or threadpool\n"), 2;
    } else if (a == "--qd") {
      auto n = parse_int(a, value(), 1, 32768);
      if (!n.is_ok()) return usage_error(n.status());
      opts.engine.queue_depth = static_cast<unsigned>(*n);
    } else if (a == "--plugins") {
      opts.plugin_dir = value();
    } else if (a == "--set") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos) return std::fprintf(stderr, "stctl: --set wants KEY=VALUE\n"), 2;
      opts.settings[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (a == "--help" || a == "-h") {
      usage();
      return 0;
    } else {
      std::fprintf(stderr, "stctl: unknown option %s\n", a.c_str());
      return 2;
    }
  }
  if (i >= args.size()) {
    usage();
    return 2;
  }
  std::string name = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  if (name == "help") {
    if (rest.empty()) {
      usage();
      return 0;
    }
    auto it = commands().find(rest[0]);
    if (it == commands().end()) return std::fprintf(stderr, "stctl: no command '%s'\n", rest[0].c_str()), 2;
    std::printf("usage: stctl %s\n\n%s\n", it->second.synopsis.c_str(), it->second.help.c_str());
    return 0;
  }
  auto it = commands().find(name);
  if (it == commands().end()) {
    std::fprintf(stderr, "stctl: no command '%s' (see stctl --help)\n", name.c_str());
    return 2;
  }
  if (std::find(rest.begin(), rest.end(), "--help") != rest.end()) {
    std::printf("usage: stctl %s\n\n%s\n", it->second.synopsis.c_str(), it->second.help.c_str());
    return 0;
  }
  // The admin calls (df, getstripe, setstripe, fsck, top) reach a lustre://HOST:PORT cluster with
  // the key of STOR_LUSTRE_KEY_FILE; --set lustre.key_file names it for them as for the store.
  if (auto k = opts.settings.find("lustre.key_file"); k != opts.settings.end())
    ::setenv("STOR_LUSTRE_KEY_FILE", k->second.c_str(), 1);
  auto store = stor::Store::create(opts);
  if (!store.is_ok()) return fail(store.status());
  Context ctx{**store, json};
  int rc = it->second.run(ctx, rest);
  if (rc == 2) std::fprintf(stderr, "usage: stctl %s\n", it->second.synopsis.c_str());
  return rc;
}
