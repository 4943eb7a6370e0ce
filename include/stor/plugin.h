/* The stable C ABI for run-time backend plugins.
 *
 * A plugin is a shared object exporting
 *     int stor_plugin_init(uint32_t host_abi, const stor_plugin_ops **ops);
 * It returns 0 and fills *ops, or a non-zero stor_code_t (e.g. when host_abi is one it does not
 * speak). The host wraps the ops table into a stor::Backend for ops->scheme. Plugin calls are
 * synchronous; the host runs them on its own worker threads, so they must be thread safe:
 *  - backend calls (open, stat, list, remove, mkdir) may run concurrently on one backend;
 *  - pread, pwrite, sync, truncate and fstat may run concurrently on one file, from several
 *    threads (a vectored request arrives as one pread/pwrite per segment, all at once);
 *  - close is called once per file, after every other call on that file has returned;
 *  - destroy is called once, after every file of the backend is closed and no call is running.
 * Nothing here may throw: the ABI is plain C. Every call that can fail fills a stor_plugin_error.
 */
#ifndef STOR_PLUGIN_H
#define STOR_PLUGIN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define STOR_PLUGIN_ABI_VERSION 1u

typedef struct stor_plugin_error {
  int code;            /* stor_code_t value; 0 = OK */
  char message[256];
} stor_plugin_error;

typedef struct stor_plugin_stat {
  uint64_t size;
  uint32_t mode;
  int type;            /* 0 regular, 1 directory */
  int64_t mtime_ns;
} stor_plugin_stat;

typedef void (*stor_plugin_list_emit)(void *ctx, const char *name, int type, uint64_t size);

typedef struct stor_plugin_ops {
  uint32_t abi_version;   /* STOR_PLUGIN_ABI_VERSION the plugin was built against */
  uint32_t struct_size;   /* sizeof(stor_plugin_ops) as the plugin saw it */
  const char *scheme;     /* URI scheme served, e.g. "mem" */
  uint32_t capabilities;  /* stor::Capability bits */

  /* settings: NULL-terminated array of "key=value" strings. Returns a backend handle. */
  void *(*create)(const char *const *settings, stor_plugin_error *err);
  void (*destroy)(void *backend);

  void *(*open)(void *backend, const char *authority, const char *path, uint32_t flags,
                uint32_t mode, stor_plugin_error *err);
  /* Return bytes transferred, or -1 with err filled. */
  int64_t (*pread)(void *file, void *buf, uint64_t len, uint64_t offset, stor_plugin_error *err);
  int64_t (*pwrite)(void *file, const void *buf, uint64_t len, uint64_t offset,
                    stor_plugin_error *err);
  /* Return 0, or -1 with err filled. */
  int (*sync)(void *file, int data_only, stor_plugin_error *err);
  int (*truncate)(void *file, uint64_t size, stor_plugin_error *err);
  int (*fstat)(void *file, stor_plugin_stat *out, stor_plugin_error *err);
  int (*close)(void *file, stor_plugin_error *err); /* frees file whatever it returns */

  int (*stat)(void *backend, const char *authority, const char *path, stor_plugin_stat *out,
              stor_plugin_error *err);
  int (*list)(void *backend, const char *authority, const char *path, stor_plugin_list_emit emit,
              void *ctx, stor_plugin_error *err);
  int (*remove)(void *backend, const char *authority, const char *path, stor_plugin_error *err);
  int (*mkdir)(void *backend, const char *authority, const char *path, uint32_t mode,
               stor_plugin_error *err);
} stor_plugin_ops;

typedef int (*stor_plugin_init_fn)(uint32_t host_abi, const stor_plugin_ops **ops);

#ifdef __cplusplus
}
#endif

#endif /* STOR_PLUGIN_H */
