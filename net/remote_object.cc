#include "net/remote_object.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <thread>

namespace stor::transport {

Result<std::shared_ptr<RemoteObjectTarget>> RemoteObjectTarget::connect(std::string_view endpoint,
                                                                         const RemoteTargetOptions& opts) {
  STOR_ASSIGN_OR_RETURN(Endpoint ep, Endpoint::parse(endpoint));
  STOR_ASSIGN_OR_RETURN(auto transport, Transport::create(ep.scheme, opts.transport));
  auto first = transport->connect(ep);
  // A target that is restarting: wait for it as calls do (reconnect_timeout).
  const auto deadline = std::chrono::steady_clock::now() + opts.reconnect_timeout;
  for (int attempt = 0; !first && (first.status().code() == Code::kUnavailable || first.status().code() == Code::kTimeout) &&
                        std::chrono::steady_clock::now() < deadline;
       ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(1000, 20 << std::min(attempt, 6))));
    first = transport->connect(ep);
  }
  if (!first) return first.status();
  auto t = std::shared_ptr<RemoteObjectTarget>(new RemoteObjectTarget(ep.to_string(), std::move(transport), opts));
  t->release(std::move(*first));
  return t;
}

RemoteObjectTarget::RemoteObjectTarget(std::string endpoint, std::unique_ptr<Transport> transport,
                                       const RemoteTargetOptions& opts)
    : endpoint_(std::move(endpoint)), transport_(std::move(transport)), opts_(opts) {
  pool_ = std::make_unique<internal::TaskPool>(opts_.connections ? opts_.connections : 1);
}

RemoteObjectTarget::~RemoteObjectTarget() { pool_.reset(); }

Result<std::unique_ptr<Channel>> RemoteObjectTarget::acquire(bool pooled, bool* reused) {
  if (reused) *reused = false;
  while (pooled) {
    std::unique_ptr<Channel> ch;
    {
      std::lock_guard lk(mu_);
      if (idle_.empty()) break;
      ch = std::move(idle_.back());
      idle_.pop_back();
    }
    if (ch->peer_closed()) continue;  // the target hung up on it while it sat in the pool
    if (reused) *reused = true;
    return ch;
  }
  return transport_->connect(Endpoint::parse(endpoint_).value());
}

void RemoteObjectTarget::release(std::unique_ptr<Channel> ch) {
  if (!ch || ch->broken()) return;  // a failed connection is not reused
  std::lock_guard lk(mu_);
  idle_.push_back(std::move(ch));
}

template <typename Fn>
auto RemoteObjectTarget::on_channel(Fn&& fn) -> decltype(fn(std::declval<Channel&>())) {
  const auto deadline = std::chrono::steady_clock::now() + opts_.reconnect_timeout;
  for (int attempt = 0;; ++attempt) {
    bool fresh = attempt > 0, reused = false, lost = false;
    auto ch = acquire(!fresh, &reused);
    decltype(fn(std::declval<Channel&>())) r = ch.status();
    if (ch) {
      r = fn(**ch);
      lost = (*ch)->broken();
      release(std::move(*ch));
      if (!r && attempt == 0 && retry_fresh(reused, r.status())) continue;
    } else {
      lost = ch.status().code() == Code::kUnavailable || ch.status().code() == Code::kTimeout;
    }
    // reconnect_timeout: the target went away (restart): reconnect and resend. Every object call
    // is idempotent (writes and truncates at given offsets; a resent remove may say NotFound).
    if (r || !lost || opts_.reconnect_timeout.count() <= 0) return r;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline)
      return Status::Unavailable("transport: target " + endpoint_ + " did not answer within " +
                                 std::to_string(opts_.reconnect_timeout.count()) + " ms: " + r.status().message());
    auto pause = std::chrono::milliseconds(std::min(1000, 20 << std::min(attempt, 6)));
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(pause, deadline - now));
  }
}

Result<Reply> RemoteObjectTarget::call(ObjectOp op, const ObjectCall& c, std::span<const std::byte> payload,
                                       std::span<std::byte> reply) {
  return on_channel(
      [&](Channel& ch) { return ch.call(static_cast<uint16_t>(op), encode_object_call(c), payload, reply); });
}

Result<size_t> RemoteObjectTarget::read(const std::string& object, void* buf, size_t len, uint64_t offset) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  return on_channel([&](Channel& ch) { return read_on(ch, object, buf, len, offset); });
}

