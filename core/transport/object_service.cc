#include "core/transport/object_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/transport/wire.h"

namespace stor::transport {

namespace {
constexpr size_t kMaxOpenObjects = 1024;  // descriptors kept open between calls
}

struct ObjectService::OpenObject {
  int fd = -1;
  ~OpenObject() {
    if (fd >= 0) ::close(fd);
  }
};

Result<std::unique_ptr<ObjectService>> ObjectService::create(const std::string& dir, IoEngine* engine) {
  if (!engine) return Status(Code::kInvalidArgument, "object service needs an IoEngine");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return Status::from_errno(errno, "object directory " + dir);
  if (!S_ISDIR(st.st_mode)) return Status(Code::kNotADirectory, "object directory " + dir + " is not a directory");
  return std::unique_ptr<ObjectService>(new ObjectService(dir, engine));
}

ObjectService::~ObjectService() = default;

Result<std::shared_ptr<ObjectService::OpenObject>> ObjectService::open_object(const std::string& name, bool create) {
  {
    std::lock_guard lk(mu_);
    if (auto it = open_.find(name); it != open_.end()) return it->second;
  }
  std::string path = dir_ + "/" + name;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT && create) {
    // Objects may live in sub-directories ("ab/123.0.1"): make the parents on first write.
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  }
  if (fd < 0) return Status::from_errno(errno, "open object '" + name + "'");
  auto obj = std::make_shared<OpenObject>();
  obj->fd = fd;
  std::lock_guard lk(mu_);
  if (open_.size() >= kMaxOpenObjects) open_.clear();  // calls in flight keep their own reference
  auto [it, inserted] = open_.emplace(name, obj);
  return it->second;  // another thread may have opened it first: use that one
}

void ObjectService::forget(const std::string& name) {
  std::lock_guard lk(mu_);
  open_.erase(name);
}

ServerResult ObjectService::handle(const ServerCall& call) {
  auto c = decode_object_call(call.control);
  if (!c) return ServerResult{c.status(), {}, 0};
  if (call.opcode == static_cast<uint16_t>(ObjectOp::kList)) {
    if (!c->name.empty()) return ServerResult{Status(Code::kInvalidArgument, "list takes no object name"), {}, 0};
    return list(*c, call);
  }
  if (Status s = validate_object_name(c->name); !s.is_ok()) return ServerResult{s, {}, 0};
  switch (static_cast<ObjectOp>(call.opcode)) {
    case ObjectOp::kRead: return read(*c, call);
    case ObjectOp::kWrite: return write(*c, call);
    case ObjectOp::kSync: return sync(*c);
    case ObjectOp::kTruncate: return truncate(*c);
    case ObjectOp::kStat: return stat(*c);
    case ObjectOp::kRemove: return remove(*c);
    case ObjectOp::kList: break;  // handled above
  }
  return ServerResult{Status(Code::kUnsupported, "stor-target: unknown opcode " + std::to_string(call.opcode)), {}, 0};
}

ServerResult ObjectService::read(const ObjectCall& c, const ServerCall& call) {
  if (c.length > call.reply_buffer.size())
    return {Status(Code::kInvalidArgument, "read of " + std::to_string(c.length) + " bytes exceeds the caller's buffer of " +
                                               std::to_string(call.reply_buffer.size())), {}, 0};
  if (c.offset + c.length < c.offset) return {Status(Code::kInvalidArgument, "read range overflows"), {}, 0};
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  if (c.length == 0) return {};
  auto r = engine_->read((*obj)->fd, call.reply_buffer.data(), c.length, c.offset).get();
  if (!r) return {r.status(), {}, 0};
  return {Status(), {}, *r};
}

ServerResult ObjectService::write(const ObjectCall& c, const ServerCall& call) {
  if (c.length != call.payload.size())
    return {Status(Code::kCorruption, "write announces " + std::to_string(c.length) + " bytes but carries " +
                                          std::to_string(call.payload.size())), {}, 0};
  if (c.offset + c.length < c.offset) return {Status(Code::kInvalidArgument, "write range overflows"), {}, 0};
  auto obj = open_object(c.name, true);
  if (!obj) return {obj.status(), {}, 0};
  if (c.length == 0) return {};
  auto r = engine_->write((*obj)->fd, call.payload.data(), call.payload.size(), c.offset).get();
  if (!r) return {r.status(), {}, 0};
  if (*r != c.length) return {Status(Code::kIoError, "short write to object '" + c.name + "'"), {}, 0};
  return {};
}

ServerResult ObjectService::sync(const ObjectCall& c) {
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  auto r = engine_->fsync((*obj)->fd, (c.flags & kSyncDataOnly) != 0).get();
  if (!r) return {r.status(), {}, 0};
  return {};
}

ServerResult ObjectService::truncate(const ObjectCall& c) {
  if (c.length > static_cast<uint64_t>(INT64_MAX)) return {Status(Code::kInvalidArgument, "truncate size too large"), {}, 0};
  auto obj = open_object(c.name, true);
  if (!obj) return {obj.status(), {}, 0};
  if (::ftruncate((*obj)->fd, static_cast<off_t>(c.length)) != 0)
    return {Status::from_errno(errno, "truncate object '" + c.name + "'"), {}, 0};
  return {};
}

ServerResult ObjectService::stat(const ObjectCall& c) {
  auto obj = open_object(c.name, false);
  if (!obj) return {obj.status(), {}, 0};
  struct stat st {};
  if (::fstat((*obj)->fd, &st) != 0) return {Status::from_errno(errno, "stat object '" + c.name + "'"), {}, 0};
  ObjectInfo info{static_cast<uint64_t>(st.st_size),
                  static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
  return {Status(), encode_object_info(info), 0};
}

ServerResult ObjectService::list(const ObjectCall& c, const ServerCall& call) {
  // Every regular file under the directory, by name; the caller pages with offset = entries
  // already seen. Names that could not be sent back as object names are left out.
  std::vector<std::pair<std::string, uint64_t>> all;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir_, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code fec;
    if (!it->is_regular_file(fec)) continue;
    std::string name = std::filesystem::relative(it->path(), dir_, fec).string();
    if (fec || !validate_object_name(name).is_ok()) continue;
    uint64_t size = it->file_size(fec);
    if (!fec) all.emplace_back(std::move(name), size);
  }
  if (ec) return {Status::from_errno(ec.value(), "list objects of " + dir_), {}, 0};
  std::sort(all.begin(), all.end());
  size_t used = 0;
  for (size_t i = c.offset; i < all.size(); ++i) {
    const auto& [name, size] = all[i];
    size_t need = 2 + name.size() + 8;
    if (used + need > call.reply_buffer.size()) break;
    std::string entry;
    put_u16(entry, static_cast<uint16_t>(name.size()));
    entry += name;
    put_u64(entry, size);
    std::memcpy(call.reply_buffer.data() + used, entry.data(), entry.size());
    used += need;
  }
  return {Status(), {}, used};
}

ServerResult ObjectService::remove(const ObjectCall& c) {
  forget(c.name);
  std::string path = dir_ + "/" + c.name;
  if (::unlink(path.c_str()) != 0) return {Status::from_errno(errno, "remove object '" + c.name + "'"), {}, 0};
  return {};
}

}  // namespace stor::transport
