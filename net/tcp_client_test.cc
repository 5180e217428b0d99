// Tests of TcpClient: connect success and every failure kind (refused,
// timeout against a listener whose backlog is full, a name that does not
// resolve, cancel), staggered attempts over several addresses, connecting
// from any thread and from inside handlers, reconnecting with backoff (the
// scheduled waits observed through the client's test hooks), the backoff
// policy's validation, Stop() (also while a connect completes), cancels
// landing between an attempt's recording and its Start, and the resolver
// the clients share. Both dispatch modes; the concurrent ones run under TSan
// in CI.
#include "net/tcp_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

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

// While the target refuses, each failure schedules the next connect after
// initial * multiplier^(failures - 1), capped at max: observed through the
// keeper's seam, so the assertion is on the delays themselves, not on how
// many attempts fit in a wall-clock window. Exactly one attempt per wait.
TEST_P(TcpClientTest, KeepConnectedBacksOffExponentiallyWhileTheServerIsDown) {
  std::mutex mu;
  std::vector<absl::Duration> delays;
  std::vector<uint64_t> attempts_when_scheduled;
  net_internal::ClientHooks hooks;
  hooks.backoff_scheduled = [&](absl::Duration delay) {
    const uint64_t attempts = client_->stats().attempts;
    std::lock_guard<std::mutex> lock(mu);
    delays.push_back(delay);
    attempts_when_scheduled.push_back(attempts);
  };
  MakeClient({}, {}, std::move(hooks));
  BackoffPolicy backoff;
  backoff.initial = absl::Milliseconds(1);
  backoff.multiplier = 2.0;
  backoff.max = absl::Milliseconds(8);
  backoff.jitter = 0.0;
  TcpClient::ConnectId id =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", UnusedPort()), backoff);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return delays.size() >= 6;
  }));
  EXPECT_TRUE(client_->StopKeepingConnected(id));
  std::lock_guard<std::mutex> lock(mu);
  const std::vector<absl::Duration> expected = {
      absl::Milliseconds(1), absl::Milliseconds(2), absl::Milliseconds(4),
      absl::Milliseconds(8), absl::Milliseconds(8), absl::Milliseconds(8)};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(delays[i], expected[i]) << "wait " << i;
    EXPECT_EQ(attempts_when_scheduled[i], i + 1) << "wait " << i;
  }
}

// The jitter scales each wait by 1 - jitter + 2 * jitter * u for the
// uniform draw u (injected here).
TEST_P(TcpClientTest, KeepConnectedJitterScalesEachWait) {
  std::mutex mu;
  std::vector<absl::Duration> delays;
  const std::vector<double> draws = {0.0, 1.0, 0.5, 0.25};
  std::atomic<size_t> next_draw{0};
  net_internal::ClientHooks hooks;
  hooks.jitter_uniform = [&] { return draws[next_draw++ % draws.size()]; };
  hooks.backoff_scheduled = [&](absl::Duration delay) {
    std::lock_guard<std::mutex> lock(mu);
    delays.push_back(delay);
  };
  MakeClient({}, {}, std::move(hooks));
  BackoffPolicy backoff;
  backoff.initial = absl::Milliseconds(2);
  backoff.multiplier = 2.0;
  backoff.max = absl::Seconds(1);
  backoff.jitter = 0.5;
  TcpClient::ConnectId id =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", UnusedPort()), backoff);
  ASSERT_NE(id, 0u);
  ASSERT_TRUE(WaitFor([&] {
    std::lock_guard<std::mutex> lock(mu);
    return delays.size() >= 4;
  }));
  EXPECT_TRUE(client_->StopKeepingConnected(id));
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(delays[0], absl::Milliseconds(1));   // 2 ms * 0.5
  EXPECT_EQ(delays[1], absl::Milliseconds(6));   // 4 ms * 1.5
  EXPECT_EQ(delays[2], absl::Milliseconds(8));   // 8 ms * 1.0
  EXPECT_EQ(delays[3], absl::Milliseconds(12));  // 16 ms * 0.75
}

