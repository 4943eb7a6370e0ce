// stctl cluster start|stop|status: a local Lustre-style cluster for development and tests.
// `start` runs one stor-mds and N stor-target daemons in the background, detached (own session,
// stdout/stderr to files), on one host, and makes the file system on first start:
//
//   DIR/cluster.key          the shared key (0600): daemons and clients authenticate with it
//   DIR/cluster.conf         host, counts and every server's endpoint (kept across stop/start, so
//                            a restarted cluster listens on the same ports and the URI stays valid)
//   DIR/cluster.pids         the running daemons (removed by stop)
//   DIR/ostK/                objects of target K
//   DIR/fs/                  the file system root (superblock, mdt/)
//   DIR/logs/NAME.log        a daemon's stderr (appended); NAME.out its stdout (endpoint line)
//
// Spawning daemons is tool code: only public headers (stor/admin.h for mkfs, stor/target.h for
// the key and the server-stats call) are used.
#include <fcntl.h>
#include <signal.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "stor/admin.h"
#include "stor/settings.h"
#include "stor/target.h"
#include "command.h"

namespace stctl {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

struct Server {
  std::string role;  // "mdt" or "ost"
  unsigned index = 0;
  std::string endpoint;
  pid_t pid = 0;
  std::string name() const { return role + std::to_string(index); }
  std::string binary() const { return role == "mdt" ? "stor-mds" : "stor-target"; }
};

struct Paths {
  std::string dir;  // absolute
  std::string key() const { return dir + "/cluster.key"; }
  std::string conf() const { return dir + "/cluster.conf"; }
  std::string pids() const { return dir + "/cluster.pids"; }
  std::string lock() const { return dir + "/cluster.lock"; }
  std::string root() const { return dir + "/fs"; }
  std::string logs() const { return dir + "/logs"; }
  std::string ost(unsigned k) const { return dir + "/ost" + std::to_string(k); }
  std::string log(const Server& s) const { return logs() + "/" + s.name() + ".log"; }
  std::string out(const Server& s) const { return logs() + "/" + s.name() + ".out"; }
};

stor::Result<Paths> paths_of(const std::string& dir, bool create) {
  std::error_code ec;
  if (create) fs::create_directories(dir, ec);
  if (ec) return stor::Status::from_errno(ec.value(), "cluster directory " + dir);
  fs::path abs = fs::weakly_canonical(fs::absolute(dir), ec);
  if (ec) return stor::Status::from_errno(ec.value(), "cluster directory " + dir);
  if (!fs::is_directory(abs, ec)) return stor::Status::NotFound("no cluster directory " + dir);
  return Paths{abs.string()};
}

// An exclusive flock on DIR/cluster.lock for the duration of a start or stop, so two of them
// on one directory do not interleave.
class DirLock {
 public:
  static stor::Result<DirLock> take(const Paths& p) {
    int fd = ::open(p.lock().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return stor::Status::from_errno(errno, "open " + p.lock());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return stor::Status::Busy("another stctl cluster command is working on " + p.dir);
    }
    return DirLock(fd);
  }
  DirLock(DirLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  ~DirLock() {
    if (fd_ >= 0) ::close(fd_);
  }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

// ---- state files ----------------------------------------------------------------------------

struct Conf {
  std::string host;
  unsigned mdts = 0, osts = 0;
  bool root_squash = true;
  std::vector<Server> servers;  // endpoints; mdt first
};

stor::Status write_file_atomic(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    f.flush();
    if (!f) return stor::Status::IoError("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return stor::Status::from_errno(errno, "rename " + tmp);
  return {};
}

// Lines "role index value" (value: an endpoint or a pid). Anything else is Corruption: the
// files are ours, but a hand-edited or truncated one must not make stop signal a wrong pid.
stor::Result<std::vector<Server>> parse_servers(const std::string& path, const std::string& text, bool pids) {
  std::vector<Server> out;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty() || line[0] == '#' || line.rfind("host ", 0) == 0 || line.rfind("mdts ", 0) == 0 ||
        line.rfind("osts ", 0) == 0 || line.rfind("root_squash ", 0) == 0)
      continue;
    std::istringstream l(line);
    Server s;
    std::string index, value, extra;
    if (!(l >> s.role >> index >> value) || (l >> extra) || (s.role != "mdt" && s.role != "ost"))
      return stor::Status::Corruption(path + " line " + std::to_string(n) + ": '" + line + "' is not 'mdt|ost INDEX VALUE'");
    auto i = stor::parse_uint(index);
    if (!i.is_ok() || *i > 65535) return stor::Status::Corruption(path + " line " + std::to_string(n) + ": bad index");
    s.index = static_cast<unsigned>(*i);
    if (pids) {
      auto p = stor::parse_uint(value);
      if (!p.is_ok() || *p < 2 || *p > 0x3fffffff)
        return stor::Status::Corruption(path + " line " + std::to_string(n) + ": bad pid '" + value + "'");
      s.pid = static_cast<pid_t>(*p);
    } else {
      s.endpoint = value;
    }
    out.push_back(s);
  }
  return out;
}

stor::Result<std::string> read_text(const std::string& path) {
  std::ifstream f(path);
  if (!f) return stor::Status::NotFound(path + " does not exist");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

stor::Result<Conf> read_conf(const Paths& p) {
  STOR_ASSIGN_OR_RETURN(std::string text, read_text(p.conf()));
  Conf c;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream l(line);
    std::string k, v;
    l >> k >> v;
    if (k == "host") c.host = v;
    if (k == "root_squash") c.root_squash = v != "0";
    if (k == "mdts" || k == "osts") {
      auto n = stor::parse_uint(v);
      if (!n.is_ok() || *n > 4096) return stor::Status::Corruption(p.conf() + ": bad " + k + " '" + v + "'");
      (k == "mdts" ? c.mdts : c.osts) = static_cast<unsigned>(*n);
    }
  }
  STOR_ASSIGN_OR_RETURN(c.servers, parse_servers(p.conf(), text, false));
  size_t mdts = 0, osts = 0;
  for (const auto& s : c.servers) (s.role == "mdt" ? mdts : osts)++;
  if (c.host.empty() || mdts != c.mdts || osts != c.osts)
    return stor::Status::Corruption(p.conf() + ": host, counts and server lines do not agree");
  return c;
}

std::string conf_text(const Conf& c) {
  std::string t = "# stctl cluster: servers of this cluster (kept across stop/start)\nhost " + c.host +
                  "\nmdts " + std::to_string(c.mdts) + "\nosts " + std::to_string(c.osts) + "\nroot_squash " + (c.root_squash ? "1" : "0") + "\n";
  for (const auto& s : c.servers) t += s.role + " " + std::to_string(s.index) + " " + s.endpoint + "\n";
  return t;
}

stor::Status write_pids(const Paths& p, const std::vector<Server>& running) {
  std::string t = "# stctl cluster: running daemons (removed by stop)\n";
  for (const auto& s : running) t += s.role + " " + std::to_string(s.index) + " " + std::to_string(s.pid) + "\n";
  return write_file_atomic(p.pids(), t);
}

// ---- processes ------------------------------------------------------------------------------

// Whether pid is alive and still the daemon we started (pids are recycled): its argv[0] ends in
// the daemon's name and one of its arguments lies in the cluster directory.
bool is_our_daemon(pid_t pid, const Server& s, const Paths& p) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string st;
  if (!std::getline(stat, st)) return false;
  const size_t paren = st.rfind(')');
  if (paren == std::string::npos || paren + 2 >= st.size() || st[paren + 2] == 'Z' || st[paren + 2] == 'X') return false;
  std::ifstream cmd("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string all((std::istreambuf_iterator<char>(cmd)), std::istreambuf_iterator<char>());
  std::vector<std::string> argv;
  for (size_t at = 0; at < all.size();) {
    size_t end = all.find('\0', at);
    if (end == std::string::npos) end = all.size();
    argv.push_back(all.substr(at, end - at));
    at = end + 1;
  }
  if (argv.empty() || fs::path(argv[0]).filename() != s.binary()) return false;
  for (const auto& a : argv)
    if (a.rfind(p.dir + "/", 0) == 0) return true;
  return false;
}

// Where the daemons are: STOR_BIN_DIR, next to stctl (an install's bindir), or the build tree's
// tools/<name>/ beside tools/stctl/.
stor::Result<std::string> find_daemon(const std::string& name) {
  std::vector<std::string> tried;
  if (const char* env = std::getenv("STOR_BIN_DIR"); env && *env) tried.push_back(std::string(env) + "/" + name);
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    tried.push_back((self.parent_path() / name).string());
    tried.push_back((self.parent_path().parent_path() / name / name).string());
  }
  std::string where;
  for (const auto& t : tried) {
    if (::access(t.c_str(), X_OK) == 0) return t;
    where += (where.empty() ? "" : ", ") + t;
  }
  return stor::Status::NotFound(name + " not found (looked at " + where +
                                "); build it (cmake --build BUILD --target " + name + ") or set STOR_BIN_DIR");
}

std::string last_lines(const std::string& path, size_t n) {
  auto text = read_text(path);
  if (!text.is_ok()) return "";
  std::vector<std::string> lines;
  std::istringstream in(*text);
  for (std::string l; std::getline(in, l);)
    if (!l.empty() && l.rfind("--- ", 0) != 0) lines.push_back(l);
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) out += (out.empty() ? "" : " | ") + lines[i];
  return out;
}

