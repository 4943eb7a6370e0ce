// S3Client: the S3 / S3 Express One Zone operations over the pooled HTTP client.
//
//  - SigV4 header auth; for directory buckets a CreateSession token is fetched, cached per bucket,
//    renewed before it expires, and plain SigV4 is used when the server does not offer sessions.
//  - Large reads are split into ranged GETs fanned out over the pool straight into the caller's
//    buffer; large writes become parallel multipart parts; both retry transient failures with
//    exponential backoff and jitter.
//  - Integrity: uploads carry a CRC32C or CRC64NVME (s3.checksum_algorithm); objects of one part
//    written here carry a CRC32C of their content (x-amz-meta-stor-crc32c) checked on whole-object
//    reads. Multipart uploads are FULL_OBJECT uploads (the whole object's CRC, combined from the
//    parts', sent at completion), so servers that keep checksums (AWS) return one for streamed
//    objects too, checked the same way. MD5 ETags are checked only with s3.verify_md5.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/s3express/http_client.h"
#include "backends/s3express/s3_xml.h"
#include "backends/s3express/sigv4.h"
#include "backends/s3express/worker_pool.h"
#include "stor/status.h"

namespace stor::s3 {

enum class SessionMode { kAuto, kOn, kOff };

// The checksum uploads carry (s3.checksum_algorithm): x-amz-checksum-crc32c or
// x-amz-checksum-crc64nvme on each PutObject / UploadPart, and the whole object's value
// (FULL_OBJECT) at CompleteMultipartUpload.
enum class ChecksumAlgorithm { kNone, kCrc32c, kCrc64Nvme };

struct S3Config {
  std::string endpoint;  // "http://127.0.0.1:9000"; empty: https://s3.<region>.amazonaws.com
  std::string region = "us-east-1";
  Credentials credentials;
  bool path_style = true;  // bucket in the path (local servers); false: bucket.<host>
  unsigned max_connections = 16;
  // s3.target_gbps: the throughput to size the pool for, as aws-c-s3 does (a connection moves
  // ~0.4 Gbps from S3): max_connections = ceil(target / 0.4) unless s3.max_connections is set.
  double target_gbps = 0;  // 0: not set
  // s3.network_interfaces: local addresses (or interface names) new connections are bound to in
  // turn, to spread them over several NICs; empty: the kernel picks.
  std::vector<std::string> network_interfaces;
  uint64_t part_size = 8ull << 20;  // ranged-GET and multipart part size
  // Read-only opens GET the first this-many bytes instead of sending a HEAD: objects no larger
  // are then read from memory, one request in all. 0: HEAD at open, every read a GET.
  uint64_t small_object_size = 1ull << 20;
  unsigned max_attempts = 6;        // per request, including the first
  std::chrono::milliseconds retry_base{50};
  std::chrono::milliseconds retry_max{2000};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{60000};
  // Total time one request may take, all attempts and backoffs included. Requests carrying data
  // (a ranged GET, a PUT or UploadPart) get their size at min_transfer_rate on top: an 8 MiB part
  // at 1 MiB/s adds 8 s.
  std::chrono::milliseconds request_deadline{30000};
  uint64_t min_transfer_rate = 1ull << 20;  // bytes per second
  // Largest XML or error body accepted (ListObjectsV2 pages of 1000 long keys stay well below).
  uint64_t max_xml_body = 8ull << 20;
  SessionMode session = SessionMode::kAuto;
  std::chrono::seconds session_renew_margin{60};  // renew a session token this long before expiry
  bool verify_tls = true;
  std::string ca_file;
  // Upload integrity. CRC32C / CRC64NVME (checked by S3 and S3 Express) are hardware-fast;
  // Content-MD5 costs ~1.5 s of CPU per GiB but also lets us check servers that only return
  // MD5 ETags (the returned ETag is then compared with the MD5 we sent).
  ChecksumAlgorithm checksum = ChecksumAlgorithm::kCrc32c;
  bool content_md5 = false;
  // Reads check whole objects against a CRC: the one stor stores (x-amz-meta-stor-crc32c) or
  // the server's FULL_OBJECT CRC32C / CRC64NVME. verify_md5 adds MD5 ETags (plain, and
  // multipart ones with stor's part layout) for objects that have no CRC: ~1.5-2 CPU-s/GiB,
  // which aws-c-s3 does not spend either, hence off by default.
  bool verify_checksums = true;
  bool verify_md5 = false;
  // Files opened for writing hold at most this much of parts still being filled in memory (at
  // least one part); further parts being filled at once go to an unlinked file under tmp_dir.
  uint64_t write_buffer_memory = 32ull << 20;
  // Sequential readers of a read-only object get this many bytes fetched ahead (0: off).
  uint64_t readahead = 64ull << 20;
  std::string tmp_dir;  // empty: $TMPDIR or /tmp

