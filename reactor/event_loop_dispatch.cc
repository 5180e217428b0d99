// EventLoop: the threads, polling and dispatch (see docs/ARCHITECTURE.md,
// "Dispatch").
//
// Roles. Each poller (PollSet) has at most one owner thread, which polls it
// and runs the batch of events it got (then due timers and, for set 0,
// RunInLoop tasks) itself. In pool mode one more thread may stand by: it
// wakes every takeover_delay while the owners are busy, and when an owner
// has been inside one handler for that long, it takes the poller over,
// together with the entries of the batch the owner has not started. The
// owner learns it at the end of its handler (a CAS on the set's activity
// counter fails) and becomes the standby or parks. Threads beyond the
// pollers and the standby are parked on roles_cv_.
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "reactor/event_loop.h"
#include "reactor/internal/loop_context.h"
#include "reactor/internal/source.h"

namespace mill {
namespace {

using reactor_internal::kWakerToken;
using reactor_internal::LoopThread;
using reactor_internal::PollSet;
using reactor_internal::Source;
using reactor_internal::t_context;
using Clock = std::chrono::steady_clock;

// Ticks without any activity (every owner idle in its poll) before the
// standby sleeps without a timeout: an idle loop costs nothing.
constexpr int kQuietTicksBeforeSleep = 8;

// Single-writer counter bump: no locked instruction needed.
inline void Bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
}

// Runs `work` (a handler, timer callback or task) on set `set`'s owner,
// publishing it for the standby: the activity count is odd while it runs.
// Returns false if the set was taken over meanwhile.
template <typename F>
bool Work(bool watched, PollSet& set, uint64_t& activity, F&& work) {
  if (!watched) {
    work();
    return true;
  }
  set.activity.store(++activity, std::memory_order_release);
  work();
  uint64_t expected = activity;
  if (!set.activity.compare_exchange_strong(expected, activity + 1,
                                            std::memory_order_acq_rel)) {
    return false;  // the standby took over: it moved the count, not us
  }
  ++activity;
  return true;
}

}  // namespace

absl::Status EventLoop::Run() {
  if (running_.exchange(true, std::memory_order_acq_rel)) {
    return absl::FailedPreconditionError(
        "EventLoop::Run: the loop is already running on another thread");
  }
  const reactor_internal::ThreadContext saved = t_context;
  t_context.loop = this;
  t_context.task_loop = nullptr;
  {
    std::lock_guard<std::mutex> lock(roles_mu_);
    started_ = true;
  }
  roles_cv_.notify_all();
  absl::Status status = WorkerLoop(*threads_[0]);
  // Stopped: every other thread finishes the entry it is running and exits.
  { std::lock_guard<std::mutex> lock(roles_mu_); }
  roles_cv_.notify_all();
  for (size_t i = 1; i < threads_.size(); ++i) {
    if (threads_[i]->thread.joinable()) threads_[i]->thread.join();
  }
  t_context = saved;
  {
    // Stopped for good: queued tasks will never run. Destroyed unlocked.
    std::vector<absl::AnyInvocable<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(posted_mu_);
      dropped.swap(posted_);
      posted_count_.store(0, std::memory_order_relaxed);
    }
  }
  {
    std::lock_guard<std::mutex> lock(roles_mu_);
    if (status.ok()) status = poll_error_;
  }
  running_.store(false, std::memory_order_release);
  return status;
}

void EventLoop::HelperMain(int index) {
  {
    std::unique_lock<std::mutex> lock(roles_mu_);
    roles_cv_.wait(lock, [this] {
      return started_ || stop_.load(std::memory_order_acquire);
    });
  }
  if (stop_.load(std::memory_order_acquire)) return;
  const std::string name = "mill-io-" + std::to_string(index);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  t_context.loop = this;
  absl::Status status = WorkerLoop(*threads_[index]);
  t_context.loop = nullptr;
  if (!status.ok()) {
    std::lock_guard<std::mutex> lock(roles_mu_);
    if (poll_error_.ok()) poll_error_ = status;
  }
}

