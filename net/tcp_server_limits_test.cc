// Tests of TcpServer's limits: connection limit, idle timeout, read-rate
// limits, descriptor leaks and exhaustion, over both dispatch modes.
#include "net/testing/server_fixture.h"

namespace mill {
namespace net_testing {
namespace {

INSTANTIATE_TEST_SUITE_P(
    Modes, TcpServerTest,
    ::testing::Values(DispatchMode::kPool, DispatchMode::kDirect),
    [](const ::testing::TestParamInfo<DispatchMode>& info) {
      return info.param == DispatchMode::kPool ? "Pool" : "Direct";
    });

TEST_P(TcpServerTest, MaxConnectionsRefusesTheExtraOnePromptly) {
  TcpServerOptions options;
  options.max_connections = 2;
  Start({}, options);
  TestClient a = Connect();
  TestClient b = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  TestClient c = Connect();  // the kernel completes the handshake...
  EXPECT_TRUE(c.WaitClosed(absl::Seconds(5)));  // ...and we close it at once
  const TcpServerStats stats = server_->stats();
  EXPECT_EQ(stats.refused, 1u);
  EXPECT_EQ(stats.closed(CloseReason::kRefused), 1u);
  EXPECT_EQ(stats.accepted, 2u);
  EXPECT_EQ(closes_.size(), 0u);  // refusals never reach callbacks
  for (TestClient* t : {&a, &b}) {
    ASSERT_TRUE(t->SendAll("ok").ok());
    EXPECT_EQ(t->RecvExactly(2), "ok");
  }
  // A slot frees up: the next client is served.
  a.Close();
  ASSERT_TRUE(closes_.WaitForCount(1));
  TestClient d = Connect();
  ASSERT_TRUE(d.SendAll("new").ok());
  EXPECT_EQ(d.RecvExactly(3), "new");
}

TEST_P(TcpServerTest, IdleTimeoutClosesIdleButNotActiveConnections) {
  TcpServerOptions options;
  options.connection.idle_timeout = absl::Milliseconds(500);
  Start({}, options);
  const absl::Time start = absl::Now();
  TestClient idle = Connect();
  TestClient active = Connect();
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 2; }));
  // Keep `active` busy (a round trip every ~30 ms, far below the timeout)
  // until `idle` has been closed, and right after that check `active` still
  // works: no wait between the last activity and the check, so a loaded
  // machine cannot turn the check into an idle period of its own.
  bool idle_closed = false;
  while (!idle_closed && absl::Now() - start < absl::Seconds(20)) {
    ASSERT_TRUE(active.SendAll("k").ok());
    ASSERT_EQ(active.RecvExactly(1), "k");
    idle_closed = idle.WaitClosed(absl::Milliseconds(30));
  }
  ASSERT_TRUE(active.SendAll("still").ok());
  EXPECT_EQ(active.RecvExactly(5), "still");
  EXPECT_TRUE(idle_closed);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(500));
  ASSERT_TRUE(closes_.WaitForCount(1));
  EXPECT_EQ(closes_.Count(CloseReason::kIdleTimeout), 1u);
  // Then it idles out too.
  EXPECT_TRUE(active.WaitClosed(absl::Seconds(5)));
  ASSERT_TRUE(closes_.WaitForCount(2));
  EXPECT_EQ(closes_.Count(CloseReason::kIdleTimeout), 2u);
}

TEST_P(TcpServerTest, PerConnectionReadRateLimitCapsThroughput) {
  std::atomic<size_t> received{0};
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll(
      [&](const ConnectionPtr&, absl::string_view d) { received += d.size(); });
  TcpServerOptions options;
  options.connection.read_rate = 1 << 20;  // 1 MiB/s
  options.connection.read_burst = 32 << 10;
  Start(cb, options);
  TestClient client = Connect();
  constexpr size_t kTotal = 512 << 10;
  const absl::Time start = absl::Now();
  std::thread writer(
      [&] { ASSERT_TRUE(client.SendAll(Pattern(2, kTotal)).ok()); });
  ASSERT_TRUE(
      WaitFor([&] { return received.load() == kTotal; }, absl::Seconds(30)));
  const absl::Duration elapsed = absl::Now() - start;
  writer.join();
  // The bucket cannot grant more than burst + rate * t, so reading kTotal
  // takes at least (kTotal - burst) / rate = 0.47 s. (No upper bound beyond
  // the generous wait above: the machine may be slow.)
  EXPECT_GE(elapsed, absl::Seconds(static_cast<double>(kTotal - (32 << 10)) /
                                   (1 << 20)) -
                         absl::Milliseconds(5));
  EXPECT_GT(server_->stats().rate_limit_pauses, 0u);
}

TEST_P(TcpServerTest, GlobalReadLimitIsSharedByConnections) {
  std::atomic<size_t> received{0};
  TcpServerCallbacks cb;
  cb.on_data = ConsumeAll(
      [&](const ConnectionPtr&, absl::string_view d) { received += d.size(); });
  TcpServerOptions options;
  options.connection.shared_read_limit =
      std::make_shared<TokenBucket>(/*rate_per_second=*/1 << 20,
                                    /*burst=*/32 << 10);
  Start(cb, options);
  TestClient a = Connect();
  TestClient b = Connect();
  constexpr size_t kEach = 256 << 10;
  const absl::Time start = absl::Now();
  std::thread wa([&] { ASSERT_TRUE(a.SendAll(Pattern(1, kEach)).ok()); });
  std::thread wb([&] { ASSERT_TRUE(b.SendAll(Pattern(2, kEach)).ok()); });
  ASSERT_TRUE(
      WaitFor([&] { return received.load() == 2 * kEach; }, absl::Seconds(30)));
  const absl::Duration elapsed = absl::Now() - start;
  wa.join();
  wb.join();
  EXPECT_GT(server_->stats().rate_limit_pauses, 0u);
  EXPECT_GE(elapsed, absl::Seconds(static_cast<double>(2 * kEach - (32 << 10)) /
                                   (1 << 20)) -
                         absl::Milliseconds(5));
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
