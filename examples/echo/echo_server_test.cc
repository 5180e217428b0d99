// End-to-end test of //examples/echo:echo_server: runs the real binary and
// talks to it over sockets as a client would.
#include <signal.h>

#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "examples/testing/server_process.h"
#include "gtest/gtest.h"
#include "net/testing/echo_clients.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

using mill::net_testing::Pattern;
using mill::net_testing::RunEchoSwarm;
using mill::net_testing::TestClient;

constexpr char kServer[] = "examples/echo/echo_server";

class EchoServerTest : public ServerModeTest {
 protected:
  void SetUp() override { StartInMode(kServer, {"--workers=2"}); }
};

INSTANTIATE_TEST_SUITE_P(Modes, EchoServerTest, Modes(), ModeName);

TEST_P(EchoServerTest, EchoesPatternedData) {
  absl::StatusOr<TestClient> client = TestClient::Connect(server_.port);
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
      RunEchoSwarm(server_.port, 256, 32 * 1024, absl::Seconds(50));
  EXPECT_EQ(r.completed, 256u) << r.first_error;
  EXPECT_EQ(r.mismatches, 0u) << r.first_error;
  EXPECT_EQ(r.failed, 0u) << r.first_error;
  EXPECT_FALSE(r.timed_out);
}

TEST_P(EchoServerTest, AbruptClientsDoNotDisturbOthers) {
  mill::net_testing::EchoSwarmResult r;
  std::thread swarm([&] {
    r = RunEchoSwarm(server_.port, 64, 256 * 1024, absl::Seconds(50), 1000);
  });
  for (int i = 0; i < 60; ++i) {
    absl::StatusOr<TestClient> c = TestClient::Connect(server_.port);
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
  absl::StatusOr<TestClient> c = TestClient::Connect(server_.port);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(c->SendAll("alive").ok());
  EXPECT_EQ(c->RecvExactly(5), "alive");
}

using EchoServerSignalTest = ServerSignalTest;

INSTANTIATE_TEST_SUITE_P(ModesAndSignals, EchoServerSignalTest,
                         ModesAndSignals(), ModeAndSignalName);

TEST_P(EchoServerSignalTest, ExitsZeroWithOpenConnections) {
  // Connections were closed by the shutdown.
  ExpectCleanExitWithOpenClients<TestClient>(
      kServer, 10,
      [](int, TestClient& c) {
        ASSERT_TRUE(c.SendAll("hi").ok());
        ASSERT_EQ(c.RecvExactly(2), "hi");
      },
      [](TestClient& c) { return c.WaitClosed(absl::Seconds(5)); });
}

TEST(EchoServerFlagsTest, BadFlagsExitNonZeroWithAMessage) {
  const std::vector<std::vector<std::string>> bad = {
      {"--mode=bogus"},   {"--port=70000"},   {"--port=abc"}, {"--workers=0"},
      {"--no_such_flag"}, {"extra_argument"}, {"--io=kqueue"}};
  ExpectFlagsRefused(kServer, bad);
}

#ifdef __linux__
// --io: the engine the server says it polls with, and that it serves.
// MILL_IO_URING_SETUP_ERROR=1 makes ring setup fail with EPERM, as
// Docker's default seccomp profile or kernel.io_uring_disabled=2 would.
struct IoCase {
  const char* flag;
  const char* refuse;  // MILL_IO_URING_SETUP_ERROR, or nullptr
  std::vector<std::string> stderr_lines;  // in order, each a prefix
};

class EchoServerIoTest : public ::testing::TestWithParam<IoCase> {};

TEST_P(EchoServerIoTest, PollsWithTheEngineAskedForAndServes) {
  const IoCase& c = GetParam();
  SetEnvVar("MILL_IO_URING_SETUP_ERROR",
            c.refuse ? std::optional<std::string>(c.refuse) : std::nullopt);
  ServerProcess server =
      StartServer(kServer, {"--io=" + std::string(c.flag), "--workers=2"});
  SetEnvVar("MILL_IO_URING_SETUP_ERROR", std::nullopt);
  ASSERT_NE(server.port, 0);
  for (const std::string& want : c.stderr_lines) {
    std::optional<std::string> line =
        server.process->ReadStderrLine(std::chrono::seconds(10));
    ASSERT_TRUE(line.has_value()) << "expected: " << want;
    EXPECT_EQ(line->rfind(want, 0), 0u) << *line;
  }
  absl::StatusOr<TestClient> client = TestClient::Connect(server.port);
  ASSERT_TRUE(client.ok()) << client.status();
  const std::string data = Pattern(7, 256 * 1024);
  std::thread writer([&] { ASSERT_TRUE(client->SendAll(data).ok()); });
  EXPECT_TRUE(client->RecvExactly(data.size()) == data);
  writer.join();
  ExpectCleanExit(*server.process, SIGTERM);
}

INSTANTIATE_TEST_SUITE_P(
    Engines, EchoServerIoTest,
    ::testing::Values(
        IoCase{"epoll", nullptr, {"echo_server: polling with epoll"}},
        IoCase{"uring", nullptr, {"echo_server: polling with io_uring"}},
        IoCase{"auto", nullptr, {"echo_server: polling with io_uring"}},
        IoCase{"auto",
               "1",
               {"mill-io: io_uring unavailable (PERMISSION_DENIED: "
                "io_uring_setup",
                "echo_server: polling with epoll (io_uring was refused)"}}),
    [](const ::testing::TestParamInfo<IoCase>& info) {
      return std::string(info.param.flag) +
             (info.param.refuse ? "_Refused" : "");
    });

// --io=uring where io_uring is refused: a clear error, exit code 2.
TEST(EchoServerIoFlagTest, UringRefusedIsAClearError) {
  SetEnvVar("MILL_IO_URING_SETUP_ERROR", "1");
  absl::StatusOr<Subprocess> process =
      Subprocess::Start({RunfilePath(kServer), "--port=0", "--io=uring"});
  SetEnvVar("MILL_IO_URING_SETUP_ERROR", std::nullopt);
  ASSERT_TRUE(process.ok()) << process.status();
  std::optional<std::string> line =
      process->ReadStderrLine(std::chrono::seconds(10));
  ASSERT_TRUE(line.has_value());
  EXPECT_NE(line->find("io_uring cannot be used here"), std::string::npos)
      << *line;
  std::optional<int> status = process->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(ExitCode(*status), 2);
}
#endif  // __linux__

}  // namespace
}  // namespace mill::testing
