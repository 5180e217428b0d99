// End-to-end test of //examples/echo:echo_server: runs the real binary and
// talks to it over sockets as a client would.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"

extern char** environ;

namespace {

using mill::net_testing::Pattern;
using mill::net_testing::RunEchoSwarm;
using mill::net_testing::TestClient;

std::string BinaryPath() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir != nullptr ? srcdir : ".",
                      "/mill_io/examples/echo/echo_server");
}

// Reads from `fd` until `until` appears, EOF or the deadline.
std::string ReadUntil(int fd, absl::string_view until, absl::Duration timeout) {
  std::string out;
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (!absl::StrContains(out, until) && absl::Now() < deadline) {
    pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, 50) <= 0) continue;
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// One echo_server child process.
class ServerProcess {
 public:
  // Starts the binary with `args`; captures stdout (and stderr if asked).
  bool Start(const std::vector<std::string>& args,
             bool capture_stderr = false) {
    int out[2], err[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0) return false;
    if (capture_stderr && pipe2(err, O_CLOEXEC) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    if (capture_stderr) posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    const std::string path = BinaryPath();
    std::vector<std::string> all = {path};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, path.c_str(), &actions, nullptr,
                               argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (capture_stderr) close(err[1]);
    stdout_ = out[0];
    stderr_ = err[0];
    if (rc != 0) {
      pid_ = -1;
      ADD_FAILURE() << "posix_spawn(" << path << "): " << rc;
      return false;
    }
    return true;
  }

  // Waits for "listening on 127.0.0.1:PORT" and returns PORT (0 on failure).
  uint16_t WaitForPort() {
    const std::string prefix = "listening on 127.0.0.1:";
    const std::string out = ReadUntil(stdout_, "\n", absl::Seconds(20));
    if (out.rfind(prefix, 0) != 0 || out.back() != '\n') {
      ADD_FAILURE() << "unexpected first line: '" << out << "'";
      return 0;
    }
    uint32_t port = 0;
    if (!absl::SimpleAtoi(absl::string_view(out).substr(
                              prefix.size(), out.size() - prefix.size() - 1),
                          &port)) {
      ADD_FAILURE() << "bad port in '" << out << "'";
    }
    return static_cast<uint16_t>(port);
  }

  // Sends `signo` (if > 0) and waits for the exit status (nullopt: still
  // running after the timeout; it is then killed).
  std::optional<int> Stop(int signo,
                          absl::Duration timeout = absl::Seconds(20)) {
    if (pid_ < 0) return std::nullopt;
    if (signo > 0) kill(pid_, signo);
    const absl::Time deadline = absl::Now() + timeout;
    int status = 0;
    while (absl::Now() < deadline) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return std::nullopt;
  }

  std::string Stderr() { return ReadUntil(stderr_, "\n", absl::Seconds(10)); }

  ~ServerProcess() {
    if (pid_ > 0) Stop(SIGKILL);
    if (stdout_ >= 0) close(stdout_);
    if (stderr_ >= 0) close(stderr_);
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
  int stderr_ = -1;
};

class EchoServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(
        {"--port=0", "--workers=2", absl::StrCat("--mode=", GetParam())}));
    port_ = server_.WaitForPort();
    ASSERT_NE(port_, 0);
  }

  void TearDown() override {
    std::optional<int> status = server_.Stop(SIGTERM);
    ASSERT_TRUE(status.has_value()) << "did not exit after SIGTERM";
    EXPECT_TRUE(WIFEXITED(*status)) << *status;
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }

  ServerProcess server_;
  uint16_t port_ = 0;
};

INSTANTIATE_TEST_SUITE_P(Modes, EchoServerTest,
                         ::testing::Values("pool", "direct"),
                         [](const auto& info) { return info.param; });

TEST_P(EchoServerTest, EchoesPatternedData) {
  absl::StatusOr<TestClient> client = TestClient::Connect(port_);
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string data = Pattern(42, 1 << 20);
  std::thread writer([&] { ASSERT_TRUE(client->SendAll(data).ok()); });
  const std::string got = client->RecvExactly(data.size());
  writer.join();
  ASSERT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);
  // Half-close: the rest comes back, then EOF.
  ASSERT_TRUE(client->SendAll("tail").ok());
  client->ShutdownWrite();
  EXPECT_EQ(client->RecvUntilEof(), "tail");
}