Result<size_t> RemoteObjectTarget::read_on(Channel& ch, const std::string& object, void* buf, size_t len,
                                           uint64_t offset) {
  auto* dst = static_cast<std::byte*>(buf);
  if (len == 0) {  // still tell a missing object apart
    ObjectCall c{object, offset, 0, 0};
    auto r = ch.call(static_cast<uint16_t>(ObjectOp::kRead), encode_object_call(c), {}, {});
    if (!r) return r.status();
    return size_t{0};
  }
  // Frames of at most max_payload, up to `pipeline` of them requested ahead: the target goes from
  // one reply to the next while this thread is still taking the previous one off the socket.
  const size_t frame = frame_size(len, ch.max_payload());
  const size_t window = std::max<size_t>(1, std::min<size_t>(opts_.pipeline, Channel::kMaxOutstandingCalls));
  size_t asked = 0;  // bytes requested so far
  size_t done = 0;   // bytes received, in order
  bool ended = false;  // a short reply: the object ends there; later replies carry nothing
  Status err;
  while (done < len || ch.outstanding_calls() > 0) {
    while (err.is_ok() && !ended && asked < len && ch.outstanding_calls() < window) {
      size_t chunk = std::min(frame, len - asked);
      ObjectCall c{object, offset + asked, chunk, 0};
      Status s = ch.start_call(static_cast<uint16_t>(ObjectOp::kRead), encode_object_call(c), {},
                               std::span<std::byte>(dst + asked, chunk));
      if (!s.is_ok()) {
        err = s;
        break;
      }
      asked += chunk;
    }
    if (ch.outstanding_calls() == 0) break;
    auto r = ch.finish_call();  // the reply to the frame at `done` (replies come in order)
    if (!r) {
      if (err.is_ok()) err = r.status();
      continue;  // finish the others: the channel must be empty before it goes back to the pool
    }
    if (!err.is_ok() || ended) continue;
    size_t want = std::min(frame, len - done);
    done += r->payload_len;
    if (r->payload_len < want) ended = true;  // end of object
  }
  if (!err.is_ok()) return err;
  return done;
}

Result<size_t> RemoteObjectTarget::write(const std::string& object, const void* buf, size_t len, uint64_t offset) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  return on_channel([&](Channel& ch) { return write_on(ch, object, buf, len, offset); });
}

Result<size_t> RemoteObjectTarget::write_on(Channel& ch_ref, const std::string& object, const void* buf, size_t len,
                                            uint64_t offset) {
  Channel* ch = &ch_ref;
  auto* src = static_cast<const std::byte*>(buf);
  size_t done = 0;
  Status err;
  do {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(len - done, ch->max_payload()));
    ObjectCall c{object, offset + done, chunk, 0};
    auto r = ch->call(static_cast<uint16_t>(ObjectOp::kWrite), encode_object_call(c),
                      std::span<const std::byte>(src + done, chunk), {});
    if (!r) {
      err = r.status();
      break;
    }
    done += chunk;
  } while (done < len);
  if (!err.is_ok()) return err;
  return done;
}

void RemoteObjectTarget::read_async(std::string object, void* buf, size_t len, uint64_t offset, IoCallback done) {
  pool_->post([this, object = std::move(object), buf, len, offset, done = std::move(done)] {
    done(read(object, buf, len, offset));
  });
}

void RemoteObjectTarget::write_async(std::string object, const void* buf, size_t len, uint64_t offset, IoCallback done) {
  pool_->post([this, object = std::move(object), buf, len, offset, done = std::move(done)] {
    done(write(object, buf, len, offset));
  });
}

Status RemoteObjectTarget::sync(const std::string& object, bool data_only) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  return call(ObjectOp::kSync, ObjectCall{object, 0, 0, data_only ? kSyncDataOnly : 0}, {}, {}).status();
}

Status RemoteObjectTarget::truncate(const std::string& object, uint64_t size) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  return call(ObjectOp::kTruncate, ObjectCall{object, 0, size, 0}, {}, {}).status();
}

Result<ObjectInfo> RemoteObjectTarget::stat(const std::string& object) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  STOR_ASSIGN_OR_RETURN(Reply r, call(ObjectOp::kStat, ObjectCall{object, 0, 0, 0}, {}, {}));
  auto info = decode_object_info(r.control);
  if (!info) return Status::Corruption(endpoint_ + ": " + info.status().message());
  return info;
}

Status RemoteObjectTarget::remove(const std::string& object) {
  STOR_RETURN_IF_ERROR(validate_object_name(object));
  return call(ObjectOp::kRemove, ObjectCall{object, 0, 0, 0}, {}, {}).status();
}

Result<std::vector<ObjectEntry>> RemoteObjectTarget::list() {
  return on_channel([&](Channel& ch) { return list_on(ch); });
}

Result<std::vector<ObjectEntry>> RemoteObjectTarget::list_on(Channel& ch_ref) {
  Channel* ch = &ch_ref;
  std::vector<std::byte> page(std::min<uint64_t>(ch->max_payload(), 1 << 20));
  std::vector<ObjectEntry> all;
  Status err;
  for (;;) {
    ObjectCall c{"", all.size(), 0, 0};
    auto r = ch->call(static_cast<uint16_t>(ObjectOp::kList), encode_object_call(c), {}, page);
    if (!r) {
      err = r.status();
      break;
    }
    auto entries = decode_object_entries(std::string_view(reinterpret_cast<const char*>(page.data()), r->payload_len));
    if (!entries) {
      err = Status::Corruption(endpoint_ + ": " + entries.status().message());
      break;
    }
    if (entries->empty()) break;
    for (auto& e : *entries) all.push_back(std::move(e));
  }
  if (!err.is_ok()) return err;
  return all;
}

}  // namespace stor::transport
