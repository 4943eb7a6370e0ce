#pragma once

#include <string>

#include "stor/plugin.h"
#include "stor/status.h"

namespace stor::internal {

// dlopens a plugin, checks its ABI version and ops table, and registers its scheme. Loading the
// same file again is a no-op; another file claiming a taken scheme is AlreadyExists.
Status load_plugin(const std::string& path);
// Loads every lib*.so in dir (sorted by name); stops at the first failure.
Status load_plugin_dir(const std::string& dir);
// Registers an ops table directly (used for plugins linked into the program).
Status register_plugin_ops(const stor_plugin_ops* ops, const std::string& origin);

}  // namespace stor::internal