absl::Status EventLoop::WorkerLoop(Thread& self) {
  absl::Status result;
  std::unique_lock<std::mutex> lock(roles_mu_);
  while (!stop_.load(std::memory_order_acquire)) {
    if (self.set < 0) {
      for (int i = 0; i < polling_threads_; ++i) {
        if (sets_[i]->owner < 0) {
          sets_[i]->owner = self.index;
          self.set = i;
          break;
        }
      }
    }
    if (self.set >= 0) {
      const int index = self.set;
      lock.unlock();
      absl::Status status = RunOwner(self, index);
      lock.lock();
      if (!status.ok()) {
        result = status;
        Stop();
      }
      continue;
    }
    if (standby_enabled_ && standby_ < 0) {
      standby_ = self.index;
      RunStandby(self, lock);  // returns as an owner, or when stopping
      continue;
    }
    roles_cv_.wait(lock);  // parked until a role is free
  }
  if (self.set >= 0) {
    sets_[self.set]->owner = -1;
    self.set = -1;
  }
  if (standby_ == self.index) standby_ = -1;
  lock.unlock();
  roles_cv_.notify_all();
  return result;
}

absl::Status EventLoop::RunOwner(Thread& self, int index) {
  PollSet& set = *sets_[index];
  // A new owner continues the count (even: no handler runs).
  uint64_t activity = set.activity.load(std::memory_order_acquire);
  for (;;) {
    // A batch inherited in a takeover first, then what each poll returns.
    if (!RunBatch(self, set, activity)) return LeaveTakenOver(self);
    if (stop_.load(std::memory_order_acquire)) return absl::OkStatus();
    if (index == 0 && posted_count_.load(std::memory_order_acquire) > 0 &&
        !RunTasks(set, activity)) {
      return LeaveTakenOver(self);
    }
    if (stop_.load(std::memory_order_acquire)) return absl::OkStatus();
    absl::Status status = PollOnce(self, set, index);
    if (!status.ok()) return status;
  }
}

absl::Status EventLoop::LeaveTakenOver(Thread& self) {
  // The taker copied what it needed from our batch under roles_mu_; only
  // now may we drop it. Timer references are released unlocked.
  std::vector<TimerPtr> due;
  {
    std::lock_guard<std::mutex> lock(roles_mu_);
    self.events.clear();
    due.swap(self.due);
    self.cursor = 0;
  }
  return absl::OkStatus();
}

