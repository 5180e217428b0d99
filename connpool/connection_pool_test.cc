// Tests of ConnectionPool's rules against real echo TcpServers, in both
// dispatch modes: LIFO reuse, the three connection limits, the bounded
// queue, deadlines, cancel, connect failures. Other files: the hand-over
// (connection_pool_handover_test.cc), lease callbacks
// (connection_pool_callbacks_test.cc), drain, destruction and metrics
// (connection_pool_lifecycle_test.cc), expiry and liveness
// (connection_pool_expiry_test.cc), concurrency
// (connection_pool_stress_test.cc); the books alone, without sockets,
// internal/pool_state_test.cc.
#include "connpool/connection_pool.h"

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_listener.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

static_assert(!std::is_copy_constructible<Lease>::value, "move-only");
static_assert(!std::is_copy_assignable<Lease>::value, "move-only");
static_assert(std::is_nothrow_move_constructible<Lease>::value, "movable");

class ConnectionPoolTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(ConnectionPoolTest, FreshConnectionEchoesThenIsReused) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok()) << lease.status();
  EXPECT_FALSE(lease->reused());
  EXPECT_TRUE((*lease)->is_outbound());
  EXPECT_TRUE(Echo(*lease, *sink, "hello"));
  const uint64_t id = (*lease)->id();
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.active, 1u);
  EXPECT_EQ(s.idle, 0u);
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.endpoints, 1u);

  ReleaseAndWaitIdle(*std::move(lease), 1);
  s = pool_->stats();
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(s.open, 1u);

  auto sink2 = Sink::Make();
  absl::StatusOr<Lease> again = AcquireSync(ep, sink2->Callbacks());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->reused());
  EXPECT_EQ((*again)->id(), id);
  EXPECT_TRUE(Echo(*again, *sink2, "again"));
  EXPECT_EQ(sink->data_calls(), 1);  // the first holder saw nothing more
  s = pool_->stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 1u);
  EXPECT_EQ(s.acquired, 2u);
  EXPECT_EQ(server().stats().accepted, 1u);
}

TEST_P(ConnectionPoolTest, IdleConnectionIsHandedOutInlineOnTheCallingThread) {
  const std::string ep = StartServer();
  MakePool();
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  ReleaseAndWaitIdle(*std::move(lease), 1);
  auto result = AcquireResult::Make();
  ConnectionPool::RequestId id = pool_->Acquire(
      ep, absl::InfiniteFuture(), AcquireResult::CallbackOf(result));
  EXPECT_EQ(id, 0u);             // answered at once ...
  EXPECT_TRUE(result->ready());  // ... before Acquire returned
  EXPECT_EQ(result->thread(), std::this_thread::get_id());
  EXPECT_TRUE(result->Take()->reused());
}

TEST_P(ConnectionPoolTest, IdleConnectionsAreReusedMostRecentlyUsedFirst) {
  const std::string ep = StartServer();
  MakePool();
  std::vector<Lease> leases;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Lease> lease = AcquireSync(ep);
    ASSERT_TRUE(lease.ok()) << lease.status();
    leases.push_back(*std::move(lease));
  }
  const uint64_t a = leases[0]->id(), b = leases[1]->id(), c = leases[2]->id();
  EXPECT_EQ(pool_->stats().created, 3u);
  // Released A, then B, then C: C was used last.
  for (size_t i = 0; i < 3; ++i)
    ReleaseAndWaitIdle(std::move(leases[i]), i + 1);
  std::vector<uint64_t> order;
  std::vector<Lease> again;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Lease> lease = AcquireSync(ep);
    ASSERT_TRUE(lease.ok());
    EXPECT_TRUE(lease->reused());
    order.push_back((*lease)->id());
    again.push_back(*std::move(lease));
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{c, b, a}));
  EXPECT_EQ(pool_->stats().created, 3u);
}

TEST_P(ConnectionPoolTest, PerEndpointLimitQueuesAndServesWaitersInOrder) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> first = AcquireSync(ep);
  ASSERT_TRUE(first.ok());
  const uint64_t id = (*first)->id();
  ConnectionPool::RequestId r1 = 0, r2 = 0;
  auto w1 = AcquireAsync(ep, nullptr, absl::Seconds(20), &r1);
  auto w2 = AcquireAsync(ep, nullptr, absl::Seconds(20), &r2);
  EXPECT_NE(r1, 0u);
  EXPECT_NE(r2, 0u);
  EXPECT_NE(r1, r2);
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.pending, 2u);
  EXPECT_EQ(s.open, 1u);  // no second connection: the limit holds
  EXPECT_EQ(s.connecting, 0u);
  absl::SleepFor(absl::Milliseconds(50));  // a wait of at least 50 ms
  EXPECT_FALSE(w1->ready());
  EXPECT_FALSE(w2->ready());

  pool_->Release(*std::move(first), /*reusable=*/true);
  absl::StatusOr<Lease> got1 = w1->Take();
  ASSERT_TRUE(got1.ok()) << got1.status();
  EXPECT_TRUE(got1->reused());
  EXPECT_EQ((*got1)->id(), id);
  EXPECT_FALSE(w2->ready());  // the oldest waiter went first
  EXPECT_EQ(pool_->stats().pending, 1u);

  pool_->Release(*std::move(got1), /*reusable=*/true);
  absl::StatusOr<Lease> got2 = w2->Take();
  ASSERT_TRUE(got2.ok()) << got2.status();
  EXPECT_EQ((*got2)->id(), id);
  s = pool_->stats();
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.reused, 2u);
  // The queued waits were measured (at least the 50 ms slept above).
  EXPECT_GE(s.wait_max, absl::Milliseconds(50));
  EXPECT_EQ(w1->calls(), 1);
  EXPECT_EQ(w2->calls(), 1);
}

