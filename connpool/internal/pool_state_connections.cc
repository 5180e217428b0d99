// PoolState: connections: their return to the pool, the idle set, their
// events and close, connects, expiry, drain, and the queries. (Requests and
// the hand-out are in pool_state.cc.)
#include <memory>
#include <optional>
#include <utility>

#include "connpool/internal/pool_state.h"

namespace mill {
namespace connpool_internal {

// --- Return to the pool ---------------------------------------------------

PoolWaiter* PoolState::Place(PoolEntry* e, Return how,
                             std::optional<PoolCloseReason> reject,
                             Effects& fx) {
  const EntryState expected = how == Return::kReleased ? EntryState::kLeased
                              : how == Return::kRechecked
                                  ? EntryState::kRechecking
                                  : EntryState::kChecking;
  if (e->state_ != expected) return nullptr;  // closed (and counted)
  if (!reject && how == Return::kReleased && limits_.max_lifetime_ns > 0 &&
      Expired(*e, Now())) {
    reject = PoolCloseReason::kLifetime;
  }
  Endpoint* ep = e->endpoint_;
  PoolWaiter* claimed = nullptr;
  if (reject) {
    Detach(e, *reject, fx);
  } else if (draining_) {
    Detach(e, PoolCloseReason::kDrain, fx);
  } else if (!ep->waiters.empty()) {
    claimed = ep->waiters.pop_front();
    queue_.erase(claimed);
    ep->claimed.push_back(claimed);
    SetState(e, EntryState::kChecking);
  } else {
    PushIdle(e, fx);
  }
  Finish(fx);
  return claimed;
}

void PoolState::ReleaseNotReusable(PoolEntry* e, Effects& fx) {
  if (e->state_ != EntryState::kLeased) return;  // closed meanwhile
  Detach(e, PoolCloseReason::kNotReusable, fx);
  Finish(fx);
}

// --- Connection events ------------------------------------------------------

bool PoolState::DeadWhileIdle(PoolEntry* e, bool close, Effects& fx) {
  if (e->state_ != EntryState::kIdle) return false;
  Detach(e, PoolCloseReason::kDeadWhileIdle, fx, close);
  Finish(fx);
  return true;
}

void PoolState::Closed(PoolEntry* e, ConnectionEnd end, Effects& fx) {
  std::optional<PoolCloseReason> why;
  switch (e->state_) {
    case EntryState::kIdle:
      why = end == ConnectionEnd::kIdleTimeout
                ? PoolCloseReason::kIdleTimeout
                : PoolCloseReason::kDeadWhileIdle;
      break;
    case EntryState::kChecking:
    case EntryState::kRechecking:
      why = e->been_idle_ ? PoolCloseReason::kDeadOnReuse
                          : PoolCloseReason::kError;
      break;
    case EntryState::kLeased:
      why = end == ConnectionEnd::kClosedLocally ? PoolCloseReason::kNotReusable
                                                 : PoolCloseReason::kError;
      break;
    case EntryState::kDetached:
      break;
  }
  if (why) {
    if (end == ConnectionEnd::kStopped) why = PoolCloseReason::kDrain;
    Detach(e, *why, fx, /*close=*/false);
  }
  e->handle_ = nullptr;
  Finish(fx);
}

// --- Connects ---------------------------------------------------------------

void PoolState::StartConnect(Endpoint* ep, Effects& fx) {
  ++ep->open;
  ++ep->connecting;
  const uint64_t seq = next_connect_seq_++;
  connects_.emplace(seq, PendingConnect{ep, 0});
  fx.Add().connects.push_back(Effects::Connect{ep->key, seq, ep->context});
}

Endpoint* PoolState::EndConnect(uint64_t seq) {
  auto it = connects_.find(seq);
  Endpoint* ep = it->second.endpoint;
  connects_.erase(it);
  ReleaseIfEmpty(connects_);
  --ep->connecting;
  return ep;
}

bool PoolState::ConnectIssued(uint64_t seq, uint64_t id) {
  auto it = connects_.find(seq);
  if (it == connects_.end()) return false;  // already done
  it->second.id = id;
  return draining_;  // Drain() could not see the id yet
}

void PoolState::ConnectFailed(uint64_t seq, const absl::Status& status,
                              Effects& fx) {
  Endpoint* ep = EndConnect(seq);
  ++counters_.connect_failures;
  --ep->open;
  if (!draining_ && !ep->waiters.empty()) {
    ++counters_.failed_connect;
    fx.Add().fail.emplace_back(TakeWaiter(ep->waiters.front(), fx), status);
  }
  fx.pump = true;
  MarkForErase(ep, fx);
  Finish(fx);
}

bool PoolState::ConnectSucceeded(uint64_t seq, PoolEntry* e, void* handle,
                                 Effects& fx) {
  Endpoint* ep = EndConnect(seq);
  ++counters_.created;
  bool place = false;
  if (draining_ || e == nullptr) {
    // Never counted as an entry: not Detach, but the same accounting.
    --ep->open;
    if (draining_) {
      ++counters_.closed_by[static_cast<int>(PoolCloseReason::kDrain)];
      fx.Add().close.push_back(handle);
    } else {
      // Closed before we got here (its on_close forgot its entry).
      ++counters_.closed_by[static_cast<int>(PoolCloseReason::kError)];
    }
    fx.pump = true;
    MarkForErase(ep, fx);
  } else {
    place = true;
    e->endpoint_ = ep;
    e->handle_ = handle;
    // The connect's count in ep->open carries over to the entry.
    SetState(e, EntryState::kChecking);
    if (limits_.max_lifetime_ns > 0) {
      e->lifetime_cut_ = static_cast<uint32_t>(random_() >> 32);
      e->expires_ns_ = Now() + LifetimeNanos(*e);
    }
  }
  Finish(fx);
  return place;
}

// --- Expiry and shutdown ----------------------------------------------------

void PoolState::Sweep(Effects& fx) {
  const int64_t now = Now();
  PoolEntry* e = idle_by_age_.back();
  while (e != nullptr) {
    PoolEntry* younger = idle_by_age_.prev(e);
    if (IdleTooLong(*e, now)) {
      Detach(e, PoolCloseReason::kIdleTimeout, fx);
    } else if (Expired(*e, now)) {
      Detach(e, PoolCloseReason::kLifetime, fx);
    } else if (limits_.max_lifetime_ns == 0) {
      break;  // oldest first: the rest were idle for less time
    }
    e = younger;
  }
  sweep_armed_ = !idle_by_age_.empty();
  fx.arm_sweep = sweep_armed_;
  Finish(fx);
}

void PoolState::Drain(const absl::Status& why, Effects& fx) {
  if (!draining_) {
    draining_ = true;
    drain_status_ = why;
    while (PoolWaiter* w = queue_.front()) {
      ++counters_.failed_closed;
      fx.Add().fail.emplace_back(TakeWaiter(w, fx), why);
    }
    while (PoolEntry* e = idle_by_age_.back()) {
      Detach(e, PoolCloseReason::kDrain, fx);
    }
    for (const auto& [seq, connect] : connects_) {
      if (connect.id != 0) fx.Add().cancel_connects.push_back(connect.id);
    }
  }
  Finish(fx);
}

// --- Queries ----------------------------------------------------------------

ConnectionPoolStats PoolState::Stats() const {
  ConnectionPoolStats s = counters_;
  for (const auto& [key, ep] : endpoints_) {
    s.open += ep->open;
    s.connecting += ep->connecting;
  }
  s.idle = idle_by_age_.size();
  s.active = s.open - s.idle - s.connecting;
  s.pending = waiters_.size();
  s.endpoints = endpoints_.size();
  s.wait_total = absl::Nanoseconds(wait_total_ns_);
  s.wait_max = absl::Nanoseconds(wait_max_ns_);
  return s;
}

int64_t PoolState::LifetimeNanos(const PoolEntry& e) const {
  if (limits_.max_lifetime_ns == 0) return kNever;
  // The cut is a fraction of the jitter in [0, 1): lifetime in
  // (max * (1 - jitter), max].
  const double cut = limits_.lifetime_jitter *
                     (static_cast<double>(e.lifetime_cut_) / 4294967296.0);
  return static_cast<int64_t>(static_cast<double>(limits_.max_lifetime_ns) *
                              (1.0 - cut));
}

// --- The idle set and the entries --------------------------------------------

void PoolState::SetState(PoolEntry* e, EntryState state) {
  if (e->state_ == EntryState::kRechecking) --e->endpoint_->rechecking;
  if (state == EntryState::kRechecking) ++e->endpoint_->rechecking;
  e->state_ = state;
}

void PoolState::UnlinkIdle(PoolEntry* e) {
  e->endpoint_->idle.erase(e);
  idle_by_age_.erase(e);
}

void PoolState::PushIdle(PoolEntry* e, Effects& fx) {
  Endpoint* ep = e->endpoint_;
  SetState(e, EntryState::kIdle);
  if (limits_.idle_timeout_ns > 0) e->idle_since_ns_ = Now();
  e->been_idle_ = true;
  ep->idle.push_front(e);
  idle_by_age_.push_front(e);
  while (ep->idle.size() > limits_.max_idle_per_endpoint) {
    Detach(ep->idle.back(), PoolCloseReason::kEvicted, fx);
  }
  if (expiry() && !sweep_armed_ && !idle_by_age_.empty()) {
    sweep_armed_ = true;
    fx.arm_sweep = true;
  }
  // Requests of other endpoints blocked by max_connections may need it
  // closed to make room.
  if (!queue_.empty()) fx.pump = true;
}

void PoolState::Detach(PoolEntry* e, PoolCloseReason reason, Effects& fx,
                       bool close) {
  Endpoint* ep = e->endpoint_;
  if (e->state_ == EntryState::kIdle) UnlinkIdle(e);
  SetState(e, EntryState::kDetached);
  e->endpoint_ = nullptr;
  --ep->open;
  ++counters_.closed_by[static_cast<int>(reason)];
  if (close && e->handle_ != nullptr) fx.Add().close.push_back(e->handle_);
  fx.pump = true;
  MarkForErase(ep, fx);
}

}  // namespace connpool_internal
}  // namespace mill
