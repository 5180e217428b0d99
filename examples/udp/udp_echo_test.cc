// End-to-end test of //examples/udp:udp_echo: runs the real binary and
// talks to it over UDP as a client would.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "examples/testing/server_process.h"
#include "examples/testing/subprocess.h"
#include "gtest/gtest.h"
#include "net/socket_address.h"

// In the fixture's namespace (//examples/testing): its helpers unqualified.
namespace mill::testing {
namespace {

constexpr char kServer[] = "examples/udp/udp_echo";

// A blocking UDP client on loopback with a 10 s receive timeout.
class UdpClient {
 public:
  UdpClient() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  ~UdpClient() { ::close(fd_); }
  UdpClient(const UdpClient&) = delete;
  UdpClient& operator=(const UdpClient&) = delete;

  // Sends `data` to 127.0.0.1:port and returns the answer, or "<timeout>".
  std::string Echo(int port, const std::string& data) {
    const SocketAddress to = SocketAddress::LoopbackIPv4(port);
    if (::sendto(fd_, data.data(), data.size(), 0, to.sockaddr_ptr(),
                 to.sockaddr_len()) != static_cast<ssize_t>(data.size())) {
      return "<send failed>";
    }
    std::string buf(70000, '\0');
    const ssize_t n = ::recv(fd_, &buf[0], buf.size(), 0);
    if (n < 0) return "<timeout>";
    buf.resize(static_cast<size_t>(n));
    return buf;
  }

 private:
  int fd_ = -1;
};

// Starts udp_echo with --port=0 and `flags` and waits (20 s) for its
// "listening on 127.0.0.1:PORT (udp)" line (the shared WaitForListeningPort
// expects the TCP servers' line, with nothing after the port).
ServerProcess StartUdpEcho(const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {RunfilePath(kServer), "--port=0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  ServerProcess server;
  absl::StatusOr<Subprocess> p = Subprocess::Start(std::move(argv));
  if (!p.ok()) {
    ADD_FAILURE() << p.status();
    return server;
  }
  server.process = std::make_unique<Subprocess>(std::move(*p));
  constexpr absl::string_view kPrefix = "listening on 127.0.0.1:";
  constexpr absl::string_view kSuffix = " (udp)";
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    std::optional<std::string> line = server.process->ReadStdoutLine(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now()));
    if (!line) break;
    absl::string_view text = *line;
    if (absl::ConsumePrefix(&text, kPrefix) &&
        absl::ConsumeSuffix(&text, kSuffix) &&
        absl::SimpleAtoi(text, &server.port)) {
      return server;
    }
  }
  ADD_FAILURE() << "udp_echo did not announce its port";
  return server;
}

std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 13 + seed);
  return s;
}

class UdpEchoTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    server_ = StartUdpEcho({"--mode=" + GetParam()});
    ASSERT_NE(server_.port, 0);
  }
  void TearDown() override {
    if (server_.process) ExpectCleanExit(*server_.process, SIGTERM);
  }
  ServerProcess server_;
};

INSTANTIATE_TEST_SUITE_P(Modes, UdpEchoTest, Modes(), ModeName);

TEST_P(UdpEchoTest, EchoesEverySizeFromZeroToTheUdpMaximum) {
  UdpClient client;
  for (size_t size : {0, 1, 512, 1472, 9000, 65000, 65507}) {
    const std::string data = Bytes(size, static_cast<int>(size));
    const std::string got = client.Echo(server_.port, data);
    ASSERT_EQ(got.size(), data.size()) << size;
    EXPECT_TRUE(got == data) << size;
  }
}

TEST_P(UdpEchoTest, ManySendersEachGetTheirOwnEchoes) {
  constexpr int kSenders = 20;
  std::vector<int> good(kSenders, 0);
  std::vector<std::thread> threads;
  for (int s = 0; s < kSenders; ++s) {
    threads.emplace_back([&, s] {
      UdpClient client;
      for (int i = 0; i < 100; ++i) {
        const std::string msg = absl::StrCat("sender ", s, " #", i);
        if (client.Echo(server_.port, msg) != msg) return;
        ++good[s];
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int s = 0; s < kSenders; ++s) EXPECT_EQ(good[s], 100) << s;
}

TEST(UdpEchoFlagsTest, BadFlagsAreRefused) {
  ExpectFlagsRefusedWithReason(kServer, {{{"--port=70000"}, "--port"},
                                         {{"--mode=threads"}, "--mode"},
                                         {{"--batch=0"}, "--batch"},
                                         {{"--rcvbuf=-1"}, "--rcvbuf"},
                                         {{"stray"}, "unexpected argument"}});
}

using UdpEchoSignalTest = ::testing::TestWithParam<ModeAndSignal>;
INSTANTIATE_TEST_SUITE_P(ModesAndSignals, UdpEchoSignalTest, ModesAndSignals(),
                         ModeAndSignalName);

TEST_P(UdpEchoSignalTest, ExitsZeroAfterServing) {
  ServerProcess server = StartUdpEcho({"--mode=" + std::get<0>(GetParam())});
  ASSERT_NE(server.port, 0);
  UdpClient client;
  EXPECT_EQ(client.Echo(server.port, "before the signal"), "before the signal");
  ExpectCleanExit(*server.process, std::get<1>(GetParam()));
}

}  // namespace
}  // namespace mill::testing
