// stctl commands of the S3 / S3 Express backend: mb (create bucket), s3stat (client counters).
#include <cstdio>
#include <string>
#include <vector>

#include "stor/admin.h"
#include "command.h"

namespace stctl {
namespace {

int cmd_mb(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto created = stor::admin::s3_create_bucket(ctx.store, args[0]);
  if (!created.is_ok()) return fail(created.status());
  const std::string& bucket = *created;
  if (ctx.json) print_map(ctx, {{"bucket", bucket}, {"created", "true"}});
  else std::printf("created bucket %s\n", bucket.c_str());
  return 0;
}

int cmd_s3auth(Context& ctx, const std::vector<std::string>& args) {
  if (args.size() != 1) return 2;
  auto info = stor::admin::s3_auth_info(ctx.store, args[0]);
  if (!info.is_ok()) return fail(info.status());
  const std::string& mode = info->mode;
  if (ctx.json) {
    print_map(ctx, {{"bucket", info->bucket},
                    {"auth", mode},
                    {"endpoint", info->endpoint},
                    {"sessions_created", std::to_string(info->sessions_created)}});
  } else {
    std::printf("bucket:   %s\nendpoint: %s\nauth:     %s%s\n", info->bucket.c_str(), info->endpoint.c_str(),
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