// Starts one daemon detached (new session, stdin /dev/null, stdout to NAME.out, stderr appended
// to NAME.log) and waits for the endpoint it prints on its first stdout line. A daemon that exits
// or prints nothing within the deadline is reaped / killed and reported with its log's last lines.
stor::Result<std::string> spawn(const Paths& p, Server& s, const std::string& binary, std::vector<std::string> args,
                                std::chrono::milliseconds deadline) {
  const std::string out = p.out(s), log = p.log(s);
  {
    std::ofstream l(log, std::ios::app);
    std::time_t now = std::time(nullptr);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
    l << "--- stctl cluster start " << when << ": " << binary;
    for (const auto& a : args) l << " " << a;
    l << "\n";
  }
  // The previous run's endpoint line must be gone before we look for the new one.
  if (::unlink(out.c_str()) != 0 && errno != ENOENT) return stor::Status::from_errno(errno, "remove " + out);
  args.insert(args.begin(), binary);
  std::vector<char*> argv;  // built before fork: the child only calls async-signal-safe functions
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return stor::Status::from_errno(errno, "fork");
  if (pid == 0) {
    ::setsid();
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || o < 0 || e < 0 || ::dup2(in, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(126);
    ::syscall(SYS_close_range, 3u, ~0u, 0u);  // stctl's own descriptors (engine rings, the dir lock)
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  s.pid = pid;
  const auto end = Clock::now() + deadline;
  while (Clock::now() < end) {
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      s.pid = 0;
      std::string why = WIFEXITED(status) ? "exited with status " + std::to_string(WEXITSTATUS(status))
                                          : "was killed by signal " + std::to_string(WTERMSIG(status));
      return stor::Status::Unavailable(s.name() + " (" + binary + ") " + why + " at start: " + last_lines(log, 3) +
                                       " (log: " + log + ")");
    }
    auto text = read_text(out);
    if (text.is_ok()) {
      const size_t nl = text->find('\n');
      if (nl != std::string::npos) return text->substr(0, nl);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  s.pid = 0;
  return stor::Status::Timeout(s.name() + " (" + binary + ") printed no endpoint within " +
                               std::to_string(deadline.count() / 1000) + " s; killed it (log: " + log + ")");
}

bool alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string st;
  if (!std::getline(stat, st)) return false;
  const size_t paren = st.rfind(')');
  return paren != std::string::npos && paren + 2 < st.size() && st[paren + 2] != 'Z';
}

// SIGTERM, then SIGKILL after `grace`; reaps it when it is our child (a start that failed).
// Returns how it ended.
std::string terminate(pid_t pid, std::chrono::milliseconds grace) {
  ::kill(pid, SIGTERM);
  const auto end = Clock::now() + grace;
  while (Clock::now() < end) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid || !alive(pid)) return "stopped";
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 250 && alive(pid); ++i) {
    ::waitpid(pid, nullptr, WNOHANG);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return "killed (no exit within " + std::to_string(grace.count() / 1000) + " s of SIGTERM)";
}

// The daemons of DIR that are still running, from cluster.pids (recycled pids are left out).
std::vector<Server> running_daemons(const Paths& p, const std::vector<Server>& listed) {
  std::vector<Server> out;
  for (const auto& s : listed)
    if (is_our_daemon(s.pid, s, p)) out.push_back(s);
  return out;
}

// Stops the listed daemons, MDS first (it checkpoints and leaves the targets last), and
// removes cluster.pids. Prints one line per daemon unless quiet.
void stop_all(const Paths& p, std::vector<Server> running, std::chrono::milliseconds grace, bool quiet) {
  std::stable_sort(running.begin(), running.end(), [](const Server& a, const Server& b) { return a.role < b.role; });
  for (const auto& s : running) {
    std::string how = terminate(s.pid, grace);
    if (!quiet) std::cout << s.name() << " (pid " << s.pid << "): " << how << "\n";
  }
  ::unlink(p.pids().c_str());
}

// Whether a failed stats call still reached the server and passed the handshake: the server
// itself answered with an error (a daemon without the stats call refuses its opcode).
bool answered(const stor::Status& s) {
  switch (s.code()) {
    case stor::Code::kUnavailable:
    case stor::Code::kTimeout:
    case stor::Code::kPermissionDenied:
    case stor::Code::kCorruption:
      return false;
    default:
      return true;
  }
}

std::string uri_of(const Conf& c) {
  for (const auto& s : c.servers)
    if (s.role == "mdt") {
      const std::string ep = s.endpoint;
      const size_t at = ep.find("://");
      return "lustre://" + (at == std::string::npos ? ep : ep.substr(at + 3)) + "/";
    }
  return "";
}

// ---- start ----------------------------------------------------------------------------------

// Several MDTs: the superblock names every MDT's endpoint before the MDSs start (clients learn
// them from MDT 0; MDTs call each other), so a first start picks free ports for them up front.
stor::Result<std::string> pick_endpoint(const std::string& host) {
  addrinfo hints{}, *res = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = ::getaddrinfo(host.c_str(), "0", &hints, &res); e != 0)
    return stor::Status::InvalidArgument("host " + host + ": " + ::gai_strerror(e));
  // Below the usual ephemeral range (32768..), so no outgoing connection takes it before the
  // MDS binds it.
  int err = 0;
  for (int tries = 0; tries < 1000; ++tries) {
    const uint16_t port = static_cast<uint16_t>(20000 + (::random() ^ ::getpid() ^ tries * 7919) % 12000);
    sockaddr_storage ss{};
    std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
    if (ss.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port = htons(port);
    else reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(port);
    int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&ss), res->ai_addrlen) == 0;
    err = errno;
    if (fd >= 0) ::close(fd);
    if (ok) {
      ::freeaddrinfo(res);
      return "tcp://" + host + ":" + std::to_string(port);
    }
  }
  ::freeaddrinfo(res);
  return stor::Status::from_errno(err, "pick a port on " + host);
}

