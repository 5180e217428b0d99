// Tests of ConnectionPool's hand-over of connections, against real echo
// TcpServers in both dispatch modes: the checks before a reused connection
// is handed out (dead, busy, a deadline passing meanwhile, health-check
// hooks) and a connect that outlives its request.
#include <atomic>
#include <condition_variable>
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
#include "connpool/connection_pool.h"
#include "connpool/testing/pool_test_fixture.h"
#include "gtest/gtest.h"
#include "net/connection.h"
#include "net/socket_address.h"
#include "net/tcp_server.h"
#include "reactor/event_loop.h"

namespace mill {
namespace {

using connpool_testing::PoolFixture;
using connpool_testing::WaitFor;

class ConnectionPoolTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

// A connection released to a waiting request is checked like any reused
// one: here the server closed it just before the release (the pool's loop
// stalled, so only the probe can tell). The waiter goes back to the head of
// the queue and gets a new connection; it never sees the dead one.
TEST_P(ConnectionPoolTest, DeadConnectionAtHandOverRequeuesTheWaiter) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> held = AcquireSync(ep);
  ASSERT_TRUE(held.ok());
  const uint64_t dead_id = (*held)->id();
  auto waiter = AcquireAsync(ep);
  // The client side is open once Acquire returns; the server may not have
  // accepted yet.
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  {
    connpool_testing::LoopGate gate(pool_loop_.get());
    server().Connections()[0]->Close();
    ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));
    absl::SleepFor(absl::Milliseconds(50));  // FIN on the wire
    pool_->Release(*std::move(held), /*reusable=*/true);
    EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kDeadOnReuse), 1u);
    EXPECT_FALSE(waiter->ready());
    EXPECT_EQ(pool_->stats().pending, 1u);
    EXPECT_EQ(pool_->stats().connecting, 1u);  // its replacement
  }
  absl::StatusOr<Lease> got = waiter->Take();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(got->reused());
  EXPECT_NE((*got)->id(), dead_id);
  EXPECT_EQ(waiter->calls(), 1);
}

// The deadline passes while the waiter's connection is being checked (a
// slow hook): when the check then fails the waiter is not requeued but
// fails with DeadlineExceeded, once. With `stall_loop` the pool's loop is
// stalled meanwhile, so the deadline timer cannot fire during the check:
// the failed hand-over must see by itself that the deadline has passed and
// fail the waiter at once (before, it was requeued to wait for the late
// timer, or got a new connection first: a flake on a loaded machine).
class DeadlineDuringCheckTest : public PoolFixture {
 protected:
  void Run(bool stall_loop) {
    const std::string ep = StartServer();
    ConnectionPoolOptions options;
    options.max_connections_per_endpoint = 1;
    std::atomic<bool> slow_reject{false};
    options.check_on_acquire = [&](const ConnectionPtr&) {
      if (!slow_reject.load()) return absl::OkStatus();
      absl::SleepFor(absl::Milliseconds(200));
      return absl::UnavailableError("slow and unhealthy");
    };
    MakePool(options);
    absl::StatusOr<Lease> held = AcquireSync(ep);
    ASSERT_TRUE(held.ok());
    auto waiter = AcquireAsync(ep, nullptr, absl::Milliseconds(60));
    slow_reject = true;
    if (stall_loop) {
      connpool_testing::LoopGate gate(pool_loop_.get());
      // Not inside any callback of the connection: checked on this thread.
      pool_->Release(*std::move(held), /*reusable=*/true);
      ASSERT_TRUE(waiter->ready());
    } else {
      pool_->Release(*std::move(held), /*reusable=*/true);
    }
    EXPECT_EQ(waiter->Take().status().code(),
              absl::StatusCode::kDeadlineExceeded);
    const ConnectionPoolStats s = pool_->stats();
    EXPECT_EQ(s.failed_deadline, 1u);
    EXPECT_EQ(s.closed(PoolCloseReason::kHealthCheck), 1u);
    EXPECT_EQ(s.pending, 0u);
    absl::SleepFor(absl::Milliseconds(50));
    EXPECT_EQ(waiter->calls(), 1);
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, DeadlineDuringCheckTest,
                         connpool_testing::EveryMode(),
                         connpool_testing::ModeName);

TEST_P(DeadlineDuringCheckTest, FailsOnce) { Run(/*stall_loop=*/false); }

TEST_P(DeadlineDuringCheckTest, IsSeenWithoutItsTimer) {
  Run(/*stall_loop=*/true);
}

// An idle connection whose callbacks are busy when a request comes (here a
// task holds its Dispatch exclusion) is not waited for: the request queues
// (the per-endpoint limit counts the busy one) and gets it once the check,
// run after the task, finds it healthy.
TEST_P(ConnectionPoolTest, BusyIdleConnectionIsCheckedAfterwardsAndHandedOn) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  options.max_connections_per_endpoint = 1;
  MakePool(options);
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  ConnectionPtr raw = lease->connection();
  ReleaseAndWaitIdle(*std::move(lease), 1);
  std::mutex mu;
  std::condition_variable cv;
  bool running = false, release_task = false;
  std::thread busy([&] {
    raw->Dispatch([&](const ConnectionPtr&) {
      std::unique_lock<std::mutex> lock(mu);
      running = true;
      cv.notify_all();
      cv.wait(lock, [&] { return release_task; });
    });
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return running; });
  }
  auto waiter = AcquireAsync(ep);
  EXPECT_FALSE(waiter->ready());
  EXPECT_EQ(pool_->stats().pending, 1u);
  EXPECT_EQ(pool_->stats().connecting, 0u);  // the limit holds
  {
    std::lock_guard<std::mutex> lock(mu);
    release_task = true;
    cv.notify_all();
  }
  busy.join();
  absl::StatusOr<Lease> got = waiter->Take();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->reused());
  EXPECT_EQ(got->connection(), raw);
  EXPECT_EQ(pool_->stats().created, 1u);
}

