/* STOR_API marks what libstor.so exports. The library is built with -fvisibility=hidden and
 * -fvisibility-inlines-hidden, so anything declared in include/stor without STOR_API is not part
 * of the ABI: consumers and plugins that reach it fail to link instead of depending on internals.
 * Plain C header: included by stor.h as well as by the C++ headers. */
#ifndef STOR_EXPORT_H
#define STOR_EXPORT_H

/* The C++11 attribute form in C++, so it can follow other [[...]] attributes (class [[nodiscard]]
 * STOR_API Status). */
#if defined(__cplusplus) && (defined(__GNUC__) || defined(__clang__))
#define STOR_API [[gnu::visibility("default")]]
#elif defined(__GNUC__) || defined(__clang__)
#define STOR_API __attribute__((visibility("default")))
#else
#define STOR_API
#endif

#endif /* STOR_EXPORT_H */
