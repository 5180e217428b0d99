// Keeps //bench:redis_load honest without a real Redis: runs it as a
// subprocess against a small fake RESP server (a thread in this test) that
// answers SET with +OK and GET with the 16-byte value, and checks for each
// client (Mill-IO per-Send, Mill-IO batched, hiredis) that it sends exactly
// the requests it reports, that a wrong reply fails the run, and that a
// refused connection and bad flags are reported.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "bench/resp.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace mill {
namespace bench {
namespace {

using ::testing::HasSubstr;

constexpr absl::string_view kValue = "0123456789abcdef";  // redis_load's

std::string Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  return std::string(srcdir ? srcdir : ".") + "/" +
         (workspace ? workspace : "mill_io") + "/" + path;
}

// A fake redis-server on 127.0.0.1: one thread polling the listener and
// every connection. GET is answered with kValue, or with an error reply
// once `error_after` GETs were answered (when >= 0); SET with +OK.
class FakeRedis {
 public:
  explicit FakeRedis(int error_after = -1) : error_after_(error_after) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        listen(listener_, 64) != 0 ||
        getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        pipe2(wake_, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "fake server setup: " << strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeRedis() {
    if (thread_.joinable()) {
      (void)!write(wake_[1], "x", 1);
      thread_.join();
    }
    for (int fd : {listener_, wake_[0], wake_[1]}) {
      if (fd >= 0) close(fd);
    }
  }

  int port() const { return port_; }
  int64_t gets() const { return gets_.load(); }
  int64_t sets() const { return sets_.load(); }
  bool malformed() const { return malformed_.load(); }

 private:
  struct Client {
    int fd;
    std::string in;
  };

  void Serve() {
    std::vector<std::unique_ptr<Client>> clients;
    for (;;) {
      std::vector<pollfd> fds = {{wake_[0], POLLIN, 0}, {listener_, POLLIN, 0}};
      for (auto& c : clients) fds.push_back({c->fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), -1) < 0) break;
      if (fds[0].revents != 0) break;
      if (fds[1].revents & POLLIN) {
        const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0)
          clients.push_back(std::make_unique<Client>(Client{fd, ""}));
      }
      for (size_t i = 2; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = *clients[i - 2];
        char buf[16384];
        const ssize_t n = read(c.fd, buf, sizeof(buf));
        if (n <= 0 || !Answer(&c, absl::string_view(buf, n))) {
          close(c.fd);
          c.fd = -1;
        }
      }
      clients.erase(std::remove_if(clients.begin(), clients.end(),
                                   [](const auto& c) { return c->fd < 0; }),
                    clients.end());
    }
    for (auto& c : clients) close(c->fd);
  }

