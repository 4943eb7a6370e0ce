/* The stor C API. Every call returns a stor_code_t (0 = STOR_OK); on failure the calling
 * thread's last error message is available from stor_last_error(). No C++ exception ever
 * crosses this boundary.
 *
 * Thread safety: as the C++ API. A stor_store_t may be used from many threads at once. On one
 * stor_file_t the I/O calls (read, write, their async and vectored forms, sync, truncate, size)
 * may run concurrently; stor_file_close / stor_file_abort need exclusive access and must come
 * after every callback of the file's async calls has run. Close every file before its store.
 * Async callbacks run once, on an engine or backend thread, or on the calling thread before the
 * call returns (errors found up front, the in-memory cache); they must not wait for other I/O of
 * the same store. stor_last_error() is per thread.
 *
 *   stor_store_t *s; stor_file_t *f;
 *   stor_store_open(NULL, &s);
 *   stor_file_open(s, "nvme:///tmp/a", STOR_O_WRITE | STOR_O_CREATE, 0644, &f);
 *   stor_file_write(f, buf, n, 0, &written);
 *   stor_file_close(f); stor_store_close(s);
 */
#ifndef STOR_STOR_H
#define STOR_STOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h> /* struct iovec, for stor_file_readv / stor_file_writev */

#include "stor/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum stor_code_t {
  STOR_OK = 0,
  STOR_EINVAL = 1,
  STOR_ENOTFOUND = 2,
  STOR_EPERM = 3,
  STOR_EEXIST = 4,
  STOR_ERANGE = 5,
  STOR_EIO = 6,
  STOR_EUNSUPPORTED = 7,
  STOR_ENOTDIR = 8,
  STOR_EISDIR = 9,
  STOR_ENOTEMPTY = 10,
  STOR_ENOSPC = 11,
  STOR_EBUSY = 12,
  STOR_ECORRUPT = 13,
  STOR_ETIMEDOUT = 14,
  STOR_EUNAVAILABLE = 15,
  STOR_EABORTED = 16,
  STOR_EINTERNAL = 17
} stor_code_t;

enum {
  STOR_O_READ = 1u << 0,
  STOR_O_WRITE = 1u << 1,
  STOR_O_CREATE = 1u << 2,
  STOR_O_TRUNC = 1u << 3,
  STOR_O_EXCL = 1u << 4,
  STOR_O_DIRECT = 1u << 5,
  STOR_O_APPEND = 1u << 6 /* writes go to the end of the file (stor::kOpenAppend) */
};

typedef struct stor_store stor_store_t;
typedef struct stor_file stor_file_t;

typedef struct stor_options {
  const char *engine;     /* "auto" (NULL), "io_uring" or "threadpool" */
  unsigned queue_depth;   /* 0: default */
  const char *plugin_dir; /* NULL: none (or STOR_PLUGIN_DIR) */
} stor_options_t;

typedef void (*stor_io_cb)(void *ctx, stor_code_t code, size_t bytes);

STOR_API const char *stor_version(void);
/* Message of this thread's last failed call; "" when none. Valid until the next call. */
STOR_API const char *stor_last_error(void);
STOR_API const char *stor_code_name(stor_code_t code);

STOR_API stor_code_t stor_store_open(const stor_options_t *opts, stor_store_t **out);
STOR_API void stor_store_close(stor_store_t *store);
/* "io_uring" or "threadpool". */
STOR_API const char *stor_store_engine(const stor_store_t *store);

STOR_API stor_code_t stor_file_open(stor_store_t *store, const char *uri, uint32_t flags, uint32_t mode,
                           stor_file_t **out);
STOR_API stor_code_t stor_file_read(stor_file_t *f, void *buf, size_t len, uint64_t off, size_t *nread);
STOR_API stor_code_t stor_file_write(stor_file_t *f, const void *buf, size_t len, uint64_t off,
                            size_t *nwritten);
/* cb runs on an engine thread once the I/O finishes. Returns an error only for bad arguments. */
STOR_API stor_code_t stor_file_read_async(stor_file_t *f, void *buf, size_t len, uint64_t off, stor_io_cb cb,
                                 void *ctx);
STOR_API stor_code_t stor_file_write_async(stor_file_t *f, const void *buf, size_t len, uint64_t off,
                                  stor_io_cb cb, void *ctx);
/* Scatter-gather, as preadv/pwritev: the file range at off to or from iov[0..iovcnt) in order,
 * one request where the backend has a vectored path. Zero-length segments are skipped; a read is
 * short only at end of file (the leading segments are filled). iov is copied before the call
 * returns; for the async forms the memory it points to must stay valid until cb runs. */
STOR_API stor_code_t stor_file_readv(stor_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off, size_t *nread);
STOR_API stor_code_t stor_file_writev(stor_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off,
                             size_t *nwritten);
STOR_API stor_code_t stor_file_readv_async(stor_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off,
                                  stor_io_cb cb, void *ctx);
STOR_API stor_code_t stor_file_writev_async(stor_file_t *f, const struct iovec *iov, int iovcnt, uint64_t off,
                                   stor_io_cb cb, void *ctx);
STOR_API stor_code_t stor_file_sync(stor_file_t *f, int data_only);
STOR_API stor_code_t stor_file_truncate(stor_file_t *f, uint64_t size);
STOR_API stor_code_t stor_file_size(stor_file_t *f, uint64_t *size);
/* Closes and frees f, even when the close itself reports an error. */
STOR_API stor_code_t stor_file_close(stor_file_t *f);
/* Like stor_file_close, without publishing buffered writes: an object store aborts the upload,
 * so the object keeps its previous bytes. For a writer that failed half-way. */
STOR_API stor_code_t stor_file_abort(stor_file_t *f);

STOR_API stor_code_t stor_stat_size(stor_store_t *store, const char *uri, uint64_t *size);
STOR_API stor_code_t stor_remove(stor_store_t *store, const char *uri);
STOR_API stor_code_t stor_mkdir(stor_store_t *store, const char *uri, uint32_t mode);

#ifdef __cplusplus
}
#endif

#endif /* STOR_STOR_H */
