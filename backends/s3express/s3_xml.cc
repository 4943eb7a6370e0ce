#include "backends/s3express/s3_xml.h"

#include <boost/property_tree/ptree.hpp>
#include <boost/property_tree/xml_parser.hpp>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <sstream>

namespace stor::s3 {

namespace pt = boost::property_tree;

namespace {

// S3 documents nest 4 levels deep and a 1000-key ListObjectsV2 page has ~12000 elements.
constexpr size_t kMaxDepth = 32;
constexpr size_t kMaxNodes = 200000;  // elements + attributes: bounds the tree's memory

// rapidxml (under PropertyTree) recurses once per nesting level and allocates a node per element
// and attribute, so a hostile body could overflow the stack or cost far more memory than its
// size. This pass counts both without recursion and without allocating. It follows rapidxml's
// tokens (quoted attribute values, comments, CDATA, processing instructions, DOCTYPE) so nothing
// can hide an opening tag; where it is unsure it over-counts, which only refuses odd documents.
bool check_shape(std::string_view xml, std::string* err) {
  size_t depth = 0, nodes = 0, i = 0;
  auto skip_past = [&](std::string_view end) {
    size_t at = xml.find(end, i);
    i = at == std::string_view::npos ? xml.size() : at + end.size();
  };
  while ((i = xml.find('<', i)) != std::string_view::npos) {
    ++i;
    if (xml.substr(i, 3) == "!--") {
      skip_past("-->");
    } else if (xml.substr(i, 8) == "![CDATA[") {
      skip_past("]]>");
    } else if (i < xml.size() && (xml[i] == '?' || xml[i] == '!')) {
      skip_past(">");
    } else if (i < xml.size() && xml[i] == '/') {
      if (depth > 0) --depth;
      skip_past(">");
    } else {
      // An opening tag: scan to its '>' outside quotes, counting attributes ('=').
      char quote = 0, prev = 0;
      for (; i < xml.size(); ++i) {
        const char c = xml[i];
        if (quote) {
          if (c == quote) quote = 0;
        } else if (c == '"' || c == '\'') {
          quote = c;
        } else if (c == '=') {
          ++nodes;
        } else if (c == '>') {
          break;
        }
        if (!quote && c != '"' && c != '\'') prev = c;
      }
      ++i;
      ++nodes;
      if (prev != '/' && ++depth > kMaxDepth) {
        *err = "elements nest deeper than " + std::to_string(kMaxDepth) + " levels";
        return false;
      }
    }
    if (nodes > kMaxNodes) {
      *err = "more than " + std::to_string(kMaxNodes) + " elements and attributes";
      return false;
    }
  }
  return true;
}

bool parse_tree(const std::string& body, pt::ptree* out, std::string* err) {
  if (!check_shape(body, err)) return false;
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
  return Status::IoError(std::string("malformed ") + what + " response: " + detail);
}

std::string strip_quotes(std::string s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') s = s.substr(1, s.size() - 2);
  return s;
}

}  // namespace

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil); exact
// for any int32 year, no overflow in int64.
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned days_in_month(int64_t y, unsigned m) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

// Reads exactly n digits at text[*pos].
bool digits(std::string_view text, size_t* pos, size_t n, unsigned* out) {
  if (*pos + n > text.size()) return false;
  unsigned v = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  *pos += n;
  *out = v;
  return true;
}

bool expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

}  // namespace

Result<int64_t> civil_to_unix_ns(unsigned year, unsigned month, unsigned day, unsigned hour, unsigned minute,
                                 unsigned second, unsigned nanos, int64_t offset_seconds) {
  if (month < 1 || month > 12) return Status::InvalidArgument("month " + std::to_string(month) + " is not 1..12");
  if (day < 1 || day > days_in_month(year, month))
    return Status::InvalidArgument("day " + std::to_string(day) + " does not exist in that month");
  if (hour > 23) return Status::InvalidArgument("hour " + std::to_string(hour) + " is not 0..23");
  if (minute > 59) return Status::InvalidArgument("minute " + std::to_string(minute) + " is not 0..59");
  if (second > 60) return Status::InvalidArgument("second " + std::to_string(second) + " is not 0..60");
  if (nanos > 999999999) return Status::InvalidArgument("fraction of a second out of range");
  // All in seconds first (a 4-digit year is far from overflowing int64), then the range check
  // against what int64 nanoseconds (and system_clock) can hold, then the conversion.
  const int64_t secs = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_seconds;
  constexpr int64_t kMaxSecs = INT64_MAX / 1000000000;  // 2262-04-11T23:47:16
  constexpr int64_t kMinSecs = INT64_MIN / 1000000000;  // 1677-09-21T00:12:44 (truncated toward 0)
  const bool fits = (secs > kMinSecs - 1 && secs < kMaxSecs) ||
                    (secs == kMaxSecs && nanos <= static_cast<unsigned>(INT64_MAX % 1000000000)) ||
                    (secs == kMinSecs - 1 && nanos >= static_cast<unsigned>(1000000000 + INT64_MIN % 1000000000));
  if (!fits) {
    return Status::OutOfRange("outside the representable range 1677-09-21T00:12:43.145224192Z..2262-04-11T23:47:16.854775807Z");
  }
  // secs * 1e9 alone may leave int64 at the low edge; stay in range by adding the part first.
  if (secs < 0 && nanos > 0) return (secs + 1) * 1000000000 - static_cast<int64_t>(1000000000 - nanos);
  return secs * 1000000000 + static_cast<int64_t>(nanos);
}

