// LoopImpl: Run, the workers' roles, polling and dispatch (see
// docs/ARCHITECTURE.md, "Dispatch").
//
// Roles. Each poller (PollSet) has at most one owner thread, which polls it
// and runs the batch of events it got (then due timers and, for set 0,
// RunInLoop tasks) itself. In pool mode one more thread may stand by
// (event_loop_standby.cc): it wakes every takeover_delay while the owners are
// busy, and when an owner has been inside one handler for that long, it takes
// the poller over, together with the entries of the batch the owner has not
// started. The owner learns it at the end of its handler (a CAS on the set's
// activity counter fails) and becomes the standby or parks. Threads beyond
// the pollers and the standby are parked on roles_cv_.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "base/os_thread.h"
#include "reactor/internal/loop_impl.h"
#include "reactor/internal/source.h"

namespace mill {
namespace reactor_internal {

using Clock = std::chrono::steady_clock;

absl::Status LoopImpl::Run() {
  if (running_.exchange(true, std::memory_order_acq_rel)) {
    return absl::FailedPreconditionError(
        "EventLoop::Run: the loop is already running on another thread");
  }
  {
    MutexLock lock(&roles_mu_);
    started_ = true;
  }
  roles_cv_.NotifyAll();
  absl::Status status;
  {
    CallScope in_loop(kLoopThreadScope, this);
    status = WorkerLoop(*threads_[0]);
    // Stopped: every other thread finishes the entry it is running and
    // exits.
    { MutexLock lock(&roles_mu_); }
    roles_cv_.NotifyAll();
    for (size_t i = 1; i < threads_.size(); ++i) {
      if (threads_[i]->thread.joinable()) threads_[i]->thread.join();
    }
  }
  {
    // Stopped for good: queued tasks will never run. Destroyed unlocked.
    std::vector<Task> dropped;
    {
      MutexLock lock(&posted_mu_);
      dropped.swap(posted_);
      posted_count_.store(0, std::memory_order_relaxed);
    }
  }
  {
    MutexLock lock(&roles_mu_);
    if (status.ok()) status = poll_error_;
  }
  running_.store(false, std::memory_order_release);
  return status;
}

void LoopImpl::HelperMain(int index) {
  {
    MutexLock lock(&roles_mu_);
    while (!started_ && !stop_.load(std::memory_order_acquire)) {
      roles_cv_.Wait(&roles_mu_);
    }
  }
  if (stop_.load(std::memory_order_acquire)) return;
  const std::string name = "mill-io-" + std::to_string(index);
  SetCurrentThreadName(name);
  absl::Status status;
  {
    CallScope in_loop(kLoopThreadScope, this);
    status = WorkerLoop(*threads_[index]);
  }
  if (!status.ok()) {
    MutexLock lock(&roles_mu_);
    if (poll_error_.ok()) poll_error_ = status;
  }
}

absl::Status LoopImpl::WorkerLoop(LoopThread& self) {
  absl::Status result;
  MutexLock lock(&roles_mu_);
  while (!stop_.load(std::memory_order_acquire)) {
    if (thread_set_[self.index] < 0) {
      for (int i = 0; i < polling_threads_; ++i) {
        if (set_owner_[i] < 0) {
          set_owner_[i] = self.index;
          thread_set_[self.index] = i;
          break;
        }
      }
    }
    if (thread_set_[self.index] >= 0) {
      const int index = thread_set_[self.index];
      lock.Unlock();
      absl::Status status = RunOwner(self, index);
      lock.Lock();
      if (!status.ok()) {
        result = status;
        Stop();
      }
      continue;
    }
    if (standby_enabled_ && standby_ < 0) {
      standby_ = self.index;
      RunStandby(self);  // returns as an owner, or when stopping
      continue;
    }
    roles_cv_.Wait(&roles_mu_);  // parked until a role is free
  }
  if (thread_set_[self.index] >= 0) {
    set_owner_[thread_set_[self.index]] = -1;
    thread_set_[self.index] = -1;
  }
  if (standby_ == self.index) standby_ = -1;
  lock.Unlock();
  roles_cv_.NotifyAll();
  return result;
}

absl::Status LoopImpl::RunOwner(LoopThread& self, int index) {
  PollSet& set = *sets_[index];
  // A new owner continues the count (even: no handler runs).
  uint64_t activity = set.activity.load(std::memory_order_acquire);
  for (;;) {
    // A batch inherited in a takeover first, then what each poll returns.
    if (!RunBatch(self, set, activity)) {
      LeaveTakenOver(self);
      return absl::OkStatus();
    }
    if (stop_.load(std::memory_order_acquire)) return absl::OkStatus();
    if (index == 0 && posted_count_.load(std::memory_order_acquire) > 0 &&
        !RunTasks(set, activity)) {
      LeaveTakenOver(self);
      return absl::OkStatus();
    }
    if (stop_.load(std::memory_order_acquire)) return absl::OkStatus();
    absl::Status status = PollOnce(self, set, index);
    if (!status.ok()) return status;
  }
}

void LoopImpl::LeaveTakenOver(LoopThread& self) {
  // The taker copied what it needed from our batch under roles_mu_; only
  // now may we drop it. Timer references are released unlocked.
  std::vector<TimerPtr> due;
  {
    MutexLock lock(&roles_mu_);
    self.events.clear();
    due.swap(self.due);
    self.cursor = 0;
  }
}

absl::Status LoopImpl::PollOnce(LoopThread& self, PollSet& set, int index) {
  std::optional<absl::Duration> timeout;
  if (options_.wake_on_poll_timeout) timeout = options_.poll_timeout;
  if (index == 0) {
    // Publish how long we sleep, then look again: a RunInLoop or RunAfter
    // (or a task runner we were handed the first poller from, giving its
    // tasks back) that came before the publish saw us awake and did not
    // wake us.
    int64_t deadline = next_deadline_ns_.load(std::memory_order_seq_cst);
    set.sleeping_until.store(deadline, std::memory_order_seq_cst);
    deadline =
        std::min(deadline, next_deadline_ns_.load(std::memory_order_seq_cst));
    // Queued tasks we cannot run (another thread still runs one, after a
    // takeover) do not shorten the sleep: that thread wakes us when it
    // gives the rest back.
    if (TasksRunnable()) {
      timeout = absl::ZeroDuration();
    } else if (deadline != INT64_MAX) {
      const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              Clock::now().time_since_epoch())
                              .count();
      // The poller rounds up to its resolution, so this never wakes early.
      const absl::Duration until =
          absl::Nanoseconds(std::max<int64_t>(0, deadline - now));
      if (!timeout || until < *timeout) timeout = until;
    }
  }
  set.in_poll.store(true, std::memory_order_relaxed);
  absl::StatusOr<size_t> ready = set.poller->Poll(self.events, timeout);
  set.in_poll.store(false, std::memory_order_relaxed);
  if (index == 0) {
    set.sleeping_until.store(PollSet::kAwake, std::memory_order_seq_cst);
  }
  Bump(self.polls);
  if (standby_enabled_) {
    // Pairs with the standby's decision to sleep (see RunStandby): either
    // it sees us out of the poll, or we see it asleep and wake it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (standby_deep_.load(std::memory_order_relaxed)) WakeStandby();
  }
  if (!ready.ok()) return ready.status();
  self.cursor = 0;
  if (index == 0) CollectDueTimers(self.due);
  return absl::OkStatus();
}

bool LoopImpl::RunBatch(LoopThread& self, PollSet& set, uint64_t& activity) {
  const size_t polled = self.events.size();
  const size_t total = polled + self.due.size();
  while (self.cursor < total) {
    if (stop_.load(std::memory_order_acquire)) break;  // the rest is skipped
    // Taken before running, so that a taker copies only what follows.
    const size_t k = self.cursor++;
    bool owned = true;
    if (k < polled) {
      const Event event = self.events[k];
      if (event.token() == kWakerToken) {
        set.waker->Drain();
        continue;
      }
      owned = Dispatch(self, set, event, activity);
    } else {
      const TimerPtr timer = self.due[k - polled];
      owned = Work(standby_enabled_, set, activity,
                   [this, &timer] { RunTimer(timer); });
    }
    if (!owned) return false;
  }
  self.events.clear();
  self.due.clear();  // timer references, released unlocked
  self.cursor = 0;
  return true;
}

bool LoopImpl::Dispatch(LoopThread& self, PollSet& set, const Event& polled,
                        uint64_t& activity) {
  SourcePtr source = sources_.Find(polled.token());
  if (source == nullptr) {
    Bump(self.stale_events);
    return true;
  }
  // An invocation starts only from this generation's idle gate.
  const uint64_t idle = Source::IdleGate(polled.token());
  uint64_t gate = source->gate.load(std::memory_order_relaxed);
  while ((gate & ~Source::kNamed) == idle) {
    if (!source->gate.compare_exchange_weak(gate, gate | Source::kInvoking,
                                            std::memory_order_acq_rel,
                                            std::memory_order_relaxed)) {
      continue;
    }
    // Handlers see their own token, not the generation tag.
    const Event event(source->user_token, polled.flags());
    Bump(self.events_dispatched);
    bool owned;
    {
      CallScope in_handler(kHandlerScope, source.get());
      owned = Work(standby_enabled_, set, activity, [&] {
        Guarded(source->user_token,
                [&] { source->handler->HandleEvent(event); });
      });
    }
    FinishInvocation(*source);
    return owned;
  }
  if (!Source::SameGeneration(gate, polled.token()) ||
      (gate & (Source::kRemoved | Source::kDeregistered)) != 0) {
    Bump(self.stale_events);
  } else if ((gate & Source::kInvoking) != 0) {
    // Its handler runs on a thread we took this poller over from.
    Silence(*source, idle);
  }
  // Else it was silenced and its invocation is re-arming it right now; the
  // re-arm reports it again if it is still ready.
  return true;
}

void LoopImpl::FinishInvocation(Source& source) {
  uint64_t before =
      source.gate.fetch_and(~Source::kInvoking, std::memory_order_acq_rel);
  if ((before & Source::kSilenced) != 0) {
    // Still busy (kSilenced): nobody releases the source under us.
    CompactMutexLock lock(&source.state_mu);
    if ((source.gate.load(std::memory_order_relaxed) & Source::kRemoved) == 0 &&
        !source.fd_lost) {
      // Level re-arm: reports at once if still ready (guarantee 2).
      absl::Status status = sets_[source.set]->poller->Reregister(
          source.fd, source.key, source.interest, Trigger::kLevel);
      if (!status.ok()) rearm_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    before =
        source.gate.fetch_and(~Source::kSilenced, std::memory_order_acq_rel);
  }
  if ((before & Source::kDeregistered) == 0) return;
  // Deregister overlapped this invocation: meet it in the stripe.
  Task on_released;
  bool release = false;
  ReleaseStripe& stripe = ReleaseStripeFor(&source);
  {
    MutexLock lock(&stripe.mu);
    source.gate.fetch_or(Source::kFinished, std::memory_order_acq_rel);
    auto it = stripe.waiting.find(&source);
    if (it != stripe.waiting.end()) {
      on_released = std::move(it->second);
      stripe.waiting.erase(it);
      release = true;
    }
  }
  stripe.cv.NotifyAll();
  if (release) {
    const Token token = source.user_token;
    Release(source);
    if (on_released) Guarded(token, on_released);
  }
}

void LoopImpl::Silence(Source& source, uint64_t idle) {
  // Level-triggered and still ready, it would be reported by every poll
  // while its handler runs elsewhere: disarm it; the running invocation
  // re-arms it when it returns (FinishInvocation).
  CompactMutexLock lock(&source.state_mu);
  uint64_t gate = source.gate.load(std::memory_order_acquire);
  while ((gate & ~Source::kFlags) == idle && (gate & Source::kInvoking) != 0 &&
         (gate & (Source::kSilenced | Source::kRemoved |
                  Source::kDeregistered)) == 0) {
    if (source.gate.compare_exchange_weak(gate, gate | Source::kSilenced,
                                          std::memory_order_acq_rel)) {
      if (!source.fd_lost) {
        absl::Status status = sets_[source.set]->poller->Reregister(
            source.fd, source.key, Interest::None(), Trigger::kOneShot);
        if (!status.ok()) {
          rearm_failures_.fetch_add(1, std::memory_order_relaxed);
        }
      }
      return;
    }
  }
  // The invocation ended meanwhile (the source is still armed and will be
  // reported again), or it is already silenced or deregistered.
}

}  // namespace reactor_internal
}  // namespace mill
