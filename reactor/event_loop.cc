// EventLoop: construction, registration, timers, RunInLoop and stats. The
// threads, polling and dispatch live in event_loop_dispatch.cc.
#include "reactor/event_loop.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "reactor/internal/loop_context.h"
#include "reactor/internal/source.h"

namespace mill {
namespace {

using reactor_internal::LoopTimer;
using reactor_internal::PollSet;
using reactor_internal::Source;
using Clock = std::chrono::steady_clock;

int64_t ToNanos(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             t.time_since_epoch())
      .count();
}

// CPUs this process may run on: what `taskset` or a cpuset allows, which
// std::thread::hardware_concurrency() ignores.
int AvailableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventLoop>> EventLoop::Create(
    EventLoopOptions options) {
  if (options.workers < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("EventLoopOptions::workers must not be negative, got ",
                     options.workers));
  }
  if (options.polling_threads < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "EventLoopOptions::polling_threads must not be negative, got ",
        options.polling_threads));
  }
  if (options.takeover_delay <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::takeover_delay must be positive");
  }
  if (options.events_capacity < 1) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::events_capacity must be at least 1");
  }
  if (options.poll_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::poll_timeout must not be negative");
  }
  if (options.buffer_size < 1) {
    return absl::InvalidArgumentError(
        "EventLoopOptions::buffer_size must be at least 1");
  }
  int workers = 1;
  int polling = 1;
  if (options.dispatch_mode == DispatchMode::kPool) {
    const int wanted =
        options.polling_threads > 0 ? options.polling_threads : AvailableCpus();
    workers = options.workers > 0 ? options.workers : wanted + 1;
    // Keep one thread beyond the pollers to take over from a blocked
    // handler, unless there is only one thread.
    polling = workers == 1 ? 1 : std::min(wanted, workers - 1);
  }
  std::unique_ptr<EventLoop> loop(
      new EventLoop(std::move(options), workers, polling));
  absl::Status status = loop->Init();
  if (!status.ok()) return status;  // the destructor copes with a half loop
  return loop;
}

EventLoop::EventLoop(EventLoopOptions options, int workers, int polling_threads)
    : options_(std::move(options)),
      workers_(workers),
      polling_threads_(polling_threads),
      standby_enabled_(workers > polling_threads) {}

absl::Status EventLoop::Init() {
  for (int i = 0; i < polling_threads_; ++i) {
    auto set = std::make_unique<PollSet>();
    absl::StatusOr<std::unique_ptr<Poller>> poller =
        options_.backend ? Poller::Create(*options_.backend) : Poller::Create();
    if (!poller.ok()) return poller.status();
    set->poller = std::move(*poller);
    absl::StatusOr<std::unique_ptr<Waker>> waker =
        Waker::Create(*set->poller, reactor_internal::kWakerToken);
    if (!waker.ok()) return waker.status();
    set->waker = std::move(*waker);
    sets_.push_back(std::move(set));
  }
  wheel_ = std::make_unique<TimingWheel>(Clock::now());

  BufferPoolOptions buffer_options;
  buffer_options.buffer_size = options_.buffer_size;
  buffer_options.max_idle = options_.max_idle_buffers;
  buffers_ = std::make_unique<BufferPool>(buffer_options);

  for (int i = 0; i < workers_; ++i) {
    threads_.push_back(std::make_unique<Thread>(i, options_.events_capacity));
  }
  // Helpers start now, so that a failure is reported here, and wait for
  // Run(); thread 0 is the one that will call Run().
  for (int i = 1; i < workers_; ++i) {
    try {
      threads_[i]->thread = std::thread(&EventLoop::HelperMain, this, i);
    } catch (const std::system_error& e) {
      return absl::ResourceExhaustedError(
          absl::StrCat("EventLoop: cannot start worker thread: ", e.what()));
    }
  }
  return absl::OkStatus();
}

EventLoop::~EventLoop() {
  Stop();
  { std::lock_guard<std::mutex> lock(roles_mu_); }
  roles_cv_.notify_all();
  for (auto& thread : threads_) {
    if (thread->thread.joinable()) thread->thread.join();
  }
  if (compute_ != nullptr) compute_->Shutdown();
}

void EventLoop::Stop() {
  // Async-signal-safe: an atomic store and a write(2) per poller. A loop
  // whose Init() failed may lack some pollers or wakers.
  stop_.store(true, std::memory_order_seq_cst);
  for (const std::unique_ptr<PollSet>& set : sets_) {
    if (set->waker != nullptr) (void)set->waker->Wake();
  }
}

