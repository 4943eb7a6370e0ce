// Factories of the concrete transports, used by Transport::create.
#pragma once

#include <memory>

#include "core/transport/transport.h"

namespace stor::transport {

std::unique_ptr<Transport> make_tcp_transport(const TransportOptions& opts);
// Unavailable when no RDMA device exists (or the build has no rdma-core).
Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportOptions& opts);

}  // namespace stor::transport
