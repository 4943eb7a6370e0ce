// stctl sub-commands register themselves here, so each backend keeps its commands in its own file
// (tools/stctl/cmd_<area>.cc) without touching main.cc.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "stor/store.h"

namespace stctl {

struct Context {
  stor::Store& store;
  bool json = false;  // --json: machine-readable output
};

struct Command {
  std::string name;
  std::string synopsis;  // "setstripe -c N -S SIZE PATH"
  std::string help;      // one paragraph for `stctl help NAME`
  // args excludes the command name. Returns the process exit code (0 ok, 1 error, 2 usage).
  std::function<int(Context&, const std::vector<std::string>& args)> run;
};

std::map<std::string, Command>& commands();

struct Registrar {
  explicit Registrar(Command c) { commands().emplace(c.name, std::move(c)); }
};

// Prints "stctl: <status>" to stderr and returns 1.
int fail(const stor::Status& s);

}  // namespace stctl
