// Factories of the concrete transports, used by Transport::create.
#pragma once

#include <memory>

#include "net/transport.h"
#include "net/wire.h"

namespace stor::transport {

std::unique_ptr<Transport> make_tcp_transport(const TransportOptions& opts);
// Unavailable when no RDMA device exists (or the build has no rdma-core).
Result<std::unique_ptr<Transport>> make_verbs_transport(const TransportOptions& opts);

// Server side, shared by every transport's connection loop.
// A reply capacity the server cannot provide is refused, not shrunk: a smaller buffer than asked
// would come back as a short read, which the caller takes for end of data.
Status check_reply_capacity(uint64_t capacity, uint64_t limit);
// Turns a handler's result into what goes on the wire: an error travels as its message in the
// control bytes with no payload; a handler overrunning capacity or kMaxControlBytes is Internal.
// Fills reply's status, control_len and payload_len.
void finish_result(ServerResult& result, uint64_t capacity, FrameHeader& reply);

// A serving loop's connection: its ServerCall::connection id, and the end of the connection
// reported (TransportOptions::on_connection_closed) once a call reached the handler.
class ServedConnection {
 public:
  explicit ServedConnection(const TransportOptions& opts) : opts_(opts), id_(next_connection_id()) {}
  ~ServedConnection() {
    if (used_ && opts_.on_connection_closed) opts_.on_connection_closed(id_);
  }
  ServedConnection(const ServedConnection&) = delete;
  ServedConnection& operator=(const ServedConnection&) = delete;
  uint64_t use() {
    used_ = true;
    return id_;
  }

 private:
  const TransportOptions& opts_;
  const uint64_t id_;
  bool used_ = false;
};

}  // namespace stor::transport
