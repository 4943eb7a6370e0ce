// URIs and endpoints: stor URIs (include/stor/backend.h), S3 endpoints and bucket/key splitting,
// S3 settings, transport endpoints, lustre paths. The first byte picks the parser.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/mds.h"
#include "backends/s3express/http_client.h"
#include "backends/s3express/s3_backend.h"
#include "backends/s3express/s3_client.h"
#include "net/transport.h"
#include "fuzz/fuzz_util.h"
#include "stor/backend.h"
#include "stor/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t which = data[0];
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which % 6) {
    case 0: {
      auto u = stor::Uri::parse(text);
      if (!u.is_ok()) break;
      // A URI with an explicit scheme reads back as itself.
      const std::string again = u->to_string();
      auto v = stor::Uri::parse(again);
      const size_t colon = text.find(':');
      if (colon != std::string::npos && colon > 0 && text.find('/') > colon) {  // an explicit scheme
        STOR_FUZZ_CHECK(v.is_ok(), "to_string() of a parsed URI does not parse: " + again);
        STOR_FUZZ_CHECK(v->scheme == u->scheme && v->authority == u->authority && v->path == u->path,
                        "URI does not survive to_string(): " + again);
      }
      std::string bucket, key;
      if (stor::s3::bucket_and_key(*u, &bucket, &key).is_ok()) {
        STOR_FUZZ_CHECK(!bucket.empty(), "empty bucket accepted");
        STOR_FUZZ_CHECK(key.empty() || (key.front() != '/' && key.back() != '/'), "key keeps an edge slash");
      }
      break;
    }
    case 1: {
      auto ep = stor::s3::Endpoint::parse(text);
      if (!ep.is_ok()) break;
      STOR_FUZZ_CHECK(!ep->port.empty(), "endpoint without a port");
      (void)ep->host_header();
      (void)stor::s3::Endpoint::parse(ep->to_string());
      break;
    }
    case 2: {
      // "key=value\n" lines as s3.* settings (what stctl and BackendContext pass).
      std::map<std::string, std::string> settings;
      size_t at = 0;
      while (at < text.size()) {
        size_t nl = text.find('\n', at);
        std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? text.size() : nl + 1;
        size_t eq = line.find('=');
        if (eq != std::string::npos) settings["s3." + line.substr(0, eq)] = line.substr(eq + 1);
      }
      (void)stor::s3::S3Config::from_settings(settings, which & 0x80);
      // The shared parsers behind every setting: what parses, prints back to the same number.
      for (const auto& [k, v] : settings) {
        if (auto n = stor::parse_size(v); n.is_ok()) {
          auto again = stor::parse_size(stor::format_size(*n));
          STOR_FUZZ_CHECK(again.is_ok() && *again == *n, "size does not survive format_size: " + v);
        }
        if (auto n = stor::parse_uint(v); n.is_ok())
          STOR_FUZZ_CHECK(std::to_string(*n) == v || v.front() == '0', "uint parse is not plain decimal: " + v);
        (void)stor::parse_duration(v, std::chrono::milliseconds(1000));
        (void)stor::parse_bool(v);
      }
      break;
    }
    case 3: {
      auto ep = stor::transport::Endpoint::parse(text);
      if (!ep.is_ok()) break;
      auto again = stor::transport::Endpoint::parse(ep->to_string());
      STOR_FUZZ_CHECK(again.is_ok() && again->host == ep->host && again->port == ep->port,
                      "transport endpoint does not survive to_string(): " + ep->to_string());
      break;
    }
    case 4: {
      auto comps = stor::lustre::split_path(text);
      if (comps.is_ok())
        for (const auto& c : *comps) STOR_FUZZ_CHECK(!c.empty() && c != "." && c != "..", "bad component kept");
      (void)stor::lustre::host_path_of(text);
      break;
    }
    case 5: {
      std::map<std::string, std::string> settings;
      size_t nl = text.find('\n');
      settings["lustre.uid"] = text.substr(0, nl);
      if (nl != std::string::npos) settings["lustre.gids"] = text.substr(nl + 1);
      (void)stor::lustre::backend_options_from_settings(settings);
      break;
    }
  }
  return 0;
}
