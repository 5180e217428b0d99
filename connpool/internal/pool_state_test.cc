// PoolState alone: no socket, no loop, no thread. A fake clock and fake
// connection handles drive the limits, LIFO reuse, the waiter queue and its
// deadlines, eviction, expiry, draining and the counters, step by step.
#include "connpool/internal/pool_state.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "connpool/pool_stats.h"
#include "gtest/gtest.h"

namespace mill {
namespace connpool_internal {
namespace {

constexpr int64_t kMs = 1000 * 1000;

class FakeClock final : public PoolClock {
 public:
  int64_t NowNanos() const override { return now_; }
  void Advance(int64_t ns) { now_ += ns; }

 private:
  int64_t now_ = 1000 * kMs;
};

// A request with a label, to tell waiters apart.
struct TestWaiter final : PoolWaiter {
  explicit TestWaiter(std::string l) : label(std::move(l)) {}
  std::string label;
};

// A fake connection: its entry and a handle (its own address).
struct FakeConn {
  PoolEntry entry;
  void* handle() { return this; }
};

class PoolStateTest : public ::testing::Test {
 protected:
  void Make(PoolLimits limits) {
    state_ = std::make_unique<PoolState>(limits, &clock_);
  }

  // Enqueues a request for `key`; its id (0 if it failed: see *status).
  uint64_t Enqueue(const std::string& key, const std::string& label,
                   int64_t deadline_ns = kNever,
                   absl::Status* status = nullptr) {
    Effects fx;
    absl::StatusOr<PoolWaiter*> w = state_->Enqueue(
        key, deadline_ns, [&] { return std::make_unique<TestWaiter>(label); },
        fx);
    Absorb(fx);
    if (status != nullptr) *status = w.status();
    return w.ok() ? (*w)->id() : 0;
  }

  // Completes the oldest connect the state asked for with a new fake
  // connection; returns it (placed: idle, or claimed by a waiter, which is
  // then leased).
  FakeConn* Connect() {
    EXPECT_FALSE(connects_.empty());
    const uint64_t seq = connects_.front().seq;
    connects_.erase(connects_.begin());
    conns_.push_back(std::make_unique<FakeConn>());
    FakeConn* c = conns_.back().get();
    Effects fx;
    EXPECT_TRUE(state_->ConnectSucceeded(seq, &c->entry, c->handle(), fx));
    Absorb(fx);
    PlaceAndLease(c, Return::kFresh);
    return c;
  }

  // Gives `c` back `how`; a claiming waiter gets it (leased: in served_).
  void PlaceAndLease(FakeConn* c, Return how,
                     std::optional<PoolCloseReason> reject = std::nullopt) {
    Effects fx;
    PoolWaiter* claimed = state_->Place(&c->entry, how, reject, fx);
    Absorb(fx);
    if (claimed == nullptr) return;
    Effects lease_fx;
    PoolState::Leasing leasing =
        state_->Leased(&c->entry, claimed, how != Return::kFresh, lease_fx);
    Absorb(lease_fx);
    ASSERT_TRUE(leasing.leased);
    served_.emplace_back(static_cast<TestWaiter&>(*leasing.waiter).label, c);
  }

  // Takes an idle connection of `key` and leases it at once (inline).
  FakeConn* TakeAndLease(const std::string& key) {
    Effects fx;
    PoolEntry* e = state_->TakeIdle(key, fx);
    Absorb(fx);
    if (e == nullptr) return nullptr;
    Effects lease_fx;
    EXPECT_TRUE(state_->Leased(e, nullptr, true, lease_fx).leased);
    Absorb(lease_fx);
    for (auto& c : conns_) {
      if (&c->entry == e) return c.get();
    }
    ADD_FAILURE() << "unknown entry";
    return nullptr;
  }

  void Absorb(Effects& fx) {
    if (fx.arm_sweep) ++sweeps_armed_;
    if (fx.drained) ++drained_;
    Effects::Lists* lists = fx.lists();
    if (lists == nullptr) return;
    EXPECT_TRUE(lists->maybe_erase.empty());  // settled by the state
    for (void* h : lists->close) closed_.push_back(static_cast<FakeConn*>(h));
    for (auto& c : lists->connects) connects_.push_back(c);
    for (auto& f : lists->fail) {
      failed_.emplace_back(static_cast<TestWaiter&>(*f.first).label,
                           f.second.code());
    }
    for (uint64_t id : lists->cancel_connects) {
      cancelled_connects_.push_back(id);
    }
  }