// stor-mds arguments of MDT s.
std::vector<std::string> mds_args(const Paths& p, const Conf& conf, const Server& s) {
  std::vector<std::string> args{"--root", p.root(), "--listen", s.endpoint, "--key-file", p.key()};
  if (!conf.root_squash) args.push_back("--no-root-squash");
  if (conf.mdts > 1) {
    args.push_back("--mdt-index");
    args.push_back(std::to_string(s.index));
  }
  return args;
}

struct StartOptions {
  unsigned mdts = 1, osts = 4;
  std::string host = "127.0.0.1";
  bool root_squash = true;
  bool mdts_given = false, osts_given = false, host_given = false, squash_given = false;
  std::chrono::milliseconds deadline{15000};
};

stor::Status check_start(const Paths& p, const StartOptions& o, Conf* conf, bool* fresh) {
  auto existing = read_conf(p);
  if (existing.is_ok()) {
    if ((o.mdts_given && o.mdts != existing->mdts) || (o.osts_given && o.osts != existing->osts) ||
        (o.host_given && o.host != existing->host) || (o.squash_given && o.root_squash != existing->root_squash))
      return stor::Status::InvalidArgument(
          p.dir + " holds a cluster of " + std::to_string(existing->mdts) + " MDT(s) and " +
          std::to_string(existing->osts) + " OST(s) on " + existing->host +
          (existing->root_squash ? "" : " without root squash") +
          "; start it without --mdts/--osts/--host/--no-root-squash to restart it, or use a new directory");
    *conf = *existing;
    *fresh = false;
    return {};
  }
  if (existing.status().code() != stor::Code::kNotFound) return existing.status();
  std::error_code ec;
  if (fs::exists(p.root(), ec))
    return stor::Status::AlreadyExists(p.root() + " exists but " + p.conf() +
                                       " does not: not a cluster directory made by stctl cluster start (or a start "
                                       "that failed half-way: remove " + p.root() + ")");
  conf->host = o.host;
  conf->root_squash = o.root_squash;
  conf->mdts = o.mdts;
  conf->osts = o.osts;
  for (unsigned k = 0; k < o.osts; ++k) conf->servers.push_back({"ost", k, "tcp://" + o.host + ":0", 0});
  for (unsigned k = 0; k < o.mdts; ++k) conf->servers.push_back({"mdt", k, "tcp://" + o.host + ":0", 0});
  *fresh = true;
  return {};
}

