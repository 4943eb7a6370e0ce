#include "backends/s3express/s3_xml.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

#include <ctime>
#include <sstream>

namespace stor::s3 {

namespace pt = boost::property_tree;

namespace {

bool parse_tree(const std::string& body, pt::ptree* out, std::string* err) {
  try {
    std::istringstream in(body);
    pt::read_xml(in, *out, pt::xml_parser::trim_whitespace);
    return true;
  } catch (const std::exception& e) {
    *err = e.what();
    return false;
  }
}

Status malformed(const char* what, const std::string& detail) {
  return Status(Code::kIoError, std::string("malformed ") + what + " response: " + detail);
}

std::string strip_quotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

bool parse_iso8601(const std::string& text, std::chrono::system_clock::time_point* out) {
  std::tm tm{};
  int year, mon, day, hour, min;
  double sec;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%lf", &year, &mon, &day, &hour, &min, &sec) != 6) return false;
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = 0;
  std::time_t t = timegm(&tm);
  if (t == static_cast<std::time_t>(-1)) return false;
  *out = std::chrono::system_clock::from_time_t(t) +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(sec));
  return true;
}

bool parse_error(const std::string& body, ErrorDoc* out) {
  pt::ptree tree;
  std::string err;
  if (body.empty() || !parse_tree(body, &tree, &err)) return false;
  auto e = tree.get_child_optional("Error");
  if (!e) return false;
  out->code = e->get<std::string>("Code", "");
  out->message = e->get<std::string>("Message", "");
  out->request_id = e->get<std::string>("RequestId", "");
  return true;
}

Result<ListPage> parse_list_objects_v2(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("ListObjectsV2", err);
  auto root = tree.get_child_optional("ListBucketResult");
  if (!root) return malformed("ListObjectsV2", "no <ListBucketResult>");
  ListPage page;
  page.truncated = root->get<std::string>("IsTruncated", "false") == "true";
  page.next_continuation_token = root->get<std::string>("NextContinuationToken", "");
  for (const auto& [name, node] : *root) {
    if (name == "Contents") {
      ObjectEntry e;
      e.key = node.get<std::string>("Key", "");
      e.size = node.get<uint64_t>("Size", 0);
      e.etag = strip_quotes(node.get<std::string>("ETag", ""));
      std::chrono::system_clock::time_point t;
      if (parse_iso8601(node.get<std::string>("LastModified", ""), &t))
        e.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
      page.objects.push_back(std::move(e));
    } else if (name == "CommonPrefixes") {
      page.common_prefixes.push_back(node.get<std::string>("Prefix", ""));
    }
  }
  if (page.truncated && page.next_continuation_token.empty())
    return malformed("ListObjectsV2", "IsTruncated without NextContinuationToken");
  return page;
}

Result<std::string> parse_initiate_multipart_upload(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("CreateMultipartUpload", err);
  std::string id = tree.get<std::string>("InitiateMultipartUploadResult.UploadId", "");
  if (id.empty()) return malformed("CreateMultipartUpload", "no UploadId");
  return id;
}

Result<std::string> parse_complete_multipart_upload(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("CompleteMultipartUpload", err);
  // S3 may answer 200 and still put an <Error> in the body.
  if (auto e = tree.get_child_optional("Error")) {
    return Status(Code::kIoError, "CompleteMultipartUpload failed: " + e->get<std::string>("Code", "") + ": " +
                                      e->get<std::string>("Message", ""));
  }
  auto root = tree.get_child_optional("CompleteMultipartUploadResult");
  if (!root) return malformed("CompleteMultipartUpload", "no <CompleteMultipartUploadResult>");
  return strip_quotes(root->get<std::string>("ETag", ""));
}

Result<std::string> parse_copy_object(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("CopyObject", err);
  if (auto e = tree.get_child_optional("Error")) {
    return Status(Code::kIoError,
                  "CopyObject failed: " + e->get<std::string>("Code", "") + ": " + e->get<std::string>("Message", ""));
  }
  auto root = tree.get_child_optional("CopyObjectResult");
  if (!root) return malformed("CopyObject", "no <CopyObjectResult>");
  return strip_quotes(root->get<std::string>("ETag", ""));
}

Result<std::vector<DeleteFailure>> parse_delete_result(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("DeleteObjects", err);
  auto root = tree.get_child_optional("DeleteResult");
  if (!root) return malformed("DeleteObjects", "no <DeleteResult>");
  std::vector<DeleteFailure> failures;
  for (const auto& [name, node] : *root) {
    if (name != "Error") continue;
    failures.push_back({node.get<std::string>("Key", ""), node.get<std::string>("Code", ""),
                        node.get<std::string>("Message", "")});
  }
  return failures;
}

Result<SessionCredentials> parse_create_session(const std::string& body) {
  pt::ptree tree;
  std::string err;
  if (!parse_tree(body, &tree, &err)) return malformed("CreateSession", err);
  auto creds = tree.get_child_optional("CreateSessionResult.Credentials");
  if (!creds) return malformed("CreateSession", "no <CreateSessionResult><Credentials>");
  SessionCredentials out;
  out.access_key = creds->get<std::string>("AccessKeyId", "");
  out.secret_key = creds->get<std::string>("SecretAccessKey", "");
  out.session_token = creds->get<std::string>("SessionToken", "");
  std::string expiration = creds->get<std::string>("Expiration", "");
  if (out.access_key.empty() || out.secret_key.empty() || out.session_token.empty())
    return malformed("CreateSession", "incomplete credentials");
  if (!parse_iso8601(expiration, &out.expiration))
    return malformed("CreateSession", "bad Expiration '" + expiration + "'");
  return out;
}

std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::string build_complete_multipart_upload(const std::vector<std::string>& part_etags,
                                            const std::vector<std::string>& part_crc32c) {
  std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (size_t i = 0; i < part_etags.size(); ++i) {
    out += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>\"" + xml_escape(part_etags[i]) +
           "\"</ETag>";
    if (i < part_crc32c.size() && !part_crc32c[i].empty())
      out += "<ChecksumCRC32C>" + xml_escape(part_crc32c[i]) + "</ChecksumCRC32C>";
    out += "</Part>";
  }
  return out + "</CompleteMultipartUpload>";
}

std::string build_delete_objects(const std::vector<std::string>& keys, bool quiet) {
  std::string out = "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  if (quiet) out += "<Quiet>true</Quiet>";
  for (const auto& k : keys) out += "<Object><Key>" + xml_escape(k) + "</Key></Object>";
  return out + "</Delete>";
}

}  // namespace stor::s3
