// Writes the seed corpora of the fuzz targets into OUTDIR/<target>/ (fuzz/corpus in the
// repository): small valid inputs, taken from real outputs where stor writes the format itself
// (lustre WAL and checkpoint, tiering journal, transport frames). Built with STOR_FUZZ=ON:
//   build-fuzz/fuzz/fuzz_make_seeds fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/lustre/fs.h"
#include "backends/lustre/lustre_admin.h"
#include "backends/lustre/remote_mds.h"
#include "backends/lustre/wal.h"
#include "backends/tier/journal.h"
#include "net/object_protocol.h"
#include "net/wire.h"
#include "fuzz/fuzz_util.h"

namespace fsys = std::filesystem;
using stor::fuzz::fail;


namespace {

std::string out_root;

void seed(const std::string& target, const std::string& name, const std::string& bytes) {
  fsys::create_directories(out_root + "/" + target);
  stor::fuzz::write_file(out_root + "/" + target + "/" + name, bytes);
}
std::string sel(uint8_t b, const std::string& rest) { return std::string(1, static_cast<char>(b)) + rest; }
void check(const stor::Status& s, const char* what) {
  if (!s.is_ok()) fail(std::string(what) + ": " + s.to_string());
}

// ---- S3 XML and HTTP -------------------------------------------------------------------------

const char* kList =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix>dir/</Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><Delimiter>/</Delimiter>"
    "<IsTruncated>true</IsTruncated><NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<Contents><Key>dir/a.bin</Key><LastModified>2024-01-02T03:04:05.678Z</LastModified>"
    "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>1048576</Size><StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>dir/b &amp; c.txt</Key><LastModified>2023-12-31T23:59:59Z</LastModified><ETag>\"abc-2\"</ETag>"
    "<Size>0</Size></Contents><CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes></ListBucketResult>";
const char* kError =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not "
    "exist.</Message><Key>dir/key</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>";
const char* kInitiate =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>bucket</Bucket><Key>dir/key</Key>"
    "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId></InitiateMultipartUploadResult>";
const char* kComplete =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult><Location>http://x/bucket/dir/key</Location>"
    "<Bucket>bucket</Bucket><Key>dir/key</Key><ETag>\"3858f62230ac3c915f300c664312c11f-9\"</ETag></CompleteMultipartUploadResult>";
const char* kCompleteError =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal "
    "error. Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId></Error>";
const char* kCopy =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CopyObjectResult><LastModified>2024-01-02T03:04:05.000Z</LastModified>"
    "<ETag>\"9b2cf535f27731c974343645a3985328\"</ETag></CopyObjectResult>";
const char* kDelete =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult><Deleted><Key>a</Key></Deleted><Error><Key>b/c</Key>"
    "<Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>";
const char* kSession =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CreateSessionResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Credentials><SessionToken>TYPlZ8HIRBdJj3ZB</SessionToken><SecretAccessKey>wJalrXUtnFEMI/K7MDENG</SecretAccessKey>"
    "<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId><Expiration>2024-01-02T03:09:05Z</Expiration></Credentials>"
    "</CreateSessionResult>";

std::string http(const std::string& status_line, const std::string& headers, const std::string& body,
                 bool length = true) {
  std::string r = "HTTP/1.1 " + status_line + "\r\nx-amz-request-id: 4442587FB7D0A2F9\r\n" + headers;
  if (length) r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  return r + "\r\n" + body;
}

void s3_seeds() {
  seed("s3_xml", "error", sel(0, kError));
  seed("s3_xml", "list", sel(1, kList));
  seed("s3_xml", "initiate", sel(2, kInitiate));
  seed("s3_xml", "complete", sel(3, kComplete));
  seed("s3_xml", "complete_error", sel(3, kCompleteError));
  seed("s3_xml", "copy", sel(4, kCopy));
  seed("s3_xml", "delete", sel(5, kDelete));
  seed("s3_xml", "session", sel(6, kSession));
  seed("s3_xml", "iso8601", sel(7, "2024-01-02T03:04:05.678Z"));

  const std::string xml = "Content-Type: application/xml\r\n";
  seed("http", "head", sel(0, http("200 OK",
                                   "Last-Modified: Tue, 02 Jan 2024 03:04:05 GMT\r\nETag: \"9b2cf535f27731c974343645a3985328\"\r\n"
                                   "x-amz-meta-stor-crc32c: 1b2c3d4e\r\nx-amz-meta-owner: fuzz\r\nContent-Length: 1000\r\n",
                                   "", false)));
  seed("http", "head_404", sel(0, http("404 Not Found", "", "", false)));
  seed("http", "range_206", sel(0x81, http("206 Partial Content",
                                           "Content-Range: bytes 100-4195/1000000\r\nETag: \"etag\"\r\n",
                                           std::string(4096, 'd'))));
  seed("http", "get_200", sel(1, http("200 OK", "ETag: \"etag\"\r\n", std::string(300, 'd'))));
  seed("http", "get_chunked", sel(1, http("200 OK", "Transfer-Encoding: chunked\r\n",
                                          "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", false)));
  seed("http", "read_object", sel(2, http("200 OK", "ETag: \"5d41402abc4b2a76b9719d911017c592\"\r\n", "hello")));
  seed("http", "list", sel(3, http("200 OK", xml, kList)));
  seed("http", "nosuchkey", sel(3, http("404 Not Found", xml, kError)));
  seed("http", "slowdown", sel(9, http("503 Slow Down", xml + "x-amz-bucket-region: eu-west-1\r\n",
                                       "<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>")));
  seed("http", "initiate", sel(4, http("200 OK", xml, kInitiate)));
  seed("http", "upload_part", sel(5, http("200 OK", "ETag: \"c3fcd3d76192e4007dfb496cca67e13b\"\r\n"
                                                    "x-amz-checksum-crc32c: AAAAAA==\r\n", "")));
  seed("http", "complete", sel(6, http("200 OK", xml, kComplete)));
  seed("http", "complete_late_error", sel(6, http("200 OK", xml, kCompleteError)));
  seed("http", "delete_objects", sel(7, http("200 OK", xml, kDelete)));
  seed("http", "copy", sel(8, http("200 OK", xml, kCopy)));
  seed("http", "put", sel(9, http("200 OK", "ETag: \"etag\"\r\nConnection: close\r\n", "")));
  seed("http", "session", sel(10, http("200 OK", xml, kSession)));
  seed("http", "delete_204", sel(11, http("204 No Content", "", "", false)));
  seed("http", "http10", sel(12, "HTTP/1.0 200 OK\r\n\r\n"));
}

// ---- URIs ------------------------------------------------------------------------------------

void uri_seeds() {
  const char* uris[] = {"nvme:///data/x.bin", "/tmp/plain/path", "lustre:///mnt/fs/dir/file",
                        "s3express://bucket--usw2-az1--x-s3/prefix/key", "s3://bucket/key/", "tier:///linked/dir/file",
                        "mem://name/path", "a/b:c"};
  int i = 0;
  for (const char* u : uris) seed("uri", "uri" + std::to_string(i++), sel(0, u));
  seed("uri", "s3ep_v6", sel(1, "http://[::1]:9000"));
  seed("uri", "s3ep_https", sel(1, "https://s3.us-east-1.amazonaws.com/"));
  seed("uri", "s3ep_port", sel(1, "http://127.0.0.1:9000"));
  seed("uri", "s3_settings", sel(2, "endpoint=http://127.0.0.1:9000\nregion=us-west-2\npart_size=8M\n"
                                    "max_connections=16\naddressing=virtual\nsession=on\nverify_tls=false\n"));
  seed("uri", "tcp_ep", sel(3, "tcp://127.0.0.1:7000"));
  seed("uri", "verbs_ep", sel(3, "verbs://10.0.0.1:7000/"));
  seed("uri", "lustre_path", sel(4, "/mnt/fs//dir/./file"));
  seed("uri", "lustre_ids", sel(5, "1000\n100,27"));
}

// ---- transport -------------------------------------------------------------------------------

std::string frame(uint16_t op, uint16_t flags, uint64_t id, uint32_t status, const std::string& control,
                  const std::string& payload, uint64_t reply_capacity) {
  using namespace stor::transport;
  FrameHeader h;
  h.opcode = op;
  h.flags = flags;
  h.request_id = id;
  h.status = status;
  h.control_len = static_cast<uint32_t>(control.size());
  h.payload_len = payload.size();
  h.reply_capacity = reply_capacity;
  auto b = encode_frame_header(h);
  return std::string(reinterpret_cast<const char*>(b.data()), b.size()) + control + payload;
}

void transport_seeds() {
  using namespace stor::transport;
  auto call = [](ObjectOp, std::string name, uint64_t off, uint64_t len, uint32_t flags = 0) {
    return encode_object_call(ObjectCall{std::move(name), off, len, flags});
  };
  const std::string data(512, 'o');
  seed("transport", "decode_call", sel(0, frame(1, 0, 1, 0, call(ObjectOp::kRead, "ab/1.0.0", 0, 4096), "", 4096).substr(0, 48) +
                                              call(ObjectOp::kRead, "ab/1.0.0", 0, 4096)));
  std::string entries;
  for (const char* n : {"00/1.0.0", "01/1.0.1"}) {
    std::string e;
    put_u16(e, static_cast<uint16_t>(std::strlen(n)));
    e += n;
    put_u64(e, 65536);
    entries += e;
  }
  seed("transport", "decode_list", sel(0, frame(7, 1, 3, 0, "", entries, 0).substr(0, 48) + entries));
  seed("transport", "decode_stat", sel(0, frame(5, 1, 2, 0, encode_object_info({4096, 1700000000000000000}), "", 0)));

  // Server side: a session of requests as RemoteObjectTarget sends them (checksums real; with
  // and without the fix-up bit).
  std::string session = frame(2, 0, 1, 0, call(ObjectOp::kWrite, "ab/1.0.0", 0, data.size()), data, 0) +
                        frame(1, 0, 2, 0, call(ObjectOp::kRead, "ab/1.0.0", 0, 4096), "", 4096) +
                        frame(5, 0, 3, 0, call(ObjectOp::kStat, "ab/1.0.0", 0, 0), "", 0) +
                        frame(3, 0, 4, 0, call(ObjectOp::kSync, "ab/1.0.0", 0, 0, kSyncDataOnly), "", 0) +
                        frame(4, 0, 5, 0, call(ObjectOp::kTruncate, "ab/1.0.0", 0, 100), "", 0) +
                        frame(7, 0, 6, 0, call(ObjectOp::kList, "", 0, 0), "", 4096) +
                        frame(6, 0, 7, 0, call(ObjectOp::kRemove, "ab/1.0.0", 0, 0), "", 0);
  seed("transport", "server_session", sel(1, session));
  seed("transport", "server_session_fixup_uring", sel(1 | 4 | 8, session));
  seed("transport", "server_bad_name", sel(1, frame(1, 0, 1, 0, call(ObjectOp::kRead, "../etc/passwd", 0, 10), "", 10)));
  seed("transport", "server_unknown_op", sel(5, frame(99, 0, 1, 0, call(ObjectOp::kRead, "x", 0, 0), "", 0)));

  // Client side: replies to the first call of a fresh channel (request id 1); byte 1 is the op.
  auto client = [&](const std::string& name, ObjectOp op, const std::string& reply) {
    seed("transport", name, sel(2, std::string(1, static_cast<char>(static_cast<uint16_t>(op) - 1)) + reply));
  };
  client("client_read", ObjectOp::kRead, frame(1, kFrameReply, 1, 0, "", data, 0));
  client("client_stat", ObjectOp::kStat, frame(5, kFrameReply, 1, 0, encode_object_info({4096, 1700000000000000000}), "", 0));
  client("client_list", ObjectOp::kList, frame(7, kFrameReply, 1, 0, "", entries, 0));
  client("client_error", ObjectOp::kWrite,
         frame(2, kFrameReply, 1, static_cast<uint32_t>(stor::Code::kNotFound), "open object 'ab/1.0.0': No such file", "", 0));
  client("client_reject", ObjectOp::kSync,
         frame(0, kFrameReply, 0, static_cast<uint32_t>(stor::Code::kCorruption), "transport: bad frame", "", 0));
}

// ---- lustre ----------------------------------------------------------------------------------

// `u16 length | payload` per WAL frame: the lustre_mount target's framed-records mode.
std::string wal_to_records(const std::string& wal) {
  std::string out;
  size_t at = 0;
  while (wal.size() - at >= 8) {
    uint32_t len = stor::transport::get_u32(wal.data() + at);
    if (len == 0 || len > wal.size() - at - 8 || len > 0xffff) break;
    out.push_back(static_cast<char>(len & 0xff));
    out.push_back(static_cast<char>(len >> 8));
    out += wal.substr(at + 8, len);
    at += 8 + len;
  }
  return out;
}

void lustre_seeds(const std::string& scratch) {
  using namespace stor::lustre;
  const std::string root = scratch + "/fs";
  MkfsOptions o;
  o.targets = 4;
  check(mkfs(root, o), "mkfs");
  pb::Checkpoint made;
  if (!made.ParseFromString(stor::fuzz::read_file(root + "/mdt/checkpoint"))) fail("mkfs checkpoint");
  const std::string wal_path = root + "/mdt/wal." + std::to_string(made.wal_generation());
  std::string wal;
  {
    auto fs = FileSystem::mount(root).value();
    Mds& m = fs->mds();
    const Identity id{0, {0}};
    check(m.mkdir(id, "/dir", 0755), "mkdir");
    check(m.set_layout(id, "/dir", to_layout({StripeSpec{2, 1 << 20, -1, 4 << 20}, StripeSpec{-1, 4 << 20, -1, kEof}})),
          "set_layout dir");
    auto f = m.open_file(id, "/dir/file", stor::kOpenWrite | stor::kOpenCreate, 0644).value();
    check(m.extend_size(*f.inode, 5 << 20), "extend_size");
    m.close_file(f.inode);
    auto g = m.open_file(id, "/empty", stor::kOpenWrite | stor::kOpenCreate, 0600).value();
    m.close_file(g.inode);
    check(m.set_layout(id, "/empty", make_layout(1, 65536, 3)), "set_layout file");
    check(m.chmod(id, "/dir/file", 0640), "chmod");
    check(m.chown(id, "/empty", 1000, 1000), "chown");
    check(m.mkdir(id, "/dir/sub", 0700), "mkdir sub");
    check(m.rename(id, "/empty", "/dir/sub/moved"), "rename");
    auto h = m.open_file(id, "/gone", stor::kOpenWrite | stor::kOpenCreate, 0644).value();
    m.close_file(h.inode);
    check(m.remove(id, "/gone"), "remove");
    wal = stor::fuzz::read_file(wal_path);  // every record is in the file once its call returned
  }
  const std::string checkpoint = stor::fuzz::read_file(root + "/mdt/checkpoint");  // written by the clean unmount
  if (wal.empty() || checkpoint.empty()) fail("no WAL or checkpoint to seed from");
  seed("lustre_mount", "wal_raw", sel(0, wal));
  seed("lustre_mount", "wal_raw_clean_nowalk", sel(4 | 8, wal));
  seed("lustre_mount", "wal_records", sel(2, wal_to_records(wal)));
  seed("lustre_mount", "checkpoint", sel(1, checkpoint));
  seed("lustre_mount", "checkpoint_clean", sel(1 | 4, checkpoint));

  // Layouts: header (u8 targets, u8 hint, u64 offset, u32 length, then a short size string
  // consumed by FuzzedDataProvider) and the serialized template.
  auto layout_seed = [&](const std::string& name, const pb::Layout& l, uint64_t offset, uint32_t len) {
    // FuzzedDataProvider takes integers from the end of the data and strings from the front.
    std::string tail;
    // (the byte nearest the end is the most significant).
    for (int i = 0; i < 4; ++i) tail.push_back(static_cast<char>(len >> (8 * i)));
    for (int i = 0; i < 8; ++i) tail.push_back(static_cast<char>(offset >> (8 * i)));
    tail.push_back(1);  // hint
    tail.push_back(7);  // targets: 1 + 7 % 64 = 8
    std::string front = "4M" "\\" "x";
    std::string body = l.SerializeAsString();
    seed("layout", name, front + body + tail);
  };
  layout_seed("plain", make_layout(4, 1 << 20), 3 << 20, 5 << 20);
  layout_seed("all", make_layout(-1, 65536, 2), 12345, 1 << 20);
  layout_seed("pfl", to_layout({StripeSpec{1, 65536, -1, 1 << 20}, StripeSpec{4, 1 << 20, 0, 64 << 20},
                                StripeSpec{-1, 4 << 20, -1, kEof}}),
              (1 << 20) - 100, 4 << 20);
  layout_seed("resolved", resolve_layout(make_layout(3, 1 << 20), 8, 6), 0, 10 << 20);
}

// ---- tiering journal -------------------------------------------------------------------------

void journal_seeds(const std::string& scratch) {
  using namespace stor::tiering::internal;
  const std::string dir = scratch + "/tier";
  std::map<std::string, Record> records;
  {
    auto j = Journal::open(dir, &records).value();
    Record r;
    r.path = "/data/a.bin";
    r.residency = stor::tiering::Residency::kCached;
    r.size = 1 << 20;
    r.mtime_ns = 1700000000123456789;
    r.cold_etag = "9b2cf535f27731c974343645a3985328";
    r.cold_mtime_ns = 1700000000000000000;
    r.last_access_ns = 1700000100000000000;
    r.reads = 3;
    check(j->put(r, false), "put");
    r.path = "/data/odd\tname%\n.txt";
    r.residency = stor::tiering::Residency::kDirty;
    check(j->put(r, true), "put");
    records[r.path] = r;
    check(j->compact(&records), "compact");  // checkpoint now holds both
    r.path = "/data/c";
    r.residency = stor::tiering::Residency::kDemoted;
    check(j->put(r, false), "put");
    check(j->erase("/data/a.bin", false), "erase");
  }
  const std::string cp = stor::fuzz::read_file(dir + "/checkpoint"), journal = stor::fuzz::read_file(dir + "/journal");
  seed("tiering_journal", "raw", sel(0, cp + "\n--\n" + journal));
  seed("tiering_journal", "raw_journal_only", sel(0, journal));
  // Framed mode: the same lines without their CRCs (the harness computes them).
  auto strip = [](const std::string& text) {
    std::string out;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
      if (line.size() > 9) out += line.substr(9) + "\n";
      at = nl == std::string::npos ? text.size() : nl + 1;
    }
    if (!out.empty()) out.pop_back();
    return out;
  };
  seed("tiering_journal", "framed", sel(1, strip(cp) + "\n--\n" + strip(journal)));
}