// Defect 9: a policy that would redial at full speed (initial 0) or never
// grow is refused; nothing is started.
TEST_P(TcpClientTest, KeepConnectedRejectsAnInvalidBackoffPolicy) {
  MakeClient();
  const std::string target = absl::StrCat("127.0.0.1:", UnusedPort());
  struct Case {
    const char* field;
    BackoffPolicy policy;
  };
  std::vector<Case> cases;
  auto add = [&](const char* field, auto change) {
    BackoffPolicy p;
    change(p);
    cases.push_back({field, p});
  };
  add("initial", [](BackoffPolicy& p) { p.initial = absl::ZeroDuration(); });
  add("initial", [](BackoffPolicy& p) { p.initial = -absl::Milliseconds(1); });
  add("initial",
      [](BackoffPolicy& p) { p.initial = absl::InfiniteDuration(); });
  add("max", [](BackoffPolicy& p) { p.max = p.initial / 2; });
  add("max", [](BackoffPolicy& p) { p.max = absl::InfiniteDuration(); });
  add("multiplier", [](BackoffPolicy& p) { p.multiplier = 0.5; });
  add("multiplier", [](BackoffPolicy& p) { p.multiplier = std::nan(""); });
  add("jitter", [](BackoffPolicy& p) { p.jitter = -0.1; });
  add("jitter", [](BackoffPolicy& p) { p.jitter = 1.5; });
  for (const Case& c : cases) {
    EXPECT_EQ(client_->KeepConnected(target, c.policy), 0u) << c.field;
    absl::StatusOr<TcpClient::ConnectId> id =
        client_->TryKeepConnected(target, c.policy);
    ASSERT_FALSE(id.ok()) << c.field;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(id.status().message(),
                                  absl::StrCat("BackoffPolicy::", c.field)))
        << id.status();
  }
  EXPECT_EQ(client_->stats().connects_started, 0u);
  EXPECT_EQ(client_->stats().attempts, 0u);
  EXPECT_EQ(client_->TryKeepConnected("no-port", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<TcpClient::ConnectId> ok =
      client_->TryKeepConnected(absl::StrCat("127.0.0.1:", port_), {});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_NE(*ok, 0u);
  EXPECT_TRUE(WaitFor([&] { return client_->connection_count() == 1; }));
  client_->Stop();
  EXPECT_EQ(client_->TryKeepConnected(target, {}).status().code(),
            absl::StatusCode::kCancelled);
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

// --- Cancels that land while an attempt is being started (defect 4) ------
//
// StartAttempt records the attempt, releases the lock and starts the
// connection. A cancel (Cancel, the deadline, Stop, a pool's Drain through
// Cancel) that lands in between must not tear the connection down under its
// Start: the attempt is abandoned once Start returned, so no on_connect runs
// for a connection nobody will get (or, if the connect completed, on_close
// follows it), nothing stays registered, and Stop's wait ends.

enum class WindowCancel { kCancel, kDeadline, kStop };

struct WindowCase {
  WindowCancel cancel;
  bool reachable;  // the echo server (connects at once) or a black hole
};

class TcpClientStartWindowTest : public TcpClientTest {
 protected:
  void Run(WindowCase c) {
    BlackholeListener blackhole;
    std::atomic<int> opened{0}, closed{0}, windows{0};
    ConnectionCallbacks cb;
    cb.on_connect = [&](const ConnectionPtr&) { ++opened; };
    cb.on_close = [&](const ConnectionPtr&, CloseReason, const absl::Status&) {
      ++closed;
    };
    std::vector<std::unique_ptr<ConnectResult>> results;
    std::atomic<ConnectResult*> current{nullptr};
    std::thread stopper;
    net_internal::ClientHooks hooks;
    hooks.before_start = [&](uint64_t id, const ConnectionPtr&) {
      ++windows;
      switch (c.cancel) {
        case WindowCancel::kCancel:
          EXPECT_TRUE(client_->Cancel(id));
          break;
        case WindowCancel::kDeadline:
          // The deadline fires on the loop meanwhile.
          EXPECT_TRUE(WaitFor([&] { return current.load()->calls() == 1; }));
          break;
        case WindowCancel::kStop:
          // Stop() waits for this attempt: it must run elsewhere.
          stopper = std::thread([&] { client_->Stop(); });
          EXPECT_TRUE(WaitFor([&] { return current.load()->calls() == 1; }));
          break;
      }
    };
    MakeClient({}, cb, std::move(hooks));
    const SocketAddress target =
        c.reachable ? SocketAddress::LoopbackIPv4(port_) : blackhole.address();
    // The deadline must not pass before the attempt reaches the window (it
    // would finish the request first, also correctly): on a slow machine,
    // again with more time.
    std::vector<absl::Duration> timeouts = {absl::Seconds(30)};
    if (c.cancel == WindowCancel::kDeadline) {
      timeouts = {absl::Milliseconds(5), absl::Milliseconds(100),
                  absl::Seconds(1), absl::Seconds(5)};
    }
    for (absl::Duration timeout : timeouts) {
      results.push_back(std::make_unique<ConnectResult>());
      current = results.back().get();
      // A numeric target: the attempt starts inside Connect, on this thread.
      client_->Connect(target, current.load()->Callback(), timeout);
      if (windows.load() > 0) break;
      EXPECT_EQ(current.load()->Wait().status().code(),
                absl::StatusCode::kDeadlineExceeded);
    }
    ConnectResult& result = *current.load();
    if (stopper.joinable()) stopper.join();
    EXPECT_EQ(windows.load(), 1);
    const absl::StatusCode expected = c.cancel == WindowCancel::kDeadline
                                          ? absl::StatusCode::kDeadlineExceeded
                                          : absl::StatusCode::kCancelled;
    EXPECT_EQ(result.Wait().status().code(), expected);
    if (!c.reachable) {
      // Never connected: no on_connect, ever (Start has returned).
      EXPECT_EQ(opened.load(), 0);
    }
    // An on_connect (the connect completed meanwhile) is followed by
    // on_close; the server sees the connection go.
    EXPECT_TRUE(WaitFor([&] { return opened.load() == closed.load(); }))
        << opened.load() << " opened, " << closed.load() << " closed";
    EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
    client_->Stop();  // returns: nothing live is left
    EXPECT_EQ(opened.load(), closed.load());
    EXPECT_EQ(client_->connection_count(), 0u);
    EXPECT_EQ(client_->stats().pending, 0u);
    EXPECT_EQ(result.calls(), 1);
    client_.reset();  // before the hooks' state goes
  }
};

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpClientStartWindowTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpClientStartWindowTest, CancelToUnreachable) {
  Run({WindowCancel::kCancel, false});
}
TEST_P(TcpClientStartWindowTest, CancelToReachable) {
  Run({WindowCancel::kCancel, true});
}
TEST_P(TcpClientStartWindowTest, DeadlineToUnreachable) {
  Run({WindowCancel::kDeadline, false});
}
TEST_P(TcpClientStartWindowTest, StopToUnreachable) {
  Run({WindowCancel::kStop, false});
}
TEST_P(TcpClientStartWindowTest, StopToReachable) {
  Run({WindowCancel::kStop, true});
}

// Defect 3: a connect that completes after Stop() began (here: while Stop
// is between marking the client stopping and cancelling what is pending)
// must not be adopted as open, or Stop would never close it and wait
// forever. It is closed (kStopped) and its callback gets Cancelled.
TEST_P(TcpClientTest, ConnectCompletingWhileStoppingIsClosed) {
  std::atomic<bool> connecting{false}, stop_begun{false};
  std::mutex mu;
  std::vector<CloseReason> reasons;
  ConnectResult result;
  ConnectionCallbacks cb;
  cb.on_connect = [&](const ConnectionPtr&) {
    // Hold the completion until Stop() has begun.
    connecting = true;
    EXPECT_TRUE(WaitFor([&] { return stop_begun.load(); }));
  };
  cb.on_close = [&](const ConnectionPtr&, CloseReason r, const absl::Status&) {
    std::lock_guard<std::mutex> lock(mu);
    reasons.push_back(r);
  };
  net_internal::ClientHooks hooks;
  hooks.stop_begun = [&] {
    if (stop_begun.exchange(true)) return;  // the first Stop() only
    // The connect completes now, inside Stop.
    EXPECT_TRUE(WaitFor([&] { return result.calls() == 1; }));
  };
  MakeClient({}, cb, std::move(hooks));
  client_->Connect(SocketAddress::LoopbackIPv4(port_), result.Callback());
  ASSERT_TRUE(WaitFor([&] { return connecting.load(); }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    client_->Stop();
    stopped = true;
  });
  const bool returned = WaitFor([&] { return stopped.load(); });
  EXPECT_TRUE(returned) << "Stop() did not return";
  if (!returned) {
    absl::StatusOr<ConnectionPtr> leaked = result.Wait();
    if (leaked.ok()) (*leaked)->Close();  // lets Stop() return
  }
  stopper.join();
  EXPECT_EQ(result.Wait().status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(client_->connection_count(), 0u);
  {
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(reasons, std::vector<CloseReason>{CloseReason::kStopped});
  }
  EXPECT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  client_.reset();  // before the hooks' state goes
}

// --- The shared resolver -----------------------------------------------

// Two clients (say, two pools) connecting to one name at once cause one
// lookup; a later connect is answered from the cache.
TEST_P(TcpClientTest, ClientsShareOneLookupOfAName) {
  std::atomic<int> lookups{0};
  std::atomic<bool> release{false};
  net_internal::Resolver::Options options;
  options.lookup =
      [&](const std::string& host) -> net_internal::Resolver::Result {
    ++lookups;
    EXPECT_EQ(host, "service.test");
    EXPECT_TRUE(WaitFor([&] { return release.load(); }));
    return net_internal::Resolver::Addresses{SocketAddress::LoopbackIPv4(0)};
  };
  auto resolver = std::make_shared<net_internal::Resolver>(options);
  net_internal::ClientHooks hooks;
  hooks.resolver = resolver;
  MakeClient({}, {}, hooks);
  absl::StatusOr<std::unique_ptr<TcpClient>> other =
      net_internal::TcpClientAccess::Create(loop_.get(), {}, {}, hooks);
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string target = absl::StrCat("service.test:", port_);
  ConnectResult first, second, third;
  client_->Connect(target, first.Callback());
  (*other)->Connect(target, second.Callback());
  EXPECT_TRUE(WaitFor([&] { return resolver->stats().joined == 1; }));
  release = true;
  for (ConnectResult* r : {&first, &second}) {
    absl::StatusOr<ConnectionPtr> c = r->Wait();
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->peer_address(), SocketAddress::LoopbackIPv4(port_));
  }
  client_->Connect(target, third.Callback());
  ASSERT_TRUE(third.Wait().ok());
  EXPECT_EQ(lookups.load(), 1);
  EXPECT_EQ(resolver->stats().cache_hits, 1u);
  EXPECT_EQ(client_->stats().resolutions, 2u);
  EXPECT_EQ((*other)->stats().resolutions, 1u);
  other->reset();
}

// By default every client uses the one process-wide resolver.
TEST_P(TcpClientTest, ClientsUseTheProcessWideResolver) {
  MakeClient();
  std::shared_ptr<net_internal::Resolver> shared =
      net_internal::Resolver::Shared();
  const net_internal::Resolver::Stats before = shared->stats();
  const std::string target = absl::StrCat("localhost:", port_);
  ConnectResult first, second;
  client_->Connect(target, first.Callback());
  ASSERT_TRUE(first.Wait().ok());
  absl::StatusOr<std::unique_ptr<TcpClient>> other =
      TcpClient::Create(loop_.get(), {});
  ASSERT_TRUE(other.ok());
  (*other)->Connect(target, second.Callback());
  ASSERT_TRUE(second.Wait().ok());
  const net_internal::Resolver::Stats after = shared->stats();
  EXPECT_LE(after.lookups - before.lookups, 1u);  // 0: cached earlier
  EXPECT_GE(after.cache_hits - before.cache_hits, 1u);
  other->reset();
}

}  // namespace
}  // namespace mill
