// Keeps the comparison harness from rotting: runs the peer servers and
// echo_load as subprocesses, as bench/run_all.py does, and checks what they
// print and how they exit. Also checks that echo_load's verification can
// fail (against a deliberately corrupting echo server) and that it reports
// a connection failure.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/peers/hello_response.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace mill {
namespace bench {
namespace {

using ::testing::HasSubstr;

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" +
         (workspace ? workspace : "mill_io") + "/" + path;
}

// A child process with its stdout on a pipe.
class Child {
 public:
  explicit Child(std::vector<std::string> args) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ) !=
        0) {
      pid_ = -1;
    }
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    out_fd_ = fds[0];
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }

  bool started() const { return pid_ > 0; }

  // Reads stdout until a full line arrives or `timeout` passes; returns the
  // line without its newline ("" on timeout or EOF).
  std::string ReadLine(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const size_t newline = out_.find('\n');
      if (newline != std::string::npos) {
        std::string line = out_.substr(0, newline);
        out_.erase(0, newline + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd pfd{out_fd_, POLLIN, 0};
      if (left.count() <= 0 ||
          poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
        return "";
      }
      char buf[4096];
      const ssize_t n = read(out_fd_, buf, sizeof(buf));
      if (n <= 0) return "";
      out_.append(buf, static_cast<size_t>(n));
    }
  }

  void Signal(int signo) { kill(pid_, signo); }

  // Waits for the exit; returns the exit status, or 128 + signal.
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string out_;
};

// Starts a peer server and returns the port it announced (0 on failure).
int StartServer(Child& server) {
  const std::string line = server.ReadLine(std::chrono::seconds(30));
  const std::string prefix = "listening on 127.0.0.1:";
  if (line.compare(0, prefix.size(), prefix) != 0) {
    ADD_FAILURE() << "unexpected announcement: '" << line << "'";
    return 0;
  }
  return std::atoi(line.c_str() + prefix.size());
}

struct LoadResult {
  int exit_code = -1;
  nlohmann::json json;
};

LoadResult RunLoad(int port, int connections, int size, double duration) {
  Child load({Runfile("bench/echo_load"), "--host=127.0.0.1",
              "--port=" + std::to_string(port),
              "--connections=" + std::to_string(connections),
              "--size=" + std::to_string(size),
              "--duration=" + std::to_string(duration), "--warmup=0.1"});
  LoadResult result;
  EXPECT_TRUE(load.started());
  const std::string line = load.ReadLine(std::chrono::seconds(60));
  result.exit_code = load.Wait();
  result.json =
      nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(result.json.is_object()) << "not JSON: '" << line << "'";
  return result;
}

class EchoPeerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(EchoPeerTest, ServesVerifiedClosedLoopLoadAndExitsZeroOnSigterm) {
  Child server({Runfile(std::string("bench/peers/") + GetParam())});
  ASSERT_TRUE(server.started());
  const int port = StartServer(server);
  ASSERT_GT(port, 0);
  // Odd size and several connections: partial reads and interleaving.
  const double duration = std::string(GetParam()) == "echo_epoll" ? 1.0 : 0.3;
  const LoadResult load = RunLoad(port, 4, 1000, duration);
  EXPECT_EQ(load.exit_code, 0) << load.json.dump();
  ASSERT_TRUE(load.json.is_object());
  EXPECT_EQ(load.json.value("errors", -1), 0) << load.json.dump();
  EXPECT_EQ(load.json.value("connections", 0), 4);
  EXPECT_EQ(load.json.value("size", 0), 1000);
  EXPECT_GT(load.json.value("messages", 0), 0);
  EXPECT_GT(load.json.value("msgs_per_s", 0.0), 0.0);
  EXPECT_GT(load.json.value("mb_per_s", 0.0), 0.0);
  EXPECT_GT(load.json.value("p50_us", 0.0), 0.0);
  EXPECT_GE(load.json.value("p99_us", 0.0), load.json.value("p50_us", 0.0));
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
}

INSTANTIATE_TEST_SUITE_P(Peers, EchoPeerTest,
                         ::testing::Values("echo_epoll", "echo_libuv",
                                           "echo_libevent", "echo_asio"));

int ConnectTo(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until `size` bytes arrived, EOF, or 10 s without data.
std::string ReceiveAtLeast(int fd, size_t size) {
  std::string got;
  while (got.size() < size) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 10000) <= 0) break;
    char buf[4096];
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class HttpPeerTest : public ::testing::TestWithParam<const char*> {};

TEST_P(HttpPeerTest, AnswersEachPipelinedRequestWithTheSharedResponse) {
  Child server({Runfile(std::string("bench/peers/") + GetParam())});
  ASSERT_TRUE(server.started());
  const int port = StartServer(server);
  ASSERT_GT(port, 0);
  const int fd = ConnectTo(port);
  ASSERT_GE(fd, 0);
  const std::string request =
      "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: harness_test\r\n\r\n";
  // Three pipelined requests, split inside the second one's terminator.
  const std::string all = request + request + request;
  const size_t split = 2 * request.size() - 2;
  ASSERT_TRUE(SendAll(fd, all.substr(0, split)));
  std::string expected;
  for (int i = 0; i < 2; ++i) expected += kHelloResponse;
  // The first request is complete; the second is not, so exactly one
  // response may arrive before the rest is sent.
  std::string got = ReceiveAtLeast(fd, kHelloResponse.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(SendAll(fd, all.substr(split)));
  got += ReceiveAtLeast(fd, 3 * kHelloResponse.size() - got.size());
  expected += kHelloResponse;
  EXPECT_EQ(got, expected);
  close(fd);
  server.Signal(SIGINT);
  EXPECT_EQ(server.Wait(), 0);
}

INSTANTIATE_TEST_SUITE_P(Peers, HttpPeerTest,
                         ::testing::Values("http_epoll", "http_libuv",
                                           "http_libevent", "http_asio"));

TEST(EchoLoadTest, FailsWhenTheServerIsNotThere) {
  // Bind a port and close it again so that nothing listens there.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  const LoadResult load = RunLoad(ntohs(addr.sin_port), 2, 64, 0.2);
  EXPECT_EQ(load.exit_code, 1);
  EXPECT_EQ(load.json.value("errors", 0), 1);
  EXPECT_THAT(load.json.value("error", ""), HasSubstr("connect"));
}

// An echo server that flips one bit of the 100th byte it echoes.
class CorruptingEchoServer {
 public:
  CorruptingEchoServer() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listen_fd_, 4);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CorruptingEchoServer() {
    shutdown(listen_fd_, SHUT_RDWR);
    thread_.join();
    close(listen_fd_);
  }
  int port() const { return port_; }

 private:
  void Serve() {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    size_t total = 0;
    char buf[4096];
    for (;;) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      for (ssize_t i = 0; i < n; ++i) {
        if (total + static_cast<size_t>(i) == 99) buf[i] ^= 0x10;
      }
      total += static_cast<size_t>(n);
      if (!SendAll(fd, std::string_view(buf, static_cast<size_t>(n)))) break;
    }
    close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(EchoLoadTest, DetectsACorruptedEchoByte) {
  CorruptingEchoServer server;
  const LoadResult load = RunLoad(server.port(), 1, 64, 0.5);
  EXPECT_EQ(load.exit_code, 1);
  EXPECT_EQ(load.json.value("errors", 0), 1);
  // Byte 99 of the stream is byte 35 of the second 64-byte message.
  EXPECT_THAT(load.json.value("error", ""),
              HasSubstr("echo differs at byte 35 of message 2"));
}

}  // namespace
}  // namespace bench
}  // namespace mill
