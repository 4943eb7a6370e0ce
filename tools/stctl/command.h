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

// Output helpers shared by all commands, so --json looks the same everywhere.
std::string json_escape(const std::string& s);
// A flat object: {"k":"v",...} with --json, else aligned "key  value" lines.
void print_map(const Context& ctx, const std::map<std::string, std::string>& m);
// Rows of a table: a JSON array of objects with --json, else aligned columns with a header.
void print_table(const Context& ctx, const std::vector<std::string>& columns,
                 const std::vector<std::vector<std::string>>& rows);
std::string human_size(double bytes);  // "1.5 MiB"
stor::Result<uint64_t> parse_size(const std::string& text);  // "4k", "1M", "2GiB", "512"

}  // namespace stctl
