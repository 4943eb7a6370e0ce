#include "backends/s3express/crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <array>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace stor::s3 {

std::string to_hex(const void* data, size_t len) {
  static const char kDigits[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out(len * 2, '0');
  for (size_t i = 0; i < len; ++i) {
    out[2 * i] = kDigits[p[i] >> 4];
    out[2 * i + 1] = kDigits[p[i] & 15];
  }
  return out;
}

std::string base64_encode(const void* data, size_t len) {
  std::string out(4 * ((len + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), static_cast<const unsigned char*>(data),
                          static_cast<int>(len));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string sha256(std::string_view data) {
  std::string out(SHA256_DIGEST_LENGTH, '\0');
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string sha256_hex(std::string_view data) {
  std::string raw = sha256(data);
  return to_hex(raw.data(), raw.size());
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &mac_len);
  return std::string(reinterpret_cast<char*>(mac), mac_len);
}

std::string md5(const void* data, size_t len) {
  std::string out(16, '\0');
  unsigned int out_len = 0;
  EVP_Digest(data, len, reinterpret_cast<unsigned char*>(out.data()), &out_len, EVP_md5(), nullptr);
  out.resize(out_len);
  return out;
}

Md5::Md5() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_md5(), nullptr); }

Md5::~Md5() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Md5::update(const void* data, size_t len) { EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, len); }

std::string Md5::finish() {
  std::string out(16, '\0');
  unsigned int out_len = 0;
  EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), reinterpret_cast<unsigned char*>(out.data()), &out_len);
  out.resize(out_len);
  EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_md5(), nullptr);
  return out;
}

namespace {

// Slicing-by-8 tables for the portable path.
struct Crc32cTables {
  uint32_t t[8][256];
  Crc32cTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint32_t crc32c_portable(uint32_t crc, const unsigned char* p, size_t len) {
  static const Crc32cTables tables;
  const auto& t = tables.t;
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    v ^= crc;
    crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
          t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
    p += 8;
    len -= 8;
  }
  while (len--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t crc, const unsigned char* p, size_t len) {
  uint64_t c = crc;
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (len--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

// Multiplies the 32x32 GF(2) matrix `mat` (one column per word) by `vec`.
uint32_t gf2_times(const uint32_t* mat, uint32_t vec);

// The crc32 instruction has a latency of 3 cycles and a throughput of 1: one chain of it runs at a
// third of its speed. Three chains over three adjacent 8 KiB blocks, joined by shifting the first
// two registers over the bytes after them (fixed 32x32 GF(2) operators, from crc32c_combine with
// an empty B), run ~3x faster on large buffers (uploads checksum every part).
constexpr size_t kCrcLane = 8192;
struct Crc32cLaneShifts {
  uint32_t one[32], two[32];  // the register moved over kCrcLane and 2 * kCrcLane zero bytes
  Crc32cLaneShifts() {
    for (int k = 0; k < 32; ++k) {
      one[k] = crc32c_combine(1u << k, 0, kCrcLane);
      two[k] = crc32c_combine(1u << k, 0, 2 * kCrcLane);
    }
  }
};

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42_3way(uint32_t crc, const unsigned char* p, size_t len) {
  static const Crc32cLaneShifts shifts;
  while (len >= 3 * kCrcLane) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (size_t i = 0; i < kCrcLane; i += 8) {
      uint64_t v0, v1, v2;
      std::memcpy(&v0, p + i, 8);
      std::memcpy(&v1, p + kCrcLane + i, 8);
      std::memcpy(&v2, p + 2 * kCrcLane + i, 8);
      c0 = __builtin_ia32_crc32di(c0, v0);
      c1 = __builtin_ia32_crc32di(c1, v1);
      c2 = __builtin_ia32_crc32di(c2, v2);
    }
    crc = gf2_times(shifts.two, static_cast<uint32_t>(c0)) ^ gf2_times(shifts.one, static_cast<uint32_t>(c1)) ^
          static_cast<uint32_t>(c2);
    p += 3 * kCrcLane;
    len -= 3 * kCrcLane;
  }
  return crc32c_sse42(crc, p, len);
}
#endif

}  // namespace

uint32_t crc32c(uint32_t crc, const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  static const bool have_sse42 = __builtin_cpu_supports("sse4.2");
  if (have_sse42) return ~crc32c_sse42_3way(crc, p, len);
#endif
  return ~crc32c_portable(crc, p, len);
}

namespace {

// Multiplies the 32x32 GF(2) matrix `mat` (one column per word) by `vec`.
uint32_t gf2_times(const uint32_t* mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, ++mat)
    if (vec & 1) sum ^= *mat;
  return sum;
}

void gf2_square(uint32_t* square, const uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = gf2_times(mat, mat[n]);
}

}  // namespace

uint32_t crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  if (len_b == 0) return crc_a;
  // Appending len_b zero bytes to A is a linear map on its CRC: apply the operator for one zero
  // bit, squared repeatedly (1, 2, 4, ... bytes), for the bits set in len_b. The pre/post
  // inversions cancel out, as in zlib.
  uint32_t even[32], odd[32];
  odd[0] = 0x82F63B78u;  // reflected Castagnoli polynomial
  for (int n = 1; n < 32; ++n) odd[n] = 1u << (n - 1);
  gf2_square(even, odd);  // two zero bits
  gf2_square(odd, even);  // four zero bits
  for (;;) {
    gf2_square(even, odd);  // first pass: one zero byte
    if (len_b & 1) crc_a = gf2_times(even, crc_a);
    len_b >>= 1;
    if (len_b == 0) break;
    gf2_square(odd, even);
    if (len_b & 1) crc_a = gf2_times(odd, crc_a);
    len_b >>= 1;
    if (len_b == 0) break;
  }
  return crc_a ^ crc_b;
}

