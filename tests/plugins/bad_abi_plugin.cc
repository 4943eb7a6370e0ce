#include <stor/plugin.h>

namespace {
stor_plugin_ops make_ops() {
  stor_plugin_ops o{};
  o.abi_version = STOR_PLUGIN_ABI_VERSION + 1;
  o.struct_size = sizeof(stor_plugin_ops);
  o.scheme = "bad";
  return o;
}
const stor_plugin_ops ops = make_ops();
}

extern "C" __attribute__((visibility("default"))) int stor_plugin_init(uint32_t, const stor_plugin_ops** out) {
  *out = &ops;
  return 0;
}