TEST_P(ConnectionPoolTest, QueueBoundFailsAtOnceWithResourceExhausted) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  options.max_pending = 2;
  MakePool(options);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  auto w1 = AcquireAsync(ep);
  auto w2 = AcquireAsync(ep);
  auto over = AcquireResult::Make();
  EXPECT_EQ(pool_->Acquire(ep, absl::InfiniteFuture(),
                           AcquireResult::CallbackOf(over)),
            0u);
  ASSERT_TRUE(over->ready());  // before Acquire returned
  EXPECT_EQ(over->thread(), std::this_thread::get_id());
  EXPECT_EQ(over->Take().status().code(), absl::StatusCode::kResourceExhausted);
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.failed_queue_full, 1u);
  EXPECT_EQ(s.pending, 2u);
  // The queued ones are still served.
  pool_->Release(*std::move(held), true);
  absl::StatusOr<Lease> l1 = w1->Take();
  ASSERT_TRUE(l1.ok());
  pool_->Release(*std::move(l1), true);
  EXPECT_TRUE(w2->Take().ok());
}

TEST_P(ConnectionPoolTest, PerEndpointQueueBound) {
  const std::string a = StartServer();
  const std::string b = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  options.max_pending = 10;
  options.max_pending_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> la = AcquireSync(a);
  absl::StatusOr<Lease> lb = AcquireSync(b);
  ASSERT_TRUE(la.ok() && lb.ok());
  auto wa = AcquireAsync(a);
  EXPECT_EQ(AcquireSync(a).status().code(),
            absl::StatusCode::kResourceExhausted);
  auto wb = AcquireAsync(b);  // another endpoint still has room
  EXPECT_FALSE(wb->ready());
  EXPECT_EQ(pool_->stats().pending, 2u);
}

TEST_P(ConnectionPoolTest, MaxPendingZeroNeverQueues) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  options.max_pending = 0;
  MakePool(options);
  absl::StatusOr<Lease> held = AcquireSync(ep);  // may open: not a queue
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(AcquireSync(ep).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_P(ConnectionPoolTest, TotalLimitEvictsAnotherEndpointsIdleConnection) {
  const std::string a = StartServer();
  const std::string b = StartServer();
  ConnectionPoolOptions options;
  options.max_connections = 2;
  options.max_connections_per_endpoint = 2;
  MakePool(options);
  absl::StatusOr<Lease> a1 = AcquireSync(a);
  absl::StatusOr<Lease> a2 = AcquireSync(a);
  ASSERT_TRUE(a1.ok() && a2.ok());
  // The total limit holds: B's request is queued (Acquire decides that
  // before it returns) and no connection was started for it.
  ConnectionPool::RequestId id = 0;
  auto wb = AcquireAsync(b, nullptr, absl::Seconds(20), &id);
  EXPECT_NE(id, 0u);
  ConnectionPoolStats queued = pool_->stats();
  EXPECT_EQ(queued.pending, 1u);
  EXPECT_EQ(queued.open, 2u);
  EXPECT_EQ(queued.connecting, 0u);
  EXPECT_EQ(pool_->client_stats().connects_started, 2u);
  EXPECT_FALSE(wb->ready());
  // A release to A's idle set frees nothing for A, but B's waiter needs the
  // slot: the idle connection is closed and B gets a new one.
  pool_->Release(*std::move(a1), /*reusable=*/true);
  absl::StatusOr<Lease> b1 = wb->Take();
  ASSERT_TRUE(b1.ok()) << b1.status();
  EXPECT_FALSE(b1->reused());
  EXPECT_EQ(b1->connection()->peer_address().port(),
            server(1).local_address().port());
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kEvicted), 1u);
  EXPECT_EQ(s.open, 2u);
  EXPECT_EQ(s.idle, 0u);
  // Releasing as not reusable frees the slot for the next waiter too.
  auto wb2 = AcquireAsync(b);
  pool_->Release(*std::move(a2), /*reusable=*/false);
  absl::StatusOr<Lease> b2 = wb2->Take();
  ASSERT_TRUE(b2.ok()) << b2.status();
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kNotReusable), 1u);
}