// ---- CRC-64/NVME ----

namespace {

constexpr uint64_t kCrc64Poly = 0xAD93D23594C93659ull;  // normal form; reflected 0x9A6C9329AC4BC9B5

uint64_t reflect64(uint64_t v) {
  uint64_t r = 0;
  for (int i = 0; i < 64; ++i, v >>= 1) r = (r << 1) | (v & 1);
  return r;
}

// a * b mod P for polynomials in normal form (bit j: x^j, degree < 64).
uint64_t gf2_mulmod64(uint64_t a, uint64_t b) {
  uint64_t r = 0;
  for (int i = 63; i >= 0; --i) {
    r = (r << 1) ^ ((r >> 63) ? kCrc64Poly : 0);
    if ((b >> i) & 1) r ^= a;
  }
  return r;
}

// x^n mod P, normal form.
uint64_t xpow_mod64(uint64_t n) {
  uint64_t result = 1, base = 2;  // x^0, x^1
  for (; n; n >>= 1) {
    if (n & 1) result = gf2_mulmod64(result, base);
    base = gf2_mulmod64(base, base);
  }
  return result;
}

struct Crc64Tables {
  uint64_t t[8][256];
  // Folding constants (reflected): x^191 mod P and x^127 mod P. A 128-bit block L·x^64 + H
  // followed by 128 more bits N is congruent to L·(x^192 mod P) + H·(x^128 mod P) + N; a
  // reflected carry-less product carries one extra factor x, hence 191 and 127.
  uint64_t k191 = 0, k127 = 0;
  Crc64Tables() {
    const uint64_t poly = reflect64(kCrc64Poly);
    for (uint64_t i = 0; i < 256; ++i) {
      uint64_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
      t[0][i] = c;
    }
    for (int i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    k191 = reflect64(xpow_mod64(191));
    k127 = reflect64(xpow_mod64(127));
  }
};

const Crc64Tables& crc64_tables() {
  static const Crc64Tables tables;
  return tables;
}

// The reflected register r after 8 more bytes of value v (little-endian).
inline uint64_t crc64_word(const Crc64Tables& tb, uint64_t r, uint64_t v) {
  const auto& t = tb.t;
  v ^= r;
  return t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
         t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
}

uint64_t crc64_portable(const Crc64Tables& tb, uint64_t r, const unsigned char* p, size_t len) {
  while (len >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    r = crc64_word(tb, r, v);
    p += 8;
    len -= 8;
  }
  while (len--) r = (r >> 8) ^ tb.t[0][(r ^ *p++) & 0xff];
  return r;
}

#if defined(__x86_64__)
// x · x^W + n for a 128-bit x = (lo: L, hi: H) and k = (lo: x^(W+63), hi: x^(W-1)) mod P (reflected):
// clmul(L, k.lo) ^ clmul(H, k.hi) ^ n.
__attribute__((target("pclmul,sse4.1"))) inline __m128i crc64_fold(__m128i x, __m128i k, __m128i n) {
  return _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k, 0x00), _mm_clmulepi64_si128(x, k, 0x11)), n);
}

