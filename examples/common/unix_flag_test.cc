// Black-box test of the example servers' --unix flag (echo_server,
// jsonrpc_server): each runs as a real process, listens on a Unix socket
// path or abstract name, announces "listening on unix:PATH", serves a client
// there, refuses a path too long and a live server's socket, and exits 0 on
// SIGTERM. Both dispatch modes.
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"
#include "net/testing/unix_fixture.h"

namespace mill::testing {
namespace {

struct Program {
  const char* binary;
  // A request and a part of its reply.
  const char* request;
  const char* reply_contains;
};

constexpr Program kEcho = {"examples/echo/echo_server", "over unix\n",
                           "over unix"};
constexpr Program kJsonRpc = {
    "examples/jsonrpc/jsonrpc_server",
    R"({"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1})"
    "\n",
    R"("result":19)"};

// gtest prints a parameter with this rather than as bytes.
void PrintTo(const Program& program, std::ostream* os) {
  *os << program.binary;
}

// Reads one '\n'-terminated reply from blocking `fd` (10 s timeouts set).
std::string ReadLine(int fd) {
  std::string line;
  char c;
  while (::recv(fd, &c, 1, 0) == 1) {
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

class UnixFlagTest
    : public ::testing::TestWithParam<std::tuple<Program, std::string>> {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mill_unixflag_XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  const Program& program() const { return std::get<0>(GetParam()); }

  // Starts the program on --unix=`where`; the announced line, or nullopt.
  std::optional<std::string> Start(const std::string& where) {
    absl::StatusOr<Subprocess> p =
        Subprocess::Start({RunfilePath(program().binary), "--unix=" + where,
                           "--mode=" + std::get<1>(GetParam()), "--workers=2"});
    if (!p.ok()) {
      ADD_FAILURE() << p.status();
      return std::nullopt;
    }
    process_.emplace(std::move(*p));
    return process_->ReadStdoutLine(std::chrono::seconds(20));
  }

  // One request and its reply over a fresh connection to `address`.
  void ExpectServes(const SocketAddress& address) {
    const int fd = net_testing::ConnectUnixBlocking(address);
    ASSERT_GE(fd, 0);
    const std::string request = program().request;
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(request.size()));
    const std::string reply = ReadLine(fd);
    ::close(fd);
    EXPECT_TRUE(absl::StrContains(reply, program().reply_contains)) << reply;
  }

  std::string dir_;
  std::optional<Subprocess> process_;
};

INSTANTIATE_TEST_SUITE_P(
    ProgramsAndModes, UnixFlagTest,
    ::testing::Combine(::testing::Values(kEcho, kJsonRpc),
                       ::testing::Values("pool", "direct")),
    [](const ::testing::TestParamInfo<std::tuple<Program, std::string>>& i) {
      return absl::StrCat(absl::StrContains(std::get<0>(i.param).binary, "echo")
                              ? "Echo"
                              : "JsonRpc",
                          std::get<1>(i.param) == "pool" ? "Pool" : "Direct");
    });

TEST_P(UnixFlagTest, ListensOnAPathAndExitsCleanly) {
  const std::string path = dir_ + "/server.sock";
  std::optional<std::string> line = Start(path);
  ASSERT_TRUE(line.has_value()) << "no announcement";
  EXPECT_EQ(*line, "listening on unix:" + path);
  ExpectServes(*SocketAddress::Unix(path));
  ExpectServes(*SocketAddress::Unix(path));  // a second connection too
  ExpectCleanExit(*process_, SIGTERM);
}

TEST_P(UnixFlagTest, ListensOnAnAbstractName) {
  const std::string name =
      // Random too: parallel tests share the namespace, maybe the pid.
      absl::StrCat("mill_flag_", ::getpid(), "_", std::random_device()(), "_",
                   std::get<1>(GetParam()));
  std::optional<std::string> line = Start("@" + name);
  ASSERT_TRUE(line.has_value()) << "no announcement";
  EXPECT_EQ(*line, "listening on unix:@" + name);
  ExpectServes(*SocketAddress::AbstractUnix(name));
  ExpectCleanExit(*process_, SIGTERM);
}

TEST_P(UnixFlagTest, RefusesATooLongPathAndALiveServersSocket) {
  const std::string path = dir_ + "/live.sock";
  std::optional<std::string> line = Start(path);
  ASSERT_TRUE(line.has_value()) << "no announcement";
  ExpectFlagsRefusedWithReason(
      program().binary, {{{"--unix=/" + std::string(200, 'x')}, "--unix: "},
                         {{"--unix=" + path}, "not taken over"}});
  ExpectServes(*SocketAddress::Unix(path));  // the first one still serves
  ExpectCleanExit(*process_, SIGTERM);
}

}  // namespace
}  // namespace mill::testing
