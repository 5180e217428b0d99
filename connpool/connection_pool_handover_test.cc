// Tests of ConnectionPool's hand-over of connections, against real echo
// TcpServers in both dispatch modes: the checks before a reused connection
// is handed out (dead, busy, a deadline passing meanwhile, health-check
// hooks), lease callbacks and when they run (never before Acquire's `done`
// has the lease, a talk-first upstream included), dropped leases, and
// Release / Acquire from inside the holder's callbacks.
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

using connpool_testing::AcquireResult;
using connpool_testing::PoolFixture;
using connpool_testing::Sink;
using connpool_testing::WaitFor;

class ConnectionPoolTest : public PoolFixture {};

INSTANTIATE_TEST_SUITE_P(Modes, ConnectionPoolTest,
                         ::testing::Values(DispatchMode::kPool,
                                           DispatchMode::kDirect),
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
                         ::testing::Values(DispatchMode::kPool,
                                           DispatchMode::kDirect),
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

TEST_P(ConnectionPoolTest, HolderGetsCallbacksOnlyWhileItHoldsTheLease) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok());
  // Unsolicited server bytes during the lease reach the holder.
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  EXPECT_EQ(server().Broadcast("push"), 1u);
  ASSERT_TRUE(sink->WaitData(4));
  EXPECT_EQ(sink->TakeData(), "push");
  ReleaseAndWaitIdle(*std::move(lease), 1);
  const int calls = sink->data_calls();
  // After Release, bytes from the server are the pool's business: the
  // idle connection is out of step and closed, the old holder hears
  // nothing.
  EXPECT_EQ(server().Broadcast("late"), 1u);
  ASSERT_TRUE(WaitFor([&] {
    return pool_->stats().closed(PoolCloseReason::kDeadWhileIdle) == 1;
  }));
  EXPECT_EQ(sink->data_calls(), calls);
  EXPECT_EQ(sink->closes(), 0);
  EXPECT_EQ(pool_->stats().open, 0u);
}

TEST_P(ConnectionPoolTest, CloseWhileLeasedReachesTheHolder) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease = AcquireSync(ep, sink->Callbacks());
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  server().Connections()[0]->Close();
  // No on_peer_shutdown: the pool closes on EOF as a Connection would.
  ASSERT_TRUE(sink->WaitCloses(1));
  EXPECT_EQ(sink->last_reason(), CloseReason::kPeerClosed);
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kError), 1u);
  EXPECT_EQ(s.open, 0u);  // the slot is free at once
  EXPECT_EQ(s.active, 0u);
  // Releasing the dead lease does nothing more.
  pool_->Release(*std::move(lease), true);
  EXPECT_EQ(pool_->stats().idle, 0u);
  EXPECT_EQ(sink->closes(), 1);
}

TEST_P(ConnectionPoolTest, PeerShutdownIsForwardedWhenTheHolderAsks) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease =
      AcquireSync(ep, sink->Callbacks(true, /*peer_shutdown=*/true));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  server().Connections()[0]->Shutdown();
  ASSERT_TRUE(sink->WaitPeerShutdowns(1));
  EXPECT_FALSE((*lease)->is_closed());  // the holder decides
  EXPECT_TRUE((*lease)->input_ended());
  // Released after EOF: not reusable.
  pool_->Release(*std::move(lease), true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kError), 1u);
  EXPECT_EQ(pool_->stats().idle, 0u);
}

TEST_P(ConnectionPoolTest, DroppedLeaseClosesTheConnection) {
  const std::string ep = StartServer();
  MakePool();
  {
    absl::StatusOr<Lease> lease = AcquireSync(ep);
    ASSERT_TRUE(lease.ok());
    ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  }  // dropped without Release
  ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kNotReusable), 1u);
  EXPECT_EQ(s.open, 0u);
  EXPECT_TRUE(WaitFor([&] { return server().connection_count() == 0; }));

  // Assigning over a lease drops the old one the same way.
  absl::StatusOr<Lease> l1 = AcquireSync(ep);
  absl::StatusOr<Lease> l2 = AcquireSync(ep);
  ASSERT_TRUE(l1.ok() && l2.ok());
  Lease holder = *std::move(l1);
  holder = *std::move(l2);
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kNotReusable), 2u);
  EXPECT_TRUE(holder);
  EXPECT_FALSE(*l2);  // moved from
  pool_->Release(std::move(holder), true);
  EXPECT_FALSE(holder);
  pool_->Release(Lease(), true);  // empty: nothing
}