TEST_P(EchoServerTest, ManyConcurrentConnectionsEveryByteChecked) {
  mill::net_testing::EchoSwarmResult r =
      RunEchoSwarm(port_, 256, 32 * 1024, absl::Seconds(50));
  EXPECT_EQ(r.completed, 256u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u) << r.first_error;
  EXPECT_EQ(r.failed, 0u) << r.first_error;
  EXPECT_FALSE(r.timed_out);
}

TEST_P(EchoServerTest, AbruptClientsDoNotDisturbOthers) {
  mill::net_testing::EchoSwarmResult r;
  std::thread swarm([&] {
    r = RunEchoSwarm(port_, 64, 256 * 1024, absl::Seconds(50), 1000);
  });
  for (int i = 0; i < 60; ++i) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port_);
    ASSERT_TRUE(c.ok()) << c.status();
    switch (i % 4) {
      case 0:  // reset mid-stream, with unread echo pending
        ASSERT_TRUE(c->SendAll(Pattern(i, 100000)).ok());
        c->Reset();
        break;
      case 1:  // connect and vanish
        c->Close();
        break;
      case 2:  // garbage then half-close, never reading
        ASSERT_TRUE(c->SendAll("\xff\x00garbage\r\n\r\n").ok());
        c->ShutdownWrite();
        c->Reset();
        break;
      case 3:  // reset right away
        c->Reset();
        break;
    }
  }
  swarm.join();
  EXPECT_EQ(r.completed, 64u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u) << r.first_error;
  EXPECT_EQ(r.failed, 0u) << r.first_error;
  // Still serving.
  absl::StatusOr<TestClient> c = TestClient::Connect(port_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->SendAll("alive").ok());
  EXPECT_EQ(c->RecvExactly(5), "alive");
}

class EchoServerSignalTest
    : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

INSTANTIATE_TEST_SUITE_P(ModesAndSignals, EchoServerSignalTest,
                         ::testing::Combine(::testing::Values("pool", "direct"),
                                            ::testing::Values(SIGTERM, SIGINT)),
                         [](const auto& info) {
                           return absl::StrCat(
                               std::get<0>(info.param),
                               std::get<1>(info.param) == SIGTERM ? "_SIGTERM"
                                                                  : "_SIGINT");
                         });

TEST_P(EchoServerSignalTest, ExitsZeroWithOpenConnections) {
  ServerProcess server;
  ASSERT_TRUE(server.Start(
      {"--port=0", absl::StrCat("--mode=", std::get<0>(GetParam()))}));
  const uint16_t port = server.WaitForPort();
  ASSERT_NE(port, 0);
  std::vector<TestClient> clients;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port);
    ASSERT_TRUE(c.ok());
    ASSERT_TRUE(c->SendAll("hi").ok());
    ASSERT_EQ(c->RecvExactly(2), "hi");
    clients.push_back(std::move(*c));
  }
  std::optional<int> status = server.Stop(std::get<1>(GetParam()));
  ASSERT_TRUE(status.has_value()) << "did not exit";
  ASSERT_TRUE(WIFEXITED(*status)) << "status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  // Connections were closed by the shutdown.
  for (TestClient& c : clients) EXPECT_TRUE(c.WaitClosed(absl::Seconds(5)));
}

TEST(EchoServerFlagsTest, BadFlagsExitNonZeroWithAMessage) {
  const std::vector<std::vector<std::string>> bad = {
      {"--mode=bogus"}, {"--port=70000"},   {"--port=abc"},
      {"--workers=0"},  {"--no_such_flag"}, {"extra_argument"}};
  for (const auto& args : bad) {
    ServerProcess server;
    ASSERT_TRUE(server.Start(args, /*capture_stderr=*/true));
    const std::string err = server.Stderr();
    std::optional<int> status = server.Stop(0);
    ASSERT_TRUE(status.has_value()) << args[0];
    ASSERT_TRUE(WIFEXITED(*status)) << args[0];
    EXPECT_NE(WEXITSTATUS(*status), 0) << args[0];
    EXPECT_FALSE(err.empty()) << args[0];
  }
}

}  // namespace