bool EventLoop::IsInLoopThread() const {
  return reactor_internal::t_context.loop == this;
}

// --- Registration ----------------------------------------------------------

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::function<void(const Event&)> callback) {
  if (!callback) {
    return absl::InvalidArgumentError("EventLoop::Register: empty callback");
  }
  return Register(fd, token, interest,
                  std::make_shared<CallbackHandler>(std::move(callback)));
}

absl::Status EventLoop::Register(int fd, Token token, Interest interest,
                                 std::shared_ptr<EventHandler> handler) {
  Token key;
  return RegisterSource(fd, token, interest, std::move(handler), &key);
}

absl::StatusOr<Registration> EventLoop::Register(
    int fd, Interest interest, std::shared_ptr<EventHandler> handler) {
  Token key;
  absl::Status status =
      RegisterSource(fd, std::nullopt, interest, std::move(handler), &key);
  if (!status.ok()) return status;
  return Registration(key.value());
}

reactor_internal::Source* EventLoop::FdOwnerLocked(int fd) const {
  if (fd < 0 || static_cast<size_t>(fd) >= fd_owners_.size()) return nullptr;
  return fd_owners_[static_cast<size_t>(fd)];
}

absl::Status EventLoop::RegisterSource(int fd, std::optional<Token> user_token,
                                       Interest interest,
                                       std::shared_ptr<EventHandler> handler,
                                       Token* key_out) {
  if (handler == nullptr) {
    return absl::InvalidArgumentError("EventLoop::Register: null handler");
  }
  // Destroyed after the lock is released on every path: a handler's or
  // source's destructor may call back into the loop.
  SourcePtr source;
  reactor_internal::Source* stale = nullptr;
  absl::Status status;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    if (user_token.has_value() && user_tokens_.contains(*user_token)) {
      return absl::AlreadyExistsError(
          absl::StrCat("EventLoop::Register: token ", user_token->value(),
                       " is already registered"));
    }
    reactor_internal::Source* const owner = FdOwnerLocked(fd);
    // A number already registered goes to the same poller, so that the
    // poller itself refuses a second registration of one open descriptor.
    const uint32_t set =
        owner != nullptr ? owner->set
                         : next_set_.fetch_add(1, std::memory_order_relaxed) %
                               static_cast<uint32_t>(polling_threads_);
    const Token key(next_generation_.fetch_add(1, std::memory_order_relaxed));
    source = std::make_shared<Source>(fd, user_token.has_value(),
                                      user_token.value_or(key), key, interest,
                                      std::move(handler), set);
    // Visible to the dispatcher before the poller can report the fd.
    status = sources_.Insert(key, source);
    if (!status.ok()) return status;
    if (owner != nullptr) {
      // Either the same open descriptor twice (the poller refuses it below)
      // or the earlier registration's fd was closed and the number reused:
      // from now on the earlier one must not touch the descriptor.
      stale = owner;
      std::lock_guard<std::mutex> state(stale->state_mu);
      stale->fd_lost = true;
    }
    status = sets_[set]->poller->Register(fd, key, interest, Trigger::kLevel);
    if (!status.ok()) {
      if (stale != nullptr) {
        std::lock_guard<std::mutex> state(stale->state_mu);
        stale->fd_lost = false;  // it still owns its (open) descriptor
      }
      sources_.Remove(key);
      return status;
    }
    if (static_cast<size_t>(fd) >= fd_owners_.size()) {
      fd_owners_.resize(static_cast<size_t>(fd) + 1, nullptr);
    }
    fd_owners_[static_cast<size_t>(fd)] = source.get();
    if (user_token.has_value()) user_tokens_.emplace(*user_token, source);
    *key_out = key;
  }
  return absl::OkStatus();
}

absl::Status EventLoop::Reregister(Token token, Interest interest) {
  SourcePtr source;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Reregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = it->second;
  }
  return ReregisterSource(source, interest, "EventLoop::Reregister");
}

absl::Status EventLoop::Reregister(Registration registration,
                                   Interest interest) {
  SourcePtr source = sources_.Find(Token(registration.id()));
  if (source == nullptr || source->named) {
    return absl::NotFoundError(
        absl::StrCat("EventLoop::Reregister: registration ", registration.id(),
                     " is not registered"));
  }
  return ReregisterSource(source, interest, "EventLoop::Reregister");
}

