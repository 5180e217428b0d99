// Tests of TcpClient: connect success and every failure kind (refused,
// timeout against a listener whose backlog is full, a name that does not
// resolve, cancel), staggered attempts over several addresses, connecting
// from any thread and from inside handlers, reconnecting with backoff (the
// scheduled waits observed through the client's test hooks) and the backoff
// policy's validation. Stop, cancels landing while an attempt starts and the
// shared resolver are in tcp_client_stop_test.cc. Both dispatch modes.
#include "net/testing/client_fixture.h"

namespace mill {
namespace net_testing {
namespace {

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
  absl::StatusOr<TcpClient::ConnectId> kept =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", port_), backoff);
  ASSERT_TRUE(kept.ok()) << kept.status();
  const TcpClient::ConnectId id = *kept;
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
  absl::StatusOr<TcpClient::ConnectId> kept =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", UnusedPort()), backoff);
  ASSERT_TRUE(kept.ok()) << kept.status();
  const TcpClient::ConnectId id = *kept;
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
  absl::StatusOr<TcpClient::ConnectId> kept =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", UnusedPort()), backoff);
  ASSERT_TRUE(kept.ok()) << kept.status();
  const TcpClient::ConnectId id = *kept;
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
  add("min_uptime",
      [](BackoffPolicy& p) { p.min_uptime = -absl::Milliseconds(1); });
  add("min_uptime",
      [](BackoffPolicy& p) { p.min_uptime = absl::InfiniteDuration(); });
  for (const Case& c : cases) {
    absl::StatusOr<TcpClient::ConnectId> id =
        client_->KeepConnected(target, c.policy);
    ASSERT_FALSE(id.ok()) << c.field;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(id.status().message(),
                                  absl::StrCat("BackoffPolicy::", c.field)))
        << id.status();
  }
  EXPECT_EQ(client_->stats().connects_started, 0u);
  EXPECT_EQ(client_->stats().attempts, 0u);
  EXPECT_EQ(client_->KeepConnected("no-port").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<TcpClient::ConnectId> ok =
      client_->KeepConnected(absl::StrCat("127.0.0.1:", port_));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_NE(*ok, 0u);
  EXPECT_TRUE(WaitFor([&] { return client_->connection_count() == 1; }));
  client_->Stop();
  EXPECT_EQ(client_->KeepConnected(target).status().code(),
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

}  // namespace
}  // namespace net_testing
}  // namespace mill
