// Compile-time registration of a backend that is linked into the program (stor's own nvme,
// lustre, s3/s3express and tier; an application's own C++ backend). Run-time plugins use the C ABI
// of stor/plugin.h instead; the loader registers them and reports a collision as AlreadyExists.
//
//   STOR_REGISTER_BACKEND("nvme", [](const stor::BackendContext& ctx) -> stor::Result<std::shared_ptr<stor::Backend>> {
//     return make_backend(ctx.engine);
//   });
//
// at namespace scope registers the factory while the library (or program) is loaded, before
// main(). Two linked-in backends claiming one scheme is a build bug that no caller could handle,
// so it fails loudly: the message (scheme and source file) goes to stderr and the process aborts,
// instead of the second factory being silently dropped.
//
// Thread safety: registration runs during static initialisation; the registry itself is locked.
#pragma once

#include "stor/export.h"
#include "stor/backend.h"

namespace stor::internal {

// What STOR_REGISTER_BACKEND does, minus the abort: BackendRegistry::global().add(scheme,
// factory), an error naming the scheme and `where` (the registering source file). AlreadyExists
// when the scheme is taken.
STOR_API Status register_builtin_backend(const char* scheme, BackendFactory factory, const char* where);
// True for OK; otherwise prints "stor: <message>" to stderr and aborts.
STOR_API bool registered_or_abort(const Status& s) noexcept;

}  // namespace stor::internal

#define STOR_REGISTER_BACKEND_CONCAT2_(a, b) a##b
#define STOR_REGISTER_BACKEND_CONCAT_(a, b) STOR_REGISTER_BACKEND_CONCAT2_(a, b)
// Variadic so a factory lambda containing top-level commas needs no extra parentheses.
#define STOR_REGISTER_BACKEND(scheme, ...)                                                          \
  [[maybe_unused]] static const bool STOR_REGISTER_BACKEND_CONCAT_(stor_backend_registered_, __COUNTER__) = \
      ::stor::internal::registered_or_abort(                                                        \
          ::stor::internal::register_builtin_backend((scheme), (__VA_ARGS__), __FILE__))
