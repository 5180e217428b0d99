// The fixture of the Connection tests (connection_test.cc,
// connection_output_test.cc): a loop in each dispatch mode, a TcpServer on
// it, and what its connections did. Test-only.
#ifndef MILL_IO_NET_TESTING_CONNECTION_FIXTURE_H_
#define MILL_IO_NET_TESTING_CONNECTION_FIXTURE_H_

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "net/byte_buffer.h"
#include "net/connection.h"
#include "net/internal/connection_config.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "net/testing/echo_clients.h"
#include "net/testing/temp_file.h"
#include "reactor/event_loop.h"

namespace mill {
namespace net_testing {

// Both dispatch modes, named "Pool" and "Direct":
//   INSTANTIATE_TEST_SUITE_P(Modes, ConnectionTest, BothDispatchModes(),
//                            DispatchModeName);
inline ::testing::internal::ParamGenerator<DispatchMode> BothDispatchModes() {
  return ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect);
}
inline std::string DispatchModeName(
    const ::testing::TestParamInfo<DispatchMode>& info) {
  return info.param == DispatchMode::kPool ? "Pool" : "Direct";
}

// A one-shot gate a callback (or a compute job) waits on, opened by the
// test: orders events without sleeping.
class Gate {
 public:
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool Wait(absl::Duration timeout = absl::Seconds(10)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                        [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

class ConnectionTest : public ::testing::TestWithParam<DispatchMode> {
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
  }

  void TearDown() override {
    server_.reset();
    if (loop_ != nullptr) loop_->Stop();
    if (runner_.joinable()) runner_.join();
  }

  void Start(TcpServerCallbacks callbacks, TcpServerOptions options = {}) {
    auto user_connect = callbacks.on_connect;
    callbacks.on_connect = [this, user_connect](const ConnectionPtr& c) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        conns_.push_back(c);
      }
      if (user_connect) user_connect(c);
    };
    auto user_close = callbacks.on_close;
    callbacks.on_close = [this, user_close](const ConnectionPtr& c,
                                            CloseReason r,
                                            const absl::Status& s) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        closes_.push_back(r);
      }
      if (user_close) user_close(c, r, s);
    };
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(callbacks), std::move(options));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    port_ = server_->local_address().port();
  }

  TestClient Connect() {
    absl::StatusOr<TestClient> c = TestClient::Connect(port_);
    EXPECT_TRUE(c.ok()) << c.status();
    return std::move(*c);
  }

  ConnectionPtr ConnAt(size_t n) {
    ConnectionPtr result;
    WaitFor([&] {
      std::lock_guard<std::mutex> lock(mu_);
      if (conns_.size() <= n) return false;
      result = conns_[n];
      return true;
    });
    return result;
  }

  std::vector<CloseReason> Closes() {
    std::lock_guard<std::mutex> lock(mu_);
    return closes_;
  }

  std::unique_ptr<EventLoop> loop_;
  std::thread runner_;
  std::unique_ptr<TcpServer> server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<ConnectionPtr> conns_;
  std::vector<CloseReason> closes_;
};

}  // namespace net_testing
}  // namespace mill

#endif  // MILL_IO_NET_TESTING_CONNECTION_FIXTURE_H_
