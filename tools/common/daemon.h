// What the stor daemons (stor-mds, stor-target) share: strict number arguments, the key-file /
// --insecure-no-auth rule, and waiting for SIGTERM/SIGINT. Public headers only (tools/ layer).
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstdint>
#include <cstdio>

#include "stor/settings.h"

namespace stor::daemon {

// Strict digits up to max: strtoull took "-1" as 2^64-1 (an unlimited payload) and leading blanks.
inline bool parse_number(const char* s, uint64_t& out, uint64_t max = UINT64_MAX) {
  auto v = stor::parse_uint(s);
  if (!v.is_ok() || *v > max) return false;
  out = *v;
  return true;
}

// Exactly one of --key-file and --insecure-no-auth: a daemon never serves unauthenticated
// clients by omission. Prints "NAME: why" and returns false otherwise; no_key_hint ends the
// message when neither was given (where the key comes from).
inline bool check_auth_choice(const char* name, bool have_key_file, bool insecure, const char* what_served,
                              const char* no_key_hint) {
  if (have_key_file != insecure) return true;
  if (insecure)
    std::fprintf(stderr, "%s: --key-file and --insecure-no-auth contradict each other\n", name);
  else
    std::fprintf(stderr,
                 "%s: no --key-file: refusing to serve %s to unauthenticated clients (%s, or pass --insecure-no-auth on "
                 "a trusted network)\n",
                 name, what_served, no_key_hint);
  return false;
}

// SIGTERM and SIGINT, blocked from construction so that only wait() sees them: construct it
// before any thread starts (threads inherit the mask). Also ignores SIGPIPE (a client hanging
// up mid-reply is the connection's error, not the process's end).
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    signal(SIGPIPE, SIG_IGN);
  }
  // Returns when one of them arrives.
  void wait() const {
    int sig = 0;
    while (sigwait(&set_, &sig) != 0) {
    }
  }

 private:
  sigset_t set_;
};

}  // namespace stor::daemon
