// LoopImpl: everything an EventLoop is, behind the facade's one pointer.
// Internal to //reactor: not part of the API.
//
// Its members are defined by responsibility in:
//   event_loop_impl.cc          construction, stop, stats, exceptions, pools
//   event_loop_registration.cc  Register, Reregister, Deregister, release
//   event_loop_timers.cc        the timing wheel and its timers
//   event_loop_tasks.cc         RunInLoop and the task runner
//   event_loop_dispatch.cc      Run, the workers' roles, polling, dispatch
//   event_loop_standby.cc       the standby thread and takeovers
//
// Locks (never two at once, except a source's state_mu and the registry's
// shard locks inside tokens_mu_):
//   tokens_mu_   user tokens, descriptor owners, generations (registration)
//   roles_mu_    which thread owns which poller, the standby, parking
//   wheel_mu_    the wheel and the timer table
//   posted_mu_   the RunInLoop queue
//   Source::state_mu, ReleaseStripe::mu, timer_wait_mu_ (leaves)
#ifndef MILL_IO_REACTOR_INTERNAL_LOOP_IMPL_H_
#define MILL_IO_REACTOR_INTERNAL_LOOP_IMPL_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/call_scope.h"
#include "base/mutex.h"
#include "objectpool/buffer_pool.h"
#include "poll/interest.h"
#include "poll/internal/poller_access.h"
#include "poll/token.h"
#include "reactor/event_loop.h"
#include "reactor/internal/source.h"
#include "registry/registry.h"
#include "threadpool/thread_pool.h"
#include "timer/timing_wheel.h"

