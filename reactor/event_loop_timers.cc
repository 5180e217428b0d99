// LoopImpl: timers on the timing wheel. Anyone schedules and cancels under
// wheel_mu_; the owner of the first poller advances the wheel and runs the
// due timers as entries of its batch, after releasing the lock, so a
// callback (and its destructor) may call back into the loop.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"
#include "timer/timing_wheel.h"

namespace mill {
namespace reactor_internal {
namespace {

using Clock = std::chrono::steady_clock;

int64_t ToNanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             t.time_since_epoch())
      .count();
}

}  // namespace

uint64_t LoopImpl::AddTimer(absl::Duration delay, absl::Duration interval,
                            Task fn) {
  if (!fn || stop_.load(std::memory_order_acquire)) return 0;
  // The deadline counts from the call, not from when the loop gets to it.
  const TimingWheel::TimePoint deadline =
      Clock::now() +
      absl::ToChronoNanoseconds(std::max(delay, absl::ZeroDuration()));
  const bool repeating = interval > absl::ZeroDuration();
  const uint64_t id = next_timer_id_.fetch_add(1, std::memory_order_relaxed);
  auto timer = std::make_shared<LoopTimer>(id, repeating, std::move(fn));
  // The wheel's callback only hands the timer to the thread advancing the
  // wheel (CollectDueTimers), which runs it after releasing wheel_mu_.
  auto collect = [timer] {
    static_cast<std::vector<TimerPtr>*>(
        CallScope::Innermost(kCollectScope)->data())
        ->push_back(timer);
  };
  {
    MutexLock lock(&wheel_mu_);
    const TimerId wheel_id =
        repeating ? wheel_.ScheduleRepeating(
                        deadline, absl::ToChronoNanoseconds(interval), collect)
                  : wheel_.Schedule(deadline, collect);
    timers_.emplace(id, TimerEntry{std::move(timer), wheel_id});
    UpdateNextDeadlineLocked();
  }
  WakeForDeadline(ToNanos(deadline));
  return id;
}

void LoopImpl::UpdateNextDeadlineLocked() {
  std::optional<TimingWheel::TimePoint> next = wheel_.NextDeadline();
  next_deadline_ns_.store(next ? ToNanos(*next) : INT64_MAX,
                          std::memory_order_seq_cst);
}

void LoopImpl::WakeForDeadline(int64_t deadline_ns) {
  // Pairs with the owner's publish-then-check of sleeping_until: either it
  // sees the new deadline before sleeping, or we see it asleep for longer.
  if (deadline_ns < sets_[0]->sleeping_until.load(std::memory_order_seq_cst)) {
    (void)sets_[0]->waker->Wake();
  }
}

bool LoopImpl::Cancel(uint64_t id) {
  TimerPtr timer;  // the last reference may go after the lock is released
  uint32_t before;
  {
    MutexLock lock(&wheel_mu_);
    auto it = timers_.find(id);
    if (it == timers_.end()) return false;
    timer = std::move(it->second.timer);
    const TimerId wheel_id = it->second.wheel_id;
    timers_.erase(it);
    before =
        timer->state.fetch_or(LoopTimer::kCancelled, std::memory_order_acq_rel);
    if (timer->repeating || (before & LoopTimer::kStarted) == 0) {
      wheel_.Cancel(wheel_id);  // destroys the wheel's reference only
    }
    UpdateNextDeadlineLocked();
  }
  if (!timer->repeating) return (before & LoopTimer::kStarted) == 0;
  if ((before & LoopTimer::kRunning) != 0 &&
      !CallScope::Active(kTimerScope, timer.get())) {
    // An invocation runs on another thread: wait for it, so that the caller
    // may free what the callback uses.
    MutexLock lock(&timer_wait_mu_);
    while ((timer->state.load(std::memory_order_acquire) &
            LoopTimer::kRunning) != 0) {
      timer_wait_cv_.Wait(&timer_wait_mu_);
    }
  }
  return true;
}

void LoopImpl::CollectDueTimers(std::vector<TimerPtr>& due) {
  const int64_t next = next_deadline_ns_.load(std::memory_order_acquire);
  if (next == INT64_MAX) return;
  const Clock::time_point now = Clock::now();
  if (ToNanos(now) < next) return;
  CallScope collecting(kCollectScope, this, &due);
  MutexLock lock(&wheel_mu_);
  wheel_.Advance(now);
  UpdateNextDeadlineLocked();
}

void LoopImpl::RunTimer(const TimerPtr& timer) {
  uint32_t state = timer->state.load(std::memory_order_acquire);
  for (;;) {
    // Cancelled; or the previous period still runs (skip this one); or a
    // one-shot that already started.
    if (state &
        (LoopTimer::kCancelled | LoopTimer::kRunning | LoopTimer::kStarted)) {
      return;
    }
    const uint32_t next = state | LoopTimer::kRunning |
                          (timer->repeating ? 0 : LoopTimer::kStarted);
    if (timer->state.compare_exchange_weak(state, next,
                                           std::memory_order_acq_rel)) {
      break;
    }
  }
  if (!timer->repeating) {
    // Started: no longer pending, Cancel now returns false.
    TimerPtr entry;  // released after the lock
    MutexLock lock(&wheel_mu_);
    auto it = timers_.find(timer->id);
    if (it != timers_.end()) {
      entry = std::move(it->second.timer);
      timers_.erase(it);
    }
  }
  {
    CallScope in_timer(kTimerScope, timer.get());
    Guarded(Token(), [&timer] { timer->fn(); });
  }
  const uint32_t before =
      timer->state.fetch_and(~LoopTimer::kRunning, std::memory_order_acq_rel);
  if (before & LoopTimer::kCancelled) {
    { MutexLock lock(&timer_wait_mu_); }
    timer_wait_cv_.NotifyAll();
  }
}

size_t LoopImpl::pending_timers() const {
  MutexLock lock(&wheel_mu_);
  return timers_.size();
}

}  // namespace reactor_internal
}  // namespace mill