// Folds 16 bytes at a time with carry-less multiplies (four independent lanes of 64 bytes for
// throughput), then reduces the 128-bit remainder with the tables.
__attribute__((target("pclmul,sse4.1"))) uint64_t crc64_clmul(const Crc64Tables& tb, uint64_t r,
                                                              const unsigned char* p, size_t len) {
  if (len < 64) return crc64_portable(tb, r, p, len);
  const __m128i k1 = _mm_set_epi64x(static_cast<long long>(tb.k127), static_cast<long long>(tb.k191));
  auto load = [](const unsigned char* q) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)); };
  const auto fold = crc64_fold;
  __m128i x0 = _mm_xor_si128(load(p), _mm_cvtsi64_si128(static_cast<long long>(r)));
  if (len >= 128) {
    // Four lanes 64 bytes apart: each folds over 512 bits (x^575, x^511 mod P).
    static const uint64_t k575 = reflect64(xpow_mod64(575)), k511 = reflect64(xpow_mod64(511));
    const __m128i k4 = _mm_set_epi64x(static_cast<long long>(k511), static_cast<long long>(k575));
    __m128i x1 = load(p + 16), x2 = load(p + 32), x3 = load(p + 48);
    p += 64;
    len -= 64;
    while (len >= 64) {
      x0 = fold(x0, k4, load(p));
      x1 = fold(x1, k4, load(p + 16));
      x2 = fold(x2, k4, load(p + 32));
      x3 = fold(x3, k4, load(p + 48));
      p += 64;
      len -= 64;
    }
    x0 = fold(x0, k1, x1);
    x0 = fold(x0, k1, x2);
    x0 = fold(x0, k1, x3);
  } else {
    p += 16;
    len -= 16;
  }
  while (len >= 16) {
    x0 = fold(x0, k1, load(p));
    p += 16;
    len -= 16;
  }
  // Remainder A = L·x^64 + H; the register is A·x^64 mod P = L·x^128 + H·x^64 mod P:
  // T = clmul(L, k127) ^ H·x^64, then T mod P = (T.lo · x^64 mod P) ^ T.hi.
  const __m128i t = _mm_xor_si128(_mm_clmulepi64_si128(x0, k1, 0x10),
                                  _mm_srli_si128(x0, 8));  // hi word H moved to the low half
  const uint64_t lo = static_cast<uint64_t>(_mm_cvtsi128_si64(t));
  const uint64_t hi = static_cast<uint64_t>(_mm_extract_epi64(t, 1));
  r = crc64_word(tb, 0, lo) ^ hi;
  return crc64_portable(tb, r, p, len);
}
#endif

}  // namespace

uint64_t crc64nvme(uint64_t crc, const void* data, size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  const Crc64Tables& tb = crc64_tables();
#if defined(__x86_64__)
  static const bool have_clmul = __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("sse4.1");
  if (have_clmul) return ~crc64_clmul(tb, ~crc, p, len);
#endif
  return ~crc64_portable(tb, ~crc, p, len);
}

uint64_t crc64nvme_combine(uint64_t crc_a, uint64_t crc_b, uint64_t len_b) {
  if (len_b == 0) return crc_a;
  // A followed by len_b zero bytes multiplies A's register by x^(8·len_b) mod P; the pre/post
  // inversions cancel as for CRC32C.
  const uint64_t shift = xpow_mod64(8 * len_b);
  return reflect64(gf2_mulmod64(reflect64(crc_a), shift)) ^ crc_b;
}

}  // namespace stor::s3