stor::Status start_cluster(Context& ctx, const Paths& p, const StartOptions& o) {
  STOR_ASSIGN_OR_RETURN(std::string target_bin, find_daemon("stor-target"));
  STOR_ASSIGN_OR_RETURN(std::string mds_bin, find_daemon("stor-mds"));
  STOR_ASSIGN_OR_RETURN(DirLock lock, DirLock::take(p));

  // A cluster already running here, or stale state of one that died.
  if (auto listed = read_text(p.pids()); listed.is_ok()) {
    STOR_ASSIGN_OR_RETURN(auto servers, parse_servers(p.pids(), *listed, true));
    auto running = running_daemons(p, servers);
    if (!running.empty()) {
      std::string which;
      for (const auto& s : running) which += (which.empty() ? "" : ", ") + s.name() + " pid " + std::to_string(s.pid);
      return stor::Status::AlreadyExists("a cluster is already running in " + p.dir + " (" + which +
                                         "); `stctl cluster stop " + p.dir + "` first");
    }
    std::cerr << "stctl: " << p.pids() << " lists no running daemon (stale, from a cluster that died); starting afresh\n";
    ::unlink(p.pids().c_str());
  }

  Conf conf;
  bool fresh = false;
  STOR_RETURN_IF_ERROR(check_start(p, o, &conf, &fresh));
  std::error_code ec;
  fs::create_directories(p.logs(), ec);
  if (ec) return stor::Status::from_errno(ec.value(), "create " + p.logs());
  if (::access(p.key().c_str(), F_OK) != 0) STOR_RETURN_IF_ERROR(stor::make_target_key(p.key()));

  std::vector<Server> running;
  // Whatever fails after the first daemon started stops every daemon started so far.
  // A first start that fails also removes the file system it made, so the next start is a
  // first start again (the ports it chose are not recorded).
  auto undo = [&](stor::Status s) {
    stop_all(p, running, std::chrono::milliseconds(5000), true);
    if (fresh) fs::remove_all(p.root(), ec);
    return s;
  };
  for (auto& s : conf.servers) {
    if (s.role != "ost") continue;
    fs::create_directories(p.ost(s.index), ec);
    if (ec) return undo(stor::Status::from_errno(ec.value(), "create " + p.ost(s.index)));
    auto ep = spawn(p, s, target_bin, {"--listen", s.endpoint, "--dir", p.ost(s.index), "--key-file", p.key()}, o.deadline);
    if (!ep.is_ok()) return undo(ep.status());
    s.endpoint = *ep;
    running.push_back(s);
    if (auto w = write_pids(p, running); !w.is_ok()) return undo(w);
  }
  if (fresh) {
    stor::admin::MkfsOptions mo;
    mo.fsname = "stor";
    mo.key_file = p.key();
    for (const auto& s : conf.servers)
      if (s.role == "ost") mo.target_endpoints.push_back(s.endpoint);
    for (auto& s : conf.servers) {
      if (s.role != "mdt" || conf.mdts < 2) continue;
      auto ep = pick_endpoint(conf.host);
      if (!ep.is_ok()) return undo(ep.status());
      s.endpoint = *ep;
      mo.mdt_endpoints.push_back(s.endpoint);
    }
    mo.targets = static_cast<uint32_t>(mo.target_endpoints.size());
    if (auto m = stor::admin::mkfs(p.root(), mo); !m.is_ok()) return undo(m.with_context("mkfs " + p.root()));
  }
  for (auto& s : conf.servers) {
    if (s.role != "mdt") continue;
    auto ep = spawn(p, s, mds_bin, mds_args(p, conf, s), o.deadline);
    if (!ep.is_ok()) return undo(ep.status());
    s.endpoint = *ep;
    running.push_back(s);
    if (auto w = write_pids(p, running); !w.is_ok()) return undo(w);
  }
  // Every server answers an authenticated call before the cluster is announced.
  for (const auto& s : running) {
    stor::ServerQueryOptions q;
    q.key_file = p.key();
    auto st = stor::query_server_stats(s.endpoint, q);
    if (!st.is_ok() && !answered(st.status()))
      return undo(st.status().with_context(s.name() + " at " + s.endpoint + " does not answer"));
  }
  if (fresh)
    if (auto w = write_file_atomic(p.conf(), conf_text(conf)); !w.is_ok()) return undo(w);

  const std::string uri = uri_of(conf);
  if (ctx.json) {
    std::map<std::string, std::string> m{{"dir", p.dir}, {"uri", uri}, {"key_file", p.key()},
                                         {"created", fresh ? "true" : "false"}};
    for (const auto& s : running) m[s.name()] = s.endpoint + " pid " + std::to_string(s.pid);
    print_map(ctx, m);
  } else {
    std::cout << (fresh ? "started a new cluster in " : "restarted the cluster in ") << p.dir << ": "
              << conf.mdts << (conf.mdts > 1 ? " MDTs, " : " MDT, ") << conf.osts << " OSTs on " << conf.host << "\n";
    for (const auto& s : running)
      std::cout << "  " << s.name() << "  " << s.endpoint << "  pid " << s.pid << "  log " << p.log(s) << "\n";
    std::cout << "export STOR_LUSTRE_KEY_FILE=" << p.key() << "\n" << uri << "\n";
  }
  return {};
}

