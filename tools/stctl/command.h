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

// Option values. Every numeric option of every command goes through these, so signs, junk,
// fractions and overflow are rejected the same way; the message names the option. Callers turn
// the error into a usage error with usage_error().
// A non-negative integer in `base` (10, or 8 for modes): digits only, no sign, must fit in 64 bits.
stor::Result<uint64_t> parse_uint(const std::string& option, const std::string& text, int base = 10);
// A byte count: digits, then an optional unit k/m/g/t (powers of 1024, also "KB", "KiB", "Ki"),
// any case; the product must fit in 64 bits. "4k", "1M", "2GiB", "512".
stor::Result<uint64_t> parse_size(const std::string& option, const std::string& text);
// A signed decimal integer within [min, max] (e.g. a stripe count where -1 means "all").
stor::Result<int64_t> parse_int(const std::string& option, const std::string& text, int64_t min, int64_t max);
// Seconds as a decimal ("0.3", "5"), > 0 and at most a year, so deadlines cannot overflow.
stor::Result<double> parse_seconds(const std::string& option, const std::string& text);
// Gives the empty lustre file `path` the layout of the lustre file `like` (what setstripe gave
// it), so a copy renamed over `like` keeps its layout (cmd_lustre.cc).
stor::Status copy_layout(const std::string& like, const std::string& path);

// Prints "stctl: <message>" to stderr and returns 2 (usage error).
int usage_error(const stor::Status& s);

}  // namespace stctl