  ConnectionPoolStats Stats() { return state_->Stats(); }

  FakeClock clock_;
  std::vector<std::unique_ptr<FakeConn>> conns_;  // outlive the state
  std::unique_ptr<PoolState> state_;
  std::vector<Effects::Connect> connects_;
  std::vector<FakeConn*> closed_;
  std::vector<std::pair<std::string, absl::StatusCode>> failed_;
  std::vector<std::pair<std::string, FakeConn*>> served_;
  std::vector<uint64_t> cancelled_connects_;
  int sweeps_armed_ = 0;
  int drained_ = 0;
};

TEST_F(PoolStateTest, FirstRequestConnectsAndIsServedThenReusedLifo) {
  Make({});
  Effects none;
  EXPECT_EQ(state_->TakeIdle("a:1", none), nullptr);
  ASSERT_NE(Enqueue("a:1", "r1"), 0u);
  ASSERT_NE(Enqueue("a:1", "r2"), 0u);
  ASSERT_EQ(connects_.size(), 2u);  // one per waiter
  EXPECT_EQ(connects_[0].key, "a:1");
  EXPECT_EQ(Stats().connecting, 2u);
  EXPECT_EQ(Stats().open, 2u);
  FakeConn* c1 = Connect();
  FakeConn* c2 = Connect();
  ASSERT_EQ(served_.size(), 2u);
  EXPECT_EQ(served_[0], std::make_pair(std::string("r1"), c1));  // FIFO
  EXPECT_EQ(served_[1], std::make_pair(std::string("r2"), c2));
  // Released c1 then c2: c2 is the most recently used.
  PlaceAndLease(c1, Return::kReleased);
  PlaceAndLease(c2, Return::kReleased);
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.idle, 2u);
  EXPECT_EQ(s.active, 0u);
  EXPECT_EQ(s.open, 2u);
  EXPECT_EQ(TakeAndLease("a:1"), c2);
  EXPECT_EQ(TakeAndLease("a:1"), c1);
  EXPECT_EQ(TakeAndLease("a:1"), nullptr);
  s = Stats();
  EXPECT_EQ(s.created, 2u);
  EXPECT_EQ(s.reused, 2u);
  EXPECT_EQ(s.acquired, 4u);
  EXPECT_EQ(s.active, 2u);
}

TEST_F(PoolStateTest, PerEndpointLimitQueuesWithoutConnecting) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "r1");
  FakeConn* c = Connect();
  ASSERT_EQ(served_.size(), 1u);
  Enqueue("a:1", "r2");
  Enqueue("a:1", "r3");
  EXPECT_TRUE(connects_.empty());  // the limit holds
  EXPECT_EQ(Stats().pending, 2u);
  PlaceAndLease(c, Return::kReleased);
  ASSERT_EQ(served_.size(), 2u);
  EXPECT_EQ(served_[1].first, "r2");  // oldest first
  EXPECT_EQ(Stats().reused, 1u);
  EXPECT_EQ(Stats().pending, 1u);
}

TEST_F(PoolStateTest, QueueBoundsFailAtOnce) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  limits.max_pending = 2;
  limits.max_pending_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "a1");
  Connect();
  Enqueue("b:1", "b1");
  Connect();
  EXPECT_NE(Enqueue("a:1", "a2"), 0u);
  absl::Status status;
  EXPECT_EQ(Enqueue("a:1", "a3", kNever, &status), 0u);  // per endpoint
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(Enqueue("b:1", "b2"), 0u);
  EXPECT_NE(Enqueue("c:1", "c1", kNever, &status), 0u);  // can connect
  EXPECT_EQ(connects_.size(), 1u);
  EXPECT_EQ(Enqueue("b:1", "b3", kNever, &status), 0u);  // in total
  EXPECT_EQ(status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Stats().failed_queue_full, 2u);
  EXPECT_EQ(Stats().pending, 3u);
}

