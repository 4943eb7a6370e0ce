// stor-mds: the metadata server of a lustre:// cluster. Serves the namespace of a file system
// made with remote targets to any number of client processes (lustre://HOST:PORT/path); file
// data goes from the clients straight to the stor-target servers, never through here.
//
//   stctl mkfs /srv/fs --remote tcp://10.0.0.2:7000 --remote tcp://10.0.0.3:7000 --key-file /srv/fs.key
//   stor-mds --root /srv/fs --listen tcp://0.0.0.0:7100 --key-file /srv/fs.key
//
// Every connection must pass the key handshake (net/auth.h) before a request is read. Without
// --key-file the daemon refuses to start, unless --insecure-no-auth says to serve anyone.
// Clients claiming uid 0 act as --squash-uid/--squash-gid (65534) unless --no-root-squash.
//
// Prints the bound endpoint (with the real port) as the first line of stdout, then serves until
// SIGTERM or SIGINT, when it closes every connection, checkpoints the metadata and exits 0.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "../common/daemon.h"
#include "stor/mds.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: stor-mds --root ROOT --listen tcp://HOST:PORT (--key-file FILE | --insecure-no-auth)\n"
               "                [--no-root-squash] [--squash-uid N] [--squash-gid N]\n"
               "                [--timeout-ms N] [--max-connections N] [--plain-sockets] [--mdt-index K]\n"
               "                [--recovery-window-ms N]\n"
               "  --root ROOT         file system made by `stctl mkfs ROOT --remote tcp://... --remote ...` (remote targets)\n"
               "  --listen ENDPOINT   tcp://HOST:PORT (port 0: any free port)\n"
               "  --key-file FILE     shared key (mode 0600; mkfs writes ROOT/mdt/target.key); clients must prove\n"
               "                      they hold it, and the MDS uses it with the targets\n"
               "  --insecure-no-auth  serve clients without any authentication (trusted, isolated networks only)\n"
               "  --no-root-squash    let clients act as uid 0 (default: uid 0 becomes the squash uid/gid)\n"
               "  --squash-uid N      uid root is mapped to (65534)\n"
               "  --squash-gid N      gid root is mapped to (65534)\n"
               "  --timeout-ms N      deadline for the rest of a request once its header arrived (30000)\n"
               "  --max-connections N connections served at once (1024; 0: no limit)\n"
               "  --plain-sockets     send/recv system calls instead of io_uring for socket I/O\n"
               "  --mdt-index K       serve MDT K of a file system made with several MDTs (ROOT/mdtK; default 0)\n"
               "  --recovery-window-ms N  after a crash (or a stop with files open), how long new extent locks\n"
               "                      wait for clients to replay the handles and locks they held (5000)\n"
               "  --crash-point STEP  fault injection: die (SIGKILL) at STEP (intent, peer, commit) of a cross-MDT\n"
               "                      mkdir/rmdir this MDT coordinates\n"
               "  --crash-after-mutations N  fault injection for recovery tests: die (SIGKILL) right after\n"
               "                      applying the Nth client mutation, before replying\n"
               "Prints the bound endpoint on the first line of stdout; exits 0 on SIGTERM/SIGINT after a checkpoint.\n");
}

}  // namespace

using stor::daemon::parse_number;

int main(int argc, char** argv) {
  bool insecure = false;
  stor::MdsServerOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "stor-mds: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    uint64_t n = 0;
    if (a == "--root") o.root = value();
    else if (a == "--listen") o.listen = value();
    else if (a == "--key-file") o.key_file = value();
    else if (a == "--insecure-no-auth") insecure = true;
    else if (a == "--no-root-squash") o.root_squash = false;
    else if (a == "--squash-uid" && parse_number(value(), n, UINT32_MAX)) o.squash_uid = static_cast<uint32_t>(n);
    else if (a == "--squash-gid" && parse_number(value(), n, UINT32_MAX)) o.squash_gid = static_cast<uint32_t>(n);
    else if (a == "--timeout-ms" && parse_number(value(), n)) o.timeout = std::chrono::milliseconds(n);
    else if (a == "--max-connections" && parse_number(value(), n, UINT32_MAX)) o.max_connections = static_cast<unsigned>(n);
    else if (a == "--plain-sockets") o.io_uring = false;
    else if (a == "--mdt-index" && parse_number(value(), n, 255)) o.mdt_index = static_cast<uint32_t>(n);
    else if (a == "--crash-point") o.crash_point = value();
    else if (a == "--recovery-window-ms" && parse_number(value(), n, 3600 * 1000)) o.recovery_window = std::chrono::milliseconds(n);
    else if (a == "--crash-after-mutations" && parse_number(value(), n)) o.crash_after_mutations = n;
    else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "stor-mds: bad argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (o.root.empty() || o.listen.empty()) {
    usage(stderr);
    return 2;
  }
  if (!stor::daemon::check_auth_choice("stor-mds", !o.key_file.empty(), insecure, "metadata", "use ROOT/mdt/target.key"))
    return 2;

  const stor::daemon::StopSignals stop_signals;  // before any thread starts

  o.log = [](const std::string& msg) { std::fprintf(stderr, "stor-mds: %s\n", msg.c_str()); };
  auto server = stor::MdsServer::start(o);
  if (!server) {
    std::fprintf(stderr, "stor-mds: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::printf("%s\n", (*server)->endpoint().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "stor-mds: serving %s on %s (%s, %s)\n", o.root.c_str(), (*server)->endpoint().c_str(),
               insecure ? "NO authentication" : ("clients authenticated by key " + o.key_file).c_str(),
               o.root_squash ? "root squashed" : "no root squash");

  stop_signals.wait();
  (*server)->stop();
  server->reset();  // checkpoints and releases ROOT/mdt/lock
  return 0;
}
