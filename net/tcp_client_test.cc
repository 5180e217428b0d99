// Tests of TcpClient: connect success and every failure kind (refused,
// timeout against a listener whose backlog is full, a name that does not
// resolve, cancel), staggered attempts over several addresses, connecting
// from any thread and from inside handlers, reconnecting with backoff, and
// Stop(). Both dispatch modes; the concurrent ones run under TSan in CI.
#include "net/tcp_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
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
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "net/tcp_server.h"
#include "net/tcp_stream.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

bool WaitFor(const std::function<bool()>& pred,
             absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return pred();
}

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
uint16_t UnusedPort() {
  absl::StatusOr<TcpListener> l =
      TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
  EXPECT_TRUE(l.ok());
  return l->local_address()->port();
}

// A listener that never accepts, with its accept queue filled, so that new
// SYNs are dropped and connects hang until they time out.
class BlackholeListener {
 public:
  BlackholeListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 0), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    // Fill the queue: connects complete until it is full, then hang.
    for (int i = 0; i < 16; ++i) {
      absl::StatusOr<TcpStream> s = TcpStream::ConnectAndWait(
          SocketAddress::LoopbackIPv4(port_), absl::Milliseconds(200));
      if (!s.ok()) break;
      fillers_.push_back(*std::move(s));
    }
  }
  ~BlackholeListener() { close(fd_); }
  uint16_t port() const { return port_; }
  SocketAddress address() const { return SocketAddress::LoopbackIPv4(port_); }

 private:
  int fd_ = -1;
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
                  ConnectionCallbacks callbacks = {}) {
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
        TcpClient::Create(loop_.get(), std::move(callbacks), options);
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

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpClientTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpClientTest, ConnectsAndEchoes) {
  std::atomic<bool> connect_before_done{false};
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) { ++connects_; };
  MakeClient({}, cb);
  absl::StatusOr<ConnectionPtr> conn;
  std::atomic<bool> done{false};
  client_->Connect(SocketAddress::LoopbackIPv4(port_),
                   [&](absl::StatusOr<ConnectionPtr> result) {
                     connect_before_done = connects_.load() == 1;
                     conn = std::move(result);
                     done = true;
                   });
  ASSERT_TRUE(WaitFor([&] { return done.load(); }));
  ASSERT_TRUE(conn.ok()) << conn.status();
  EXPECT_TRUE(connect_before_done.load());
  EXPECT_TRUE((*conn)->is_outbound());
  EXPECT_EQ((*conn)->state(), ConnectionState::kOpen);
  EXPECT_EQ((*conn)->peer_address().port(), port_);
  EXPECT_NE((*conn)->local_address().port(), 0);
  ASSERT_TRUE((*conn)->Send("hello, server").ok());
  EXPECT_TRUE(WaitFor([&] { return Received() == "hello, server"; }));
  EXPECT_EQ(client_->connection_count(), 1u);
  TcpClientStats stats = client_->stats();
  EXPECT_EQ(stats.connects_succeeded, 1u);
  EXPECT_EQ(stats.active, 1u);
  EXPECT_EQ(stats.bytes_read, 13u);
  (*conn)->Close();
  EXPECT_TRUE(WaitFor([&] { return client_->connection_count() == 0; }));
  EXPECT_EQ(client_->stats().closed(CloseReason::kClosedLocally), 1u);
}

TEST_P(TcpClientTest, RefusedIsUnavailableWithErrnoText) {
  MakeClient();
  ConnectResult result;
  client_->Connect(SocketAddress::LoopbackIPv4(UnusedPort()),
                   result.Callback());
  absl::StatusOr<ConnectionPtr> r = result.Wait();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "refused")) << r.status();
  EXPECT_EQ(connects_.load(), 0);  // no on_connect for a failed connect
  EXPECT_TRUE(WaitFor([&] { return client_->stats().pending == 0; }));
  EXPECT_EQ(client_->stats().connects_failed, 1u);
  EXPECT_EQ(result.calls(), 1);
}

TEST_P(TcpClientTest, TimeoutIsDeadlineExceeded) {
  BlackholeListener blackhole;
  MakeClient();
  ConnectResult result;
  const absl::Time start = absl::Now();
  client_->Connect(blackhole.address(), result.Callback(),
                   absl::Milliseconds(300));
  absl::StatusOr<ConnectionPtr> r = result.Wait();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded)
      << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(299));
  EXPECT_EQ(result.calls(), 1);
  EXPECT_EQ(client_->stats().pending, 0u);
}