  // Reads "s3.*" settings, falling back to AWS_* environment variables. `express` selects the
  // session default (auto for s3express://, off for s3://).
  static Result<S3Config> from_settings(const std::map<std::string, std::string>& settings, bool express);
};

struct ObjectInfo {
  uint64_t size = 0;
  std::string etag;  // without quotes
  int64_t mtime_ns = 0;
  std::map<std::string, std::string> metadata;  // x-amz-meta-* without the prefix
  // The server's own CRC32C / CRC64NVME of the object (x-amz-checksum-crc32c / -crc64nvme,
  // base64, asked for with x-amz-checksum-mode: ENABLED) and its x-amz-checksum-type; empty when
  // it keeps none.
  std::string checksum_crc32c, checksum_crc64nvme, checksum_type;
};

// A condition the server checks when it makes a write visible (PutObject, CompleteMultipartUpload),
// so two writers racing for one key cannot both win (a HEAD before the write could not promise
// that). A failed condition (HTTP 412 PreconditionFailed) becomes:
//  - if_none_match: AlreadyExists ("the object exists"): exclusive create lost;
//  - if_match: Aborted ("the object changed"): someone replaced the version we read; re-read and
//    decide again. A missing object under if_match is NotFound.
// Servers that ignore the headers (s3rver) make both no-ops.
struct WriteCondition {
  bool if_none_match = false;  // If-None-Match: *  (create only)
  std::string if_match;        // If-Match: "<etag>" (overwrite only this version), without quotes
  bool empty() const { return !if_none_match && if_match.empty(); }
};

struct S3Stats {
  uint64_t requests = 0;
  uint64_t retries = 0;
  uint64_t sessions_created = 0;
  uint64_t connections_opened = 0;
};

class S3Client {
 public:
  static Result<std::unique_ptr<S3Client>> create(S3Config config);
  ~S3Client();

  const S3Config& config() const noexcept { return config_; }

  Status create_bucket(const std::string& bucket);
  // Bucket change notifications (Ceph RGW's SNS-compatible topics): CreateTopic with an HTTP
  // push endpoint (returns the topic ARN), then the bucket's notification configuration sending
  // ObjectCreated:* and ObjectRemoved:* events for keys under `prefix` to that topic.
  Result<std::string> create_topic(const std::string& name, const std::string& push_endpoint);
  Status put_bucket_notification(const std::string& bucket, const std::string& id, const std::string& topic_arn,
                                 const std::string& prefix);
  Result<ObjectInfo> head_object(const std::string& bucket, const std::string& key);

  // One GET of [offset, offset+len) into dst; returns the bytes received (exactly len unless the
  // object ends first). etag, when non-empty, must still match (If-Match).
  Result<size_t> get_range(const std::string& bucket, const std::string& key, uint64_t offset, size_t len, char* dst,
                           const std::string& etag = {});
  // Reads [offset, offset+len) of an object described by `info` (from head_object): clipped to its
  // size, split into part_size ranged GETs run in parallel. A whole-object read is checksummed.
  Result<size_t> read_object(const std::string& bucket, const std::string& key, const ObjectInfo& info,
                             uint64_t offset, size_t len, char* dst);
  // One GET of [offset, offset+len) into dst (no HEAD first) that also describes the object: its
  // size (from Content-Range), ETag and metadata, as head_object would. `bytes` is what landed in
  // dst (fewer where the object ends; 0 past its end). When that is the whole object it is
  // checked against its checksum (Corruption). What opens of small objects and read_many use.
  struct Fetched {
    ObjectInfo info;
    size_t bytes = 0;
  };
  Result<Fetched> get_object_start(const std::string& bucket, const std::string& key, uint64_t offset, size_t len,
                                   char* dst);
  // Whole object into memory (HEAD + read_object).
  Result<std::string> get_object(const std::string& bucket, const std::string& key);

