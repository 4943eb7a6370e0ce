// The S3 part of the public admin API (include/stor/admin.h): bucket operations for stctl and
// the benches, reached through the store's own s3/s3express backend and its settings.
#include "backends/s3express/s3_backend.h"
#include "stor/admin.h"
#include "stor/store.h"

namespace stor::admin {
namespace {

// The client serving `text`'s scheme in `store`, and the bucket it names.
Status s3_target(Store& store, const std::string& text, s3::S3Client** client, std::string* bucket) {
  STOR_ASSIGN_OR_RETURN(Uri uri, Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto backend, store.backend(uri));
  *client = s3::s3_client_of(*backend);
  if (*client == nullptr) return Status::InvalidArgument("'" + text + "' is not an s3express:// or s3:// URI");
  std::string key;
  return s3::bucket_and_key(uri, bucket, &key);
}

}  // namespace

Result<std::string> s3_create_bucket(Store& store, const std::string& uri) {
  s3::S3Client* client = nullptr;
  std::string bucket;
  STOR_RETURN_IF_ERROR(s3_target(store, uri, &client, &bucket));
  STOR_RETURN_IF_ERROR(client->create_bucket(bucket));
  return bucket;
}

Result<S3AuthInfo> s3_auth_info(Store& store, const std::string& uri) {
  s3::S3Client* client = nullptr;
  S3AuthInfo info;
  STOR_RETURN_IF_ERROR(s3_target(store, uri, &client, &info.bucket));
  info.mode = client->auth_mode(info.bucket);
  info.endpoint = client->config().endpoint;
  info.sessions_created = client->stats().sessions_created;
  return info;
}

Result<S3ClientStats> s3_client_stats(Store& store, const std::string& uri) {
  s3::S3Client* client = nullptr;
  std::string bucket;
  STOR_RETURN_IF_ERROR(s3_target(store, uri, &client, &bucket));
  const s3::S3Stats st = client->stats();
  S3ClientStats out;
  out.requests = st.requests;
  out.retries = st.retries;
  out.sessions_created = st.sessions_created;
  out.connections_opened = st.connections_opened;
  return out;
}

Result<std::string> s3_notify(Store& store, const std::string& uri, const std::string& topic,
                              const std::string& push_endpoint) {
  s3::S3Client* client = nullptr;
  std::string bucket;
  STOR_RETURN_IF_ERROR(s3_target(store, uri, &client, &bucket));
  STOR_ASSIGN_OR_RETURN(Uri parsed, Uri::parse(uri));
  std::string b, prefix;
  STOR_RETURN_IF_ERROR(s3::bucket_and_key(parsed, &b, &prefix));
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  STOR_ASSIGN_OR_RETURN(std::string arn, client->create_topic(topic, push_endpoint));
  STOR_RETURN_IF_ERROR(client->put_bucket_notification(bucket, topic, arn, prefix));
  return arn;
}

}  // namespace stor::admin
