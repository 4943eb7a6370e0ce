// Internal entry points of the parquet read path (core/parquet_reader.cc) for Store::open.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "stor/backend.h"
#include "stor/parquet.h"

namespace stor::parquet::internal {

Result<std::shared_ptr<Reader::Impl>> open_impl(Store& store, const Uri& uri, const ReaderOptions& options);

// A File body served by a Reader when `uri` is opened read-only on an object store and
// parquet.read_path selects it ("auto": names ending in ".parquet"); a null pointer when not.
Result<std::unique_ptr<BackendFile>> maybe_open_parquet(Store& store, Backend& backend, const Uri& uri, uint32_t flags,
                                                        const std::map<std::string, std::string>& settings);

}  // namespace stor::parquet::internal
