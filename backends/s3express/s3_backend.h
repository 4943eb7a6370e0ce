// The s3express:// and s3:// backends: objects as files, "/"-delimited prefixes as directories.
//
// Reads are ranged GETs fanned out over the connection pool. Writes stream: parts are uploaded
// as they fill, with bounded memory, and sync()/close() complete the object (ObjectWriter in
// write_buffer.h, which also says what a writing handle can and cannot do).
#pragma once

#include <memory>
#include <string>

#include "backends/s3express/s3_client.h"
#include "stor/backend.h"

namespace stor::s3 {

// Builds a backend for `scheme` ("s3express" turns CreateSession on by default, "s3" does not)
// from the context's "s3.*" settings and the AWS_* environment.
Result<std::shared_ptr<Backend>> make_s3_backend(const std::string& scheme, const BackendContext& ctx);

// The client behind an s3express:// or s3:// backend, nullptr for any other backend (for tools
// such as `stctl mb`). Valid while the backend lives.
S3Client* s3_client_of(Backend& backend);

// Splits a URI into bucket and key ("" for the bucket root; a trailing '/' is dropped). A final
// "%2F" is a '/' that belongs to the key: "s3://b/dir/obj%2F" is the object "dir/obj/".
Status bucket_and_key(const Uri& uri, std::string* bucket, std::string* key);

}  // namespace stor::s3
