// Bucket change notifications for a linked namespace: an HTTP endpoint that object stores push
// S3 event records to (Ceph RGW topics with an http push-endpoint; the AWS S3 event format), so
// a change in the bucket reaches the namespace at once instead of at the next sync round.
// Everything received is untrusted: a request is read with bounded sizes and a deadline, its
// JSON parsed without recursion limits being exceeded, and an event only names a key to check:
// the handler asks the bucket itself (one HEAD) what that key holds now.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "stor/status.h"

namespace stor::tiering::internal {

struct BucketEvent {
  std::string bucket;
  std::string key;     // decoded
  std::string etag;    // the version the event is about, when the record names it (else "")
  bool removed = false;  // ObjectRemoved:*; else ObjectCreated:* (or anything else: check the key)
};

// Parses an S3 event notification body ({"Records":[{"eventName":..., "eventSource":...,
// "s3":{"bucket":{"name":...},"object":{"key":...}}}, ...]}). Keys are URL-encoded by AWS
// ("aws:s3", '+' for space) and sent as they are by Ceph ("ceph:s3"). InvalidArgument on
// anything that is not such a document (for fuzzing: any bytes give a Status, never a crash).
Result<std::vector<BucketEvent>> parse_bucket_events(std::string_view body);

class NotifyListener {
 public:
  using Handler = std::function<void(const std::vector<BucketEvent>&)>;
  // Listens on "HOST:PORT" (IPv4; port 0 picks a free one) and calls `handler` on its own thread
  // for each POSTed document that parses; answers 200 to those, 400 to others.
  static Result<std::unique_ptr<NotifyListener>> start(const std::string& listen, Handler handler);
  ~NotifyListener();
  std::string endpoint() const { return endpoint_; }  // "http://HOST:PORT"

 private:
  NotifyListener(int fd, std::string endpoint, Handler handler)
      : fd_(fd), endpoint_(std::move(endpoint)), handler_(std::move(handler)) {}
  void run();
  void serve(int conn);
  int fd_;
  std::string endpoint_;
  Handler handler_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace stor::tiering::internal
