// stor-target: an object target daemon. Serves the objects of one directory to
// RemoteObjectTarget clients (e.g. the Lustre backend's remote targets).
//
//   stor-target --make-key /srv/fs.key            # once per file system: 32 random bytes, mode 0600
//   stor-target --listen tcp://127.0.0.1:0 --dir /srv/ost0 --key-file /srv/fs.key
//
// Every connection must pass the key handshake (net/auth.h) before a request is read. Without
// --key-file the daemon refuses to start, unless --insecure-no-auth says to serve anyone.
//
// Prints the bound endpoint (with the real port) as the first line of stdout, then serves until
// SIGTERM or SIGINT, when it closes every connection and exits 0.
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <string>

#include "../common/daemon.h"
#include "stor/engine.h"
#include "stor/target.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: stor-target --listen ENDPOINT --dir DIR (--key-file FILE | --insecure-no-auth)\n"
               "                   [--timeout-ms N] [--max-payload BYTES] [--max-connections N]\n"
               "                   [--idle-timeout-ms N] [--plain-sockets]\n"
               "       stor-target --make-key FILE\n"
               "  --listen ENDPOINT   tcp://HOST:PORT or verbs://HOST:PORT (port 0: any free port)\n"
               "  --dir DIR           directory holding the objects (must exist)\n"
               "  --key-file FILE     shared key of the file system (mode 0600); every client must prove it holds it\n"
               "  --insecure-no-auth  serve clients without any authentication (trusted, isolated networks only)\n"
               "  --make-key FILE     write a new random key to FILE (created with mode 0600) and exit\n"
               "  --timeout-ms N      deadline for the rest of a request once its header arrived (30000)\n"
               "  --max-payload BYTES largest bulk transfer per call (4194304; verbs buffer size)\n"
               "  --max-connections N connections served at once (256); at the limit the longest-idle one is\n"
               "                      closed for a newcomer, or the newcomer is refused when none is idle; 0: no limit\n"
               "  --idle-timeout-ms N close a connection that sends no complete request header for N ms (60000; 0: never)\n"
               "  --plain-sockets     send/recv system calls instead of io_uring for socket I/O\n"
               "Prints the bound endpoint on the first line of stdout; exits on SIGTERM/SIGINT.\n");
}

}  // namespace

using stor::daemon::parse_number;

int main(int argc, char** argv) {
  std::string make_key;
  bool insecure = false;
  stor::TargetOptions topts;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "stor-target: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    uint64_t n = 0;
    if (a == "--listen") topts.listen = value();
    else if (a == "--dir") topts.dir = value();
    else if (a == "--timeout-ms" && parse_number(value(), n)) topts.timeout = std::chrono::milliseconds(n);
    else if (a == "--max-payload" && parse_number(value(), n)) topts.max_payload = n;
    else if (a == "--max-connections" && parse_number(value(), n, UINT32_MAX))
      topts.max_connections = static_cast<unsigned>(n);
    else if (a == "--idle-timeout-ms" && parse_number(value(), n)) topts.idle_timeout = std::chrono::milliseconds(n);
    else if (a == "--plain-sockets") topts.io_uring = false;
    else if (a == "--key-file") topts.key_file = value();
    else if (a == "--insecure-no-auth") insecure = true;
    else if (a == "--make-key") make_key = value();
    else if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "stor-target: bad argument '%s'\n", a.c_str());
      usage(stderr);
      return 2;
    }
  }
  if (!make_key.empty()) {
    if (stor::Status s = stor::make_target_key(make_key); !s.is_ok()) {
      std::fprintf(stderr, "stor-target: %s\n", s.to_string().c_str());
      return 1;
    }
    std::printf("%s\n", make_key.c_str());
    return 0;
  }
  if (topts.listen.empty() || topts.dir.empty()) {
    usage(stderr);
    return 2;
  }
  if (!stor::daemon::check_auth_choice("stor-target", !topts.key_file.empty(), insecure, "objects",
                                       "make a key with --make-key FILE"))
    return 2;
  // The key file itself is read (and refused when unsafe) by TargetServer::start below.

  const stor::daemon::StopSignals stop_signals;  // before any thread starts

  auto engine = stor::IoEngine::create();
  if (!engine) {
    std::fprintf(stderr, "stor-target: %s\n", engine.status().to_string().c_str());
    return 1;
  }
  // Refused and evicted connections, accept failures: at most one line a second.
  topts.log = [](const std::string& msg) { std::fprintf(stderr, "stor-target: %s\n", msg.c_str()); };
  auto server = stor::TargetServer::start(topts, engine->get());
  if (!server) {
    std::fprintf(stderr, "stor-target: %s\n", server.status().to_string().c_str());
    return 1;
  }
  std::printf("%s\n", (*server)->endpoint().c_str());
  std::fflush(stdout);
  std::fprintf(stderr, "stor-target: serving %s on %s (%s engine, %s)\n", topts.dir.c_str(),
               (*server)->endpoint().c_str(), (*engine)->name(),
               insecure ? "NO authentication" : ("clients authenticated by key " + topts.key_file).c_str());

  stop_signals.wait();
  (*server)->stop();
  (*engine)->drain();
  return 0;
}