absl::Status EventLoop::ReregisterSource(const SourcePtr& source,
                                         Interest interest, const char* what) {
  std::lock_guard<std::mutex> lock(source->state_mu);
  if (source->deregistered.load(std::memory_order_relaxed)) {
    return absl::NotFoundError(absl::StrCat(
        what, ": token ", source->user_token.value(), " was deregistered"));
  }
  if (source->fd_lost) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": descriptor ", source->fd,
                     " was closed before Deregister and now belongs to a newer "
                     "registration"));
  }
  source->interest = interest;
  // A silenced source (another thread polled it while its handler runs)
  // stays disarmed: the invocation re-arms it with this interest when it
  // returns.
  if (source->gate.load(std::memory_order_acquire) & Source::kSilenced) {
    return absl::OkStatus();
  }
  return sets_[source->set]->poller->Reregister(source->fd, source->key,
                                                interest, Trigger::kLevel);
}

absl::Status EventLoop::Deregister(Token token) {
  return Deregister(token, nullptr);
}

absl::Status EventLoop::Deregister(Registration registration) {
  return Deregister(registration, nullptr);
}

absl::Status EventLoop::Deregister(Token token,
                                   absl::AnyInvocable<void()> on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    auto it = user_tokens_.find(token);
    if (it == user_tokens_.end()) {
      return absl::NotFoundError(absl::StrCat("EventLoop::Deregister: token ",
                                              token.value(),
                                              " is not registered"));
    }
    source = std::move(it->second);
    user_tokens_.erase(it);
    if (FdOwnerLocked(source->fd) == source.get()) {
      fd_owners_[static_cast<size_t>(source->fd)] = nullptr;
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

absl::Status EventLoop::Deregister(Registration registration,
                                   absl::AnyInvocable<void()> on_released) {
  const bool wait = on_released == nullptr;
  SourcePtr source;
  bool owned_fd = false;
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    source = sources_.Find(Token(registration.id()));
    // Named sources are removed through their token, and a source already
    // being deregistered is not found twice.
    if (source == nullptr || source->named ||
        source->deregistered.load(std::memory_order_acquire)) {
      return absl::NotFoundError(
          absl::StrCat("EventLoop::Deregister: registration ",
                       registration.id(), " is not registered"));
    }
    // Marked under tokens_mu_, so a concurrent Deregister of the same
    // registration sees it above.
    source->deregistered.store(true, std::memory_order_release);
    if (FdOwnerLocked(source->fd) == source.get()) {
      fd_owners_[static_cast<size_t>(source->fd)] = nullptr;
      owned_fd = true;
    }
  }
  return DeregisterSource(source, owned_fd, std::move(on_released), wait);
}

namespace reactor_internal {
ReleaseStripe& ReleaseStripeFor(const Source* source) {
  static ReleaseStripe stripes[64];
  const auto bits = reinterpret_cast<uintptr_t>(source);
  return stripes[(bits >> 6) % 64];
}
}  // namespace reactor_internal

absl::Status EventLoop::DeregisterSource(const SourcePtr& source, bool owned_fd,
                                         absl::AnyInvocable<void()> on_released,
                                         bool wait) {
  absl::Status status;
  bool fd_lost;
  {
    std::lock_guard<std::mutex> lock(source->state_mu);
    source->deregistered.store(true, std::memory_order_release);
    fd_lost = source->fd_lost || !owned_fd;
    if (!fd_lost) status = sets_[source->set]->poller->Deregister(source->fd);
  }
  sources_.Remove(source->key);

  // The gate: no invocation starts from now on. If one is running, the
  // later of it and us runs on_released (see Source::gate).
  const uint32_t before =
      source->gate.fetch_or(Source::kDeregistered, std::memory_order_acq_rel);
  if ((before & Source::kInvoking) == 0) {
    if (on_released) on_released();
  } else {
    const bool self = source->invoking_thread.load(std::memory_order_acquire) ==
                      std::this_thread::get_id();
    reactor_internal::ReleaseStripe& stripe =
        reactor_internal::ReleaseStripeFor(source.get());
    std::unique_lock<std::mutex> lock(stripe.mu);
    if (source->invocation_finished) {
      lock.unlock();
      if (on_released) on_released();
    } else {
      if (on_released) stripe.waiting[source.get()] = std::move(on_released);
      // From inside its own handler there is nothing to wait for: the gate
      // stops every later call.
      if (wait && !self) {
        stripe.cv.wait(lock, [&source] { return source->invocation_finished; });
      }
    }
  }
  if (fd_lost) {
    return absl::FailedPreconditionError(absl::StrCat(
        "EventLoop::Deregister: registration removed, but descriptor ",
        source->fd,
        " was closed before Deregister and now belongs to a newer "
        "registration, which was left alone"));
  }
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat("registration removed, but the poller refused (was the "
                     "fd closed before Deregister?): ",
                     status.message()));
  }
  return absl::OkStatus();
}