TEST_P(ConnectionPoolTest, ReleasedWithUnreadInputIsNotReused) {
  const std::string ep = StartServer();
  MakePool();
  auto sink = Sink::Make();
  absl::StatusOr<Lease> lease =
      AcquireSync(ep, sink->Callbacks(/*consume=*/false));
  ASSERT_TRUE(lease.ok());
  ASSERT_TRUE((*lease)->Send("unread").ok());
  ASSERT_TRUE(WaitFor([&] { return (*lease)->bytes_received() == 6; }));
  pool_->Release(*std::move(lease), true);
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  EXPECT_EQ(pool_->stats().closed(PoolCloseReason::kNotReusable), 1u);
}

TEST_P(ConnectionPoolTest, ReleaseAndAcquireFromInsideTheHoldersCallbacks) {
  const std::string ep = StartServer();
  MakePool();
  // The usual pattern: release in on_data once the response is complete,
  // and start the next request from there.
  struct Flow {
    ConnectionPool* pool;
    std::string ep;
    std::mutex mu;
    std::condition_variable cv;
    Lease lease;
    int rounds = 0;
    bool all_reused = true;
    std::vector<uint64_t> ids;
  };
  auto flow = std::make_shared<Flow>();
  flow->pool = pool_.get();
  flow->ep = ep;
  auto cb = std::make_shared<LeaseCallbacks>();
  std::weak_ptr<LeaseCallbacks> weak_cb = cb;
  std::function<void(absl::StatusOr<Lease>)> on_lease;
  cb->on_data = [flow, &on_lease, weak_cb](const ConnectionPtr& c,
                                           ByteBuffer& in) {
    if (in.size() < 4) return;
    in.Consume(in.size());
    Lease lease;
    {
      std::lock_guard<std::mutex> lock(flow->mu);
      lease = std::move(flow->lease);
      ++flow->rounds;
      flow->cv.notify_all();
      if (flow->rounds == 5) return;  // `lease` drops: closes
    }
    flow->pool->Release(std::move(lease), true);
    flow->pool->Acquire(
        flow->ep, absl::InfiniteFuture(),
        [&on_lease](absl::StatusOr<Lease> l) { on_lease(std::move(l)); },
        weak_cb.lock());
  };
  on_lease = [flow](absl::StatusOr<Lease> l) {
    ASSERT_TRUE(l.ok()) << l.status();
    std::lock_guard<std::mutex> lock(flow->mu);
    if (flow->rounds > 0 && !l->reused()) flow->all_reused = false;
    flow->ids.push_back((*l)->id());
    ASSERT_TRUE((*l)->Send("ping").ok());
    flow->lease = *std::move(l);
  };
  pool_->Acquire(
      ep, absl::InfiniteFuture(),
      [&on_lease](absl::StatusOr<Lease> l) { on_lease(std::move(l)); }, cb);
  {
    std::unique_lock<std::mutex> lock(flow->mu);
    ASSERT_TRUE(flow->cv.wait_for(lock, std::chrono::seconds(20),
                                  [&] { return flow->rounds == 5; }));
  }
  ASSERT_TRUE(WaitFor([&] { return pool_->stats().open == 0; }));
  std::lock_guard<std::mutex> lock(flow->mu);
  EXPECT_TRUE(flow->all_reused);
  ASSERT_EQ(flow->ids.size(), 5u);
  for (uint64_t id : flow->ids) EXPECT_EQ(id, flow->ids[0]);
  EXPECT_EQ(pool_->stats().created, 1u);
  EXPECT_EQ(pool_->stats().reused, 4u);
}