TEST_F(PoolStateTest, TotalLimitEvictsTheLeastRecentlyUsedIdleConnection) {
  PoolLimits limits;
  limits.max_connections = 2;
  Make(limits);
  Enqueue("a:1", "a1");
  Enqueue("a:1", "a2");
  FakeConn* a1 = Connect();
  FakeConn* a2 = Connect();
  Enqueue("b:1", "b1");
  EXPECT_TRUE(connects_.empty());  // the total limit holds: queued
  EXPECT_EQ(Stats().pending, 1u);
  EXPECT_EQ(Stats().open, 2u);
  // a1 goes idle; b's waiter needs the slot: a1 is closed, b connects.
  PlaceAndLease(a1, Return::kReleased);
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], a1);
  ASSERT_EQ(connects_.size(), 1u);
  EXPECT_EQ(connects_[0].key, "b:1");
  EXPECT_EQ(Stats().closed(PoolCloseReason::kEvicted), 1u);
  EXPECT_EQ(Stats().open, 2u);
  Connect();
  ASSERT_EQ(served_.size(), 3u);
  EXPECT_EQ(served_[2].first, "b1");
  (void)a2;
}

TEST_F(PoolStateTest, IdleLimitEvictsTheOldestOfTheEndpoint) {
  PoolLimits limits;
  limits.max_idle_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "1");
  Enqueue("a:1", "2");
  FakeConn* c1 = Connect();
  FakeConn* c2 = Connect();
  PlaceAndLease(c1, Return::kReleased);
  PlaceAndLease(c2, Return::kReleased);
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], c1);
  EXPECT_EQ(Stats().idle, 1u);
  EXPECT_EQ(Stats().open, 1u);
}

TEST_F(PoolStateTest, DeadlinesOnTheInjectedClock) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  absl::Status status;
  EXPECT_EQ(Enqueue("a:1", "late", clock_.NowNanos(), &status), 0u);
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded);
  Enqueue("a:1", "r1");
  FakeConn* c = Connect();
  const uint64_t id = Enqueue("a:1", "r2", clock_.NowNanos() + 50 * kMs);
  ASSERT_NE(id, 0u);
  // The timer fires: failed once, and gone.
  Effects fx;
  state_->DeadlinePassed(id, fx);
  Absorb(fx);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0], std::make_pair(std::string("r2"),
                                       absl::StatusCode::kDeadlineExceeded));
  Effects again;
  state_->DeadlinePassed(id, again);
  Absorb(again);
  EXPECT_EQ(failed_.size(), 1u);
  EXPECT_EQ(Stats().failed_deadline, 2u);
  EXPECT_EQ(Stats().pending, 0u);
  (void)c;
}

TEST_F(PoolStateTest, FailedHandOverRequeuesAtTheHeadUnlessTheDeadlinePassed) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "r0");
  FakeConn* c = Connect();
  Enqueue("a:1", "r1", clock_.NowNanos() + 100 * kMs);
  Enqueue("a:1", "r2");
  // Released to r1, whose check fails: r1 is back at the head, and the
  // freed slot opens a new connection.
  Effects fx;
  PoolWaiter* claimed =
      state_->Place(&c->entry, Return::kReleased, std::nullopt, fx);
  Absorb(fx);
  ASSERT_NE(claimed, nullptr);
  EXPECT_EQ(static_cast<TestWaiter*>(claimed)->label, "r1");
  EXPECT_EQ(Stats().pending, 2u);  // claimed still counts
  Effects reject;
  state_->Rejected(&c->entry, PoolCloseReason::kDeadOnReuse, claimed, reject);
  Absorb(reject);
  EXPECT_EQ(Stats().closed(PoolCloseReason::kDeadOnReuse), 1u);
  ASSERT_EQ(connects_.size(), 1u);
  FakeConn* fresh = Connect();
  ASSERT_EQ(served_.size(), 2u);
  EXPECT_EQ(served_[1], std::make_pair(std::string("r1"), fresh));

  // The same with r2, but the clock passed its deadline during the check:
  // it fails instead of waiting again.
  Enqueue("a:1", "r3", clock_.NowNanos() + 10 * kMs);
  Effects fx2;
  claimed = state_->Place(&fresh->entry, Return::kReleased, std::nullopt, fx2);
  Absorb(fx2);
  ASSERT_NE(claimed, nullptr);
  EXPECT_EQ(static_cast<TestWaiter*>(claimed)->label, "r2");
  Effects fired;
  state_->DeadlinePassed(claimed->id(), fired);  // claimed: only noted
  Absorb(fired);
  EXPECT_TRUE(failed_.empty());
  Effects reject2;
  state_->Rejected(&fresh->entry, PoolCloseReason::kHealthCheck, claimed,
                   reject2);
  Absorb(reject2);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].first, "r2");
  EXPECT_EQ(failed_[0].second, absl::StatusCode::kDeadlineExceeded);
}