// --- RunInLoop ---------------------------------------------------------------

absl::Status EventLoop::RunInLoop(absl::AnyInvocable<void()> fn) {
  const bool inline_here = options_.dispatch_mode == DispatchMode::kDirect
                               ? IsInLoopThread()
                               : reactor_internal::t_context.task_loop == this;
  if (inline_here) {
    fn();
    return absl::OkStatus();
  }
  {
    std::lock_guard<std::mutex> lock(posted_mu_);
    if (stop_.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError(
          "EventLoop::RunInLoop: the loop is stopped");
    }
    posted_.push_back(std::move(fn));
    posted_count_.fetch_add(1, std::memory_order_seq_cst);
  }
  // Pairs with the owner's publish-then-check before it sleeps.
  if (sets_[0]->sleeping_until.load(std::memory_order_seq_cst) !=
      PollSet::kAwake) {
    return sets_[0]->waker->Wake();
  }
  return absl::OkStatus();
}

// --- Timers ----------------------------------------------------------------

EventLoop::TimerId EventLoop::RunAfter(absl::Duration delay,
                                       absl::AnyInvocable<void()> fn) {
  return AddTimer(delay, absl::ZeroDuration(), std::move(fn));
}

EventLoop::TimerId EventLoop::RunEvery(absl::Duration interval,
                                       absl::AnyInvocable<void()> fn) {
  if (interval <= absl::ZeroDuration()) return TimerId();
  return AddTimer(interval, interval, std::move(fn));
}

EventLoop::TimerId EventLoop::AddTimer(absl::Duration delay,
                                       absl::Duration interval,
                                       absl::AnyInvocable<void()> fn) {
  if (!fn || stop_.load(std::memory_order_acquire)) return TimerId();
  // The deadline counts from the call, not from when the loop gets to it.
  const TimingWheel::TimePoint deadline =
      Clock::now() +
      absl::ToChronoNanoseconds(std::max(delay, absl::ZeroDuration()));
  const bool repeating = interval > absl::ZeroDuration();
  auto timer = std::make_shared<LoopTimer>(repeating, std::move(fn));
  // The wheel's callback only hands the timer to the thread advancing the
  // wheel, which runs it after releasing wheel_mu_.
  auto collect = [timer] {
    reactor_internal::t_context.collecting->push_back(timer);
  };
  TimerId id;
  {
    std::lock_guard<std::mutex> lock(wheel_mu_);
    id = repeating ? wheel_->ScheduleRepeating(
                         deadline, absl::ToChronoNanoseconds(interval), collect)
                   : wheel_->Schedule(deadline, collect);
    timer->id = id;
    timers_.emplace(id, timer);
    UpdateNextDeadlineLocked();
  }
  WakeForDeadline(ToNanos(deadline));
  return id;
}

void EventLoop::UpdateNextDeadlineLocked() {
  std::optional<TimingWheel::TimePoint> next = wheel_->NextDeadline();
  next_deadline_ns_.store(next ? ToNanos(*next) : INT64_MAX,
                          std::memory_order_seq_cst);
}

void EventLoop::WakeForDeadline(int64_t deadline_ns) {
  // Pairs with the owner's publish-then-check of sleeping_until: either it
  // sees the new deadline before sleeping, or we see it asleep for longer.
  if (deadline_ns < sets_[0]->sleeping_until.load(std::memory_order_seq_cst)) {
    (void)sets_[0]->waker->Wake();
  }
}