TEST_P(TcpClientTest, NameThatDoesNotResolveIsNotFound) {
  MakeClient();
  ConnectResult result;
  client_->Connect("no-such-host.invalid:80", result.Callback());
  absl::StatusOr<ConnectionPtr> r = result.Wait(absl::Seconds(30));
  ASSERT_FALSE(r.ok());
  if (r.status().code() == absl::StatusCode::kUnavailable) {
    GTEST_SKIP() << "no DNS answer here (EAI_AGAIN): " << r.status();
  }
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_EQ(client_->stats().resolutions, 1u);
}

TEST_P(TcpClientTest, MalformedTargetIsInvalidArgumentAtOnce) {
  MakeClient();
  ConnectResult result;
  EXPECT_EQ(client_->Connect("no-port-here", result.Callback()), 0u);
  absl::StatusOr<ConnectionPtr> r = result.Wait(absl::Milliseconds(1));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  ConnectResult empty;
  client_->Connect(std::vector<SocketAddress>{}, empty.Callback());
  EXPECT_EQ(empty.Wait(absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// "localhost" resolves off the loop (it may also yield ::1, where nobody
// listens: then the next address is tried).
TEST_P(TcpClientTest, ResolvesLocalhost) {
  MakeClient();
  ConnectResult result;
  client_->Connect(absl::StrCat("localhost:", port_), result.Callback());
  absl::StatusOr<ConnectionPtr> r = result.Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->peer_address().port(), port_);
  EXPECT_EQ(client_->stats().resolutions, 1u);
}

TEST_P(TcpClientTest, CancelPendingConnect) {
  BlackholeListener blackhole;
  MakeClient();
  ConnectResult result;
  TcpClient::ConnectId id = client_->Connect(
      blackhole.address(), result.Callback(), absl::Seconds(30));
  ASSERT_NE(id, 0u);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_TRUE(client_->Cancel(id));
  EXPECT_EQ(result.Wait(absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_FALSE(client_->Cancel(id));
  EXPECT_EQ(result.calls(), 1);
  EXPECT_EQ(client_->stats().pending, 0u);
}

// RFC 8305: the first address hangs; after attempt_delay the second starts
// and wins; the first is abandoned.
TEST_P(TcpClientTest, StaggeredAttemptsFallBackToTheNextAddress) {
  BlackholeListener blackhole;
  TcpClientOptions options;
  options.attempt_delay = absl::Milliseconds(100);
  MakeClient(options);
  ConnectResult result;
  const absl::Time start = absl::Now();
  client_->Connect(
      std::vector<SocketAddress>{blackhole.address(),
                                 SocketAddress::LoopbackIPv4(port_)},
      result.Callback());
  absl::StatusOr<ConnectionPtr> r = result.Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->peer_address().port(), port_);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(99));
  EXPECT_EQ(client_->stats().attempts, 2u);
  EXPECT_EQ(client_->connection_count(), 1u);
}

// A refused first address does not wait for the stagger.
TEST_P(TcpClientTest, FailedAttemptStartsTheNextAtOnce) {
  TcpClientOptions options;
  options.attempt_delay = absl::Seconds(20);
  MakeClient(options);
  ConnectResult result;
  client_->Connect(
      std::vector<SocketAddress>{SocketAddress::LoopbackIPv4(UnusedPort()),
                                 SocketAddress::LoopbackIPv4(port_)},
      result.Callback());
  absl::StatusOr<ConnectionPtr> r = result.Wait(absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->peer_address().port(), port_);
}

TEST_P(TcpClientTest, ConnectFromManyThreadsAndFromHandlers) {
  MakeClient();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 10;
  std::atomic<int> ok{0}, failed{0};
  auto count = [&](absl::StatusOr<ConnectionPtr> r) {
    if (r.ok()) {
      ++ok;
      (*r)->Close();
    } else {
      ++failed;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        client_->Connect(SocketAddress::LoopbackIPv4(port_), count);
      }
    });
  }
  for (auto& t : threads) t.join();
  // From inside a connection's handler: each result opens one more.
  std::atomic<int> chained{0};
  std::function<void(absl::StatusOr<ConnectionPtr>)> chain;
  chain = [&](absl::StatusOr<ConnectionPtr> r) {
    ASSERT_TRUE(r.ok()) << r.status();
    (*r)->Close();
    if (++chained < 5) {
      client_->Connect(SocketAddress::LoopbackIPv4(port_), chain);
    }
  };
  client_->Connect(SocketAddress::LoopbackIPv4(port_), chain);
  ASSERT_TRUE(WaitFor(
      [&] { return ok.load() + failed.load() == kThreads * kPerThread; }));
  EXPECT_EQ(failed.load(), 0);
  ASSERT_TRUE(WaitFor([&] { return chained.load() == 5; }));
  EXPECT_TRUE(WaitFor([&] { return client_->connection_count() == 0; }));
}

