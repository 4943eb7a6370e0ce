// Files of a Lustre-style file system whose object targets are stor-target servers (superblock
// target_endpoints): the same striping as LustreFile, with each per-object piece sent through
// RemoteObjectTarget instead of the local IoEngine.
#pragma once

#include <memory>
#include <string>

#include "backends/lustre/fs.h"
#include "stor/backend.h"

namespace stor::lustre {

std::unique_ptr<BackendFile> make_remote_file(std::shared_ptr<FileSystem> fs, std::unique_ptr<MetaFile> meta,
                                              uint32_t flags, std::string path);

}  // namespace stor::lustre
