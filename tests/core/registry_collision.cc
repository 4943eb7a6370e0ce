// A program that links a second "nvme" backend: STOR_REGISTER_BACKEND must stop it before main()
// (registry_test runs it and checks the abort and the message).
#include <cstdio>

#include "stor/register_backend.h"

STOR_REGISTER_BACKEND("nvme", [](const stor::BackendContext&) -> stor::Result<std::shared_ptr<stor::Backend>> {
  return stor::Status::Unsupported("never used");
});

int main() {
  std::puts("main() ran: the duplicate registration was not caught");
  return 0;
}
