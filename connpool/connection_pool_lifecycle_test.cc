// Tests of ConnectionPool's lifecycle and metrics against real echo
// TcpServers, in both dispatch modes: Drain, destruction (leased
// connections closed, waiters answered), the wait histogram and counters,
// the client's stats, and option validation.
#include <algorithm>
#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

class ConnectionPoolTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(ConnectionPoolTest, DrainFailsWaitersClosesIdleAndWaitsForLeases) {
  const std::string a = StartServer();
  const std::string b = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  auto sink = Sink::Make();
  absl::StatusOr<Lease> leased = AcquireSync(a, sink->Callbacks());
  absl::StatusOr<Lease> idle = AcquireSync(b);
  ASSERT_TRUE(leased.ok() && idle.ok());
  ReleaseAndWaitIdle(*std::move(idle), 1);
  auto waiter = AcquireAsync(a);
  std::atomic<int> drained{0};
  pool_->Drain([&] { ++drained; });
  EXPECT_TRUE(pool_->draining());
  EXPECT_FALSE(pool_->drained());
  ASSERT_TRUE(waiter->ready());
  EXPECT_EQ(waiter->Take().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDrain), 1u);  // idle
  EXPECT_EQ(pool_->stats().idle, 0u);
  // No new leases.
  auto refused = AcquireResult::Make();
  pool_->Acquire(a, absl::InfiniteFuture(), AcquireResult::CallbackOf(refused));
  ASSERT_TRUE(refused->ready());
  EXPECT_EQ(refused->Take().status().code(),
            absl::StatusCode::kFailedPrecondition);
  // The lease in use goes on working.
  EXPECT_TRUE(PoolFixture::Echo(*leased, *sink, "still here"));
  EXPECT_EQ(drained.load(), 0);
  pool_->Release(*std::move(leased), /*reusable=*/true);  // closed instead
  ASSERT_TRUE(WaitFor([&] { return drained.load() == 1; }));
  EXPECT_TRUE(pool_->drained());
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kDrain), 2u);
  EXPECT_EQ(s.open, 0u);
  EXPECT_EQ(s.failed_closed, 2u);  // the waiter and the refused Acquire
  // Later Drain calls run their callback at once; drained stays drained.
  bool again = false;
  pool_->Drain([&] { again = true; });
  EXPECT_TRUE(again);
  EXPECT_EQ(drained.load(), 1);
  EXPECT_TRUE(WaitFor([&] {
    return server(0).connection_count() == 0 &&
           server(1).connection_count() == 0;
  }));
}

TEST_P(ConnectionPoolTest, DrainWithNothingOpenIsDrainedAtOnce) {
  MakePool();
  bool drained = false;
  pool_->Drain([&] { drained = true; });
  EXPECT_TRUE(drained);
  EXPECT_TRUE(pool_->drained());
}

TEST_P(ConnectionPoolTest, DrainCancelsConnectsInProgress) {
  const std::string ep = StartServer();
  MakePool();
  std::shared_ptr<AcquireResult> waiter;
  std::atomic<bool> drained{false};
  {
    // With the pool's loop stalled the connect cannot complete.
    connpool_testing::LoopGate gate(pool_loop_.get());
    waiter = AcquireAsync(ep);
    EXPECT_EQ(pool_->stats().connecting, 1u);
    pool_->Drain([&] { drained = true; });
    EXPECT_EQ(waiter->Take().status().code(), absl::StatusCode::kUnavailable);
    EXPECT_TRUE(drained.load());  // the cancelled connect freed the last slot
    EXPECT_EQ(pool_->stats().connecting, 0u);
  }
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(pool_->stats().created, 0u);
  EXPECT_EQ(pool_->stats().open, 0u);
}

TEST_P(ConnectionPoolTest, DestructionClosesLeasedConnectionsAndLeasesSurvive) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok());
  // A request for the same live endpoint, at its limit: queued, with no
  // connect of its own and no deadline soon, so only the destructor can
  // answer it.
  ConnectionPool::RequestId id = 0;
  auto waiter = AcquireAsync(ep, nullptr, absl::Hours(1), &id);
  ASSERT_NE(id, 0u);
  EXPECT_EQ(pool_->stats().pending, 1u);
  EXPECT_EQ(pool_->stats().connecting, 0u);
  pool_.reset();
  EXPECT_EQ(sink->closes(), 1);  // the destructor waited for the close
  EXPECT_EQ(sink->last_reason(), CloseReason::kStopped);
  EXPECT_TRUE((*lease)->is_closed());
  ASSERT_TRUE(waiter->ready());  // before the destructor returned
  EXPECT_EQ(waiter->calls(), 1);
  EXPECT_EQ(waiter->Take().status().code(), absl::StatusCode::kUnavailable);
  Lease orphan = *std::move(lease);  // releasing / dropping it later is fine
  EXPECT_TRUE(orphan);
}

// The bucket a wait falls in (see WaitBucketLimit).
int BucketOf(absl::Duration wait) {
  int bucket = 0;
  while (bucket < ConnectionPoolStats::kWaitBuckets - 1 &&
         wait >= WaitBucketLimit(bucket)) {
    ++bucket;
  }
  return bucket;
}

