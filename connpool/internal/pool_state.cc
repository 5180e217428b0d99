// PoolState: requests (take an idle connection or queue, deadlines,
// cancel), the hand-out, the queue and what it needs (pump, endpoints).
// Connections (return, idle set, events, connects, expiry, drain) are in
// pool_state_connections.cc.
#include "connpool/internal/pool_state.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace mill {
namespace connpool_internal {
namespace {

class SteadyClock final : public PoolClock {
 public:
  int64_t NowNanos() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

absl::Status NoConnectionBeforeDeadline(const Endpoint& ep) {
  return absl::DeadlineExceededError(
      absl::StrCat("ConnectionPool::Acquire(", ep.key,
                   "): no connection before the deadline"));
}

}  // namespace

const PoolClock* SteadyPoolClock() {
  static const SteadyClock clock;
  return &clock;
}

PoolState::PoolState(const PoolLimits& limits, const PoolClock* clock)
    : limits_(limits),
      clock_(clock),
      random_(limits.random_seed != 0 ? limits.random_seed
                                      : std::random_device{}()) {}

PoolState::~PoolState() {
  // Waiters still owned (none once the shell drained) leave their lists
  // before they are destroyed.
  while (queue_.pop_front() != nullptr) {
  }
  for (auto& [key, ep] : endpoints_) {
    while (ep->waiters.pop_front() != nullptr) {
    }
    while (ep->claimed.pop_front() != nullptr) {
    }
    while (ep->idle.pop_front() != nullptr) {
    }
  }
  while (idle_by_age_.pop_front() != nullptr) {
  }
}

// --- Acquire ----------------------------------------------------------------

PoolEntry* PoolState::TakeIdle(absl::string_view key, Effects& fx) {
  if (draining_) return nullptr;
  Endpoint* ep = FindEndpoint(key);
  if (ep == nullptr || ep->idle.empty()) return nullptr;
  const int64_t now = expiry() ? Now() : 0;
  PoolEntry* taken = nullptr;
  while (PoolEntry* e = ep->idle.front()) {
    if (IdleTooLong(*e, now)) {
      Detach(e, PoolCloseReason::kIdleTimeout, fx);
    } else if (Expired(*e, now)) {
      Detach(e, PoolCloseReason::kLifetime, fx);
    } else {
      UnlinkIdle(e);
      SetState(e, EntryState::kRechecking);
      taken = e;
      break;
    }
  }
  Finish(fx);
  return taken;
}

absl::StatusOr<PoolWaiter*> PoolState::Enqueue(
    absl::string_view key, int64_t deadline_ns,
    absl::FunctionRef<std::unique_ptr<PoolWaiter>()> make, Effects& fx,
    std::shared_ptr<const void> context) {
  if (draining_) {
    ++counters_.failed_closed;
    return absl::FailedPreconditionError(
        drained_ ? "ConnectionPool::Acquire: the pool is drained"
                 : "ConnectionPool::Acquire: the pool is draining");
  }
  const int64_t now = Now();
  if (deadline_ns <= now) {
    ++counters_.failed_deadline;
    return absl::DeadlineExceededError(
        absl::StrCat("ConnectionPool::Acquire(", key,
                     "): the deadline passed with no idle connection"));
  }
  Endpoint* ep = GetEndpoint(key, std::move(context));
  const size_t total = TotalOpen();
  const bool room_here = ep->open < limits_.max_connections_per_endpoint;
  const bool room_total =
      total < limits_.max_connections || !idle_by_age_.empty();
  const bool can_connect = room_here && room_total;
  if (!can_connect &&
      (waiters_.size() >= limits_.max_pending ||
       ep->waiters.size() >= limits_.max_pending_per_endpoint)) {
    ++counters_.failed_queue_full;
    absl::Status full = absl::ResourceExhaustedError(absl::StrCat(
        "ConnectionPool::Acquire(", key,
        "): ", room_here ? "max_connections" : "max_connections_per_endpoint",
        " reached and ", waiters_.size(), " requests already waiting"));
    MarkForErase(ep, fx);
    Finish(fx);
    return full;
  }
  std::unique_ptr<PoolWaiter> owned = make();
  PoolWaiter* w = owned.get();
  w->id_ = next_waiter_id_++;
  w->endpoint_ = ep;
  w->start_ns_ = now;
  w->deadline_ns_ = deadline_ns;
  ep->waiters.push_back(w);
  queue_.push_back(w);
  waiters_.emplace(w->id_, std::move(owned));
  // Waiters beyond the connects (and rechecks) already coming need one.
  if (can_connect && ep->waiters.size() > ep->connecting + ep->rechecking) {
    if (total >= limits_.max_connections) {
      // The only room is an idle connection of another endpoint (this one
      // has none, or TakeIdle would have found it): close the oldest.
      Detach(idle_by_age_.back(), PoolCloseReason::kEvicted, fx);
    }
    StartConnect(ep, fx);
  }
  Finish(fx);
  return w;
}

void PoolState::DeadlinePassed(uint64_t id, Effects& fx) {
  auto it = waiters_.find(id);
  if (it == waiters_.end()) return;
  PoolWaiter* w = it->second.get();
  w->deadline_passed_ = true;
  if (Claimed(*w)) return;  // settled when its check finishes
  ++counters_.failed_deadline;
  absl::Status why = NoConnectionBeforeDeadline(*w->endpoint_);
  fx.Add().fail.emplace_back(TakeWaiter(w, fx), std::move(why));
  Finish(fx);
}

bool PoolState::Cancel(uint64_t id, Effects& fx) {
  auto it = waiters_.find(id);
  if (it == waiters_.end() || Claimed(*it->second)) return false;
  ++counters_.cancelled;
  fx.Add().fail.emplace_back(
      TakeWaiter(it->second.get(), fx),
      absl::CancelledError("ConnectionPool::CancelAcquire"));
  Finish(fx);
  return true;
}

// --- Hand-out -------------------------------------------------------------

PoolState::Leasing PoolState::Leased(PoolEntry* e, PoolWaiter* claimed,
                                     bool reused, Effects& fx) {
  Leasing out;
  if (e->state_ != EntryState::kChecking &&
      e->state_ != EntryState::kRechecking) {
    // Closed meanwhile (counted then): the waiter needs another one.
    if (claimed != nullptr) Requeue(claimed, fx);
    Finish(fx);
    return out;
  }
  SetState(e, EntryState::kLeased);
  out.leased = true;
  ++counters_.acquired;
  if (reused) ++counters_.reused;
  // Handed out at once (no waiter): no wait.
  RecordWait(claimed != nullptr ? Now() - claimed->start_ns_ : 0);
  if (claimed != nullptr) out.waiter = TakeWaiter(claimed, fx);
  Finish(fx);
  return out;
}

void PoolState::Rejected(PoolEntry* e, PoolCloseReason reason,
                         PoolWaiter* claimed, Effects& fx) {
  if (e->state_ == EntryState::kChecking ||
      e->state_ == EntryState::kRechecking) {
    Detach(e, reason, fx);
  }
  if (claimed != nullptr) Requeue(claimed, fx);
  Finish(fx);
}

void PoolState::RecordWait(int64_t wait_ns) {
  const int64_t wait = std::max<int64_t>(0, wait_ns);
  wait_total_ns_ += wait;
  wait_max_ns_ = std::max(wait_max_ns_, wait);
  int bucket = 0;
  while (bucket < ConnectionPoolStats::kWaitBuckets - 1 &&
         absl::Nanoseconds(wait) >= WaitBucketLimit(bucket)) {
    ++bucket;
  }
  ++counters_.wait_histogram[bucket];
}

// --- The queue and the endpoints --------------------------------------------

std::unique_ptr<PoolWaiter> PoolState::TakeWaiter(PoolWaiter* w, Effects& fx) {
  Endpoint* ep = w->endpoint_;
  if (Claimed(*w)) {
    ep->claimed.erase(w);
  } else {
    ep->waiters.erase(w);
    queue_.erase(w);
  }
  auto it = waiters_.find(w->id_);
  std::unique_ptr<PoolWaiter> owned = std::move(it->second);
  waiters_.erase(it);
  ReleaseIfEmpty(waiters_);
  MarkForErase(ep, fx);
  return owned;
}

void PoolState::Requeue(PoolWaiter* w, Effects& fx) {
  const bool late = w->deadline_passed_ ||
                    (w->deadline_ns_ != kNever && Now() >= w->deadline_ns_);
  if (draining_ || late) {
    absl::Status why;
    if (draining_) {
      ++counters_.failed_closed;
      why = drain_status_;
    } else {
      ++counters_.failed_deadline;
      why = NoConnectionBeforeDeadline(*w->endpoint_);
    }
    fx.Add().fail.emplace_back(TakeWaiter(w, fx), std::move(why));
    return;
  }
  // Back at the head of the queues: it was the oldest.
  Endpoint* ep = w->endpoint_;
  ep->claimed.erase(w);
  ep->waiters.push_front(w);
  queue_.push_front(w);
  fx.pump = true;  // the dead connection's slot can open a new one
}

void PoolState::Pump(Effects& fx) {
  if (draining_ || queue_.empty()) return;
  size_t total = TotalOpen();
  for (PoolWaiter* w = queue_.front(); w != nullptr; w = queue_.next(w)) {
    Endpoint* ep = w->endpoint_;
    if (ep->waiters.size() <= ep->connecting + ep->rechecking) {
      continue;  // enough coming
    }
    if (ep->open >= limits_.max_connections_per_endpoint) continue;
    if (total >= limits_.max_connections) {
      // Its endpoint has no idle connection (it would have been handed
      // one): close another endpoint's least recently used one.
      PoolEntry* victim = idle_by_age_.back();
      if (victim == nullptr) break;
      Detach(victim, PoolCloseReason::kEvicted, fx);
      --total;
    }
    StartConnect(ep, fx);
    ++total;
  }
}

void PoolState::MarkForErase(Endpoint* ep, Effects& fx) {
  if (ep->erase_listed) return;
  ep->erase_listed = true;
  fx.Add().maybe_erase.push_back(ep);
}

void PoolState::FinishAll(Effects& fx) {
  if (fx.pump) {
    // One pass is enough: an eviction inside it (which asks for another)
    // only made room for the connect it starts.
    Pump(fx);
    fx.pump = false;
  }
  if (Effects::Lists* lists = fx.lists()) {
    for (Endpoint* ep : lists->maybe_erase) {
      ep->erase_listed = false;
      if (ep->open == 0 && ep->waiters.empty() && ep->claimed.empty()) {
        endpoints_.erase(ep->key);
      }
    }
    lists->maybe_erase.clear();
  }
  if (draining_ && !drained_ && TotalOpen() == 0) {
    drained_ = true;
    fx.drained = true;
  }
}

Endpoint* PoolState::FindEndpoint(absl::string_view key) const {
  auto it = endpoints_.find(key);
  return it == endpoints_.end() ? nullptr : it->second.get();
}

Endpoint* PoolState::GetEndpoint(absl::string_view key,
                                 std::shared_ptr<const void> context) {
  auto it = endpoints_.find(key);
  if (it != endpoints_.end()) return it->second.get();
  auto ep = std::make_unique<Endpoint>(std::string(key), std::move(context));
  Endpoint* raw = ep.get();
  endpoints_.emplace(raw->key, std::move(ep));
  return raw;
}

size_t PoolState::TotalOpen() const {
  size_t total = 0;
  for (const auto& [key, ep] : endpoints_) total += ep->open;
  return total;
}

}  // namespace connpool_internal
}  // namespace mill