absl::Status EventLoop::PollOnce(Thread& self, PollSet& set, int index) {
  std::optional<absl::Duration> timeout;
  if (options_.wake_on_poll_timeout) timeout = options_.poll_timeout;
  if (index == 0) {
    // Publish how long we sleep, then look again: a RunInLoop or RunAfter
    // that came before the publish saw us awake and did not wake us.
    int64_t deadline = next_deadline_ns_.load(std::memory_order_seq_cst);
    set.sleeping_until.store(deadline, std::memory_order_seq_cst);
    deadline =
        std::min(deadline, next_deadline_ns_.load(std::memory_order_seq_cst));
    if (posted_count_.load(std::memory_order_seq_cst) > 0) {
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

bool EventLoop::RunBatch(Thread& self, PollSet& set, uint64_t& activity) {
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

bool EventLoop::Dispatch(Thread& self, PollSet& set, const Event& polled,
                         uint64_t& activity) {
  SourcePtr source = sources_.Find(polled.token());
  if (source == nullptr ||
      source->deregistered.load(std::memory_order_acquire)) {
    Bump(self.stale_events);
    return true;
  }
  uint32_t gate = 0;
  if (!source->gate.compare_exchange_strong(gate, Source::kInvoking,
                                            std::memory_order_acq_rel)) {
    if (gate & Source::kDeregistered) {
      Bump(self.stale_events);
    } else if (gate & Source::kInvoking) {
      // Its handler runs on a thread we took this poller over from.
      Silence(*source);
    }
    // Else it was silenced and its invocation is re-arming it right now;
    // the re-arm reports it again if it is still ready.
    return true;
  }
  // Handlers see their own token, not the generation tag.
  const Event event(source->user_token, polled.flags());
  source->invoking_thread.store(std::this_thread::get_id(),
                                std::memory_order_release);
  Bump(self.events_dispatched);
  const bool owned = Work(standby_enabled_, set, activity, [&] {
    Guarded(source->user_token, [&] { source->handler->HandleEvent(event); });
  });
  source->invoking_thread.store(std::thread::id(), std::memory_order_release);
  FinishInvocation(source, source->gate.fetch_and(~Source::kInvoking,
                                                  std::memory_order_acq_rel));
  return owned;
}

void EventLoop::Silence(Source& source) {
  // Level-triggered and still ready, it would be reported by every poll
  // while its handler runs elsewhere: disarm it; the running invocation
  // re-arms it when it returns (FinishInvocation).
  std::lock_guard<std::mutex> lock(source.state_mu);
  uint32_t gate = source.gate.load(std::memory_order_acquire);
  while ((gate & Source::kInvoking) != 0 &&
         (gate & (Source::kSilenced | Source::kDeregistered)) == 0) {
    if (source.gate.compare_exchange_weak(gate, gate | Source::kSilenced,
                                          std::memory_order_acq_rel)) {
      if (!source.deregistered.load(std::memory_order_relaxed) &&
          !source.fd_lost) {
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

void EventLoop::FinishInvocation(const SourcePtr& source,
                                 uint32_t gate_before) {
  if (gate_before & Source::kSilenced) {
    std::lock_guard<std::mutex> lock(source->state_mu);
    if (!source->deregistered.load(std::memory_order_relaxed) &&
        !source->fd_lost) {
      // Level re-arm: reports at once if still ready (guarantee 2).
      absl::Status status = sets_[source->set]->poller->Reregister(
          source->fd, source->key, source->interest, Trigger::kLevel);
      if (!status.ok()) rearm_failures_.fetch_add(1, std::memory_order_relaxed);
    }
    source->gate.fetch_and(~Source::kSilenced, std::memory_order_acq_rel);
  }
  if ((gate_before & Source::kDeregistered) == 0) return;
  // Deregister overlapped this invocation: release the source here.
  absl::AnyInvocable<void()> on_released;
  reactor_internal::ReleaseStripe& stripe =
      reactor_internal::ReleaseStripeFor(source.get());
  {
    std::lock_guard<std::mutex> lock(stripe.mu);
    source->invocation_finished = true;
    auto it = stripe.waiting.find(source.get());
    if (it != stripe.waiting.end()) {
      on_released = std::move(it->second);
      stripe.waiting.erase(it);
    }
  }
  stripe.cv.notify_all();
  if (on_released) Guarded(source->user_token, on_released);
}

bool EventLoop::RunTasks(PollSet& set, uint64_t& activity) {
  if (tasks_running_.exchange(true, std::memory_order_acq_rel)) return true;
  bool owned = true;
  for (;;) {
    std::vector<absl::AnyInvocable<void()>> tasks;
    {
      std::lock_guard<std::mutex> lock(posted_mu_);
      tasks.swap(posted_);
      posted_count_.store(0, std::memory_order_relaxed);
    }
    for (absl::AnyInvocable<void()>& task : tasks) {
      if (stop_.load(std::memory_order_acquire)) break;
      const EventLoop* outer = t_context.task_loop;
      t_context.task_loop = this;
      auto run = [this, &task] { Guarded(Token(), task); };
      if (owned) {
        owned = Work(standby_enabled_, set, activity, run);
      } else {
        run();  // taken over: finish the queue, but no longer as the owner
      }
      t_context.task_loop = outer;
      task = nullptr;
    }
    // Tasks not run because the loop stopped are destroyed here.
    tasks.clear();
    tasks_running_.store(false, std::memory_order_seq_cst);
    if (stop_.load(std::memory_order_acquire) ||
        posted_count_.load(std::memory_order_seq_cst) == 0 ||
        tasks_running_.exchange(true, std::memory_order_acq_rel)) {
      return owned;
    }
  }
}

void EventLoop::RunStandby(Thread& self, std::unique_lock<std::mutex>& lock) {
  const auto tick = absl::ToChronoNanoseconds(options_.takeover_delay);
  std::vector<uint64_t> seen(polling_threads_, UINT64_MAX);
  int quiet_ticks = 0;
  bool deep = false;
  Clock::time_point next = Clock::now() + tick;
  while (!stop_.load(std::memory_order_acquire) && standby_ == self.index) {
    if (deep) {
      roles_cv_.wait(lock);
      if (standby_deep_.load(std::memory_order_relaxed)) continue;
      deep = false;  // an owner got events: watch again
      quiet_ticks = 0;
      std::fill(seen.begin(), seen.end(), UINT64_MAX);
      next = Clock::now() + tick;
      continue;
    }
    // Other notifications wake us early; observe only a full tick apart,
    // so that "the same odd count twice" means "busy for a tick or more".
    if (roles_cv_.wait_until(lock, next) != std::cv_status::timeout &&
        Clock::now() < next) {
      continue;
    }
    if (stop_.load(std::memory_order_acquire)) break;
    next = Clock::now() + tick;
    bool quiet = true;
    for (int i = 0; i < polling_threads_; ++i) {
      PollSet& set = *sets_[i];
      if (set.owner < 0) continue;
      const uint64_t activity = set.activity.load(std::memory_order_acquire);
      if (activity == seen[i] && (activity & 1) != 0 &&
          TakeOver(self, i, activity)) {
        return;
      }
      if (activity != seen[i] || !set.in_poll.load(std::memory_order_relaxed)) {
        quiet = false;
      }
      seen[i] = activity;
    }
    quiet_ticks = quiet ? quiet_ticks + 1 : 0;
    if (quiet_ticks >= kQuietTicksBeforeSleep) {
      // Announce the sleep, then check that every owner is still in its
      // poll; an owner leaving it checks the flag after the same fence.
      standby_deep_.store(true, std::memory_order_seq_cst);
      bool idle = true;
      for (int i = 0; i < polling_threads_; ++i) {
        if (sets_[i]->owner >= 0 &&
            !sets_[i]->in_poll.load(std::memory_order_seq_cst)) {
          idle = false;
        }
      }
      if (idle) {
        deep = true;
      } else {
        standby_deep_.store(false, std::memory_order_relaxed);
        quiet_ticks = 0;
      }
    }
  }
  if (standby_ == self.index) standby_ = -1;
  standby_deep_.store(false, std::memory_order_relaxed);
}

bool EventLoop::TakeOver(Thread& self, int set_index, uint64_t seen_activity) {
  PollSet& set = *sets_[set_index];
  uint64_t expected = seen_activity;
  // Succeeds only if the owner is still inside the same handler; its own
  // end-of-handler CAS then fails, and it leaves its batch alone until it
  // holds roles_mu_, which we hold now.
  if (!set.activity.compare_exchange_strong(expected, seen_activity + 1,
                                            std::memory_order_acq_rel)) {
    return false;
  }
  Thread& old = *threads_[set.owner];
  self.events.clear();
  self.due.clear();
  self.cursor = 0;
  const size_t polled = old.events.size();
  for (size_t k = old.cursor; k < polled; ++k) {
    self.events.push_back(old.events[k]);
  }
  for (size_t k = std::max(old.cursor, polled) - polled; k < old.due.size();
       ++k) {
    self.due.push_back(old.due[k]);
  }
  old.set = -1;
  set.owner = self.index;
  self.set = set_index;
  standby_ = -1;
  standby_deep_.store(false, std::memory_order_relaxed);
  takeovers_.fetch_add(1, std::memory_order_relaxed);
  roles_cv_.notify_all();  // a parked thread becomes the standby
  return true;
}

void EventLoop::WakeStandby() {
  {
    std::lock_guard<std::mutex> lock(roles_mu_);
    if (!standby_deep_.load(std::memory_order_relaxed)) return;
    standby_deep_.store(false, std::memory_order_relaxed);
  }
  roles_cv_.notify_all();
}

}  // namespace mill
