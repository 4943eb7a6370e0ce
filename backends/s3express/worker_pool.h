// A thread pool plus a deadlock-free parallel_for: the calling thread works through the
// items too, so nested use (a pool task that itself fans out) always makes progress.
#pragma once

#include <cstddef>
#include <functional>

#include "core/task_pool.h"
#include "stor/status.h"

namespace stor::s3 {

// The S3 client's threads are core's TaskPool: FIFO, finishes queued tasks, then joins.
using WorkerPool = internal::TaskPool;

// Runs fn(0..count-1) with at most `width` running at once (the caller is one of them). Once an
// item fails, items not yet started are skipped. Returns the first failure.
Status parallel_for(WorkerPool& pool, size_t count, unsigned width, const std::function<Status(size_t)>& fn);

}  // namespace stor::s3
