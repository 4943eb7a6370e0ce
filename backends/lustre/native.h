// Native mode of the lustre:// backend: a path on a real Lustre client mount (no .stor-lustre
// marker above it, llapi driver available). Namespace calls are plain POSIX, so the kernel checks
// permissions as the process's own identity (lustre.uid / lustre.gids do not apply); data goes
// through the IoEngine on the file's descriptor, and Lustre itself stripes it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "stor/backend.h"
#include "stor/engine.h"

namespace stor::lustre::native {

Result<std::unique_ptr<BackendFile>> open(IoEngine* engine, const std::string& host_path, const OpenOptions& opts,
                                          const std::string& uri);
Result<FileInfo> stat(const std::string& host_path);
Result<std::vector<DirEntry>> list(const std::string& host_path);
Status remove(const std::string& host_path);
Status mkdir(const std::string& host_path, uint32_t mode);
Status rename(const std::string& from, const std::string& to);

}  // namespace stor::lustre::native
