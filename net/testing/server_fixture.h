// The fixture of the TcpServer tests (tcp_server_test.cc,
// tcp_server_limits_test.cc): a loop in each dispatch mode, a server on it,
// descriptor counting. Test-only.
#ifndef MILL_IO_NET_TESTING_SERVER_FIXTURE_H_
#define MILL_IO_NET_TESTING_SERVER_FIXTURE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "net/testing/echo_clients.h"
#include "ratelimit/token_bucket.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_testing {

// Adapts a byte-view callback to on_data: every received byte is handed over
// once and consumed (the behaviour the tests below were written against).
std::function<void(const ConnectionPtr&, ByteBuffer&)> ConsumeAll(
    std::function<void(const ConnectionPtr&, absl::string_view)> fn) {
  return [fn = std::move(fn)](const ConnectionPtr& c, ByteBuffer& input) {
    const std::string bytes(input.view());
    input.Consume(bytes.size());
    fn(c, bytes);
  };
}

// Records close callbacks.
struct CloseLog {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<uint64_t, CloseReason>> closes;

  void Add(uint64_t id, CloseReason reason) {
    std::lock_guard<std::mutex> lock(mu);
    closes.emplace_back(id, reason);
    cv.notify_all();
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu);
    return closes.size();
  }
  size_t Count(CloseReason reason) {
    std::lock_guard<std::mutex> lock(mu);
    size_t n = 0;
    for (const auto& c : closes) n += c.second == reason;
    return n;
  }
  bool WaitForCount(size_t n, absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                       [&] { return closes.size() >= n; });
  }
};

class TcpServerTest : public ::testing::TestWithParam<DispatchMode> {
 protected:
  void SetUp() override {
    EventLoopOptions options;
    options.workers = 2;
    options.dispatch_mode = GetParam();
    absl::StatusOr<std::unique_ptr<EventLoop>> loop =
        EventLoop::Create(options);
    ASSERT_TRUE(loop.ok()) << loop.status();
    loop_ = std::move(*loop);
    runner_ = std::thread([this] { (void)loop_->Run(); });
  }

  void TearDown() override {
    server_.reset();
    if (loop_ != nullptr) loop_->Stop();
    if (runner_.joinable()) runner_.join();
  }

  // Starts a server; callbacks default to echo and the close log.
  void Start(TcpServerCallbacks callbacks = {}, TcpServerOptions options = {}) {
    if (!callbacks.on_data) {
      callbacks.on_data =
          ConsumeAll([](const ConnectionPtr& c, absl::string_view d) {
            (void)c->Send(d);
          });
    }
    if (!callbacks.on_close) {
      callbacks.on_close = [this](const ConnectionPtr& c, CloseReason r,
                                  const absl::Status&) {
        closes_.Add(c->id(), r);
      };
    }
    if (!callbacks.on_connect) {
      callbacks.on_connect = [this](const ConnectionPtr& c) {
        std::lock_guard<std::mutex> lock(conns_mu_);
        conns_.push_back(c);
      };
    }
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(callbacks), std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->local_address().port();
    ASSERT_NE(port_, 0);
  }

  TestClient Connect(int rcvbuf = 0) {
    absl::StatusOr<TestClient> c = TestClient::Connect(port_, rcvbuf);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  // The n-th connection seen by on_connect (waits for it).
  ConnectionPtr ConnAt(size_t n) {
    ConnectionPtr result;
    WaitFor([&] {
      std::lock_guard<std::mutex> lock(conns_mu_);
      if (conns_.size() <= n) return false;
      result = conns_[n];
      return true;
    });
    return result;
  }

  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  std::unique_ptr<TcpServer> server_;
  uint16_t port_ = 0;
  CloseLog closes_;
  std::mutex conns_mu_;
  std::vector<ConnectionPtr> conns_;
};

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_SERVER_FIXTURE_H_
