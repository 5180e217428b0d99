// Tests of expiry and liveness, in both dispatch modes: the idle timeout
// (background sweep and check at hand-out), lifetimes drawn within the
// jitter bounds and never cut short, the liveness check before reuse against
// a server that closed an idle connection and one that sent unsolicited
// bytes (with the pool's loop stalled, so that only the check can notice),
// the same noticed in the background, and the classic keep-alive race.
//
// Timing assertions only ever say "not before" (a timer never fires early):
// a loaded machine makes things late, never early.
#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::LoopGate;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

class ExpiryTest : public PoolFixture {
 protected:
  // Acquires, echoes once and puts the connection back idle.
  uint64_t UseOnce(const std::string& ep) {
    auto sink = Sink::Make();
    absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
    EXPECT_TRUE(lease.ok()) << lease.status();
    if (!lease.ok()) return 0;
    EXPECT_TRUE(Echo(*lease, *sink, "ping"));
    const uint64_t id = (*lease)->id();
    ReleaseAndWaitIdle(*std::move(lease), 1);
    return id;
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, ExpiryTest, connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(ExpiryTest, IdleTimeoutClosesIdleConnectionsInTheBackground) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.idle_timeout = absl::Milliseconds(200);  // sweep every 50 ms
  MakePool(options);
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  const absl::Time released = absl::Now();
  ReleaseAndWaitIdle(*std::move(lease), 1);
  absl::SleepFor(absl::Milliseconds(100));
  if (absl::Now() - released < absl::Milliseconds(200)) {
    EXPECT_EQ(pool_->stats().idle, 1u);  // not before its time
  }
  ASSERT_TRUE(WaitFor([&] {
    return pool_->stats().closed(PoolCloseReason::kIdleTimeout) == 1;
  }));
  EXPECT_GE(absl::Now() - released, absl::Milliseconds(200));
  EXPECT_EQ(pool_->stats().idle, 0u);
  EXPECT_EQ(pool_->stats().open, 0u);
  EXPECT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
}

TEST_P(ExpiryTest, IdleTimeoutIsCheckedWhenHandingOut) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.idle_timeout = absl::Milliseconds(100);
  options.sweep_interval = absl::Hours(1);  // only the hand-out check
  MakePool(options);
  UseOnce(ep);
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(pool_->stats().idle, 1u);  // the sweep has not run
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->reused());
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kIdleTimeout), 1u);
  EXPECT_EQ(s.created, 2u);
}

TEST_P(ExpiryTest, ConnectionsOwnIdleTimeoutWhileIdleCountsAsIdleTimeout) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.idle_timeout = absl::ZeroDuration();
  options.client.connection.idle_timeout = absl::Milliseconds(100);
  MakePool(options);
  UseOnce(ep);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kIdleTimeout), 1u);
}

TEST_P(ExpiryTest, LifetimesAreDrawnWithinTheJitterBounds) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 40;
  options.max_lifetime = absl::Seconds(10);
  options.lifetime_jitter = 0.5;
  options.random_seed = 42;
  MakePool(options);
  std::vector<Lease> leases;
  std::set<int64_t> distinct;
  absl::Duration lo = absl::InfiniteDuration(), hi = absl::ZeroDuration();
  for (int i = 0; i < 40; ++i) {
    absl::StatusOr<Lease> lease = AcquireSync(ep);
    ASSERT_TRUE(lease.ok()) << lease.status();
    const absl::Duration life = lease->lifetime();
    EXPECT_GE(life, absl::Seconds(5));   // max * (1 - jitter)
    EXPECT_LE(life, absl::Seconds(10));  // never beyond the maximum
    lo = std::min(lo, life);
    hi = std::max(hi, life);
    distinct.insert(absl::ToInt64Nanoseconds(life));
    leases.push_back(*std::move(lease));
  }
  // Connections opened together do not expire together: spread over the
  // interval (40 uniform draws; with this seed well over half of it).
  EXPECT_GE(distinct.size(), 39u);
  EXPECT_GE(hi - lo, absl::Milliseconds(2500));
}

