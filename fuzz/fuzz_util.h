// Helpers shared by the libFuzzer targets (see docs/testing.md).
#pragma once

#include <fuzzer/FuzzedDataProvider.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

namespace stor::fuzz {

// Aborts with a message: a property a target checks does not hold (libFuzzer saves the input).
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz property violated: %s\n", what.c_str());
  std::abort();
}
#define STOR_FUZZ_CHECK(cond, what) \
  do {                              \
    if (!(cond)) ::stor::fuzz::fail(std::string(#cond) + ": " + (what)); \
  } while (0)

// A private scratch directory, removed at exit. One per process: libFuzzer runs inputs one at a
// time, and parallel jobs are separate processes. On /dev/shm when there is one: the formats
// under test fsync on every open, which a disk turns into milliseconds per input.
// $STOR_FUZZ_TMPDIR overrides the location.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    std::string base = "/tmp";
    if (const char* t = std::getenv("STOR_FUZZ_TMPDIR"); t && *t) base = t;
    else if (::access("/dev/shm", W_OK) == 0) base = "/dev/shm";
    else if (const char* t2 = std::getenv("TMPDIR"); t2 && *t2) base = t2;
    auto* d = new std::string(base + "/stor-fuzz-XXXXXX");  // never destroyed: the atexit hook uses it
    if (!::mkdtemp(d->data())) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return *dir;
}

inline void write_file(const std::string& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz harness: cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace stor::fuzz
