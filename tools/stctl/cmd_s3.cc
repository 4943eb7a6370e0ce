// stctl commands of the S3 / S3 Express backend: mb (create bucket), s3stat (client counters).
#include <cstdio>
#include <string>
#include <vector>

#include "backends/s3express/s3_backend.h"
#include "tools/stctl/command.h"

namespace stctl {
namespace {

namespace s3 = stor::s3;

// Resolves URI to its bucket and the S3 client serving it.
stor::Status s3_target(Context& ctx, const std::string& text, s3::S3Client** client, std::string* bucket) {
  STOR_ASSIGN_OR_RETURN(stor::Uri uri, stor::Uri::parse(text));
  STOR_ASSIGN_OR_RETURN(auto backend, ctx.store.backend(uri));
  *client = s3::s3_client_of(*backend);
  if (*client == nullptr)
    return {stor::Code::kInvalidArgument, "'" + text + "' is not an s3express:// or s3:// URI"};
  std::string key;
  return s3::bucket_and_key(uri, bucket, &key);
}

int cmd_mb(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  s3::S3Client* client = nullptr;
  std::string bucket;
  stor::Status s = s3_target(ctx, args[0], &client, &bucket);
  if (s.is_ok()) s = client->create_bucket(bucket);
  if (!s.is_ok()) return fail(s);
  if (ctx.json) print_map(ctx, {{"bucket", bucket}, {"created", "true"}});
  else std::printf("created bucket %s\n", bucket.c_str());
  return 0;
}

int cmd_s3auth(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  s3::S3Client* client = nullptr;
  std::string bucket;
  stor::Status s = s3_target(ctx, args[0], &client, &bucket);
  if (!s.is_ok()) return fail(s);
  std::string mode = client->auth_mode(bucket);
  const s3::S3Stats st = client->stats();
  if (ctx.json) {
    print_map(ctx, {{"bucket", bucket},
                    {"auth", mode},
                    {"endpoint", client->config().endpoint},
                    {"sessions_created", std::to_string(st.sessions_created)}});
  } else {
    std::printf("bucket:   %s\nendpoint: %s\nauth:     %s%s\n", bucket.c_str(), client->config().endpoint.c_str(),
                mode.c_str(),
                mode == "session" ? " (CreateSession token, renewed before expiry)"
                                  : mode == "sigv4" ? " (plain SigV4 with the configured keys)" : "");
  }
  return 0;
}

const Registrar r_mb{{"mb", "mb s3express://BUCKET",
                      "Create a bucket on the configured S3 endpoint (--set s3.endpoint=URL, or AWS_ENDPOINT_URL; keys from "
                      "--set s3.access_key=/s3.secret_key= or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY).",
                      cmd_mb}};
const Registrar r_s3auth{{"s3auth", "s3auth s3express://BUCKET",
                          "Show how requests to BUCKET are authenticated: an S3 Express CreateSession token when the "
                          "server offers sessions, else plain SigV4.",
                          cmd_s3auth}};

}  // namespace
}  // namespace stctl