int cmd_start(Context& ctx, const std::vector<std::string>& args) {
  StartOptions o;
  std::string dir;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--mdts" || a == "--osts") && i + 1 < args.size()) {
      auto n = parse_int(a, args[++i], 1, 256);
      if (!n.is_ok()) return usage_error(n.status());
      (a == "--mdts" ? o.mdts : o.osts) = static_cast<unsigned>(*n);
      (a == "--mdts" ? o.mdts_given : o.osts_given) = true;
    } else if (a == "--host" && i + 1 < args.size()) {
      o.host = args[++i];
      o.host_given = true;
      if (o.host.empty() || o.host.find_first_of("/: ") != std::string::npos)
        return usage_error(stor::Status::InvalidArgument("--host wants an address or name, got '" + o.host + "'"));
    } else if (a == "--no-root-squash") {
      o.root_squash = false;
      o.squash_given = true;
    } else if (a == "--timeout" && i + 1 < args.size()) {
      auto v = parse_seconds(a, args[++i]);
      if (!v.is_ok()) return usage_error(v.status());
      o.deadline = std::chrono::milliseconds(static_cast<int64_t>(*v * 1000));
    } else if (!a.empty() && a[0] == '-') {
      return usage_error(stor::Status::InvalidArgument("unknown option " + a));
    } else if (dir.empty()) {
      dir = a;
    } else {
      return 2;
    }
  }
  if (dir.empty()) return 2;
  auto p = paths_of(dir, true);
  if (!p.is_ok()) return fail(p.status());
  if (auto s = start_cluster(ctx, *p, o); !s.is_ok()) return fail(s);
  return 0;
}