bool EventLoop::Cancel(TimerId id) {
  TimerPtr timer;  // the last reference may go after the lock is released
  uint32_t before;
  {
    std::lock_guard<std::mutex> lock(wheel_mu_);
    auto it = timers_.find(id);
    if (it == timers_.end()) return false;
    timer = std::move(it->second);
    timers_.erase(it);
    before =
        timer->state.fetch_or(LoopTimer::kCancelled, std::memory_order_acq_rel);
    if (timer->repeating || (before & LoopTimer::kStarted) == 0) {
      wheel_->Cancel(id);  // destroys the wheel's reference, not the timer
    }
    UpdateNextDeadlineLocked();
  }
  if (!timer->repeating) return (before & LoopTimer::kStarted) == 0;
  if ((before & LoopTimer::kRunning) != 0 &&
      timer->running_thread.load(std::memory_order_acquire) !=
          std::this_thread::get_id()) {
    // An invocation runs on another thread: wait for it, so that the caller
    // may free what the callback uses.
    std::unique_lock<std::mutex> lock(timer_wait_mu_);
    timer_wait_cv_.wait(lock, [&timer] {
      return (timer->state.load(std::memory_order_acquire) &
              LoopTimer::kRunning) == 0;
    });
  }
  return true;
}

void EventLoop::CollectDueTimers(std::vector<TimerPtr>& due) {
  const int64_t next = next_deadline_ns_.load(std::memory_order_acquire);
  if (next == INT64_MAX) return;
  const Clock::time_point now = Clock::now();
  if (ToNanos(now) < next) return;
  std::lock_guard<std::mutex> lock(wheel_mu_);
  reactor_internal::t_context.collecting = &due;
  wheel_->Advance(now);
  reactor_internal::t_context.collecting = nullptr;
  UpdateNextDeadlineLocked();
}

void EventLoop::RunTimer(const TimerPtr& timer) {
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
    TimerPtr entry;
    std::lock_guard<std::mutex> lock(wheel_mu_);
    auto it = timers_.find(timer->id);
    if (it != timers_.end()) {
      entry = std::move(it->second);
      timers_.erase(it);
    }
  }
  timer->running_thread.store(std::this_thread::get_id(),
                              std::memory_order_release);
  Guarded(Token(), [&timer] { timer->fn(); });
  timer->running_thread.store(std::thread::id(), std::memory_order_release);
  const uint32_t before =
      timer->state.fetch_and(~LoopTimer::kRunning, std::memory_order_acq_rel);
  if (before & LoopTimer::kCancelled) {
    { std::lock_guard<std::mutex> lock(timer_wait_mu_); }
    timer_wait_cv_.notify_all();
  }
}

size_t EventLoop::pending_timers() const {
  std::lock_guard<std::mutex> lock(wheel_mu_);
  return timers_.size();
}

// --- Exceptions, compute pool, stats
// ------------------------------------------

void EventLoop::ReportException(Token token, const std::exception_ptr& error) {
  handler_exceptions_.fetch_add(1, std::memory_order_relaxed);
  if (options_.on_handler_exception) {
    try {
      options_.on_handler_exception(token, error);
    } catch (...) {
      // A throwing reporter must not take the thread down either.
    }
    return;
  }
  std::string what;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
    what = "non-standard exception";
  }
  std::fprintf(stderr, "mill-io: handler for token %llu threw: %s\n",
               static_cast<unsigned long long>(token.value()), what.c_str());
}

absl::Status EventLoop::SpawnCompute(ThreadPool::Task task, Priority priority) {
  return compute_pool().Submit(std::move(task), priority);
}

ThreadPool& EventLoop::compute_pool() {
  std::call_once(compute_once_, [this] {
    ThreadPoolOptions pool_options;
    pool_options.workers = options_.compute_workers;
    pool_options.name_prefix = "mill-compute-";
    compute_ = std::make_unique<ThreadPool>(pool_options);
  });
  return *compute_;
}

EventLoop::Stats EventLoop::stats() const {
  Stats stats;
  for (const std::unique_ptr<Thread>& thread : threads_) {
    stats.events_dispatched +=
        thread->events_dispatched.load(std::memory_order_relaxed);
    stats.stale_events += thread->stale_events.load(std::memory_order_relaxed);
    stats.polls += thread->polls.load(std::memory_order_relaxed);
  }
  stats.handler_exceptions =
      handler_exceptions_.load(std::memory_order_relaxed);
  stats.rearm_failures = rearm_failures_.load(std::memory_order_relaxed);
  stats.registered = sources_.size();
  stats.takeovers = takeovers_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace mill