// ---- stor-mds requests ------------------------------------------------------------------------

// Records `u16 length | encoded pb::MdsRequest`, as mds_request_fuzz.cc reads them.
void mds_seeds() {
  using namespace stor::lustre;
  uint64_t xid = 0;
  auto req = [&xid](pb::MdsRequest::Op op, std::string path, uint32_t uid = 1000) {
    pb::MdsRequest r;
    r.set_op(op);
    r.set_client_id(0x1234);
    r.set_xid(++xid);
    r.set_min_inflight_xid(xid);
    r.set_uid(uid);
    r.add_gids(uid);
    r.set_path(std::move(path));
    return r;
  };
  auto records = [](const std::vector<pb::MdsRequest>& reqs) {
    std::string out;
    for (const auto& r : reqs) {
      const std::string b = r.SerializeAsString();
      out.push_back(static_cast<char>(b.size() & 0xff));
      out.push_back(static_cast<char>(b.size() >> 8));
      out += b;
    }
    return out;
  };
  pb::Layout layout;
  auto* c = layout.add_components();
  c->set_extent_start(0);
  c->set_extent_end(UINT64_MAX);
  c->set_stripe_count(2);
  c->set_stripe_size(1 << 20);
  c->set_stripe_offset(-1);

  std::vector<pb::MdsRequest> session;
  session.push_back(req(pb::MdsRequest::GET_CONFIG, ""));
  session.push_back(req(pb::MdsRequest::MKDIR, "/a", 0));
  session.back().set_mode(0777);
  session.push_back(req(pb::MdsRequest::SET_LAYOUT, "/a"));
  *session.back().mutable_layout() = layout;
  session.push_back(req(pb::MdsRequest::OPEN, "/a/f"));
  session.back().set_flags(stor::kOpenWrite | stor::kOpenCreate);
  session.back().set_mode(0644);
  session.push_back(req(pb::MdsRequest::STAT, "/a/f"));
  session.push_back(req(pb::MdsRequest::READDIR, "/a"));
  session.push_back(req(pb::MdsRequest::GET_LAYOUT, "/a/f"));
  session.push_back(req(pb::MdsRequest::RENAME, "/a/f"));
  session.back().set_new_path("/a/g");
  session.push_back(req(pb::MdsRequest::CHMOD, "/a/g"));
  session.back().set_mode(0600);
  session.push_back(req(pb::MdsRequest::CHOWN, "/a/g", 0));
  session.back().set_owner_uid(1001);
  session.back().set_owner_gid(UINT32_MAX);
  session.push_back(session[1]);  // a resend: answered from the reply cache
  session.push_back(req(pb::MdsRequest::STATFS, ""));
  session.push_back(req(pb::MdsRequest::REMOVE, "/a/g"));
  session.push_back(req(pb::MdsRequest::READDIR, "/"));
  session.back().set_after("a");
  // Without root squash (bit 1), so root's mkdir of /a (0777) lets uid 1000 work in it.
  seed("mds_request", "session", sel(2, records(session)));
  seed("mds_request", "session_tcp", sel(2 | 8, records(session)));
  seed("mds_request", "session_small_replies", sel(2 | 4, records(session)));
  seed("mds_request", "session_squashed", sel(0, records(session)));

  auto open = req(pb::MdsRequest::OPEN, "/f", 0);
  open.set_flags(stor::kOpenRead | stor::kOpenWrite | stor::kOpenCreate | stor::kOpenTruncate);
  open.set_mode(0644);
  *open.mutable_layout() = layout;
  auto close = req(pb::MdsRequest::CLOSE, "", 0);
  close.set_handle(1);
  close.set_ino(2);
  close.set_has_size(true);
  close.set_size(4096);
  auto merge = close;
  merge.set_op(pb::MdsRequest::MERGE_SIZE);
  auto truncate = close;
  truncate.set_op(pb::MdsRequest::SET_SIZE);
  seed("mds_request", "handles", sel(2, records({open, merge, truncate, close})));

  // Structured mode: the bytes only steer the request builder.
  std::mt19937 gen(14);
  for (int i = 0; i < 4; ++i) {
    std::string b(512, '\0');
    for (auto& ch : b) ch = static_cast<char>(gen());
    seed("mds_request", "structured" + std::to_string(i), sel(static_cast<uint8_t>(1 | (i << 1)), b));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTDIR\n", argv[0]);
    return 2;
  }
  out_root = argv[1];
  const std::string scratch = stor::fuzz::scratch_dir();
  s3_seeds();
  uri_seeds();
  transport_seeds();
  lustre_seeds(scratch);
  journal_seeds(scratch);
  mds_seeds();
  std::printf("seeds written to %s\n", out_root.c_str());
  return 0;
}
