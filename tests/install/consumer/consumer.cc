// Built against the installed package: uses both the C++ and the C API.
#include <stor/stor.h>
#include <stor/store.h>

#include <cstdio>

int main() {
  auto store = stor::Store::create();
  if (!store.is_ok()) return 1;
  stor_store_t* s = nullptr;
  if (stor_store_open(nullptr, &s) != STOR_OK) return 2;
  stor_file_t* f = nullptr;
  if (stor_file_open(s, "nvme:///nonexistent/file", STOR_O_READ, 0, &f) != STOR_ENOTFOUND) return 3;
  stor_store_close(s);
  std::printf("consumer ok: stor %s\n", stor::version());
  return 0;
}
