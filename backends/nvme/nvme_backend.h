// nvme: local files and block devices through the IoEngine.
//
// Direct I/O: open with kOpenDirect asks for O_DIRECT; when the file system refuses it (EINVAL)
// the file is opened buffered instead and File::direct() reports false. On a direct file every
// request's buffer address, length and offset must be multiples of the device's direct-I/O
// alignment (statx STATX_DIOALIGN, else 4096), or the request fails with InvalidArgument before
// it reaches the kernel. A read may still end short at end of file.
//
// Durability: sync(false) is fsync(2): data and all metadata. sync(true) is fdatasync(2): data
// plus the metadata needed to read it (size), not e.g. mtime. Both go through the engine, so on
// io_uring they are IORING_OP_FSYNC. Nothing is durable before a sync returns OK, also with
// O_DIRECT (the device may have a volatile write cache).
#pragma once

#include <memory>

#include "stor/backend.h"

namespace stor::nvme {

struct NvmeOptions {
  // Test seam: behave as if every file system refused O_DIRECT, to exercise the fallback.
  bool refuse_direct = false;
};

std::shared_ptr<Backend> make_backend(IoEngine* engine, NvmeOptions opts = {});

}  // namespace stor::nvme
