// Hashes and encodings the S3 client needs: SHA-256 / HMAC-SHA256 for SigV4, MD5 for Content-MD5 and
// ETag checks, CRC32C and CRC-64/NVME for whole-object integrity, hex and base64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace stor::s3 {

std::string to_hex(const void* data, size_t len);
std::string base64_encode(const void* data, size_t len);

// Raw 32-byte digest / MAC.
std::string sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
std::string hmac_sha256(std::string_view key, std::string_view data);
// Raw 16-byte digest.
std::string md5(const void* data, size_t len);

// Incremental MD5 (for checking ETags of objects read a piece at a time).
class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;
  void update(const void* data, size_t len);
  std::string finish();  // raw 16-byte digest; the object restarts empty

 private:
  void* ctx_;  // EVP_MD_CTX
};

// CRC32C (Castagnoli). `crc` is the value of the preceding bytes (0 to start).
uint32_t crc32c(uint32_t crc, const void* data, size_t len);
// CRC32C of A followed by B from crc32c(A), crc32c(B) and B's length (zlib's crc32_combine for the
// Castagnoli polynomial): the whole-object CRC of a multipart upload from its parts' CRCs.
uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

// CRC-64/NVME (reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones; "123456789" ->
// 0xAE8B14860A799888), S3's x-amz-checksum-crc64nvme. Carry-less multiply folding where the CPU
// has PCLMULQDQ, slicing-by-8 tables elsewhere. `crc` is the value of the preceding bytes.
uint64_t crc64nvme(uint64_t crc, const void* data, size_t len);
// CRC-64/NVME of A followed by B from crc64nvme(A), crc64nvme(B) and B's length.
uint64_t crc64nvme_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b);

}  // namespace stor::s3