namespace mill {
namespace reactor_internal {

// The wakers' poller token. Registration generations start at 1.
inline constexpr Token kWakerToken(0);

// What a thread of the loop runs inside of (base/call_scope.h):
// this thread is one of the loop's (key: the LoopImpl), for IsInLoopThread;
inline constexpr CallScopeKind kLoopThreadScope{"mill::EventLoop thread"};
// it runs a RunInLoop task (key: the LoopImpl), so RunInLoop runs inline;
inline constexpr CallScopeKind kTaskScope{"mill::EventLoop task"};
// it runs a source's handler (key: the Source), so that a handler
// deregistering itself does not wait for itself;
inline constexpr CallScopeKind kHandlerScope{"mill::EventLoop handler"};
// it runs a timer's callback (key: the LoopTimer), so that a timer
// cancelling itself does not wait for itself;
inline constexpr CallScopeKind kTimerScope{"mill::EventLoop timer"};
// it advances the wheel (key: the LoopImpl; data: the vector the wheel's
// callbacks append due timers to, which they reach through the innermost
// such scope: they run only inside Advance, under wheel_mu_).
inline constexpr CallScopeKind kCollectScope{"mill::EventLoop due timers"};

// Single-writer counter bump: no locked instruction needed.
inline void Bump(std::atomic<uint64_t>& counter) {
  counter.store(counter.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
}

// Runs `work` (a handler, timer callback or task) on set `set`'s owner,
// publishing it for the standby (`watched`): the activity count is odd while
// it runs. Returns false if the set was taken over meanwhile.
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

class LoopImpl {
 public:
  using SourcePtr = std::shared_ptr<Source>;
  using TimerPtr = std::shared_ptr<LoopTimer>;
  using Task = absl::AnyInvocable<void()>;

  LoopImpl(EventLoopOptions options, int workers, int polling_threads);
  // Stops the loop, joins every thread and shuts the compute pool down.
  ~LoopImpl();
  LoopImpl(const LoopImpl&) = delete;
  LoopImpl& operator=(const LoopImpl&) = delete;

  // Creates the pollers, wakers and helper threads.
  absl::Status Init() ABSL_LOCKS_EXCLUDED(roles_mu_);
  // One poller and waker per polling thread on `backend` (replacing any).
  absl::Status CreatePollSets(PollerBackend backend);

  // --- Registration (event_loop_registration.cc). `source` is a fresh
  // OwnedSource's or a RegisteredHandler's (FailedPrecondition until its
  // previous registration is released); `user_token` unset registers an
  // unnamed source. On success *key is its generation.
  absl::Status Register(int fd, std::optional<Token> user_token,
                        Interest interest, SourcePtr source, Token* key)
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  absl::Status ReregisterNamed(Token token, Interest interest)
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  absl::Status ReregisterUnnamed(Token key, Interest interest);
  // An empty `on_released` waits for an invocation in flight (guarantee 3).
  absl::Status DeregisterNamed(Token token, Task on_released)
      ABSL_LOCKS_EXCLUDED(tokens_mu_);
  absl::Status DeregisterUnnamed(Token key, Task on_released)
      ABSL_LOCKS_EXCLUDED(tokens_mu_);

  // --- Threads and dispatch (event_loop_dispatch.cc).
  absl::Status Run() ABSL_LOCKS_EXCLUDED(roles_mu_, posted_mu_);
  void Stop();  // async-signal-safe
  bool stopped() const { return stop_.load(std::memory_order_acquire); }
  bool IsInLoopThread() const {
    return CallScope::Active(kLoopThreadScope, this);
  }

  // --- Tasks (event_loop_tasks.cc).
  absl::Status RunInLoop(Task fn) ABSL_LOCKS_EXCLUDED(posted_mu_);

  // --- Timers (event_loop_timers.cc). Ids are EventLoop::TimerId values.
  uint64_t AddTimer(absl::Duration delay, absl::Duration interval, Task fn)
      ABSL_LOCKS_EXCLUDED(wheel_mu_);
  bool Cancel(uint64_t id) ABSL_LOCKS_EXCLUDED(wheel_mu_, timer_wait_mu_);
  size_t pending_timers() const ABSL_LOCKS_EXCLUDED(wheel_mu_);

  // --- The rest (event_loop_impl.cc).
  ThreadPool& compute_pool();
  BufferPool& buffer_pool() { return buffers_; }
  const EventLoopOptions& options() const { return options_; }
  EventLoop::Stats stats() const;
  int workers() const { return workers_; }
  int polling_threads() const { return polling_threads_; }
  // Receive-ahead (reactor/internal/receive_ahead.h): whether every poller
  // can, and the backend of the poller `source` is registered with.
  bool receive_ahead() const { return receive_ahead_; }
  poll_internal::Backend& BackendOf(const Source& source) {
    return poll_internal::PollerAccess::BackendOf(*sets_[source.set]->poller);
  }

 private:
  // --- Registration.
  Source* FdOwnerLocked(int fd) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(tokens_mu_);
  absl::Status ReregisterSource(Source& source, Token key, Interest interest);
  // Detaches `source` (already removed from the tables) and handles the
  // invocation gate; `wait` blocks for an invocation on another thread.
  absl::Status DeregisterSource(const SourcePtr& source, bool owned_fd,
                                Task on_released, bool wait);
  // The registration is over: the source may be registered again. The
  // caller touches it no more.
  static void Release(Source& source) {
    source.gate.fetch_or(Source::kReleased, std::memory_order_release);
  }

  // --- Threads and dispatch.
  void HelperMain(int index) ABSL_LOCKS_EXCLUDED(roles_mu_);
  // Runs thread `self` until the loop stops: takes a role (owner of a
  // poller, standby, or parked) and plays it, again and again.
  absl::Status WorkerLoop(LoopThread& self) ABSL_LOCKS_EXCLUDED(roles_mu_);
  // Owns sets_[index] until stopped or taken over; returns a poll error.
  absl::Status RunOwner(LoopThread& self, int index);
  void LeaveTakenOver(LoopThread& self) ABSL_LOCKS_EXCLUDED(roles_mu_);
  absl::Status PollOnce(LoopThread& self, PollSet& set, int index);
  // Runs self's batch from its cursor; false if taken over meanwhile.
  bool RunBatch(LoopThread& self, PollSet& set, uint64_t& activity);
  bool Dispatch(LoopThread& self, PollSet& set, const Event& polled,
                uint64_t& activity);
  // Disarms `source` (generation `idle`) whose handler runs elsewhere.
  void Silence(Source& source, uint64_t idle);
  // Ends an invocation: re-arms a silenced source, then, if Deregister
  // overlapped, finishes the release.
  void FinishInvocation(Source& source);

  // --- Standby (event_loop_standby.cc).
  // Watches the owners until it takes a poller over or the loop stops.
  void RunStandby(LoopThread& self) ABSL_EXCLUSIVE_LOCKS_REQUIRED(roles_mu_);
  bool TakeOver(LoopThread& self, int set_index, uint64_t seen_activity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(roles_mu_);
  void WakeStandby() ABSL_LOCKS_EXCLUDED(roles_mu_);

  // --- Tasks.
  // Runs queued RunInLoop tasks one at a time unless another thread is;
  // false if taken over meanwhile (the tasks not started are given back).
  bool RunTasks(PollSet& set, uint64_t& activity)
      ABSL_LOCKS_EXCLUDED(posted_mu_);
  // Gives `tasks[first..]` back to the queue, ahead of what was posted since,
  // and wakes the owner of the first poller if it sleeps.
  void GiveBackTasks(std::vector<Task>& tasks, size_t first)
      ABSL_LOCKS_EXCLUDED(posted_mu_);
  // The owner of the first poller can run tasks now.
  bool TasksRunnable() const {
    return posted_count_.load(std::memory_order_seq_cst) > 0 &&
           !tasks_running_.load(std::memory_order_seq_cst);
  }

  // --- Timers.
  // Advances the wheel if a deadline passed, appending due timers to `due`.
  void CollectDueTimers(std::vector<TimerPtr>& due)
      ABSL_LOCKS_EXCLUDED(wheel_mu_);
  void RunTimer(const TimerPtr& timer)
      ABSL_LOCKS_EXCLUDED(wheel_mu_, timer_wait_mu_);
  void UpdateNextDeadlineLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(wheel_mu_);
  // Wakes the owner of sets_[0] if it sleeps past `deadline_ns`.
  void WakeForDeadline(int64_t deadline_ns);

  // --- Exceptions.
  // Runs `fn`; an exception is counted and reported (guarantee 4) under
  // `token`.
  template <typename F>
  void Guarded(Token token, F&& fn) {
    try {
      std::forward<F>(fn)();
    } catch (...) {
      ReportException(token, std::current_exception());
    }
  }
  void ReportException(Token token, const std::exception_ptr& error);

  const EventLoopOptions options_;
  const int workers_;          // threads in total, the Run() thread included
  const int polling_threads_;  // pollers
  const bool standby_enabled_;
  std::vector<std::unique_ptr<PollSet>> sets_;  // filled by Init
  BufferPool buffers_;

  std::once_flag compute_once_;
  std::unique_ptr<ThreadPool> compute_;

  // Sources keyed by their internal generation token (never reused), which
  // is what the poller reports. The user's token maps to it.
  Registry<Source> sources_;
  // Guards the tables below and serializes (de)registration.
  Mutex tokens_mu_;
  absl::flat_hash_map<Token, SourcePtr> user_tokens_
      ABSL_GUARDED_BY(tokens_mu_);
  // The registration each descriptor number belongs to, so that a stale
  // registration (fd closed early, number reused) never touches the newer.
  // Indexed by descriptor (8 bytes a number, not a hash node each); the
  // sources are alive while listed (Deregister unlists them first).
  std::vector<Source*> fd_owners_ ABSL_GUARDED_BY(tokens_mu_);
  uint64_t next_generation_ ABSL_GUARDED_BY(tokens_mu_) = 1;  // 0: wakers
  uint32_t next_set_ ABSL_GUARDED_BY(tokens_mu_) = 0;

  std::atomic<bool> stop_{false};
  std::atomic<bool> running_{false};

  // Roles: which thread owns which poller, which one stands by; the others
  // are parked on roles_cv_.
  Mutex roles_mu_;
  CondVar roles_cv_;
  bool started_ ABSL_GUARDED_BY(roles_mu_) = false;  // Run() was entered
  int standby_ ABSL_GUARDED_BY(roles_mu_) = -1;      // thread index, or -1
  // The thread owning each poller (-1: none), the poller each thread owns.
  std::vector<int> set_owner_ ABSL_GUARDED_BY(roles_mu_);
  std::vector<int> thread_set_ ABSL_GUARDED_BY(roles_mu_);
  // The first polling failure of any thread.
  absl::Status poll_error_ ABSL_GUARDED_BY(roles_mu_);
  std::vector<std::unique_ptr<LoopThread>> threads_;  // [0]: the Run() thread
  // The standby sleeps without a timeout once every owner was idle for a
  // while; owners wake it (WakeStandby) when they get events.
  std::atomic<bool> standby_deep_{false};

  // Timers. The owner of sets_[0] advances the wheel; anyone may schedule
  // and cancel.
  mutable Mutex wheel_mu_;
  TimingWheel wheel_ ABSL_GUARDED_BY(wheel_mu_);
  struct TimerEntry {
    TimerPtr timer;
    TimerId wheel_id;
  };
  absl::flat_hash_map<uint64_t, TimerEntry> timers_ ABSL_GUARDED_BY(wheel_mu_);
  std::atomic<uint64_t> next_timer_id_{1};
  // Earliest pending deadline (ns on the steady clock), INT64_MAX if none.
  std::atomic<int64_t> next_deadline_ns_{INT64_MAX};
  // Cancel waits here for a running invocation of a repeating timer (whose
  // state is an atomic: the mutex only pairs the wait with the wake-up).
  Mutex timer_wait_mu_;
  CondVar timer_wait_cv_;

  // RunInLoop tasks.
  Mutex posted_mu_;
  std::vector<Task> posted_ ABSL_GUARDED_BY(posted_mu_);
  std::atomic<size_t> posted_count_{0};  // posted_.size(), read unlocked
  // A thread runs tasks (the owner of the first poller, or one it was taken
  // over from, finishing the task it was in).
  std::atomic<bool> tasks_running_{false};

  std::atomic<uint64_t> handler_exceptions_{0};
  std::atomic<uint64_t> rearm_failures_{0};
  std::atomic<uint64_t> takeovers_{0};
  // Chosen by Init (EventLoopOptions::io / backend); fixed afterwards.
  PollerBackend backend_ = PollerBackend::kEpoll;
  bool io_uring_fallback_ = false;
  bool receive_ahead_ = false;  // set with the pollers
};

}  // namespace reactor_internal
}  // namespace mill

#endif  // MILL_IO_REACTOR_INTERNAL_LOOP_IMPL_H_
