// PoolCore: Acquire, the hand-over of a connection to its holder, Release,
// and carrying out the state's effects. (The connections' callbacks,
// connects, the sweep and Drain are in pool_core_events.cc.)
#include "connpool/internal/pool_core.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

namespace mill {
namespace connpool_internal {
namespace {

PoolLimits LimitsOf(const ConnectionPoolOptions& o) {
  PoolLimits limits;
  limits.max_connections_per_endpoint = o.max_connections_per_endpoint;
  limits.max_connections = o.max_connections;
  limits.max_idle_per_endpoint = o.max_idle_per_endpoint;
  limits.max_pending = o.max_pending;
  limits.max_pending_per_endpoint = o.max_pending_per_endpoint;
  auto nanos = [](absl::Duration d) -> int64_t {
    if (d <= absl::ZeroDuration()) return 0;
    if (d == absl::InfiniteDuration()) return kNever;
    return absl::ToInt64Nanoseconds(d);
  };
  limits.idle_timeout_ns = nanos(o.idle_timeout);
  limits.max_lifetime_ns = nanos(o.max_lifetime);
  limits.lifetime_jitter = o.lifetime_jitter;
  limits.random_seed = o.random_seed;
  return limits;
}

absl::Duration DefaultSweepInterval(const ConnectionPoolOptions& o) {
  if (o.sweep_interval > absl::ZeroDuration()) return o.sweep_interval;
  absl::Duration shortest = absl::InfiniteDuration();
  if (o.idle_timeout > absl::ZeroDuration()) shortest = o.idle_timeout;
  if (o.max_lifetime > absl::ZeroDuration()) {
    shortest = std::min(shortest, o.max_lifetime * (1.0 - o.lifetime_jitter));
  }
  if (shortest == absl::InfiniteDuration()) return absl::Seconds(1);
  return std::clamp(shortest / 4, absl::Milliseconds(10), absl::Seconds(1));
}

// A timeout from `now` as a deadline on the state's steady clock.
int64_t SteadyDeadline(absl::Duration timeout, int64_t now) {
  if (timeout == absl::InfiniteDuration()) return kNever;
  if (timeout >= absl::Nanoseconds(kNever - now)) return kNever;
  if (timeout <= absl::ZeroDuration()) return now;  // passed already
  return now + absl::ToInt64Nanoseconds(timeout);
}

}  // namespace

PoolCore::PoolCore(EventLoop* loop, ConnectionPoolOptions options)
    : loop_(loop),
      options_(std::move(options)),
      sweep_interval_(DefaultSweepInterval(options_)),
      state_(LimitsOf(options_), SteadyPoolClock()) {}

// --- Acquire -----------------------------------------------------------------

uint64_t PoolCore::Acquire(
    absl::string_view key, absl::Duration timeout, AcquireCallback done,
    std::shared_ptr<const LeaseCallbacks> callbacks,
    const std::shared_ptr<const ConnectionLayer>& layer) {
  for (;;) {
    Actions a;
    absl::Status failure;
    uint64_t queued = 0;
    Entry* idle = nullptr;
    ConnectionPtr conn;
    {
      MutexLock lock(&mu_);
      idle = static_cast<Entry*>(state_.TakeIdle(key, a.fx));
      if (idle != nullptr) {
        // Alive: its entry is counted, so its on_close has not run.
        conn = static_cast<Connection*>(state_.HandleOf(*idle))
                   ->shared_from_this();
      } else {
        const int64_t now = state_.Now();
        const int64_t deadline_ns = SteadyDeadline(timeout, now);
        absl::StatusOr<PoolWaiter*> w = state_.Enqueue(
            key, deadline_ns,
            [&] {
              auto waiter = std::make_unique<Waiter>();
              waiter->done = std::move(done);
              waiter->callbacks = std::move(callbacks);
              return waiter;
            },
            a.fx, layer);
        if (!w.ok()) {
          failure = w.status();
        } else {
          queued = (*w)->id();
          if (deadline_ns != kNever) {
            ArmDeadlineLocked(static_cast<Waiter*>(*w), deadline_ns - now);
          }
        }
      }
      ResolveLocked(a);
    }
    RunActions(a);
    if (!failure.ok()) {
      // Not moved: Enqueue calls the factory only when it queues.
      done(std::move(failure));  // NOLINT(bugprone-use-after-move)
      return 0;
    }
    if (queued != 0) return queued;

    // An idle connection: check it and hand it over excluded from its
    // callbacks, `done` included (so that none of the holder's callbacks
    // can run before `done` has the lease). Inline unless one of them is
    // running right now (the tail of the callback that released it, or
    // input or a close arriving); then the task runs after it, on its
    // thread, and settles the connection itself, while this request tries
    // the next idle one or queues. Queued, it does not open a connection
    // for itself: the one being rechecked counts as coming and serves the
    // oldest waiter unless it proves dead.
    InlineHandOff ctx{&done, &callbacks};
    {
      CallScope scope(kInlineHandOff, idle, &ctx);
      if (CallScope::Active(kHolderCode, conn.get())) {
        HandOffTask(conn, &ctx);  // already excluded: called from its code
      } else {
        conn->Dispatch([this, token = static_cast<const void*>(&ctx)](
                           const ConnectionPtr& c) { HandOffTask(c, token); });
      }
    }
    if (ctx.handed) return 0;
    // Dead (already closed and counted) or busy: try again.
  }
}

void PoolCore::HandOffTask(const ConnectionPtr& conn, const void* token) {
  std::shared_ptr<Entry> entry = EntryOf(conn);
  if (entry == nullptr) return;  // closed: its on_close accounted for it
  CallScope* scope = CallScope::Find(kInlineHandOff, entry.get());
  if (scope == nullptr || scope->data() != token ||
      static_cast<InlineHandOff*>(scope->data())->ran) {
    // Deferred: the acquirer moved on; settle the connection ourselves.
    Recheck(entry, conn);
    return;
  }
  auto* ctx = static_cast<InlineHandOff*>(scope->data());
  ctx->ran = true;
  std::optional<Lease> lease = HandOut(entry, conn, *ctx->callbacks,
                                       /*reused=*/true, nullptr, nullptr);
  if (!lease.has_value()) return;  // dead: detached; try the next
  ctx->handed = true;
  CallScope holder(kHolderCode, conn.get());
  (*ctx->done)(*std::move(lease));
}

std::optional<Lease> PoolCore::HandOut(
    const std::shared_ptr<Entry>& entry, const ConnectionPtr& conn,
    const std::shared_ptr<const LeaseCallbacks>& cb, bool reused,
    Waiter* claimed, std::unique_ptr<Waiter>* owned) {
  std::optional<PoolCloseReason> reject;
  if (reused) {
    // Unread input, then the socket (one MSG_PEEK) or, without the
    // liveness check, what the connection already knows.
    const bool dead =
        !conn->input().empty() ||
        (options_.check_liveness
             ? !conn->Probe().ok()
             : conn->is_closed() || !conn->can_send() || conn->input_ended());
    if (dead) reject = PoolCloseReason::kDeadOnReuse;
    if (!reject && options_.check_on_acquire &&
        !options_.check_on_acquire(conn).ok()) {
      reject = PoolCloseReason::kHealthCheck;
    }
  } else if (conn->is_closed() || !conn->can_send()) {
    reject = PoolCloseReason::kError;
  }
  Actions a;
  if (reject) {
    {
      MutexLock lock(&mu_);
      state_.Rejected(entry.get(), *reject, claimed, a.fx);
      ResolveLocked(a);
    }
    RunActions(a);
    return std::nullopt;
  }
  std::atomic_store(&entry->callbacks, cb);
  entry->holder_active.store(true, std::memory_order_release);
  PoolState::Leasing leasing;
  {
    MutexLock lock(&mu_);
    leasing = state_.Leased(entry.get(), claimed, reused, a.fx);
    ResolveLocked(a);
  }
  if (!leasing.leased) {
    entry->holder_active.store(false, std::memory_order_release);
    std::atomic_store(&entry->callbacks,
                      std::shared_ptr<const LeaseCallbacks>());
    RunActions(a);
    return std::nullopt;
  }
  if (leasing.waiter != nullptr) {
    owned->reset(static_cast<Waiter*>(leasing.waiter.release()));
    CancelTimer(**owned);
  }
  RunActions(a);
  return Lease(this, entry, conn, reused);
}

void PoolCore::ArmDeadlineLocked(Waiter* w, int64_t delay_ns) {
  std::weak_ptr<PoolCore> weak = weak_from_this();
  const uint64_t id = w->id();
  w->timer = loop_->RunAfter(absl::Nanoseconds(delay_ns), [weak, id] {
    if (std::shared_ptr<PoolCore> self = weak.lock()) {
      self->OnWaiterDeadline(id);
    }
  });
}

bool PoolCore::CancelAcquire(uint64_t id) {
  Actions a;
  bool cancelled;
  {
    MutexLock lock(&mu_);
    cancelled = state_.Cancel(id, a.fx);
    ResolveLocked(a);
  }
  RunActions(a);
  return cancelled;
}

// --- Release -----------------------------------------------------------------

void PoolCore::Release(std::shared_ptr<Entry> entry, const ConnectionPtr& conn,
                       bool reusable) {
  entry->holder_active.store(false, std::memory_order_release);
  if (!reusable) {
    Actions a;
    {
      MutexLock lock(&mu_);
      state_.ReleaseNotReusable(entry.get(), a.fx);
      ResolveLocked(a);
    }
    RunActions(a);
    return;
  }
  // Back to the pool excluded from the holder's callbacks: after the one
  // running (if any) returns, and before any later one; at once when called
  // from the holder's own code (already excluded). Until then it stays
  // leased: nobody else can take it.
  if (CallScope::Active(kHolderCode, conn.get())) {
    FinishRelease(entry, conn);
    return;
  }
  // The task captures only `this` (AnyInvocable stores that inline: no
  // allocation). Run inline (the usual case), it takes the entry from this
  // frame (kReleasing); run later, from the connection's context (gone only
  // if the connection closed meanwhile: then its on_close settled it).
  CallScope releasing(kReleasing, conn.get(), &entry);
  conn->Dispatch([this](const ConnectionPtr& c) {
    if (CallScope* scope = CallScope::Find(kReleasing, c.get())) {
      FinishRelease(*static_cast<std::shared_ptr<Entry>*>(scope->data()), c);
    } else if (std::shared_ptr<Entry> e = EntryOf(c)) {
      FinishRelease(e, c);
    }
  });
}

void PoolCore::FinishRelease(const std::shared_ptr<Entry>& entry,
                             const ConnectionPtr& conn) {
  // The holder's closures go now (not under any lock: they may hold
  // leases of their own).
  std::atomic_store(&entry->callbacks, std::shared_ptr<const LeaseCallbacks>());
  if (conn->is_closed()) return;  // on_close (due or done) accounts for it
  std::optional<PoolCloseReason> reject;
  if (!conn->input().empty() || !conn->can_send()) {
    reject = PoolCloseReason::kNotReusable;  // unread input / closing
  } else if (conn->input_ended()) {
    reject = PoolCloseReason::kError;  // the peer half-closed
  } else if (options_.check_on_release &&
             !options_.check_on_release(conn).ok()) {
    reject = PoolCloseReason::kHealthCheck;
  }
  Place(entry, conn, Return::kReleased, reject);  // checks the lifetime too
}

void PoolCore::Recheck(const std::shared_ptr<Entry>& entry,
                       const ConnectionPtr& conn) {
  if (conn->is_closed()) return;  // on_close accounts for it
  std::optional<PoolCloseReason> reject;
  if (!conn->input().empty() || conn->input_ended() || !conn->can_send()) {
    reject = PoolCloseReason::kDeadWhileIdle;
  }
  Place(entry, conn, Return::kRechecked, reject);
}

void PoolCore::PlaceFresh(const std::shared_ptr<Entry>& entry,
                          const ConnectionPtr& conn) {
  // Closing already: its on_close (due) accounts for it.
  if (conn->is_closed()) return;
  Place(entry, conn, Return::kFresh, std::nullopt);
}

void PoolCore::Place(const std::shared_ptr<Entry>& entry,
                     const ConnectionPtr& conn, Return how,
                     std::optional<PoolCloseReason> reject) {
  Actions a;
  Waiter* claimed;
  {
    MutexLock lock(&mu_);
    claimed =
        static_cast<Waiter*>(state_.Place(entry.get(), how, reject, a.fx));
    ResolveLocked(a);
  }
  RunActions(a);
  if (claimed == nullptr) return;
  // The claimed waiter's callbacks are read-only; the state keeps it until
  // HandOut settles it.
  std::unique_ptr<Waiter> owned;
  std::optional<Lease> lease =
      HandOut(entry, conn, claimed->callbacks,
              /*reused=*/how != Return::kFresh, claimed, &owned);
  if (!lease.has_value()) return;  // detached; the waiter was requeued
  CallScope holder(kHolderCode, conn.get());
  owned->done(*std::move(lease));
  // Bytes that came before the holder did (a server that speaks first).
  if (how == Return::kFresh &&
      entry->holder_active.load(std::memory_order_acquire) &&
      !conn->input().empty()) {
    std::shared_ptr<const LeaseCallbacks> cb = entry->callbacks;
    if (cb != nullptr && cb->on_data) cb->on_data(conn, conn->input());
  }
}

// --- Effects -----------------------------------------------------------------

void PoolCore::ResolveAllLocked(Actions& a) {
  if (Effects::Lists* lists = a.fx.lists()) {
    for (void* handle : lists->close) {
      // A handle is forgotten (under mu_) in the connection's on_close, so
      // the connection is alive here; after unlocking we hold it.
      a.close.push_back(static_cast<Connection*>(handle)->shared_from_this());
    }
  }
  if (a.fx.drained) {
    for (auto& cb : drained_callbacks_) a.drained.push_back(std::move(cb));
    drained_callbacks_.clear();
  }
}

void PoolCore::CancelTimer(const Waiter& w) {
  if (w.timer.valid() && !w.deadline_passed()) loop_->Cancel(w.timer);
}

void PoolCore::RunAllActions(Actions& a) {
  Effects::Lists* lists = a.fx.lists();
  if (lists != nullptr) {
    for (auto& failed : lists->fail) {
      CancelTimer(static_cast<const Waiter&>(*failed.first));
    }
    for (const ConnectionPtr& conn : a.close) conn->Close();
  }
  if (a.fx.arm_sweep) ArmSweep();
  if (lists != nullptr) {
    for (const Effects::Connect& c : lists->connects) StartConnect(c);
    if (!lists->cancel_connects.empty()) {
      if (TcpClient* client = UseClient()) {
        for (uint64_t id : lists->cancel_connects) client->Cancel(id);
        DoneWithClient();
      }
    }
    for (auto& failed : lists->fail) {
      static_cast<Waiter&>(*failed.first).done(std::move(failed.second));
    }
  }
  for (auto& cb : a.drained) {
    if (cb) cb();
  }
}

}  // namespace connpool_internal
}  // namespace mill