  // PutObject up to part_size, multipart above it. Stores the CRC32C as metadata.
  Result<std::string> put_object(const std::string& bucket, const std::string& key, const char* data, size_t len,
                                 const WriteCondition& cond = {});
  Result<std::string> put_object_single(const std::string& bucket, const std::string& key, const char* data,
                                        size_t len, const std::map<std::string, std::string>& metadata = {},
                                        const WriteCondition& cond = {});
  // Multipart upload with parts uploaded in parallel; aborts the upload if anything fails.
  Result<std::string> put_object_multipart(const std::string& bucket, const std::string& key, const char* data,
                                           size_t len, const std::map<std::string, std::string>& metadata = {},
                                           const WriteCondition& cond = {});

  Result<std::string> create_multipart_upload(const std::string& bucket, const std::string& key,
                                              const std::map<std::string, std::string>& metadata = {});
  struct UploadedPart {
    std::string etag;
    std::string checksum;  // base64 of the part's CRC (s3.checksum_algorithm), empty when off
    uint64_t size = 0;     // bytes in the part: completing a large object takes the server longer
    uint64_t crc = 0;      // checksum's value, for the whole-object checksum at completion
  };
  Result<UploadedPart> upload_part(const std::string& bucket, const std::string& key, const std::string& upload_id,
                                   int part_number, const char* data, size_t len);
  Result<std::string> complete_multipart_upload(const std::string& bucket, const std::string& key,
                                                const std::string& upload_id, const std::vector<UploadedPart>& parts,
                                                const WriteCondition& cond = {});
  Status abort_multipart_upload(const std::string& bucket, const std::string& key, const std::string& upload_id);

  Status delete_object(const std::string& bucket, const std::string& key);
  // Deletes up to 1000 keys per request; returns the keys the server refused.
  Result<std::vector<DeleteFailure>> delete_objects(const std::string& bucket, const std::vector<std::string>& keys);

  Result<ListPage> list_objects_v2(const std::string& bucket, const std::string& prefix, const std::string& delimiter,
                                   const std::string& continuation_token, unsigned max_keys = 1000);
  // Follows continuation tokens to the end; `pages` (optional) counts the requests.
  Result<ListPage> list_all(const std::string& bucket, const std::string& prefix, const std::string& delimiter,
                            unsigned page_size = 1000, unsigned* pages = nullptr);

  // S3 Express appendable objects: PutObject with x-amz-write-offset-bytes = the object's current
  // size adds `data` at its end (the server refuses a wrong offset, so concurrent appenders cannot
  // interleave silently). Only directory buckets support it: elsewhere Unsupported.
  Result<std::string> append_object(const std::string& bucket, const std::string& key, uint64_t offset,
                                    const char* data, size_t len);
  // S3 Express RenameObject (PUT /dst?renameObject, x-amz-rename-source: /bucket/src) within one
  // directory bucket; Unsupported for general purpose buckets. `cond.if_none_match` makes it fail
  // AlreadyExists instead of replacing an existing destination.
  Status rename_object(const std::string& bucket, const std::string& src_key, const std::string& dst_key,
                       const WriteCondition& cond = {});

  Result<std::string> copy_object(const std::string& src_bucket, const std::string& src_key,
                                  const std::string& dst_bucket, const std::string& dst_key);

  // "session" when requests to this bucket use a CreateSession token, else "sigv4". Resolves the
  // session (one CreateSession call) if that has not happened yet.
  std::string auth_mode(const std::string& bucket);
  S3Stats stats() const;
  WorkerPool& pool() noexcept { return *pool_; }