TEST_F(PoolStateTest, RequeueChecksTheClockWithoutTheTimer) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "r0");
  FakeConn* c = Connect();
  Enqueue("a:1", "r1", clock_.NowNanos() + 10 * kMs);
  Effects fx;
  PoolWaiter* claimed =
      state_->Place(&c->entry, Return::kReleased, std::nullopt, fx);
  Absorb(fx);
  ASSERT_NE(claimed, nullptr);
  clock_.Advance(10 * kMs);  // the deadline, its timer not fired yet
  Effects reject;
  state_->Rejected(&c->entry, PoolCloseReason::kHealthCheck, claimed, reject);
  Absorb(reject);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0].second, absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(Stats().pending, 0u);
}

TEST_F(PoolStateTest, CancelWithdrawsAQueuedWaiterButNotAClaimedOne) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "r0");
  FakeConn* c = Connect();
  const uint64_t r1 = Enqueue("a:1", "r1");
  const uint64_t r2 = Enqueue("a:1", "r2");
  Effects fx;
  PoolWaiter* claimed =
      state_->Place(&c->entry, Return::kReleased, std::nullopt, fx);
  Absorb(fx);
  ASSERT_EQ(claimed->id(), r1);
  Effects cancel;
  EXPECT_FALSE(state_->Cancel(r1, cancel));  // claimed
  EXPECT_TRUE(state_->Cancel(r2, cancel));
  Absorb(cancel);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0],
            std::make_pair(std::string("r2"), absl::StatusCode::kCancelled));
  EXPECT_EQ(Stats().cancelled, 1u);
}

TEST_F(PoolStateTest, ConnectFailureFailsTheOldestWaiter) {
  Make({});
  Enqueue("a:1", "r1");
  ASSERT_EQ(connects_.size(), 1u);
  Effects fx;
  state_->ConnectFailed(connects_[0].seq, absl::UnavailableError("refused"),
                        fx);
  connects_.clear();
  Absorb(fx);
  ASSERT_EQ(failed_.size(), 1u);
  EXPECT_EQ(failed_[0],
            std::make_pair(std::string("r1"), absl::StatusCode::kUnavailable));
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.connect_failures, 1u);
  EXPECT_EQ(s.failed_connect, 1u);
  EXPECT_EQ(s.open, 0u);
  EXPECT_EQ(s.endpoints, 0u);  // nothing left: the endpoint goes
}

// An endpoint's context (the shell's layer) comes back with every connect
// it starts, and is held exactly as long as the endpoint exists.
TEST_F(PoolStateTest, EndpointContextRidesWithConnectsAndGoesWithIt) {
  Make({});
  auto context = std::make_shared<int>(7);
  {
    Effects fx;
    absl::StatusOr<PoolWaiter*> w = state_->Enqueue(
        "a:1 over layer 1", kNever,
        [] { return std::make_unique<TestWaiter>("r1"); }, fx, context);
    ASSERT_TRUE(w.ok());
    Absorb(fx);
  }
  ASSERT_EQ(connects_.size(), 1u);
  EXPECT_EQ(connects_[0].context, context);
  EXPECT_EQ(connects_[0].key, "a:1 over layer 1");
  // A second request for the key gets the endpoint's context (the key names
  // it), though it gave none.
  Enqueue("a:1 over layer 1", "r2");
  ASSERT_EQ(connects_.size(), 2u);
  EXPECT_EQ(connects_[1].context, context);
  FakeConn* first = Connect();
  FakeConn* second = Connect();
  ASSERT_EQ(served_.size(), 2u);
  for (FakeConn* c : {first, second}) {
    Effects closed;
    state_->Closed(&c->entry, ConnectionEnd::kOther, closed);
    Absorb(closed);
  }
  EXPECT_EQ(Stats().endpoints, 0u);
  EXPECT_TRUE(connects_.empty());
  EXPECT_EQ(context.use_count(), 1);  // the endpoint let it go
}

