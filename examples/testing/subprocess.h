// Subprocess: starts an example binary for an integration test and talks to
// it the way a user's shell would: arguments, stdout/stderr lines, signals,
// exit status. Test-only.
//
// Per platform: subprocess_posix.cc (fork/exec, kill, waitpid, /proc) and
// subprocess_win.cc (CreateProcessW with pipes; see Signal() for how a
// server is asked to stop without signals). On Windows `argv[0]` may name a
// program without its ".exe" (a runfiles path such as
// ".../examples/echo/echo_server", where the CMake build keeps a shell
// wrapper for Linux-side callers beside echo_server.exe): the ".exe" is
// started.
//
// Thread-safety: thread-compatible. Ownership: owns the child process; the
// destructor kills (SIGKILL; Windows: TerminateProcess) and reaps it if it
// is still running.
#ifndef MILL_IO_EXAMPLES_TESTING_SUBPROCESS_H_
#define MILL_IO_EXAMPLES_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/testing/line_reader.h"

namespace mill {
namespace testing {

// Path of a binary in the test's runfiles, e.g. "examples/echo/echo_server".
std::string RunfilePath(const std::string& workspace_relative);

// The exit code in wait status `status` (Subprocess::Wait), or nullopt if the
// process did not exit by itself (POSIX: killed by a signal). On Windows
// the wait status is the exit code.
std::optional<int> ExitCode(int status);

// Sets (or with nullopt removes) environment variable `name` of this
// process, which children started from then on inherit.
void SetEnvVar(const std::string& name,
               const std::optional<std::string>& value);

// Peak resident memory (VmHWM) of process `pid`, in bytes; 0 if unknown.
size_t PeakResidentBytes(pid_t pid);

// Waits (up to 30 s) until process `pid` has used no CPU for 300 ms: the
// server has done all it could with the input it got.
void WaitUntilIdle(pid_t pid);

class Subprocess {
 public:
  // Starts `argv[0]` with `argv`; stdout and stderr are captured.
  static absl::StatusOr<Subprocess> Start(std::vector<std::string> argv);

  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) = delete;
  Subprocess(const Subprocess&) = delete;
  ~Subprocess();

  // Next complete stdout (or stderr) line without the newline, or nullopt on
  // timeout or end of stream.
  std::optional<std::string> ReadStdoutLine(std::chrono::milliseconds timeout);
  std::optional<std::string> ReadStderrLine(std::chrono::milliseconds timeout);

  // Reads stdout lines until one starts with "listening on 127.0.0.1:" and
  // returns the port, or 0 on timeout.
  int WaitForListeningPort(
      std::chrono::milliseconds timeout = std::chrono::seconds(20));

  // Sends `signo`. On Windows, which has no signals (and console control
  // events need a console that headless tests and services lack), SIGINT
  // and SIGTERM set the child's stop event "Local\mill-io-stop-<pid>",
  // which the example servers watch (examples/common/stop_requests.h) and
  // treat as SIGTERM; 9 (SIGKILL) terminates the process (TerminateProcess,
  // exit code 137); anything else fails.
  bool Signal(int signo);
  // Waits for exit; returns the wait status, or nullopt on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }

 private:
  Subprocess(pid_t pid, intptr_t handle, int out_fd, int err_fd)
      : pid_(pid),
        handle_(handle),
        out_(out_fd, LineReader::Source::kPipe),
        err_(err_fd, LineReader::Source::kPipe) {}

  pid_t pid_ = -1;
  intptr_t handle_ = 0;   // Windows: the process HANDLE; unused on POSIX
  LineReader out_, err_;  // owned: closed by the destructor
  bool reaped_ = false;
};

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_SUBPROCESS_H_
