// A stor-target (or stor-mds) child process for tests and benchmarks: fork/exec, read the bound
// endpoint from its first stdout line, SIGTERM (clean stop) or SIGKILL (crash) it.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace stor::test {

class TargetProcess {
 public:
  // Starts `binary --listen listen --dir dir extra...`; throws when it does not print its
  // endpoint within 10 s. max_files > 0: the child's RLIMIT_NOFILE, soft and hard (the io_uring
  // engine raises a soft limit below the hard one). Without --key-file in extra the target is
  // started with --insecure-no-auth (stor-target refuses to start with neither): the suites that
  // are not about authentication talk to it without a key.
  // stderr_file: where the child's stderr (its log) goes; empty: inherited.
  TargetProcess(const std::string& binary, const std::string& listen, const std::string& dir,
                std::vector<std::string> extra = {}, rlim_t max_files = 0, const std::string& stderr_file = {}) {
    std::vector<std::string> args = {binary, "--listen", listen, "--dir", dir};
    args.insert(args.end(), extra.begin(), extra.end());
    bool keyed = false;
    for (const auto& a : extra) keyed = keyed || a == "--key-file" || a == "--insecure-no-auth";
    if (!keyed) args.push_back("--insecure-no-auth");
    start(std::move(args), max_files, stderr_file);
  }
  // Any daemon that prints its endpoint first: args[0] is the binary (e.g. stor-mds --root ...).
  struct Args {
    std::vector<std::string> argv;
  };
  explicit TargetProcess(Args args, const std::string& stderr_file = {}) {
    start(std::move(args.argv), 0, stderr_file);
  }
  ~TargetProcess() {
    if (pid_ > 0) kill(SIGKILL);
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }
  TargetProcess(const TargetProcess&) = delete;
  TargetProcess& operator=(const TargetProcess&) = delete;

  const std::string& endpoint() const { return endpoint_; }
  pid_t pid() const { return pid_; }

  // Sends sig and reaps the child; returns its wait status, or -1 if already reaped.
  int kill(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  // True (and reaped) when the process has ended on its own, e.g. by fault injection.
  bool exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    return true;
  }
  // True when it exited 0 after SIGTERM.
  bool stop_cleanly() {
    int st = kill(SIGTERM);
    return st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }

 private:
  void start(std::vector<std::string> args, rlim_t max_files, const std::string& stderr_file) {
    std::vector<char*> argv;  // built before fork: no allocation in the child
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      if (max_files > 0) {
        rlimit l{max_files, max_files};
        if (::setrlimit(RLIMIT_NOFILE, &l) != 0) ::_exit(126);
      }
      if (!stderr_file.empty()) {
        int e = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (e < 0 || ::dup2(e, STDERR_FILENO) < 0) ::_exit(125);
      }
      ::dup2(out[1], STDOUT_FILENO);
      ::close(out[0]);
      ::close(out[1]);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(out[1]);
    pid_ = pid;
    stdout_fd_ = out[0];
    endpoint_ = read_line(std::chrono::seconds(10));
    if (endpoint_.empty()) {
      kill(SIGKILL);
      throw std::runtime_error(args[0] + " did not print its endpoint");
    }
  }

  std::string read_line(std::chrono::milliseconds limit) {
    std::string line;
    auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char c;
      ssize_t n = ::read(stdout_fd_, &c, 1);
      if (n <= 0) return {};
      if (c == '\n') return line;
      line += c;
    }
    return {};
  }

  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string endpoint_;
};

}  // namespace stor::test