std::array<uint64_t, ConnectionPoolStats::kWaitBuckets> HistogramDelta(
    const ConnectionPoolStats& before, const ConnectionPoolStats& after) {
  std::array<uint64_t, ConnectionPoolStats::kWaitBuckets> delta{};
  for (int i = 0; i < ConnectionPoolStats::kWaitBuckets; ++i) {
    delta[i] = after.wait_histogram[i] - before.wait_histogram[i];
  }
  return delta;
}

// Waits we control: leases handed out at once (no wait, bucket 0), and one
// request that waits while the test holds the only connection, whose wait
// the test brackets from outside.
TEST_P(ConnectionPoolTest, WaitHistogramCountsEveryLease) {
  using Histogram = std::array<uint64_t, ConnectionPoolStats::kWaitBuckets>;
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  // The first lease waits for its connect: one wait, whatever it took.
  absl::StatusOr<Lease> first = AcquireSync(ep);
  ASSERT_TRUE(first.ok());
  ReleaseAndWaitIdle(*std::move(first), 1);
  const ConnectionPoolStats s1 = pool_->stats();
  EXPECT_EQ(s1.acquired, 1u);
  EXPECT_EQ(s1.wait_total, s1.wait_max);  // one wait so far
  Histogram one{};
  one[BucketOf(s1.wait_total)] = 1;
  EXPECT_EQ(s1.wait_histogram, one);

  // Three handed out at once: no wait each.
  for (int i = 0; i < 3; ++i) {
    auto r = AcquireResult::Make();
    EXPECT_EQ(pool_->Acquire(ep, absl::InfiniteFuture(),
                             AcquireResult::CallbackOf(r)),
              0u);
    absl::StatusOr<Lease> l = r->Take();
    ASSERT_TRUE(l.ok());
    ReleaseAndWaitIdle(*std::move(l), 1);
  }
  const ConnectionPoolStats s2 = pool_->stats();
  EXPECT_EQ(HistogramDelta(s1, s2), (Histogram{3, 0, 0, 0, 0, 0}));
  EXPECT_EQ(s2.wait_total, s1.wait_total);
  EXPECT_EQ(s2.wait_max, s1.wait_max);

  // One more at once (held), and a request that waits for it for at least
  // kHold.
  constexpr absl::Duration kHold = absl::Milliseconds(20);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  const absl::Time asked = absl::Now();
  ConnectionPool::RequestId id = 0;
  auto waiter = AcquireAsync(ep, nullptr, absl::Seconds(20), &id);
  const absl::Time queued = absl::Now();
  ASSERT_NE(id, 0u);
  absl::SleepFor(kHold);
  const absl::Time releasing = absl::Now();
  pool_->Release(*std::move(held), /*reusable=*/true);
  absl::StatusOr<Lease> got = waiter->Take();
  const absl::Time served = absl::Now();
  ASSERT_TRUE(got.ok()) << got.status();
  const ConnectionPoolStats s3 = pool_->stats();
  const absl::Duration wait = s3.wait_total - s2.wait_total;
  EXPECT_GE(wait, releasing - queued);
  EXPECT_LE(wait, served - asked);
  Histogram expected{1, 0, 0, 0, 0, 0};  // `held`
  ++expected[BucketOf(wait)];
  EXPECT_EQ(HistogramDelta(s2, s3), expected) << "wait " << wait;
  EXPECT_EQ(s3.wait_max, std::max(s2.wait_max, wait));
  EXPECT_EQ(s3.acquired, 6u);
  EXPECT_EQ(WaitBucketLimit(0), absl::Microseconds(100));
  EXPECT_EQ(WaitBucketLimit(4), absl::Seconds(1));
  EXPECT_EQ(WaitBucketLimit(5), absl::InfiniteDuration());
}

TEST_P(ConnectionPoolTest, ClientStatsAreExposed) {
  const std::string ep = StartServer();
  MakePool();
  absl::StatusOr<Lease> l = AcquireSync(ep);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(pool_->client_stats().connects_succeeded, 1u);
  EXPECT_EQ(pool_->client_stats().active, 1u);
}

TEST(ConnectionPoolOptionsTest, InvalidOptionsAreRejected) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  EXPECT_EQ(ConnectionPool::Create(nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  ConnectionPoolOptions o;
  o.max_connections = 0;
  EXPECT_EQ(ConnectionPool::Create(loop->get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = {};
  o.max_connections_per_endpoint = 0;
  EXPECT_EQ(ConnectionPool::Create(loop->get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = {};
  o.lifetime_jitter = 1.5;
  EXPECT_EQ(ConnectionPool::Create(loop->get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = {};
  o.idle_timeout = absl::Seconds(-1);
  EXPECT_EQ(ConnectionPool::Create(loop->get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = {};
  o.client.connect_timeout = absl::ZeroDuration();  // TcpClient's own check
  EXPECT_EQ(ConnectionPool::Create(loop->get(), o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ConnectionPool::Create(loop->get()).ok());
}

TEST(PoolCloseReasonTest, Names) {
  EXPECT_EQ(PoolCloseReasonName(PoolCloseReason::kDeadOnReuse),
            "dead_on_reuse");
  EXPECT_EQ(PoolCloseReasonName(PoolCloseReason::kDrain), "drain");
  EXPECT_EQ(PoolCloseReasonName(PoolCloseReason::kEvicted), "evicted");
}

}  // namespace
}  // namespace mill