TEST_F(PoolStateTest, IdleTimeoutAndLifetimeOnTheInjectedClock) {
  PoolLimits limits;
  limits.idle_timeout_ns = 100 * kMs;
  limits.max_lifetime_ns = 1000 * kMs;
  limits.lifetime_jitter = 0.5;
  limits.random_seed = 7;
  Make(limits);
  Enqueue("a:1", "1");
  Enqueue("a:1", "2");
  FakeConn* c1 = Connect();
  FakeConn* c2 = Connect();
  for (FakeConn* c : {c1, c2}) {
    const int64_t life = state_->LifetimeNanos(c->entry);
    EXPECT_GT(life, 500 * kMs);  // max * (1 - jitter), exclusive
    EXPECT_LE(life, 1000 * kMs);
  }
  PlaceAndLease(c1, Return::kReleased);
  EXPECT_EQ(sweeps_armed_, 1);
  clock_.Advance(60 * kMs);
  PlaceAndLease(c2, Return::kReleased);
  EXPECT_EQ(sweeps_armed_, 1);  // armed already
  clock_.Advance(40 * kMs);     // c1 idle 100 ms, c2 40 ms
  Effects fx;
  state_->Sweep(fx);
  Absorb(fx);
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], c1);
  EXPECT_EQ(sweeps_armed_, 2);  // c2 is still idle
  // Past its idle timeout (and lifetime) when taken: closed, none.
  clock_.Advance(1000 * kMs);
  EXPECT_EQ(TakeAndLease("a:1"), nullptr);
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kIdleTimeout), 2u);
  EXPECT_EQ(s.open, 0u);
}

TEST_F(PoolStateTest, ReleasedPastItsLifetimeIsClosed) {
  PoolLimits limits;
  limits.max_lifetime_ns = 100 * kMs;
  Make(limits);
  Enqueue("a:1", "1");
  FakeConn* c = Connect();
  clock_.Advance(100 * kMs);
  PlaceAndLease(c, Return::kReleased);
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(Stats().closed(PoolCloseReason::kLifetime), 1u);
}

TEST_F(PoolStateTest, WaitHistogramCountsEachWaitInItsBucket) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 1;
  Make(limits);
  Enqueue("a:1", "first");  // served after 0 ns: bucket 0
  FakeConn* c = Connect();
  // Waits of 50 us, 500 us, 5 ms, 50 ms, 500 ms, 5 s: one per bucket.
  const int64_t waits[] = {50'000,   500'000,   5 * kMs,
                           50 * kMs, 500 * kMs, 5000 * kMs};
  for (int64_t wait : waits) {
    Enqueue("a:1", "w");
    clock_.Advance(wait);
    PlaceAndLease(c, Return::kReleased);
  }
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.wait_histogram,
            (std::array<uint64_t, ConnectionPoolStats::kWaitBuckets>{2, 1, 1, 1,
                                                                     1, 1}));
  int64_t total = 0;
  for (int64_t wait : waits) total += wait;
  EXPECT_EQ(s.wait_total, absl::Nanoseconds(total));
  EXPECT_EQ(s.wait_max, absl::Seconds(5));
  // An inline hand-out counts as no wait.
  PlaceAndLease(c, Return::kReleased);
  clock_.Advance(kMs);
  ASSERT_EQ(TakeAndLease("a:1"), c);
  EXPECT_EQ(Stats().wait_histogram[0], 3u);
  EXPECT_EQ(Stats().wait_total, absl::Nanoseconds(total));
}

TEST_F(PoolStateTest, ClosesAreCountedByStateAndReason) {
  Make({});
  for (int i = 0; i < 4; ++i) Enqueue("a:1", "r");
  FakeConn* leased = Connect();
  FakeConn* idle = Connect();
  FakeConn* idle2 = Connect();
  FakeConn* local = Connect();
  PlaceAndLease(idle, Return::kReleased);
  PlaceAndLease(idle2, Return::kReleased);
  Effects fx;
  state_->Closed(&leased->entry, ConnectionEnd::kOther, fx);
  state_->Closed(&idle->entry, ConnectionEnd::kIdleTimeout, fx);
  EXPECT_TRUE(state_->DeadWhileIdle(&idle2->entry, /*close=*/true, fx));
  state_->Closed(&local->entry, ConnectionEnd::kClosedLocally, fx);
  Absorb(fx);
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.closed(PoolCloseReason::kError), 1u);
  EXPECT_EQ(s.closed(PoolCloseReason::kIdleTimeout), 1u);
  EXPECT_EQ(s.closed(PoolCloseReason::kDeadWhileIdle), 1u);
  EXPECT_EQ(s.closed(PoolCloseReason::kNotReusable), 1u);
  ASSERT_EQ(closed_.size(), 1u);  // only the dead idle one: Close it
  EXPECT_EQ(closed_[0], idle2);
  EXPECT_EQ(s.open, 0u);
  EXPECT_EQ(s.endpoints, 0u);
  EXPECT_EQ(state_->HandleOf(leased->entry), nullptr);
}