TEST_P(ExpiryTest, ZeroJitterAndNoLifetime) {
  const std::string ep = StartServer();
  {
    ConnectionPoolOptions options;
    options.max_lifetime = absl::Seconds(3);
    options.lifetime_jitter = 0;
    MakePool(options);
    absl::StatusOr<Lease> a = AcquireSync(ep);
    absl::StatusOr<Lease> b = AcquireSync(ep);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->lifetime(), absl::Seconds(3));
    EXPECT_EQ(b->lifetime(), absl::Seconds(3));
  }
  MakePool();  // max_lifetime zero: unlimited
  absl::StatusOr<Lease> c = AcquireSync(ep);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->lifetime(), absl::InfiniteDuration());
  EXPECT_EQ(Lease().lifetime(), absl::InfiniteDuration());
}

TEST_P(ExpiryTest, IdleConnectionsCloseAtTheirLifetimeNeverBefore) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 6;
  options.idle_timeout = absl::ZeroDuration();
  options.max_lifetime = absl::Milliseconds(400);
  options.lifetime_jitter = 0.5;
  options.sweep_interval = absl::Milliseconds(10);
  MakePool(options);
  const absl::Time start = absl::Now();  // before any was created
  std::vector<Lease> leases;
  std::vector<absl::Duration> lifetimes;
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<Lease> lease = AcquireSync(ep);
    ASSERT_TRUE(lease.ok());
    lifetimes.push_back(lease->lifetime());
    leases.push_back(*std::move(lease));
  }
  for (size_t i = 0; i < leases.size(); ++i) {
    pool_->Release(std::move(leases[i]), true);
  }
  // At any moment, no more have closed than have reached their lifetime
  // (each was created after `start`).
  bool all_closed = false;
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (!all_closed && absl::Now() < give_up) {
    const uint64_t closed = pool_->stats().closed(PoolCloseReason::kLifetime);
    const absl::Duration elapsed = absl::Now() - start;
    const size_t due =
        std::count_if(lifetimes.begin(), lifetimes.end(),
                      [&](absl::Duration life) { return life <= elapsed; });
    ASSERT_LE(closed, due) << "elapsed " << elapsed;
    all_closed = closed == lifetimes.size();
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_TRUE(all_closed);
  EXPECT_EQ(pool_->stats().open, 0u);
}

TEST_P(ExpiryTest, LeasedConnectionOutlivesItsLifetimeUntilReleased) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_lifetime = absl::Milliseconds(100);
  options.lifetime_jitter = 0;
  options.sweep_interval = absl::Milliseconds(10);
  MakePool(options);
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok());
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE(Echo(*lease, *sink, "still mine"));  // never cut while leased
  pool_->Release(*std::move(lease), true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kLifetime), 1u);
  EXPECT_EQ(pool_->stats().idle, 0u);
}

// The server closes the idle connection while the pool's loop is stalled,
// so the pool cannot have seen the EOF: only the check before reuse stands
// between the dead connection and the user.
TEST_P(ExpiryTest, DeadOnReuseWhenTheServerClosedTheIdleConnection) {
  const std::string ep = StartServer();
  MakePool();
  const uint64_t first = UseOnce(ep);
  std::shared_ptr<connpool_testing::AcquireResult> result;
  auto sink = Sink::Make();
  {
    LoopGate gate(pool_loop_.get());
    ASSERT_EQ(server().Connections().size(), 1u);
    server().Connections()[0]->Close();
    ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
    absl::SleepFor(absl::Milliseconds(50));  // FIN on the wire
    result = AcquireAsync(ep, sink->Callbacks());
    // Decided inside Acquire: the EOF was found and the connection dropped.
    EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDeadOnReuse), 1u);
    EXPECT_FALSE(result->ready());  // a new connection is on its way
    EXPECT_EQ(pool_->stats().connecting, 1u);
  }
  absl::StatusOr<Lease> lease = result->Take();
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_FALSE(lease->reused());
  EXPECT_NE((*lease)->id(), first);
  EXPECT_TRUE(Echo(*lease, *sink, "fresh"));
  EXPECT_EQ(server().stats().accepted, 2u);
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDeadWhileIdle), 0u);
}