// ---- stop -----------------------------------------------------------------------------------

// "DIR [OPTION SECONDS]" of stop and status. Returns 0, or the exit code of a usage error.
int parse_dir_and_seconds(const std::vector<std::string>& args, const std::string& option, std::string* dir,
                          double* seconds) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == option && i + 1 < args.size()) {
      auto v = parse_seconds(args[i], args[i + 1]);
      if (!v.is_ok()) return usage_error(v.status());
      *seconds = *v;
      ++i;
    } else if (!args[i].empty() && args[i][0] == '-') {
      return usage_error(stor::Status::InvalidArgument("unknown option " + args[i]));
    } else if (dir->empty()) {
      *dir = args[i];
    } else {
      return 2;
    }
  }
  return dir->empty() ? 2 : 0;
}

int cmd_stop(Context& ctx, const std::vector<std::string>& args) {
  std::string dir;
  double seconds = 10;
  if (int rc = parse_dir_and_seconds(args, "--timeout", &dir, &seconds); rc != 0) return rc;
  const std::chrono::milliseconds grace(static_cast<int64_t>(seconds * 1000));
  auto p = paths_of(dir, false);
  if (!p.is_ok()) return fail(p.status());
  auto lock = DirLock::take(*p);
  if (!lock.is_ok()) return fail(lock.status());
  auto listed = read_text(p->pids());
  if (!listed.is_ok()) {
    if (ctx.json) print_map(ctx, {{"dir", p->dir}, {"stopped", "0"}});
    else std::cout << "no cluster running in " << p->dir << "\n";
    return 0;
  }
  auto servers = parse_servers(p->pids(), *listed, true);
  if (!servers.is_ok()) return fail(servers.status());
  auto running = running_daemons(*p, *servers);
  if (!ctx.json && running.size() < servers->size())
    std::cout << servers->size() - running.size() << " daemon(s) listed in " << p->pids() << " had already exited\n";
  stop_all(*p, running, grace, ctx.json);
  if (ctx.json) print_map(ctx, {{"dir", p->dir}, {"stopped", std::to_string(running.size())}});
  return 0;
}

// ---- status ---------------------------------------------------------------------------------

struct ProcSample {
  bool ok = false;
  uint64_t cpu_ticks = 0, rss_bytes = 0;
};

ProcSample sample_proc(pid_t pid) {
  ProcSample out;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string st;
  if (pid <= 0 || !std::getline(stat, st)) return out;
  const size_t paren = st.rfind(')');
  if (paren == std::string::npos) return out;
  std::istringstream in(st.substr(paren + 2));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; in >> x;) f.push_back(x);
  if (f.size() < 22) return out;
  auto num = [&](size_t field) { return std::strtoull(f[field - 3].c_str(), nullptr, 10); };
  out.cpu_ticks = num(14) + num(15);
  out.rss_bytes = num(24) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  out.ok = true;
  return out;
}