TEST_F(PoolStateTest, DrainFailsWaitersClosesIdleCancelsConnects) {
  Make({});
  Enqueue("a:1", "r1");
  FakeConn* leased = Connect();
  Enqueue("a:1", "r2");
  Enqueue("b:1", "r3");
  Enqueue("c:1", "r4");
  ASSERT_EQ(connects_.size(), 3u);
  FakeConn* c = Connect();              // serves r2
  PlaceAndLease(c, Return::kReleased);  // idle
  ASSERT_EQ(connects_.size(), 2u);
  EXPECT_FALSE(state_->ConnectIssued(connects_[0].seq, 11));  // b's id
  Effects fx;
  state_->Drain(absl::UnavailableError("draining"), fx);
  Absorb(fx);
  EXPECT_TRUE(state_->draining());
  EXPECT_FALSE(state_->drained());
  ASSERT_EQ(failed_.size(), 2u);  // r3, r4: queued
  EXPECT_EQ(failed_[0].second, absl::StatusCode::kUnavailable);
  ASSERT_EQ(closed_.size(), 1u);
  EXPECT_EQ(closed_[0], c);
  EXPECT_EQ(cancelled_connects_, std::vector<uint64_t>{11});
  // c's id comes after Drain: cancel it at once.
  EXPECT_TRUE(state_->ConnectIssued(connects_[1].seq, 12));
  absl::Status status;
  EXPECT_EQ(Enqueue("a:1", "late", kNever, &status), 0u);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  // The connects end, the leased one closes: drained, once.
  while (!connects_.empty()) {
    Effects f;
    state_->ConnectFailed(connects_.front().seq, absl::CancelledError(), f);
    connects_.erase(connects_.begin());
    Absorb(f);
  }
  EXPECT_EQ(failed_.size(), 2u);  // no waiter left to fail
  EXPECT_EQ(drained_, 0);
  Effects last;
  state_->Closed(&leased->entry, ConnectionEnd::kStopped, last);
  Absorb(last);
  EXPECT_EQ(drained_, 1);
  EXPECT_TRUE(state_->drained());
  EXPECT_EQ(Stats().closed(PoolCloseReason::kDrain), 2u);
  EXPECT_EQ(Stats().endpoints, 0u);
}

TEST_F(PoolStateTest, RecheckedConnectionsCountAsComing) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = 2;
  Make(limits);
  Enqueue("a:1", "r1");
  FakeConn* c = Connect();
  PlaceAndLease(c, Return::kReleased);
  // An Acquire takes it but its check is deferred (the connection busy).
  Effects fx;
  ASSERT_EQ(state_->TakeIdle("a:1", fx), &c->entry);
  EXPECT_EQ(state_->StateOf(c->entry), EntryState::kRechecking);
  // The next request waits for it instead of connecting.
  Enqueue("a:1", "r2");
  EXPECT_TRUE(connects_.empty());
  // The deferred check passes: r2 gets it.
  PlaceAndLease(c, Return::kRechecked);
  ASSERT_EQ(served_.size(), 2u);
  EXPECT_EQ(served_[1], std::make_pair(std::string("r2"), c));
}

TEST_F(PoolStateTest, TotalsAreDerivedFromTheEndpoints) {
  Make({});
  Enqueue("a:1", "a");
  Enqueue("b:1", "b");
  Enqueue("b:1", "b2");
  ConnectionPoolStats s = Stats();
  EXPECT_EQ(s.connecting, 3u);
  EXPECT_EQ(s.open, 3u);
  EXPECT_EQ(s.endpoints, 2u);
  Connect();
  Connect();
  s = Stats();
  EXPECT_EQ(s.connecting, 1u);
  EXPECT_EQ(s.active, 2u);
  EXPECT_EQ(s.open, 3u);
}

}  // namespace
}  // namespace connpool_internal
}  // namespace mill