TEST_P(TcpClientTest, KeepConnectedReconnectsAfterTheServerCloses) {
  MakeClient();
  BackoffPolicy backoff;
  backoff.initial = absl::Milliseconds(20);
  TcpClient::ConnectId id =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", port_), backoff);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(WaitFor([&] { return client_->connection_count() == 1; }));
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 1; }));
  for (const ConnectionPtr& c : server_->Connections()) c->Abort();
  ASSERT_TRUE(WaitFor([&] { return connects_.load() == 2; }));
  ASSERT_TRUE(WaitFor([&] { return client_->connection_count() == 1; }));
  EXPECT_TRUE(client_->StopKeepingConnected(id));
  EXPECT_TRUE(WaitFor([&] { return client_->connection_count() == 0; }));
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(connects_.load(), 2);  // no reconnect after stopping
  EXPECT_FALSE(client_->StopKeepingConnected(id));
}

TEST_P(TcpClientTest, KeepConnectedBacksOffWhileTheServerIsDown) {
  MakeClient();
  BackoffPolicy backoff;
  backoff.initial = absl::Milliseconds(10);
  backoff.multiplier = 2.0;
  backoff.jitter = 0.0;
  const uint16_t port = UnusedPort();
  TcpClient::ConnectId id =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", port), backoff);
  absl::SleepFor(absl::Milliseconds(400));
  // Waits of 10, 20, 40, 80, 160 ms: about 5-6 attempts in 400 ms, not
  // one every few microseconds.
  const uint64_t attempts = client_->stats().attempts;
  EXPECT_GE(attempts, 3u);
  EXPECT_LE(attempts, 8u);
  EXPECT_TRUE(client_->StopKeepingConnected(id));
}

TEST_P(TcpClientTest, StopCancelsPendingAndClosesOpenConnections) {
  BlackholeListener blackhole;
  std::atomic<int> stopped_closes{0};
  ConnectionCallbacks cb;
  cb.on_close = [&](const ConnectionPtr&, CloseReason r, const absl::Status&) {
    // Slow on purpose: Stop() must wait for on_close to return, not only
    // for the socket to close.
    absl::SleepFor(absl::Milliseconds(100));
    if (r == CloseReason::kStopped) ++stopped_closes;
  };
  MakeClient({}, cb);
  ConnectResult open, pending, after;
  client_->Connect(SocketAddress::LoopbackIPv4(port_), open.Callback());
  ASSERT_TRUE(open.Wait().ok());
  client_->Connect(blackhole.address(), pending.Callback(), absl::Seconds(30));
  client_->Stop();
  EXPECT_EQ(pending.Wait(absl::Milliseconds(1)).status().code(),
            absl::StatusCode::kCancelled);
  EXPECT_EQ(stopped_closes.load(), 1);  // Stop waited for on_close
  EXPECT_EQ(client_->connection_count(), 0u);
  client_->Connect(SocketAddress::LoopbackIPv4(port_), after.Callback());
  EXPECT_EQ(after.Wait().status().code(), absl::StatusCode::kCancelled);
}

// A request that finishes (Cancel, its timeout, another address winning)
// while its attempt is completing: the attempt's connection is already open
// (on_connect ran) when it finds its request gone. It must be closed, not
// left open with no owner (Stop() would wait for it forever). Cancelling
// from inside on_connect hits that window every time.
TEST_P(TcpClientTest, ConnectionThatLostItsRequestWhileOpeningIsClosed) {
  std::atomic<TcpClient::ConnectId> id{0};
  std::atomic<int> closes{0};
  std::atomic<bool> cancelled{false};
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) {
    while (id.load() == 0) std::this_thread::yield();
    cancelled = client_->Cancel(id.load());
  };
  cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
    ++closes;
  };
  MakeClient({}, cb);
  ConnectResult result;
  id = client_->Connect(SocketAddress::LoopbackIPv4(port_), result.Callback());
  EXPECT_EQ(result.Wait().status().code(), absl::StatusCode::kCancelled);
  // (done runs inside Cancel, before on_connect stores its answer.)
  EXPECT_TRUE(WaitFor([&] { return cancelled.load(); }));
  // Closed (on_close runs: on_connect did), and the server sees it go.
  EXPECT_TRUE(WaitFor([&] { return closes.load() == 1; }));
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  EXPECT_EQ(client_->connection_count(), 0u);
  if (closes.load() == 1) client_->Stop();  // returns: nothing left open
}

}  // namespace
}  // namespace mill
