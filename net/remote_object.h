// Client of one stor-target: object I/O over a pool of transport channels.
//
// The async calls queue onto the target's own worker threads, one per connection, so a striped
// client issues its pieces to several targets (and several pieces to one target) in parallel and
// joins the callbacks, as it does with IoEngine requests. Transfers larger than a channel's
// max_payload are split into calls of that size.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/task_pool.h"
#include "net/object_protocol.h"
#include "net/transport.h"
#include "stor/engine.h"

namespace stor::transport {

struct RemoteTargetOptions {
  TransportOptions transport;
  unsigned connections = 4;  // parallel calls to this target
  // > 0: a call whose connection is lost (or cannot be made: the target restarts) reconnects and
  // resends until this much time has passed, then fails with Unavailable. 0: fail at once.
  std::chrono::milliseconds reconnect_timeout{0};
  // A read larger than one frame (transport.max_payload) is asked for this many frames ahead on
  // its connection (Channel::start_call); 1: one frame at a time.
  unsigned pipeline = 4;
};

class RemoteObjectTarget {
 public:
  // Connects once to check the target is reachable (Unavailable/Timeout otherwise); further
  // connections open on demand. A connection that failed is dropped and replaced on next use.
  static Result<std::shared_ptr<RemoteObjectTarget>> connect(std::string_view endpoint,
                                                             const RemoteTargetOptions& opts = {});
  ~RemoteObjectTarget();

  const std::string& endpoint() const { return endpoint_; }

  // Callbacks run on one of this target's worker threads. Reads are short at the end of the
  // object; reading a missing object fails with NotFound. Buffers stay valid until the callback.
  void read_async(std::string object, void* buf, size_t len, uint64_t offset, IoCallback done);
  void write_async(std::string object, const void* buf, size_t len, uint64_t offset, IoCallback done);

  Result<size_t> read(const std::string& object, void* buf, size_t len, uint64_t offset);
  Result<size_t> write(const std::string& object, const void* buf, size_t len, uint64_t offset);
  Status sync(const std::string& object, bool data_only);
  Status truncate(const std::string& object, uint64_t size);
  Result<ObjectInfo> stat(const std::string& object);
  Status remove(const std::string& object);
  // Every object on the target with its size, in name order.
  Result<std::vector<ObjectEntry>> list();

 private:
  RemoteObjectTarget(std::string endpoint, std::unique_ptr<Transport> transport, const RemoteTargetOptions& opts);
  // A pooled channel (a new one if none idle, or when !pooled); give it back with release().
  // Pooled channels the server has closed meanwhile (idle timeout, eviction) are dropped;
  // *reused says whether the channel came from the pool.
  Result<std::unique_ptr<Channel>> acquire(bool pooled = true, bool* reused = nullptr);
  // Whether a call that failed with `s` on a channel should run again on a fresh connection: a
  // pooled channel the server closed just as it was reused fails with Unavailable before the
  // server did anything (the server drops only idle connections, never one inside a request).
  static bool retry_fresh(bool reused, const Status& s) { return reused && s.code() == Code::kUnavailable; }
  // Runs fn(channel) on a pooled channel, and once more on a fresh one when retry_fresh says so.
  template <typename Fn>
  auto on_channel(Fn&& fn) -> decltype(fn(std::declval<Channel&>()));
  // The operations on one channel.
  // The frame size a read of len bytes is split into on a channel taking max_payload per call.
  static size_t frame_size(size_t len, uint64_t max_payload) {
    return static_cast<size_t>(std::min<uint64_t>(len, max_payload));
  }
  Result<size_t> read_on(Channel& ch, const std::string& object, void* buf, size_t len, uint64_t offset);
  Result<size_t> write_on(Channel& ch, const std::string& object, const void* buf, size_t len, uint64_t offset);
  Result<std::vector<ObjectEntry>> list_on(Channel& ch);
  void release(std::unique_ptr<Channel> ch);
  // One call on a pooled channel.
  Result<Reply> call(ObjectOp op, const ObjectCall& c, std::span<const std::byte> payload, std::span<std::byte> reply);

  const std::string endpoint_;
  std::unique_ptr<Transport> transport_;
  RemoteTargetOptions opts_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Channel>> idle_;
  std::unique_ptr<internal::TaskPool> pool_;  // destroyed first: its tasks use the members above
};

}  // namespace stor::transport