int cmd_status(Context& ctx, const std::vector<std::string>& args) {
  std::string dir;
  double interval = 0.5;
  if (int rc = parse_dir_and_seconds(args, "--interval", &dir, &interval); rc != 0) return rc;
  auto p = paths_of(dir, false);
  if (!p.is_ok()) return fail(p.status());
  auto conf = read_conf(*p);
  if (!conf.is_ok()) {
    if (conf.status().code() == stor::Code::kNotFound)
      return fail(stor::Status::NotFound("no cluster in " + p->dir + " (no cluster.conf; stctl cluster start " + p->dir + ")"));
    return fail(conf.status());
  }
  std::map<std::string, pid_t> pids;
  if (auto listed = read_text(p->pids()); listed.is_ok()) {
    auto servers = parse_servers(p->pids(), *listed, true);
    if (!servers.is_ok()) return fail(servers.status());
    for (const auto& s : *servers)
      if (is_our_daemon(s.pid, s, *p)) pids[s.name()] = s.pid;
  }
  stor::ServerQueryOptions q;
  q.key_file = p->key();
  q.timeout = std::chrono::milliseconds(3000);
  struct Row {
    Server s;
    stor::Result<stor::ServerStats> first = stor::Status::Unavailable(""), second = stor::Status::Unavailable("");
    ProcSample p0, p1;
    double ping_ms = 0;
  };
  std::vector<Row> rows;
  for (auto s : conf->servers) {
    s.pid = pids.count(s.name()) ? pids[s.name()] : 0;
    Row r;
    r.s = s;
    r.p0 = sample_proc(s.pid);
    auto t0 = Clock::now();
    r.first = stor::query_server_stats(s.endpoint, q);
    r.ping_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    rows.push_back(std::move(r));
  }
  // Load: counters and CPU time over the interval.
  std::this_thread::sleep_for(std::chrono::duration<double>(interval));
  for (auto& r : rows) {
    if (r.first.is_ok()) r.second = stor::query_server_stats(r.s.endpoint, q);
    r.p1 = sample_proc(r.s.pid);
  }
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  bool healthy = true;
  std::vector<std::vector<std::string>> table;
  char buf[64];
  for (auto& r : rows) {
    std::string health;
    if (r.first.is_ok()) health = "ok";
    else if (answered(r.first.status())) health = "ok (no stats)";
    else if (r.first.status().code() == stor::Code::kPermissionDenied) health = "AUTH REFUSED";
    else health = "UNREACHABLE";
    const bool up = r.s.pid > 0;
    if (!up || health.rfind("ok", 0) != 0) healthy = false;
    std::vector<std::string> row{r.s.name(), r.s.endpoint, up ? std::to_string(r.s.pid) : "-", up ? "yes" : "NO", health};
    if (r.first.is_ok() && r.second.is_ok()) {
      auto rate = [&](const char* k) {
        const uint64_t a = r.first->get(k), b = r.second->get(k);
        return static_cast<double>(b > a ? b - a : 0) / interval;
      };
      std::snprintf(buf, sizeof buf, "%.2f", r.ping_ms);
      row.push_back(buf);
      std::snprintf(buf, sizeof buf, "%.0f", rate("requests"));
      row.push_back(buf);
      std::snprintf(buf, sizeof buf, "%.1f", rate("read_bytes") / (1 << 20));
      row.push_back(buf);
      std::snprintf(buf, sizeof buf, "%.1f", rate("write_bytes") / (1 << 20));
      row.push_back(buf);
      row.push_back(std::to_string(r.second->get("requests")));
      row.push_back(std::to_string(r.second->get("errors")));
    } else {
      row.insert(row.end(), {"-", "-", "-", "-", "-", "-"});
    }
    if (r.p0.ok && r.p1.ok) {
      std::snprintf(buf, sizeof buf, "%.0f", 100.0 * static_cast<double>(r.p1.cpu_ticks - r.p0.cpu_ticks) / ticks / interval);
      row.push_back(buf);
      std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(r.p1.rss_bytes) / (1 << 20));
      row.push_back(buf);
    } else {
      row.insert(row.end(), {"-", "-"});
    }
    table.push_back(std::move(row));
  }
  if (!ctx.json)
    std::cout << "cluster " << p->dir << "  uri " << uri_of(*conf) << "  key " << p->key() << "  ("
              << (healthy ? "healthy" : "DEGRADED") << ")\n";
  print_table(ctx, {"server", "endpoint", "pid", "running", "health", "ping_ms", "req_s", "read_mib_s", "write_mib_s",
                    "requests", "errors", "cpu_pct", "rss_mib"},
              table);
  return healthy ? 0 : 1;
}

// ---- fsck -----------------------------------------------------------------------------------

