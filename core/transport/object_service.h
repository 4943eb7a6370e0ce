// Server side of the object-target protocol: serves the objects of one directory, doing file
// I/O through the IoEngine. stor-target wraps this in a Listener; it is thread-safe, so every
// connection thread calls handle() directly.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "core/transport/object_protocol.h"
#include "core/transport/transport.h"
#include "stor/engine.h"

namespace stor::transport {

class ObjectService {
 public:
  // dir must exist. The engine must outlive the service.
  static Result<std::unique_ptr<ObjectService>> create(const std::string& dir, IoEngine* engine);
  ~ObjectService();

  ServerResult handle(const ServerCall& call);

 private:
  struct OpenObject;
  ObjectService(std::string dir, IoEngine* engine) : dir_(std::move(dir)), engine_(engine) {}
  // The object's descriptor, opened read-write on first use; NotFound when missing and !create.
  Result<std::shared_ptr<OpenObject>> open_object(const std::string& name, bool create);
  void forget(const std::string& name);

  ServerResult read(const ObjectCall& c, const ServerCall& call);
  ServerResult write(const ObjectCall& c, const ServerCall& call);
  ServerResult sync(const ObjectCall& c);
  ServerResult truncate(const ObjectCall& c);
  ServerResult stat(const ObjectCall& c);
  ServerResult remove(const ObjectCall& c);
  ServerResult list(const ObjectCall& c, const ServerCall& call);

  const std::string dir_;
  IoEngine* engine_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<OpenObject>> open_;  // bounded: see open_object
};

}  // namespace stor::transport