  // Answers every complete command in the client's input.
  bool Answer(Client* c, absl::string_view bytes) {
    c->in.append(bytes.data(), bytes.size());
    std::string out;
    size_t pos = 0;
    for (;;) {
      RespReply command;  // a command is an array of bulk strings
      absl::StatusOr<bool> done =
          ParseRespReply(absl::string_view(c->in).substr(pos), &command);
      if (!done.ok() || (*done && command.type != RespType::kArray)) {
        malformed_ = true;
        return false;
      }
      if (!*done) break;
      const absl::string_view text =
          absl::string_view(c->in).substr(pos, command.length);
      pos += command.length;
      if (absl::StartsWith(text, "*3\r\n$3\r\nSET\r\n")) {
        ++sets_;
        out += "+OK\r\n";
      } else if (absl::StartsWith(text, "*2\r\n$3\r\nGET\r\n")) {
        const int64_t n = gets_++;
        if (error_after_ >= 0 && n >= error_after_) {
          out += "-ERR injected\r\n";
        } else {
          out += "$16\r\n";
          out.append(kValue.data(), kValue.size());
          out += "\r\n";
        }
      } else {
        malformed_ = true;
        return false;
      }
    }
    c->in.erase(0, pos);
    absl::string_view rest = out;
    while (!rest.empty()) {  // blocking socket: small replies, fine
      const ssize_t n = send(c->fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      rest.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  const int64_t error_after_;
  int listener_ = -1;
  int wake_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int64_t> gets_{0};
  std::atomic<int64_t> sets_{0};
  std::atomic<bool> malformed_{false};
  std::thread thread_;
};

struct LoadResult {
  int exit_code = -1;
  nlohmann::json json;
};

// Runs redis_load with `flags`; its stdout's last line is the JSON.
LoadResult RunLoad(std::vector<std::string> flags) {
  std::vector<std::string> args = {Runfile("bench/redis_load")};
  args.insert(args.end(), flags.begin(), flags.end());
  int fds[2];
  LoadResult result;
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << strerror(errno);
    return result;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int spawned =
      posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (spawned != 0) {
    close(fds[0]);
    ADD_FAILURE() << "posix_spawn " << args[0] << ": " << strerror(spawned);
    return result;
  }
  // Reads to EOF (the exit), or kills it after 60 s.
  std::string out;
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd pfd{fds[0], POLLIN, 0};
    if (left.count() <= 0 ||
        poll(&pfd, 1, static_cast<int>(left.count())) <= 0) {
      ADD_FAILURE() << "redis_load did not finish in 60 s";
      kill(pid, SIGKILL);
      break;
    }
    char buf[4096];
    const ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code =
      WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  const size_t start = out.rfind('\n', out.size() >= 2 ? out.size() - 2 : 0);
  const std::string line =
      out.substr(start == std::string::npos ? 0 : start + 1);
  result.json =
      nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  return result;
}

class RedisLoadTest : public ::testing::TestWithParam<const char*> {};

TEST_P(RedisLoadTest, SendsExactlyTheRequestsItCountsOnEveryConnection) {
  FakeRedis server;
  ASSERT_GT(server.port(), 0);
  const LoadResult load =
      RunLoad({std::string("--client=") + GetParam(),
               "--port=" + std::to_string(server.port()), "--pipeline=16",
               "--connections=3", "--requests=5000"});
  EXPECT_EQ(load.exit_code, 0) << load.json.dump();
  ASSERT_TRUE(load.json.is_object()) << "no JSON line";
  EXPECT_EQ(load.json.value("errors", -1), 0) << load.json.dump();
  EXPECT_EQ(load.json.value("client", ""), GetParam());
  EXPECT_EQ(load.json.value("requests", 0), 5000);
  EXPECT_EQ(load.json.value("pipeline", 0), 16);
  EXPECT_EQ(load.json.value("connections", 0), 3);
  EXPECT_GT(load.json.value("requests_per_s", 0.0), 0.0);
  EXPECT_GT(load.json.value("cpu_us_per_request", 0.0), 0.0);
  // The client exited: every request it sent was read by the server.
  EXPECT_EQ(server.gets(), 5000);
  EXPECT_EQ(server.sets(), 1);
  EXPECT_FALSE(server.malformed());
}

TEST_P(RedisLoadTest, AnErrorReplyFailsTheRun) {
  FakeRedis server(/*error_after=*/100);
  ASSERT_GT(server.port(), 0);
  const LoadResult load = RunLoad({std::string("--client=") + GetParam(),
                                   "--port=" + std::to_string(server.port()),
                                   "--pipeline=8", "--requests=1000"});
  EXPECT_EQ(load.exit_code, 1);
  ASSERT_TRUE(load.json.is_object()) << "no JSON line";
  EXPECT_EQ(load.json.value("errors", 0), 1);
  EXPECT_THAT(load.json.value("error", ""), HasSubstr("unexpected reply"));
  EXPECT_THAT(load.json.value("error", ""), HasSubstr("ERR injected"));
  EXPECT_FALSE(server.malformed());
}

TEST_P(RedisLoadTest, ARunForSecondsMeasuresItsWindow) {
  FakeRedis server;
  ASSERT_GT(server.port(), 0);
  const LoadResult load =
      RunLoad({std::string("--client=") + GetParam(),
               "--port=" + std::to_string(server.port()), "--pipeline=128",
               "--seconds=0.3", "--warmup=0.1"});
  EXPECT_EQ(load.exit_code, 0) << load.json.dump();
  ASSERT_TRUE(load.json.is_object()) << "no JSON line";
  // libevent's timers may run a clock tick (a few ms) early.
  EXPECT_GE(load.json.value("seconds", 0.0), 0.29);
  EXPECT_LT(load.json.value("seconds", 0.0), 5.0);
  EXPECT_GT(load.json.value("requests", 0), 0);
  // Requests in the window, never more than the server answered.
  EXPECT_LE(load.json.value("requests", int64_t{0}), server.gets());
}

INSTANTIATE_TEST_SUITE_P(Clients, RedisLoadTest,
                         ::testing::Values("mill_per_send", "mill_batched",
                                           "hiredis"));

TEST(RedisLoadFailureTest, ARefusedConnectionIsReported) {
  // A port nobody listens on: bound, never listening.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const LoadResult load = RunLoad(
      {"--client=mill_per_send",
       "--port=" + std::to_string(ntohs(addr.sin_port)), "--requests=10"});
  close(fd);
  EXPECT_EQ(load.exit_code, 1);
  ASSERT_TRUE(load.json.is_object()) << "no JSON line";
  EXPECT_THAT(load.json.value("error", ""), HasSubstr("connect"));
}

TEST(RedisLoadFailureTest, BadFlagsExitTwo) {
  EXPECT_EQ(RunLoad({"--client=memcached", "--port=1"}).exit_code, 2);
  EXPECT_EQ(RunLoad({"--client=hiredis", "--port=0"}).exit_code, 2);
  EXPECT_EQ(RunLoad({"--client=hiredis", "--port=1", "--pipeline=0"}).exit_code,
            2);
}

}  // namespace
}  // namespace bench
}  // namespace mill