// A connect started for a request that was withdrawn meanwhile lands in the
// idle set, and the next request takes it from there.
TEST_P(ConnectionPoolTest, ConnectOutlivingItsRequestGoesIdle) {
  const std::string ep = StartServer();
  MakePool();
  {
    connpool_testing::LoopGate gate(pool_loop_.get());  // connect waits
    ConnectionPool::RequestId id = 0;
    auto waiter = AcquireAsync(ep, nullptr, absl::Seconds(20), &id);
    ASSERT_NE(id, 0u);
    EXPECT_TRUE(pool_->CancelAcquire(id));
    EXPECT_EQ(pool_->stats().connecting, 1u);
  }
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().idle == 1; }));
  absl::StatusOr<Lease> lease = AcquireSync(ep);
  ASSERT_TRUE(lease.ok());
  EXPECT_TRUE(lease->reused());  // it sat in the pool: checked as such
  EXPECT_EQ(pool_->stats().created, 1u);
  EXPECT_EQ(pool_->stats().acquired, 1u);
}

TEST_P(ConnectionPoolTest, HealthCheckOnAcquireRejectsAndTheNextIsTried) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  std::atomic<int> checks{0};
  std::atomic<uint64_t> reject_id{0};
  options.check_on_acquire = [&](const ConnectionPtr& c) {
    ++checks;
    return c->id() == reject_id.load() ? absl::UnavailableError("unhealthy")
                                       : absl::OkStatus();
  };
  MakePool(options);
  absl::StatusOr<Lease> l1 = AcquireSync(ep);
  absl::StatusOr<Lease> l2 = AcquireSync(ep);
  ASSERT_TRUE(l1.ok() && l2.ok());
  EXPECT_EQ(checks.load(), 0);  // fresh connections are not checked
  const uint64_t keep = (*l1)->id();
  reject_id = (*l2)->id();
  ReleaseAndWaitIdle(*std::move(l1), 1);
  ReleaseAndWaitIdle(*std::move(l2), 2);  // most recent: tried first
  absl::StatusOr<Lease> got = AcquireSync(ep);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ((*got)->id(), keep);
  EXPECT_EQ(checks.load(), 2);
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kHealthCheck), 1u);
}

TEST_P(ConnectionPoolTest, HealthCheckOnReleaseRejects) {
  const std::string ep = StartServer();
  ConnectionPoolOptions options;
  std::atomic<bool> healthy{true};
  options.check_on_release = [&](const ConnectionPtr& c) {
    return healthy ? absl::OkStatus() : absl::InternalError("bad");
  };
  MakePool(options);
  absl::StatusOr<Lease> l = AcquireSync(ep);
  ASSERT_TRUE(l.ok());
  ReleaseAndWaitIdle(*std::move(l), 1);
  l = AcquireSync(ep);
  ASSERT_TRUE(l.ok());
  healthy = false;
  pool_->Release(*std::move(l), true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kHealthCheck), 1u);
}

}  // namespace
}  // namespace mill
