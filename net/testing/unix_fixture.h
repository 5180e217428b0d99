// The Unix-domain and adopted-descriptor tests' fixture: a loop per dispatch
// mode on a background thread, a short temporary directory for socket files
// (sun_path holds 107 bytes: Bazel's TEST_TMPDIR can be longer), an echo
// server's callbacks that record each connection's peer credentials, and a
// blocking Unix client.
//
// Thread-safety: test-thread use; the recorded values are guarded.
// Ownership: the fixture owns the loop, the servers and clients it makes,
// and the directory (removed in TearDown).
#ifndef MILL_IO_NET_TESTING_UNIX_FIXTURE_H_
#define MILL_IO_NET_TESTING_UNIX_FIXTURE_H_

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_server.h"
#include "net/testing/echo_clients.h"
#include "net/unix_credentials.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_testing {

// A blocking connection to a Unix address with 10 s timeouts; -1 and a
// failed expectation when it cannot connect.
inline int ConnectUnixBlocking(const SocketAddress& address) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  timeval tv = {10, 0};
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (::connect(fd, address.sockaddr_ptr(), address.sockaddr_len()) != 0) {
    ADD_FAILURE() << "connect(" << address << "): " << std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

// Sends `message` on blocking `fd` and reads as many bytes back.
inline std::string RoundTrip(int fd, absl::string_view message) {
  size_t sent = 0;
  while (sent < message.size()) {
    const ssize_t n =
        ::send(fd, message.data() + sent, message.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return "send failed";
    sent += static_cast<size_t>(n);
  }
  std::string got;
  char buf[4096];
  while (got.size() < message.size()) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Connects to `address`, echoes `message` once, closes.
inline std::string EchoOnce(const SocketAddress& address,
                            absl::string_view message) {
  const int fd = ConnectUnixBlocking(address);
  if (fd < 0) return "no connection";
  std::string got = RoundTrip(fd, message);
  ::close(fd);
  return got;
}

class UnixTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mill_unix_XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr) << std::strerror(errno);
    dir_ = dir;
    EventLoopOptions options;
    options.workers = 3;
    options.dispatch_mode = GetParam();
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    runner_ = std::thread([this] { (void)loop_->Run(); });
  }

  void TearDown() override {
    clients_.clear();
    servers_.clear();
    if (loop_ != nullptr) loop_->Stop();
    if (runner_.joinable()) runner_.join();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // A path in the test's directory.
  std::string Path(absl::string_view name) const {
    return absl::StrCat(dir_, "/", name);
  }
  SocketAddress UnixAddress(absl::string_view name) const {
    absl::StatusOr<SocketAddress> address = SocketAddress::Unix(Path(name));
    EXPECT_TRUE(address.ok()) << address.status();
    return address.value_or(SocketAddress());
  }
  // An abstract name no other test process uses. The abstract namespace
  // is the network namespace's, shared by tests running in parallel, whose
  // sandboxes may give them the same pid: a random part keeps them apart.
  std::string UniqueAbstractName(absl::string_view what) const {
    return absl::StrCat("mill_test_", ::getpid(), "_", std::random_device()(),
                        "_", what, "_",
                        GetParam() == DispatchMode::kPool ? "pool" : "direct");
  }

  // Echoes; records each connection's credentials (or error) in on_connect.
  TcpServerCallbacks EchoCallbacks() {
    TcpServerCallbacks echo;
    echo.on_connect = [this](const ConnectionPtr& c) {
      absl::StatusOr<PeerCredentials> who = GetPeerCredentials(*c);
      std::lock_guard<std::mutex> lock(mu_);
      credentials_.push_back(who);
    };
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
      (void)c->Send(in.view());
      in.Consume(in.size());
    };
    return echo;
  }

  absl::StatusOr<TcpServer*> StartServer(const SocketAddress& address,
                                         TcpServerOptions options = {}) {
    absl::StatusOr<std::unique_ptr<TcpServer>> server = TcpServer::Create(
        loop_.get(), address, EchoCallbacks(), std::move(options));
    if (!server.ok()) return server.status();
    servers_.push_back(*std::move(server));
    return servers_.back().get();
  }

  // A client whose connections append what they receive to received().
  TcpClient* MakeClient(TcpClientOptions options = {},
                        ConnectionCallbacks callbacks = {}) {
    callbacks.on_data = [this](const ConnectionPtr&, ByteBuffer& in) {
      std::lock_guard<std::mutex> lock(mu_);
      received_.append(in.data(), in.size());
      in.Consume(in.size());
    };
    absl::StatusOr<std::unique_ptr<TcpClient>> client =
        TcpClient::Create(loop_.get(), std::move(callbacks), options);
    EXPECT_TRUE(client.ok()) << client.status();
    if (!client.ok()) return nullptr;
    clients_.push_back(*std::move(client));
    return clients_.back().get();
  }

  std::string received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  std::vector<absl::StatusOr<PeerCredentials>> credentials() {
    std::lock_guard<std::mutex> lock(mu_);
    return credentials_;
  }

  std::string dir_;
  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  std::vector<std::unique_ptr<TcpServer>> servers_;
  std::vector<std::unique_ptr<TcpClient>> clients_;

  std::mutex mu_;
  std::string received_;
  std::vector<absl::StatusOr<PeerCredentials>> credentials_;
};

inline std::string ModeName(const ::testing::TestParamInfo<DispatchMode>& i) {
  return i.param == DispatchMode::kPool ? "Pool" : "Direct";
}

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_UNIX_FIXTURE_H_