// Released from on_data, whose tail is still running when another thread
// asks for a connection: the check of the released one waits for that
// callback, and the request waits for the check instead of opening a second
// connection (docs/guide/pool.cc opened two one run in five under TSan).
TEST_P(ConnectionPoolTest, AcquireWhileTheReleasingCallbackRunsReusesIt) {
  const std::string ep = StartServer();
  MakePool();
  struct Flow {
    std::mutex mu;
    std::condition_variable cv;
    Lease lease;
    bool released = false;
  };
  auto flow = std::make_shared<Flow>();
  ConnectionPool* pool = pool_.get();
  auto cb = std::make_shared<LeaseCallbacks>();
  cb->on_data = [flow, pool](const ConnectionPtr&, ByteBuffer& in) {
    if (in.size() < 4) return;
    in.Consume(in.size());
    Lease lease;
    {
      std::lock_guard<std::mutex> lock(flow->mu);
      lease = std::move(flow->lease);
    }
    pool->Release(std::move(lease), /*reusable=*/true);
    {
      std::lock_guard<std::mutex> lock(flow->mu);
      flow->released = true;
      flow->cv.notify_all();
    }
    absl::SleepFor(absl::Milliseconds(100));  // still inside the callback
  };
  absl::StatusOr<Lease> first = AcquireSync(ep, cb);
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t id = (*first)->id();
  {
    std::lock_guard<std::mutex> lock(flow->mu);
    flow->lease = *std::move(first);
    ASSERT_TRUE(flow->lease->Send("ping").ok());
  }
  {
    std::unique_lock<std::mutex> lock(flow->mu);
    ASSERT_TRUE(flow->cv.wait_for(lock, std::chrono::seconds(20),
                                  [&] { return flow->released; }));
  }
  auto second = AcquireAsync(ep);
  absl::StatusOr<Lease> got = second->Take();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(got->reused());
  EXPECT_EQ((*got)->id(), id);
  const ConnectionPoolStats s = pool_->stats();
  EXPECT_EQ(s.created, 1u);
  EXPECT_EQ(s.connecting, 0u);
  EXPECT_EQ(s.open, 1u);
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

// A talk-first upstream (SMTP's "220", a server that says hello before the
// client does) greets every connection it accepts, here when the test says
// so, to place the greeting precisely. What the holder must see: `done`
// with the lease first, then the greeting in on_data; never on_data for a
// lease `done` has not received.
class TalkFirstTest : public PoolFixture {
 protected:
  static constexpr char kGreeting[] = "220 ready\r\n";

  // Records the order of `done` and on_data.
  struct Order {
    std::mutex mu;
    std::condition_variable cv;
    bool done_ran = false;
    bool data_before_done = false;
    std::string data;
    Lease lease;
  };

  std::string StartTalkFirstServer(bool greet_on_accept) {
    TcpServerCallbacks callbacks;
    if (greet_on_accept) {
      callbacks.on_connect = [](const ConnectionPtr& c) {
        (void)c->Send(kGreeting);
      };
    }
    absl::StatusOr<std::unique_ptr<TcpServer>> server =
        TcpServer::Create(server_loop_.get(), SocketAddress::LoopbackIPv4(0),
                          std::move(callbacks));
    EXPECT_TRUE(server.ok()) << server.status();
    servers_.push_back(std::move(*server));
    return absl::StrCat("127.0.0.1:", servers_.back()->local_address().port());
  }

  static std::shared_ptr<const LeaseCallbacks> CallbacksFor(
      const std::shared_ptr<Order>& order) {
    auto cb = std::make_shared<LeaseCallbacks>();
    cb->on_data = [order](const ConnectionPtr&, ByteBuffer& in) {
      std::lock_guard<std::mutex> lock(order->mu);
      if (!order->done_ran) order->data_before_done = true;
      order->data.append(in.data(), in.size());
      in.Consume(in.size());
      order->cv.notify_all();
    };
    return cb;
  }

  static AcquireCallback DoneFor(const std::shared_ptr<Order>& order) {
    return [order](absl::StatusOr<Lease> lease) {
      ASSERT_TRUE(lease.ok()) << lease.status();
      std::lock_guard<std::mutex> lock(order->mu);
      order->done_ran = true;
      order->lease = *std::move(lease);
      order->cv.notify_all();
    };
  }

  static bool WaitGreeting(Order& order) {
    std::unique_lock<std::mutex> lock(order.mu);
    return order.cv.wait_for(lock, std::chrono::seconds(20), [&] {
      return order.data.size() >= sizeof(kGreeting) - 1;
    });
  }

  // Runs a task on the pool's loop and waits for it: every batch of events
  // the loop had started before has been handled.
  void RoundTrip() {
    auto ran = std::make_shared<std::atomic<bool>>(false);
    ASSERT_TRUE(pool_loop_->RunInLoop([ran] { *ran = true; }).ok());
    ASSERT_TRUE(WaitFor([&] { return ran->load(); }));
  }
};

INSTANTIATE_TEST_SUITE_P(Modes, TalkFirstTest,
                         ::testing::Values(DispatchMode::kPool,
                                           DispatchMode::kDirect),
                         connpool_testing::ModeName);

TEST_P(TalkFirstTest, GreetingOnAFreshConnectionComesAfterDone) {
  const std::string ep = StartTalkFirstServer(/*greet_on_accept=*/true);
  MakePool();
  auto order = std::make_shared<Order>();
  EXPECT_NE(pool_->Acquire(ep, absl::InfiniteFuture(), DoneFor(order),
                           CallbacksFor(order)),
            0u);  // queued for a new connection
  ASSERT_TRUE(WaitGreeting(*order));
  std::lock_guard<std::mutex> lock(order->mu);
  EXPECT_TRUE(order->done_ran);
  EXPECT_FALSE(order->data_before_done);
  EXPECT_EQ(order->data, kGreeting);
}

// The greeting arrives while a reused connection is being handed out
// inline on this thread (check_on_acquire places it there: it has the
// server speak and waits until the pool's loop has polled the bytes, which
// then queue behind the hand-over). Before the fix the lease's callbacks
// were installed and the queued input delivered to on_data when the
// hand-over task returned, and only then did Acquire call `done`.
TEST_P(TalkFirstTest, GreetingDuringAnInlineHandOutComesAfterDone) {
  const std::string ep = StartTalkFirstServer(/*greet_on_accept=*/false);
  ConnectionPoolOptions options;
  std::atomic<bool> greet_now{false};
  std::atomic<bool> hook_ok{false};
  options.check_on_acquire = [&](const ConnectionPtr& conn) {
    if (!greet_now.exchange(false)) return absl::OkStatus();
    const uint64_t dispatched = pool_loop_->stats().events_dispatched;
    EXPECT_EQ(server().Broadcast(kGreeting), 1u);
    // The bytes reached our socket (Probe: "input waiting") ...
    if (!WaitFor([&] { return !conn->Probe().ok(); })) return absl::OkStatus();
    // ... and the loop handled their readiness (the connection's only
    // source of events here), queued behind this hand-over.
    if (!WaitFor([&] {
          return pool_loop_->stats().events_dispatched > dispatched;
        })) {
      return absl::OkStatus();
    }
    RoundTrip();
    hook_ok = true;
    return absl::OkStatus();
  };
  MakePool(options);
  absl::StatusOr<Lease> first = AcquireSync(ep);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(WaitFor([&] { return server().connection_count() == 1; }));
  ReleaseAndWaitIdle(*std::move(first), 1);

  greet_now = true;
  auto order = std::make_shared<Order>();
  EXPECT_EQ(pool_->Acquire(ep, absl::InfiniteFuture(), DoneFor(order),
                           CallbacksFor(order)),
            0u);  // answered at once
  ASSERT_TRUE(hook_ok.load()) << "the greeting did not arrive in time";
  ASSERT_TRUE(WaitGreeting(*order));
  std::lock_guard<std::mutex> lock(order->mu);
  EXPECT_TRUE(order->done_ran);
  EXPECT_FALSE(order->data_before_done)
      << "on_data ran before Acquire's done had the lease";
  EXPECT_EQ(order->data, kGreeting);
  EXPECT_TRUE(order->lease.reused());
}

}  // namespace
}  // namespace mill