TEST_P(ExpiryTest, DeadOnReuseWhenTheServerSentUnsolicitedBytes) {
  const std::string ep = StartServer();
  MakePool();
  const uint64_t first = UseOnce(ep);
  std::shared_ptr<connpool_testing::AcquireResult> result;
  {
    LoopGate gate(pool_loop_.get());
    ASSERT_EQ(server().Broadcast("unsolicited"), 1u);
    absl::SleepFor(absl::Milliseconds(50));  // on the wire
    result = AcquireAsync(ep);
    EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDeadOnReuse), 1u);
  }
  absl::StatusOr<Lease> lease = result->Take();
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_FALSE(lease->reused());
  EXPECT_NE((*lease)->id(), first);
}

// Without the liveness probe the stale connection goes out (the loop had
// not seen the EOF): what the probe is for.
TEST_P(ExpiryTest, WithoutTheProbeOnlyWhatTheLoopSawIsChecked) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.check_liveness = false;
  MakePool(options);
  const uint64_t first = UseOnce(ep);
  std::shared_ptr<connpool_testing::AcquireResult> result;
  {
    LoopGate gate(pool_loop_.get());
    server().Connections()[0]->Close();
    ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
    absl::SleepFor(absl::Milliseconds(50));
    result = AcquireAsync(ep);
    ASSERT_TRUE(result->ready());
  }
  absl::StatusOr<Lease> lease = result->Take();
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(lease->reused());
  EXPECT_EQ((*lease)->id(), first);  // the dead one
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDeadOnReuse), 0u);
}

TEST_P(ExpiryTest, ServerCloseWhileIdleIsNoticedInTheBackground) {
  const std::string ep = StartServer();
  MakePool();
  UseOnce(ep);
  server().Connections()[0]->Close();
  ASSERT_TRUE(WaitFor([&] {
    return pool_->stats().closed(PoolCloseReason::kDeadWhileIdle) == 1;
  }));
  EXPECT_EQ(pool_->stats().idle, 0u);
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  EXPECT_FALSE(lease->reused());
}

// The classic failure: the server closes idle keep-alive connections after
// 300 ms; the client comes back after that. Every request must go out on a
// live connection, whichever way the pool found out.
TEST_P(ExpiryTest, KeepAliveClosedByTheServerNeverReachesTheUser) {
  TcpServerOptions server_options;
  server_options.connection.idle_timeout = absl::Milliseconds(300);
  const std::string ep = StartServer(server_options);
  MakePool();
  constexpr int kRounds = 5;
  for (int round = 0; round < kRounds; ++round) {
    auto sink = Sink::Make();
    absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
    ASSERT_TRUE(lease.ok()) << lease.status();
    EXPECT_FALSE(lease->reused()) << round;  // the old one was dead
    ASSERT_TRUE(Echo(*lease, *sink, absl::StrCat("request ", round)));
    ReleaseAndWaitIdle(*std::move(lease), 1);
    // Come back after the server gave up on it.
    ASSERT_TRUE(WaitFor([&] {
      return server().stats().closed(CloseReason::kIdleTimeout) ==
             static_cast<uint64_t>(round + 1);
    }));
    // And after the FIN reached the client: the server's count can come
    // first (under Wine the FIN follows closesocket later), and no pool
    // can see a FIN still in flight. The pool watches its idle
    // connections, so it closes this one by itself.
    ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  }
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kDeadOnReuse) +
                s.closed(PoolCloseReason::kDeadWhileIdle),
            static_cast<uint64_t>(kRounds));
  EXPECT_EQ(s.failed_connect + s.failed_deadline, 0u);
}

}  // namespace
}  // namespace mill
