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

TEST_P(TcpServerTest, NoDescriptorLeaks) {
  const int before = CountOpenFds();
  ASSERT_GT(before, 0);
  Start();
  {
    std::vector<TestClient> clients;
    for (int i = 0; i < 50; ++i) clients.push_back(Connect());
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(clients[i].SendAll("x").ok());
      ASSERT_EQ(clients[i].RecvExactly(1), "x");
    }
    // Half of them close themselves (some with a reset), the rest are
    // closed by the server's destruction.
    for (int i = 0; i < 25; ++i) {
      if (i % 2) {
        clients[i].Reset();
      } else {
        clients[i].Close();
      }
    }
    ASSERT_TRUE(closes_.WaitForCount(25));
    server_.reset();
  }
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    conns_.clear();
  }
  EXPECT_EQ(closes_.size(), 50u);
  EXPECT_EQ(CountOpenFds(), before);
}

TEST_P(TcpServerTest, DescriptorExhaustionDoesNotSpinAndRecovers) {
  Start();
  rlimit saved;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  // Restores the limit even when an assertion returns early.
  struct RestoreLimit {
    rlimit limit;
    ~RestoreLimit() { setrlimit(RLIMIT_NOFILE, &limit); }
  } restore{saved};
  // Spare descriptors to hand back one at a time once we are out.
  std::vector<int> spares;
  for (int i = 0; i < 3; ++i) {
    spares.push_back(open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_GE(spares.back(), 0);
  }
  // Leave a few free descriptor numbers, counting the holes below the
  // highest one in use (ctest, unlike Bazel, hands its tests a descriptor
  // numbered in the hundreds).
  rlimit low = saved;
  low.rlim_cur = FdLimitLeavingFree(6);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  std::vector<int> fds;
  auto open_client = [&]() -> int {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    sockaddr_in sin = {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port_);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) {
      close(fd);
      return -1000;
    }
    fds.push_back(fd);
    return fd;
  };
  bool exhausted = false;
  for (int i = 0; i < 100; ++i) {
    const TcpServerStats before = server_->stats();
    const int fd = open_client();
    if (fd == -EMFILE) {
      exhausted = true;
      break;
    }
    ASSERT_GE(fd, 0);
    // Let the server take it (accept or shed) before the next one.
    WaitFor(
        [&] {
          const TcpServerStats s = server_->stats();
          return s.accepted + s.refused_no_descriptor >
                 before.accepted + before.refused_no_descriptor;
        },
        absl::Seconds(2));
  }
  ASSERT_TRUE(exhausted);
  // Each freed descriptor lets a client connect while the server has none
  // left to accept with. (The server may win a freed descriptor back for
  // its spare; then the next one serves.)
  for (int spare : spares) {
    close(spare);
    if (server_->stats().refused_no_descriptor >= 1) continue;
    (void)open_client();
    WaitFor([&] { return server_->stats().refused_no_descriptor >= 1; },
            absl::Seconds(1));
  }
  const uint64_t shed = server_->stats().refused_no_descriptor;
  EXPECT_GE(shed, 1u);
  EXPECT_EQ(server_->stats().accept_errors, 0u);
  // Every shed connection was closed promptly (EOF for its client); the
  // accepted ones stay open and silent.
  auto closed_clients = [&] {
    uint64_t n = 0;
    for (int fd : fds) {
      pollfd pfd = {fd, POLLIN, 0};
      if (poll(&pfd, 1, 0) == 1) {
        char c;
        n += recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
      }
    }
    return n;
  };
  EXPECT_TRUE(
      WaitFor([&] { return closed_clients() == shed; }, absl::Seconds(2)))
      << closed_clients() << " vs " << shed;

  // No busy loop while out of descriptors.
  rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  absl::SleepFor(absl::Milliseconds(300));
  getrusage(RUSAGE_SELF, &r1);
  const absl::Duration cpu = absl::DurationFromTimeval(r1.ru_utime) -
                             absl::DurationFromTimeval(r0.ru_utime) +
                             absl::DurationFromTimeval(r1.ru_stime) -
                             absl::DurationFromTimeval(r0.ru_stime);
  EXPECT_LT(cpu, absl::Milliseconds(100)) << "server spins without fds";

  // Free the descriptors: accepting works again.
  for (int fd : fds) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(WaitFor([&] { return server_->connection_count() == 0; }));
  TestClient client = Connect();
  ASSERT_TRUE(client.SendAll("back").ok());
  EXPECT_EQ(client.RecvExactly(4), "back");
}

}  // namespace
}  // namespace net_testing
}  // namespace mill
