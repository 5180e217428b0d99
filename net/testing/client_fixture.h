// The fixture of the TcpClient tests (tcp_client_test.cc,
// tcp_client_stop_test.cc): a loop in each dispatch mode, an echo server,
// a client, connect results, unreachable targets. Test-only.
#ifndef MILL_IO_NET_TESTING_CLIENT_FIXTURE_H_
#define MILL_IO_NET_TESTING_CLIENT_FIXTURE_H_

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/internal/client_core.h"
#include "net/internal/resolver.h"
#include "net/socket_address.h"
#include "net/tcp_client.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "net/tcp_stream.h"
#include "net/testing/echo_clients.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_testing {

// The result of one Connect(), waited for from the test thread.
class ConnectResult {
 public:
  ConnectCallback Callback() {
    return [this](absl::StatusOr<ConnectionPtr> result) {
      std::lock_guard<std::mutex> lock(mu_);
      ++calls_;
      result_ = std::move(result);
      cv_.notify_all();
    };
  }
  absl::StatusOr<ConnectionPtr> Wait(
      absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                 [this] { return result_.has_value(); });
    if (!result_.has_value()) return absl::UnknownError("no result in time");
    return *result_;
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<absl::StatusOr<ConnectionPtr>> result_;
  int calls_ = 0;
};

// A port nobody listens on (bound, then closed).
inline uint16_t UnusedPort() {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  EXPECT_TRUE(l.ok());
  return l->local_address()->port();
}

// A listener that never accepts, with its accept queue filled, so that new
// SYNs are dropped and connects hang until they time out. (Linux drops
// them; Windows answers a full queue with a reset instead: the tests that
// need a hanging connect say so.)
class BlackholeListener {
 public:
  BlackholeListener() {
    TcpListenerOptions options;
    options.backlog = 0;
    absl::StatusOr<TcpListener> listener =
        TcpListener::Bind(SocketAddress::LoopbackIPv4(0), options);
    EXPECT_TRUE(listener.ok()) << listener.status();
    if (!listener.ok()) return;
    listener_ = *std::move(listener);
    port_ = listener_.local_address()->port();
    // Fill the queue: connects complete until it is full, then hang.
    for (int i = 0; i < 16; ++i) {
      absl::StatusOr<TcpStream> s = TcpStream::ConnectAndWait(
          SocketAddress::LoopbackIPv4(port_), absl::Milliseconds(200));
      if (!s.ok()) break;
      fillers_.push_back(*std::move(s));
    }
  }
  uint16_t port() const { return port_; }
  SocketAddress address() const { return SocketAddress::LoopbackIPv4(port_); }

 private:
  TcpListener listener_;
  uint16_t port_ = 0;
  std::vector<TcpStream> fillers_;
};

class TcpClientTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.workers = 3;
    options.dispatch_mode = GetParam();
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    runner_ = std::thread([this] { (void)loop_->Run(); });
    // An echo server to connect to.
    TcpServerCallbacks echo;
    echo.on_data = [](const ConnectionPtr& c, ByteBuffer& in) {
      (void)c->Send(in.view());
      in.Consume(in.size());
    };
    echo.on_connect = [this](const ConnectionPtr& c) {
      std::lock_guard<std::mutex> lock(mu_);
      server_conns_.push_back(c);
    };
    absl::StatusOr<std::unique_ptr<TcpServer>> server = TcpServer::Create(
        loop_.get(), SocketAddress::LoopbackIPv4(0), std::move(echo));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->local_address().port();
  }

  void TearDown() override {
    client_.reset();
    server_.reset();
    if (loop_ != nullptr) loop_->Stop();
    if (runner_.joinable()) runner_.join();
  }

  // A client whose connections collect what they receive.
  void MakeClient(TcpClientOptions options = {},
                  ConnectionCallbacks callbacks = {},
                  net_internal::ClientHooks hooks = {}) {
    if (!callbacks.on_data) {
      callbacks.on_data = [this](const ConnectionPtr&, ByteBuffer& in) {
        std::lock_guard<std::mutex> lock(mu_);
        received_.append(in.data(), in.size());
        in.Consume(in.size());
      };
    }
    if (!callbacks.on_connect) {
      callbacks.on_connect = [this](const ConnectionPtr&) { ++connects_; };
    }
    absl::StatusOr<std::unique_ptr<TcpClient>> client =
        net_internal::TcpClientAccess::Create(loop_.get(), std::move(callbacks),
                                              options, std::move(hooks));
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  std::string Received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  std::unique_ptr<TcpServer> server_;
  std::unique_ptr<TcpClient> client_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::string received_;
  std::vector<ConnectionPtr> server_conns_;
  std::atomic<int> connects_{0};
};

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_CLIENT_FIXTURE_H_