// The MDS holds the metadata while it serves, so fsck runs offline: stop the MDS (the targets
// keep running: fsck reads their objects), check DIR/fs as `stctl fsck` does, restart the MDS on
// its port. The MDS is restarted whatever fsck found.
int cmd_fsck_cluster(Context& ctx, const std::vector<std::string>& args) {
  std::string dir;
  bool repair = false;
  for (const auto& a : args) {
    if (a == "--repair") repair = true;
    else if (!a.empty() && a[0] == '-') return usage_error(stor::Status::InvalidArgument("unknown option " + a));
    else if (dir.empty()) dir = a;
    else return 2;
  }
  if (dir.empty()) return 2;
  auto p = paths_of(dir, false);
  if (!p.is_ok()) return fail(p.status());
  auto mds_bin = find_daemon("stor-mds");
  if (!mds_bin.is_ok()) return fail(mds_bin.status());
  auto lock = DirLock::take(*p);
  if (!lock.is_ok()) return fail(lock.status());
  auto conf = read_conf(*p);
  if (!conf.is_ok()) return fail(conf.status());
  auto listed = read_text(p->pids());
  if (!listed.is_ok()) return fail(stor::Status::Unavailable("no cluster running in " + p->dir + ": fsck needs the targets; start it first"));
  auto servers = parse_servers(p->pids(), *listed, true);
  if (!servers.is_ok()) return fail(servers.status());
  auto running = running_daemons(*p, *servers);
  size_t osts = 0;
  for (const auto& s : running) osts += s.role == "ost";
  if (osts != conf->osts)
    return fail(stor::Status::Unavailable("only " + std::to_string(osts) + " of " + std::to_string(conf->osts) +
                                          " targets are running; fsck needs all of them (stctl cluster status " + p->dir + ")"));
  std::vector<Server> kept;
  for (const auto& s : running) {
    if (s.role != "mdt") {
      kept.push_back(s);
      continue;
    }
    if (!ctx.json) std::cerr << "stopping " << s.name() << " (pid " << s.pid << ") for fsck\n";
    (void)terminate(s.pid, std::chrono::milliseconds(10000));
  }
  if (auto w = write_pids(*p, kept); !w.is_ok()) return fail(w);
  std::vector<std::string> fsck_args{p->root()};
  if (repair) fsck_args.push_back("--repair");
  const int rc = commands().at("fsck").run(ctx, fsck_args);
  // Back in service on the same endpoint.
  for (auto s : conf->servers) {
    if (s.role != "mdt") continue;
    auto ep = spawn(*p, s, *mds_bin, mds_args(*p, *conf, s), std::chrono::milliseconds(15000));
    if (!ep.is_ok()) return fail(ep.status().with_context("restarting the MDS after fsck"));
    kept.push_back(s);
    if (!ctx.json) std::cerr << "restarted " << s.name() << " on " << *ep << " (pid " << s.pid << ")\n";
  }
  if (auto w = write_pids(*p, kept); !w.is_ok()) return fail(w);
  return rc;
}

int cmd_cluster(Context& ctx, const std::vector<std::string>& args) {
  if (args.empty()) return 2;
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (args[0] == "start") return cmd_start(ctx, rest);
  if (args[0] == "fsck") return cmd_fsck_cluster(ctx, rest);
  if (args[0] == "stop") return cmd_stop(ctx, rest);
  if (args[0] == "status") return cmd_status(ctx, rest);
  return usage_error(stor::Status::InvalidArgument("cluster wants start, stop, status or fsck, got '" + args[0] + "'"));
}

const Registrar r_cluster{
    {"cluster", "cluster start DIR [--mdts N] [--osts N] [--host ADDR] [--no-root-squash] [--timeout SEC] | stop DIR [--timeout SEC] | status DIR [--interval SEC] | fsck DIR [--repair]",
     "A local Lustre-style cluster for development and tests (docs/lustre.md \"Clusters\").\n"
     "start: makes DIR, a key (DIR/cluster.key, 0600), starts N stor-target daemons (default 4) on\n"
     "DIR/ost*/ and --mdts stor-mds (default 1) on the file system DIR/fs (made on first start with\n"
     "those targets; several MDTs spread the directories over them, MDT 0 serves the URI),\n"
     "each detached with its log in DIR/logs, and prints the URI (lustre://HOST:PORT/) and the\n"
     "STOR_LUSTRE_KEY_FILE line clients need. A stopped cluster restarts on the same ports with its\n"
     "data. Refuses a directory whose cluster is running.\n"
     "The MDS squashes clients' uid 0 (as Lustre does); --no-root-squash (first start) lets root in.\n"
     "stop: SIGTERM to every daemon (the MDS first), SIGKILL after --timeout (10 s); nothing to do is\n"
     "not an error. status: every server's endpoint, pid, whether it answers an authenticated call,\n"
     "and its load over --interval (0.5 s): requests/s, MiB/s, CPU %, RSS; exit status 1 when any\n"
     "server is down or refuses the key. fsck: stops the MDS (it holds the metadata while serving),\n"
     "runs stctl fsck [--repair] on DIR/fs with the targets up, restarts the MDS on its port. The\n"
     "daemons are looked up in STOR_BIN_DIR, next to stctl, or in the build tree.",
     cmd_cluster}};

}  // namespace
}  // namespace stctl
