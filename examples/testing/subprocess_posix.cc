// Subprocess on POSIX: fork/exec with pipes, kill(), waitpid(), /proc.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/errno_status.h"
#include "examples/testing/subprocess.h"

namespace mill {
namespace testing {

std::optional<int> ExitCode(int status) {
  if (!WIFEXITED(status)) return std::nullopt;
  return WEXITSTATUS(status);
}

void SetEnvVar(const std::string& name,
               const std::optional<std::string>& value) {
  if (value.has_value()) {
    setenv(name.c_str(), value->c_str(), 1);
  } else {
    unsetenv(name.c_str());
  }
}

size_t PeakResidentBytes(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      return std::strtoull(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return 0;
}

void WaitUntilIdle(pid_t pid) {
  const auto cpu_ticks = [pid]() -> unsigned long long {
    std::ifstream f(absl::StrCat("/proc/", pid, "/stat"));
    std::string stat((std::istreambuf_iterator<char>(f)),
                     std::istreambuf_iterator<char>());
    // Fields after the command, which is in parentheses: state is field 3,
    // utime 14 and stime 15.
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return 0;
    std::vector<std::string> fields =
        absl::StrSplit(stat.substr(paren + 2), ' ');
    if (fields.size() < 13) return 0;
    return std::strtoull(fields[11].c_str(), nullptr, 10) +
           std::strtoull(fields[12].c_str(), nullptr, 10);
  };
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(30);
  unsigned long long last = cpu_ticks();
  int quiet = 0;
  while (quiet < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const unsigned long long now = cpu_ticks();
    quiet = now == last ? quiet + 1 : 0;
    last = now;
  }
}

absl::StatusOr<Subprocess> Subprocess::Start(std::vector<std::string> argv) {
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    return mill::ErrnoStatus(errno, "pipe2");
  }
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return mill::ErrnoStatus(errno, "fork");
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    // The test may have blocked or ignored signals; the child starts clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  return Subprocess(pid, 0, out[0], err[0]);
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_.fd() >= 0) close(out_.fd());
  if (err_.fd() >= 0) close(err_.fd());
}

bool Subprocess::Signal(int signo) { return kill(pid_, signo) == 0; }

std::optional<int> Subprocess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) {
      reaped_ = true;
      return status;
    }
    if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace testing
}  // namespace mill
