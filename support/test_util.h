// Helpers shared by the test suites and the benches (stor_test_support).
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace stor::test {

// A fresh directory under $TMPDIR (or /tmp), removed when the object dies.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/stor-test-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    path_ = ::mkdtemp(buf.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes: the same seed always gives the same data.
inline std::vector<char> pattern(size_t n, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<char> v(n);
  for (size_t i = 0; i < n; i += 8) {
    uint64_t x = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j) v[i + j] = static_cast<char>(x >> (8 * j));
  }
  return v;
}

// What a shell command printed (stdout, plus stderr where the command line redirects it) and its
// exit status: -1 when a signal killed it (the command is exec'd, so the signal is not turned
// into the shell's exit status), -2 when it could not be started.
struct CommandRun {
  int exit_code;
  std::string out;
};

inline CommandRun run_command(const std::string& command_line) {
  FILE* p = ::popen(("exec " + command_line).c_str(), "r");
  if (!p) return {-2, "popen failed: " + command_line};
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace stor::test