TEST_P(ConnectionPoolTest, IdleLimitClosesTheLeastRecentlyUsed) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_idle_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> l1 = AcquireSync(ep);
  absl::StatusOr<Lease> l2 = AcquireSync(ep);
  ASSERT_TRUE(l1.ok() && l2.ok());
  const uint64_t second = (*l2)->id();
  ReleaseAndWaitIdle(*std::move(l1), 1);
  pool_->Release(*std::move(l2), true);
  ASSERT_TRUE(WaitFor(
      [&] { return pool_->stats().closed(PoolCloseReason::kEvicted) == 1; }));
  EXPECT_EQ(pool_->stats().idle, 1u);
  absl::StatusOr<Lease> again = AcquireSync(ep);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->id(), second);
  // The server saw the evicted one close.
  EXPECT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
}

TEST_P(ConnectionPoolTest, NoIdleKeptWhenMaxIdleIsZero) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_idle_per_endpoint = 0;
  MakePool(options);
  absl::StatusOr<Lease> l = AcquireSync(ep);
  ASSERT_TRUE(l.ok());
  pool_->Release(*std::move(l), true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kEvicted), 1u);
}

TEST_P(ConnectionPoolTest, QueuedRequestTimesOutWithDeadlineExceededOnce) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  const absl::Time start = absl::Now();
  auto waiter = AcquireAsync(ep, nullptr, absl::Milliseconds(100));
  absl::StatusOr<Lease> result = waiter->Take();
  const absl::Duration waited = absl::Now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_GE(waited, absl::Milliseconds(95));  // never early
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.failed_deadline, 1u);
  // The release that follows finds no waiter: the connection goes idle, and
  // the timed-out callback is not called again.
  ReleaseAndWaitIdle(*std::move(held), 1);
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(waiter->calls(), 1);
}

TEST_P(ConnectionPoolTest, PastDeadlineFailsAtOnceUnlessAConnectionIsIdle) {
  const std::string ep = StartServer();
  MakePool();
  auto late = AcquireResult::Make();
  pool_->Acquire(ep, absl::Now() - absl::Seconds(1),
                 AcquireResult::CallbackOf(late));
  ASSERT_TRUE(late->ready());
  EXPECT_EQ(late->Take().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(pool_->stats().open, 0u);  // no connect was started
  EXPECT_EQ(pool_->stats().endpoints, 0u);

  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  ReleaseAndWaitIdle(*std::move(lease), 1);
  auto idle = AcquireResult::Make();
  pool_->Acquire(ep, absl::Now() - absl::Seconds(1),
                 AcquireResult::CallbackOf(idle));
  ASSERT_TRUE(idle->ready());
  EXPECT_TRUE(idle->Take().ok());  // no wait needed
}

TEST_P(ConnectionPoolTest, CancelAcquireWithdrawsAQueuedRequest) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  ConnectionPool::RequestId id = 0;
  auto waiter = AcquireAsync(ep, nullptr, absl::Seconds(20), &id);
  ASSERT_NE(id, 0u);
  EXPECT_TRUE(pool_->CancelAcquire(id));
  ASSERT_TRUE(waiter->ready());  // on this thread, before it returned
  EXPECT_EQ(waiter->Take().status().code(), absl::StatusCode::kCancelled);
  EXPECT_FALSE(pool_->CancelAcquire(id));
  EXPECT_FALSE(pool_->CancelAcquire(12345));
  EXPECT_EQ(pool_->stats().cancelled, 1u);
  EXPECT_EQ(pool_->stats().pending, 0u);
  ReleaseAndWaitIdle(*std::move(held), 1);
  EXPECT_EQ(waiter->calls(), 1);
}

TEST_P(ConnectionPoolTest, ConnectFailureFailsTheWaiterWithTheConnectError) {
  uint16_t port;
  {
    absl::StatusOr<TcpListener> l =
        TcpListener::Bind(SocketAddress::LoopbackIPv4(0));
    ASSERT_TRUE(l.ok());
    port = l->local_address()->port();
  }  // closed: nobody listens there
  MakePool();
  absl::StatusOr<Lease> lease = AcquireSync(absl::StrCat("127.0.0.1:", port));
  EXPECT_EQ(lease.status().code(), absl::StatusCode::kUnavailable)
      << lease.status();
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.connect_failures, 1u);
  EXPECT_EQ(s.failed_connect, 1u);
  EXPECT_EQ(s.open, 0u);
  EXPECT_EQ(s.pending, 0u);
  EXPECT_EQ(s.endpoints, 0u);  // nothing left behind for that endpoint
}

TEST_P(ConnectionPoolTest, MalformedEndpointIsInvalidArgumentAtOnce) {
  MakePool();
  auto result = AcquireAsync("no-port-here");
  ASSERT_TRUE(result->ready());  // before Acquire returned
  EXPECT_EQ(result->Take().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool_->stats().open, 0u);
  EXPECT_EQ(pool_->stats().endpoints, 0u);
}

}  // namespace
}  // namespace mill