 private:
  struct Request {
    const char* op = "";  // "GetObject", for messages
    std::string method;
    std::string bucket;
    std::string key;
    HeaderList query;
    HeaderList headers;
    const char* body = nullptr;
    size_t body_len = 0;
    bool create_session = false;  // the CreateSession call itself: signed with the base keys
  };
  struct Session;
  using Deadline = std::chrono::steady_clock::time_point;
  static constexpr Deadline kNoDeadline = Deadline::max();  // "start one now" for send()

  explicit S3Client(S3Config config, Endpoint endpoint);
  HttpClient& http_for(const std::string& bucket);
  // Signs, sends and retries until config_.request_deadline (plus the data allowance) from now,
  // or `deadline` when given; non-2xx answers become Status with the S3 code and message.
  Result<HttpResponse> send(const Request& req, char* sink = nullptr, size_t sink_len = 0,
                            Deadline deadline = kNoDeadline);
  // work_bytes: data the server processes beyond the request body (the object it assembles or
  // copies); the deadline grows with it as with a data transfer.
  Result<HttpResponse> send_allowing_late_errors(const Request& req, uint64_t work_bytes);
  Result<HttpResponse> send_once(const Request& req, char* sink, size_t sink_len, Deadline deadline, bool* retryable);
  // The credentials for a bucket: a session's when one is in force, else the configured keys.
  Status credentials_for(const std::string& bucket, Credentials* creds, bool* is_session, Deadline deadline);
  void invalidate_session(const std::string& bucket);
  // GetObject of [offset, offset+len) (len > 0).
  static Request ranged_get(const std::string& bucket, const std::string& key, uint64_t offset, size_t len);
  // PutObject of data (PutObject proper and appends): body, Content-Type, the upload checksum.
  Request put_request(const std::string& bucket, const std::string& key, const char* data, size_t len) const;
  // *replaced: the answer and a HEAD disagreed (the object is being replaced): worth another try.
  Result<Fetched> get_object_start_once(const std::string& bucket, const std::string& key, uint64_t offset,
                                        size_t len, char* dst, bool* replaced);
  static Result<ObjectInfo> info_from_headers(const HttpResponse& resp, uint64_t size, const std::string& what);
  // Checks a whole object's bytes against its stored CRC32C, the server's full-object CRC32C or a
  // plain-MD5 ETag (whichever it has, in that order); s3.verify_checksums=false skips it.
  Status verify_whole(const std::string& bucket, const std::string& key, const ObjectInfo& info,
                      const char* data) const;
  // The deadline budget of a request moving `bytes` of data.
  std::chrono::milliseconds budget(uint64_t bytes) const;
  // Sleeps before retry number `attempt` + 1; false (without sleeping) when that would end past
  // the deadline.
  bool backoff(unsigned attempt, Deadline deadline);
  // "(gave up after 3 attempts in 2.0 s; deadline 2.0 s, s3.request_deadline_ms)"
  std::string gave_up(unsigned attempts, std::chrono::steady_clock::time_point start, Deadline deadline,
                      bool deadline_hit) const;

  S3Config config_;
  Endpoint endpoint_;
  std::unique_ptr<WorkerPool> pool_;
  std::mutex clients_mu_;
  std::unique_ptr<HttpClient> path_client_;
  std::map<std::string, std::unique_ptr<HttpClient>> vhost_clients_;
  std::mutex sessions_mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_;
  std::atomic<uint64_t> requests_{0}, retries_{0}, sessions_created_{0};
};

// True for S3 Express directory bucket names ("base--zone-id--x-s3").
bool is_directory_bucket(const std::string& bucket);

// base64 of a big-endian CRC of `a` (the form of x-amz-checksum-crc32c / -crc64nvme).
std::string checksum_base64(ChecksumAlgorithm a, uint64_t crc);
// True when a server checksum is the CRC of the object's bytes: FULL_OBJECT, or untyped and not
// a COMPOSITE "crc-N" (a CRC of the parts' CRCs).
bool is_full_object_checksum(const std::string& value, const std::string& type);

// Maps an HTTP status plus S3 error code to a stor code.
Code code_for_s3_error(int http_status, const std::string& s3_code);

}  // namespace stor::s3