Result<std::chrono::system_clock::time_point> parse_iso8601(std::string_view text) {
  auto bad = [&](const std::string& why) {
    const std::string shown(text.substr(0, 64));
    return Status::InvalidArgument("bad timestamp '" + shown + "': " + why);
  };
  // YYYY-MM-DDTHH:MM:SS[.fraction][Z|+HH:MM|-HH:MM]
  size_t pos = 0;
  unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, nanos = 0;
  if (!digits(text, &pos, 4, &year) || !expect(text, &pos, '-') || !digits(text, &pos, 2, &month) ||
      !expect(text, &pos, '-') || !digits(text, &pos, 2, &day) || !expect(text, &pos, 'T') ||
      !digits(text, &pos, 2, &hour) || !expect(text, &pos, ':') || !digits(text, &pos, 2, &minute) ||
      !expect(text, &pos, ':') || !digits(text, &pos, 2, &second))
    return bad("expected YYYY-MM-DDTHH:MM:SS");
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    size_t n = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++n) {
      if (n < 9) nanos = nanos * 10 + static_cast<unsigned>(text[pos] - '0');  // finer digits are dropped
    }
    if (n == 0) return bad("no digits after '.'");
    for (; n < 9; ++n) nanos *= 10;
  }
  int64_t offset = 0;
  if (pos < text.size() && text[pos] == 'Z') {
    ++pos;
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const bool minus = text[pos++] == '-';
    unsigned oh = 0, om = 0;
    if (!digits(text, &pos, 2, &oh) || !expect(text, &pos, ':') || !digits(text, &pos, 2, &om) || oh > 23 ||
        om > 59)
      return bad("bad UTC offset");
    offset = (minus ? -1 : 1) * static_cast<int64_t>(oh * 3600 + om * 60);
  }
  if (pos != text.size()) return bad("unexpected text after the time");
  Result<int64_t> ns = civil_to_unix_ns(year, month, day, hour, minute, second, nanos, offset);
  if (!ns.is_ok()) return bad(ns.status().message());
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::nanoseconds(*ns)));
}

Result<uint64_t> parse_object_size(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument("not a byte count 0.." + std::to_string(INT64_MAX) + ": '" +
                                              std::string(text.substr(0, 40)) + "'");
  };
  if (text.empty() || text.size() > 19) return bad();
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    v = v * 10 + static_cast<uint64_t>(c - '0');  // 19 digits cannot overflow uint64
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return bad();
  return v;
}

Result<int64_t> parse_http_date_ns(std::string_view text) {
  auto bad = [&](const std::string& why) {
    const std::string shown(text.substr(0, 64));
    return Status::InvalidArgument("bad HTTP date '" + shown + "': " + why);
  };
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  static constexpr std::string_view kDays[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (text.size() != 29) return bad("expected 'Www, DD Mon YYYY HH:MM:SS GMT'");
  if (std::find(std::begin(kDays), std::end(kDays), text.substr(0, 3)) == std::end(kDays)) return bad("bad day name");
  const auto mon = std::find(std::begin(kMonths), std::end(kMonths), text.substr(8, 3));
  if (mon == std::end(kMonths)) return bad("bad month name");
  size_t pos = 3;
  unsigned day = 0, year = 0, hour = 0, minute = 0, second = 0;
  if (!expect(text, &pos, ',') || !expect(text, &pos, ' ') || !digits(text, &pos, 2, &day) ||
      !expect(text, &pos, ' '))
    return bad("expected 'Www, DD Mon YYYY HH:MM:SS GMT'");
  pos += 3;  // month, checked above
  if (!expect(text, &pos, ' ') || !digits(text, &pos, 4, &year) || !expect(text, &pos, ' ') ||
      !digits(text, &pos, 2, &hour) || !expect(text, &pos, ':') || !digits(text, &pos, 2, &minute) ||
      !expect(text, &pos, ':') || !digits(text, &pos, 2, &second) || text.substr(pos) != " GMT")
    return bad("expected 'Www, DD Mon YYYY HH:MM:SS GMT'");
  Result<int64_t> ns =
      civil_to_unix_ns(year, static_cast<unsigned>(mon - std::begin(kMonths)) + 1, day, hour, minute, second, 0);
  if (!ns.is_ok()) return bad(ns.status().message());
  return ns;
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
      if (e.key.empty()) return malformed("ListObjectsV2", "<Contents> without a <Key>");
      const std::string size = node.get<std::string>("Size", "");
      Result<uint64_t> n = parse_object_size(size);
      if (!n.is_ok()) return malformed("ListObjectsV2", "Size of '" + e.key + "': " + n.status().message());
      e.size = *n;
      e.etag = strip_quotes(node.get<std::string>("ETag", ""));
      if (auto lm = node.get_optional<std::string>("LastModified")) {
        auto t = parse_iso8601(*lm);
        if (!t.is_ok()) return malformed("ListObjectsV2", "LastModified of '" + e.key + "': " + t.status().message());
        e.mtime_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t->time_since_epoch()).count();
      }
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
    return Status::IoError("CompleteMultipartUpload failed: " + e->get<std::string>("Code", "") + ": " +
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
    return Status::IoError("CopyObject failed: " + e->get<std::string>("Code", "") + ": " + e->get<std::string>("Message", ""));
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
  auto t = parse_iso8601(expiration);
  if (!t.is_ok()) return malformed("CreateSession", "Expiration: " + t.status().message());
  out.expiration = *t;
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
                                            const std::vector<std::string>& part_checksums,
                                            const std::string& algorithm) {
  const std::string element = "Checksum" + algorithm;
  std::string out = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
  for (size_t i = 0; i < part_etags.size(); ++i) {
    out += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>\"" + xml_escape(part_etags[i]) +
           "\"</ETag>";
    if (i < part_checksums.size() && !part_checksums[i].empty())
      out += "<" + element + ">" + xml_escape(part_checksums[i]) + "</" + element + ">";
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
