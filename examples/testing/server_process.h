// The fixture of the example servers' integration tests (echo, http, jsonrpc,
// proxy): start a server binary and wait for the port it announces, expect a
// clean exit on a signal, run a client command (curl, wrk) to completion,
// check that bad flags are refused, and the "pool"/"direct" x SIGTERM/SIGINT
// parameters of the signal suites. Test-only; failures are gtest assertions of
// the calling test.
#ifndef MILL_IO_EXAMPLES_TESTING_SERVER_PROCESS_H_
#define MILL_IO_EXAMPLES_TESTING_SERVER_PROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"

namespace mill {
namespace testing {

// A started server and the port it announced.
struct ServerProcess {
  std::unique_ptr<Subprocess> process;  // null if it could not be started
  int port = 0;                         // 0 if it announced none in time
};

// Starts `argv` and waits (20 s) for its "listening on 127.0.0.1:PORT" line.
// A failure of the test if it cannot be started or announces no port.
ServerProcess StartAndWaitForPort(std::vector<std::string> argv);

// Starts the binary at runfiles path `binary` (workspace-relative, e.g.
// "examples/http/http_server") with "--port=0" and `flags`, and waits for
// its port as StartAndWaitForPort does.
ServerProcess StartServer(const std::string& binary,
                          const std::vector<std::string>& flags);

// While it lives, processes started get ASAN_OPTIONS with
// quarantine_size_mb=0: ASan keeps freed memory in a quarantine (up to
// 256 MB), which would count as resident in a test that measures a server's
// memory. Restores ASAN_OPTIONS as it was.
class ScopedNoAsanQuarantine {
 public:
  ScopedNoAsanQuarantine();
  ~ScopedNoAsanQuarantine();
  ScopedNoAsanQuarantine(const ScopedNoAsanQuarantine&) = delete;
  ScopedNoAsanQuarantine& operator=(const ScopedNoAsanQuarantine&) = delete;

 private:
  std::optional<std::string> saved_;
};

// StartServer for a test that measures the server's peak memory
// (PeakResidentBytes): the server runs without ASan's quarantine.
ServerProcess StartServerForMemoryTest(const std::string& binary,
                                       const std::vector<std::string>& flags);

// Sends `signo`, waits up to 30 s, and expects an exit with status 0.
void ExpectCleanExit(Subprocess& process, int signo = SIGTERM);

// Runs `argv` to completion and returns (wait status, stdout); the wait
// status is -1 if it could not be started or did not exit. `timeout` is how
// long its stdout may stay silent before it is given up on.
std::pair<int, std::string> RunCommand(
    std::vector<std::string> argv,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// Runs wrk against `url` for a second with two threads and `connections`
// connections, and expects it to succeed with no socket errors, no non-2xx
// responses, and more than `min_requests` requests done.
void ExpectCleanWrkRun(
    const std::string& url, int connections, uint64_t min_requests,
    std::chrono::milliseconds timeout = std::chrono::seconds(60));

// The files the tests serve, and the ones curl wrote.
void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

// Runs the binary at runfiles path `binary` with each of `bad` (sets of bad
// flags) and expects it to exit non-zero within 20 s with a message on
// stderr and nothing on stdout.
void ExpectFlagsRefused(const std::string& binary,
                        const std::vector<std::vector<std::string>>& bad);

// Bad flags and a part of the stderr line they must produce.
struct RefusedFlags {
  std::vector<std::string> flags;
  std::string reason;
};
// As ExpectFlagsRefused (each started with --port=0 first, so one wrongly
// accepted binds no fixed port), and more precisely: exit status 2, and the
// stderr line is "<program>: ..." (the binary's base name) containing
// `reason`.
void ExpectFlagsRefusedWithReason(const std::string& binary,
                                  const std::vector<RefusedFlags>& cases);

// The dispatch modes every example server has, for a suite parameterised by
// mode: INSTANTIATE_TEST_SUITE_P(Modes, Suite, Modes(), ModeName).
::testing::internal::ParamGenerator<std::string> Modes();
std::string ModeName(const ::testing::TestParamInfo<std::string>& info);

// Base fixture of a suite parameterised by Modes(): StartInMode() runs the
// server in the test's mode, and TearDown expects it to exit cleanly on
// SIGTERM.
class ServerModeTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Starts `binary` with --mode=<the test's mode> and `flags`; a fatal
  // failure if it announces no port.
  void StartInMode(const std::string& binary,
                   const std::vector<std::string>& flags);
  void TearDown() override;

  ServerProcess server_;
};

// Prints the peak memory of process `pid`, `before` and now, and expects it
// to have grown by less than `limit` bytes.
void ExpectPeakGrewLessThan(pid_t pid, size_t before, size_t limit);

// (mode, signal) for the signal suites: every mode with SIGTERM and SIGINT,
// named "pool_SIGTERM" and so on:
//   INSTANTIATE_TEST_SUITE_P(ModesAndSignals, Suite, ModesAndSignals(),
//                            ModeAndSignalName);
using ModeAndSignal = std::tuple<std::string, int>;
::testing::internal::ParamGenerator<ModeAndSignal> ModesAndSignals();
std::string ModeAndSignalName(
    const ::testing::TestParamInfo<ModeAndSignal>& info);

// Base fixture of the signal suites (ModesAndSignals()).
class ServerSignalTest : public ::testing::TestWithParam<ModeAndSignal> {
 protected:
  // The signal suites' test: starts `binary` in the test's mode, opens
  // `count` connections as `Client`s (Client::Connect(port)) and lets
  // `use(i, client)` do something on each, sends the test's signal and
  // expects a clean exit, then `closed(client)` of every client.
  template <typename Client, typename Use, typename Closed>
  void ExpectCleanExitWithOpenClients(const std::string& binary, int count,
                                      Use use, Closed closed) {
    ServerProcess server =
        StartServer(binary, {"--mode=" + std::get<0>(GetParam())});
    ASSERT_NE(server.port, 0);
    std::vector<Client> clients;
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<Client> c = Client::Connect(server.port);
      ASSERT_TRUE(c.ok()) << c.status();
      ASSERT_NO_FATAL_FAILURE(use(i, *c));
      clients.push_back(std::move(*c));
    }
    ExpectCleanExit(*server.process, std::get<1>(GetParam()));
    for (Client& c : clients) EXPECT_TRUE(closed(c));
  }
};

}  // namespace testing
}  // namespace mill

#endif  // MILL_IO_EXAMPLES_TESTING_SERVER_PROCESS_H_
