// End-to-end test of //examples/udp:udp_echo: runs the real binary and
// talks to it over UDP as a client would.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/testing/server_process.h"
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

std::string Bytes(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 13 + seed);
  return s;
}

class UdpEchoTest : public ServerModeTest {
 protected:
  void SetUp() override { StartInMode(kServer, {}); }
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
  ServerProcess server =
      StartServer(kServer, {"--mode=" + std::get<0>(GetParam())});
  ASSERT_NE(server.port, 0);
  UdpClient client;
  EXPECT_EQ(client.Echo(server.port, "before the signal"), "before the signal");
  ExpectCleanExit(*server.process, std::get<1>(GetParam()));
}

}  // namespace
}  // namespace mill::testing
